/*
 * core_pg_test.c — the embedded cluster against real PostgreSQL binaries: first start, settings (no TCP,
 * durability), hostile paths, two clusters side by side, reuse of a postmaster left by a killed node,
 * stale postmaster.pid (process gone, pid reused), interrupted initdb.
 */
#include "tests/unit/core/pgtest.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <grp.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "core/core_log.h"

static struct pgtest T;          /* the group's cluster */
static char second[64];          /* a second state dir, used by the recovery tests in order */

static int group_setup(void **state)
{
	(void)state;
	return pgtest_start(&T);
}

static int group_teardown(void **state)
{
	(void)state;
	pgtest_stop(&T);
	if (second[0]) {
		/* A failed test may have left the second cluster running: reuse it, then stop it. */
		struct hie_pg *pg = NULL;
		struct hie_pg_opts o = pgtest_opts(second);
		char pidfile[600];
		snprintf(pidfile, sizeof pidfile, "%s/pg/data/postmaster.pid", second);
		if (access(pidfile, F_OK) == 0 && hie_pg_start(&pg, &o) == HIE_OK)
			hie_pg_stop(pg);
		pgtest_rmrf(second);
	}
	return 0;
}

/* Runs a one-row query on conninfo and copies the value; returns 0 on success. */
static int query1(const char *conninfo, const char *sql, char *out, size_t outlen)
{
	int rc = -1;
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
			snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
			rc = 0;
		}
		PQclear(r);
	}
	PQfinish(c);
	return rc;
}

static long postmaster_pid(const char *datadir)
{
	char path[600], buf[32] = {0};
	snprintf(path, sizeof path, "%s/postmaster.pid", datadir);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	return strtol(buf, NULL, 10);
}

/* True when pid exists and is not a zombie (a container's init may be slow to reap the old postmaster). */
static bool process_running(long pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	const char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

static void test_find_bindir(void **state)
{
	(void)state;
	char dir[512], path[600];
	PGTEST_SKIP_IF_NEEDED(&T);
	assert_int_equal(hie_pg_find_bindir(NULL, 0, dir, sizeof dir), HIE_OK);
	snprintf(path, sizeof path, "%s/pg_ctl", dir);
	assert_int_equal(access(path, X_OK), 0);
	/* An explicit directory without the tools is a configuration error, not a silent fallback. */
	assert_int_equal(hie_pg_find_bindir("/nonexistent/bin", 0, dir, sizeof dir), HIE_ECONFIG);
	assert_int_equal(hie_pg_find_bindir("/tmp", 0, dir, sizeof dir), HIE_ECONFIG);
	/* A too-small output buffer fails instead of truncating. */
	assert_int_equal(hie_pg_find_bindir(NULL, 0, dir, 4), HIE_ECONFIG);
}

static void test_settings_no_tcp_durable(void **state)
{
	(void)state;
	char v[600];
	struct stat st;
	PGTEST_SKIP_IF_NEEDED(&T);
	const char *ci = hie_pg_conninfo(T.pg);
	assert_non_null(strstr(ci, "dbname=hienode"));
	assert_int_equal(query1(ci, "SHOW listen_addresses", v, sizeof v), 0);
	assert_string_equal(v, "");
	assert_int_equal(query1(ci, "SHOW fsync", v, sizeof v), 0);
	assert_string_equal(v, "on");
	assert_int_equal(query1(ci, "SHOW synchronous_commit", v, sizeof v), 0);
	assert_string_equal(v, "on");
	assert_int_equal(query1(ci, "SHOW server_encoding", v, sizeof v), 0);
	assert_string_equal(v, "UTF8");
	assert_int_equal(query1(ci, "SELECT current_database()", v, sizeof v), 0);
	assert_string_equal(v, "hienode");
	assert_int_equal(query1(ci, "SHOW data_directory", v, sizeof v), 0);
	assert_string_equal(v, hie_pg_datadir(T.pg));
	snprintf(v, sizeof v, "%s/pg/run", T.dir);
	assert_int_equal(stat(v, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	if (geteuid() == 0) {
		/* The server runs unprivileged; root owns nothing under pg/. */
		struct passwd *pw = getpwnam(PGTEST_USER);
		assert_non_null(pw);
		assert_int_equal(st.st_uid, pw->pw_uid);
		assert_int_equal(stat(hie_pg_datadir(T.pg), &st), 0);
		assert_int_equal(st.st_uid, pw->pw_uid);
	}
}

static void test_hostile_paths(void **state)
{
	(void)state;
	char dir[64], deep[512];
	struct hie_pg *pg = NULL;
	PGTEST_SKIP_IF_NEEDED(&T);
	assert_int_equal(pgtest_mkdir(dir, sizeof dir), 0);

	/* The socket path must fit sun_path (107 bytes): refused before anything is created. */
	snprintf(deep, sizeof deep, "%s/%s", dir,
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(mkdir(deep, 0711), 0);
	struct hie_pg_opts o = pgtest_opts(deep);
	assert_int_equal(hie_pg_start(&pg, &o), HIE_ECONFIG);
	assert_null(pg);
	char probe[600];
	snprintf(probe, sizeof probe, "%s/pg", deep);
	assert_int_not_equal(access(probe, F_OK), 0);

	/* Characters that /bin/sh (inside pg_ctl) would interpret are refused. */
	const char *bad[] = {"sp ace", "quo\"te", "dol$lar", "back`tick", "semi;colon", "new\nline"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(deep, sizeof deep, "%s/%s", dir, bad[i]);
		assert_int_equal(mkdir(deep, 0711), 0);
		o = pgtest_opts(deep);
		assert_int_equal(hie_pg_start(&pg, &o), HIE_ECONFIG);
		assert_null(pg);
	}

	/* A missing state dir, a bad port. */
	snprintf(deep, sizeof deep, "%s/missing", dir);
	o = pgtest_opts(deep);
	assert_int_equal(hie_pg_start(&pg, &o), HIE_ECONFIG);
	o = pgtest_opts(dir);
	o.port = 70000;
	assert_int_equal(hie_pg_start(&pg, &o), HIE_EINVAL);

	if (geteuid() == 0) {
		/* As root, initdb must not run as root: run_as is required and may not be root itself. */
		o = pgtest_opts(dir);
		o.run_as = NULL;
		assert_int_equal(hie_pg_start(&pg, &o), HIE_ECONFIG);
		o.run_as = "root";
		assert_int_equal(hie_pg_start(&pg, &o), HIE_ECONFIG);
		o.run_as = "no-such-user-hienode";
		assert_int_equal(hie_pg_start(&pg, &o), HIE_ECONFIG);
	}
	pgtest_rmrf(dir);
}

/* A second cluster beside the group's one; its first start also recovers from an interrupted initdb. */
static void test_two_clusters_side_by_side(void **state)
{
	(void)state;
	char v1[600], v2[600], junk[600];
	struct hie_pg *pg = NULL;
	PGTEST_SKIP_IF_NEEDED(&T);
	assert_int_equal(pgtest_mkdir(second, sizeof second), 0);
	/* What an initdb killed half-way leaves behind. */
	snprintf(junk, sizeof junk, "%s/pg", second);
	assert_int_equal(mkdir(junk, 0700), 0);
	snprintf(junk, sizeof junk, "%s/pg/data.init", second);
	assert_int_equal(mkdir(junk, 0700), 0);
	snprintf(junk, sizeof junk, "%s/pg/data.init/PG_VERSION", second);
	int fd = open(junk, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);

	struct hie_pg_opts o = pgtest_opts(second);
	assert_int_equal(hie_pg_start(&pg, &o), HIE_OK);
	assert_string_not_equal(hie_pg_conninfo(pg), hie_pg_conninfo(T.pg));
	assert_int_equal(query1(hie_pg_conninfo(pg), "SHOW data_directory", v1, sizeof v1), 0);
	assert_int_equal(query1(hie_pg_conninfo(T.pg), "SHOW data_directory", v2, sizeof v2), 0);
	assert_string_equal(v1, hie_pg_datadir(pg));
	assert_string_not_equal(v1, v2);
	assert_int_equal(access(junk, F_OK), -1); /* data.init is gone: renamed into data */
	char ci[600];
	snprintf(ci, sizeof ci, "%s connect_timeout=2", hie_pg_conninfo(pg));
	assert_int_equal(hie_pg_stop(pg), HIE_OK);
	/* Stopped means stopped: nothing answers on the second socket, the first still does. */
	assert_int_equal(query1(ci, "SELECT 1", v1, sizeof v1), -1);
	assert_int_equal(query1(hie_pg_conninfo(T.pg), "SELECT 1", v1, sizeof v1), 0);
}

/* The node was SIGKILLed: its postmaster still runs. The next start reuses it (same pid, data intact). */
static void test_reuse_running_postmaster(void **state)
{
	(void)state;
	char datadir[600], v[600];
	struct hie_pg *pg = NULL;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_pg_opts o = pgtest_opts(second);
	assert_int_equal(hie_pg_start(&pg, &o), HIE_OK);
	snprintf(datadir, sizeof datadir, "%s", hie_pg_datadir(pg));
	long pid1 = postmaster_pid(datadir);
	assert_true(pid1 > 1);
	PGconn *c = PQconnectdb(hie_pg_conninfo(pg));
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexec(c, "CREATE TABLE survivor (x int); INSERT INTO survivor VALUES (42)");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	PQfinish(c);
	hie_pg_forget(pg);

	assert_int_equal(hie_pg_start(&pg, &o), HIE_OK);
	assert_int_equal(postmaster_pid(datadir), pid1);
	assert_int_equal(query1(hie_pg_conninfo(pg), "SELECT x FROM survivor", v, sizeof v), 0);
	assert_string_equal(v, "42");
	assert_int_equal(hie_pg_stop(pg), HIE_OK);
	assert_int_equal(postmaster_pid(datadir), -1);
	assert_false(process_running(pid1));
}

/* Writes a postmaster.pid as a killed postmaster would leave it, with the given pid. */
static void write_pidfile(const char *datadir, const char *saved, long pid)
{
	char path[600], text[1200];
	const char *nl = strchr(saved, '\n');
	assert_non_null(nl);
	snprintf(text, sizeof text, "%ld%s", pid, nl);
	snprintf(path, sizeof path, "%s/postmaster.pid", datadir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(PGTEST_USER);
		assert_int_equal(chown(path, pw->pw_uid, pw->pw_gid), 0);
	}
}

static void read_pidfile(const char *datadir, char *out, size_t outlen)
{
	char path[600];
	snprintf(path, sizeof path, "%s/postmaster.pid", datadir);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, out, outlen - 1);
	close(fd);
	assert_true(n > 0);
	out[n] = '\0';
}

/* The whole machine went down: postmaster.pid names a process that no longer exists. */
static void test_stale_pidfile_process_gone(void **state)
{
	(void)state;
	char datadir[600], saved[1024], v[64];
	struct hie_pg *pg = NULL;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_pg_opts o = pgtest_opts(second);
	assert_int_equal(hie_pg_start(&pg, &o), HIE_OK);
	snprintf(datadir, sizeof datadir, "%s", hie_pg_datadir(pg));
	read_pidfile(datadir, saved, sizeof saved);
	assert_int_equal(hie_pg_stop(pg), HIE_OK);

	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, NULL, 0), child); /* its pid is now free */
	write_pidfile(datadir, saved, (long)child);

	assert_int_equal(hie_pg_start(&pg, &o), HIE_OK);
	assert_int_equal(query1(hie_pg_conninfo(pg), "SELECT x FROM survivor", v, sizeof v), 0);
	assert_string_equal(v, "42");
	assert_int_not_equal(postmaster_pid(datadir), (long)child);
	assert_int_equal(hie_pg_stop(pg), HIE_OK);
}

/* After a container restart the pid in postmaster.pid belongs to an unrelated live process; postgres alone
 * would refuse to start ("lock file already exists"). */
static void test_stale_pidfile_pid_reused(void **state)
{
	(void)state;
	char datadir[600], saved[1024], v[64];
	struct hie_pg *pg = NULL;
	PGTEST_SKIP_IF_NEEDED(&T);
	struct hie_pg_opts o = pgtest_opts(second);
	assert_int_equal(hie_pg_start(&pg, &o), HIE_OK);
	snprintf(datadir, sizeof datadir, "%s", hie_pg_datadir(pg));
	read_pidfile(datadir, saved, sizeof saved);
	assert_int_equal(hie_pg_stop(pg), HIE_OK);

	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	write_pidfile(datadir, saved, (long)child);
	hie_err_t err = hie_pg_start(&pg, &o);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	assert_int_equal(err, HIE_OK);
	assert_int_equal(query1(hie_pg_conninfo(pg), "SELECT x FROM survivor", v, sizeof v), 0);
	assert_string_equal(v, "42");
	assert_int_equal(hie_pg_stop(pg), HIE_OK);
}

/* serve starts the cluster as root, then drops to the cluster's user; stopping must still work then. */
static void test_stop_after_privilege_drop(void **state)
{
	(void)state;
	char datadir[600];
	struct hie_pg *pg = NULL;
	PGTEST_SKIP_IF_NEEDED(&T);
	if (geteuid() != 0)
		skip();
	struct hie_pg_opts o = pgtest_opts(second);
	assert_int_equal(hie_pg_start(&pg, &o), HIE_OK);
	snprintf(datadir, sizeof datadir, "%s", hie_pg_datadir(pg));
	long pid = postmaster_pid(datadir);
	assert_true(pid > 1);
	struct passwd *pw = getpwnam(PGTEST_USER);
	assert_non_null(pw);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		if (setgroups(1, &pw->pw_gid) || setgid(pw->pw_gid) || setuid(pw->pw_uid))
			_exit(100);
		_exit(hie_pg_stop(pg) == HIE_OK ? 0 : 101);
	}
	int status = -1;
	assert_int_equal(waitpid(child, &status, 0), child);
	hie_pg_forget(pg);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_false(process_running(pid));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find_bindir),
		cmocka_unit_test(test_settings_no_tcp_durable),
		cmocka_unit_test(test_hostile_paths),
		cmocka_unit_test(test_two_clusters_side_by_side),
		cmocka_unit_test(test_reuse_running_postmaster),
		cmocka_unit_test(test_stale_pidfile_process_gone),
		cmocka_unit_test(test_stale_pidfile_pid_reused),
		cmocka_unit_test(test_stop_after_privilege_drop),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
