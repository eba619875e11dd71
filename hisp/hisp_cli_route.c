/*
 * hisp_cli_route.c — `hienode route`: a fixed next hop for a partner domain instead of its MX (one-shot, on
 * c->pool; conventions in hisp_cli_int.h):
 *
 *   route add DOMAIN HOST:PORT | list | remove DOMAIN
 *
 * Entry point: hisp_cli_route (hisp.h). Exit status 0 done, 1 failed, 2 bad arguments.
 */
#include <stdio.h>
#include <string.h>

#include "core/core_config.h"
#include "hisp/hisp_cli_int.h"

static int route_add(struct hisp_cli_line *l)
{
	char d[256], host[256];
	int port = 0, rc = hisp_cli_need_pos(l, 2, "DOMAIN HOST:PORT");
	if (rc || (rc = hisp_cli_norm_domain(l, l->pos[0], l->pos[0], d, sizeof d)))
		return rc;
	if (hie_cfg_split_addr(l->pos[1], host, sizeof host, &port) || !host[0] || port < 1 || port > 65535)
		return hisp_cli_bad(l, l->pos[1], "expected HOST:PORT (or [IPv6]:PORT), port 1 to 65535");
	for (const char *p = host; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '/' || *p == '@')
			return hisp_cli_bad(l, l->pos[1], "host name with a character not allowed");
	char ps[8];
	snprintf(ps, sizeof ps, "%d", port);
	const char *p[] = {d, host, ps};
	hie_err_t err = hisp_cli_exec1(l->c,
				       "INSERT INTO hisp_routes (domain, host, port) VALUES ($1, $2, $3::int)"
				       " ON CONFLICT (domain) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port",
				       3, p, NULL);
	if (err)
		return hisp_cli_db_fail(l, err);
	bool v6 = strchr(host, ':') != NULL;
	fprintf(l->c->out, "route domain=%s next_hop=%s%s%s:%d\n", d, v6 ? "[" : "", host, v6 ? "]" : "", port);
	return 0;
}

static int route_list(struct hisp_cli_line *l)
{
	PGresult *r;
	hie_err_t err;
	int rc = hisp_cli_need_pos(l, 0, "");
	if (rc)
		return rc;
	if ((err = hisp_cli_exec1(l->c, "SELECT domain, host, port FROM hisp_routes ORDER BY domain", 0, NULL, &r)))
		return hisp_cli_db_fail(l, err);
	for (int i = 0; i < PQntuples(r); i++) {
		bool v6 = strchr(PQgetvalue(r, i, 1), ':') != NULL;
		fprintf(l->c->out, "route domain=%s next_hop=%s%s%s:%s\n", PQgetvalue(r, i, 0), v6 ? "[" : "",
			PQgetvalue(r, i, 1), v6 ? "]" : "", PQgetvalue(r, i, 2));
	}
	return hisp_cli_list_end(l, r, "routes");
}

static int route_remove(struct hisp_cli_line *l)
{
	char d[256];
	int rows, rc;
	if ((rc = hisp_cli_need_pos(l, 1, "DOMAIN")) || (rc = hisp_cli_norm_domain(l, l->pos[0], l->pos[0], d, sizeof d)))
		return rc;
	const char *p[] = {d};
	if ((rc = hisp_cli_exec_rows(l, "DELETE FROM hisp_routes WHERE domain = $1", 1, p, &rows)))
		return rc;
	if (rows != 1)
		return hisp_cli_fail(l, "%s: no route", d);
	fprintf(l->c->out, "removed route domain=%s\n", d);
	return 0;
}

static const struct hisp_cli_verb route_verbs[] = {
	{.name = "add", .run = route_add, .maxpos = 2},
	{.name = "list", .run = route_list, .maxpos = 2},
	{.name = "remove", .run = route_remove, .maxpos = 2},
	{.maxpos = 2},
};

static const struct hisp_cli_cmd route_cmd = {
	.name = "route",
	.missing = "(add DOMAIN HOST:PORT | list | remove DOMAIN)",
	.known = "(add | list | remove)",
	.verbs = route_verbs,
};

int hisp_cli_route(const struct hisp_cli *c, int argc, char **argv)
{
	return hisp_cli_run(c, &route_cmd, argc, argv);
}
