/*
 * node_direct.c — `hienode domain|cert|trust|route|send|mailbox|user|forward|bridge`: the Direct HISP's operator commands
 * (hisp_cli_*), run as one-shot commands on the node's database (node_oneshot_open) like `hienode patient`.
 * The module checks the arguments and prints; this file opens and closes what the command needs.
 */
#include <stdio.h>

#include "hisp/hisp.h"
#include "node/node.h"

typedef int (*hisp_cmd_fn)(const struct hisp_cli *c, int argc, char **argv);

static int run(const struct node_opts *o, hisp_cmd_fn fn, const char *name)
{
	struct node_oneshot s = {0};
	int rc = 1;
	hie_err_t err = node_oneshot_open(&s, o);
	if (!err)
		err = node_db_migrate(s.db.pool);
	if (!err) {
		struct hisp_cli c = {.pool = s.db.pool, .cfg = s.cfg, .state_dir = s.state_dir, .out = stdout, .err = stderr};
		rc = fn(&c, o->argc, o->argv);
	} else {
		fprintf(stderr, "hienode: %s: %s\n", name, hie_strerror(err));
	}
	node_oneshot_close(&s);
	return rc;
}

int node_cmd_domain(const struct node_opts *o)
{
	return run(o, hisp_cli_domain, "domain");
}

int node_cmd_cert(const struct node_opts *o)
{
	return run(o, hisp_cli_cert, "cert");
}

int node_cmd_trust(const struct node_opts *o)
{
	return run(o, hisp_cli_trust, "trust");
}

int node_cmd_route(const struct node_opts *o)
{
	return run(o, hisp_cli_route, "route");
}

int node_cmd_send(const struct node_opts *o)
{
	return run(o, hisp_cli_send, "send");
}

int node_cmd_mailbox(const struct node_opts *o)
{
	return run(o, hisp_cli_mailbox, "mailbox");
}

int node_cmd_user(const struct node_opts *o)
{
	return run(o, hisp_cli_user, "user");
}

int node_cmd_forward(const struct node_opts *o)
{
	return run(o, hisp_cli_forward, "forward");
}

int node_cmd_bridge(const struct node_opts *o)
{
	return run(o, hisp_cli_bridge, "bridge");
}
