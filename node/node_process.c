/*
 * node_process.c — process plumbing: the unprivileged identity, the state directory, signals.
 *
 * When started as root the node binds its ports, then drops to [node] user before it reads a byte from the
 * network (ARCHITECTURE.md "Processes and threads"). Signals are blocked in every thread and taken by the
 * main thread with sigwait, so no handler runs in the middle of library code.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core_log.h"
#include "node/node.h"

hie_err_t node_identity_resolve(const struct hie_cfg *cfg, struct node_identity *id)
{
	memset(id, 0, sizeof *id);
	if (geteuid() != 0)
		return HIE_OK;
	const char *user = hie_cfg_str(cfg, "node", "user");
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (getpwnam_r(user, &pw, buf, sizeof buf, &res) != 0 || !res) {
		hie_log(HIE_LOG_ERR, "event=start.user error=unknown_user user=%s hint=\"create it (useradd --system "
				     "hienode) or set [node] user\"", user);
		return HIE_ECONFIG;
	}
	if (pw.pw_uid == 0) {
		hie_log(HIE_LOG_ERR, "event=start.user error=user_is_root user=%s", user);
		return HIE_ECONFIG;
	}
	id->drop = true;
	id->uid = pw.pw_uid;
	id->gid = pw.pw_gid;
	snprintf(id->name, sizeof id->name, "%s", user);
	return HIE_OK;
}

hie_err_t node_state_dir_prepare(const struct hie_cfg *cfg, const struct node_identity *id, char *out, size_t outlen)
{
	const char *dir = hie_cfg_str(cfg, "node", "state_dir");
	if (dir[0] == '\0') {
		hie_log(HIE_LOG_ERR, "event=start.state_dir error=empty");
		return HIE_ECONFIG;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		hie_log(HIE_LOG_ERR, "event=start.state_dir error=mkdir errno=%d (%s)", errno, strerror(errno));
		return HIE_ESYS;
	}
	char abs[PATH_MAX];
	if (!realpath(dir, abs)) {
		hie_log(HIE_LOG_ERR, "event=start.state_dir error=realpath errno=%d", errno);
		return HIE_ESYS;
	}
	if (strlen(abs) >= outlen)
		return HIE_ETOOBIG;
	memcpy(out, abs, strlen(abs) + 1);
	if (id->drop && chown(abs, id->uid, id->gid) != 0) {
		hie_log(HIE_LOG_ERR, "event=start.state_dir error=chown errno=%d (%s)", errno, strerror(errno));
		return HIE_ESYS;
	}
	if (chmod(abs, 0700) != 0) {
		hie_log(HIE_LOG_ERR, "event=start.state_dir error=chmod errno=%d (%s)", errno, strerror(errno));
		return HIE_ESYS;
	}
	return HIE_OK;
}

hie_err_t node_identity_drop(const struct node_identity *id)
{
	if (!id->drop)
		return HIE_OK;
	if (setgroups(1, &id->gid) != 0 || setgid(id->gid) != 0 || setuid(id->uid) != 0) {
		hie_log(HIE_LOG_ERR, "event=start.drop error=setuid errno=%d (%s)", errno, strerror(errno));
		return HIE_ESYS;
	}
	if (setuid(0) == 0 || geteuid() == 0) {
		hie_log(HIE_LOG_ERR, "event=start.drop error=root_regained");
		return HIE_ESYS;
	}
	hie_log(HIE_LOG_INFO, "event=start.drop user=%s uid=%u", id->name, (unsigned)id->uid);
	return HIE_OK;
}

static void signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

void node_signals_block(void)
{
	sigset_t set;
	signal_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int node_signals_wait(void)
{
	sigset_t set;
	signal_set(&set);
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			hie_log(HIE_LOG_NOTICE, "event=signal sig=HUP action=ignored");
			continue;
		}
		return sig;
	}
}
