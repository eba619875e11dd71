/*
 * hisp_track_test.c — delivery tracking and mailboxes against a real embedded PostgreSQL: outbound rows are
 * inserted by SQL, then sent / notice / timeout / fail are driven and the test asserts exactly one final notice
 * per recipient in the sender's mailbox, late and duplicate MDNs suppressed, MDNs for unknown messages or for
 * our own notices suppressed, idempotent timeouts and failures; plus mailbox put/list/get/ack, the mailbox and
 * status commands and hisp_counts.
 */
#include "tests/unit/core/pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/core_jobs.h"
#include "hisp/hisp.h"
#include "hisp/hisp_notice.h"
#include "hisp/hisp_svc.h"

static struct pgtest T;
static struct hie_db_pool *P;
static PGconn *C;
static struct hisp H;

static int group_setup(void **state)
{
	(void)state;
	const struct pgtest_schema schema[] = {{hie_jobs_migrations, hie_jobs_migrations_count},
					       {hisp_migrations, hisp_migrations_count}};
	int rc = pgtest_open(&T, 4, schema, 2, &P);
	H.pool = P;
	snprintf(H.hostname, sizeof H.hostname, "hisp.a.test");
	return rc;
}

static int group_teardown(void **state)
{
	(void)state;
	pgtest_close(&T, P);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	if (T.skip)
		return 0;
	if (hie_db_acquire(P, -1, &C) != HIE_OK)
		return -1;
	return hie_db_exec(C, "TRUNCATE hisp_mailbox, hisp_outbound, hisp_outbound_rcpt, hisp_inbound CASCADE", 0, NULL,
			   NULL) == HIE_OK
		       ? 0
		       : -1;
}

static int teardown(void **state)
{
	(void)state;
	if (C)
		hie_db_release(P, C, false);
	C = NULL;
	return 0;
}

static void sql(const char *q)
{
	assert_int_equal(hie_db_exec(C, q, 0, NULL, NULL), HIE_OK);
}

/* An outbound message with recipients (state sent unless told), returns its id. */
static long long outbound(const char *msgid, const char *kind, bool want_final, const char *state, const char *r1,
			  const char *r2)
{
	PGresult *r;
	const char *p[] = {msgid, kind, want_final ? "t" : "f"};
	assert_int_equal(hie_db_exec(C,
				     "INSERT INTO hisp_outbound (message_id, kind, sender, raw, want_final, deadline)"
				     " VALUES ($1, $2, 'alice@a.test', 'raw', $3::boolean, now()) RETURNING id",
				     3, p, &r),
			 HIE_OK);
	long long id;
	assert_int_equal(hie_db_get_ll(r, 0, 0, &id), HIE_OK);
	PQclear(r);
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", id);
	const char *rc[] = {r1, r2};
	for (int i = 0; i < 2; i++) {
		if (!rc[i])
			continue;
		const char *q[] = {ids, rc[i], state};
		assert_int_equal(hie_db_exec(C, "INSERT INTO hisp_outbound_rcpt (outbound_id, address, state)"
						" VALUES ($1::bigint, $2, $3)",
					     3, q, NULL),
				 HIE_OK);
	}
	return id;
}

static char *rcpt_state(long long id, const char *addr, char *out, size_t outlen)
{
	PGresult *r;
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", id);
	const char *p[] = {ids, addr};
	assert_int_equal(hie_db_exec(C,
				     "SELECT state || CASE WHEN notified THEN '+' ELSE '' END FROM hisp_outbound_rcpt"
				     " WHERE outbound_id = $1::bigint AND address = $2",
				     2, p, &r),
			 HIE_OK);
	assert_int_equal(PQntuples(r), 1);
	snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return out;
}

static long long notices(const char *kind)
{
	return pgtest_scalar(P, "SELECT count(*) FROM hisp_mailbox WHERE address = 'alice@a.test' AND kind = $1", kind);
}

/* What the receive job does with a notice: track it, and put it in the sender's mailbox unless suppressed. */
static bool notice(const char *kind, const char *disp, const char *orig, const char *final_rcpt, const char *from)
{
	struct hisp_notice_info n;
	memset(&n, 0, sizeof n);
	n.kind = strcmp(kind, "dsn") == 0 ? HISP_NOTICE_DSN : HISP_NOTICE_MDN;
	snprintf(n.disposition, sizeof n.disposition, "%s", disp);
	snprintf(n.original_message_id, sizeof n.original_message_id, "%s", orig);
	snprintf(n.final_recipient, sizeof n.final_recipient, "%s", final_rcpt);
	n.dsn_failed = n.kind == HISP_NOTICE_DSN && strcmp(disp, "failed") == 0;
	char sender[256] = "junk";
	sql("BEGIN");
	assert_int_equal(hisp_track_notice(&H, C, &n, from, sender, sizeof sender), HIE_OK);
	if (sender[0])
		assert_int_equal(hisp_mailbox_put(C, sender, kind, 0, orig, "notice", 6), HIE_OK);
	sql("COMMIT");
	return sender[0] != '\0';
}

static void run_timeout(long long id)
{
	char payload[24];
	snprintf(payload, sizeof payload, "%lld", id);
	struct hie_job j = {.id = 1, .kind = "hisp.timeout", .payload = payload, .attempts = 1, .max_attempts = 3};
	char errbuf[128] = "";
	assert_int_equal(hisp_timeout_job(&j, &H, errbuf, sizeof errbuf), HIE_OK);
}

static void fail_rcpt(long long id, const char *addr, hie_err_t want)
{
	sql("BEGIN");
	assert_int_equal(hisp_track_fail(&H, C, id, addr, "5.1.1", "no certificate found"), want);
	sql("COMMIT");
}

/* --- tests ------------------------------------------------------------------------------------------------ */

static void test_processed_is_final_without_want_final(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	char s[32];
	long long id = outbound("m1@a.test", "message", false, "sent", "bob@b.test", NULL);
	assert_true(notice("mdn", "processed", "m1@a.test", "bob@b.test", "bob@b.test"));
	assert_string_equal(rcpt_state(id, "bob@b.test", s, sizeof s), "processed+");
	assert_false(notice("mdn", "processed", "m1@a.test", "bob@b.test", "bob@b.test"));  /* duplicate */
	assert_false(notice("mdn", "dispatched", "m1@a.test", "bob@b.test", "bob@b.test")); /* after final */
	assert_false(notice("mdn", "failed", "m1@a.test", "bob@b.test", "bob@b.test"));
	run_timeout(id);
	assert_string_equal(rcpt_state(id, "bob@b.test", s, sizeof s), "processed+");
	assert_int_equal(notices("mdn"), 1);
	assert_int_equal(notices("dsn"), 0);
}

static void test_want_final_processed_then_dispatched(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	char s[32];
	long long id = outbound("m2@a.test", "message", true, "sent", "bob@b.test", NULL);
	assert_true(notice("mdn", "processed", "m2@a.test", "bob@b.test", "bob@b.test")); /* first notice */
	assert_string_equal(rcpt_state(id, "bob@b.test", s, sizeof s), "processed");
	assert_false(notice("mdn", "processed", "m2@a.test", "bob@b.test", "bob@b.test")); /* never twice */
	assert_true(notice("mdn", "dispatched", "m2@a.test", "bob@b.test", "bob@b.test"));
	assert_string_equal(rcpt_state(id, "bob@b.test", s, sizeof s), "dispatched+");
	assert_false(notice("mdn", "dispatched", "m2@a.test", "bob@b.test", "bob@b.test"));
	assert_false(notice("dsn", "failed", "m2@a.test", "bob@b.test", "mailer-daemon@b.test"));
	run_timeout(id);
	assert_int_equal(notices("mdn"), 2); /* processed + dispatched, one of them final */
	assert_int_equal(notices("dsn"), 0);
}

static void test_timeout_then_late_mdn(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	char s[32];
	long long id = outbound("m3@a.test", "message", true, "sent", "bob@b.test", "carol@c.test");
	assert_true(notice("mdn", "processed", "m3@a.test", "bob@b.test", "bob@b.test"));
	run_timeout(id);
	assert_string_equal(rcpt_state(id, "bob@b.test", s, sizeof s), "timeout+");
	assert_string_equal(rcpt_state(id, "carol@c.test", s, sizeof s), "timeout+");
	assert_int_equal(notices("dsn"), 1); /* one DSN naming both */
	char dsnid[64];
	snprintf(dsnid, sizeof dsnid, "dsn-timeout-%lld@hisp.a.test", id);
	assert_int_equal(pgtest_scalar(P,
				       "SELECT count(*) FROM hisp_mailbox WHERE kind = 'dsn' AND"
				       " position('Final-Recipient: rfc822;bob@b.test' in convert_from(content, 'UTF8')) > 0"
				       " AND position('Final-Recipient: rfc822;carol@c.test' in convert_from(content, 'UTF8')) > 0"
				       " AND position('Status: 4.4.7' in convert_from(content, 'UTF8')) > 0"
				       " AND message_id = $1",
				       dsnid),
			 1);
	/* late MDNs after the timeout are suppressed */
	assert_false(notice("mdn", "dispatched", "m3@a.test", "bob@b.test", "bob@b.test"));
	assert_false(notice("mdn", "processed", "m3@a.test", "carol@c.test", "carol@c.test"));
	/* idempotent */
	run_timeout(id);
	run_timeout(id);
	assert_int_equal(notices("dsn"), 1);
	assert_int_equal(notices("mdn"), 1);
	/* the DSN parses back as ours, about the original message */
	PGresult *r;
	assert_int_equal(hie_db_exec_bin(C, "SELECT content FROM hisp_mailbox WHERE kind = 'dsn'", 0, NULL, NULL, NULL, 1,
					 &r),
			 HIE_OK);
	struct hisp_notice_info n;
	assert_int_equal(hisp_notice_parse_nth(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), 1, &n), HIE_OK);
	assert_int_equal(n.kind, HISP_NOTICE_DSN);
	assert_string_equal(n.original_message_id, "m3@a.test");
	assert_string_equal(n.final_recipient, "carol@c.test");
	assert_non_null(strstr(PQgetvalue(r, 0, 0), "Status: 4.4.7"));
	PQclear(r);
}

static void test_timeout_only_open_recipients(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	char s[32];
	long long id = outbound("m4@a.test", "message", false, "pending", "bob@b.test", "carol@c.test");
	sql("BEGIN");
	assert_int_equal(hisp_track_sent(C, id, "Bob@B.test"), HIE_OK);
	sql("COMMIT");
	assert_string_equal(rcpt_state(id, "bob@b.test", s, sizeof s), "sent");
	assert_true(notice("mdn", "processed", "m4@a.test", "bob@b.test", "bob@b.test"));
	/* sent never moves a recipient back */
	sql("BEGIN");
	assert_int_equal(hisp_track_sent(C, id, "bob@b.test"), HIE_OK);
	sql("COMMIT");
	assert_string_equal(rcpt_state(id, "bob@b.test", s, sizeof s), "processed+");
	run_timeout(id);
	assert_string_equal(rcpt_state(id, "bob@b.test", s, sizeof s), "processed+");
	assert_string_equal(rcpt_state(id, "carol@c.test", s, sizeof s), "timeout+");
	assert_int_equal(pgtest_scalar(P,
				       "SELECT count(*) FROM hisp_mailbox WHERE kind = 'dsn'"
				       " AND position('bob@b.test' in convert_from(content, 'UTF8')) = 0"
				       " AND position('carol@c.test' in convert_from(content, 'UTF8')) > 0",
				       NULL),
			 1);
	assert_int_equal(notices("dsn") + notices("mdn"), 2); /* one per recipient */
}

static void test_suppressed_unknown_and_notices(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	char s[32];
	outbound("mdn-9-0@hisp.a.test", "mdn", false, "sent", "bob@b.test", NULL);
	long long id = outbound("m5@a.test", "message", false, "sent", "bob@b.test", "carol@c.test");
	assert_false(notice("mdn", "processed", "nosuch@a.test", "bob@b.test", "bob@b.test"));
	assert_false(notice("mdn", "processed", "mdn-9-0@hisp.a.test", "bob@b.test", "bob@b.test")); /* our MDN */
	assert_false(notice("mdn", "processed", "", "bob@b.test", "bob@b.test"));
	assert_false(notice("mdn", "displayed", "m5@a.test", "bob@b.test", "bob@b.test"));
	assert_false(notice("dsn", "delayed", "m5@a.test", "bob@b.test", "mailer-daemon@b.test"));
	assert_false(notice("mdn", "processed", "m5@a.test", "dave@d.test", "eve@e.test")); /* not a recipient */
	/* b.test cannot report for carol@c.test: its own address is used instead */
	assert_true(notice("mdn", "failed", "m5@a.test", "carol@c.test", "bob@b.test"));
	assert_string_equal(rcpt_state(id, "carol@c.test", s, sizeof s), "sent");
	assert_string_equal(rcpt_state(id, "bob@b.test", s, sizeof s), "failed+");
	/* no Final-Recipient: the reporting address */
	assert_true(notice("mdn", "processed", "m5@a.test", "", "Carol@C.test"));
	assert_string_equal(rcpt_state(id, "carol@c.test", s, sizeof s), "processed+");
	assert_int_equal(notices("mdn"), 2);
}

static void test_dsn_notice_fails(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	char s[32];
	long long id = outbound("m6@a.test", "message", true, "sent", "bob@b.test", NULL);
	assert_true(notice("dsn", "failed", "m6@a.test", "bob@b.test", "mailer-daemon@b.test"));
	assert_string_equal(rcpt_state(id, "bob@b.test", s, sizeof s), "failed+");
	assert_false(notice("mdn", "processed", "m6@a.test", "bob@b.test", "bob@b.test"));
	run_timeout(id);
	assert_int_equal(notices("dsn"), 1);
	assert_int_equal(notices("mdn"), 0);
}

static void test_track_fail(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	char s[32];
	long long id = outbound("m7@a.test", "message", false, "pending", "bob@b.test", "carol@c.test");
	long long nid = outbound("mdn-1-0@hisp.a.test", "mdn", false, "pending", "dave@d.test", NULL);
	fail_rcpt(id, "bob@b.test", HIE_OK);
	assert_string_equal(rcpt_state(id, "bob@b.test", s, sizeof s), "failed+");
	assert_int_equal(notices("dsn"), 1);
	fail_rcpt(id, "bob@b.test", HIE_OK); /* again: no second DSN */
	assert_int_equal(notices("dsn"), 1);
	/* a notice we send fails silently: no notice about a notice */
	fail_rcpt(nid, "dave@d.test", HIE_OK);
	assert_string_equal(rcpt_state(nid, "dave@d.test", s, sizeof s), "failed");
	assert_int_equal(notices("dsn"), 1);
	fail_rcpt(id, "nobody@b.test", HIE_ENOTFOUND);
	sql("BEGIN");
	assert_int_equal(hisp_track_fail(&H, C, id, "not an address", "5.0.0", "x"), HIE_EINVAL);
	sql("ROLLBACK");
	/* the DSN names the recipient, the status and the reason; the late MDN is suppressed */
	assert_int_equal(pgtest_scalar(P,
				       "SELECT count(*) FROM hisp_mailbox WHERE kind = 'dsn' AND"
				       " position('Status: 5.1.1' in convert_from(content, 'UTF8')) > 0 AND"
				       " position('Diagnostic-Code: smtp; no certificate found' in convert_from(content, 'UTF8')) > 0",
				       NULL),
			 1);
	assert_false(notice("mdn", "processed", "m7@a.test", "bob@b.test", "bob@b.test"));
	run_timeout(id); /* carol still sent... pending: times out with one DSN */
	assert_string_equal(rcpt_state(id, "carol@c.test", s, sizeof s), "timeout+");
	assert_int_equal(notices("dsn"), 2);
	assert_int_equal(notices("mdn"), 0);
}

static void test_timeout_bad_payload(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	char errbuf[64];
	static const char *const bad[] = {"", "x", "12x", "-3", "0"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct hie_job j = {.payload = (char *)bad[i]};
		assert_int_equal(hisp_timeout_job(&j, &H, errbuf, sizeof errbuf), HIE_EPERMANENT);
	}
	run_timeout(999999); /* unknown outbound: nothing to do */
}

/* --- mailbox ---------------------------------------------------------------------------------------------- */

static long long inbound_row(void)
{
	PGresult *r;
	assert_int_equal(hie_db_exec(C,
				     "INSERT INTO hisp_inbound (peer, mail_from, rcpt_to, raw)"
				     " VALUES ('127.0.0.1', 'a@a.test', '{bob@b.test}', 'x') RETURNING id",
				     0, NULL, &r),
			 HIE_OK);
	long long id;
	assert_int_equal(hie_db_get_ll(r, 0, 0, &id), HIE_OK);
	PQclear(r);
	return id;
}

static int run_cli(int (*fn)(const struct hisp_cli *, int, char **), int argc, char **argv, char **out,
		   size_t *outlen)
{
	char *errs = NULL;
	size_t errlen = 0;
	FILE *o = open_memstream(out, outlen), *e = open_memstream(&errs, &errlen);
	struct hisp_cli c = {.pool = P, .out = o, .err = e};
	int rc = fn ? fn(&c, argc, argv) : hisp_cli_status(&c);
	fclose(o);
	fclose(e);
	free(errs);
	return rc;
}

static void test_mailbox(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	long long in = inbound_row();
	static const char content[] = "From: a@a.test\r\n\r\nbinary\0\xff\x01 end";
	sql("BEGIN");
	assert_int_equal(hisp_mailbox_put(C, "Bob@B.test", "message", in, "id-1@a.test", content, sizeof content), HIE_OK);
	assert_int_equal(hisp_mailbox_put(C, "bob@b.test", "message", in, "id-1@a.test", "other", 5), HIE_OK); /* dup */
	assert_int_equal(hisp_mailbox_put(C, "bob@b.test", "mdn", 0, "bad\nid", "n1", 2), HIE_OK);
	assert_int_equal(hisp_mailbox_put(C, "bob@b.test", "bogus", 0, NULL, "x", 1), HIE_EINVAL);
	assert_int_equal(hisp_mailbox_put(C, "bob", "message", 0, NULL, "x", 1), HIE_EINVAL);
	sql("COMMIT");
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_mailbox WHERE address = $1", "bob@b.test"), 2);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_mailbox WHERE message_id IS NULL", NULL), 1);

	long long first = pgtest_scalar(P, "SELECT min(id) FROM hisp_mailbox", NULL);
	struct hie_buf b;
	struct hisp_mailbox_item meta;
	hie_buf_init(&b, 1 << 20);
	assert_int_equal(hisp_mailbox_get(C, "bob@b.test", first, &b, &meta), HIE_OK);
	assert_int_equal(b.len, sizeof content);
	assert_memory_equal(b.data, content, sizeof content);
	assert_string_equal(meta.kind, "message");
	assert_string_equal(meta.message_id, "id-1@a.test");
	assert_false(meta.acked);
	hie_buf_reset(&b);
	assert_int_equal(hisp_mailbox_get(C, "carol@c.test", first, &b, NULL), HIE_ENOTFOUND); /* not hers */
	assert_int_equal(hisp_mailbox_ack(C, "bob@b.test", first), HIE_OK);
	assert_int_equal(hisp_mailbox_ack(C, "bob@b.test", first), HIE_OK);
	assert_int_equal(hisp_mailbox_ack(C, "carol@c.test", first), HIE_ENOTFOUND);
	hie_buf_free(&b);

	/* mailbox list / get */
	char idbuf[24];
	snprintf(idbuf, sizeof idbuf, "%lld", first);
	char *out = NULL;
	size_t outlen = 0;
	char *list[] = {"list", "BOB@b.test"};
	assert_int_equal(run_cli(hisp_cli_mailbox, 2, list, &out, &outlen), 0);
	assert_non_null(strstr(out, "kind=message"));
	assert_non_null(strstr(out, "message_id=id-1@a.test acked=yes\n"));
	assert_non_null(strstr(out, "kind=mdn"));
	assert_non_null(strstr(out, "size=2 message_id=- acked=no\n"));
	free(out);
	char *get[] = {"get", "bob@b.test", idbuf};
	assert_int_equal(run_cli(hisp_cli_mailbox, 3, get, &out, &outlen), 0);
	assert_int_equal(outlen, sizeof content);
	assert_memory_equal(out, content, sizeof content);
	free(out);
	static const struct {
		int argc;
		char *argv[4];
		int rc;
	} bad[] = {
		{0, {NULL}, 2},
		{1, {"frob"}, 2},
		{1, {"list"}, 2},
		{2, {"list", "not-an-address"}, 2},
		{3, {"list", "bob@b.test", "x"}, 2},
		{2, {"get", "bob@b.test"}, 2},
		{3, {"get", "bob@b.test", "12x"}, 2},
		{3, {"get", "bob@b.test", "-1"}, 2},
		{3, {"get", "bob@b.test", "99999999"}, 1},
		{3, {"get", "carol@c.test", "1"}, 1},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(run_cli(hisp_cli_mailbox, bad[i].argc, (char **)bad[i].argv, &out, &outlen), bad[i].rc);
		free(out);
	}
}

static void count_cb(const char *what, const char *st, long long n, void *arg)
{
	char *acc = arg;
	size_t l = strlen(acc);
	snprintf(acc + l, 512 - l, "%s/%s=%lld ", what, st, n);
}

static void test_status_and_counts(void **state)
{
	(void)state;
	PGTEST_SKIP_IF_NEEDED(&T);
	long long in = inbound_row();
	char q[256];
	snprintf(q, sizeof q,
		 "UPDATE hisp_inbound SET state = 'quarantined', reason = 'bcc\nforged=1', processed_at = now()"
		 " WHERE id = %lld",
		 in);
	sql(q);
	inbound_row();
	long long id = outbound("m8@a.test", "message", true, "sent", "bob@b.test", "carol@c.test");
	fail_rcpt(id, "carol@c.test", HIE_OK);
	char *out = NULL;
	size_t outlen = 0;
	assert_int_equal(run_cli(NULL, 0, NULL, &out, &outlen), 0);
	assert_non_null(strstr(out, "state=quarantined count=1"));
	assert_non_null(strstr(out, "state=received count=1"));
	assert_non_null(strstr(out, "reason=bcc?forged=1\n")); /* one line, whatever the reason holds */
	assert_non_null(strstr(out, "message_id=m8@a.test recipient=bob@b.test state=sent deadline="));
	assert_non_null(strstr(out, "message_id=m8@a.test recipient=carol@c.test state=failed"));
	free(out);
	char acc[512] = "";
	assert_int_equal(hisp_counts(P, count_cb, acc), HIE_OK);
	assert_non_null(strstr(acc, "inbound/quarantined=1 "));
	assert_non_null(strstr(acc, "inbound/received=1 "));
	assert_non_null(strstr(acc, "outbound/failed=1 "));
	assert_non_null(strstr(acc, "outbound/sent=1 "));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_processed_is_final_without_want_final, setup, teardown),
		cmocka_unit_test_setup_teardown(test_want_final_processed_then_dispatched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_then_late_mdn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_only_open_recipients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_suppressed_unknown_and_notices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dsn_notice_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_track_fail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_bad_payload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_and_counts, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
