/*
 * notify_adt_test.c — ITI-8 against a real PostgreSQL: create, update, merge, duplicates, AE/AR answers, and
 * a database that is down (AE 207, never AA).
 */
#include "tests/unit/core/pgtest.h" /* first: it sets _XOPEN_SOURCE for nftw */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_log.h"
#include "notify/notify.h"
#include "notify/notify_adt.h"
#include "registry/registry.h"

static struct pgtest T;
static struct hie_db_pool *P;

static int group_setup(void **state)
{
	hie_log_set_level(HIE_LOG_WARN);
	const struct pgtest_schema schema[] = {{registry_migrations, registry_migrations_count},
					       {notify_migrations, notify_migrations_count}};
	return pgtest_open(&T, 4, schema, 2, &P);
}

static int group_teardown(void **state)
{
	pgtest_close(&T, P);
	return 0;
}

struct ack {
	char code[3];
	int err;
	char err_loc[32];
	char msa2[64];
	bool duplicate;
};

static void field(const struct notify_hl7_msg *m, const char *seg, size_t f, size_t c, char *out, size_t outlen)
{
	struct hie_buf b;
	hie_buf_init(&b, 256);
	out[0] = '\0';
	if (notify_hl7_get_text(m, seg, 1, f, 1, c, 0, &b) == HIE_OK)
		snprintf(out, outlen, "%s", hie_buf_str(&b));
	hie_buf_free(&b);
}

/* Runs one message through notify_adt_process on pool and reads back its ACK. */
static struct ack run_on(struct hie_db_pool *pool, const char *msg)
{
	struct hie_buf out;
	struct notify_adt_result r;
	struct ack a = {0};
	hie_buf_init(&out, 1 << 16);
	assert_int_equal(notify_adt_process(pool, msg, strlen(msg), NULL, "ACKID", "20260101000000", &out, &r), HIE_OK);
	struct notify_hl7_msg m;
	assert_int_equal(notify_hl7_parse(out.data, out.len, NULL, &m), HIE_OK);
	field(&m, "MSA", 1, 0, a.code, sizeof a.code);
	field(&m, "MSA", 2, 0, a.msa2, sizeof a.msa2);
	char e[16];
	field(&m, "ERR", 3, 1, e, sizeof e);
	a.err = (int)strtol(e, NULL, 10);
	struct notify_hl7_span loc = notify_hl7_at(&m, notify_hl7_seg(&m, "ERR", 1), 2, 0, 0, 0);
	snprintf(a.err_loc, sizeof a.err_loc, "%.*s", (int)loc.len, loc.p);
	a.duplicate = r.duplicate;
	/* the result the listener logs agrees with the ACK */
	assert_string_equal(r.code, a.code);
	assert_int_equal(r.err, a.err);
	notify_hl7_free(&m);
	hie_buf_free(&out);
	return a;
}

static struct ack run(const char *msg)
{
	return run_on(P, msg);
}

static hie_err_t get(const char *id, const char *oid, struct registry_patient *out)
{
	PGconn *c;
	struct registry_pid pid = {0};
	snprintf(pid.id, sizeof pid.id, "%s", id);
	snprintf(pid.oid, sizeof pid.oid, "%s", oid);
	assert_int_equal(hie_db_acquire(P, -1, &c), HIE_OK);
	hie_err_t err = registry_patient_get(c, &pid, out);
	hie_db_release(P, c, false);
	return err;
}

#define MSH(trigger, ctrl) "MSH|^~\\&|EHR^1.2.3.4^ISO|GENHOSP|HIE|HIE|20260101120000||ADT^" trigger "^ADT_A01|" ctrl "|P|2.5.1\r"
#define EVN "EVN||20260101120000\r"

static void test_a01_creates_a08_updates(void **state)
{
	PGTEST_SKIP_IF_NEEDED(&T);
	struct ack a = run(MSH("A01", "C-1") EVN
			   "PID|1||MRN9^^^LOCAL^MR~P100^^^&1.2.840.1&ISO~Q200^^^HOSP&2.16.840.9&ISO||Doe^John^Q||19700102123000|M|||"
			   "1 Main St^Apt 2^Springfield^IL^62701^USA\r"
			   "PV1|1|I\r");
	assert_string_equal(a.code, "AA");
	assert_string_equal(a.msa2, "C-1");
	assert_int_equal(a.err, 0);
	struct registry_patient p;
	assert_int_equal(get("P100", "1.2.840.1", &p), HIE_OK);
	assert_string_equal(p.family, "Doe");
	assert_string_equal(p.given, "John");
	assert_string_equal(p.birth_date, "19700102");
	assert_string_equal(p.gender, "M");
	assert_string_equal(p.street, "1 Main St, Apt 2");
	assert_string_equal(p.city, "Springfield");
	assert_string_equal(p.state, "IL");
	assert_string_equal(p.postal_code, "62701");
	assert_string_equal(p.country, "USA");
	assert_int_equal(get("Q200", "2.16.840.9", &p), HIE_OK);
	assert_string_equal(p.family, "Doe");
	assert_int_equal(get("MRN9", "", &p) == HIE_OK, 0); /* the local MRN is not an ISO id: not indexed */

	a = run(MSH("A08", "C-2") EVN "PID|1||P100^^^&1.2.840.1&ISO||Doe-Smith^Johnny||19700102|U\r");
	assert_string_equal(a.code, "AA");
	assert_int_equal(get("P100", "1.2.840.1", &p), HIE_OK);
	assert_string_equal(p.family, "Doe-Smith");
	assert_string_equal(p.given, "Johnny");
	assert_string_equal(p.gender, "U");
	assert_string_equal(p.city, "Springfield"); /* not sent: kept */

	/* escapes in values are undone before they are stored */
	a = run(MSH("A04", "C-3") EVN "PID|1||E1^^^&1.2.840.1&ISO||O\\T\\Brien^Ann||20000229|F\r");
	assert_string_equal(a.code, "AA");
	assert_int_equal(get("E1", "1.2.840.1", &p), HIE_OK);
	assert_string_equal(p.family, "O&Brien");
}

static void test_duplicate_not_reprocessed(void **state)
{
	PGTEST_SKIP_IF_NEEDED(&T);
	struct ack a = run(MSH("A01", "DUP-1") EVN "PID|1||D1^^^&1.2.840.1&ISO||First^Ann||19800101|F\r");
	assert_string_equal(a.code, "AA");
	assert_false(a.duplicate);
	/* same control id, changed demographics: acknowledged again, not applied */
	a = run(MSH("A08", "DUP-1") EVN "PID|1||D1^^^&1.2.840.1&ISO||Changed^Bob||19900101|M\r");
	assert_string_equal(a.code, "AA");
	assert_true(a.duplicate);
	assert_string_equal(a.msa2, "DUP-1");
	struct registry_patient p;
	assert_int_equal(get("D1", "1.2.840.1", &p), HIE_OK);
	assert_string_equal(p.family, "First");
	assert_string_equal(p.gender, "F");
	/* even content that would now be refused is a duplicate of an accepted message */
	a = run(MSH("A08", "DUP-1") EVN "PID|1\r");
	assert_string_equal(a.code, "AA");
	assert_true(a.duplicate);
	/* the same control id from another sending facility is another message */
	a = run("MSH|^~\\&|EHR^1.2.3.4^ISO|OTHERHOSP|HIE|HIE|2026||ADT^A08|DUP-1|P|2.5.1\r"
		"PID|1||D1^^^&1.2.840.1&ISO||Other\r");
	assert_string_equal(a.code, "AA");
	assert_false(a.duplicate);
	assert_int_equal(get("D1", "1.2.840.1", &p), HIE_OK);
	assert_string_equal(p.family, "Other");
	/* A03 (discharge): accepted and recorded, so a retransmission is a duplicate */
	a = run(MSH("A03", "DIS-1") EVN "PID|1||D1^^^&1.2.840.1&ISO\r");
	assert_string_equal(a.code, "AA");
	assert_false(a.duplicate);
	a = run(MSH("A03", "DIS-1") EVN "PID|1||D1^^^&1.2.840.1&ISO\r");
	assert_true(a.duplicate);
}

static void test_a40_merge(void **state)
{
	PGTEST_SKIP_IF_NEEDED(&T);
	struct ack a = run(MSH("A01", "M-1") EVN "PID|1||OLD1^^^&1.2.840.1&ISO||Merge^Old||19600101|M\r");
	assert_string_equal(a.code, "AA");
	a = run(MSH("A40", "M-2") EVN "PID|1||SURV1^^^&1.2.840.1&ISO||Merge^Kept||19600101|M\r"
				     "MRG|OLD1^^^&1.2.840.1&ISO\r");
	assert_string_equal(a.code, "AA");
	struct registry_patient p;
	assert_int_equal(get("OLD1", "1.2.840.1", &p), HIE_OK);
	assert_true(p.merged);
	assert_string_equal(p.merged_into.id, "SURV1");
	assert_string_equal(p.merged_into.oid, "1.2.840.1");
	assert_int_equal(get("SURV1", "1.2.840.1", &p), HIE_OK);
	assert_false(p.merged);
	assert_string_equal(p.given, "Kept");

	a = run(MSH("A40", "M-3") EVN "PID|1||SURV1^^^&1.2.840.1&ISO\r");
	assert_string_equal(a.code, "AE");
	assert_int_equal(a.err, 100);
	a = run(MSH("A40", "M-4") EVN "PID|1||SURV1^^^&1.2.840.1&ISO\rMRG|\r");
	assert_string_equal(a.code, "AE");
	assert_int_equal(a.err, 101);
	assert_string_equal(a.err_loc, "MRG^1^1");
	a = run(MSH("A40", "M-5") EVN "PID|1||SURV1^^^&1.2.840.1&ISO\rMRG|SURV1^^^&1.2.840.1&ISO\r");
	assert_string_equal(a.code, "AE");
	assert_int_equal(a.err, 102);
}

static void test_errors(void **state)
{
	PGTEST_SKIP_IF_NEEDED(&T);
	static const struct {
		const char *msg;
		const char *code;
		int err;
		const char *loc;
		const char *msa2;
	} cases[] = {
		{.msg = MSH("A01", "E-1") EVN "PID|1||||Doe^J\r", .code = "AE", .err = 101, .loc = "PID^1^3"},
		{.msg = MSH("A01", "E-2") EVN "PID|1||L1^^^LOCAL\r", .code = "AE", .err = 102, .loc = "PID^1^3"},
		{.msg = MSH("A01", "E-3") EVN "PID|1||X 1^^^&1.2.840.1&ISO\r", .code = "AE", .err = 102, .loc = "PID^1^3"},
		{.msg = MSH("A01", "E-4") EVN "PID|1||X1^^^&not.an.oid&ISO\r", .code = "AE", .err = 102, .loc = "PID^1^3"},
		{.msg = MSH("A01", "E-5") EVN "PID|1||X1^^^&1.2.840.1&ISO||||19701301\r", .code = "AE", .err = 102,
		 .loc = "PID^1^7"},
		{.msg = MSH("A01", "E-6") EVN "PID|1||X1^^^&1.2.840.1&ISO||||1970\r", .code = "AE", .err = 102,
		 .loc = "PID^1^7"},
		{.msg = MSH("A01", "E-7") EVN "PID|1||X1^^^&1.2.840.1&ISO|||||X\r", .code = "AE", .err = 103,
		 .loc = "PID^1^8"},
		{.msg = MSH("A01", "E-8") EVN, .code = "AE", .err = 100, .loc = "PID"},
		{.msg = MSH("A01", "E-9") EVN "PID|1||X1^^^&1.2.840.1&ISO||Bad\\X01\\Name\r", .code = "AE", .err = 102,
		 .loc = "PID^1^5"},
		{.msg = "MSH|^~\\&|LAB|F|HIE|HIE|2026||ORU^R01^ORU_R01|O-1|P|2.5.1\rOBX|1\r", .code = "AR", .err = 200,
		 .loc = "MSH^1^9"},
		{.msg = MSH("A99", "E-10") EVN, .code = "AR", .err = 201, .loc = "MSH^1^9"},
		{.msg = "MSH|^~\\&|A|B|C|D|2026|||E-11|P|2.5.1\r", .code = "AR", .err = 101, .loc = "MSH^1^9"},
		{.msg = "MSH|^~\\&|A|B|C|D|2026||ADT^A01||P|2.5.1\r", .code = "AR", .err = 101, .loc = "MSH^1^10"},
		{.msg = MSH("A01", "E-12") "P!D|1\r", .code = "AR", .err = 100, .msa2 = "E-12"},
		{.msg = "garbage", .code = "AR", .err = 100, .msa2 = ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ack a = run(cases[i].msg);
		if (strcmp(a.code, cases[i].code) != 0 || a.err != cases[i].err ||
		    (cases[i].loc && strcmp(a.err_loc, cases[i].loc) != 0) ||
		    (cases[i].msa2 && strcmp(a.msa2, cases[i].msa2) != 0))
			fail_msg("case %zu: got %s %d at '%s' msa2 '%s', want %s %d at '%s'", i, a.code, a.err, a.err_loc,
				 a.msa2, cases[i].code, cases[i].err, cases[i].loc ? cases[i].loc : "*");
	}
	/* gender A (ambiguous) is a valid table 0001 code stored as U */
	struct ack a = run(MSH("A01", "G-1") EVN "PID|1||GA^^^&1.2.840.1&ISO|||||A\r");
	assert_string_equal(a.code, "AA");
	struct registry_patient p;
	assert_int_equal(get("GA", "1.2.840.1", &p), HIE_OK);
	assert_string_equal(p.gender, "U");
	/* a rejected message is not recorded: the corrected retransmission is processed */
	a = run(MSH("A01", "E-1") EVN "PID|1||FIX1^^^&1.2.840.1&ISO||Fixed\r");
	assert_string_equal(a.code, "AA");
	assert_false(a.duplicate);
	assert_int_equal(get("FIX1", "1.2.840.1", &p), HIE_OK);
	/* nothing of a rejected message reached the index */
	assert_int_equal(get("X1", "1.2.840.1", &p), HIE_ENOTFOUND);
}

static void test_database_down(void **state)
{
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_db_pool *down;
	struct hie_db_opts o = {.conninfo = "host=/nonexistent-hienode dbname=x connect_timeout=1", .size = 1,
				.acquire_timeout_ms = 500};
	assert_int_equal(hie_db_pool_open(&down, &o), HIE_OK);
	hie_log_set_level(HIE_LOG_PANIC);
	struct ack a = run_on(down, MSH("A01", "DOWN-1") EVN "PID|1||DN1^^^&1.2.840.1&ISO||Down\r");
	hie_log_set_level(HIE_LOG_WARN);
	assert_string_equal(a.code, "AE");
	assert_int_equal(a.err, 207);
	hie_db_pool_close(down);
	/* the sender retries once the database is back: processed then */
	a = run(MSH("A01", "DOWN-1") EVN "PID|1||DN1^^^&1.2.840.1&ISO||Down\r");
	assert_string_equal(a.code, "AA");
	assert_false(a.duplicate);
}

/* The daily sweep drops control ids past [mllp] dedup_retention and keeps the recent ones. */
static void test_sweep(void **state)
{
	(void)state;
	assert_int_equal(pgtest_exec(P, "INSERT INTO hl7_messages (sending_app, sending_facility, control_id, ack_code,"
				     " received_at) VALUES ('SWEEP', 'F', 'OLD-1', 'AA', now() - interval '40 days'),"
				     " ('SWEEP', 'F', 'NEW-1', 'AA', now() - interval '2 hours')"),
			 HIE_OK);
	long long deleted = -1;
	assert_int_equal(notify_sweep(P, 30LL * 86400000LL, &deleted), HIE_OK);
	assert_int_equal(deleted, 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hl7_messages WHERE sending_app = 'SWEEP'", NULL), 1);
	assert_int_equal(notify_sweep(P, 3600000LL, &deleted), HIE_OK);
	assert_int_equal(deleted, 1);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hl7_messages WHERE sending_app = 'SWEEP'", NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a01_creates_a08_updates), cmocka_unit_test(test_duplicate_not_reprocessed),
		cmocka_unit_test(test_a40_merge),               cmocka_unit_test(test_errors),
		cmocka_unit_test(test_database_down),           cmocka_unit_test(test_sweep),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
