/*
 * smtp_fuzz.c — libFuzzer target for the SMTP receiver's parsers: the input is a whole client session;
 * each line (CRLF or LF ended, as core_net's readline hands them over) goes through hisp_smtp_cmd_parse,
 * MAIL/RCPT arguments through hisp_smtp_parse_path, and the whole input once more as a path. Checks:
 * the argument lies inside the line, a parsed address is lower case, printable, at most 254 bytes with one
 * '@', SIZE is -1 or not negative, and a failed parse leaves an empty address.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hisp/hisp_smtp_in.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_path(const char *arg, size_t len, bool mail)
{
	char addr[HISP_SMTP_ADDR_MAX + 1];
	long long sz = 0;
	hie_err_t err = hisp_smtp_parse_path(arg, len, addr, sizeof addr, mail ? &sz : NULL);
	size_t n = strnlen(addr, sizeof addr);
	if (n > HISP_SMTP_ADDR_MAX)
		__builtin_trap();
	if (err) {
		if (n != 0 || (mail && sz != -1))
			__builtin_trap();
		if (err != HIE_EPARSE && err != HIE_EUNSUPPORTED)
			__builtin_trap();
		return;
	}
	if (mail && sz < -1)
		__builtin_trap();
	if (n == 0) {
		if (!mail) /* "<>" only for MAIL */
			__builtin_trap();
		return;
	}
	int ats = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)addr[i];
		if (c <= 0x20 || c >= 0x7f || (c >= 'A' && c <= 'Z'))
			__builtin_trap();
		ats += c == '@';
	}
	if (ats != 1 || addr[0] == '@' || addr[n - 1] == '@')
		__builtin_trap();
}

static void check_line(const char *line, size_t len)
{
	struct hisp_smtp_cmd cmd;
	hie_err_t err = hisp_smtp_cmd_parse(line, len, &cmd);
	if (err != HIE_OK && err != HIE_EPARSE)
		__builtin_trap();
	if (cmd.arg < line || cmd.arg + cmd.arglen > line + len)
		__builtin_trap();
	if (cmd.verb == HISP_SMTP_UNKNOWN && err)
		__builtin_trap();
	if (err)
		return;
	if (cmd.arglen && (cmd.arg[0] == ' ' || cmd.arg[cmd.arglen - 1] == ' '))
		__builtin_trap();
	if (cmd.verb == HISP_SMTP_MAIL || cmd.verb == HISP_SMTP_RCPT)
		check_path(cmd.arg, cmd.arglen, cmd.verb == HISP_SMTP_MAIL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && p[i] != '\n')
			continue;
		size_t len = i - start;
		if (len && p[start + len - 1] == '\r')
			len--;
		if (len <= HISP_SMTP_LINE_MAX)
			check_line(p + start, len);
		start = i + 1;
	}
	check_path(p, size, true);
	check_path(p, size, false);
	return 0;
}
