/*
 * hisp_cli_send.c — `hienode send --from ADDR --to ADDR [--to ADDR]... [--cc ADDR]... --subject TEXT
 * [--body FILE] [--attach FILE]...`: composes a Direct message (hisp_compose) and submits it
 * (hisp_outbound_submit) in one transaction; the running node's workers pick the hisp.send job up within
 * their poll interval. Prints the new Message-ID (without <>) on success.
 *
 * From must be a local address (its domain one of hisp_domains) with a signing certificate (hisp_keys_find).
 * Files are read up to [smtp] max_message_size each and in total. Options also accept --opt=VALUE.
 * Exit status: 0 submitted, 1 failed (database, file unreadable), 2 bad arguments (unknown option, bad
 * address, not a local address with a signing certificate, file too large, header injection attempt).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core_config.h"
#include "core/core_db.h"
#include "hisp/hisp.h"
#include "hisp/hisp_outbound.h"
#include "hisp/hisp_trust.h"

#define MAX_ADDRS 100
#define MAX_ATTACH 32

struct send_args {
	const char *from, *subject, *body;
	const char *to[MAX_ADDRS], *cc[MAX_ADDRS], *attach[MAX_ATTACH];
	size_t nto, ncc, natt;
};

/* Reads path into *out (malloc'd, NUL-terminated) when it has at most max bytes: 0, 1 (I/O), 2 (too big). */
static int read_file(const char *path, size_t max, char **out, size_t *len, FILE *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(err, "cannot read %s: %s\n", path, strerror(errno));
		return 1;
	}
	struct hie_buf b;
	hie_buf_init(&b, max);
	char chunk[65536];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (hie_buf_add(&b, chunk, n) != HIE_OK) {
			fprintf(err, "%s is larger than [smtp] max_message_size (%zu bytes)\n", path, max);
			rc = 2;
			break;
		}
	}
	if (!rc && ferror(f)) {
		fprintf(err, "cannot read %s: %s\n", path, strerror(errno));
		rc = 1;
	}
	fclose(f);
	if (rc) {
		hie_buf_free(&b);
		return rc;
	}
	*out = hie_buf_steal(&b, len);
	return 0;
}

static int parse_args(int argc, char **argv, struct send_args *a, FILE *err)
{
	int i = 0;
	if (argc > 0 && strcmp(argv[0], "send") == 0)
		i = 1; /* tolerate the command word itself */
	for (; i < argc; i++) {
		const char *opt = argv[i], *val = NULL;
		const char *eq = strchr(opt, '=');
		char name[32];
		if (strncmp(opt, "--", 2) != 0) {
			fprintf(err, "unexpected argument: %s\n", opt);
			return 2;
		}
		size_t nl = eq ? (size_t)(eq - opt) : strlen(opt);
		if (nl >= sizeof name) {
			fprintf(err, "unknown option: %s\n", opt);
			return 2;
		}
		memcpy(name, opt, nl);
		name[nl] = 0;
		if (eq) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			fprintf(err, "%s needs a value\n", name);
			return 2;
		}
		if (strcmp(name, "--from") == 0) {
			a->from = val;
		} else if (strcmp(name, "--subject") == 0) {
			a->subject = val;
		} else if (strcmp(name, "--body") == 0) {
			a->body = val;
		} else if (strcmp(name, "--to") == 0 || strcmp(name, "--cc") == 0) {
			bool to = name[2] == 't';
			size_t *n = to ? &a->nto : &a->ncc;
			if (*n >= MAX_ADDRS) {
				fprintf(err, "too many %s addresses (at most %d)\n", name, MAX_ADDRS);
				return 2;
			}
			(to ? a->to : a->cc)[(*n)++] = val;
		} else if (strcmp(name, "--attach") == 0) {
			if (a->natt >= MAX_ATTACH) {
				fprintf(err, "too many attachments (at most %d)\n", MAX_ATTACH);
				return 2;
			}
			a->attach[a->natt++] = val;
		} else {
			fprintf(err, "unknown option: %s\n", name);
			return 2;
		}
	}
	if (!a->from || !a->nto || !a->subject) {
		fprintf(err, "usage: hienode send --from ADDR --to ADDR [--to ADDR]... [--cc ADDR]... --subject TEXT"
			     " [--body FILE] [--attach FILE]...\n");
		return 2;
	}
	return 0;
}

/* 0 when from is a local address with a signing certificate; 1 database trouble; 2 not. */
static int check_sender(const struct hisp_cli *c, const char *from, FILE *err)
{
	struct hisp_keys *k = NULL;
	struct hisp_keypair *kp = NULL;
	size_t n = 0;
	long long local = 0;
	PGconn *conn;
	PGresult *res = NULL;
	const char *p[] = {hisp_addr_domain(from)};
	if (hie_db_acquire(c->pool, -1, &conn) != HIE_OK) {
		fprintf(err, "database unavailable\n");
		return 1;
	}
	hie_err_t e = hie_db_exec(conn, "SELECT count(*) FROM hisp_domains WHERE name = $1", 1, p, &res);
	if (!e)
		e = hie_db_get_ll(res, 0, 0, &local);
	PQclear(res);
	hie_db_release(c->pool, conn, false);
	if (e) {
		fprintf(err, "database error: %s\n", hie_strerror(e));
		return 1;
	}
	if (local == 1) {
		e = hisp_keys_open(c->pool, c->state_dir, &k);
		if (e) {
			fprintf(err, "cannot open the key store: %s\n", hie_strerror(e));
			return 1;
		}
		e = hisp_keys_find(k, from, HISP_USE_SIGN, &kp, &n);
		hisp_keypairs_free(kp, n);
		hisp_keys_close(k);
		if (e && e != HIE_ENOTFOUND) {
			fprintf(err, "cannot read the key store: %s\n", hie_strerror(e));
			return 1;
		}
	}
	if (local != 1 || e == HIE_ENOTFOUND || n == 0) {
		fprintf(err, "not a local address with a signing certificate: %s\n", from);
		return 2;
	}
	return 0;
}

struct submit_arg {
	const char *from;
	const char *const *rcpts;
	size_t nrcpts;
	const struct hie_buf *msg;
	const char *message_id;
	long long mdn_ms;
	long long id;
};

static hie_err_t submit_fn(PGconn *tx, void *arg)
{
	struct submit_arg *s = arg;
	return hisp_outbound_submit(tx, "message", s->from, s->rcpts, s->nrcpts, s->msg->data, s->msg->len,
				    s->message_id, true, s->mdn_ms, &s->id);
}

int hisp_cli_send(const struct hisp_cli *c, int argc, char **argv)
{
	struct send_args a = {0};
	char from[256], host[256] = "", msgid[300];
	char *body = NULL, *files[MAX_ATTACH] = {0};
	size_t body_len = 0, total = 0;
	struct hisp_attachment att[MAX_ATTACH];
	struct hie_buf msg = {0};
	int rc = parse_args(argc, argv, &a, c->err);
	if (rc)
		return rc;
	if (hisp_addr_normalize(a.from, false, from, sizeof from) != HIE_OK) {
		fprintf(c->err, "not an address: --from\n");
		return 2;
	}
	rc = check_sender(c, from, c->err);
	if (rc)
		return rc;
	size_t max = (size_t)hie_cfg_int(c->cfg, "smtp", "max_message_size");
	if (a.body) {
		rc = read_file(a.body, max, &body, &body_len, c->err);
		if (rc)
			goto out;
		total += body_len;
	}
	for (size_t i = 0; i < a.natt; i++) {
		size_t len = 0;
		rc = read_file(a.attach[i], max - (total < max ? total : max), &files[i], &len, c->err);
		if (rc)
			goto out;
		total += len;
		const char *slash = strrchr(a.attach[i], '/');
		att[i] = (struct hisp_attachment){.name = slash ? slash + 1 : a.attach[i], .data = files[i], .len = len};
	}
	const char *cfg_host = hie_cfg_str(c->cfg, "direct", "hostname");
	if (cfg_host[0])
		snprintf(host, sizeof host, "%s", cfg_host);
	else if (gethostname(host, sizeof host - 1) != 0 || !host[0])
		snprintf(host, sizeof host, "localhost");
	struct hisp_compose_req req = {.from = from, .to = a.to, .nto = a.nto, .cc = a.cc, .ncc = a.ncc,
				       .subject = a.subject, .body = body, .body_len = body_len,
				       .att = a.natt ? att : NULL, .natt = a.natt, .host = host};
	/* the composed message (base64 grows attachments by 4/3) must still fit the size the peers accept */
	hie_buf_init(&msg, max);
	hie_err_t err = hisp_compose(&req, &msg, msgid, sizeof msgid);
	if (err == HIE_ETOOBIG) {
		fprintf(c->err, "the message is larger than [smtp] max_message_size (%zu bytes)\n", max);
		rc = 2;
		goto out;
	}
	if (err) {
		fprintf(c->err, "cannot compose the message: %s (an address, the subject or a file name is not"
				" acceptable)\n",
			hie_strerror(err));
		rc = err == HIE_EINVAL ? 2 : 1;
		goto out;
	}
	const char *rcpts[2 * MAX_ADDRS];
	size_t nr = 0;
	for (size_t i = 0; i < a.nto; i++)
		rcpts[nr++] = a.to[i];
	for (size_t i = 0; i < a.ncc; i++)
		rcpts[nr++] = a.cc[i];
	struct submit_arg s = {.from = from, .rcpts = rcpts, .nrcpts = nr, .msg = &msg, .message_id = msgid,
			       .mdn_ms = hie_cfg_int(c->cfg, "direct", "mdn_timeout")};
	err = hie_db_tx(c->pool, submit_fn, &s);
	if (err) {
		fprintf(c->err, "cannot submit: %s\n", hie_strerror(err));
		rc = err == HIE_EINVAL ? 2 : 1;
		goto out;
	}
	fprintf(c->out, "%s\n", msgid);
	rc = 0;
out:
	hie_buf_free(&msg);
	free(body);
	for (size_t i = 0; i < MAX_ATTACH; i++)
		free(files[i]);
	return rc;
}
