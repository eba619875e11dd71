/*
 * hisp_users_test.c — edge users (hisp_users.c) and `hienode user` (hisp_cli_user.c) against a real embedded
 * PostgreSQL: add (duplicates, bad names, short/long passwords), the stored hash is Argon2id and never the
 * password, grant/revoke/may_use (disabled users, unknown users), login (right, wrong, unknown, disabled),
 * the per-client lockout after auth_max_failures (a right password refused while locked, other clients not
 * affected, success resetting the count, the lockout ending after auth_lockout), logins in parallel, HTTP
 * Basic parsing (table), and the CLI with the password on a pipe as stdin (list never shows a hash).
 */
#include "tests/unit/core/pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/hisp/hisptest.h"

static struct pgtest T;
static struct hie_db_pool *P;
static struct hisp H;

#define PW "correct horse battery"

static int group_setup(void **state)
{
	(void)state;
	if (hisptest_open(&T, &P) != 0)
		return -1;
	H.pool = P;
	H.auth_max_failures = 3;
	H.auth_lockout_ms = 1000;
	return 0;
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
	return hisptest_reset(P, "TRUNCATE hisp_users CASCADE", NULL);
}

/* --- one call in its own transaction --------------------------------------------------------------------- */

enum op { ADD, PASSWD, REMOVE, GRANT, REVOKE, MAY };
struct call {
	enum op op;
	const char *a, *b;
	bool ok;
};

static hie_err_t call_tx(PGconn *tx, void *arg)
{
	struct call *c = arg;
	switch (c->op) {
	case ADD:
		return hisp_user_add(tx, c->a, c->b);
	case PASSWD:
		return hisp_user_password(tx, c->a, c->b);
	case REMOVE:
		return hisp_user_remove(tx, c->a);
	case GRANT:
		return hisp_user_grant(tx, c->a, c->b);
	case REVOKE:
		return hisp_user_revoke(tx, c->a, c->b);
	case MAY:
		return hisp_user_may_use(tx, c->a, c->b, &c->ok);
	}
	return HIE_EINVAL;
}

static hie_err_t run(enum op op, const char *a, const char *b)
{
	struct call c = {.op = op, .a = a, .b = b};
	return hie_db_tx(P, call_tx, &c);
}

static bool may(const char *name, const char *addr)
{
	struct call c = {.op = MAY, .a = name, .b = addr};
	assert_int_equal(hie_db_tx(P, call_tx, &c), HIE_OK);
	return c.ok;
}

static hie_err_t login(const char *peer, const char *name, const char *pw)
{
	char user[HISP_USER_MAX + 1] = "x";
	hie_err_t err = hisp_user_login(&H, peer, name, pw, user, sizeof user);
	if (err)
		assert_string_equal(user, "");
	return err;
}

/* --- tests ------------------------------------------------------------------------------------------------ */

static void test_add(void **state)
{
	(void)state;
	if (T.skip)
		skip();
	char longpw[HISP_PASSWORD_MAX + 2];
	memset(longpw, 'x', sizeof longpw - 1);
	longpw[sizeof longpw - 1] = '\0';
	assert_int_equal(run(ADD, "Alice@A.Test", PW), HIE_OK);
	assert_int_equal(run(ADD, "alice@a.test", "another password"), HIE_EEXIST);
	const struct {
		const char *name, *pw;
	} bad[] = {
		{"", PW}, {"noat", PW}, {"a b@a.test", PW}, {"@a.test", PW}, {"x@", PW},
		{"bob@a.test", "short"}, {"bob@a.test", "elevenchars"}, {"bob@a.test", longpw}, {"bob@a.test", ""},
		{NULL, PW}, {"bob@a.test", NULL},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(run(ADD, bad[i].name, bad[i].pw), HIE_EINVAL);
	longpw[HISP_PASSWORD_MAX] = '\0'; /* exactly the maximum is fine, as is exactly the minimum */
	assert_int_equal(run(ADD, "long@a.test", longpw), HIE_OK);
	assert_int_equal(run(ADD, "min@a.test", "twelve chars"), HIE_OK);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_users", NULL), 3);
	/* Argon2id, salted (two users with one password get different hashes), never the password. */
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_users WHERE pw_hash LIKE '$argon2id$%'", NULL), 3);
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_users WHERE strpos(pw_hash, $1) > 0", PW), 0);
	assert_int_equal(run(ADD, "twin@a.test", PW), HIE_OK);
	assert_int_equal(pgtest_scalar(P, "SELECT count(DISTINCT pw_hash) FROM hisp_users WHERE name IN"
					  " ('alice@a.test', 'twin@a.test')", NULL), 2);
	/* The user may send as its own address. */
	assert_true(may("alice@a.test", "ALICE@a.test"));
	assert_false(may("alice@a.test", "twin@a.test"));
}

static void test_grants(void **state)
{
	(void)state;
	if (T.skip)
		skip();
	assert_int_equal(run(ADD, "alice@a.test", PW), HIE_OK);
	assert_int_equal(run(GRANT, "alice@a.test", "Clinic@A.test"), HIE_OK);
	assert_int_equal(run(GRANT, "alice@a.test", "clinic@a.test"), HIE_OK); /* idempotent */
	assert_true(may("alice@a.test", "clinic@a.test"));
	assert_true(may("ALICE@A.TEST", "clinic@a.test"));
	assert_false(may("alice@a.test", "other@a.test"));
	assert_false(may("nobody@a.test", "clinic@a.test"));
	assert_false(may("alice@a.test", "not an address"));
	assert_int_equal(run(GRANT, "nobody@a.test", "clinic@a.test"), HIE_ENOTFOUND);
	assert_int_equal(run(GRANT, "alice@a.test", "bad address"), HIE_EINVAL);
	assert_int_equal(run(REVOKE, "alice@a.test", "clinic@a.test"), HIE_OK);
	assert_int_equal(run(REVOKE, "alice@a.test", "clinic@a.test"), HIE_OK); /* idempotent */
	assert_false(may("alice@a.test", "clinic@a.test"));
	assert_int_equal(run(REVOKE, "nobody@a.test", "clinic@a.test"), HIE_ENOTFOUND);
	/* A disabled user may use nothing. */
	assert_int_equal(pgtest_exec(P, "UPDATE hisp_users SET disabled = true"), HIE_OK);
	assert_false(may("alice@a.test", "alice@a.test"));
	assert_int_equal(pgtest_exec(P, "UPDATE hisp_users SET disabled = false"), HIE_OK);
	assert_true(may("alice@a.test", "alice@a.test"));
	assert_int_equal(run(REMOVE, "alice@a.test", NULL), HIE_OK);
	assert_int_equal(run(REMOVE, "alice@a.test", NULL), HIE_ENOTFOUND);
	assert_false(may("alice@a.test", "alice@a.test"));
	assert_int_equal(pgtest_scalar(P, "SELECT count(*) FROM hisp_user_addresses", NULL), 0);
}

static void test_login(void **state)
{
	(void)state;
	if (T.skip)
		skip();
	char user[HISP_USER_MAX + 1];
	assert_int_equal(run(ADD, "alice@a.test", PW), HIE_OK);
	assert_int_equal(hisp_user_login(&H, "10.0.0.1", "ALICE@a.test", PW, user, sizeof user), HIE_OK);
	assert_string_equal(user, "alice@a.test");
	/* Again: answered from the verified-credentials cache (same outcome, no second Argon2id). */
	assert_int_equal(login("10.0.0.1", "alice@a.test", PW), HIE_OK);
	assert_int_equal(login("10.0.0.1", "alice@a.test", PW "x"), HIE_EDENIED);
	assert_int_equal(login("10.0.0.1", "alice@a.test", ""), HIE_EDENIED);
	assert_int_equal(login("10.0.0.2", "nobody@a.test", PW), HIE_EDENIED);
	assert_int_equal(login("10.0.0.2", "not a name", PW), HIE_EDENIED);
	/* A new password replaces the old one. */
	assert_int_equal(run(PASSWD, "alice@a.test", "a brand new password"), HIE_OK);
	assert_int_equal(run(PASSWD, "nobody@a.test", "a brand new password"), HIE_ENOTFOUND);
	assert_int_equal(run(PASSWD, "alice@a.test", "short"), HIE_EINVAL);
	assert_int_equal(login("10.0.0.3", "alice@a.test", PW), HIE_EDENIED);
	assert_int_equal(login("10.0.0.3", "alice@a.test", "a brand new password"), HIE_OK);
	/* Disabled: the right password is refused. */
	assert_int_equal(pgtest_exec(P, "UPDATE hisp_users SET disabled = true"), HIE_OK);
	assert_int_equal(login("10.0.0.4", "alice@a.test", "a brand new password"), HIE_EDENIED);
	/* Re-enabled, verified (cached), then removed: refused at once, the cache notwithstanding. */
	assert_int_equal(pgtest_exec(P, "UPDATE hisp_users SET disabled = false"), HIE_OK);
	assert_int_equal(login("10.0.0.4", "alice@a.test", "a brand new password"), HIE_OK);
	assert_int_equal(run(REMOVE, "alice@a.test", NULL), HIE_OK);
	assert_int_equal(login("10.0.0.4", "alice@a.test", "a brand new password"), HIE_EDENIED);
}

static void test_lockout(void **state)
{
	(void)state;
	if (T.skip)
		skip();
	assert_int_equal(run(ADD, "alice@a.test", PW), HIE_OK);
	/* Three failures (auth_max_failures) lock 10.1.0.1 out, even for the right password and unknown users. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(login("10.1.0.1", i == 1 ? "nobody@a.test" : "alice@a.test", "wrong password!"),
				 HIE_EDENIED);
	assert_int_equal(login("10.1.0.1", "alice@a.test", PW), HIE_EBUSY);
	assert_int_equal(login("10.1.0.1", "nobody@a.test", PW), HIE_EBUSY);
	/* Another client is not affected. */
	assert_int_equal(login("10.1.0.2", "alice@a.test", PW), HIE_OK);
	/* A success resets the count: 2 failures, success, 2 failures, success. */
	for (int round = 0; round < 2; round++) {
		assert_int_equal(login("10.1.0.3", "alice@a.test", "wrong password!"), HIE_EDENIED);
		assert_int_equal(login("10.1.0.3", "alice@a.test", "wrong password!"), HIE_EDENIED);
		assert_int_equal(login("10.1.0.3", "alice@a.test", PW), HIE_OK);
	}
	/* The lockout (1 s here) ends: eventually the right password is accepted again. */
	hie_err_t err = HIE_EBUSY;
	for (int i = 0; i < 50 && err == HIE_EBUSY; i++) {
		err = login("10.1.0.1", "alice@a.test", PW);
		if (err == HIE_EBUSY)
			nanosleep(&(struct timespec){.tv_nsec = 200 * 1000 * 1000}, NULL);
	}
	assert_int_equal(err, HIE_OK);
	/* hisp_auth_limit_reset forgets every count. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(login("10.1.0.4", "alice@a.test", "wrong password!"), HIE_EDENIED);
	assert_int_equal(login("10.1.0.4", "alice@a.test", PW), HIE_EBUSY);
	hisp_auth_limit_reset();
	assert_int_equal(login("10.1.0.4", "alice@a.test", PW), HIE_OK);
}

/* Many clients hashing at once: all answered right (at most 2 verify at a time, the rest wait). */
static void *par_login(void *arg)
{
	char peer[32], user[HISP_USER_MAX + 1];
	snprintf(peer, sizeof peer, "10.2.0.%d", (int)(intptr_t)arg);
	bool good = (intptr_t)arg % 2 == 0;
	hie_err_t err = hisp_user_login(&H, peer, "alice@a.test", good ? PW : "wrong password!", user, sizeof user);
	return (void *)(intptr_t)(good ? err == HIE_OK : err == HIE_EDENIED);
}

static void test_parallel(void **state)
{
	(void)state;
	if (T.skip)
		skip();
	assert_int_equal(run(ADD, "alice@a.test", PW), HIE_OK);
	pthread_t th[8];
	for (intptr_t i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&th[i], NULL, par_login, (void *)i), 0);
	for (int i = 0; i < 8; i++) {
		void *ok;
		pthread_join(th[i], &ok);
		assert_true((intptr_t)ok);
	}
}

static void test_basic_auth(void **state)
{
	(void)state;
	const struct {
		const char *in;
		hie_err_t err;
		const char *name, *pass;
	} cases[] = {
		{.in = "Basic YWxpY2VAYS50ZXN0OnMzY3JldDpwYXNz", .name = "alice@a.test", .pass = "s3cret:pass"},
		{.in = "basic   YWxpY2VAYS50ZXN0OnM=  ", .name = "alice@a.test", .pass = "s"},
		{.in = "Basic YWxpY2VAYS50ZXN0Og==", .name = "alice@a.test", .pass = ""},
		{.in = "Basic Og==", .err = HIE_EPARSE},                   /* ":" : empty name */
		{.in = "Basic YWxpY2U=", .err = HIE_EPARSE},               /* no colon */
		{.in = "Basic YWxpY2VAYS50ZXN0OnM", .err = HIE_EPARSE},    /* padding missing */
		{.in = "Basic YWxp!2VAYS50ZXN0OnM=", .err = HIE_EPARSE},   /* not base64 */
		{.in = "Basic YSBiOmM=", .err = HIE_EPARSE},               /* "a b:c": blank in the name */
		{.in = "Basic YQBiOmM=", .err = HIE_EPARSE},               /* NUL in the name */
		{.in = "Bearer YWxpY2U6cw==", .err = HIE_EPARSE},
		{.in = "BasicYWxpY2U6cw==", .err = HIE_EPARSE},
		{.in = "Basic", .err = HIE_EPARSE},
		{.in = "Basic ", .err = HIE_EPARSE},
		{.in = "", .err = HIE_EPARSE},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char name[HISP_USER_MAX + 1], pass[HISP_PASSWORD_MAX + 1];
		hie_err_t err = hisp_basic_auth_parse(cases[i].in, name, sizeof name, pass, sizeof pass);
		if (err != cases[i].err)
			fail_msg("case %zu '%s': got %s", i, cases[i].in, hie_errname(err));
		if (!err) {
			assert_string_equal(name, cases[i].name);
			assert_string_equal(pass, cases[i].pass);
		}
	}
	/* A name longer than the buffer is refused, not cut. */
	char small[4], pass[16];
	assert_int_equal(hisp_basic_auth_parse("Basic YWxpY2VAYS50ZXN0OnM=", small, sizeof small, pass, sizeof pass),
			 HIE_EPARSE);
}

/* --- the CLI ------------------------------------------------------------------------------------------------ */

/* Runs `user ARGS` (split on blanks) with input on a pipe as stdin; out/err captured. */
static int cli(const char *input, const char *line, char *out, size_t outlen, char *errout, size_t errlen)
{
	const struct hisp_cli c = {.pool = P};
	return hisptest_cli(&c, hisp_cli_user, line, input ? input : "", out, outlen, errout, errlen);
}

static void test_cli(void **state)
{
	(void)state;
	if (T.skip)
		skip();
	char out[2048], err[2048];
	const struct {
		const char *input, *line;
		int rc;
		const char *out, *err;
	} steps[] = {
		{PW "\n", "add Alice@A.test", 0, "user added name=alice@a.test", ""},
		{PW "\n", "add alice@a.test", 1, "", "user exists"},
		{"short\n", "add bob@a.test", 2, "", "shorter than 12"},
		{"", "add bob@a.test", 2, "", "nothing read"},
		{PW "\n", "add not-an-address", 2, "", "not-an-address"},
		{PW "\n", "add", 2, "", "usage"},
		{PW "\n", "add a@a.test b@a.test", 2, "", "usage"},
		{"twelve chars\r\nignored\n", "add bob@a.test", 0, "user added name=bob@a.test", ""},
		{NULL, "grant alice@a.test clinic@a.test", 0, "user granted name=alice@a.test address=clinic@a.test", ""},
		{NULL, "grant nobody@a.test clinic@a.test", 1, "", "no such user"},
		{NULL, "grant alice@a.test", 2, "", "usage"},
		{NULL, "list", 0, "user name=alice@a.test disabled=no addresses=alice@a.test,clinic@a.test", ""},
		{NULL, "revoke alice@a.test clinic@a.test", 0, "user revoked", ""},
		{"another password\n", "passwd alice@a.test", 0, "user password changed name=alice@a.test", ""},
		{"another password\n", "passwd nobody@a.test", 1, "", "no such user"},
		{NULL, "remove bob@a.test", 0, "user removed name=bob@a.test", ""},
		{NULL, "remove bob@a.test", 1, "", "no such user"},
		{NULL, "frobnicate", 2, "", "unknown verb"},
	};
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		int rc = cli(steps[i].input, steps[i].line, out, sizeof out, err, sizeof err);
		if (rc != steps[i].rc || !strstr(out, steps[i].out) || !strstr(err, steps[i].err))
			fail_msg("step %zu '%s': rc %d out '%s' err '%s'", i, steps[i].line, rc, out, err);
	}
	assert_int_equal(login("10.3.0.1", "alice@a.test", "another password"), HIE_OK);
	assert_int_equal(cli(NULL, "list", out, sizeof out, err, sizeof err), 0);
	assert_non_null(strstr(out, "addresses=alice@a.test\n"));
	assert_null(strstr(out, "argon2"));
	assert_null(strstr(out, "bob@a.test"));
	assert_null(strstr(out, "another password"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_add, setup),
		cmocka_unit_test_setup(test_grants, setup),
		cmocka_unit_test_setup(test_login, setup),
		cmocka_unit_test_setup(test_lockout, setup),
		cmocka_unit_test_setup(test_parallel, setup),
		cmocka_unit_test(test_basic_auth),
		cmocka_unit_test_setup(test_cli, setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
