/*
 * core_text.h — small text checks shared by the modules: UTF-8 sequence length and validity.
 *
 * Entry points: hie_text_utf8_len (one sequence), hie_text_utf8_valid (a whole buffer). Pure functions over
 * (pointer, length); nothing is allocated, nothing fails other than by returning 0 / false.
 */
#ifndef HIENODE_CORE_TEXT_H
#define HIENODE_CORE_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Length (1 to 4) of the valid UTF-8 sequence at s[0..n), n >= 1; 0 when it is not one: a stray continuation
 * byte, a truncated sequence, an overlong form, a surrogate (U+D800..U+DFFF) or a code point above U+10FFFF.
 */
size_t hie_text_utf8_len(const unsigned char *s, size_t n);

/* true when s[0..n) is valid UTF-8 throughout (an empty buffer is). */
bool hie_text_utf8_valid(const char *s, size_t n);

#endif
