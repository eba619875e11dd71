/*
 * hisp_cli_forward.c — `hienode forward`: per local address, push received messages to the practice's SMTP
 * server or XDR endpoint (the hisp.forward job, hisp_forward.c). One-shot, on c->pool; conventions in
 * hisp_cli_int.h:
 *
 *   forward set ADDRESS smtp HOST:PORT [--tls none|opportunistic|required]    (default required)
 *   forward set ADDRESS xdr URL [--metadata full|minimal] [--insecure-http]  (default full; URL https:// unless
 *                                                                            --insecure-http allows http://)
 *   forward list | remove ADDRESS | status [ADDRESS]    (status: the 50 most recent forwarded items)
 *
 * ADDRESS must be one of hisp_addresses. `set` replaces the address's setting. Entry point: hisp_cli_forward
 * (hisp.h). Exit status 0 done, 1 failed (database, not a local address, no such forward), 2 bad arguments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_config.h"
#include "hisp/hisp_cli_int.h"
#include "hisp/hisp_trust.h"

#define URL_MAX 1000

static int check_host_port(struct hisp_cli_line *l, const char *in, char *out, size_t outlen)
{
	char host[256];
	int port = 0;
	if (hie_cfg_split_addr(in, host, sizeof host, &port) || !host[0] || port < 1 || port > 65535)
		return hisp_cli_bad(l, in, "expected HOST:PORT (or [IPv6]:PORT), port 1 to 65535");
	/* the target becomes an smtp:// URL: nothing that would end or change its authority part */
	for (const char *p = host; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || strchr("/@?#[]\\%", *p))
			return hisp_cli_bad(l, in, "host name with a character not allowed");
	bool v6 = strchr(host, ':') != NULL;
	snprintf(out, outlen, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
	return 0;
}

static int check_url(struct hisp_cli_line *l, const char *url, bool allow_http)
{
	size_t n = strlen(url), skip;
	if (n > URL_MAX)
		return hisp_cli_bad(l, "URL", "longer than %d bytes", URL_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
			return hisp_cli_bad(l, url, "URL with a blank, control or non-ASCII character");
	if (strncmp(url, "https://", 8) == 0)
		skip = 8;
	else if (strncmp(url, "http://", 7) == 0 && allow_http)
		skip = 7;
	else if (strncmp(url, "http://", 7) == 0)
		return hisp_cli_bad(l, url, "plain http (documents in clear): use https://, or --insecure-http to allow it");
	else
		return hisp_cli_bad(l, url, "expected an https:// URL");
	if (url[skip] == '\0' || url[skip] == '/' || url[skip] == ':' || strchr(url + skip, '@') ||
	    strchr(url, '#'))
		return hisp_cli_bad(l, url, "URL without a host (or with user information or a fragment)");
	return 0;
}

/* One of ours? 0 yes; else the exit status after the error line. */
static int need_local(struct hisp_cli_line *l, const char *addr)
{
	PGresult *r = NULL;
	const char *p[] = {addr};
	hie_err_t err = hisp_cli_exec1(l->c, "SELECT 1 FROM hisp_addresses WHERE address = $1", 1, p, &r);
	if (err)
		return hisp_cli_db_fail(l, err);
	int n = PQntuples(r);
	PQclear(r);
	return n == 1 ? 0 : hisp_cli_fail(l, "%s: not a local address (hienode domain address add)", addr);
}

enum { OPT_TLS, OPT_METADATA };

static int fwd_set(struct hisp_cli_line *l, bool allow_http)
{
	char addr[256], target[URL_MAX + 1];
	const char *tls = l->opts[OPT_TLS].val, *md = l->opts[OPT_METADATA].val;
	int rc = hisp_cli_need_pos(l, 3, "ADDRESS smtp HOST:PORT [--tls none|opportunistic|required] | "
					 "ADDRESS xdr URL [--metadata full|minimal] [--insecure-http]");
	if (rc || (rc = hisp_cli_norm_addr(l, l->pos[0], l->pos[0], addr, sizeof addr)))
		return rc;
	const char *kind = l->pos[1];
	if (strcmp(kind, "smtp") == 0) {
		if (md)
			return hisp_cli_bad(l, "--metadata", "only for xdr");
		if (allow_http)
			return hisp_cli_bad(l, "--insecure-http", "only for xdr");
		if (!tls)
			tls = "required";
		if (strcmp(tls, "none") && strcmp(tls, "opportunistic") && strcmp(tls, "required"))
			return hisp_cli_bad(l, "--tls", "expected none, opportunistic or required");
		md = "full";
		if ((rc = check_host_port(l, l->pos[2], target, sizeof target)))
			return rc;
	} else if (strcmp(kind, "xdr") == 0) {
		if (tls)
			return hisp_cli_bad(l, "--tls", "only for smtp (an xdr URL says https)");
		if (!md)
			md = "full";
		if (strcmp(md, "full") && strcmp(md, "minimal"))
			return hisp_cli_bad(l, "--metadata", "expected full or minimal");
		tls = "required";
		if ((rc = check_url(l, l->pos[2], allow_http)))
			return rc;
		snprintf(target, sizeof target, "%s", l->pos[2]);
	} else {
		return hisp_cli_bad(l, kind, "expected smtp or xdr");
	}
	if ((rc = need_local(l, addr)))
		return rc;
	const char *p[] = {addr, kind, target, tls, md};
	hie_err_t err = hisp_cli_exec1(l->c,
				       "INSERT INTO hisp_forwards (address, kind, target, tls, metadata)"
				       " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (address) DO UPDATE SET kind = EXCLUDED.kind,"
				       " target = EXCLUDED.target, tls = EXCLUDED.tls, metadata = EXCLUDED.metadata",
				       5, p, NULL);
	if (err)
		return hisp_cli_db_fail(l, err);
	if (strcmp(kind, "smtp") == 0)
		fprintf(l->c->out, "forward address=%s kind=smtp target=%s tls=%s\n", addr, target, tls);
	else
		fprintf(l->c->out, "forward address=%s kind=xdr target=%s metadata=%s\n", addr, target, md);
	return 0;
}

static int set_https(struct hisp_cli_line *l)
{
	return fwd_set(l, false);
}

static int set_http(struct hisp_cli_line *l)
{
	return fwd_set(l, true);
}

static const char *const set_opts[] = {"--tls", "--metadata", NULL};
static const struct hisp_cli_verb set_https_verbs[] = {
	{.name = "set", .run = set_https, .opts = set_opts, .maxpos = 3},
	{.maxpos = 3},
};
static const struct hisp_cli_verb set_http_verbs[] = {
	{.name = "set", .run = set_http, .opts = set_opts, .maxpos = 3},
	{.maxpos = 3},
};
static const struct hisp_cli_cmd set_https_cmd = {.name = "forward", .missing = "", .known = "",
						  .verbs = set_https_verbs};
static const struct hisp_cli_cmd set_http_cmd = {.name = "forward", .missing = "", .known = "",
						 .verbs = set_http_verbs};

/* `set` takes --insecure-http, a flag without value (the shared parser's options all take one): it is taken out
 * here and chooses which verb table parses the rest. */
static int set_sub(const struct hisp_cli *c, int argc, char **argv)
{
	char **v = calloc((size_t)argc + 1, sizeof *v);
	int n = 0, http = 0;
	if (!v) {
		fprintf(c->err, "forward set: out of memory\n");
		return 1;
	}
	for (int i = 0; i < argc; i++) {
		if (i > 0 && strcmp(argv[i], "--insecure-http") == 0)
			http++;
		else
			v[n++] = argv[i];
	}
	int rc;
	if (http > 1) {
		fprintf(c->err, "forward set: --insecure-http: given twice\n");
		rc = 2;
	} else {
		rc = hisp_cli_run(c, http ? &set_http_cmd : &set_https_cmd, n, v);
	}
	free(v);
	return rc;
}

static int fwd_list(struct hisp_cli_line *l)
{
	PGresult *r;
	hie_err_t err;
	int rc = hisp_cli_need_pos(l, 0, "");
	if (rc)
		return rc;
	if ((err = hisp_cli_exec1(l->c, "SELECT address, kind, target, tls, metadata FROM hisp_forwards ORDER BY address",
				  0, NULL, &r)))
		return hisp_cli_db_fail(l, err);
	for (int i = 0; i < PQntuples(r); i++) {
		bool smtp = strcmp(PQgetvalue(r, i, 1), "smtp") == 0;
		fprintf(l->c->out, "forward address=%s kind=%s target=%s %s=%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
			PQgetvalue(r, i, 2), smtp ? "tls" : "metadata", PQgetvalue(r, i, smtp ? 3 : 4));
	}
	return hisp_cli_list_end(l, r, "forwards");
}

static int fwd_remove(struct hisp_cli_line *l)
{
	char addr[256];
	int rows, rc;
	if ((rc = hisp_cli_need_pos(l, 1, "ADDRESS")) || (rc = hisp_cli_norm_addr(l, l->pos[0], l->pos[0], addr, sizeof addr)))
		return rc;
	const char *p[] = {addr};
	if ((rc = hisp_cli_exec_rows(l, "DELETE FROM hisp_forwards WHERE address = $1", 1, p, &rows)))
		return rc;
	if (rows != 1)
		return hisp_cli_fail(l, "%s: no forward", addr);
	fprintf(l->c->out, "removed forward address=%s\n", addr);
	return 0;
}

static int fwd_status(struct hisp_cli_line *l)
{
	char addr[256] = "";
	PGresult *r;
	hie_err_t err;
	int rc = 0;
	if (l->npos > 1)
		return hisp_cli_need_pos(l, 1, "[ADDRESS]");
	if (l->npos == 1 && (rc = hisp_cli_norm_addr(l, l->pos[0], l->pos[0], addr, sizeof addr)))
		return rc;
	const char *p[] = {addr};
	err = hisp_cli_exec1(l->c,
			     "SELECT s.mailbox_id, m.address, s.kind, s.state, s.attempts,"
			     " to_char(s.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), s.reason"
			     " FROM hisp_forward_state s JOIN hisp_mailbox m ON m.id = s.mailbox_id"
			     " WHERE $1 = '' OR m.address = $1 ORDER BY s.updated_at DESC, s.mailbox_id DESC LIMIT 50",
			     1, p, &r);
	if (err)
		return hisp_cli_db_fail(l, err);
	for (int i = 0; i < PQntuples(r); i++)
		fprintf(l->c->out, "forward mailbox=%s address=%s kind=%s state=%s attempts=%s updated=%s reason=\"%s\"\n",
			PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
			PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), hisp_cli_nz(r, i, 6, ""));
	return hisp_cli_list_end(l, r, "forwarded messages");
}

static const struct hisp_cli_verb forward_verbs[] = {
	{.name = "set", .sub = set_sub},
	{.name = "list", .run = fwd_list, .maxpos = 3},
	{.name = "remove", .run = fwd_remove, .maxpos = 3},
	{.name = "status", .run = fwd_status, .maxpos = 3},
	{.maxpos = 3},
};

static const struct hisp_cli_cmd forward_cmd = {
	.name = "forward",
	.missing = "(set ADDRESS smtp HOST:PORT | set ADDRESS xdr URL | list | remove ADDRESS | status [ADDRESS])",
	.known = "(set | list | remove | status)",
	.verbs = forward_verbs,
};

int hisp_cli_forward(const struct hisp_cli *c, int argc, char **argv)
{
	return hisp_cli_run(c, &forward_cmd, argc, argv);
}
