/*
 * notify_adt.c — ITI-8 (Patient Identity Feed, HL7 v2.5.1) into the registry's patient index.
 *
 * Entry point: notify_adt_process(). Routing on MSH-9:
 *   ADT^A01/A04/A05/A08   every PID-3 repetition with an ISO assigning authority (id^^^&oid&ISO) is created or
 *                         updated with PID-5 (family^given), PID-7 (birth date), PID-8 (gender), PID-11 (address)
 *   ADT^A40               for each PID/MRG pair: the PID-3 ISO ids are upserted, then every ISO id of MRG-1 is
 *                         merged into the first ISO id of PID-3
 *   ADT^A02/A03/A06/A07   valid ADT events whose notifications come later: accepted (AA) and recorded
 *   other ADT triggers    AR 201;  other message types (ORU, …): AR 200
 *
 * Answers (ERR-3 from table 0357, ERR-2 the location): a message that cannot be parsed: AR 100 (malformed) or
 * AR 207 (a parser cap); MSH-9/MSH-10 missing: AR 101; MSH-3/4/10 not usable as a key: AR 102. Content errors
 * are AE: no PID (A40: no MRG) 100; PID-3 (MRG-1) empty 101; PID-3 without an ISO id, a malformed id, a bad
 * date or an over-long or non-UTF-8 text 102; PID-8 outside table 0001 103. PID-8 "A" (ambiguous) and "N"
 * (not applicable) are valid table 0001 codes that the index cannot hold: they are stored as "U". The HL7
 * null "" is treated as "not sent" (the index keeps its value). The database down or failing: AE 207, never AA
 * (the sender retries).
 *
 * Duplicates: every accepted message is recorded in hl7_messages (sending application, facility, control id)
 * in the same transaction as the patient change; a message whose key is already there is answered with the
 * stored code and not processed again. Only accepted (AA) messages are recorded: a rejected one changed
 * nothing, and a retransmission gets the same answer by being evaluated again. The duplicate check comes
 * before the content checks, so a retransmission of an accepted message is AA whatever it now contains.
 */
#include <stdlib.h>
#include <string.h>

#include "core/core_log.h"
#include "notify/notify.h"
#include "notify/notify_adt.h"
#include "registry/registry.h"

#define ADT_MAX_IDS 16     /* ISO ids per PID-3 / MRG-1 that we act on */
#define ADT_MAX_PAIRS 16   /* PID/MRG pairs of one A40 */
#define ADT_KEY_MAX 256    /* bytes of MSH-3, MSH-4, MSH-10 used as the duplicate key */
#define ADT_TEXT_MAX 4096  /* cap of one unescaped value */

enum adt_kind { ADT_UPSERT, ADT_MERGE, ADT_RECORD };

/* An error to answer: code (table 0357), location, and AE or AR. */
struct adt_error {
	int code;
	const char *ack;   /* "AE" or "AR" */
	const char *seg;
	int occ, field;
	const char *text;  /* static */
};

struct adt_merge {
	struct registry_pid survivor, old;
};

struct adt_work {
	const struct notify_hl7_msg *m;
	enum adt_kind kind;
	char app[ADT_KEY_MAX + 1], fac[ADT_KEY_MAX + 1], ctrl[ADT_KEY_MAX + 1];
	struct registry_patient pats[ADT_MAX_IDS * ADT_MAX_PAIRS];
	size_t npats;
	struct adt_merge merges[ADT_MAX_IDS * ADT_MAX_PAIRS];
	size_t nmerges;
	struct adt_error content;  /* a content error found before the database (answered after the duplicate check) */
	/* outcome of the transaction */
	bool duplicate;
	char dup_code[3];
	bool registry_rejected;
};

static void set_err(struct adt_error *e, const char *ack, int code, const char *seg, int occ, int field, const char *text)
{
	*e = (struct adt_error){.code = code, .ack = ack, .seg = seg, .occ = occ, .field = field, .text = text};
}

/* --- validation helpers ---------------------------------------------------------------------------------- */

/* Valid UTF-8 without C0/C1 controls and DEL (keys and text stored in PostgreSQL). */
static bool utf8_text_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		unsigned c = p[i];
		if (c < 0x20 || c == 0x7f)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t k = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
		if (k == 0 || i + k >= n)
			return false;
		unsigned cp = c & (0x3f >> k);
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff) ||
		    (cp >= 0x80 && cp < 0xa0))
			return false;
		i += k + 1;
	}
	return true;
}

/* Copies an unescaped value into a fixed field of struct registry_patient; false when it does not fit. */
static bool put(char *dst, size_t dstlen, const struct hie_buf *v)
{
	const char *s = hie_buf_str(v);
	size_t n = v->len;
	if (n == 2 && s[0] == '"' && s[1] == '"')
		n = 0; /* HL7 null: "delete the value"; the index has no delete, so it means "not sent" here */
	if (n >= dstlen)
		return false;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return true;
}

/* TS/DTM: YYYYMMDD[HH[MM[SS[.S{1,4}]]]][+/-ZZZZ]; keeps the date. */
static bool birth_date(const struct hie_buf *v, char out[9])
{
	const char *s = hie_buf_str(v);
	size_t n = v->len, i = 0;
	while (i < n && i < 14 && s[i] >= '0' && s[i] <= '9')
		i++;
	if (i < 8 || (i - 8) % 2)
		return false;
	if (i < n && s[i] == '.' && i == 14) {
		size_t f = ++i;
		while (i < n && i - f < 4 && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == f)
			return false;
	}
	if (i < n && (s[i] == '+' || s[i] == '-')) {
		if (n - i != 5)
			return false;
		for (size_t j = i + 1; j < n; j++)
			if (s[j] < '0' || s[j] > '9')
				return false;
		i = n;
	}
	if (i != n)
		return false;
	memcpy(out, s, 8);
	out[8] = '\0';
	return true;
}

/* Table 0001 (administrative sex). */
static bool gender(const struct hie_buf *v, char out[2])
{
	const char *s = hie_buf_str(v);
	out[0] = out[1] = '\0';
	if (v->len == 0 || (v->len == 2 && s[0] == '"' && s[1] == '"'))
		return true;
	if (v->len != 1)
		return false;
	switch (s[0]) {
	case 'M': case 'F': case 'O': case 'U': out[0] = s[0]; return true;
	case 'A': case 'N': out[0] = 'U'; return true;
	default: return false;
	}
}

/* --- extraction ---------------------------------------------------------------------------------------- */

/*
 * The ISO ids of a repeating CX field (PID-3, MRG-1): id^^^&oid&ISO. Repetitions with another kind of
 * assigning authority (local MRNs) are skipped. 101 when the field is empty, 102 when no ISO id is usable.
 */
static bool iso_ids(const struct notify_hl7_msg *m, const char *seg, size_t occ, size_t field, struct registry_pid *ids,
		    size_t *n, struct adt_error *e)
{
	const struct notify_hl7_seg *s = notify_hl7_seg(m, seg, occ);
	size_t reps = notify_hl7_reps(m, s, field);
	struct hie_buf id, oid, type;
	bool ok = true;
	hie_buf_init(&id, ADT_TEXT_MAX);
	hie_buf_init(&oid, ADT_TEXT_MAX);
	hie_buf_init(&type, ADT_TEXT_MAX);
	*n = 0;
	for (size_t r = 1; r <= reps && ok; r++) {
		if (notify_hl7_get_text(m, seg, occ, field, r, 4, 3, &type) || strcmp(hie_buf_str(&type), "ISO") != 0)
			continue;
		struct registry_patient probe = {0};
		if (*n == ADT_MAX_IDS || notify_hl7_get_text(m, seg, occ, field, r, 1, 0, &id) ||
		    notify_hl7_get_text(m, seg, occ, field, r, 4, 2, &oid) || !put(probe.pid.id, sizeof probe.pid.id, &id) ||
		    !put(probe.pid.oid, sizeof probe.pid.oid, &oid) || registry_patient_validate(&probe, NULL)) {
			ok = false;
			break;
		}
		ids[(*n)++] = probe.pid;
	}
	if (ok && *n == 0)
		ok = false;
	if (!ok)
		set_err(e, "AE", reps == 0 ? NOTIFY_HL7_E_REQUIRED_MISSING : NOTIFY_HL7_E_DATA_TYPE, seg, (int)occ, (int)field,
			reps == 0 ? "patient identifier missing" : "no usable identifier with an ISO assigning authority");
	hie_buf_free(&id);
	hie_buf_free(&oid);
	hie_buf_free(&type);
	return ok;
}

struct text_field {
	size_t field, rep, comp, sub;
	size_t off, size; /* member of struct registry_patient */
};

#define TF(f, r, c, s, member)                                                                                     \
	{ f, r, c, s, offsetof(struct registry_patient, member), sizeof(((struct registry_patient *)0)->member) }
static const struct text_field text_fields[] = {
	TF(5, 1, 1, 1, family), TF(5, 1, 2, 0, given), TF(11, 1, 3, 0, city),
	TF(11, 1, 4, 0, state), TF(11, 1, 5, 0, postal_code), TF(11, 1, 6, 0, country),
};

/* The registry's field name → the PID field it came from. */
static int pid_field_of(const char *member)
{
	static const struct { const char *name; int field; } map[] = {
		{"pid", 3}, {"family", 5}, {"given", 5}, {"birth_date", 7}, {"gender", 8}, {"street", 11},
		{"city", 11}, {"state", 11}, {"postal_code", 11}, {"country", 11},
	};
	for (size_t i = 0; member && i < sizeof map / sizeof map[0]; i++)
		if (strcmp(map[i].name, member) == 0)
			return map[i].field;
	return 0;
}

/* PID-11.1.1 street, with PID-11.2 (other designation) after a comma. */
static bool street(const struct notify_hl7_msg *m, size_t occ, struct hie_buf *v, struct registry_patient *p)
{
	struct hie_buf other;
	hie_buf_init(&other, ADT_TEXT_MAX);
	bool ok = !notify_hl7_get_text(m, "PID", occ, 11, 1, 1, 1, v) && put(p->street, sizeof p->street, v) &&
		  !notify_hl7_get_text(m, "PID", occ, 11, 1, 2, 0, &other);
	if (ok && other.len && !(other.len == 2 && memcmp(other.data, "\"\"", 2) == 0)) {
		size_t n = strlen(p->street);
		ok = n + (n ? 2 : 0) + other.len < sizeof p->street;
		if (ok)
			snprintf(p->street + n, sizeof p->street - n, "%s%s", n ? ", " : "", hie_buf_str(&other));
	}
	hie_buf_free(&other);
	return ok;
}

/* Demographics of the occ-th PID into tmpl (pid left empty). */
static bool demographics(const struct notify_hl7_msg *m, size_t occ, struct registry_patient *tmpl, struct adt_error *e)
{
	struct hie_buf v;
	hie_buf_init(&v, ADT_TEXT_MAX);
	bool ok = true;
	int field = 0, code = NOTIFY_HL7_E_DATA_TYPE;
	for (size_t i = 0; i < sizeof text_fields / sizeof text_fields[0] && ok; i++) {
		const struct text_field *t = &text_fields[i];
		ok = !notify_hl7_get_text(m, "PID", occ, t->field, t->rep, t->comp, t->sub, &v) &&
		     put((char *)tmpl + t->off, t->size, &v);
		field = (int)t->field;
	}
	if (ok && !street(m, occ, &v, tmpl)) {
		ok = false;
		field = 11;
	}
	if (ok) {
		field = 7;
		ok = !notify_hl7_get_text(m, "PID", occ, 7, 1, 1, 0, &v);
		if (ok && v.len && !(v.len == 2 && memcmp(v.data, "\"\"", 2) == 0))
			ok = birth_date(&v, tmpl->birth_date);
	}
	if (ok) {
		field = 8;
		ok = !notify_hl7_get_text(m, "PID", occ, 8, 1, 1, 0, &v);
		if (ok && !gender(&v, tmpl->gender)) {
			ok = false;
			code = NOTIFY_HL7_E_TABLE_VALUE;
		}
	}
	if (!ok)
		set_err(e, "AE", code, "PID", (int)occ, field,
			code == NOTIFY_HL7_E_TABLE_VALUE ? "administrative sex not in table 0001" : "bad value");
	hie_buf_free(&v);
	return ok;
}

/* Patients for every ISO id of the occ-th PID, validated. */
static bool patients_of(struct adt_work *w, size_t occ)
{
	struct registry_pid ids[ADT_MAX_IDS];
	size_t n;
	struct registry_patient tmpl = {0};
	if (!iso_ids(w->m, "PID", occ, 3, ids, &n, &w->content) || !demographics(w->m, occ, &tmpl, &w->content))
		return false;
	for (size_t i = 0; i < n; i++) {
		struct registry_patient *p = &w->pats[w->npats++];
		*p = tmpl;
		p->pid = ids[i];
		const char *bad = NULL;
		if (registry_patient_validate(p, &bad)) {
			set_err(&w->content, "AE", NOTIFY_HL7_E_DATA_TYPE, "PID", (int)occ, pid_field_of(bad), "bad value");
			return false;
		}
	}
	return true;
}

static bool same_pid(const struct registry_pid *a, const struct registry_pid *b)
{
	return strcmp(a->id, b->id) == 0 && strcmp(a->oid, b->oid) == 0;
}

static bool extract(struct adt_work *w)
{
	const struct notify_hl7_msg *m = w->m;
	if (w->kind == ADT_RECORD)
		return true;
	size_t pairs = w->kind == ADT_MERGE ? notify_hl7_seg_count(m, "MRG") : 1;
	if (notify_hl7_seg_count(m, "PID") < pairs || pairs == 0) {
		set_err(&w->content, "AE", NOTIFY_HL7_E_SEGMENT_SEQUENCE, pairs == 0 ? "MRG" : "PID", 0, 0,
			"required segment missing");
		return false;
	}
	if (pairs > ADT_MAX_PAIRS) {
		set_err(&w->content, "AE", NOTIFY_HL7_E_SEGMENT_SEQUENCE, "MRG", ADT_MAX_PAIRS + 1, 0, "too many merges");
		return false;
	}
	for (size_t k = 1; k <= pairs; k++) {
		size_t first = w->npats;
		if (!patients_of(w, k))
			return false;
		if (w->kind != ADT_MERGE)
			continue;
		struct registry_pid old[ADT_MAX_IDS];
		size_t n;
		if (!iso_ids(m, "MRG", k, 1, old, &n, &w->content))
			return false;
		for (size_t i = 0; i < n; i++) {
			if (same_pid(&old[i], &w->pats[first].pid)) {
				set_err(&w->content, "AE", NOTIFY_HL7_E_DATA_TYPE, "MRG", (int)k, 1, "merge of an id into itself");
				return false;
			}
			w->merges[w->nmerges++] = (struct adt_merge){.survivor = w->pats[first].pid, .old = old[i]};
		}
	}
	return true;
}

/* --- transaction --------------------------------------------------------------------------------------- */

static hie_err_t apply_tx(PGconn *tx, void *arg)
{
	struct adt_work *w = arg;
	const char *key[] = {w->app, w->fac, w->ctrl};
	PGresult *res = NULL;
	/* Re-run safe: hie_db_tx may call this again after a serialization failure. */
	w->duplicate = false;
	w->registry_rejected = false;
	hie_err_t err = hie_db_exec(tx,
				    "INSERT INTO hl7_messages (sending_app, sending_facility, control_id, ack_code)"
				    " VALUES ($1, $2, $3, 'AA') ON CONFLICT DO NOTHING",
				    3, key, &res);
	if (err)
		return err;
	bool inserted = strcmp(PQcmdTuples(res), "1") == 0;
	PQclear(res);
	if (!inserted) {
		err = hie_db_exec(tx,
				  "SELECT ack_code FROM hl7_messages WHERE sending_app = $1 AND sending_facility = $2"
				  " AND control_id = $3",
				  3, key, &res);
		if (err)
			return err;
		if (PQntuples(res) != 1) {
			PQclear(res);
			return HIE_EDB;
		}
		snprintf(w->dup_code, sizeof w->dup_code, "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
		w->duplicate = true;
		return HIE_OK; /* commits nothing new */
	}
	if (w->content.code)
		return HIE_EINVAL; /* rolls the key back: a rejected message is not recorded */
	for (size_t i = 0; i < w->npats && !err; i++)
		err = registry_patient_upsert(tx, &w->pats[i], NULL);
	for (size_t i = 0; i < w->nmerges && !err; i++)
		err = registry_patient_merge(tx, &w->merges[i].survivor, &w->merges[i].old);
	if (err == HIE_EINVAL)
		w->registry_rejected = true;
	return err;
}

/* --- message level ------------------------------------------------------------------------------------- */

/* MSH-3, MSH-4, MSH-10 as sent (escaped form: stable across retransmissions), checked to be storable text. */
static bool msh_key(const struct notify_hl7_msg *m, struct adt_work *w, struct adt_error *e)
{
	static const size_t fields[] = {3, 4, 10};
	char *dst[] = {w->app, w->fac, w->ctrl};
	for (size_t i = 0; i < 3; i++) {
		struct notify_hl7_span v = notify_hl7_at(m, &m->segs[0], fields[i], 0, 0, 0);
		if (fields[i] == 10 && v.len == 0) {
			set_err(e, "AR", NOTIFY_HL7_E_REQUIRED_MISSING, "MSH", 1, 10, "message control id missing");
			return false;
		}
		if (v.len > ADT_KEY_MAX || !utf8_text_ok(v.p, v.len)) {
			set_err(e, "AR", NOTIFY_HL7_E_DATA_TYPE, "MSH", 1, (int)fields[i], "bad value");
			return false;
		}
		memcpy(dst[i], v.p, v.len);
		dst[i][v.len] = '\0';
	}
	return true;
}

static bool route(const struct notify_hl7_msg *m, struct adt_work *w, struct notify_adt_result *r, struct adt_error *e)
{
	static const char *const upsert[] = {"A01", "A04", "A05", "A08"};
	static const char *const record[] = {"A02", "A03", "A06", "A07"};
	struct hie_buf v;
	hie_buf_init(&v, 64);
	bool ok = true;
	if (notify_hl7_get_text(m, "MSH", 1, 9, 1, 1, 0, &v) || v.len == 0) {
		set_err(e, "AR", NOTIFY_HL7_E_REQUIRED_MISSING, "MSH", 1, 9, "message type missing");
		ok = false;
	} else {
		hie_log_printable(r->type, sizeof r->type, v.data, v.len);
		if (strcmp(v.data, "ADT") != 0) {
			set_err(e, "AR", NOTIFY_HL7_E_UNSUPPORTED_TYPE, "MSH", 1, 9, NULL);
			ok = false;
		}
	}
	if (ok) {
		ok = !notify_hl7_get_text(m, "MSH", 1, 9, 1, 2, 0, &v);
		if (ok)
			hie_log_printable(r->trigger, sizeof r->trigger, hie_buf_str(&v), v.len);
		bool found = false;
		for (size_t i = 0; ok && i < 4 && !found; i++) {
			if (strcmp(hie_buf_str(&v), upsert[i]) == 0)
				w->kind = ADT_UPSERT, found = true;
			else if (strcmp(hie_buf_str(&v), record[i]) == 0)
				w->kind = ADT_RECORD, found = true;
		}
		if (ok && !found && strcmp(hie_buf_str(&v), "A40") == 0)
			w->kind = ADT_MERGE, found = true;
		if (!found) {
			set_err(e, "AR", NOTIFY_HL7_E_UNSUPPORTED_EVENT, "MSH", 1, 9, NULL);
			ok = false;
		}
	}
	hie_buf_free(&v);
	return ok;
}

/* Parses; a body that does not parse is answered using its MSH alone when that much is readable. */
static bool parse(const char *msg, size_t len, const struct notify_hl7_limits *lim, struct notify_hl7_msg *m,
		  struct adt_error *e)
{
	hie_err_t err = notify_hl7_parse(msg, len, lim, m);
	if (!err)
		return true;
	if (err == HIE_ETOOBIG)
		set_err(e, "AR", NOTIFY_HL7_E_INTERNAL, NULL, 0, 0, "message exceeds a parser limit");
	else
		set_err(e, "AR", NOTIFY_HL7_E_SEGMENT_SEQUENCE, NULL, 0, 0, "malformed HL7 v2 message");
	notify_hl7_free(m);
	struct notify_hl7_limits one = lim ? *lim : (struct notify_hl7_limits){0};
	one.msh_only = true;
	if (notify_hl7_parse(msg, len, &one, m) != HIE_OK)
		notify_hl7_free(m);
	return false;
}

hie_err_t notify_adt_process(struct hie_db_pool *pool, const char *msg, size_t len, const struct notify_hl7_limits *lim,
			     const char *ack_id, const char *ack_ts, struct hie_buf *ack, struct notify_adt_result *r)
{
	struct notify_hl7_msg m;
	struct adt_error e = {0};
	struct adt_work *w = calloc(1, sizeof *w);
	memset(r, 0, sizeof *r);
	if (!w)
		return HIE_ENOMEM;
	bool ok = parse(msg, len, lim, &m, &e);
	if (m.nsegs)
		hie_log_printable(r->control_id, sizeof r->control_id, notify_hl7_at(&m, &m.segs[0], 10, 0, 0, 0).p,
				  notify_hl7_at(&m, &m.segs[0], 10, 0, 0, 0).len);
	w->m = &m;
	ok = ok && msh_key(&m, w, &e) && route(&m, w, r, &e);
	if (ok) {
		extract(w); /* a content error is kept in w->content and answered after the duplicate check */
		hie_err_t err = hie_db_tx(pool, apply_tx, w);
		if (!err && w->duplicate)
			r->duplicate = true;
		else if (err == HIE_EINVAL && w->content.code && !w->registry_rejected)
			e = w->content;
		else if (err == HIE_EINVAL)
			set_err(&e, "AE", NOTIFY_HL7_E_DATA_TYPE, NULL, 0, 0, "rejected by the patient index");
		else if (err)
			set_err(&e, "AE", NOTIFY_HL7_E_INTERNAL, NULL, 0, 0, "temporary failure, retry later");
	}
	const char *code = e.code ? e.ack : r->duplicate ? w->dup_code : "AA";
	snprintf(r->code, sizeof r->code, "%s", code);
	r->err = e.code;
	struct notify_hl7_ack a = {.code = code, .control_id = ack_id, .timestamp = ack_ts, .err = e.code,
				   .err_seg = e.seg, .err_seg_occ = e.occ, .err_field = e.field, .err_text = e.text};
	size_t mark = ack->len;
	hie_err_t err = notify_hl7_ack_build(m.nsegs ? &m : NULL, &a, ack);
	if (err == HIE_ETOOBIG) {
		/* Echoed MSH fields too long for the ACK buffer: answer without them rather than not at all. */
		ack->len = mark;
		if (ack->data)
			ack->data[mark] = '\0';
		err = notify_hl7_ack_build(NULL, &a, ack);
	}
	notify_hl7_free(&m);
	free(w);
	return err;
}

static hie_err_t sweep_tx(PGconn *conn, void *arg)
{
	long long *io = arg; /* in: retention in ms; out: rows deleted */
	char ms[32];
	snprintf(ms, sizeof ms, "%lld", io[0]);
	const char *p[] = {ms};
	PGresult *res = NULL;
	hie_err_t err = hie_db_exec(conn,
				    "DELETE FROM hl7_messages WHERE received_at < now() - make_interval(secs => $1::bigint / 1000.0)",
				    1, p, &res);
	if (!err) {
		char *end = NULL;
		io[1] = strtoll(PQcmdTuples(res), &end, 10);
	}
	PQclear(res);
	return err;
}

hie_err_t notify_sweep(struct hie_db_pool *pool, long long retention_ms, long long *deleted)
{
	long long io[2] = {retention_ms, 0};
	hie_err_t err = hie_db_tx(pool, sweep_tx, io);
	if (!err && deleted)
		*deleted = io[1];
	return err;
}
