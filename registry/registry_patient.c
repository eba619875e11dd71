/*
 * registry_patient.c — the patient identity index: the ids the registry accepts (XDSUnknownPatientId), fed by
 * ITI-8 (notify/, over MLLP) and by `hienode patient`, with the demographics that XCPD matching needs.
 *
 * Entry points (registry.h): registry_pid_parse / registry_pid_format (the CX text form "ID^^^&OID&ISO"),
 * registry_patient_validate, registry_patient_upsert, registry_patient_merge, registry_patient_get,
 * registry_patient_known, registry_patient_list.
 *
 * Table patients (registry_schema.c), one row per (oid, id). A merge (ADT A40) keeps the retired id as a row
 * whose merged_into_* names the survivor; ids merged into the retired one are re-pointed to the survivor, and a
 * merge into an id that is itself merged away is refused, so merged_into always names an active patient.
 *
 * Errors: HIE_EINVAL (a malformed id or field, a merge into itself or into a merged id), HIE_ENOTFOUND
 * (get), and the database errors of hie_db_exec (HIE_EDB, HIE_EBUSY, HIE_ETIMEOUT, HIE_ENOMEM).
 * Demographics are never logged; ids only at debug level, made printable.
 */
#include <stdio.h>
#include <string.h>

#include "core/core_log.h"
#include "registry/registry.h"

#define PID_PART_MAX 64

/* ITI TF-3 4.2.3.1.7.2: only component 1 (ID) and component 4 (assigning authority, sub-components 2 = OID
 * and 3 = "ISO") may be valued. Our ids are visible ASCII without the HL7 v2 delimiters and escape char. */
static bool id_char_ok(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '^' && c != '&' && c != '~' && c != '\\' && c != '|';
}

static bool id_ok(const char *s, size_t n)
{
	if (n == 0 || n > PID_PART_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!id_char_ok((unsigned char)s[i]))
			return false;
	return true;
}

/* The OID grammar the NIST XDS tools check: [0-2](\.(0|[1-9][0-9]*))* — no empty arc, no leading zero. */
static bool oid_ok(const char *s, size_t n)
{
	if (n == 0 || n > PID_PART_MAX || s[0] < '0' || s[0] > '2')
		return false;
	size_t i = 1;
	if (i < n && s[i] != '.')
		return false;
	while (i < n) {
		if (s[i] != '.' || i + 1 >= n)
			return false;
		size_t start = ++i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start || (s[start] == '0' && i - start > 1))
			return false;
	}
	return true;
}

hie_err_t registry_pid_parse(const char *cx, size_t len, struct registry_pid *out)
{
	if (!out)
		return HIE_EINVAL;
	memset(out, 0, sizeof *out);
	if (!cx)
		return HIE_EINVAL;
	size_t i = 0;
	while (i < len && cx[i] != '^')
		i++;
	size_t idlen = i;
	if (!id_ok(cx, idlen))
		return HIE_EINVAL;
	/* Components 2 and 3 empty, sub-component 1 of component 4 (namespace id) empty. */
	if (len - i < 4 || memcmp(cx + i, "^^^&", 4) != 0)
		return HIE_EINVAL;
	i += 4;
	size_t oid_start = i;
	while (i < len && cx[i] != '&')
		i++;
	size_t oidlen = i - oid_start;
	if (!oid_ok(cx + oid_start, oidlen))
		return HIE_EINVAL;
	/* Universal id type exactly "ISO", then nothing: no sub-component 4, no component 5, no repetition. */
	if (len - i != 4 || memcmp(cx + i, "&ISO", 4) != 0)
		return HIE_EINVAL;
	memcpy(out->id, cx, idlen);
	memcpy(out->oid, cx + oid_start, oidlen);
	return HIE_OK;
}

void registry_pid_format(const struct registry_pid *pid, char *out, size_t outlen)
{
	if (outlen == 0)
		return;
	snprintf(out, outlen, "%s^^^&%s&ISO", pid->id, pid->oid);
}

static bool pid_valid(const struct registry_pid *p)
{
	const char *ide = memchr(p->id, '\0', sizeof p->id);
	const char *oide = memchr(p->oid, '\0', sizeof p->oid);
	return ide && oide && id_ok(p->id, (size_t)(ide - p->id)) && oid_ok(p->oid, (size_t)(oide - p->oid));
}

static bool pid_equal(const struct registry_pid *a, const struct registry_pid *b)
{
	return strcmp(a->id, b->id) == 0 && strcmp(a->oid, b->oid) == 0;
}

/* NUL-terminated within cap, well-formed UTF-8 (no overlong form, surrogate or value above U+10FFFF), and no
 * C0, DEL or C1 control: these values end up in HL7 v3 XML and on the operator's terminal. */
static bool text_ok(const char *s, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = memchr(p, '\0', cap);
	if (!end)
		return false;
	while (p < end) {
		unsigned c = *p;
		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return false;
			p++;
			continue;
		}
		size_t n;
		unsigned cp;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if ((size_t)(end - p) <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
			return false;
		p += n + 1;
	}
	return true;
}

static int two_digits(const char *s)
{
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/* "" or YYYYMMDD naming a real day of the Gregorian calendar, year 1000..9999. */
static bool date_ok(const char *s, size_t cap)
{
	const char *end = memchr(s, '\0', cap);
	if (!end)
		return false;
	if (end == s)
		return true;
	if (end - s != 8)
		return false;
	for (int i = 0; i < 8; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	int y = two_digits(s) * 100 + two_digits(s + 2), m = two_digits(s + 4), d = two_digits(s + 6);
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (y < 1000 || m < 1 || m > 12 || d < 1)
		return false;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return d <= mdays[m - 1] + (m == 2 && leap);
}

static bool gender_ok(const char *g)
{
	return g[0] == '\0' || (g[1] == '\0' && strchr("MFOU", g[0]) != NULL);
}

hie_err_t registry_patient_validate(const struct registry_patient *p, const char **bad_field)
{
	const char *bad = NULL;
#define TEXT(f)                                                                                                    \
	do {                                                                                                       \
		if (!bad && !text_ok(p->f, sizeof p->f))                                                           \
			bad = #f;                                                                                  \
	} while (0)
	if (!pid_valid(&p->pid))
		bad = "pid";
	TEXT(family);
	TEXT(given);
	if (!bad && !date_ok(p->birth_date, sizeof p->birth_date))
		bad = "birth_date";
	if (!bad && !gender_ok(p->gender))
		bad = "gender";
	TEXT(street);
	TEXT(city);
	TEXT(state);
	TEXT(postal_code);
	TEXT(country);
#undef TEXT
	if (bad_field)
		*bad_field = bad;
	return bad ? HIE_EINVAL : HIE_OK;
}

/* The id for a debug line: printable, so an id cannot forge key=value fields. */
static const char *pid_log(const struct registry_pid *pid, char *buf, size_t buflen)
{
	char text[REGISTRY_PID_TEXT_MAX];
	registry_pid_format(pid, text, sizeof text);
	return hie_log_printable(buf, buflen, text, strlen(text));
}

hie_err_t registry_patient_upsert(PGconn *tx, const struct registry_patient *p, bool *created)
{
	const char *bad = "none";
	if (!p || registry_patient_validate(p, &bad)) {
		hie_log(HIE_LOG_NOTICE, "event=registry.patient.upsert error=EINVAL field=%s", p ? bad : "none");
		return HIE_EINVAL;
	}
	/* An empty field is "not sent": it keeps the stored value (HL7 v2 snapshot semantics for absent fields). */
	static const char sql[] =
		"INSERT INTO patients (oid, id, family, given, birth_date, gender, street, city, state, postal_code,"
		" country) VALUES ($1, $2, $3, $4, $5::date, $6, $7, $8, $9, $10, $11)"
		" ON CONFLICT (oid, id) DO UPDATE SET"
		" family = coalesce(nullif(EXCLUDED.family, ''), patients.family),"
		" given = coalesce(nullif(EXCLUDED.given, ''), patients.given),"
		" birth_date = coalesce(EXCLUDED.birth_date, patients.birth_date),"
		" gender = coalesce(nullif(EXCLUDED.gender, ''), patients.gender),"
		" street = coalesce(nullif(EXCLUDED.street, ''), patients.street),"
		" city = coalesce(nullif(EXCLUDED.city, ''), patients.city),"
		" state = coalesce(nullif(EXCLUDED.state, ''), patients.state),"
		" postal_code = coalesce(nullif(EXCLUDED.postal_code, ''), patients.postal_code),"
		" country = coalesce(nullif(EXCLUDED.country, ''), patients.country),"
		" updated_at = now()"
		" RETURNING (xmax = 0)";
	const char *params[] = {
		p->pid.oid, p->pid.id, p->family, p->given, p->birth_date[0] ? p->birth_date : NULL, p->gender,
		p->street,  p->city,   p->state,  p->postal_code, p->country,
	};
	PGresult *res = NULL;
	hie_err_t err = hie_db_exec(tx, sql, 11, params, &res);
	if (err)
		return err;
	bool was_created = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (created)
		*created = was_created;
	if (hie_log_get_level() <= HIE_LOG_DEBUG) {
		char buf[REGISTRY_PID_TEXT_MAX + 4];
		hie_log(HIE_LOG_DEBUG, "event=registry.patient.upsert pid=%s created=%d", pid_log(&p->pid, buf, sizeof buf),
			was_created);
	}
	return HIE_OK;
}

/* Locks the row of pid if it exists; *exists and the merge target (empty strings if active). */
static hie_err_t lock_row(PGconn *tx, const struct registry_pid *pid, bool *exists, struct registry_pid *into)
{
	const char *params[] = {pid->oid, pid->id};
	PGresult *res = NULL;
	hie_err_t err = hie_db_exec(tx,
				    "SELECT coalesce(merged_into_oid, ''), coalesce(merged_into_id, '') FROM patients"
				    " WHERE oid = $1 AND id = $2 FOR UPDATE",
				    2, params, &res);
	if (err)
		return err;
	memset(into, 0, sizeof *into);
	*exists = PQntuples(res) == 1;
	if (*exists) {
		snprintf(into->oid, sizeof into->oid, "%s", PQgetvalue(res, 0, 0));
		snprintf(into->id, sizeof into->id, "%s", PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return HIE_OK;
}

hie_err_t registry_patient_merge(PGconn *tx, const struct registry_pid *survivor, const struct registry_pid *old_pid)
{
	if (!survivor || !old_pid || !pid_valid(survivor) || !pid_valid(old_pid) || pid_equal(survivor, old_pid))
		return HIE_EINVAL;
	char sbuf[REGISTRY_PID_TEXT_MAX + 4], obuf[REGISTRY_PID_TEXT_MAX + 4];
	bool debug = hie_log_get_level() <= HIE_LOG_DEBUG;
	if (debug) {
		pid_log(survivor, sbuf, sizeof sbuf);
		pid_log(old_pid, obuf, sizeof obuf);
	}
	bool exists;
	struct registry_pid into;
	/* Locks in a fixed role order (retired, then survivor); two opposite merges at once deadlock, and
	 * hie_db_tx re-runs the loser, which then finds its survivor merged away. */
	hie_err_t err = lock_row(tx, old_pid, &exists, &into);
	if (err)
		return err;
	if (exists && pid_equal(&into, survivor)) {
		if (debug)
			hie_log(HIE_LOG_DEBUG, "event=registry.patient.merge old=%s survivor=%s result=already", obuf, sbuf);
		return HIE_OK;
	}
	const char *sp[] = {survivor->oid, survivor->id};
	err = hie_db_exec(tx, "INSERT INTO patients (oid, id) VALUES ($1, $2) ON CONFLICT (oid, id) DO NOTHING", 2, sp,
			  NULL);
	if (!err)
		err = lock_row(tx, survivor, &exists, &into);
	if (err)
		return err;
	if (into.id[0]) {
		/* Merging into a retired id would make a chain (or a cycle); the sender must name the active id. */
		hie_log(HIE_LOG_NOTICE, "event=registry.patient.merge error=EINVAL reason=survivor_merged");
		return HIE_EINVAL;
	}
	const char *mp[] = {old_pid->oid, old_pid->id, survivor->oid, survivor->id};
	err = hie_db_exec(tx,
			  "INSERT INTO patients (oid, id, merged_into_oid, merged_into_id) VALUES ($1, $2, $3, $4)"
			  " ON CONFLICT (oid, id) DO UPDATE SET merged_into_oid = EXCLUDED.merged_into_oid,"
			  " merged_into_id = EXCLUDED.merged_into_id, updated_at = now()",
			  4, mp, NULL);
	if (!err)
		err = hie_db_exec(tx,
				  "UPDATE patients SET merged_into_oid = $3, merged_into_id = $4, updated_at = now()"
				  " WHERE merged_into_oid = $1 AND merged_into_id = $2",
				  4, mp, NULL);
	if (!err && debug)
		hie_log(HIE_LOG_DEBUG, "event=registry.patient.merge old=%s survivor=%s result=merged", obuf, sbuf);
	return err;
}

#define PATIENT_COLS                                                                                               \
	"oid, id, family, given, coalesce(to_char(birth_date, 'YYYYMMDD'), ''), gender, street, city, state,"      \
	" postal_code, country, coalesce(merged_into_oid, ''), coalesce(merged_into_id, '')"

static hie_err_t copy_col(char *dst, size_t cap, const PGresult *res, int row, int col)
{
	int n = PQgetlength(res, row, col);
	if (n < 0 || (size_t)n >= cap) {
		/* The table's CHECK constraints make this impossible unless the schema was changed by hand. */
		hie_log(HIE_LOG_ERR, "event=registry.patient.read error=EDB reason=column_too_long column=%d", col);
		return HIE_EDB;
	}
	memcpy(dst, PQgetvalue(res, row, col), (size_t)n);
	dst[n] = '\0';
	return HIE_OK;
}

static hie_err_t row_to_patient(const PGresult *res, int row, struct registry_patient *out)
{
	memset(out, 0, sizeof *out);
	struct {
		char *dst;
		size_t cap;
	} cols[] = {
		{out->pid.oid, sizeof out->pid.oid},
		{out->pid.id, sizeof out->pid.id},
		{out->family, sizeof out->family},
		{out->given, sizeof out->given},
		{out->birth_date, sizeof out->birth_date},
		{out->gender, sizeof out->gender},
		{out->street, sizeof out->street},
		{out->city, sizeof out->city},
		{out->state, sizeof out->state},
		{out->postal_code, sizeof out->postal_code},
		{out->country, sizeof out->country},
		{out->merged_into.oid, sizeof out->merged_into.oid},
		{out->merged_into.id, sizeof out->merged_into.id},
	};
	for (int i = 0; i < (int)(sizeof cols / sizeof cols[0]); i++) {
		hie_err_t err = copy_col(cols[i].dst, cols[i].cap, res, row, i);
		if (err)
			return err;
	}
	out->merged = out->merged_into.id[0] != '\0';
	return HIE_OK;
}

hie_err_t registry_patient_get(PGconn *conn, const struct registry_pid *pid, struct registry_patient *out)
{
	if (!pid || !out || !pid_valid(pid))
		return HIE_EINVAL;
	const char *params[] = {pid->oid, pid->id};
	PGresult *res = NULL;
	hie_err_t err = hie_db_exec(conn, "SELECT " PATIENT_COLS " FROM patients WHERE oid = $1 AND id = $2", 2,
				    params, &res);
	if (err)
		return err;
	if (PQntuples(res) != 1)
		err = HIE_ENOTFOUND;
	else
		err = row_to_patient(res, 0, out);
	PQclear(res);
	return err;
}

hie_err_t registry_patient_known(PGconn *conn, const struct registry_pid *pid, bool *known)
{
	if (!pid || !known || !pid_valid(pid))
		return HIE_EINVAL;
	*known = false;
	const char *params[] = {pid->oid, pid->id};
	PGresult *res = NULL;
	hie_err_t err = hie_db_exec(conn, "SELECT merged_into_oid IS NULL FROM patients WHERE oid = $1 AND id = $2", 2,
				    params, &res);
	if (err)
		return err;
	*known = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return HIE_OK;
}

hie_err_t registry_patient_list(PGconn *conn, size_t limit, registry_patient_fn fn, void *arg)
{
	if (!fn)
		return HIE_EINVAL;
	char lim[32];
	snprintf(lim, sizeof lim, "%zu", limit);
	const char *params[] = {limit ? lim : NULL};
	PGresult *res = NULL;
	/* Byte order whatever the database's collation, so the listing is the same on every cluster. */
	hie_err_t err = hie_db_exec(conn,
				    "SELECT " PATIENT_COLS " FROM patients ORDER BY id COLLATE \"C\", oid COLLATE \"C\""
				    " LIMIT $1::bigint",
				    1, params, &res);
	if (err)
		return err;
	struct registry_patient p;
	for (int i = 0; i < PQntuples(res) && !err; i++) {
		err = row_to_patient(res, i, &p);
		if (!err)
			fn(&p, arg);
	}
	PQclear(res);
	return err;
}
