/*
 * hisptest.h — helpers shared by the Direct edge unit tests (tests/unit/hisp), header-only. Include it after
 * cmocka.h (its helpers assert); it includes pgtest.h itself.
 *
 *   hisptest_open(&t, &pool)                  group setup: cluster, pool of 4, the jobs and hisp schemas
 *   hisptest_tmpdir(dir, len, prefix)         a fresh /tmp/<prefix>.XXXXXX; hisptest_rmdir removes one
 *   hisptest_config(&cfg, sets, n)            the hisp keys registered, defaults loaded, the settings applied
 *   hisptest_exec_all(pool, sql, ..., NULL)   per-test cleanup: each statement in turn
 *   hisptest_reset(pool, sql, ..., NULL)      the same after forgetting every login failure count
 *   hisptest_cli(&base, fn, line, in, ...)    a `hienode` command (hisp_cli_*) with line split on blanks
 *   hisptest_cli_all(&base, fn, lines, n)     several, each of which must answer 0 (group setup)
 *   hisptest_status(&base)                    the Direct part of `hienode status` as text
 *   hisptest_deliver(pool, h, addr, msg, n)   a received message put in addr's mailbox (the edge hook runs)
 *   hisptest_scalar_id / hisptest_text_id     a query whose only parameter $1 is an id: integer / text value
 *   hisptest_slurp(path, &len)                a whole file (NULL when it cannot be read)
 *   HISPTEST_CDA, hisptest_make_xdm           a small CDA document; an XDM zip carrying it
 *   hisptest_zip_take, hisptest_break_index   an in-memory zip's bytes; a zip whose INDEX.HTM is not XHTML
 *
 * HISPTEST_VERBOSE=1 prints every command hisptest_cli runs; a failing one is printed unless HISPTEST_QUIET is
 * set (tests set it around commands meant to fail) or the caller captures the command's error output.
 */
#ifndef HIENODE_TESTS_HISPTEST_H
#define HIENODE_TESTS_HISPTEST_H

#include "tests/unit/core/pgtest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/tree.h>
#include <zip.h>

#include "core/core_buf.h"
#include "core/core_config.h"
#include "core/core_jobs.h"
#include "hisp/hisp.h"
#include "hisp/hisp_edge.h"
#include "hisp/hisp_notice.h"
#include "hisp/hisp_svc.h"

/* --- fixture -------------------------------------------------------------------------------------------------- */

/* Group setup of the database suites: pgtest_open with a pool of 4 and the jobs and hisp migrations. */
static inline int hisptest_open(struct pgtest *t, struct hie_db_pool **pool)
{
	const struct pgtest_schema schema[] = {{hie_jobs_migrations, hie_jobs_migrations_count},
					       {hisp_migrations, hisp_migrations_count}};
	return pgtest_open(t, 4, schema, 2, pool);
}

/* A fresh directory /tmp/<prefix>.XXXXXX into dir; 0 or -1. */
static inline int hisptest_tmpdir(char *dir, size_t len, const char *prefix)
{
	snprintf(dir, len, "/tmp/%s.XXXXXX", prefix);
	return mkdtemp(dir) ? 0 : -1;
}

/* Removes a directory made by hisptest_tmpdir, unless PGTEST_KEEP is set. */
static inline void hisptest_rmdir(const char *dir)
{
	if (!getenv("PGTEST_KEEP"))
		pgtest_rmrf(dir);
}

struct hisptest_set {
	const char *section, *key, *value;
};

/* The hisp configuration keys registered, the defaults loaded and the n settings applied: 0, or -1 (said). */
static inline int hisptest_config(struct hie_cfg **cfg, const struct hisptest_set *set, size_t n)
{
	char e[256] = "";
	hie_cfg_register(hisp_config_keys, hisp_config_nkeys);
	if (hie_cfg_load(cfg, NULL, e, sizeof e) != HIE_OK)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (hie_cfg_set(*cfg, set[i].section, set[i].key, set[i].value, e, sizeof e) != HIE_OK)
			goto fail;
	return 0;
fail:
	fprintf(stderr, "config: %s\n", e);
	return -1;
}

/* Runs sql, then each statement of ap up to NULL, with pgtest_exec until one fails: 0, or -1. */
static inline int hisptest_vexec_all(struct hie_db_pool *pool, const char *sql, va_list ap)
{
	for (const char *s = sql; s; s = va_arg(ap, const char *))
		if (pgtest_exec(pool, s) != HIE_OK)
			return -1;
	return 0;
}

/* Runs each statement (the list ends with NULL) until one fails: 0, or -1. */
static inline int hisptest_exec_all(struct hie_db_pool *pool, const char *sql, ...)
{
	va_list ap;
	va_start(ap, sql);
	int rc = hisptest_vexec_all(pool, sql, ap);
	va_end(ap);
	return rc;
}

/* hisp_auth_limit_reset, then hisptest_exec_all: the per-test setup of the suites that log users in. */
static inline int hisptest_reset(struct hie_db_pool *pool, const char *sql, ...)
{
	va_list ap;
	hisp_auth_limit_reset();
	va_start(ap, sql);
	int rc = hisptest_vexec_all(pool, sql, ap);
	va_end(ap);
	return rc;
}

/* --- commands ------------------------------------------------------------------------------------------------- */

/*
 * Runs fn (a hisp_cli_* command) with the pool, configuration and state directory of base and line split on
 * blanks (at most 40 words) as its arguments. input != NULL: it is the command's standard input (a pipe).
 * The command's standard output goes to out, its error output to err (each cut to its size; either may be NULL).
 * Returns the command's exit code.
 */
static inline int hisptest_cli(const struct hisp_cli *base, int (*fn)(const struct hisp_cli *, int, char **),
			       const char *line, const char *input, char *out, size_t outlen, char *err, size_t errlen)
{
	char copy[2048], *argv[40];
	int argc = 0, saved = -1;
	snprintf(copy, sizeof copy, "%s", line);
	for (char *p = copy; *p && argc < 40;) {
		while (*p == ' ')
			*p++ = '\0';
		if (!*p)
			break;
		argv[argc++] = p;
		while (*p && *p != ' ')
			p++;
	}
	if (input) {
		int fds[2];
		size_t n = strlen(input);
		saved = dup(0);
		assert_int_equal(pipe(fds), 0);
		assert_int_equal(write(fds[1], input, n), (ssize_t)n);
		close(fds[1]);
		dup2(fds[0], 0);
		close(fds[0]);
	}
	char *obuf = NULL, *ebuf = NULL;
	size_t olen = 0, elen = 0;
	struct hisp_cli c = *base;
	c.out = open_memstream(&obuf, &olen);
	c.err = open_memstream(&ebuf, &elen);
	assert_non_null(c.out);
	assert_non_null(c.err);
	int rc = fn(&c, argc, argv);
	fclose(c.out);
	fclose(c.err);
	if (input) {
		dup2(saved, 0);
		close(saved);
	}
	if (getenv("HISPTEST_VERBOSE") || (rc && !err && !getenv("HISPTEST_QUIET")))
		fprintf(stderr, "cli '%s' → %d: %s%s", line, rc, obuf, ebuf);
	if (out)
		snprintf(out, outlen, "%s", obuf);
	if (err)
		snprintf(err, errlen, "%s", ebuf);
	free(obuf);
	free(ebuf);
	return rc;
}

/* Runs fn once per line, output discarded: 0 when every one answered 0, else -1. */
static inline int hisptest_cli_all(const struct hisp_cli *base, int (*fn)(const struct hisp_cli *, int, char **),
				   const char *const *lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (hisptest_cli(base, fn, lines[i], NULL, NULL, 0, NULL, 0) != 0)
			return -1;
	return 0;
}

/* The Direct part of `hienode status` (hisp_cli_status must answer 0; errors to stderr); the caller frees it. */
static inline char *hisptest_status(const struct hisp_cli *base)
{
	char *obuf = NULL;
	size_t olen = 0;
	struct hisp_cli c = *base;
	c.out = open_memstream(&obuf, &olen);
	c.err = stderr;
	assert_non_null(c.out);
	assert_int_equal(hisp_cli_status(&c), 0);
	fclose(c.out);
	return obuf;
}

/* --- the mailbox ---------------------------------------------------------------------------------------------- */

struct hisptest_put {
	struct hisp *h;
	const char *addr;
	const void *msg;
	size_t len;
	long long mailbox_id;
};

/* As the receive job does: the accepted message, the mailbox item, then the edge hook (forward state + jobs). */
static inline hie_err_t hisptest_put_tx(PGconn *tx, void *arg)
{
	struct hisptest_put *p = arg;
	PGresult *r = NULL;
	const char *v[] = {p->addr};
	hie_err_t err = hie_db_exec(tx,
				    "INSERT INTO hisp_inbound (peer, mail_from, rcpt_to, raw, state)"
				    " VALUES ('127.0.0.1', 'alice@a.test', ARRAY[$1], '\\x00', 'delivered') RETURNING id",
				    1, v, &r);
	if (err)
		return err;
	long long inb = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	err = hisp_mailbox_put(tx, p->addr, "message", inb, "m@a.test", p->msg, p->len);
	if (!err)
		err = hisp_edge_delivered(p->h, tx, p->addr, inb);
	if (!err)
		err = hie_db_exec(tx, "SELECT max(id) FROM hisp_mailbox", 0, NULL, &r);
	if (!err) {
		p->mailbox_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
	}
	return err;
}

/* Delivers msg (from alice@a.test) to addr in one transaction, which must commit; the mailbox item's id. */
static inline long long hisptest_deliver(struct hie_db_pool *pool, struct hisp *h, const char *addr, const void *msg,
					 size_t len)
{
	struct hisptest_put p = {.h = h, .addr = addr, .msg = msg, .len = len};
	assert_int_equal(hie_db_tx(pool, hisptest_put_tx, &p), HIE_OK);
	return p.mailbox_id;
}

/* --- queries -------------------------------------------------------------------------------------------------- */

/* pgtest_scalar of a query whose only parameter $1 is id (write $1::bigint); -1 on any failure. */
static inline long long hisptest_scalar_id(struct hie_db_pool *pool, const char *sql, long long id)
{
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", id);
	return pgtest_scalar(pool, sql, ids);
}

/* The first value of the only row of a query whose only parameter $1 is id; fails the test without one row. */
static inline void hisptest_text_id(struct hie_db_pool *pool, const char *sql, long long id, char *out, size_t outlen)
{
	PGconn *c;
	PGresult *r;
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", id);
	const char *p[] = {ids};
	assert_int_equal(hie_db_acquire(pool, -1, &c), HIE_OK);
	assert_int_equal(hie_db_exec(c, sql, 1, p, &r), HIE_OK);
	assert_int_equal(PQntuples(r), 1);
	snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	hie_db_release(pool, c, false);
}

/* --- files and documents -------------------------------------------------------------------------------------- */

/* The whole file, NUL-terminated, at most 64 MiB; NULL when it cannot be opened. The caller frees it. */
static inline char *hisptest_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct hie_buf b;
	hie_buf_init(&b, 64u << 20);
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		assert_int_equal(hie_buf_add(&b, chunk, n), HIE_OK);
	fclose(f);
	return hie_buf_steal(&b, len);
}

#define HISPTEST_CDA                                                                                               \
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                                                             \
	"<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><title>Discharge summary</title></ClinicalDocument>\n"

/* Appends an XDM zip from `from` to `to` with HISPTEST_CDA as its one document (minimal metadata) to zip. */
static inline void hisptest_make_xdm(struct hie_buf *zip, const char *from, const char *to)
{
	static const char cda[] = HISPTEST_CDA;
	struct hisp_xdm_doc doc = {.entry_id = "Document01", .mime_type = "text/xml", .data = (const unsigned char *)cda,
				   .len = sizeof cda - 1};
	const char *rcpt[] = {to};
	xmlDoc *md = NULL;
	assert_int_equal(hisp_xdm_minimal_metadata(from, rcpt, 1, &doc, 1, &md), HIE_OK);
	assert_int_equal(hisp_xdm_build(xmlDocGetRootElement(md), &doc, 1, from, zip), HIE_OK);
	xmlFreeDoc(md);
}

/* After zip_close of an archive written to src (kept with zip_source_keep): its bytes appended to out; src freed. */
static inline void hisptest_zip_take(zip_source_t *src, struct hie_buf *out)
{
	assert_int_equal(zip_source_open(src), 0);
	assert_int_equal(zip_source_seek(src, 0, SEEK_END), 0);
	zip_int64_t size = zip_source_tell(src);
	assert_true(size > 0);
	assert_int_equal(zip_source_seek(src, 0, SEEK_SET), 0);
	assert_int_equal(hie_buf_reserve(out, (size_t)size), HIE_OK);
	assert_int_equal(zip_source_read(src, out->data + out->len, (zip_uint64_t)size), size);
	out->len += (size_t)size;
	out->data[out->len] = '\0';
	zip_source_close(src);
	zip_source_free(src);
}

/* The zip with its INDEX.HTM replaced by text that is not XHTML. */
static inline void hisptest_break_index(struct hie_buf *zip)
{
	static const char bad[] = "<html><body><p>not closed</body>";
	zip_error_t ze;
	zip_error_init(&ze);
	zip_source_t *src = zip_source_buffer_create(zip->data, zip->len, 0, &ze);
	assert_non_null(src);
	zip_source_keep(src);
	zip_t *z = zip_open_from_source(src, 0, &ze);
	assert_non_null(z);
	zip_int64_t idx = -1;
	for (zip_int64_t i = 0; i < zip_get_num_entries(z, 0); i++) {
		const char *nm = zip_get_name(z, (zip_uint64_t)i, 0);
		size_t nl = nm ? strlen(nm) : 0;
		if (nl >= 9 && strcmp(nm + nl - 9, "INDEX.HTM") == 0)
			idx = i;
	}
	assert_true(idx >= 0);
	zip_source_t *s2 = zip_source_buffer(z, bad, sizeof bad - 1, 0);
	assert_int_equal(zip_file_replace(z, (zip_uint64_t)idx, s2, 0), 0);
	assert_int_equal(zip_close(z), 0);
	hie_buf_reset(zip);
	hisptest_zip_take(src, zip);
}

#endif
