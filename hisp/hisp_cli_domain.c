/*
 * hisp_cli_domain.c — `hienode domain`: our Direct domains, their addresses and the algorithm policy we use
 * towards a partner domain (one-shot, on c->pool; conventions in hisp_cli_int.h):
 *
 *   domain add DOMAIN | list | remove DOMAIN
 *   domain policy PARTNER_DOMAIN [--cipher C] [--key-transport K] [--digest D]   ("default" clears one;
 *                                                                                 no flag: show the policy)
 *   domain address add ADDR | list [DOMAIN] | remove ADDR
 *
 * Entry point: hisp_cli_domain (hisp.h). Exit status 0 done, 1 failed, 2 bad arguments.
 */
#include <stdio.h>
#include <string.h>

#include "hisp/hisp_cli_int.h"
#include "hisp/hisp_smime.h"
#include "hisp/hisp_trust.h"

static int domain_add(struct hisp_cli_line *l)
{
	char d[256];
	int rows, rc = hisp_cli_need_pos(l, 1, "DOMAIN");
	if (rc || (rc = hisp_cli_norm_domain(l, l->pos[0], l->pos[0], d, sizeof d)))
		return rc;
	const char *p[] = {d};
	if ((rc = hisp_cli_exec_rows(l, "INSERT INTO hisp_domains (name) VALUES ($1) ON CONFLICT DO NOTHING", 1, p,
				     &rows)))
		return rc;
	fprintf(l->c->out, "%s domain=%s\n", rows == 1 ? "added" : "exists", d);
	return 0;
}

static int domain_list(struct hisp_cli_line *l)
{
	if (hisp_cli_need_pos(l, 0, ""))
		return 2;
	PGresult *r;
	hie_err_t err = hisp_cli_exec1(l->c,
				       "SELECT d.name,"
				       " (SELECT count(*) FROM hisp_addresses a WHERE a.domain = d.name),"
				       " (SELECT count(*) FROM hisp_anchors x WHERE x.domain = d.name),"
				       " (SELECT count(*) FROM hisp_certs c WHERE c.key_file IS NOT NULL AND"
				       "  (c.owner = d.name OR split_part(c.owner, '@', 2) = d.name)),"
				       " (SELECT count(*) FROM hisp_bundles b WHERE b.domain = d.name)"
				       " FROM hisp_domains d ORDER BY d.name",
				       0, NULL, &r);
	if (err)
		return hisp_cli_db_fail(l, err);
	for (int i = 0; i < PQntuples(r); i++)
		fprintf(l->c->out, "domain=%s addresses=%s keys=%s anchors=%s bundles=%s\n", PQgetvalue(r, i, 0),
			PQgetvalue(r, i, 1), PQgetvalue(r, i, 3), PQgetvalue(r, i, 2), PQgetvalue(r, i, 4));
	return hisp_cli_list_end(l, r, "domains");
}

static int domain_remove(struct hisp_cli_line *l)
{
	char d[256];
	int rows, rc = hisp_cli_need_pos(l, 1, "DOMAIN");
	if (rc || (rc = hisp_cli_norm_domain(l, l->pos[0], l->pos[0], d, sizeof d)))
		return rc;
	const char *p[] = {d};
	if ((rc = hisp_cli_exec_rows(l, "DELETE FROM hisp_domains WHERE name = $1", 1, p, &rows)))
		return rc;
	if (rows != 1)
		return hisp_cli_fail(l, "%s: not one of our domains", d);
	fprintf(l->c->out, "removed domain=%s (its addresses, anchors and bundles too; certificates stay)\n", d);
	return 0;
}

/* Option `which` of the policy verb (0 --cipher, 1 --key-transport, 2 --digest) as its canonical name; NULL for
 * none or "default". */
static int policy_value(const struct hisp_cli_line *l, int which, const char **out)
{
	const char *v = l->opts[which].val, *flag = l->opts[which].name;
	*out = NULL;
	if (!v || strcmp(v, "default") == 0)
		return 0;
	if (which == 0) {
		enum hisp_cipher x;
		if (hisp_cipher_parse(v, &x))
			return hisp_cli_bad(l, flag,
					    "expected aes128-cbc, aes192-cbc, aes256-cbc, aes128-gcm, aes256-gcm or default");
		*out = hisp_cipher_name(x);
	} else if (which == 1) {
		enum hisp_key_transport x;
		if (hisp_kt_parse(v, &x))
			return hisp_cli_bad(l, flag, "expected rsa-oaep-sha256, rsa-oaep-sha1, rsa-pkcs1 or default");
		*out = hisp_kt_name(x);
	} else {
		enum hisp_digest x;
		if (hisp_digest_parse(v, &x))
			return hisp_cli_bad(l, flag, "expected sha256, sha384, sha512 or default");
		*out = hisp_digest_name(x);
	}
	return 0;
}

static int domain_policy(struct hisp_cli_line *l)
{
	char d[256];
	int rc = hisp_cli_need_pos(l, 1, "PARTNER_DOMAIN [--cipher C] [--key-transport K] [--digest D]");
	if (rc || (rc = hisp_cli_norm_domain(l, l->pos[0], l->pos[0], d, sizeof d)))
		return rc;
	const char *v[3];
	for (int i = 0; i < 3; i++)
		if ((rc = policy_value(l, i, &v[i])))
			return rc;
	hie_err_t err = HIE_OK;
	bool any = l->opts[0].val || l->opts[1].val || l->opts[2].val;
	if (any) {
		const char *p[] = {d, v[0], v[1], v[2], l->opts[0].val ? "t" : "f", l->opts[1].val ? "t" : "f",
				   l->opts[2].val ? "t" : "f"};
		err = hisp_cli_exec1(l->c,
				     "INSERT INTO hisp_policies (domain, cipher, key_transport, digest) VALUES ($1, $2, $3, $4)"
				     " ON CONFLICT (domain) DO UPDATE SET"
				     " cipher = CASE WHEN $5::boolean THEN EXCLUDED.cipher ELSE hisp_policies.cipher END,"
				     " key_transport = CASE WHEN $6::boolean THEN EXCLUDED.key_transport"
				     "  ELSE hisp_policies.key_transport END,"
				     " digest = CASE WHEN $7::boolean THEN EXCLUDED.digest ELSE hisp_policies.digest END",
				     7, p, NULL);
		if (err)
			return hisp_cli_db_fail(l, err);
	}
	const char *p[] = {d};
	PGresult *r;
	err = hisp_cli_exec1(l->c, "SELECT cipher, key_transport, digest FROM hisp_policies WHERE domain = $1", 1, p,
			     &r);
	if (err)
		return hisp_cli_db_fail(l, err);
	bool row = PQntuples(r) == 1;
	fprintf(l->c->out, "%s domain=%s cipher=%s key_transport=%s digest=%s\n", any ? "policy set" : "policy", d,
		row ? hisp_cli_nz(r, 0, 0, "default") : "default", row ? hisp_cli_nz(r, 0, 1, "default") : "default",
		row ? hisp_cli_nz(r, 0, 2, "default") : "default");
	PQclear(r);
	return 0;
}

/* --- domain address -------------------------------------------------------------------------------------- */

static int address_list(struct hisp_cli_line *l)
{
	char d[256];
	int rc;
	if (l->npos == 1 && (rc = hisp_cli_norm_domain(l, l->pos[0], l->pos[0], d, sizeof d)))
		return rc;
	const char *p[] = {l->npos ? d : NULL};
	PGresult *r;
	hie_err_t err = hisp_cli_exec1(l->c,
				       "SELECT a.address, a.domain, (SELECT count(*) FROM hisp_certs c WHERE c.key_file IS"
				       " NOT NULL AND c.owner = a.address) FROM hisp_addresses a"
				       " WHERE $1::text IS NULL OR a.domain = $1 ORDER BY a.address",
				       1, p, &r);
	if (err)
		return hisp_cli_db_fail(l, err);
	for (int i = 0; i < PQntuples(r); i++)
		fprintf(l->c->out, "address=%s domain=%s keys=%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
			PQgetvalue(r, i, 2));
	return hisp_cli_list_end(l, r, "addresses");
}

static int address_add(struct hisp_cli_line *l)
{
	char a[256];
	int rc;
	if ((rc = hisp_cli_need_pos(l, 1, "ADDR")) || (rc = hisp_cli_norm_addr(l, l->pos[0], l->pos[0], a, sizeof a)))
		return rc;
	const char *p[] = {a, hisp_addr_domain(a)};
	PGresult *r;
	hie_err_t err = hisp_cli_exec1(l->c,
				       "INSERT INTO hisp_addresses (address, domain) SELECT $1, name FROM hisp_domains"
				       " WHERE name = $2 ON CONFLICT DO NOTHING RETURNING 1",
				       2, p, &r);
	if (err)
		return hisp_cli_db_fail(l, err);
	bool added = PQntuples(r) == 1;
	PQclear(r);
	if (!added) {
		err = hisp_cli_exec1(l->c, "SELECT 1 FROM hisp_addresses WHERE address = $1", 1, p, &r);
		if (err)
			return hisp_cli_db_fail(l, err);
		bool exists = PQntuples(r) == 1;
		PQclear(r);
		if (!exists)
			return hisp_cli_fail(l, "%s: %s is not one of our domains (hienode domain add %s)", a,
					     hisp_addr_domain(a), hisp_addr_domain(a));
	}
	fprintf(l->c->out, "%s address=%s\n", added ? "added" : "exists", a);
	return 0;
}

static int address_remove(struct hisp_cli_line *l)
{
	char a[256];
	int rows, rc;
	if ((rc = hisp_cli_need_pos(l, 1, "ADDR")) || (rc = hisp_cli_norm_addr(l, l->pos[0], l->pos[0], a, sizeof a)))
		return rc;
	const char *p[] = {a};
	if ((rc = hisp_cli_exec_rows(l, "DELETE FROM hisp_addresses WHERE address = $1", 1, p, &rows)))
		return rc;
	if (rows != 1)
		return hisp_cli_fail(l, "%s: not one of our addresses", a);
	fprintf(l->c->out, "removed address=%s\n", a);
	return 0;
}

static const struct hisp_cli_verb address_verbs[] = {
	{.name = "add", .run = address_add, .maxpos = 1},
	{.name = "list", .run = address_list, .maxpos = 1},
	{.name = "remove", .run = address_remove, .maxpos = 1},
	{.maxpos = 1},
};

static const struct hisp_cli_cmd address_cmd = {
	.name = "domain address",
	.missing = "(add ADDR | list [DOMAIN] | remove ADDR)",
	.known = "(add | list | remove)",
	.verbs = address_verbs,
};

static int domain_address(const struct hisp_cli *c, int argc, char **argv)
{
	return hisp_cli_run(c, &address_cmd, argc - 1, argv + 1);
}

/* --- domain ---------------------------------------------------------------------------------------------- */

static const char *const policy_opts[] = {"--cipher", "--key-transport", "--digest", NULL};

static const struct hisp_cli_verb domain_verbs[] = {
	{.name = "add", .run = domain_add, .maxpos = 1},
	{.name = "list", .run = domain_list, .maxpos = 1},
	{.name = "remove", .run = domain_remove, .maxpos = 1},
	{.name = "policy", .run = domain_policy, .opts = policy_opts, .maxpos = 1},
	{.name = "address", .sub = domain_address},
	{.maxpos = 1},
};

static const struct hisp_cli_cmd domain_cmd = {
	.name = "domain",
	.missing = "(add | list | remove | policy | address)",
	.known = "(add | list | remove | policy | address)",
	.verbs = domain_verbs,
};

int hisp_cli_domain(const struct hisp_cli *c, int argc, char **argv)
{
	return hisp_cli_run(c, &domain_cmd, argc, argv);
}
