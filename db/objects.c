/*
 * The generic object store for configuration objects: get, resolve, insert, update, delete
 * and list over one table, with rows as JSON objects keyed by column name. Table and column
 * names come from the API layer's static resource tables and are checked to be plain
 * identifiers; values are always bound, never spliced into SQL.
 */
#include "driver.h"
#include "sql.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest SQL text the store builds (a few dozen columns of short names). */
#define OBJ_SQL_MAX 4096

/* How rows of each table with a scope meet a grant (see struct dh_db_scope_cols). */
static const struct {
	const char *table;
	struct dh_db_scope_cols cols;
} scoped_tables[] = {
	{ "products", { .product = "id = ?" } },
	{ "models", { .product = "product_id = ?", .model = "id = ?" } },
	{ "devices",
	  { .product = "model_id IN (SELECT id FROM models WHERE product_id = ?)",
	    .model = "model_id = ?",
	    .channel = "channel_id = ?" } },
	/* a model's webhook records the model's product too (api/webhooks.c) */
	{ "webhooks", { .product = "product_id = ?", .model = "model_id = ?" } },
};

static bool ident_ok(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || *s == '_' || (*s >= '0' && *s <= '9')))
			return false;
	}
	return true;
}

/*
 * Finds the row of table whose id (or tid, when has_tid) is key and selects cols of it.
 * Returns the statement positioned on that row (the caller resets it) or NULL with *rc
 * saying why: DH_E_NOT_FOUND, or a database error.
 */
static struct dh_stmt *lookup(struct dh_db *db, const char *cols, const char *table,
			      const char *key, bool has_tid, enum dh_err *rc)
{
	char sql[OBJ_SQL_MAX];
	struct dh_stmt *st;
	int n, r;

	*rc = DH_E_INTERNAL;
	if (!ident_ok(table) || !key)
		return NULL;
	n = snprintf(sql, sizeof(sql), "SELECT %s FROM %s WHERE id = ?1%s LIMIT 1", cols, table,
		     has_tid ? " OR tid = ?1" : "");
	if (n < 0 || (size_t)n >= sizeof(sql))
		return NULL;
	st = dh_db_prep_text(db, sql);
	if (!st) {
		*rc = DH_E_DB;
		return NULL;
	}
	dh_stmt_text(st, 1, key);
	r = dh_stmt_step(st);
	if (r > 0) {
		*rc = DH_OK;
		return st;
	}
	*rc = r == 0 ? DH_E_NOT_FOUND : dh_stmt_error(st, NULL);
	dh_stmt_reset(st);
	return NULL;
}

enum dh_err dh_db_obj_get(struct dh_db *db, const char *table, const char *key, bool has_tid,
			  json_t **out)
{
	enum dh_err rc;
	struct dh_stmt *st = lookup(db, "*", table, key, has_tid, &rc);

	*out = NULL;
	if (!st)
		return rc;
	*out = dh_stmt_row_json(st);
	dh_stmt_reset(st);
	return *out ? DH_OK : DH_E_NOMEM;
}

enum dh_err dh_db_obj_resolve(struct dh_db *db, const char *table, const char *key, bool has_tid,
			      char id[DH_UUID_LEN])
{
	enum dh_err rc;
	struct dh_stmt *st = lookup(db, "id", table, key, has_tid, &rc);

	if (!st)
		return rc;
	dh_stmt_col_copy(st, 0, id, DH_UUID_LEN);
	dh_stmt_reset(st);
	return DH_OK;
}

/* Appends s to sql at *o; false when it would not fit. */
static bool put(char *sql, size_t *o, const char *s)
{
	size_t n = strlen(s);

	if (*o + n + 1 > OBJ_SQL_MAX)
		return false;
	memcpy(sql + *o, s, n + 1);
	*o += n;
	return true;
}

enum dh_err dh_db_obj_insert(struct dh_db *db, const char *table, json_t *row, struct dh_error *err)
{
	char sql[OBJ_SQL_MAX];
	size_t o = 0, i = 0;
	const char *k;
	json_t *v;
	struct dh_stmt *st;
	enum dh_err rc = DH_OK;

	if (!ident_ok(table) || !put(sql, &o, "INSERT INTO ") || !put(sql, &o, table) ||
	    !put(sql, &o, " ("))
		return DH_E_INTERNAL;
	json_object_foreach(row, k, v)
	{
		if (!ident_ok(k) || (i++ && !put(sql, &o, ", ")) || !put(sql, &o, k))
			return DH_E_INTERNAL;
	}
	if (!put(sql, &o, ") VALUES ("))
		return DH_E_INTERNAL;
	for (size_t j = 0; j < i; j++) {
		if (!put(sql, &o, j ? ", ?" : "?"))
			return DH_E_INTERNAL;
	}
	if (!put(sql, &o, ")"))
		return DH_E_INTERNAL;
	/* one text per table and column set: a small, bounded number */
	st = dh_db_prep_text(db, sql);
	if (!st)
		return dh_error_set(err, DH_E_DB, NULL);
	i = 0;
	json_object_foreach(row, k, v)
	{
		if (!dh_stmt_json(st, (int)++i, v))
			rc = DH_E_NOMEM;
	}
	if (rc == DH_OK)
		return dh_stmt_run(st, err);
	dh_stmt_reset(st);
	return rc;
}

enum dh_err dh_db_model_product_follow(struct dh_db *db, const char *model_id,
				       const char *product_id, struct dh_error *err)
{
	/* sessions by their index on (model_id, create_time); the grants and webhooks of one
	 * model are few */
	static const char *const sql[] = {
		"UPDATE sessions SET product_id = ?2 WHERE model_id = ?1 AND product_id <> ?2",
		"UPDATE access_rights SET product_id = ?2 WHERE model_id = ?1"
		" AND coalesce(product_id, '') <> ?2",
		"UPDATE webhooks SET product_id = ?2 WHERE model_id = ?1"
		" AND coalesce(product_id, '') <> ?2",
	};

	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		struct dh_stmt *st = dh_db_prep(db, sql[i]);
		enum dh_err rc;
		if (!st)
			return dh_error_set(err, DH_E_DB, NULL);
		dh_stmt_text(st, 1, model_id);
		dh_stmt_text(st, 2, product_id);
		rc = dh_stmt_run(st, err);
		if (rc != DH_OK)
			return rc;
	}
	return DH_OK;
}

enum dh_err dh_db_obj_update(struct dh_db *db, const char *table, const char *id, json_t *cols,
			     struct dh_error *err)
{
	char sql[OBJ_SQL_MAX];
	size_t o = 0, i = 0;
	const char *k;
	json_t *v;
	struct dh_stmt *st;
	enum dh_err rc = DH_OK;
	int r;

	if (json_object_size(cols) == 0) {
		char dummy[DH_UUID_LEN];
		return dh_db_obj_resolve(db, table, id, false, dummy);
	}
	if (!ident_ok(table) || !put(sql, &o, "UPDATE ") || !put(sql, &o, table) ||
	    !put(sql, &o, " SET "))
		return DH_E_INTERNAL;
	json_object_foreach(cols, k, v)
	{
		if (!ident_ok(k) || (i++ && !put(sql, &o, ", ")) || !put(sql, &o, k) ||
		    !put(sql, &o, " = ?"))
			return DH_E_INTERNAL;
	}
	if (!put(sql, &o, " WHERE id = ?"))
		return DH_E_INTERNAL;
	st = dh_db_prep_text(db, sql);
	if (!st)
		return dh_error_set(err, DH_E_DB, NULL);
	i = 0;
	json_object_foreach(cols, k, v)
	{
		if (!dh_stmt_json(st, (int)++i, v))
			rc = DH_E_NOMEM;
	}
	dh_stmt_text(st, (int)i + 1, id);
	if (rc == DH_OK) {
		r = dh_stmt_step(st);
		if (r < 0)
			rc = dh_stmt_error(st, err);
		else if (dh_stmt_changes(st) == 0)
			rc = dh_error_set(err, DH_E_NOT_FOUND, NULL);
	}
	dh_stmt_reset(st);
	return rc;
}

/*
 * References that foreign keys do not express: a device is referenced while one of its
 * sessions is not finished (the key is ON DELETE SET NULL, so that finished sessions keep
 * their history once the device is gone). Checked inside the delete's transaction.
 */
static const struct {
	const char *table;
	const char *sql; /* one row when the object ?1 is still referenced */
	const char *detail;
} busy_checks[] = {
	{ "devices", "SELECT 1 FROM sessions WHERE device_ref = ?1 AND finished = 0 LIMIT 1",
	  "This device has a session that is not finished; it can be deleted once its sessions"
	  " are finished (they keep the device's name)." },
};

enum dh_err dh_db_obj_delete(struct dh_db *db, const char *table, const char *id,
			     struct dh_error *err)
{
	char sql[OBJ_SQL_MAX];
	struct dh_stmt *st;
	enum dh_err rc = DH_OK;
	int r, n;

	if (!ident_ok(table))
		return DH_E_INTERNAL;
	for (size_t i = 0; i < sizeof(busy_checks) / sizeof(busy_checks[0]); i++) {
		if (strcmp(busy_checks[i].table, table) != 0)
			continue;
		st = dh_db_prep(db, busy_checks[i].sql);
		if (!st)
			return dh_error_set(err, DH_E_DB, NULL);
		dh_stmt_text(st, 1, id);
		r = dh_stmt_step(st);
		rc = r < 0 ? dh_stmt_error(st, err) : DH_OK;
		dh_stmt_reset(st);
		if (rc != DH_OK)
			return rc;
		if (r > 0)
			return dh_error_set(err, DH_E_REFERENCED, "%s", busy_checks[i].detail);
	}
	n = snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id = ?1", table);
	if (n < 0 || (size_t)n >= sizeof(sql))
		return DH_E_INTERNAL;
	st = dh_db_prep_text(db, sql);
	if (!st)
		return dh_error_set(err, DH_E_DB, NULL);
	dh_stmt_text(st, 1, id);
	r = dh_stmt_step(st);
	if (r < 0)
		rc = dh_stmt_error(st, err); /* DH_E_REFERENCED for a foreign key, no detail */
	else if (dh_stmt_changes(st) == 0)
		rc = dh_error_set(err, DH_E_NOT_FOUND, NULL);
	dh_stmt_reset(st);
	return rc;
}

enum dh_err dh_db_obj_list(struct dh_db *db, const char *table, const struct dh_db_where *w,
			   size_t nw, const struct dh_db_visibility *vis, int64_t limit,
			   int64_t offset, json_t **rows, int64_t *count)
{
	const struct dh_db_scope_cols *cols = NULL;
	struct dh_sql q;
	struct dh_stmt *st = NULL;
	enum dh_err rc = DH_OK;
	char tail[160];
	int n;

	*rows = NULL;
	*count = 0;
	if (!ident_ok(table))
		return DH_E_INTERNAL;
	for (size_t i = 0; vis && i < sizeof(scoped_tables) / sizeof(scoped_tables[0]); i++) {
		if (strcmp(scoped_tables[i].table, table) == 0)
			cols = &scoped_tables[i].cols;
	}
	if (vis && !cols)
		return DH_E_INTERNAL;
	for (int pass = 0; pass < 2; pass++) {
		dh_sql_init(&q);
		if (pass) {
			/* the page's ids first, sorting (create_time, id) pairs only: the memory
			 * of a deep page stays small whatever plan the database picks */
			dh_sql_add(&q, "SELECT * FROM ");
			dh_sql_add(&q, table);
			dh_sql_add(&q, " WHERE id IN (SELECT id FROM ");
		} else {
			dh_sql_add(&q, "SELECT count(*) FROM ");
		}
		dh_sql_add(&q, table);
		dh_sql_add(&q, " WHERE ");
		for (size_t i = 0; i < nw; i++) {
			if (!ident_ok(w[i].column)) {
				dh_sql_release(&q);
				return DH_E_INTERNAL;
			}
			dh_sql_add(&q, w[i].column);
			/* IS NULL, not IS ?: PostgreSQL has no IS for a parameter */
			if (json_is_null(w[i].value)) {
				dh_sql_add(&q, " IS NULL AND ");
				continue;
			}
			dh_sql_add(&q, " = ");
			dh_sql_json(&q, w[i].value);
			dh_sql_add(&q, " AND ");
		}
		if (vis)
			dh_sql_visibility(&q, vis, cols);
		else
			dh_sql_add(&q, "1 = 1");
		if (pass) {
			n = snprintf(tail, sizeof(tail),
				     " ORDER BY create_time, id LIMIT %lld OFFSET %lld)"
				     " ORDER BY create_time, id",
				     (long long)limit, (long long)offset);
			if (n < 0 || (size_t)n >= sizeof(tail)) {
				dh_sql_release(&q);
				return DH_E_INTERNAL;
			}
			dh_sql_add(&q, tail);
		}
		st = dh_sql_prepare(db, &q);
		dh_sql_release(&q);
		if (!st)
			return DH_E_DB;
		if (pass == 0) {
			if ((n = dh_stmt_step(st)) > 0)
				*count = dh_stmt_col_int(st, 0);
			else
				rc = dh_stmt_error(st, NULL);
			dh_stmt_free(st);
			if (rc != DH_OK)
				return rc;
			continue;
		}
		*rows = json_array();
		while (*rows && (n = dh_stmt_step(st)) > 0) {
			if (json_array_append_new(*rows, dh_stmt_row_json(st)) != 0) {
				rc = DH_E_NOMEM;
				break;
			}
		}
		if (!*rows)
			rc = DH_E_NOMEM;
		else if (rc == DH_OK && n < 0)
			rc = dh_stmt_error(st, NULL);
		dh_stmt_free(st);
	}
	if (rc != DH_OK) {
		json_decref(*rows);
		*rows = NULL;
	}
	return rc;
}
