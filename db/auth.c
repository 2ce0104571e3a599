/*
 * Authentication data: token lookup by secret hash (with the user and its grants), the
 * first-start admin bootstrap, and the generation counter that invalidates auth caches.
 */
#include "driver.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong auth_generation = 1;

/* false while changes of other processes may go unnoticed: every read is then a new
 * generation, so the auth cache never answers. */
static atomic_bool auth_trusted = true;

unsigned long dh_db_auth_generation(void)
{
	if (!atomic_load(&auth_trusted))
		return atomic_fetch_add(&auth_generation, 1) + 1;
	return atomic_load(&auth_generation);
}

void dh_db_auth_trust(bool ok)
{
	atomic_fetch_add(&auth_generation, 1);
	atomic_store(&auth_trusted, ok);
}

void dh_db_auth_bump(void)
{
	atomic_fetch_add(&auth_generation, 1);
}

static const char sql_token[] =
	"SELECT t.id, t.expire_time, t.revoked, u.id, u.name, u.is_active"
	" FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.secret_hash = ?1";
static const char sql_grants[] =
	/* a model's grant is over the model's product of now: the model may have moved since
	 * the grant recorded it (models' writes move the auth generation for that reason) */
	"SELECT a.action, coalesce(m.product_id, a.product_id, ''), coalesce(a.model_id, ''),"
	" coalesce(a.channel_id, '') FROM access_rights a LEFT JOIN models m ON m.id = a.model_id"
	" WHERE a.user_id = ?1";

enum dh_err dh_db_auth_lookup(struct dh_db *db, const char hash_hex[DH_SHA256_HEX],
			      struct dh_principal *p, int64_t *expire_us, bool *revoked)
{
	struct dh_stmt *st = dh_db_prep(db, sql_token);
	enum dh_err rc = DH_OK;
	size_t cap = 0;
	int r;

	memset(p, 0, sizeof(*p));
	*expire_us = 0;
	*revoked = false;
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, hash_hex);
	r = dh_stmt_step(st);
	if (r <= 0 || !dh_stmt_col_int(st, 5)) {
		rc = r < 0 ? dh_stmt_error(st, NULL) : DH_E_UNAUTHORIZED;
		dh_stmt_reset(st);
		return rc;
	}
	dh_stmt_col_copy(st, 0, p->token_id, sizeof(p->token_id));
	if (!dh_stmt_isnull(st, 1) && !dh_time_parse(dh_stmt_col_text(st, 1), expire_us))
		*expire_us = 1; /* unreadable expiry: treat as long expired */
	*revoked = dh_stmt_col_int(st, 2) != 0;
	dh_stmt_col_copy(st, 3, p->user_id, sizeof(p->user_id));
	dh_stmt_col_copy(st, 4, p->user_name, sizeof(p->user_name));
	dh_stmt_reset(st);

	st = dh_db_prep(db, sql_grants);
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, p->user_id);
	while ((r = dh_stmt_step(st)) > 0) {
		struct dh_grant *g;
		if (p->ngrants == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			struct dh_grant *n = realloc(p->grants, ncap * sizeof(*n));
			if (!n) {
				rc = DH_E_NOMEM;
				break;
			}
			p->grants = n;
			cap = ncap;
		}
		g = &p->grants[p->ngrants++];
		g->action = dh_action_parse(dh_stmt_col_text(st, 0));
		dh_stmt_col_copy(st, 1, g->product, sizeof(g->product));
		dh_stmt_col_copy(st, 2, g->model, sizeof(g->model));
		dh_stmt_col_copy(st, 3, g->channel, sizeof(g->channel));
	}
	if (rc == DH_OK && r < 0)
		rc = dh_stmt_error(st, NULL);
	dh_stmt_reset(st);
	if (rc != DH_OK)
		dh_principal_release(p);
	return rc;
}

struct bootstrap {
	const char *hash_hex;
	bool *created;
};

static enum dh_err bootstrap_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct bootstrap *b = cls;
	struct dh_stmt *st;
	char uid[DH_UUID_LEN], tid[DH_UUID_LEN], gid[DH_UUID_LEN], now[DH_TIME_LEN];
	enum dh_err rc;
	int64_t users;

	*b->created = false;
	st = dh_db_prep(db, "SELECT count(*) FROM users");
	if (!st)
		return dh_error_set(err, DH_E_DB, "Cannot count users");
	if (dh_stmt_step(st) <= 0) {
		rc = dh_stmt_error(st, err);
		dh_stmt_reset(st);
		return rc;
	}
	users = dh_stmt_col_int(st, 0);
	dh_stmt_reset(st);
	if (users > 0)
		return DH_OK;
	dh_uuid_new(uid);
	dh_uuid_new(tid);
	dh_uuid_new(gid);
	dh_time_format(dh_now_us(), now);
	st = dh_db_prep(db, "INSERT INTO users (id, tid, name, create_time)"
			    " VALUES (?1, 'admin', 'admin', ?2)");
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, uid);
	dh_stmt_text(st, 2, now);
	rc = dh_stmt_run(st, err);
	if (rc != DH_OK)
		return rc;
	st = dh_db_prep(db, "INSERT INTO tokens (id, tid, user_id, name, secret_hash, prefix,"
			    " create_time) VALUES (?1, 'admin-initial', ?2, 'initial admin token',"
			    " ?3, '', ?4)");
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, tid);
	dh_stmt_text(st, 2, uid);
	dh_stmt_text(st, 3, b->hash_hex);
	dh_stmt_text(st, 4, now);
	rc = dh_stmt_run(st, err);
	if (rc != DH_OK)
		return rc;
	st = dh_db_prep(db, "INSERT INTO access_rights (id, tid, user_id, action, create_time)"
			    " VALUES (?1, 'admin-all', ?2, 'admin', ?3)");
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, gid);
	dh_stmt_text(st, 2, uid);
	dh_stmt_text(st, 3, now);
	rc = dh_stmt_run(st, err);
	if (rc != DH_OK)
		return rc;
	*b->created = true;
	dh_db_auth_changed(db);
	return DH_OK;
}

enum dh_err dh_db_bootstrap_admin(struct dh_db *db, const char hash_hex[DH_SHA256_HEX],
				  bool *created, struct dh_error *err)
{
	struct bootstrap b = { hash_hex, created };
	enum dh_err rc = dh_db_tx_run(db, bootstrap_tx, &b, err);

	if (rc == DH_E_CONFLICT) {
		/* another process sharing the database created the admin at the same moment */
		if (err)
			dh_error_release(err);
		*created = false;
		return DH_OK;
	}
	if (rc != DH_OK && err && !err->detail[0])
		dh_error_set(err, rc, "The admin bootstrap failed.");
	return rc;
}
