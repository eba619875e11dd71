/*
 * hl7_fuzz.c — libFuzzer target for notify_hl7: parses the input (full and MSH only, with small caps so the
 * limit paths are reachable), reads every field through every accessor, and builds an ACK that must parse.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "notify/notify_hl7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct notify_hl7_msg *m, const char *base, size_t size, struct hie_buf *b)
{
	for (size_t s = 0; s < m->nsegs; s++) {
		const struct notify_hl7_seg *seg = &m->segs[s];
		for (size_t f = 0; f <= seg->nfields + 1; f++) {
			size_t reps = notify_hl7_reps(m, seg, f);
			for (size_t r = 0; r <= reps + 1 && r < 4; r++) {
				for (size_t c = 0; c < 4; c++) {
					for (size_t sc = 0; sc < 3; sc++) {
						struct notify_hl7_span v = notify_hl7_at(m, seg, f, r, c, sc);
						if (v.p < base || v.p + v.len > base + size)
							__builtin_trap();
					}
				}
				hie_buf_reset(b);
				(void)notify_hl7_get_text(m, seg->name, 1, f, r, 1, 0, b);
			}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct notify_hl7_limits lim = {
		.max_size = 65536, .max_segments = 50, .max_fields = 40, .max_field_len = 2048,
	};
	const char *p = (const char *)data;
	struct hie_buf b, ack;
	hie_buf_init(&b, 4096);
	hie_buf_init(&ack, 1 << 20);
	for (int pass = 0; pass < 2; pass++) {
		struct notify_hl7_limits l = lim;
		l.msh_only = pass == 1;
		struct notify_hl7_msg m;
		if (notify_hl7_parse(p, size, &l, &m) == HIE_OK) {
			walk(&m, p, size, &b);
			struct notify_hl7_ack a = {.code = "AE", .control_id = "C1", .timestamp = "20260101000000",
						   .err = 102, .err_seg = "PID", .err_seg_occ = 1, .err_field = 3,
						   .err_text = "x"};
			hie_buf_reset(&ack);
			if (notify_hl7_ack_build(&m, &a, &ack) != HIE_OK)
				__builtin_trap();
			/* What we send must itself be a well-formed message of exactly MSH, MSA, ERR. */
			struct notify_hl7_msg back;
			if (notify_hl7_parse(ack.data, ack.len, NULL, &back) != HIE_OK || back.nsegs != 3)
				__builtin_trap();
			notify_hl7_free(&back);
		}
		notify_hl7_free(&m);
	}
	hie_buf_free(&b);
	hie_buf_free(&ack);
	return 0;
}
