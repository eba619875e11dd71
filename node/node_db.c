/*
 * node_db.c — the node's database: the embedded cluster (or [database] url), the pool, the migrations of
 * every module. Shared by `serve` and the one-shot commands (migrate, status, patient: node_oneshot_open/close),
 * which leave an embedded cluster as they found it: stopped if they started it, running if a node was using it.
 */
#include <string.h>

#include "core/core_jobs.h"
#include "core/core_log.h"
#include "hisp/hisp.h"
#include "node/node.h"
#include "notify/notify.h"
#include "registry/registry.h"

/* Every module's migrations, in dependency order (core first). */
static const struct {
	const struct hie_db_migration *migs;
	const size_t *n;
} all_migrations[] = {
	{hie_jobs_migrations, &hie_jobs_migrations_count},
	{registry_migrations, &registry_migrations_count},
	{hisp_migrations, &hisp_migrations_count},
	{notify_migrations, &notify_migrations_count},
};

hie_err_t node_db_migrate(struct hie_db_pool *pool)
{
	for (size_t i = 0; i < sizeof all_migrations / sizeof all_migrations[0]; i++) {
		int applied = 0;
		hie_err_t err = hie_db_migrate(pool, all_migrations[i].migs, *all_migrations[i].n, &applied);
		if (err)
			return err;
		if (applied)
			hie_log(HIE_LOG_NOTICE, "event=db.migrate module=%s applied=%d", all_migrations[i].migs[0].module,
				applied);
	}
	return HIE_OK;
}

hie_err_t node_db_open(struct node_db *db, const struct hie_cfg *cfg, const char *state_dir,
		       const struct node_identity *id, int pool_size)
{
	memset(db, 0, sizeof *db);
	const char *conninfo = hie_cfg_str(cfg, "database", "url");
	hie_err_t err;
	if (conninfo[0] == '\0') {
		struct hie_pg_opts po = {
			.state_dir = state_dir,
			.bindir = hie_cfg_str(cfg, "database", "pg_bindir"),
			.run_as = id->drop ? id->name : NULL,
		};
		err = hie_pg_start(&db->pg, &po);
		if (err) {
			hie_log(HIE_LOG_ERR, "event=db.embedded error=%s state_dir=%s hint=\"see state_dir/pg/log\"",
				hie_errname(err), state_dir);
			return err;
		}
		db->was_running = hie_pg_reused(db->pg);
		conninfo = hie_pg_conninfo(db->pg);
	}
	struct hie_db_opts o = {
		.conninfo = conninfo,
		.size = pool_size,
		.acquire_timeout_ms = (int)hie_cfg_int(cfg, "database", "acquire_timeout"),
		.statement_timeout_ms = (int)hie_cfg_int(cfg, "database", "statement_timeout"),
		.connect_at_open = true,
	};
	err = hie_db_pool_open(&db->pool, &o);
	if (err) {
		hie_log(HIE_LOG_ERR, "event=db.open error=%s", hie_errname(err));
		node_db_close(db);
	}
	return err;
}

void node_db_close(struct node_db *db)
{
	hie_db_pool_close(db->pool);
	db->pool = NULL;
	if (db->pg) {
		if (db->was_running)
			hie_pg_forget(db->pg);
		else if (hie_pg_stop(db->pg))
			hie_log(HIE_LOG_ERR, "event=db.embedded.stop error=failed");
		db->pg = NULL;
	}
}

hie_err_t node_oneshot_open(struct node_oneshot *s, const struct node_opts *o)
{
	s->cfg = node_config_load(o->config_path);
	if (!s->cfg)
		return HIE_ECONFIG;
	hie_err_t err = node_identity_resolve(s->cfg, &s->id);
	if (!err)
		err = node_state_dir_prepare(s->cfg, &s->id, s->state_dir, sizeof s->state_dir);
	if (!err)
		err = node_db_open(&s->db, s->cfg, s->state_dir, &s->id, 1);
	return err;
}

void node_oneshot_close(struct node_oneshot *s)
{
	node_db_close(&s->db);
	hie_cfg_free(s->cfg);
	s->cfg = NULL;
}
