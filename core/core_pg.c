/*
 * core_pg.c — embedded PostgreSQL cluster: find binaries, initdb, start/reuse/recover, stop. See core_pg.h.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* nftw */
#endif
#include "core/core_pg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/core_log.h"

#define PG_PATH_MAX 512

struct hie_pg {
	char bindir[PG_PATH_MAX];
	char pgdir[PG_PATH_MAX];
	char datadir[PG_PATH_MAX];
	char rundir[PG_PATH_MAX];
	char logpath[PG_PATH_MAX];
	char user[64];
	char conninfo[PG_PATH_MAX + 256];
	char admin_conninfo[PG_PATH_MAX + 256]; /* dbname=postgres, for checks and CREATE DATABASE */
	char env_home[PG_PATH_MAX + 8];
	int port;
	int timeout_s;
	bool drop;   /* running as root: children switch to uid/gid */
	bool reused; /* hie_pg_start found the server already running and did not start it */
	uid_t uid;
	gid_t gid;
	int logfd;
};

/* Paths reach /bin/sh through pg_ctl and postgresql.conf strings: accept only characters that need no quoting. */
static bool path_is_safe(const char *p)
{
	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("/._+@,:~-", c)))
			return false;
	}
	return true;
}

static bool is_exec(const char *dir, const char *name)
{
	char p[PG_PATH_MAX];
	if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p)
		return false;
	return access(p, X_OK) == 0;
}

static bool has_tools(const char *dir)
{
	return is_exec(dir, "initdb") && is_exec(dir, "pg_ctl") && is_exec(dir, "postgres");
}

static hie_err_t set_dir(char *out, size_t outlen, const char *dir)
{
	char real[PATH_MAX];
	if (!realpath(dir, real) || snprintf(out, outlen, "%s", real) >= (int)outlen)
		return HIE_ECONFIG;
	return HIE_OK;
}

hie_err_t hie_pg_find_bindir(const char *explicit_dir, int prefer_major, char *out, size_t outlen)
{
	char cand[PG_PATH_MAX];
	if (explicit_dir && explicit_dir[0]) {
		if (has_tools(explicit_dir))
			return set_dir(out, outlen, explicit_dir);
		hie_log(HIE_LOG_ERR, "event=pg.no_binaries bindir=%s need=initdb,pg_ctl,postgres", explicit_dir);
		return HIE_ECONFIG;
	}
	if (prefer_major > 0) {
		snprintf(cand, sizeof cand, "/usr/lib/postgresql/%d/bin", prefer_major);
		if (has_tools(cand))
			return set_dir(out, outlen, cand);
	}
	/* Highest version first: Debian/Ubuntu install each major side by side here. */
	long best = -1;
	DIR *d = opendir("/usr/lib/postgresql");
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			char *end;
			errno = 0;
			long v = strtol(e->d_name, &end, 10);
			if (errno || end == e->d_name || *end != '\0' || v <= 0 || v > 1000 || v <= best)
				continue;
			snprintf(cand, sizeof cand, "/usr/lib/postgresql/%ld/bin", v);
			if (has_tools(cand))
				best = v;
		}
		closedir(d);
	}
	if (best > 0) {
		snprintf(cand, sizeof cand, "/usr/lib/postgresql/%ld/bin", best);
		return set_dir(out, outlen, cand);
	}
	const char *path = getenv("PATH");
	while (path && *path) {
		const char *colon = strchr(path, ':');
		size_t n = colon ? (size_t)(colon - path) : strlen(path);
		if (n > 0 && n < sizeof cand) {
			memcpy(cand, path, n);
			cand[n] = '\0';
			char exe[PG_PATH_MAX + 16], real[PATH_MAX];
			snprintf(exe, sizeof exe, "%s/pg_ctl", cand);
			/* /usr/local/bin/pg_ctl is often a symlink: use the directory of its target. */
			if (access(exe, X_OK) == 0 && realpath(exe, real)) {
				char *slash = strrchr(real, '/');
				if (slash) {
					*slash = '\0';
					if (has_tools(real))
						return set_dir(out, outlen, real);
				}
			}
		}
		path = colon ? colon + 1 : NULL;
	}
	hie_log(HIE_LOG_ERR, "event=pg.no_binaries searched=/usr/lib/postgresql/*/bin,PATH hint=set database.pg_bindir");
	return HIE_ECONFIG;
}

/* Children ------------------------------------------------------------------------------------------------ */

static void close_from(int lowfd)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
		return;
#endif
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = lowfd; fd < max; fd++)
		close(fd);
}

/*
 * Runs argv[0] with argv, as pg->uid when pg->drop, in its own session, stdout/stderr to the log, no other
 * descriptors (the node's listening sockets must not leak into a postmaster that outlives it).
 * Returns the exit status (0..255), or -1 if it could not be run.
 */
static int run(struct hie_pg *pg, char *const argv[])
{
	char *envp[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", "LANG=C", pg->env_home, NULL};
	/* The node may have dropped to the cluster's user since start (serve does): then no switch is needed. */
	bool switch_user = pg->drop && geteuid() == 0;
	if (pg->drop && !switch_user && geteuid() != pg->uid) {
		hie_log(HIE_LOG_ERR, "event=pg.wrong_user uid=%ld want=%ld", (long)geteuid(), (long)pg->uid);
		return -1;
	}
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(devnull);
		return -1;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Ignored signals survive exec; give the server the defaults it expects. */
		int sigs[] = {SIGPIPE, SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
		for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
			signal(sigs[i], SIG_DFL);
		setsid();
		if (dup2(devnull, 0) < 0 || dup2(pg->logfd, 1) < 0 || dup2(pg->logfd, 2) < 0)
			_exit(126);
		close_from(3);
		if (switch_user) {
			if (setgroups(1, &pg->gid) != 0 || setgid(pg->gid) != 0 || setuid(pg->uid) != 0 ||
			    getuid() != pg->uid || geteuid() != pg->uid)
				_exit(126);
		}
		if (chdir(pg->pgdir) != 0)
			_exit(126);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	close(devnull);
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return -1;
}

static int pg_ctl(struct hie_pg *pg, const char *action, const char *mode)
{
	char exe[PG_PATH_MAX + 16], t[16];
	snprintf(exe, sizeof exe, "%s/pg_ctl", pg->bindir);
	snprintf(t, sizeof t, "%d", pg->timeout_s);
	if (strcmp(action, "start") == 0) {
		char *argv[] = {exe, "start", "-w", "-s", "-t", t, "-D", pg->datadir, "-l", pg->logpath, NULL};
		return run(pg, argv);
	}
	char *argv[] = {exe, (char *)action, "-w", "-s", "-t", t, "-D", pg->datadir, "-m", (char *)mode, NULL};
	return run(pg, argv);
}

/* Files ----------------------------------------------------------------------------------------------------- */

static hie_err_t make_dir(struct hie_pg *pg, const char *path)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		hie_log(HIE_LOG_ERR, "event=pg.mkdir_failed path=%s errno=%d", path, errno);
		return HIE_ESYS;
	}
	if (chmod(path, 0700) != 0 || (pg->drop && chown(path, pg->uid, pg->gid) != 0)) {
		hie_log(HIE_LOG_ERR, "event=pg.chown_failed path=%s errno=%d", path, errno);
		return HIE_ESYS;
	}
	return HIE_OK;
}

/* Writes path (mode 0600, owned by the cluster's user) with the given text, atomically enough for a conf file. */
static hie_err_t write_file(struct hie_pg *pg, const char *path, const char *text, bool append)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0600);
	if (fd < 0)
		return HIE_ESYS;
	size_t n = strlen(text);
	bool ok = write(fd, text, n) == (ssize_t)n && (!pg->drop || fchown(fd, pg->uid, pg->gid) == 0) && fsync(fd) == 0;
	if (close(fd) != 0)
		ok = false;
	if (!ok)
		hie_log(HIE_LOG_ERR, "event=pg.write_failed path=%s errno=%d", path, errno);
	return ok ? HIE_OK : HIE_ESYS;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static hie_err_t write_settings(struct hie_pg *pg)
{
	char path[PG_PATH_MAX + 32], text[2048];
	snprintf(path, sizeof path, "%s/hienode.conf", pg->datadir);
	/* Rewritten at every start by hienode; edit postgresql.auto.conf (ALTER SYSTEM) for local tuning. */
	snprintf(text, sizeof text,
		 "# written by hienode at every start; do not edit\n"
		 "listen_addresses = ''\n"
		 "port = %d\n"
		 "unix_socket_directories = '%s'\n"
		 "unix_socket_permissions = 0700\n"
		 "fsync = on\n"
		 "synchronous_commit = on\n"
		 "full_page_writes = on\n"
		 "idle_in_transaction_session_timeout = '10min'\n"
		 "timezone = 'UTC'\n"
		 "log_timezone = 'UTC'\n"
		 "log_line_prefix = '%%m [%%p] '\n",
		 pg->port, pg->rundir);
	return write_file(pg, path, text, false);
}

static hie_err_t read_pg_version(const char *datadir, int *major)
{
	char path[PG_PATH_MAX + 16], buf[16];
	*major = 0;
	snprintf(path, sizeof path, "%s/PG_VERSION", datadir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? HIE_ENOTFOUND : HIE_ESYS;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return HIE_EPARSE;
	buf[n] = '\0';
	char *end;
	long v = strtol(buf, &end, 10);
	if (end == buf || v <= 0 || v > 1000)
		return HIE_EPARSE;
	*major = (int)v;
	return HIE_OK;
}

static hie_err_t initdb(struct hie_pg *pg)
{
	char tmp[PG_PATH_MAX + 16], exe[PG_PATH_MAX + 16], user[80], conf[PG_PATH_MAX + 48];
	struct stat st;
	snprintf(tmp, sizeof tmp, "%s/data.init", pg->pgdir);
	/* A previous initdb that was interrupted left a partial directory; initdb refuses a non-empty one. */
	if (lstat(tmp, &st) == 0 && nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
		hie_log(HIE_LOG_ERR, "event=pg.cleanup_failed path=%s errno=%d", tmp, errno);
		return HIE_ESYS;
	}
	snprintf(exe, sizeof exe, "%s/initdb", pg->bindir);
	snprintf(user, sizeof user, "--username=%s", pg->user);
	char *argv[] = {exe, "-D", tmp, "--auth=trust", "--encoding=UTF8", "--locale=C", user, NULL};
	hie_log(HIE_LOG_NOTICE, "event=pg.initdb datadir=%s user=%s", pg->datadir, pg->user);
	int rc = run(pg, argv);
	if (rc != 0) {
		hie_log(HIE_LOG_ERR, "event=pg.initdb_failed status=%d log=%s", rc, pg->logpath);
		return HIE_EDB;
	}
	snprintf(conf, sizeof conf, "%s/postgresql.conf", tmp);
	hie_err_t err = write_file(pg, conf, "\n# hienode settings\ninclude_if_exists = 'hienode.conf'\n", true);
	if (err)
		return err;
	if (rename(tmp, pg->datadir) != 0) {
		hie_log(HIE_LOG_ERR, "event=pg.rename_failed path=%s errno=%d", tmp, errno);
		return HIE_ESYS;
	}
	return HIE_OK;
}

/* Recovery after a killed node ------------------------------------------------------------------------------ */

/* True when a server answers on our socket and serves our data directory. */
static bool answers_for_us(struct hie_pg *pg)
{
	bool ok = false;
	PGconn *c = PQconnectdb(pg->admin_conninfo);
	if (c && PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, "SHOW data_directory");
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
			char real[PATH_MAX];
			const char *dd = PQgetvalue(r, 0, 0);
			ok = strcmp(dd, pg->datadir) == 0 || (realpath(dd, real) && strcmp(real, pg->datadir) == 0);
		}
		PQclear(r);
	}
	PQfinish(c);
	return ok;
}

/* A process that exists and is not a zombie (containers whose PID 1 does not reap leave zombies behind). */
static bool pid_running(long pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	const char *rp = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
	return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

/*
 * True while a live process works in the data directory (every postgres process chdirs into it). After
 * the postmaster was killed its backends notice and exit; until they have, the shared memory is theirs and
 * a new postmaster must not start. Removing a stale postmaster.pid is safe only after that.
 */
static bool datadir_busy(const struct hie_pg *pg)
{
	char real[PATH_MAX];
	if (!realpath(pg->datadir, real))
		return false;
	DIR *d = opendir("/proc");
	if (!d)
		return false;
	bool busy = false;
	struct dirent *e;
	while (!busy && (e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 1 || pid == (long)getpid())
			continue;
		char link[64], cwd[PATH_MAX];
		snprintf(link, sizeof link, "/proc/%ld/cwd", pid);
		ssize_t n = readlink(link, cwd, sizeof cwd - 1);
		if (n <= 0)
			continue;
		cwd[n] = '\0';
		busy = strcmp(cwd, real) == 0 && pid_running(pid);
	}
	closedir(d);
	return busy;
}

static hie_err_t wait_datadir_free(const struct hie_pg *pg)
{
	for (int i = 0; i < 200; i++) {
		if (!datadir_busy(pg))
			return HIE_OK;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	hie_log(HIE_LOG_ERR, "event=pg.orphans_alive datadir=%s hint=\"processes of a killed postmaster still run\"",
		pg->datadir);
	return HIE_EDB;
}

/*
 * The socket lock file (<run>/.s.PGSQL.<port>.lock) names the postmaster that held the socket. When that
 * postmaster is gone (or a zombie, which postgres' own kill(pid, 0) test mistakes for alive), the file is
 * stale and would stop the new server from starting: remove it.
 */
/*
 * Reads the pid a PostgreSQL lock file starts with: -1 when the file cannot be opened, 0 when it does not start
 * with a number, 1 with *pid and *next (the character after the number) set.
 */
static int read_pid_file(const char *path, long *pid, char *next)
{
	char buf[64];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	char *end;
	*pid = strtol(buf, &end, 10);
	*next = *end;
	return end != buf;
}

static hie_err_t remove_stale_socket_lock(struct hie_pg *pg)
{
	char path[PG_PATH_MAX + 32], next;
	long pid;
	snprintf(path, sizeof path, "%s/.s.PGSQL.%d.lock", pg->rundir, pg->port);
	int rc = read_pid_file(path, &pid, &next);
	if (rc < 0)
		return HIE_OK;
	if (rc == 1 && pid > 1 && pid_running(pid))
		return HIE_OK;
	hie_log(HIE_LOG_NOTICE, "event=pg.stale_socket_lock pid=%ld", rc == 1 ? pid : -1L);
	if (unlink(path) != 0 && errno != ENOENT)
		return HIE_ESYS;
	return HIE_OK;
}

static bool is_postgres_process(pid_t pid)
{
	char link[64], exe[PATH_MAX];
	snprintf(link, sizeof link, "/proc/%ld/exe", (long)pid);
	ssize_t n = readlink(link, exe, sizeof exe - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	const char *base = strrchr(exe, '/');
	base = base ? base + 1 : exe;
	return strncmp(base, "postgres", 8) == 0 || strncmp(base, "postmaster", 10) == 0;
}

/*
 * Looks at data/postmaster.pid left by a previous run. *reuse is set when that server is alive, ours and
 * answering. A live postgres that does not answer is stopped; a pid now used by another program is a stale
 * file that postgres itself would refuse to override, so it is removed. A dead pid is left to postgres.
 */
static hie_err_t recover(struct hie_pg *pg, bool *reuse)
{
	char path[PG_PATH_MAX + 32], next;
	long pid;
	*reuse = false;
	snprintf(path, sizeof path, "%s/postmaster.pid", pg->datadir);
	int rc = read_pid_file(path, &pid, &next);
	if (rc < 0)
		return HIE_OK;
	bool parsed = rc == 1 && (next == '\n' || next == '\0') && pid > 1 && pid < INT_MAX;
	if (parsed && pid_running(pid)) {
		if (answers_for_us(pg)) {
			hie_log(HIE_LOG_NOTICE, "event=pg.reuse pid=%ld datadir=%s", pid, pg->datadir);
			*reuse = true;
			return HIE_OK;
		}
		if (is_postgres_process((pid_t)pid)) {
			hie_log(HIE_LOG_WARN, "event=pg.stop_unresponsive pid=%ld datadir=%s", pid, pg->datadir);
			if (pg_ctl(pg, "stop", "fast") != 0 && pg_ctl(pg, "stop", "immediate") != 0) {
				hie_log(HIE_LOG_ERR, "event=pg.stop_failed pid=%ld log=%s", pid, pg->logpath);
				return HIE_EDB;
			}
			return HIE_OK;
		}
		hie_log(HIE_LOG_NOTICE, "event=pg.stale_pidfile pid=%ld reason=pid_reused", pid);
	} else {
		hie_log(HIE_LOG_NOTICE, "event=pg.stale_pidfile pid=%ld reason=process_gone", parsed ? pid : -1L);
	}
	/* Postgres removes a lock file whose process is gone, but takes a zombie for a live postmaster. */
	hie_err_t err = wait_datadir_free(pg);
	if (err)
		return err;
	if (unlink(path) != 0 && errno != ENOENT)
		return HIE_ESYS;
	return remove_stale_socket_lock(pg);
}

static hie_err_t ensure_database(struct hie_pg *pg)
{
	hie_err_t err = HIE_EDB;
	PGconn *c = PQconnectdb(pg->admin_conninfo);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		hie_log(HIE_LOG_ERR, "event=pg.connect_failed log=%s", pg->logpath);
		goto out;
	}
	PGresult *r = PQexec(c, "SELECT 1 FROM pg_database WHERE datname = 'hienode'");
	bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	PQclear(r);
	if (!ok)
		goto out;
	if (!exists) {
		r = PQexec(c, "CREATE DATABASE hienode ENCODING 'UTF8' TEMPLATE template0");
		const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK || (s && strcmp(s, "42P04") == 0);
		PQclear(r);
		if (!ok)
			goto out;
		hie_log(HIE_LOG_NOTICE, "event=pg.database_created name=hienode");
	}
	err = HIE_OK;
out:
	PQfinish(c);
	return err;
}

/* Start/stop ------------------------------------------------------------------------------------------------ */

static hie_err_t resolve_user(struct hie_pg *pg, const char *run_as)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (geteuid() == 0) {
		if (!run_as || !run_as[0]) {
			hie_log(HIE_LOG_ERR, "event=pg.run_as_missing reason=running_as_root");
			return HIE_ECONFIG;
		}
		if (getpwnam_r(run_as, &pw, buf, sizeof buf, &res) != 0 || !res || res->pw_uid == 0) {
			hie_log(HIE_LOG_ERR, "event=pg.run_as_invalid user=%s hint=create_an_unprivileged_user", run_as);
			return HIE_ECONFIG;
		}
		pg->drop = true;
		pg->uid = res->pw_uid;
		pg->gid = res->pw_gid;
	} else {
		if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &res) != 0 || !res) {
			hie_log(HIE_LOG_ERR, "event=pg.user_unknown uid=%ld", (long)geteuid());
			return HIE_ECONFIG;
		}
		pg->uid = res->pw_uid;
		pg->gid = res->pw_gid;
	}
	if (snprintf(pg->user, sizeof pg->user, "%s", res->pw_name) >= (int)sizeof pg->user ||
	    !path_is_safe(pg->user))
		return HIE_ECONFIG;
	return HIE_OK;
}

/* Warns when the cluster's user cannot reach pgdir (initdb would fail with a less helpful message). */
static void check_traverse(const struct hie_pg *pg)
{
	char p[PG_PATH_MAX];
	snprintf(p, sizeof p, "%s", pg->pgdir);
	for (char *s = strrchr(p, '/'); s && s != p; s = strrchr(p, '/')) {
		*s = '\0';
		struct stat st;
		if (stat(p, &st) != 0)
			continue;
		bool ok = (st.st_mode & S_IXOTH) || (st.st_uid == pg->uid && (st.st_mode & S_IXUSR)) ||
			  (st.st_gid == pg->gid && (st.st_mode & S_IXGRP));
		if (!ok)
			hie_log(HIE_LOG_WARN, "event=pg.dir_not_traversable path=%s user=%s hint=chmod_o+x", p, pg->user);
	}
}

static hie_err_t setup_paths(struct hie_pg *pg, const struct hie_pg_opts *opts)
{
	char base[PATH_MAX];
	if (!realpath(opts->state_dir, base)) {
		hie_log(HIE_LOG_ERR, "event=pg.state_dir_missing errno=%d", errno);
		return HIE_ECONFIG;
	}
	if (!path_is_safe(base)) {
		hie_log(HIE_LOG_ERR, "event=pg.state_dir_unsafe reason=allowed_characters_are_A-Za-z0-9/._+@,:~-");
		return HIE_ECONFIG;
	}
	if (snprintf(pg->pgdir, sizeof pg->pgdir, "%s/pg", base) >= (int)sizeof pg->pgdir ||
	    snprintf(pg->datadir, sizeof pg->datadir, "%s/data", pg->pgdir) >= (int)sizeof pg->datadir ||
	    snprintf(pg->rundir, sizeof pg->rundir, "%s/run", pg->pgdir) >= (int)sizeof pg->rundir ||
	    snprintf(pg->logpath, sizeof pg->logpath, "%s/log", pg->pgdir) >= (int)sizeof pg->logpath)
		return HIE_ECONFIG;
	/* The socket is <run>/.s.PGSQL.<port> and must fit sockaddr_un.sun_path with its NUL. */
	char sock[PG_PATH_MAX + 32];
	int n = snprintf(sock, sizeof sock, "%s/.s.PGSQL.%d", pg->rundir, pg->port);
	if (n < 0 || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		hie_log(HIE_LOG_ERR, "event=pg.socket_path_too_long length=%d max=%zu hint=use_a_shorter_state_dir", n,
			sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return HIE_ECONFIG;
	}
	snprintf(pg->env_home, sizeof pg->env_home, "HOME=%s", pg->pgdir);
	snprintf(pg->conninfo, sizeof pg->conninfo, "host=%s port=%d dbname=hienode user=%s", pg->rundir, pg->port,
		 pg->user);
	snprintf(pg->admin_conninfo, sizeof pg->admin_conninfo,
		 "host=%s port=%d dbname=postgres user=%s connect_timeout=5 application_name=hienode-admin", pg->rundir,
		 pg->port, pg->user);
	return HIE_OK;
}

hie_err_t hie_pg_start(struct hie_pg **out, const struct hie_pg_opts *opts)
{
	hie_err_t err;
	bool reuse = false;
	int major = 0;
	*out = NULL;
	if (!opts || !opts->state_dir || opts->port < 0 || opts->port > 65535 || opts->start_timeout_s < 0)
		return HIE_EINVAL;
	struct hie_pg *pg = calloc(1, sizeof *pg);
	if (!pg)
		return HIE_ENOMEM;
	pg->logfd = -1;
	pg->port = opts->port ? opts->port : 5432;
	pg->timeout_s = opts->start_timeout_s ? opts->start_timeout_s : 60;
	err = resolve_user(pg, opts->run_as);
	if (err)
		goto out;
	err = setup_paths(pg, opts);
	if (err)
		goto out;
	(void)read_pg_version(pg->datadir, &major);
	err = hie_pg_find_bindir(opts->bindir, major, pg->bindir, sizeof pg->bindir);
	if (err)
		goto out;
	err = make_dir(pg, pg->pgdir);
	if (!err)
		err = make_dir(pg, pg->rundir);
	if (err)
		goto out;
	if (pg->drop)
		check_traverse(pg);
	pg->logfd = open(pg->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (pg->logfd < 0 || (pg->drop && fchown(pg->logfd, pg->uid, pg->gid) != 0)) {
		hie_log(HIE_LOG_ERR, "event=pg.log_open_failed path=%s errno=%d", pg->logpath, errno);
		err = HIE_ESYS;
		goto out;
	}
	err = read_pg_version(pg->datadir, &major);
	if (err == HIE_ENOTFOUND) {
		struct stat st;
		if (lstat(pg->datadir, &st) == 0) {
			hie_log(HIE_LOG_ERR, "event=pg.datadir_not_a_cluster path=%s", pg->datadir);
			err = HIE_ECONFIG;
			goto out;
		}
		err = initdb(pg);
	}
	if (err)
		goto out;
	err = write_settings(pg);
	if (err)
		goto out;
	err = recover(pg, &reuse);
	pg->reused = reuse;
	if (err)
		goto out;
	if (!reuse) {
		int rc = pg_ctl(pg, "start", NULL);
		if (rc != 0) {
			hie_log(HIE_LOG_ERR, "event=pg.start_failed status=%d log=%s", rc, pg->logpath);
			err = HIE_EDB;
			goto out;
		}
		hie_log(HIE_LOG_NOTICE, "event=pg.started datadir=%s socket_dir=%s", pg->datadir, pg->rundir);
	}
	err = ensure_database(pg);
out:
	if (err) {
		if (pg->logfd >= 0)
			close(pg->logfd);
		free(pg);
		return err;
	}
	*out = pg;
	return HIE_OK;
}

const char *hie_pg_conninfo(const struct hie_pg *pg) { return pg->conninfo; }
const char *hie_pg_datadir(const struct hie_pg *pg) { return pg->datadir; }

hie_err_t hie_pg_stop(struct hie_pg *pg)
{
	hie_err_t err = HIE_OK;
	if (!pg)
		return HIE_OK;
	if (pg_ctl(pg, "stop", "fast") != 0) {
		hie_log(HIE_LOG_WARN, "event=pg.stop_fast_failed log=%s", pg->logpath);
		if (pg_ctl(pg, "stop", "immediate") != 0) {
			hie_log(HIE_LOG_ERR, "event=pg.stop_failed log=%s", pg->logpath);
			err = HIE_EDB;
		}
	}
	if (!err)
		hie_log(HIE_LOG_NOTICE, "event=pg.stopped datadir=%s", pg->datadir);
	hie_pg_forget(pg);
	return err;
}

void hie_pg_forget(struct hie_pg *pg)
{
	if (!pg)
		return;
	if (pg->logfd >= 0)
		close(pg->logfd);
	free(pg);
}

bool hie_pg_reused(const struct hie_pg *pg)
{
	return pg->reused;
}
