/*
 * notify_hl7.c — HL7 v2 ER7 parser (one explicit pass building the segment and field tables), accessors that
 * split repetitions/components/subcomponents on demand, escaping both ways, and the ACK builder.
 *
 * Entry points: notify_hl7_parse/free, notify_hl7_seg/seg_count/reps/at/get/get_text, notify_hl7_unescape,
 * notify_hl7_escape, notify_hl7_errtext, notify_hl7_ack_build. Errors as in notify_hl7.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "notify/notify_hl7.h"

/* --- parser ------------------------------------------------------------------------------------------ */

enum pstate {
	P_BOL,   /* between segments: CR/LF skipped (CRLF, LF, blank lines tolerated) */
	P_NAME,  /* inside the segment name */
	P_FIELD, /* inside a field */
};

struct parser {
	struct notify_hl7_msg *m;
	struct notify_hl7_limits lim;
	size_t fcap, scap;
};

static bool is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* A separator must be printable ASCII punctuation: not a letter or digit, not space, CR, LF or a control. */
static bool sep_ok(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !is_alnum(c);
}

static hie_err_t push_field(struct parser *ps, const char *p, size_t len)
{
	struct notify_hl7_msg *m = ps->m;
	if (len > ps->lim.max_field_len)
		return HIE_ETOOBIG;
	if (m->nsegs > 0 && m->fields && m->nfields > m->segs[m->nsegs - 1].first &&
	    m->segs[m->nsegs - 1].nfields >= ps->lim.max_fields)
		return HIE_ETOOBIG;
	if (m->nfields == ps->fcap) {
		size_t ncap = ps->fcap ? ps->fcap * 2 : 64;
		void *n = realloc(m->fields, ncap * sizeof *m->fields);
		if (!n)
			return HIE_ENOMEM;
		m->fields = n;
		ps->fcap = ncap;
	}
	m->fields[m->nfields].p = p;
	m->fields[m->nfields].len = len;
	m->nfields++;
	if (m->nsegs > 0)
		m->segs[m->nsegs - 1].nfields = m->nfields - m->segs[m->nsegs - 1].first - 1;
	return HIE_OK;
}

/* Starts a segment whose name is p[0..len); the name becomes field 0. */
static hie_err_t push_segment(struct parser *ps, const char *p, size_t len)
{
	struct notify_hl7_msg *m = ps->m;
	if (len != 3)
		return HIE_EPARSE;
	for (size_t i = 0; i < 3; i++)
		if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9')))
			return HIE_EPARSE;
	if (m->nsegs >= ps->lim.max_segments)
		return HIE_ETOOBIG;
	if (m->nsegs == ps->scap) {
		size_t ncap = ps->scap ? ps->scap * 2 : 16;
		void *n = realloc(m->segs, ncap * sizeof *m->segs);
		if (!n)
			return HIE_ENOMEM;
		m->segs = n;
		ps->scap = ncap;
	}
	struct notify_hl7_seg *s = &m->segs[m->nsegs++];
	memcpy(s->name, p, 3);
	s->name[3] = '\0';
	s->first = m->nfields;
	s->nfields = 0;
	return push_field(ps, p, len);
}

/* MSH-1 and MSH-2: the separators, from the message itself. */
static hie_err_t read_separators(struct notify_hl7_msg *m)
{
	const char *d = m->data;
	if (m->len < 8 || memcmp(d, "MSH", 3) != 0)
		return HIE_EPARSE;
	m->fs = d[3];
	size_t n = 0;
	while (4 + n < m->len && d[4 + n] != m->fs && d[4 + n] != '\r' && d[4 + n] != '\n')
		n++;
	/* Four encoding characters in v2.5.1; v2.7 adds a fifth (truncation), which we accept and ignore. */
	if (n < 4 || n > 5)
		return HIE_EPARSE;
	m->cs = d[4];
	m->rs = d[5];
	m->ec = d[6];
	m->ss = d[7];
	const char all[6] = {m->fs, m->cs, m->rs, m->ec, m->ss, n == 5 ? d[8] : 0};
	size_t k = n + 1;
	for (size_t i = 0; i < k; i++) {
		if (!sep_ok((unsigned char)all[i]))
			return HIE_EPARSE;
		for (size_t j = i + 1; j < k; j++)
			if (all[i] == all[j])
				return HIE_EPARSE;
	}
	return HIE_OK;
}

hie_err_t notify_hl7_parse(const char *data, size_t len, const struct notify_hl7_limits *lim, struct notify_hl7_msg *m)
{
	memset(m, 0, sizeof *m);
	struct parser ps = {.m = m};
	if (lim)
		ps.lim = *lim;
	if (!ps.lim.max_size)
		ps.lim.max_size = NOTIFY_HL7_MAX_SIZE;
	if (!ps.lim.max_segments)
		ps.lim.max_segments = NOTIFY_HL7_MAX_SEGMENTS;
	if (!ps.lim.max_fields)
		ps.lim.max_fields = NOTIFY_HL7_MAX_FIELDS;
	if (!ps.lim.max_field_len)
		ps.lim.max_field_len = NOTIFY_HL7_MAX_FIELD_LEN;
	if (!data)
		return HIE_EINVAL;
	if (len > ps.lim.max_size)
		return HIE_ETOOBIG;
	m->data = data;
	m->len = len;
	hie_err_t err = read_separators(m);
	if (err)
		return err;

	enum pstate st = P_BOL;
	size_t start = 0; /* of the current name or field */
	for (size_t i = 0; i < len && !err; i++) {
		unsigned char c = (unsigned char)data[i];
		bool eol = c == '\r' || c == '\n';
		/* NUL would cut C strings later; 0x0B and 0x1C are MLLP framing and never content. */
		if (c == 0 || c == 0x0b || c == 0x1c)
			return HIE_EPARSE;
		switch (st) {
		case P_BOL:
			if (eol)
				break;
			if (ps.lim.msh_only && m->nsegs == 1)
				return HIE_OK;
			start = i;
			st = P_NAME;
			/* fall through */
		case P_NAME:
			if (c == (unsigned char)m->fs || eol) {
				err = push_segment(&ps, data + start, i - start);
				/* MSH-1 is the field separator itself; MSH-2 then starts right after it. */
				if (!err && c == (unsigned char)m->fs && strcmp(m->segs[m->nsegs - 1].name, "MSH") == 0)
					err = push_field(&ps, data + i, 1);
				start = i + 1;
				st = eol ? P_BOL : P_FIELD;
			} else if (i - start >= 3) {
				return HIE_EPARSE;
			}
			break;
		case P_FIELD:
			if (c == (unsigned char)m->fs || eol) {
				err = push_field(&ps, data + start, i - start);
				start = i + 1;
				if (eol)
					st = P_BOL;
			} else if (i - start >= ps.lim.max_field_len) {
				return HIE_ETOOBIG;
			}
			break;
		}
	}
	if (!err && st == P_NAME)
		err = push_segment(&ps, data + start, len - start);
	else if (!err && st == P_FIELD)
		err = push_field(&ps, data + start, len - start);
	if (!err && (m->nsegs == 0 || strcmp(m->segs[0].name, "MSH") != 0))
		err = HIE_EPARSE;
	return err;
}

void notify_hl7_free(struct notify_hl7_msg *m)
{
	if (!m)
		return;
	free(m->segs);
	free(m->fields);
	m->segs = NULL;
	m->fields = NULL;
	m->nsegs = m->nfields = 0;
}

/* --- access ------------------------------------------------------------------------------------------ */

const struct notify_hl7_seg *notify_hl7_seg(const struct notify_hl7_msg *m, const char *name, size_t occ)
{
	if (!name || occ == 0)
		return NULL;
	for (size_t i = 0; i < m->nsegs; i++)
		if (strcmp(m->segs[i].name, name) == 0 && --occ == 0)
			return &m->segs[i];
	return NULL;
}

size_t notify_hl7_seg_count(const struct notify_hl7_msg *m, const char *name)
{
	size_t n = 0;
	for (size_t i = 0; i < m->nsegs; i++)
		n += strcmp(m->segs[i].name, name) == 0;
	return n;
}

/* The n-th (1-based) piece of s split on sep; empty (pointing at the end of s) when there are fewer. */
static struct notify_hl7_span piece(struct notify_hl7_span s, char sep, size_t n)
{
	size_t b = 0;
	for (size_t i = 0; i <= s.len; i++) {
		if (i == s.len || s.p[i] == sep) {
			if (--n == 0)
				return (struct notify_hl7_span){s.p + b, i - b};
			b = i + 1;
		}
	}
	return (struct notify_hl7_span){s.p + s.len, 0};
}

static bool is_msh_sep_field(const struct notify_hl7_seg *s, size_t field)
{
	return field >= 1 && field <= 2 && strcmp(s->name, "MSH") == 0;
}

size_t notify_hl7_reps(const struct notify_hl7_msg *m, const struct notify_hl7_seg *s, size_t field)
{
	if (!s || field == 0 || field > s->nfields)
		return 0;
	struct notify_hl7_span f = m->fields[s->first + field];
	if (f.len == 0)
		return 0;
	if (is_msh_sep_field(s, field))
		return 1;
	size_t n = 1;
	for (size_t i = 0; i < f.len; i++)
		n += f.p[i] == m->rs;
	return n;
}

struct notify_hl7_span notify_hl7_at(const struct notify_hl7_msg *m, const struct notify_hl7_seg *s, size_t field,
				     size_t rep, size_t comp, size_t sub)
{
	struct notify_hl7_span none = {m->data, 0};
	if (!s || field > s->nfields)
		return none;
	struct notify_hl7_span f = m->fields[s->first + field];
	if (field == 0 || is_msh_sep_field(s, field))
		return rep <= 1 && comp <= 1 && sub <= 1 ? f : none;
	if (rep)
		f = piece(f, m->rs, rep);
	if (comp)
		f = piece(f, m->cs, comp);
	if (sub)
		f = piece(f, m->ss, sub);
	return f;
}

hie_err_t notify_hl7_get(const struct notify_hl7_msg *m, const char *seg, size_t occ, size_t field, size_t rep,
			 size_t comp, size_t sub, const char **p, size_t *len)
{
	const struct notify_hl7_seg *s = notify_hl7_seg(m, seg, occ);
	struct notify_hl7_span v = notify_hl7_at(m, s, field, rep, comp, sub);
	*p = v.p;
	*len = v.len;
	return s ? HIE_OK : HIE_ENOTFOUND;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* One escape sequence seq[0..n) (between the escape characters). */
static hie_err_t unescape_seq(const struct notify_hl7_msg *m, const char *seq, size_t n, struct hie_buf *out)
{
	if (n == 0)
		return HIE_EPARSE;
	if (n == 1) {
		switch (seq[0]) {
		case 'F': return hie_buf_add(out, &m->fs, 1);
		case 'S': return hie_buf_add(out, &m->cs, 1);
		case 'T': return hie_buf_add(out, &m->ss, 1);
		case 'R': return hie_buf_add(out, &m->rs, 1);
		case 'E': return hie_buf_add(out, &m->ec, 1);
		default: break;
		}
	}
	if (seq[0] == 'X') {
		if (n < 3 || (n - 1) % 2)
			return HIE_EPARSE;
		for (size_t i = 1; i < n; i += 2) {
			int hi = hexval(seq[i]), lo = hexval(seq[i + 1]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return HIE_EPARSE;
			char b = (char)(hi * 16 + lo);
			hie_err_t err = hie_buf_add(out, &b, 1);
			if (err)
				return err;
		}
		return HIE_OK;
	}
	/* \H\ \N\ (highlighting), \.br\ and other formatting, \Cxxyy\ \Mxxyyzz\ (character sets), \Zxx\ (local):
	 * they carry no characters of the value. */
	return HIE_OK;
}

hie_err_t notify_hl7_unescape(const struct notify_hl7_msg *m, const char *p, size_t len, struct hie_buf *out)
{
	size_t i = 0, run = 0;
	hie_err_t err = HIE_OK;
	while (i < len && !err) {
		if (p[i] != m->ec) {
			i++;
			run++;
			continue;
		}
		if (run)
			err = hie_buf_add(out, p + i - run, run);
		run = 0;
		const char *end = memchr(p + i + 1, m->ec, len - i - 1);
		if (!end)
			return HIE_EPARSE;
		if (!err)
			err = unescape_seq(m, p + i + 1, (size_t)(end - (p + i + 1)), out);
		i = (size_t)(end - p) + 1;
	}
	if (!err && run)
		err = hie_buf_add(out, p + len - run, run);
	return err;
}

hie_err_t notify_hl7_get_text(const struct notify_hl7_msg *m, const char *seg, size_t occ, size_t field, size_t rep,
			      size_t comp, size_t sub, struct hie_buf *out)
{
	const char *p;
	size_t len;
	hie_buf_reset(out);
	hie_err_t err = notify_hl7_get(m, seg, occ, field, rep, comp, sub, &p, &len);
	if (err)
		return err;
	const struct notify_hl7_seg *s = notify_hl7_seg(m, seg, occ);
	if (is_msh_sep_field(s, field))
		return hie_buf_add(out, p, len); /* the separators are never escaped */
	return notify_hl7_unescape(m, p, len, out);
}

hie_err_t notify_hl7_escape(const char *p, size_t len, struct hie_buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	hie_err_t err = HIE_OK;
	size_t run = 0;
	for (size_t i = 0; i < len && !err; i++) {
		unsigned char c = (unsigned char)p[i];
		const char *rep = NULL;
		char x[6];
		switch (c) {
		case '|': rep = "\\F\\"; break;
		case '^': rep = "\\S\\"; break;
		case '~': rep = "\\R\\"; break;
		case '\\': rep = "\\E\\"; break;
		case '&': rep = "\\T\\"; break;
		default:
			if (c < 0x20 || c == 0x7f) {
				x[0] = '\\', x[1] = 'X', x[2] = hex[c >> 4], x[3] = hex[c & 15], x[4] = '\\', x[5] = 0;
				rep = x;
			}
		}
		if (!rep) {
			run++;
			continue;
		}
		if (run)
			err = hie_buf_add(out, p + i - run, run);
		run = 0;
		if (!err)
			err = hie_buf_addstr(out, rep);
	}
	if (!err && run)
		err = hie_buf_add(out, p + len - run, run);
	return err;
}

/* --- ACK ----------------------------------------------------------------------------------------------- */

const char *notify_hl7_errtext(int code)
{
	switch (code) {
	case 0: return "Message accepted";
	case 100: return "Segment sequence error";
	case 101: return "Required field missing";
	case 102: return "Data type error";
	case 103: return "Table value not found";
	case 200: return "Unsupported message type";
	case 201: return "Unsupported event code";
	case 202: return "Unsupported processing id";
	case 203: return "Unsupported version id";
	case 204: return "Unknown key identifier";
	case 205: return "Duplicate key identifier";
	case 206: return "Application record locked";
	case 207: return "Application internal error";
	default: return "";
	}
}

/* Appends one raw span of orig, unescaped with orig's escapes and escaped with ours; a malformed escape
 * gives an empty value (the ACK is owed whatever the sender wrote). */
static hie_err_t reescape(const struct notify_hl7_msg *orig, struct notify_hl7_span v, struct hie_buf *out)
{
	struct hie_buf tmp;
	hie_buf_init(&tmp, v.len + 1);
	hie_err_t err = notify_hl7_unescape(orig, v.p, v.len, &tmp);
	if (err == HIE_EPARSE) {
		err = HIE_OK;
		hie_buf_reset(&tmp);
	}
	if (!err)
		err = notify_hl7_escape(tmp.data ? tmp.data : "", tmp.len, out);
	hie_buf_free(&tmp);
	return err;
}

/* An MSH field (first repetition) with its components and subcomponents rewritten in our separators, in one
 * linear pass (a field of 64 KiB of separators must not cost a quadratic walk). */
static hie_err_t copy_msh_field(const struct notify_hl7_msg *orig, size_t field, struct hie_buf *out)
{
	if (!orig)
		return HIE_OK;
	struct notify_hl7_span rep = notify_hl7_at(orig, &orig->segs[0], field, 1, 0, 0);
	hie_err_t err = HIE_OK;
	size_t b = 0;
	for (size_t i = 0; i <= rep.len && !err; i++) {
		if (i < rep.len && rep.p[i] != orig->cs && rep.p[i] != orig->ss)
			continue;
		err = reescape(orig, (struct notify_hl7_span){rep.p + b, i - b}, out);
		if (!err && i < rep.len)
			err = hie_buf_add(out, rep.p[i] == orig->cs ? "^" : "&", 1);
		b = i + 1;
	}
	return err;
}

/* One component of an MSH field, or dflt when orig has none. */
static hie_err_t copy_msh_comp(const struct notify_hl7_msg *orig, size_t field, size_t comp, const char *dflt,
			       struct hie_buf *out)
{
	struct notify_hl7_span v = {dflt, strlen(dflt)};
	if (orig) {
		struct notify_hl7_span o = notify_hl7_at(orig, &orig->segs[0], field, 1, comp, 0);
		if (o.len)
			return reescape(orig, o, out);
	}
	return notify_hl7_escape(v.p, v.len, out);
}

static hie_err_t ack_msh(const struct notify_hl7_msg *orig, const struct notify_hl7_ack *a, struct hie_buf *out)
{
	static const size_t swapped[] = {5, 6, 3, 4}; /* receiving app/facility become sending, and back */
	hie_err_t err = hie_buf_addstr(out, "MSH|^~\\&");
	for (size_t i = 0; i < 4 && !err; i++) {
		err = hie_buf_add(out, "|", 1);
		if (!err)
			err = copy_msh_field(orig, swapped[i], out);
	}
	if (!err)
		err = hie_buf_add(out, "|", 1);
	if (!err && a->timestamp)
		err = notify_hl7_escape(a->timestamp, strlen(a->timestamp), out);
	if (!err)
		err = hie_buf_addstr(out, "||ACK");
	struct notify_hl7_span trig = orig ? notify_hl7_at(orig, &orig->segs[0], 9, 1, 2, 0) : (struct notify_hl7_span){"", 0};
	if (!err && trig.len) {
		err = hie_buf_add(out, "^", 1);
		if (!err)
			err = reescape(orig, trig, out);
		if (!err)
			err = hie_buf_addstr(out, "^ACK");
	}
	if (!err)
		err = hie_buf_add(out, "|", 1);
	if (!err && a->control_id)
		err = notify_hl7_escape(a->control_id, strlen(a->control_id), out);
	if (!err)
		err = hie_buf_add(out, "|", 1);
	if (!err)
		err = copy_msh_comp(orig, 11, 1, "P", out);
	if (!err)
		err = hie_buf_add(out, "|", 1);
	if (!err)
		err = copy_msh_comp(orig, 12, 1, "2.5.1", out);
	if (!err)
		err = hie_buf_add(out, "\r", 1);
	return err;
}

static hie_err_t ack_err(const struct notify_hl7_ack *a, struct hie_buf *out)
{
	hie_err_t err = hie_buf_addstr(out, "ERR||");
	if (!err && a->err_seg && a->err_seg[0]) {
		err = notify_hl7_escape(a->err_seg, strlen(a->err_seg), out);
		if (!err && (a->err_seg_occ > 0 || a->err_field > 0))
			err = hie_buf_addf(out, "^%d", a->err_seg_occ > 0 ? a->err_seg_occ : 1);
		if (!err && a->err_field > 0)
			err = hie_buf_addf(out, "^%d", a->err_field);
	}
	if (!err)
		err = hie_buf_addf(out, "|%d^", a->err);
	if (!err)
		err = notify_hl7_escape(notify_hl7_errtext(a->err), strlen(notify_hl7_errtext(a->err)), out);
	if (!err)
		err = hie_buf_addstr(out, "^HL70357|E");
	if (!err && a->err_text && a->err_text[0]) {
		err = hie_buf_addstr(out, "||||");
		if (!err)
			err = notify_hl7_escape(a->err_text, strlen(a->err_text), out);
	}
	if (!err)
		err = hie_buf_add(out, "\r", 1);
	return err;
}

hie_err_t notify_hl7_ack_build(const struct notify_hl7_msg *orig, const struct notify_hl7_ack *a, struct hie_buf *out)
{
	if (!a || !a->code || (strcmp(a->code, "AA") != 0 && strcmp(a->code, "AE") != 0 && strcmp(a->code, "AR") != 0))
		return HIE_EINVAL;
	if (orig && (orig->nsegs == 0 || strcmp(orig->segs[0].name, "MSH") != 0))
		orig = NULL;
	hie_err_t err = ack_msh(orig, a, out);
	if (!err)
		err = hie_buf_addf(out, "MSA|%s|", a->code);
	if (!err && orig)
		err = reescape(orig, notify_hl7_at(orig, &orig->segs[0], 10, 1, 0, 0), out);
	if (!err)
		err = hie_buf_add(out, "\r", 1);
	if (!err && a->err)
		err = ack_err(a, out);
	return err;
}
