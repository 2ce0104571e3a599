/*
 * The engine-neutral core of the data layer: the database URL, the per-thread connection,
 * the prepared-statement cache, the statement calls over a driver (driver.h), the one
 * transaction runner with its after-commit hooks, the migration runner and the write
 * generation that read caches compare. Engines live in db/sqlite/ and db/pg/.
 */
#include "driver.h"

#include "dh_db_test.h"
#include "pg/pg.h"

#include "core/text.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Longest database target kept (a path or a libpq connection string). */
#define DB_TARGET_MAX 4096

/* Written once by dh_db_setup before other threads start. */
static const struct dh_db_driver *db_drv = &dh_db_sqlite_driver;
static char db_target[DB_TARGET_MAX];

/* See dh_db_write_generation; 0 while it cannot be trusted (e.g. SQLite not in WAL mode, or
 * the PostgreSQL change listener lost its connection). */
static atomic_ulong write_gen = 1;
static atomic_bool write_gen_ok = true;

static pthread_key_t thread_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

unsigned long dh_db_write_generation(void)
{
	return atomic_load(&write_gen_ok) ? atomic_load(&write_gen) : 0;
}

void dh_db_write_bump(void)
{
	atomic_fetch_add(&write_gen, 1);
}

void dh_db_write_trust(bool ok)
{
	atomic_fetch_add(&write_gen, 1);
	atomic_store(&write_gen_ok, ok);
}

/* ---- the database URL ---- */

enum dh_err dh_db_url_parse(const char *url, const char *data_dir, const struct dh_db_driver **drv,
			    char *target, size_t size, struct dh_error *err)
{
	int n;

	if (!url)
		url = "";
	if (!*url || strcmp(url, "sqlite:") == 0) {
		if (!data_dir)
			return dh_error_set(err, DH_E_INVALID,
					    "No data directory for the database.");
		*drv = &dh_db_sqlite_driver;
		n = snprintf(target, size, "%s/devicehub.db", data_dir);
	} else if (strncmp(url, "sqlite:", 7) == 0) {
		*drv = &dh_db_sqlite_driver;
		n = snprintf(target, size, "%s", url + 7);
	} else if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0 ||
		   strchr(url, '=')) {
		*drv = &dh_db_pg_driver;
		n = snprintf(target, size, "%s", url);
	} else {
		return dh_error_set(
			err, DH_E_INVALID,
			"--database must be empty, sqlite:, sqlite:PATH, a postgresql://"
			" URL or a libpq key=value string");
	}
	if (n < 0 || (size_t)n >= size)
		return dh_error_set(err, DH_E_INVALID, "The database URL or path is too long.");
	return DH_OK;
}

const char *dh_db_engine_name(void)
{
	return db_drv->name;
}

bool dh_db_is_shared(void)
{
	return db_drv->engine == DH_DB_PG;
}

struct dh_db *dh_db_open(const char *url, struct dh_error *err)
{
	const struct dh_db_driver *drv;
	char target[DB_TARGET_MAX];

	if (dh_db_url_parse(url, NULL, &drv, target, sizeof(target), err) != DH_OK)
		return NULL;
	return drv->open(target, err);
}

void dh_db_close(struct dh_db *db)
{
	struct commit_hook *h;
	size_t n;

	if (!db)
		return;
	if (db->tx_depth == 0 && db->hooks) {
		h = db->hooks;
		n = db->nhooks;
		db->hooks = NULL;
		for (size_t i = 0; i < n; i++) {
			if (h[i].release)
				h[i].release(h[i].cls);
		}
		free(h);
	}
	for (size_t i = 0; i < db->nstmt; i++) {
		db->drv->finalize(db->stmts[i].st);
		free(db->stmts[i].owned);
	}
	db->nstmt = 0;
	db->drv->close(db);
}

/* ---- the per-thread connection ---- */

static void thread_db_free(void *p)
{
	dh_db_close(p);
}

static void make_key(void)
{
	pthread_key_create(&thread_key, thread_db_free);
}

void dh_db_thread_close(void)
{
	struct dh_db *db;

	pthread_once(&key_once, make_key);
	db = pthread_getspecific(thread_key);
	if (db) {
		pthread_setspecific(thread_key, NULL);
		dh_db_close(db);
	}
}

struct dh_db *dh_db_thread(void)
{
	struct dh_db *db;
	struct dh_error err = { 0 };

	pthread_once(&key_once, make_key);
	db = pthread_getspecific(thread_key);
	if (db && db->tx_depth == 0 && !db->drv->alive(db)) {
		/* the server closed it (restart, failover): open a new one */
		dh_warn("db.reconnect", "engine=%s", db->drv->name);
		pthread_setspecific(thread_key, NULL);
		dh_db_close(db);
		db = NULL;
	}
	if (db)
		return db;
	db = db_drv->open(db_target, &err);
	if (!db) {
		dh_error("db.open", "engine=%s detail=\"%s\"", db_drv->name, dh_error_detail(&err));
		dh_error_release(&err);
		return NULL;
	}
	pthread_setspecific(thread_key, db);
	return db;
}

/* ---- statements ---- */

void dh_stmt_init(struct dh_stmt *st, struct dh_db *db)
{
	st->db = db;
	st->p = st->small;
	st->cap = DH_STMT_PARAMS;
}

void dh_stmt_params_free(struct dh_stmt *st)
{
	for (int i = 0; i < st->nparams; i++)
		free(st->p[i].owned);
	st->nparams = 0;
	if (st->p != st->small)
		free(st->p);
	st->p = st->small;
	st->cap = DH_STMT_PARAMS;
}

struct dh_stmt *dh_db_prep_once(struct dh_db *db, const char *sql)
{
	return db->drv->prepare(db, sql, true);
}

void dh_stmt_free(struct dh_stmt *st)
{
	if (st)
		st->db->drv->finalize(st);
}

static struct dh_stmt *prep_store(struct dh_db *db, const char *sql, char *owned)
{
	struct dh_stmt *st = db->drv->prepare(db, sql, false);
	struct stmt_slot *slot;

	if (!st) {
		free(owned);
		return NULL;
	}
	if (db->nstmt == DH_STMT_CACHE) {
		/* the cache is full: evict the oldest; callers never hold two evicted ones */
		db->drv->finalize(db->stmts[0].st);
		free(db->stmts[0].owned);
		memmove(db->stmts, db->stmts + 1, (DH_STMT_CACHE - 1) * sizeof(db->stmts[0]));
		db->nstmt--;
	}
	slot = &db->stmts[db->nstmt++];
	slot->sql = owned ? owned : sql;
	slot->st = st;
	slot->owned = owned;
	return st;
}

static void params_clear(struct dh_stmt *st)
{
	for (int i = 0; i < st->nparams; i++) {
		free(st->p[i].owned);
		st->p[i] = (struct dh_param){ .type = DH_V_NULL };
	}
	st->nparams = 0;
}

void dh_stmt_reset(struct dh_stmt *st)
{
	if (st->started)
		st->db->drv->reset(st);
	st->started = false;
	params_clear(st);
}

struct dh_stmt *dh_db_prep(struct dh_db *db, const char *sql)
{
	for (size_t i = 0; i < db->nstmt; i++) {
		if (db->stmts[i].sql == sql) {
			dh_stmt_reset(db->stmts[i].st);
			return db->stmts[i].st;
		}
	}
	return prep_store(db, sql, NULL);
}

struct dh_stmt *dh_db_prep_text(struct dh_db *db, const char *sql)
{
	char *copy;

	for (size_t i = 0; i < db->nstmt; i++) {
		if (db->stmts[i].owned && strcmp(db->stmts[i].owned, sql) == 0) {
			dh_stmt_reset(db->stmts[i].st);
			return db->stmts[i].st;
		}
	}
	copy = strdup(sql);
	return copy ? prep_store(db, copy, copy) : NULL;
}

/* The slot of parameter i (1-based), NULL when out of range (a bug: logged). */
static struct dh_param *param(struct dh_stmt *st, int i)
{
	struct dh_param *p;

	if (i < 1 || i > DH_STMT_PARAMS_MAX) {
		dh_error("db.param", "index=%d", i);
		return NULL;
	}
	if (i > st->cap) {
		int ncap = st->cap * 2 > i ? st->cap * 2 : i;
		struct dh_param *np = malloc((size_t)ncap * sizeof(*np));
		if (!np) {
			dh_error("db.param", "index=%d detail=\"out of memory\"", i);
			return NULL;
		}
		memcpy(np, st->p, (size_t)st->nparams * sizeof(*np));
		if (st->p != st->small)
			free(st->p);
		st->p = np;
		st->cap = ncap;
	}
	if (i > st->nparams) {
		for (int k = st->nparams; k < i; k++)
			st->p[k] = (struct dh_param){ .type = DH_V_NULL };
		st->nparams = i;
	}
	p = &st->p[i - 1];
	free(p->owned);
	*p = (struct dh_param){ .type = DH_V_NULL };
	return p;
}

void dh_stmt_textn(struct dh_stmt *st, int i, const char *s, size_t len)
{
	struct dh_param *p = param(st, i);

	if (p && s) {
		p->type = DH_V_TEXT;
		p->s = s;
		p->len = len;
	}
}

void dh_stmt_text(struct dh_stmt *st, int i, const char *s)
{
	dh_stmt_textn(st, i, s, s ? strlen(s) : 0);
}

void dh_stmt_text_opt(struct dh_stmt *st, int i, const char *s)
{
	dh_stmt_text(st, i, s && *s ? s : NULL);
}

void dh_stmt_text_take(struct dh_stmt *st, int i, char *s)
{
	struct dh_param *p = param(st, i);

	if (!p) {
		free(s);
		return;
	}
	if (s) {
		p->type = DH_V_TEXT;
		p->s = s;
		p->len = strlen(s);
		p->owned = s;
	}
}

void dh_stmt_int(struct dh_stmt *st, int i, int64_t v)
{
	struct dh_param *p = param(st, i);

	if (p) {
		p->type = DH_V_INT;
		p->i = v;
	}
}

void dh_stmt_real(struct dh_stmt *st, int i, double v)
{
	struct dh_param *p = param(st, i);

	if (p) {
		p->type = DH_V_REAL;
		p->d = v;
	}
}

void dh_stmt_null(struct dh_stmt *st, int i)
{
	param(st, i);
}

bool dh_stmt_json(struct dh_stmt *st, int i, json_t *v)
{
	char *txt;

	switch (json_typeof(v)) {
	case JSON_STRING:
		dh_stmt_textn(st, i, json_string_value(v), json_string_length(v));
		return true;
	case JSON_INTEGER:
		dh_stmt_int(st, i, json_integer_value(v));
		return true;
	case JSON_REAL:
		dh_stmt_real(st, i, json_real_value(v));
		return true;
	case JSON_TRUE:
		dh_stmt_int(st, i, 1);
		return true;
	case JSON_FALSE:
		dh_stmt_int(st, i, 0);
		return true;
	case JSON_NULL:
		dh_stmt_null(st, i);
		return true;
	default:
		txt = json_dumps(v, JSON_COMPACT);
		if (!txt)
			return false;
		dh_stmt_text_take(st, i, txt);
		return true;
	}
}

int dh_stmt_step(struct dh_stmt *st)
{
	int r = st->db->drv->step(st);

	st->started = true;
	return r;
}

int64_t dh_stmt_changes(struct dh_stmt *st)
{
	return st->db->drv->changes(st);
}

enum dh_err dh_stmt_error(struct dh_stmt *st, struct dh_error *err)
{
	return st->db->drv->error(st->db, err);
}

enum dh_err dh_stmt_run(struct dh_stmt *st, struct dh_error *err)
{
	int r;
	enum dh_err rc = DH_OK;

	while ((r = dh_stmt_step(st)) > 0)
		;
	if (r < 0)
		rc = dh_stmt_error(st, err);
	dh_stmt_reset(st);
	return rc;
}

bool dh_stmt_isnull(struct dh_stmt *st, int i)
{
	return st->db->drv->col_type(st, i) == DH_V_NULL;
}

int64_t dh_stmt_col_int(struct dh_stmt *st, int i)
{
	return st->db->drv->col_int(st, i);
}

const char *dh_stmt_col_text(struct dh_stmt *st, int i)
{
	size_t len;

	return st->db->drv->col_text(st, i, &len);
}

char *dh_stmt_col_strdup(struct dh_stmt *st, int i)
{
	const char *t = dh_stmt_col_text(st, i);

	return t ? strdup(t) : NULL;
}

void dh_stmt_col_copy(struct dh_stmt *st, int i, char *buf, size_t size)
{
	size_t len = 0;
	const char *t = st->db->drv->col_text(st, i, &len);

	/* what is copied here ends up in JSON, which cannot carry a cut character */
	dh_text_clean(buf, size, t ? t : "", t ? len : 0);
}

/* A JSON string of stored text that is not UTF-8 (what no build writes now, but a row an
 * older build cut or a damaged database may hold), each such byte as \xNN; NULL when out of
 * memory. */
static json_t *cleaned_string(const char *t, size_t n)
{
	char *buf = n < (SIZE_MAX - 1) / 4 ? malloc(4 * n + 1) : NULL;
	json_t *v = NULL;

	if (buf)
		v = json_stringn(buf, dh_text_clean(buf, 4 * n + 1, t, n));
	free(buf);
	return v;
}

json_t *dh_stmt_row_json(struct dh_stmt *st)
{
	const struct dh_db_driver *d = st->db->drv;
	json_t *o = json_object();
	int n = d->col_count(st);

	for (int i = 0; o && i < n; i++) {
		const char *t;
		size_t len = 0;
		json_t *v;
		switch (d->col_type(st, i)) {
		case DH_V_INT:
			v = json_integer(d->col_int(st, i));
			break;
		case DH_V_REAL:
			v = json_real(d->col_real(st, i));
			break;
		case DH_V_NULL:
			v = json_null();
			break;
		default:
			t = d->col_text(st, i, &len);
			v = json_stringn(t ? t : "", t ? len : 0);
			if (!v && t)
				v = cleaned_string(t, len);
			break;
		}
		if (!v || json_object_set_new(o, d->col_name(st, i), v) != 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

enum dh_err dh_db_exec(struct dh_db *db, const char *sql, struct dh_error *err)
{
	struct dh_stmt *st = dh_db_prep(db, sql);

	if (!st)
		return dh_error_set(err, DH_E_DB, NULL);
	return dh_stmt_run(st, err);
}

char *dh_db_sql_dollar(const char *sql)
{
	size_t n = strlen(sql);
	/* each ? becomes at most $ and 3 digits */
	char *out = malloc(n * 4 + 1), *o = out;
	char quote = 0;
	int next = 0;

	if (!out)
		return NULL;
	for (const char *p = sql; *p; p++) {
		if (quote) {
			if (*p == quote)
				quote = 0;
			*o++ = *p;
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
			*o++ = *p;
		} else if (*p == '?') {
			*o++ = '$';
			if (p[1] >= '0' && p[1] <= '9') {
				while (p[1] >= '0' && p[1] <= '9')
					*o++ = *++p;
			} else {
				/* bare ? are numbered in order; no statement has 1000 of them */
				int k = ++next % 1000;
				if (k >= 100)
					*o++ = (char)('0' + k / 100);
				if (k >= 10)
					*o++ = (char)('0' + k / 10 % 10);
				*o++ = (char)('0' + k % 10);
			}
		} else {
			*o++ = *p;
		}
	}
	*o = 0;
	return out;
}

/* ---- transactions ---- */

/* Runs (run) or drops the after-commit hooks of the transaction that just ended. */
static void hooks_end(struct dh_db *db, bool run)
{
	/* a hook may start a transaction of its own: take the list first */
	struct commit_hook *h = db->hooks;
	size_t n = db->nhooks;

	db->hooks = NULL;
	db->nhooks = db->hooks_cap = 0;
	if (run && db->auth_changed)
		dh_db_auth_bump();
	db->auth_changed = false;
	for (size_t i = 0; i < n; i++) {
		if (run)
			h[i].fn(h[i].cls);
		if (h[i].release)
			h[i].release(h[i].cls);
	}
	free(h);
}

bool dh_db_in_tx(struct dh_db *db)
{
	return db->tx_depth > 0;
}

enum dh_err dh_db_after_commit(struct dh_db *db, dh_db_hook_fn fn, void *cls,
			       void (*release)(void *cls))
{
	struct commit_hook *h;

	if (db->tx_depth == 0) {
		/* nothing to wait for: what came before was committed already */
		fn(cls);
		if (release)
			release(cls);
		return DH_OK;
	}
	if (db->nhooks == db->hooks_cap) {
		size_t ncap = db->hooks_cap ? db->hooks_cap * 2 : 4;
		h = realloc(db->hooks, ncap * sizeof(*h));
		if (!h) {
			if (release)
				release(cls);
			return DH_E_NOMEM;
		}
		db->hooks = h;
		db->hooks_cap = ncap;
	}
	db->hooks[db->nhooks++] = (struct commit_hook){ fn, cls, release };
	return DH_OK;
}

void dh_db_auth_changed(struct dh_db *db)
{
	if (db && db->tx_depth > 0)
		db->auth_changed = true;
	else
		dh_db_auth_bump();
}

bool dh_db_tx_auth_changed(struct dh_db *db)
{
	return db->auth_changed;
}

/* Sleeps a little before attempt `attempt` again: 1, 2, 4 ... ms, with jitter. */
static void tx_backoff(int attempt)
{
	unsigned r = 0;
	struct timespec ts;
	long us = 1000L << (attempt < 6 ? attempt : 6);

	dh_random(&r, sizeof(r));
	us += (long)(r % (unsigned)us);
	ts.tv_sec = us / 1000000L;
	ts.tv_nsec = (us % 1000000L) * 1000L;
	nanosleep(&ts, NULL);
}

enum dh_err dh_db_tx_run(struct dh_db *db, dh_db_tx_fn fn, void *cls, struct dh_error *err)
{
	enum dh_err rc = DH_E_BUSY;

	if (db->tx_depth > 0)
		return fn(db, cls, err); /* joins the transaction already running */
	for (int attempt = 0; attempt < DH_DB_TX_TRIES; attempt++) {
		if (attempt > 0) {
			/* a lost race leaves nothing behind: the next attempt starts clean */
			if (err && err->code == DH_E_BUSY)
				dh_error_release(err);
			tx_backoff(attempt);
		}
		rc = db->drv->begin(db);
		if (rc == DH_OK) {
			db->tx_depth = 1;
			rc = fn(db, cls, err);
			db->tx_depth = 0;
			if (rc == DH_OK)
				rc = db->drv->commit(db);
			else
				db->drv->rollback(db);
		}
		hooks_end(db, rc == DH_OK);
		if (rc != DH_E_BUSY)
			return rc;
	}
	dh_warn("db.busy", "what=transaction tries=%d engine=%s", DH_DB_TX_TRIES, db->drv->name);
	return rc;
}

/* ---- migrations ---- */

const struct dh_migration *dh_db_migrations(struct dh_db *db, size_t *n)
{
	*n = *db->drv->nmigrations;
	return db->drv->migrations;
}

int dh_db_schema_version(struct dh_db *db)
{
	struct dh_stmt *st = db->drv->prepare(
		db, "SELECT coalesce(max(version), 0) FROM schema_migrations", true);
	int v = -1;

	if (!st) {
		/* a failed statement aborts a PostgreSQL transaction; there is none here */
		return -1;
	}
	if (dh_stmt_step(st) > 0)
		v = (int)dh_stmt_col_int(st, 0);
	db->drv->finalize(st);
	return v;
}

static bool migration_applied(struct dh_db *db, int version)
{
	struct dh_stmt *st =
		db->drv->prepare(db, "SELECT 1 FROM schema_migrations WHERE version = ?1", true);
	bool applied = false;

	if (st) {
		dh_stmt_int(st, 1, version);
		applied = dh_stmt_step(st) > 0;
		params_clear(st);
		db->drv->finalize(st);
	}
	return applied;
}

/* Applies migration m in its own transaction and records it. */
static enum dh_err migrate_one(struct dh_db *db, const struct dh_migration *m, struct dh_error *err)
{
	struct dh_stmt *st = NULL;
	char now[DH_TIME_LEN];
	enum dh_err rc;

	if (db->drv->begin(db) != DH_OK)
		return dh_error_set(err, DH_E_DB, "Cannot begin migration %04d", m->version);
	{
		struct dh_error why = { 0 };
		rc = db->drv->script(db, m->sql, &why);
		if (rc != DH_OK) {
			db->drv->rollback(db);
			dh_error_set(err, DH_E_DB, "Migration %04d_%s failed: %s", m->version,
				     m->name, dh_error_detail(&why));
			dh_error_release(&why);
			return DH_E_DB;
		}
	}
	dh_time_format(dh_now_us(), now);
	st = db->drv->prepare(db,
			      "INSERT INTO schema_migrations (version, name, applied_time)"
			      " VALUES (?1, ?2, ?3)",
			      true);
	if (st) {
		dh_stmt_int(st, 1, m->version);
		dh_stmt_text(st, 2, m->name);
		dh_stmt_text(st, 3, now);
		rc = dh_stmt_step(st) < 0 ? dh_stmt_error(st, err) : DH_OK;
		params_clear(st);
		db->drv->finalize(st);
	} else {
		rc = DH_E_DB;
	}
	if (rc != DH_OK) {
		db->drv->rollback(db);
		return dh_error_set(err, DH_E_DB, "Cannot record migration %04d", m->version);
	}
	if (db->drv->commit(db) != DH_OK)
		return dh_error_set(err, DH_E_DB, "Cannot commit migration %04d", m->version);
	dh_info("db.migrated", "version=%04d name=%s engine=%s", m->version, m->name,
		db->drv->name);
	return DH_OK;
}

/* Creates the table of applied migrations if it is not there yet. */
static enum dh_err schema_table(struct dh_db *db, struct dh_error *err)
{
	struct dh_error why = { 0 };
	enum dh_err rc;

	rc = db->drv->script(db,
			     "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY"
			     " KEY, name TEXT NOT NULL, applied_time TEXT NOT NULL)",
			     &why);
	if (rc != DH_OK) {
		dh_error_set(err, DH_E_DB, "Cannot create schema_migrations: %s",
			     dh_error_detail(&why));
		dh_error_release(&why);
		return DH_E_DB;
	}
	return DH_OK;
}

enum dh_err dh_db_migrate(struct dh_db *db, const struct dh_migration *m, size_t n,
			  struct dh_error *err)
{
	enum dh_err rc = schema_table(db, err);

	if (rc != DH_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && m[i].version <= m[i - 1].version)
			return dh_error_set(err, DH_E_INTERNAL, "Migrations out of order at %04d",
					    m[i].version);
		if (migration_applied(db, m[i].version))
			continue;
		rc = migrate_one(db, &m[i], err);
		if (rc != DH_OK)
			return rc;
	}
	return DH_OK;
}

/* Brings the database at db up to this build's schema, refusing one that is newer. */
static enum dh_err upgrade(struct dh_db *db, const char *what, struct dh_error *err)
{
	size_t n;
	const struct dh_migration *m = dh_db_migrations(db, &n);
	int v;

	/* first, so that reading the version of a new database is no failed statement */
	if (schema_table(db, err) != DH_OK)
		return DH_E_DB;
	v = dh_db_schema_version(db);

	if (n && v > m[n - 1].version)
		return dh_error_set(err, DH_E_INVALID,
				    "The database %s has schema version %d, newer than this build's"
				    " %d; run a newer devicehubd",
				    what, v, m[n - 1].version);
	return dh_db_migrate(db, m, n, err);
}

enum dh_err dh_db_setup(const char *url, const char *data_dir, struct dh_error *err)
{
	struct dh_db *db;
	enum dh_err rc;
	const char *what;

	if (data_dir && mkdir(data_dir, 0750) != 0 && errno != EEXIST)
		return dh_error_set(err, DH_E_IO, "Cannot create data dir %s: %s", data_dir,
				    strerror(errno));
	rc = dh_db_url_parse(url, data_dir, &db_drv, db_target, sizeof(db_target), err);
	if (rc != DH_OK)
		return rc;
	if (db_drv->engine == DH_DB_PG) {
		/* other processes write too: caches trust nothing until the listener runs */
		dh_db_write_trust(false);
		dh_db_auth_trust(false);
	}
	db = db_drv->open(db_target, err);
	if (!db)
		return err ? err->code : DH_E_DB;
	/* never the connection string itself in a message: it may hold a password */
	what = db_drv->engine == DH_DB_SQLITE ? db_target : "(PostgreSQL)";
	rc = db_drv->lock_schema ? db_drv->lock_schema(db, true) : DH_OK;
	if (rc != DH_OK) {
		dh_error_set(err, rc, "Cannot lock the schema for migrations");
	} else {
		/* a database a newer build migrated may hold what this build cannot handle */
		rc = upgrade(db, what, err);
		if (rc == DH_OK)
			rc = dh_db_firmware_fill_keys(db, err);
		if (db_drv->lock_schema)
			db_drv->lock_schema(db, false);
	}
	dh_db_close(db);
	if (rc == DH_OK && db_drv->engine == DH_DB_PG)
		rc = dh_pg_listen_start(db_target, err);
	return rc;
}

void dh_db_stop(void)
{
	dh_pg_listen_stop();
}

int64_t dh_db_test_int(struct dh_db *db, const char *sql)
{
	struct dh_stmt *st = db->drv->prepare(db, sql, true);
	int64_t v = -1;

	if (!st)
		return -1;
	if (dh_stmt_step(st) > 0)
		v = dh_stmt_col_int(st, 0);
	db->drv->finalize(st);
	return v;
}
