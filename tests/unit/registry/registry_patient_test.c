/*
 * registry_patient_test.c — the patient identity index against a real embedded PostgreSQL cluster: strict
 * CX parsing (ITI TF-3 4.2.3.1.7.2), field validation, upsert create/update and the "empty keeps" rule,
 * demographics round-trip, merge semantics (A40), known(), list order and limit, hostile values stored
 * verbatim, and the schema's own CHECK constraints.
 */
#include "tests/unit/core/pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/core_jobs.h"
#include "registry/registry.h"

static struct pgtest T;
static struct hie_db_pool *P;

static int group_setup(void **state)
{
	(void)state;
	const struct pgtest_schema schema[] = {{hie_jobs_migrations, hie_jobs_migrations_count},
					       {registry_migrations, registry_migrations_count}};
	return pgtest_open(&T, 4, schema, 2, &P);
}

static int group_teardown(void **state)
{
	(void)state;
	pgtest_close(&T, P);
	return 0;
}

static PGconn *C; /* one connection per test, in autocommit */

static int setup(void **state)
{
	(void)state;
	if (T.skip)
		return 0;
	if (hie_db_acquire(P, -1, &C) != HIE_OK)
		return -1;
	return hie_db_exec(C, "TRUNCATE patients", 0, NULL, NULL) == HIE_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	if (C)
		hie_db_release(P, C, false);
	C = NULL;
	return 0;
}

static struct registry_pid pid(const char *cx)
{
	struct registry_pid p;
	if (registry_pid_parse(cx, strlen(cx), &p) != HIE_OK)
		fail_msg("test id '%s' does not parse", cx);
	return p;
}

static struct registry_patient patient(const char *cx)
{
	struct registry_patient p;
	memset(&p, 0, sizeof p);
	p.pid = pid(cx);
	return p;
}

/* registry_pid_parse ------------------------------------------------------------------------------------ */

static void test_pid_parse_table(void **state)
{
	(void)state;
	char longid[80], longoid[80];
	memset(longid, 0, sizeof longid);
	memset(longoid, 0, sizeof longoid);
	/* 65-byte id, 64-byte id */
	char id65[128], id64[128], oid65[128], oid64[128];
	memset(longid, 'a', 65);
	snprintf(id65, sizeof id65, "%s^^^&1.2&ISO", longid);
	snprintf(id64, sizeof id64, "%.64s^^^&1.2&ISO", longid);
	/* "1.1.1..." : 65 and 63 bytes */
	for (int i = 0; i < 65; i++)
		longoid[i] = (i % 2) ? '.' : '1';
	snprintf(oid65, sizeof oid65, "X^^^&%.65s&ISO", longoid);
	snprintf(oid64, sizeof oid64, "X^^^&%.63s&ISO", longoid);

	static const char nul_in_id[] = "12\0003^^^&1.2.3&ISO";
	const struct {
		const char *in;
		size_t len; /* 0 = strlen */
		bool ok;
		const char *id, *oid;
	} cases[] = {
		{.in = "123^^^&1.2.3&ISO", .ok = true, .id = "123", .oid = "1.2.3"},
		{.in = "a-Z_9.x!#$%*^^^&2.16.840.1.113883.3.72.5.9.1&ISO", .ok = true, .id = "a-Z_9.x!#$%*",
		 .oid = "2.16.840.1.113883.3.72.5.9.1"},
		{.in = "1^^^&0&ISO", .ok = true, .id = "1", .oid = "0"},
		{.in = "1^^^&1.0.20&ISO", .ok = true, .id = "1", .oid = "1.0.20"},
		{.in = id64, .ok = true},
		{.in = oid64, .ok = true},
		{.in = "123^^^&1.2.3", .ok = false},          /* missing &ISO */
		{.in = "123^^^&1.2.3&", .ok = false},         /* empty type */
		{.in = "123^^^&1.2.3&DNS", .ok = false},      /* wrong type */
		{.in = "123^^^&1.2.3&iso", .ok = false},      /* type is case-sensitive */
		{.in = "123^^^&1.2.3&ISX", .ok = false},
		{.in = "123^^^&1.2.3&IS0", .ok = false},
		{.in = "123^^^&1.2.3&ISO^", .ok = false},     /* extra component */
		{.in = "123^^^&1.2.3&ISO^^^^5", .ok = false}, /* components 5 and up */
		{.in = "123^^^&1.2.3&ISO&x", .ok = false},    /* sub-component 4 */
		{.in = "123^^^&1.2.3&ISO~9^^^&1.2&ISO", .ok = false}, /* repetition */
		{.in = "123^x^^&1.2.3&ISO", .ok = false},     /* component 2 valued */
		{.in = "123^^x^&1.2.3&ISO", .ok = false},     /* component 3 valued */
		{.in = "123^^^NS&1.2.3&ISO", .ok = false},    /* namespace id valued */
		{.in = "123^^&1.2.3&ISO", .ok = false},       /* a component short */
		{.in = "123^^^^&1.2.3&ISO", .ok = false},     /* a component too many */
		{.in = "^^^&1.2.3&ISO", .ok = false},         /* empty id */
		{.in = "123^^^&&ISO", .ok = false},           /* empty OID */
		{.in = "123^^^&1.2.a&ISO", .ok = false},      /* OID with letters */
		{.in = "123^^^&1..2&ISO", .ok = false},       /* empty arc */
		{.in = "123^^^&.1.2&ISO", .ok = false},
		{.in = "123^^^&1.2.&ISO", .ok = false},
		{.in = "123^^^&1.02&ISO", .ok = false},       /* leading zero */
		{.in = "123^^^&3.2&ISO", .ok = false},        /* first arc 0..2 */
		{.in = "123^^^&12.2&ISO", .ok = false},
		{.in = "123^^^&urn:oid:1.2.3&ISO", .ok = false},
		{.in = id65, .ok = false},                    /* id over 64 bytes */
		{.in = oid65, .ok = false},                   /* OID over 64 bytes */
		{.in = "12\r3^^^&1.2.3&ISO", .ok = false},    /* CR */
		{.in = "123\n^^^&1.2.3&ISO", .ok = false},    /* LF */
		{.in = "123^^^&1.2.3&ISO\r\n", .ok = false},  /* trailing CR LF */
		{.in = "12 3^^^&1.2.3&ISO", .ok = false},     /* space */
		{.in = " 123^^^&1.2.3&ISO", .ok = false},
		{.in = "12&3^^^&1.2.3&ISO", .ok = false},     /* & in id */
		{.in = "12~3^^^&1.2.3&ISO", .ok = false},
		{.in = "12\\3^^^&1.2.3&ISO", .ok = false},    /* escape char */
		{.in = "12|3^^^&1.2.3&ISO", .ok = false},
		{.in = "12\xc3\xa9^^^&1.2.3&ISO", .ok = false}, /* non-ASCII */
		{.in = "123^^^&1.2.3&ISO garbage", .ok = false}, /* trailing garbage */
		{.in = "123^^^&1.2.3&ISOX", .ok = false},
		{.in = "123", .ok = false},
		{.in = "", .ok = false},
		{.in = "^", .ok = false},
		{.in = "123^^^&1.2.3&IS", .ok = false},       /* truncated */
		{.in = nul_in_id, .len = sizeof nul_in_id - 1, .ok = false}, /* embedded NUL */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct registry_pid out;
		memset(&out, 'x', sizeof out);
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
		hie_err_t err = registry_pid_parse(cases[i].in, len, &out);
		if ((err == HIE_OK) != cases[i].ok)
			fail_msg("case %zu '%s': got %s", i, cases[i].in, hie_errname(err));
		if (!cases[i].ok) {
			assert_int_equal(err, HIE_EINVAL);
			continue;
		}
		if (cases[i].id)
			assert_string_equal(out.id, cases[i].id);
		if (cases[i].oid)
			assert_string_equal(out.oid, cases[i].oid);
		/* The canonical form is the input (the grammar admits one spelling). */
		char text[REGISTRY_PID_TEXT_MAX];
		registry_pid_format(&out, text, sizeof text);
		assert_string_equal(text, cases[i].in);
	}
}

static void test_pid_parse_length_bounded(void **state)
{
	(void)state;
	/* len is honoured: a valid id followed by bytes outside len parses; a cut one does not. */
	const char *s = "123^^^&1.2.3&ISOxyz";
	struct registry_pid out;
	assert_int_equal(registry_pid_parse(s, 16, &out), HIE_OK);
	assert_string_equal(out.id, "123");
	assert_int_equal(registry_pid_parse(s, 15, &out), HIE_EINVAL);
	assert_int_equal(registry_pid_parse(s, 0, &out), HIE_EINVAL);
	assert_int_equal(registry_pid_parse(NULL, 5, &out), HIE_EINVAL);
	assert_int_equal(registry_pid_parse(s, 16, NULL), HIE_EINVAL);
}

static void test_pid_format_truncates_safely(void **state)
{
	(void)state;
	struct registry_pid p = pid("123^^^&1.2.3&ISO");
	char small[8];
	memset(small, 'z', sizeof small);
	registry_pid_format(&p, small, sizeof small);
	assert_string_equal(small, "123^^^&");
	registry_pid_format(&p, small, 0); /* no write at all */
	assert_string_equal(small, "123^^^&");
}

/* registry_patient_validate ----------------------------------------------------------------------------- */

static void set_field(struct registry_patient *p, const char *field, const char *value)
{
#define SET(f)                                                                                                     \
	if (strcmp(field, #f) == 0) {                                                                              \
		assert_true(strlen(value) < sizeof p->f);                                                          \
		snprintf(p->f, sizeof p->f, "%s", value);                                                          \
		return;                                                                                            \
	}
	SET(family)
	SET(given)
	SET(birth_date)
	SET(gender)
	SET(country)
#undef SET
	fail_msg("no field %s", field);
}

static void test_validate_table(void **state)
{
	(void)state;
	const struct {
		const char *field, *value;
		const char *bad; /* NULL = accepted */
	} cases[] = {
		{"birth_date", "19800101", NULL},
		{"birth_date", "20000229", NULL}, /* leap year */
		{"birth_date", "19000229", "birth_date"},
		{"birth_date", "20230230", "birth_date"},
		{"birth_date", "20231301", "birth_date"},
		{"birth_date", "20230001", "birth_date"},
		{"birth_date", "20230100", "birth_date"},
		{"birth_date", "1980-01-", "birth_date"},
		{"birth_date", "1980010", "birth_date"},
		{"birth_date", "09990101", "birth_date"},
		{"gender", "M", NULL},
		{"gender", "U", NULL},
		{"gender", "m", "gender"},
		{"gender", "X", "gender"},
		{"family", "O'Brien-Smith", NULL},
		{"family", "M\xc3\xbcller", NULL},                /* UTF-8 u-umlaut */
		{"family", "\xe6\x9d\x8e", NULL},                 /* CJK */
		{"family", "\xf0\x9f\x98\x80", NULL},             /* 4-byte */
		{"family", "Smith\r\nX", "family"},               /* CR LF */
		{"family", "Sm\tith", "family"},
		{"family", "Sm\x7fith", "family"},                /* DEL */
		{"family", "Sm\xc2\x85ith", "family"},            /* C1 NEL */
		{"given", "\xc3", "given"},                       /* truncated UTF-8 */
		{"given", "\xc0\xaf", "given"},                   /* overlong */
		{"given", "\xed\xa0\x80", "given"},               /* surrogate */
		{"given", "\xf4\x90\x80\x80", "given"},           /* above U+10FFFF */
		{"given", "\xff", "given"},
		{"country", "\x1b[31m", "country"},               /* terminal escape */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct registry_patient p = patient("1^^^&1.2&ISO");
		set_field(&p, cases[i].field, cases[i].value);
		const char *bad = "unset";
		hie_err_t err = registry_patient_validate(&p, &bad);
		if (cases[i].bad == NULL) {
			if (err != HIE_OK)
				fail_msg("case %zu (%s) refused as %s", i, cases[i].field, bad ? bad : "?");
			assert_null(bad);
		} else {
			if (err != HIE_EINVAL)
				fail_msg("case %zu (%s) accepted", i, cases[i].field);
			assert_string_equal(bad, cases[i].bad);
		}
	}
	/* A field filling its array without a NUL, and a pid that was never parsed. */
	struct registry_patient p = patient("1^^^&1.2&ISO");
	memset(p.city, 'a', sizeof p.city);
	const char *bad = NULL;
	assert_int_equal(registry_patient_validate(&p, &bad), HIE_EINVAL);
	assert_string_equal(bad, "city");
	memset(&p, 0, sizeof p);
	assert_int_equal(registry_patient_validate(&p, &bad), HIE_EINVAL);
	assert_string_equal(bad, "pid");
	snprintf(p.pid.id, sizeof p.pid.id, "a^b");
	snprintf(p.pid.oid, sizeof p.pid.oid, "1.2");
	assert_int_equal(registry_patient_validate(&p, &bad), HIE_EINVAL);
	assert_string_equal(bad, "pid");
}

/* upsert, get, known ------------------------------------------------------------------------------------ */

static struct registry_patient full(void)
{
	struct registry_patient p = patient("MRN-42^^^&1.3.6.1.4.1.21367.13.20.1000&ISO");
	snprintf(p.family, sizeof p.family, "M\xc3\xbcller");
	snprintf(p.given, sizeof p.given, "Anna Maria");
	snprintf(p.birth_date, sizeof p.birth_date, "19720229");
	snprintf(p.gender, sizeof p.gender, "F");
	snprintf(p.street, sizeof p.street, "1 Main St, Apt 2");
	snprintf(p.city, sizeof p.city, "Springfield");
	snprintf(p.state, sizeof p.state, "IL");
	snprintf(p.postal_code, sizeof p.postal_code, "62701");
	snprintf(p.country, sizeof p.country, "USA");
	return p;
}

static void assert_same_demographics(const struct registry_patient *a, const struct registry_patient *b)
{
	assert_string_equal(a->pid.id, b->pid.id);
	assert_string_equal(a->pid.oid, b->pid.oid);
	assert_string_equal(a->family, b->family);
	assert_string_equal(a->given, b->given);
	assert_string_equal(a->birth_date, b->birth_date);
	assert_string_equal(a->gender, b->gender);
	assert_string_equal(a->street, b->street);
	assert_string_equal(a->city, b->city);
	assert_string_equal(a->state, b->state);
	assert_string_equal(a->postal_code, b->postal_code);
	assert_string_equal(a->country, b->country);
}

static void test_upsert_create_then_update(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct registry_patient p = full(), got;
	bool created = false;
	assert_int_equal(registry_patient_upsert(C, &p, &created), HIE_OK);
	assert_true(created);
	assert_int_equal(registry_patient_get(C, &p.pid, &got), HIE_OK);
	assert_same_demographics(&p, &got);
	assert_false(got.merged);
	assert_string_equal(got.merged_into.id, "");

	/* Update: changed fields replace, empty fields keep what is stored. */
	struct registry_patient u = patient("MRN-42^^^&1.3.6.1.4.1.21367.13.20.1000&ISO");
	snprintf(u.family, sizeof u.family, "Schmidt");
	snprintf(u.postal_code, sizeof u.postal_code, "62702");
	assert_int_equal(registry_patient_upsert(C, &u, &created), HIE_OK);
	assert_false(created);
	assert_int_equal(registry_patient_get(C, &p.pid, &got), HIE_OK);
	snprintf(p.family, sizeof p.family, "Schmidt");
	snprintf(p.postal_code, sizeof p.postal_code, "62702");
	assert_same_demographics(&p, &got);

	/* Same id in another assigning authority is another patient. */
	struct registry_patient other = patient("MRN-42^^^&1.2.3&ISO");
	assert_int_equal(registry_patient_upsert(C, &other, &created), HIE_OK);
	assert_true(created);
	assert_int_equal(registry_patient_upsert(C, &other, NULL), HIE_OK); /* created may be NULL */
	PGresult *r;
	assert_int_equal(hie_db_exec(C, "SELECT count(*) FROM patients", 0, NULL, &r), HIE_OK);
	assert_string_equal(PQgetvalue(r, 0, 0), "2");
	PQclear(r);
}

static void test_upsert_refuses_bad_fields(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct registry_patient p = full();
	snprintf(p.birth_date, sizeof p.birth_date, "19721302");
	bool created = true;
	assert_int_equal(registry_patient_upsert(C, &p, &created), HIE_EINVAL);
	p = full();
	snprintf(p.given, sizeof p.given, "A\nB");
	assert_int_equal(registry_patient_upsert(C, &p, &created), HIE_EINVAL);
	assert_int_equal(registry_patient_upsert(C, NULL, &created), HIE_EINVAL);
	struct registry_pid bad = {.id = "x y", .oid = "1.2"};
	struct registry_patient out;
	bool known = true;
	assert_int_equal(registry_patient_get(C, &bad, &out), HIE_EINVAL);
	assert_int_equal(registry_patient_known(C, &bad, &known), HIE_EINVAL);
	PGresult *r;
	assert_int_equal(hie_db_exec(C, "SELECT count(*) FROM patients", 0, NULL, &r), HIE_OK);
	assert_string_equal(PQgetvalue(r, 0, 0), "0");
	PQclear(r);
}

static void test_upsert_in_rolled_back_tx(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	/* The caller's transaction decides: a rollback leaves no patient behind. */
	struct registry_patient p = full();
	assert_int_equal(hie_db_exec(C, "BEGIN", 0, NULL, NULL), HIE_OK);
	assert_int_equal(registry_patient_upsert(C, &p, NULL), HIE_OK);
	assert_int_equal(hie_db_exec(C, "ROLLBACK", 0, NULL, NULL), HIE_OK);
	bool known = true;
	assert_int_equal(registry_patient_known(C, &p.pid, &known), HIE_OK);
	assert_false(known);
}

static void test_get_unknown(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct registry_pid x = pid("nobody^^^&1.2.3&ISO");
	struct registry_patient out;
	assert_int_equal(registry_patient_get(C, &x, &out), HIE_ENOTFOUND);
	bool known = true;
	assert_int_equal(registry_patient_known(C, &x, &known), HIE_OK);
	assert_false(known);
}

static void test_hostile_values_verbatim(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct registry_patient p = patient("1');DROP_TABLE_patients;--^^^&1.2.3&ISO");
	snprintf(p.family, sizeof p.family, "Robert'); DROP TABLE patients;--");
	snprintf(p.given, sizeof p.given, "$1 %%s %%n \\x00 \\' \" E'\\n' ::date");
	snprintf(p.street, sizeof p.street, "<script>&amp;</script> ^~\\|&");
	snprintf(p.city, sizeof p.city, "' OR '1'='1");
	bool created = false;
	assert_int_equal(registry_patient_upsert(C, &p, &created), HIE_OK);
	assert_true(created);
	struct registry_patient got;
	assert_int_equal(registry_patient_get(C, &p.pid, &got), HIE_OK);
	assert_same_demographics(&p, &got);
	bool known = false;
	assert_int_equal(registry_patient_known(C, &p.pid, &known), HIE_OK);
	assert_true(known);
	/* And the OR-injection id does not match anything else. */
	struct registry_pid inj = pid("'OR'1'='1^^^&1.2.3&ISO");
	assert_int_equal(registry_patient_known(C, &inj, &known), HIE_OK);
	assert_false(known);
}

/* merge ------------------------------------------------------------------------------------------------- */

static void assert_merged_into(const char *cx, const char *into_cx)
{
	struct registry_pid x = pid(cx);
	struct registry_patient got;
	bool known = true;
	assert_int_equal(registry_patient_get(C, &x, &got), HIE_OK);
	assert_true(got.merged);
	char text[REGISTRY_PID_TEXT_MAX];
	registry_pid_format(&got.merged_into, text, sizeof text);
	assert_string_equal(text, into_cx);
	assert_int_equal(registry_patient_known(C, &x, &known), HIE_OK);
	assert_false(known);
}

static void assert_active(const char *cx)
{
	struct registry_pid x = pid(cx);
	struct registry_patient got;
	bool known = false;
	assert_int_equal(registry_patient_get(C, &x, &got), HIE_OK);
	assert_false(got.merged);
	assert_int_equal(registry_patient_known(C, &x, &known), HIE_OK);
	assert_true(known);
}

static void test_merge_known_old(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct registry_patient a = full(), b = patient("B^^^&1.2.3&ISO");
	snprintf(b.family, sizeof b.family, "Keep");
	assert_int_equal(registry_patient_upsert(C, &a, NULL), HIE_OK);
	assert_int_equal(registry_patient_upsert(C, &b, NULL), HIE_OK);
	assert_int_equal(registry_patient_merge(C, &b.pid, &a.pid), HIE_OK);
	assert_merged_into("MRN-42^^^&1.3.6.1.4.1.21367.13.20.1000&ISO", "B^^^&1.2.3&ISO");
	assert_active("B^^^&1.2.3&ISO");
	/* The retired row keeps its demographics; the survivor's are untouched. */
	struct registry_patient got;
	assert_int_equal(registry_patient_get(C, &a.pid, &got), HIE_OK);
	assert_same_demographics(&a, &got);
	assert_int_equal(registry_patient_get(C, &b.pid, &got), HIE_OK);
	assert_string_equal(got.family, "Keep");

	/* Idempotent: the same A40 again changes nothing and succeeds. */
	PGresult *r;
	assert_int_equal(hie_db_exec(C, "SELECT updated_at FROM patients ORDER BY id", 0, NULL, &r), HIE_OK);
	char before[2][64];
	snprintf(before[0], sizeof before[0], "%s", PQgetvalue(r, 0, 0));
	snprintf(before[1], sizeof before[1], "%s", PQgetvalue(r, 1, 0));
	PQclear(r);
	assert_int_equal(registry_patient_merge(C, &b.pid, &a.pid), HIE_OK);
	assert_merged_into("MRN-42^^^&1.3.6.1.4.1.21367.13.20.1000&ISO", "B^^^&1.2.3&ISO");
	assert_int_equal(hie_db_exec(C, "SELECT updated_at FROM patients ORDER BY id", 0, NULL, &r), HIE_OK);
	assert_int_equal(PQntuples(r), 2);
	assert_string_equal(PQgetvalue(r, 0, 0), before[0]);
	assert_string_equal(PQgetvalue(r, 1, 0), before[1]);
	PQclear(r);

	/* An update of the retired id keeps it retired. */
	struct registry_patient u = full();
	snprintf(u.given, sizeof u.given, "Anna");
	bool created = true;
	assert_int_equal(registry_patient_upsert(C, &u, &created), HIE_OK);
	assert_false(created);
	assert_merged_into("MRN-42^^^&1.3.6.1.4.1.21367.13.20.1000&ISO", "B^^^&1.2.3&ISO");
}

static void test_merge_unknown_ids(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	/* Neither id known: the survivor is created active, the old one created merged, so documents for it are
	 * refused from now on. */
	struct registry_pid s = pid("S^^^&1.2&ISO"), o = pid("O^^^&1.2&ISO");
	assert_int_equal(registry_patient_merge(C, &s, &o), HIE_OK);
	assert_active("S^^^&1.2&ISO");
	assert_merged_into("O^^^&1.2&ISO", "S^^^&1.2&ISO");
	assert_int_equal(registry_patient_merge(C, &s, &o), HIE_OK);
	assert_merged_into("O^^^&1.2&ISO", "S^^^&1.2&ISO");
	PGresult *r;
	assert_int_equal(hie_db_exec(C, "SELECT count(*) FROM patients", 0, NULL, &r), HIE_OK);
	assert_string_equal(PQgetvalue(r, 0, 0), "2");
	PQclear(r);
}

static void test_merge_chains_and_refusals(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct registry_pid a = pid("A^^^&1.2&ISO"), b = pid("B^^^&1.2&ISO"), c = pid("C^^^&1.2&ISO"),
			    d = pid("D^^^&1.2&ISO");
	assert_int_equal(registry_patient_merge(C, &b, &a), HIE_OK); /* A -> B */
	assert_int_equal(registry_patient_merge(C, &c, &b), HIE_OK); /* B -> C: A is re-pointed to C */
	assert_merged_into("A^^^&1.2&ISO", "C^^^&1.2&ISO");
	assert_merged_into("B^^^&1.2&ISO", "C^^^&1.2&ISO");
	assert_active("C^^^&1.2&ISO");

	/* Into itself; into a retired id (would chain, or cycle back): refused, nothing changes. */
	assert_int_equal(registry_patient_merge(C, &c, &c), HIE_EINVAL);
	assert_int_equal(registry_patient_merge(C, &a, &c), HIE_EINVAL);
	assert_int_equal(registry_patient_merge(C, &b, &d), HIE_EINVAL);
	assert_active("C^^^&1.2&ISO");
	assert_merged_into("A^^^&1.2&ISO", "C^^^&1.2&ISO");

	/* A retired id merged again into another active id follows the latest event. */
	assert_int_equal(registry_patient_merge(C, &d, &a), HIE_OK);
	assert_merged_into("A^^^&1.2&ISO", "D^^^&1.2&ISO");

	struct registry_pid bad = {.id = "", .oid = "1.2"};
	assert_int_equal(registry_patient_merge(C, &bad, &a), HIE_EINVAL);
	assert_int_equal(registry_patient_merge(C, &d, &bad), HIE_EINVAL);
	assert_int_equal(registry_patient_merge(C, NULL, &a), HIE_EINVAL);

	/* Invariant: every merged_into names an active patient. */
	PGresult *r;
	assert_int_equal(hie_db_exec(C,
				     "SELECT count(*) FROM patients p JOIN patients s ON (s.oid, s.id) ="
				     " (p.merged_into_oid, p.merged_into_id) WHERE s.merged_into_oid IS NOT NULL",
				     0, NULL, &r),
			 HIE_OK);
	assert_string_equal(PQgetvalue(r, 0, 0), "0");
	PQclear(r);
}

/* list -------------------------------------------------------------------------------------------------- */

struct collect {
	char ids[16][REGISTRY_PID_TEXT_MAX];
	bool merged[16];
	char family[16][128];
	int n;
};

static void collect_fn(const struct registry_patient *p, void *arg)
{
	struct collect *c = arg;
	assert_true(c->n < 16);
	registry_pid_format(&p->pid, c->ids[c->n], sizeof c->ids[c->n]);
	c->merged[c->n] = p->merged;
	snprintf(c->family[c->n], sizeof c->family[c->n], "%s", p->family);
	c->n++;
}

static void test_list_order_and_limit(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct collect c = {0};
	assert_int_equal(registry_patient_list(C, 0, collect_fn, &c), HIE_OK);
	assert_int_equal(c.n, 0);

	const char *ids[] = {"b^^^&1.2&ISO", "B^^^&1.2&ISO", "a^^^&1.3&ISO", "a^^^&1.2&ISO", "10^^^&1.2&ISO",
			     "9^^^&1.2&ISO"};
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		struct registry_patient p = patient(ids[i]);
		snprintf(p.family, sizeof p.family, "F%zu", i);
		assert_int_equal(registry_patient_upsert(C, &p, NULL), HIE_OK);
	}
	struct registry_pid s = pid("a^^^&1.2&ISO"), o = pid("b^^^&1.2&ISO");
	assert_int_equal(registry_patient_merge(C, &s, &o), HIE_OK);

	/* Byte order of id, then OID; merged ids are listed too, marked. */
	const char *want[] = {"10^^^&1.2&ISO", "9^^^&1.2&ISO", "B^^^&1.2&ISO", "a^^^&1.2&ISO", "a^^^&1.3&ISO",
			      "b^^^&1.2&ISO"};
	memset(&c, 0, sizeof c);
	assert_int_equal(registry_patient_list(C, 0, collect_fn, &c), HIE_OK);
	assert_int_equal(c.n, 6);
	for (int i = 0; i < 6; i++)
		assert_string_equal(c.ids[i], want[i]);
	assert_false(c.merged[4]);
	assert_true(c.merged[5]);
	assert_string_equal(c.family[5], "F0");

	memset(&c, 0, sizeof c);
	assert_int_equal(registry_patient_list(C, 2, collect_fn, &c), HIE_OK);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.ids[1], "9^^^&1.2&ISO");
	memset(&c, 0, sizeof c);
	assert_int_equal(registry_patient_list(C, 100, collect_fn, &c), HIE_OK);
	assert_int_equal(c.n, 6);
	assert_int_equal(registry_patient_list(C, 0, NULL, NULL), HIE_EINVAL);
}

/* schema ------------------------------------------------------------------------------------------------ */

static void test_schema_checks(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	/* Rows written around the C code are held to the same rules. */
	const char *bad[] = {
		"INSERT INTO patients (oid, id) VALUES ('1.2', 'a^b')",
		"INSERT INTO patients (oid, id) VALUES ('1.2', 'a b')",
		"INSERT INTO patients (oid, id) VALUES ('1.2', '')",
		"INSERT INTO patients (oid, id) VALUES ('1.02', 'x')",
		"INSERT INTO patients (oid, id) VALUES ('1.a', 'x')",
		"INSERT INTO patients (oid, id, gender) VALUES ('1.2', 'x', 'Q')",
		"INSERT INTO patients (oid, id, merged_into_oid) VALUES ('1.2', 'x', '1.2')",
		"INSERT INTO patients (oid, id, merged_into_oid, merged_into_id) VALUES ('1.2', 'x', '1.2', 'x')",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (hie_db_exec(C, bad[i], 0, NULL, NULL) == HIE_OK)
			fail_msg("accepted: %s", bad[i]);
	assert_int_equal(hie_db_exec(C, "INSERT INTO patients (oid, id) VALUES ('1.2', 'x')", 0, NULL, NULL), HIE_OK);
	assert_int_equal(hie_db_exec(C, "INSERT INTO patients (oid, id) VALUES ('1.2', 'x')", 0, NULL, NULL),
			 HIE_EEXIST);
	/* Migrations are recorded: applying them again is a no-op. */
	int applied = -1;
	assert_int_equal(hie_db_migrate(P, registry_migrations, registry_migrations_count, &applied), HIE_OK);
	assert_int_equal(applied, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pid_parse_table),
		cmocka_unit_test(test_pid_parse_length_bounded),
		cmocka_unit_test(test_pid_format_truncates_safely),
		cmocka_unit_test(test_validate_table),
		cmocka_unit_test_setup_teardown(test_upsert_create_then_update, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upsert_refuses_bad_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upsert_in_rolled_back_tx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_values_verbatim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge_known_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge_unknown_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge_chains_and_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_order_and_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema_checks, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
