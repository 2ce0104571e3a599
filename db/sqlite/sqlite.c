/*
 * The SQLite engine (driver.h): connections in WAL mode with busy_timeout and foreign keys,
 * statements, error mapping, and write transactions that queue on one process mutex before
 * BEGIN IMMEDIATE. The only file that includes <sqlite3.h>; the one place that retries
 * SQLITE_BUSY at begin and commit (the runner retries whole transactions).
 */
#include "driver.h"

#include "log.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a statement waits on a lock held by another connection before SQLITE_BUSY. */
#define LITE_BUSY_TIMEOUT_MS 5000
/* BEGIN IMMEDIATE and COMMIT attempts after the busy timeout already waited. */
#define LITE_BEGIN_TRIES 5
/* WAL frames after which a commit checkpoints (SQLite's own default hook does the same). */
#define LITE_WAL_CHECKPOINT_PAGES 1000

struct lite_db {
	struct dh_db base; /* first */
	sqlite3 *h;
	bool write_locked; /* holds write_lock (between begin and commit/rollback) */
};

struct lite_stmt {
	struct dh_stmt base; /* first */
	sqlite3_stmt *st;
};

/*
 * Write transactions of this process queue here rather than in SQLite: a BEGIN IMMEDIATE
 * that finds another connection writing sleeps in SQLite's busy handler (1 ms, then longer)
 * and retries; two HTTP threads creating sessions spent most of their time so.
 */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t config_once = PTHREAD_ONCE_INIT;

static struct lite_db *L(struct dh_db *db)
{
	return (struct lite_db *)db;
}

static struct lite_stmt *LS(struct dh_stmt *st)
{
	return (struct lite_stmt *)st;
}

static void write_release(struct lite_db *db)
{
	if (db->write_locked) {
		db->write_locked = false;
		pthread_mutex_unlock(&write_lock);
	}
}

static void configure(void)
{
	/*
	 * No memory statistics: with them every SQLite allocation and free takes one global
	 * mutex, which the HTTP and worker threads then contend for (futex calls on every
	 * request). Nothing reads them. Only possible before SQLite initializes.
	 */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* Called by SQLite after each commit of this connection, once the new data is visible to
 * others and the write lock is released (WAL mode only). Replaces SQLite's default hook,
 * so it also checkpoints as that one does. */
static int on_wal_commit(void *cls, sqlite3 *h, const char *name, int pages)
{
	(void)cls;
	dh_db_write_bump();
	if (pages >= LITE_WAL_CHECKPOINT_PAGES)
		sqlite3_wal_checkpoint(h, name);
	return SQLITE_OK;
}

/* Called by SQLite before each commit of a write transaction of this connection. */
static int on_commit(void *cls)
{
	(void)cls;
	dh_db_write_bump();
	return 0;
}

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

static void lite_close(struct dh_db *db)
{
	struct lite_db *l = L(db);

	write_release(l);
	sqlite3_close(l->h);
	free(l);
}

static struct dh_db *lite_open(const char *path, struct dh_error *err)
{
	struct lite_db *db;
	char *msg = NULL;
	int rc;

	pthread_once(&config_once, configure);
	db = calloc(1, sizeof(*db));
	if (!db) {
		dh_error_set(err, DH_E_NOMEM, NULL);
		return NULL;
	}
	db->base.drv = &dh_db_sqlite_driver;
	rc = sqlite3_open_v2(path, &db->h,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		dh_error_set(err, DH_E_DB, "Cannot open database %s: %s", path,
			     db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(db->h, LITE_BUSY_TIMEOUT_MS);
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
		dh_db_write_trust(false);
	return &db->base;
fail:
	lite_close(&db->base);
	return NULL;
}

static bool lite_alive(struct dh_db *db)
{
	(void)db;
	return true;
}

static struct dh_stmt *lite_prepare(struct dh_db *db, const char *sql, bool once)
{
	struct lite_stmt *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	if (sqlite3_prepare_v3(L(db)->h, sql, -1, once ? 0 : SQLITE_PREPARE_PERSISTENT, &st->st,
			       NULL) != SQLITE_OK) {
		dh_error("db.prepare", "engine=sqlite detail=\"%s\"", sqlite3_errmsg(L(db)->h));
		sqlite3_finalize(st->st);
		free(st);
		return NULL;
	}
	dh_stmt_init(&st->base, db);
	return &st->base;
}

static void lite_finalize(struct dh_stmt *st)
{
	if (!st)
		return;
	sqlite3_finalize(LS(st)->st);
	dh_stmt_params_free(st);
	free(st);
}

static int bind_all(struct dh_stmt *st)
{
	sqlite3_stmt *s = LS(st)->st;
	int rc = SQLITE_OK;

	for (int i = 0; i < st->nparams && rc == SQLITE_OK; i++) {
		const struct dh_param *p = &st->p[i];
		switch (p->type) {
		case DH_V_NULL:
			rc = sqlite3_bind_null(s, i + 1);
			break;
		case DH_V_INT:
			rc = sqlite3_bind_int64(s, i + 1, p->i);
			break;
		case DH_V_REAL:
			rc = sqlite3_bind_double(s, i + 1, p->d);
			break;
		case DH_V_TEXT:
			/* borrowed: the caller keeps the text until the statement is reset */
			rc = sqlite3_bind_text(s, i + 1, p->s, (int)p->len, SQLITE_STATIC);
			break;
		}
	}
	return rc;
}

static int lite_step(struct dh_stmt *st)
{
	int rc;

	if (!st->started && bind_all(st) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(LS(st)->st);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : -1;
}

static void lite_reset(struct dh_stmt *st)
{
	sqlite3_reset(LS(st)->st);
	sqlite3_clear_bindings(LS(st)->st);
}

static int lite_col_count(struct dh_stmt *st)
{
	return sqlite3_column_count(LS(st)->st);
}

static const char *lite_col_name(struct dh_stmt *st, int i)
{
	return sqlite3_column_name(LS(st)->st, i);
}

static enum dh_val lite_col_type(struct dh_stmt *st, int i)
{
	switch (sqlite3_column_type(LS(st)->st, i)) {
	case SQLITE_INTEGER:
		return DH_V_INT;
	case SQLITE_FLOAT:
		return DH_V_REAL;
	case SQLITE_NULL:
		return DH_V_NULL;
	default:
		return DH_V_TEXT;
	}
}

static int64_t lite_col_int(struct dh_stmt *st, int i)
{
	return sqlite3_column_int64(LS(st)->st, i);
}

static double lite_col_real(struct dh_stmt *st, int i)
{
	return sqlite3_column_double(LS(st)->st, i);
}

static const char *lite_col_text(struct dh_stmt *st, int i, size_t *len)
{
	const char *t = (const char *)sqlite3_column_text(LS(st)->st, i);

	*len = t ? (size_t)sqlite3_column_bytes(LS(st)->st, i) : 0;
	return t;
}

static int64_t lite_changes(struct dh_stmt *st)
{
	return sqlite3_changes64(L(st->db)->h);
}

static enum dh_err lite_error(struct dh_db *db, struct dh_error *err)
{
	sqlite3 *h = L(db)->h;
	const char *msg = sqlite3_errmsg(h);
	int rc = sqlite3_errcode(h), ext = sqlite3_extended_errcode(h);

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
	if (rc == SQLITE_CONSTRAINT)
		return dh_error_set(err, DH_E_INVALID, "A value breaks a rule of the database: %s",
				    msg);
	dh_error("db.error", "engine=sqlite rc=%d detail=\"%s\"", ext, msg);
	return dh_error_set(err, DH_E_DB, NULL);
}

static enum dh_err lite_script(struct dh_db *db, const char *sql, struct dh_error *err)
{
	char *msg = NULL;

	if (sqlite3_exec(L(db)->h, sql, NULL, NULL, &msg) == SQLITE_OK)
		return DH_OK;
	dh_error_set(err, DH_E_DB, "%s", msg ? msg : "?");
	sqlite3_free(msg);
	return DH_E_DB;
}

static void lite_rollback(struct dh_db *db)
{
	struct lite_db *l = L(db);

	if (!sqlite3_get_autocommit(l->h))
		sqlite3_exec(l->h, "ROLLBACK", NULL, NULL, NULL);
	write_release(l);
}

static enum dh_err lite_begin(struct dh_db *db)
{
	struct lite_db *l = L(db);

	if (!l->write_locked) {
		pthread_mutex_lock(&write_lock);
		l->write_locked = true;
	}
	for (int i = 0; i < LITE_BEGIN_TRIES; i++) {
		int rc = sqlite3_exec(l->h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			return DH_OK;
		if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
			dh_error("db.begin", "engine=sqlite detail=\"%s\"", sqlite3_errmsg(l->h));
			write_release(l);
			return DH_E_DB;
		}
	}
	write_release(l);
	dh_warn("db.busy", "what=begin tries=%d", LITE_BEGIN_TRIES);
	return DH_E_BUSY;
}

static enum dh_err lite_commit(struct dh_db *db)
{
	struct lite_db *l = L(db);

	for (int i = 0; i < LITE_BEGIN_TRIES; i++) {
		int rc = sqlite3_exec(l->h, "COMMIT", NULL, NULL, NULL);
		if (rc == SQLITE_OK) {
			write_release(l);
			return DH_OK;
		}
		if (rc != SQLITE_BUSY) {
			dh_error("db.commit", "engine=sqlite detail=\"%s\"", sqlite3_errmsg(l->h));
			lite_rollback(db);
			return DH_E_DB;
		}
	}
	lite_rollback(db);
	return DH_E_BUSY;
}

extern const struct dh_migration dh_migrations_sqlite[];
extern const size_t dh_migrations_sqlite_count;

const struct dh_db_driver dh_db_sqlite_driver = {
	.engine = DH_DB_SQLITE,
	.name = "sqlite",
	.open = lite_open,
	.close = lite_close,
	.alive = lite_alive,
	.prepare = lite_prepare,
	.finalize = lite_finalize,
	.step = lite_step,
	.reset = lite_reset,
	.col_count = lite_col_count,
	.col_name = lite_col_name,
	.col_type = lite_col_type,
	.col_int = lite_col_int,
	.col_real = lite_col_real,
	.col_text = lite_col_text,
	.changes = lite_changes,
	.error = lite_error,
	.script = lite_script,
	.begin = lite_begin,
	.commit = lite_commit,
	.rollback = lite_rollback,
	.lock_schema = NULL,
	.migrations = dh_migrations_sqlite,
	.nmigrations = &dh_migrations_sqlite_count,
};
