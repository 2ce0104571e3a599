/*
 * SQLite connections, the per-thread connection, the prepared-statement cache, the
 * migration runner and the transaction helper. The one place that retries SQLITE_BUSY.
 */
#include "dh_db.h"

#include "log.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Distinct SQL texts one connection keeps prepared; the server uses well under this. */
#define DB_STMT_CACHE 256
/* How long a statement waits on a lock held by another connection before SQLITE_BUSY. */
#define DB_BUSY_TIMEOUT_MS 5000
/* BEGIN IMMEDIATE attempts after the busy timeout already waited. */
#define DB_BEGIN_TRIES 5

struct stmt_slot {
	const char *sql;
	sqlite3_stmt *st;
	char *owned; /* the slot's own copy of sql, for texts built at run time */
};

/* Work registered by dh_db_after_commit, run once the transaction committed. */
struct commit_hook {
	dh_db_hook_fn fn;
	void *cls;
	void (*release)(void *cls);
};

struct dh_db {
	sqlite3 *h;
	bool write_locked; /* holds write_lock (between tx_begin and commit/rollback) */
	int tx_depth;      /* > 0 while dh_db_tx_run runs its function */
	bool auth_changed; /* the running transaction changed users, tokens or rights */
	struct commit_hook *hooks;
	size_t nhooks, hooks_cap;
	size_t nstmt;
	struct stmt_slot stmts[DB_STMT_CACHE];
};

/* WAL frames after which a commit checkpoints (SQLite's own default hook does the same). */
#define DB_WAL_CHECKPOINT_PAGES 1000

static char db_path[PATH_MAX];
/*
 * Write transactions of this process queue here rather than in SQLite: a BEGIN IMMEDIATE
 * that finds another connection writing sleeps in SQLite's busy handler (1 ms, then longer)
 * and retries; two HTTP threads creating sessions spent most of their time so.
 */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

static void hooks_end(struct dh_db *db, bool run);

static void write_release(struct dh_db *db)
{
	if (db->write_locked) {
		db->write_locked = false;
		pthread_mutex_unlock(&write_lock);
	}
}

/* See dh_db_write_generation; 0 once a connection is found not to be in WAL mode. */
static atomic_ulong write_gen = 1;
static atomic_bool write_gen_ok = true;
static pthread_key_t thread_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

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

sqlite3 *dh_db_handle(struct dh_db *db)
{
	return db->h;
}

unsigned long dh_db_write_generation(void)
{
	return atomic_load(&write_gen_ok) ? atomic_load(&write_gen) : 0;
}

/* Called by SQLite after each commit of this connection, once the new data is visible to
 * others and the write lock is released (WAL mode only). Replaces SQLite's default hook,
 * so it also checkpoints as that one does. */
static int on_wal_commit(void *cls, sqlite3 *h, const char *name, int pages)
{
	(void)cls;
	atomic_fetch_add(&write_gen, 1);
	if (pages >= DB_WAL_CHECKPOINT_PAGES)
		sqlite3_wal_checkpoint(h, name);
	return SQLITE_OK;
}

/* Called by SQLite before each commit of a write transaction of this connection. */
static int on_commit(void *cls)
{
	(void)cls;
	atomic_fetch_add(&write_gen, 1);
	return 0;
}

/* Is connection h in WAL mode? */
static bool is_wal(sqlite3 *h)
{
	sqlite3_stmt *st = NULL;
	bool wal = false;

	if (sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		const char *m = (const char *)sqlite3_column_text(st, 0);
		wal = m && strcmp(m, "wal") == 0;
	}
	sqlite3_finalize(st);
	return wal;
}

struct dh_db *dh_db_open(const char *path, struct dh_error *err)
{
	struct dh_db *db = calloc(1, sizeof(*db));
	char *msg = NULL;
	int rc;

	if (!db) {
		dh_error_set(err, DH_E_NOMEM, NULL);
		return NULL;
	}
	rc = sqlite3_open_v2(path, &db->h,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		dh_error_set(err, DH_E_DB, "Cannot open database %s: %s", path,
			     db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(db->h, DB_BUSY_TIMEOUT_MS);
	rc = sqlite3_exec(db->h,
			  "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			  " PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;",
			  NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		dh_error_set(err, DH_E_DB, "Cannot configure database %s: %s", path,
			     msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		goto fail;
	}
	sqlite3_commit_hook(db->h, on_commit, NULL);
	sqlite3_wal_hook(db->h, on_wal_commit, NULL);
	if (!is_wal(db->h))
		atomic_store(&write_gen_ok, false);
	return db;
fail:
	dh_db_close(db);
	return NULL;
}

void dh_db_close(struct dh_db *db)
{
	if (!db)
		return;
	hooks_end(db, false);
	write_release(db);
	for (size_t i = 0; i < db->nstmt; i++) {
		sqlite3_finalize(db->stmts[i].st);
		free(db->stmts[i].owned);
	}
	sqlite3_close(db->h);
	free(db);
}

struct dh_db *dh_db_thread(void)
{
	struct dh_db *db;
	struct dh_error err = { 0 };

	pthread_once(&key_once, make_key);
	db = pthread_getspecific(thread_key);
	if (db)
		return db;
	db = dh_db_open(db_path, &err);
	if (!db) {
		dh_error("db.open", "path=%s detail=\"%s\"", db_path, dh_error_detail(&err));
		dh_error_release(&err);
		return NULL;
	}
	pthread_setspecific(thread_key, db);
	return db;
}

/* Prepares sql and stores it in the cache under key (owned: the cache frees it). */
static sqlite3_stmt *prep_store(struct dh_db *db, const char *sql, char *owned)
{
	sqlite3_stmt *st = NULL;
	struct stmt_slot *slot;

	if (sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		dh_error("db.prepare", "detail=\"%s\"", sqlite3_errmsg(db->h));
		free(owned);
		return NULL;
	}
	if (db->nstmt == DB_STMT_CACHE) {
		/* the cache is full: evict the oldest; callers never hold two evicted ones */
		sqlite3_finalize(db->stmts[0].st);
		free(db->stmts[0].owned);
		memmove(db->stmts, db->stmts + 1, (DB_STMT_CACHE - 1) * sizeof(db->stmts[0]));
		db->nstmt--;
	}
	slot = &db->stmts[db->nstmt++];
	slot->sql = owned ? owned : sql;
	slot->st = st;
	slot->owned = owned;
	return st;
}

static sqlite3_stmt *ready(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

sqlite3_stmt *dh_db_prep(struct dh_db *db, const char *sql)
{
	for (size_t i = 0; i < db->nstmt; i++) {
		if (db->stmts[i].sql == sql)
			return ready(db->stmts[i].st);
	}
	return prep_store(db, sql, NULL);
}

sqlite3_stmt *dh_db_prep_text(struct dh_db *db, const char *sql)
{
	char *copy;

	for (size_t i = 0; i < db->nstmt; i++) {
		if (db->stmts[i].owned && strcmp(db->stmts[i].owned, sql) == 0)
			return ready(db->stmts[i].st);
	}
	copy = strdup(sql);
	return copy ? prep_store(db, copy, copy) : NULL;
}

enum dh_err dh_db_error(struct dh_db *db, int rc, struct dh_error *err)
{
	const char *msg = sqlite3_errmsg(db->h);
	int ext = sqlite3_extended_errcode(db->h);

	if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
		return dh_error_set(err, DH_E_BUSY, NULL);
	if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY) {
		/* "UNIQUE constraint failed: products.tid" -> field "tid" */
		const char *col = strrchr(msg, '.');
		char field[64];
		snprintf(field, sizeof(field), "%s", col ? col + 1 : "id");
		field[strcspn(field, ", ")] = 0;
		dh_error_set(err, DH_E_CONFLICT, "The value of '%s' is already taken.", field);
		if (err) {
			if (!err->fields)
				err->fields = json_object();
			json_object_set_new(err->fields, field, json_string("already taken"));
		}
		return DH_E_CONFLICT;
	}
	if (ext == SQLITE_CONSTRAINT_FOREIGNKEY || ext == SQLITE_CONSTRAINT_TRIGGER)
		return dh_error_set(err, DH_E_REFERENCED, NULL);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return dh_error_set(err, DH_E_INVALID, "A value breaks a rule of the database: %s",
				    msg);
	dh_error("db.error", "rc=%d detail=\"%s\"", rc, msg);
	return dh_error_set(err, DH_E_DB, NULL);
}

enum dh_err dh_db_exec(struct dh_db *db, const char *sql, struct dh_error *err)
{
	sqlite3_stmt *st = dh_db_prep(db, sql);
	int rc;

	if (!st)
		return dh_error_set(err, DH_E_DB, NULL);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return dh_db_error(db, rc, err);
	return DH_OK;
}

/* BEGIN IMMEDIATE under this process's write lock, retried on BUSY a bounded number of times. */
static enum dh_err tx_begin(struct dh_db *db)
{
	if (!db->write_locked) {
		pthread_mutex_lock(&write_lock);
		db->write_locked = true;
	}
	for (int i = 0; i < DB_BEGIN_TRIES; i++) {
		int rc = sqlite3_exec(db->h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			return DH_OK;
		if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
			dh_error("db.begin", "detail=\"%s\"", sqlite3_errmsg(db->h));
			write_release(db);
			return DH_E_DB;
		}
	}
	write_release(db);
	dh_warn("db.busy", "what=begin tries=%d", DB_BEGIN_TRIES);
	return DH_E_BUSY;
}

static void tx_rollback(struct dh_db *db)
{
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	write_release(db);
}

static enum dh_err tx_commit(struct dh_db *db)
{
	for (int i = 0; i < DB_BEGIN_TRIES; i++) {
		int rc = sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
		if (rc == SQLITE_OK) {
			write_release(db);
			return DH_OK;
		}
		if (rc != SQLITE_BUSY) {
			dh_error("db.commit", "detail=\"%s\"", sqlite3_errmsg(db->h));
			tx_rollback(db);
			return DH_E_DB;
		}
	}
	tx_rollback(db);
	return DH_E_BUSY;
}

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
		rc = tx_begin(db);
		if (rc == DH_OK) {
			db->tx_depth = 1;
			rc = fn(db, cls, err);
			db->tx_depth = 0;
			if (rc == DH_OK)
				rc = tx_commit(db);
			else
				tx_rollback(db);
		}
		hooks_end(db, rc == DH_OK);
		if (rc != DH_E_BUSY)
			return rc;
	}
	dh_warn("db.busy", "what=transaction tries=%d", DH_DB_TX_TRIES);
	return rc;
}

int dh_db_schema_version(struct dh_db *db)
{
	sqlite3_stmt *st = NULL;
	int v = -1;

	if (sqlite3_prepare_v2(db->h, "SELECT coalesce(max(version), 0) FROM schema_migrations", -1,
			       &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static bool migration_applied(struct dh_db *db, int version)
{
	sqlite3_stmt *st = NULL;
	bool applied = false;

	if (sqlite3_prepare_v2(db->h, "SELECT 1 FROM schema_migrations WHERE version = ?1", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_int(st, 1, version);
		applied = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return applied;
}

enum dh_err dh_db_migrate(struct dh_db *db, const struct dh_migration *m, size_t n,
			  struct dh_error *err)
{
	char *msg = NULL;
	sqlite3_stmt *st = NULL;
	char now[DH_TIME_LEN];

	if (sqlite3_exec(db->h,
			 "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY"
			 " KEY, name TEXT NOT NULL, applied_time TEXT NOT NULL)",
			 NULL, NULL, &msg) != SQLITE_OK)
		goto fail_msg;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && m[i].version <= m[i - 1].version)
			return dh_error_set(err, DH_E_INTERNAL, "Migrations out of order at %04d",
					    m[i].version);
		if (migration_applied(db, m[i].version))
			continue;
		if (tx_begin(db) != DH_OK)
			return dh_error_set(err, DH_E_DB, "Cannot begin migration %04d",
					    m[i].version);
		if (sqlite3_exec(db->h, m[i].sql, NULL, NULL, &msg) != SQLITE_OK) {
			tx_rollback(db);
			dh_error_set(err, DH_E_DB, "Migration %04d_%s failed: %s", m[i].version,
				     m[i].name, msg ? msg : "?");
			sqlite3_free(msg);
			return DH_E_DB;
		}
		dh_time_format(dh_now_us(), now);
		if (sqlite3_prepare_v2(db->h,
				       "INSERT INTO schema_migrations (version, name, applied_time)"
				       " VALUES (?1, ?2, ?3)",
				       -1, &st, NULL) != SQLITE_OK ||
		    sqlite3_bind_int(st, 1, m[i].version) != SQLITE_OK ||
		    sqlite3_bind_text(st, 2, m[i].name, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_text(st, 3, now, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_step(st) != SQLITE_DONE) {
			sqlite3_finalize(st);
			tx_rollback(db);
			return dh_error_set(err, DH_E_DB, "Cannot record migration %04d: %s",
					    m[i].version, sqlite3_errmsg(db->h));
		}
		sqlite3_finalize(st);
		st = NULL;
		if (tx_commit(db) != DH_OK)
			return dh_error_set(err, DH_E_DB, "Cannot commit migration %04d",
					    m[i].version);
		dh_info("db.migrated", "version=%04d name=%s", m[i].version, m[i].name);
	}
	return DH_OK;
fail_msg:
	dh_error_set(err, DH_E_DB, "Cannot prepare schema_migrations: %s", msg ? msg : "?");
	sqlite3_free(msg);
	return DH_E_DB;
}

enum dh_err dh_db_setup(const char *data_dir, struct dh_error *err)
{
	struct dh_db *db;
	enum dh_err rc;
	int n, v;

	if (mkdir(data_dir, 0750) != 0 && errno != EEXIST)
		return dh_error_set(err, DH_E_IO, "Cannot create data dir %s: %s", data_dir,
				    strerror(errno));
	n = snprintf(db_path, sizeof(db_path), "%s/devicehub.db", data_dir);
	if (n < 0 || (size_t)n >= sizeof(db_path))
		return dh_error_set(err, DH_E_INVALID, "Data dir path too long");
	/*
	 * No memory statistics: with them every SQLite allocation and free takes one global
	 * mutex, which the HTTP and worker threads then contend for (futex calls on every
	 * request). Nothing reads them. Only possible before SQLite initializes; later it
	 * fails harmlessly.
	 */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	db = dh_db_open(db_path, err);
	if (!db)
		return err ? err->code : DH_E_DB;
	/* a database a newer build migrated may hold what this build cannot handle */
	v = dh_db_schema_version(db);
	if (dh_migrations_count && v > dh_migrations[dh_migrations_count - 1].version)
		rc = dh_error_set(err, DH_E_INVALID,
				  "The database %s has schema version %d, newer than this build's"
				  " %d; run a newer devicehubd",
				  db_path, v, dh_migrations[dh_migrations_count - 1].version);
	else
		rc = dh_db_migrate(db, dh_migrations, dh_migrations_count, err);
	if (rc == DH_OK)
		rc = dh_db_firmware_fill_keys(db, err);
	dh_db_close(db);
	return rc;
}

char *dh_db_col_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? strdup((const char *)t) : NULL;
}

void dh_db_col_copy(sqlite3_stmt *st, int i, char *buf, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	snprintf(buf, size, "%s", t ? (const char *)t : "");
}

int dh_db_bind_json(sqlite3_stmt *st, int i, json_t *v)
{
	char *txt;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return sqlite3_bind_text(st, i, json_string_value(v), (int)json_string_length(v),
					 SQLITE_TRANSIENT);
	case JSON_INTEGER:
		return sqlite3_bind_int64(st, i, json_integer_value(v));
	case JSON_REAL:
		return sqlite3_bind_double(st, i, json_real_value(v));
	case JSON_TRUE:
		return sqlite3_bind_int(st, i, 1);
	case JSON_FALSE:
		return sqlite3_bind_int(st, i, 0);
	case JSON_NULL:
		return sqlite3_bind_null(st, i);
	default:
		txt = json_dumps(v, JSON_COMPACT);
		if (!txt)
			return SQLITE_NOMEM;
		return sqlite3_bind_text(st, i, txt, -1, free);
	}
}

json_t *dh_db_row_to_json(sqlite3_stmt *st)
{
	json_t *o = json_object();
	int n = sqlite3_column_count(st);

	for (int i = 0; o && i < n; i++) {
		json_t *v;
		switch (sqlite3_column_type(st, i)) {
		case SQLITE_INTEGER:
			v = json_integer(sqlite3_column_int64(st, i));
			break;
		case SQLITE_FLOAT:
			v = json_real(sqlite3_column_double(st, i));
			break;
		case SQLITE_NULL:
			v = json_null();
			break;
		default:
			v = json_stringn((const char *)sqlite3_column_text(st, i),
					 (size_t)sqlite3_column_bytes(st, i));
			break;
		}
		if (!v || json_object_set_new(o, sqlite3_column_name(st, i), v) != 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}
