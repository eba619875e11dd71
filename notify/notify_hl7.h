/*
 * notify_hl7.h — HL7 v2 (ER7, "pipe and hat") message parser and ACK builder.
 *
 * notify_hl7_parse() splits a message into segments and fields in one explicit pass over (pointer, length),
 * with the separators taken from the message itself (MSH-1 field separator, MSH-2 component, repetition,
 * escape and subcomponent characters). Segments end with CR; CRLF and bare LF are tolerated. The parsed
 * message points into the caller's bytes, which must outlive it. Repetitions, components and subcomponents
 * are split on access; escape sequences (\F\ \S\ \T\ \R\ \E\ \Xhh..\) are undone only by the text accessor.
 *
 * Positions follow HL7 notation and are 1-based: PID-3.4.2 is field 3, component 4, subcomponent 2 of the
 * first PID. A repetition, component or subcomponent of 0 means "the whole thing" at that level. For MSH,
 * field 1 is the field separator and field 2 the encoding characters, as in the standard.
 *
 * Errors: HIE_EPARSE (malformed: no MSH, bad separators, bad segment name, NUL or MLLP framing bytes inside),
 * HIE_ETOOBIG (a cap of struct notify_hl7_limits), HIE_ENOMEM, HIE_ENOTFOUND (accessor: no such segment).
 */
#ifndef HIENODE_NOTIFY_HL7_H
#define HIENODE_NOTIFY_HL7_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core_buf.h"
#include "core/core_err.h"

#define NOTIFY_HL7_MAX_SIZE 1048576u   /* default cap on the whole message */
#define NOTIFY_HL7_MAX_SEGMENTS 1000u
#define NOTIFY_HL7_MAX_FIELDS 256u     /* per segment, the segment name not counted */
#define NOTIFY_HL7_MAX_FIELD_LEN 65536u

struct notify_hl7_limits {
	size_t max_size;      /* 0 → NOTIFY_HL7_MAX_SIZE */
	size_t max_segments;  /* 0 → NOTIFY_HL7_MAX_SEGMENTS */
	size_t max_fields;    /* 0 → NOTIFY_HL7_MAX_FIELDS */
	size_t max_field_len; /* 0 → NOTIFY_HL7_MAX_FIELD_LEN */
	bool msh_only;        /* stop after the first segment (to answer a message whose body failed to parse) */
};

struct notify_hl7_span {
	const char *p;
	size_t len;
};

struct notify_hl7_seg {
	char name[4];         /* "MSH", "PID", "ZPI" */
	size_t first;         /* index of field 0 (the name) in the message's field table */
	size_t nfields;       /* fields after the name */
};

struct notify_hl7_msg {
	const char *data;
	size_t len;
	char fs, cs, rs, ec, ss;         /* field, component, repetition, escape, subcomponent separators */
	struct notify_hl7_seg *segs;     /* owned */
	size_t nsegs;
	struct notify_hl7_span *fields;  /* owned; per segment: name, then fields 1..nfields */
	size_t nfields;
};

/*
 * Parses data[0..len) into *m (which the caller frees with notify_hl7_free, also after a failure).
 * lim may be NULL for the defaults. On failure *m holds nothing usable.
 */
hie_err_t notify_hl7_parse(const char *data, size_t len, const struct notify_hl7_limits *lim, struct notify_hl7_msg *m);
void notify_hl7_free(struct notify_hl7_msg *m);

/* The occ-th (1-based) segment with this name, or NULL. */
const struct notify_hl7_seg *notify_hl7_seg(const struct notify_hl7_msg *m, const char *name, size_t occ);
/* How many segments have this name. */
size_t notify_hl7_seg_count(const struct notify_hl7_msg *m, const char *name);
/* Repetitions present in a field (0 when the field is empty or absent). */
size_t notify_hl7_reps(const struct notify_hl7_msg *m, const struct notify_hl7_seg *s, size_t field);

/*
 * The raw (still escaped) bytes at segment s, field, rep, comp, sub; a position that is not present gives an
 * empty span (never a NULL pointer). The span points into the message's data.
 */
struct notify_hl7_span notify_hl7_at(const struct notify_hl7_msg *m, const struct notify_hl7_seg *s, size_t field,
				     size_t rep, size_t comp, size_t sub);
/* The same by segment name and occurrence; HIE_ENOTFOUND when that segment does not exist. */
hie_err_t notify_hl7_get(const struct notify_hl7_msg *m, const char *seg, size_t occ, size_t field, size_t rep,
			 size_t comp, size_t sub, const char **p, size_t *len);
/*
 * The value with escapes undone, into out (reset first; out->max caps it: HIE_ETOOBIG). Formatting escapes
 * (\H\ \N\ \.br\ …) and character-set escapes are dropped; \X..\ must decode to bytes other than NUL.
 * HIE_EPARSE for an unterminated or malformed escape; HIE_ENOTFOUND when the segment does not exist.
 */
hie_err_t notify_hl7_get_text(const struct notify_hl7_msg *m, const char *seg, size_t occ, size_t field, size_t rep,
			      size_t comp, size_t sub, struct hie_buf *out);
/* Undoes the escapes of a raw span of m (as above), appending to out. */
hie_err_t notify_hl7_unescape(const struct notify_hl7_msg *m, const char *p, size_t len, struct hie_buf *out);
/*
 * Appends text escaped with the standard separators |^~\& (\F\ \S\ \R\ \E\ \T\, and \Xhh\ for control
 * bytes such as CR and LF), so that a value cannot break out of its field or segment.
 */
hie_err_t notify_hl7_escape(const char *p, size_t len, struct hie_buf *out);

/* Table 0357 message error condition codes used in ERR-3. */
enum notify_hl7_errcode {
	NOTIFY_HL7_E_SEGMENT_SEQUENCE = 100,
	NOTIFY_HL7_E_REQUIRED_MISSING = 101,
	NOTIFY_HL7_E_DATA_TYPE = 102,
	NOTIFY_HL7_E_TABLE_VALUE = 103,
	NOTIFY_HL7_E_UNSUPPORTED_TYPE = 200,
	NOTIFY_HL7_E_UNSUPPORTED_EVENT = 201,
	NOTIFY_HL7_E_INTERNAL = 207,
};
/* The table 0357 text for a code ("Required field missing"); "" for unknown codes. Static. */
const char *notify_hl7_errtext(int code);

struct notify_hl7_ack {
	const char *code;        /* "AA", "AE", "AR" */
	const char *control_id;  /* the ACK's own MSH-10 */
	const char *timestamp;   /* MSH-7, e.g. "20260101120000+0000" */
	int err;                 /* table 0357 code for ERR-3; 0 = no ERR segment */
	const char *err_seg;     /* ERR-2 location: segment id ("PID"), NULL or "" = unknown */
	int err_seg_occ;         /* ERR-2.2 sequence (1-based), 0 = unknown */
	int err_field;           /* ERR-2.3 field position, 0 = unknown */
	const char *err_text;    /* ERR-8 user message, NULL = none */
};

/*
 * Builds the acknowledgement of orig (NULL when not even the MSH could be read) into out (appended, not
 * framed): MSH with sending and receiving application/facility swapped, MSH-9 "ACK^<trigger>^ACK", the
 * original processing id and version; MSA (code, original MSH-10); ERR when a->err is set. Segments end
 * with CR. Values taken from orig are unescaped and escaped again with the standard separators |^~\&.
 * HIE_EINVAL for a bad code; HIE_ETOOBIG/HIE_ENOMEM from out.
 */
hie_err_t notify_hl7_ack_build(const struct notify_hl7_msg *orig, const struct notify_hl7_ack *a, struct hie_buf *out);

#endif
