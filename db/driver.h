/*
 * Inside the data layer: what one database engine provides (struct dh_db_driver) and the
 * statement calls the files of db/ write their SQL with. A driver opens connections, prepares and
 * runs statements, reads columns and maps its errors to enum dh_err; everything else (the
 * statement cache, the transaction runner, migrations, the per-thread connection) is shared
 * in db/db.c. Never included outside db/.
 */
#ifndef DH_DB_DRIVER_H
#define DH_DB_DRIVER_H

#include "dh_db.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parameters a statement holds without allocating; the widest fixed one (a session insert)
 * has 24, lists built from a caller's grants may have more (up to DH_STMT_PARAMS_MAX). */
#define DH_STMT_PARAMS 32
/* Most parameters of one statement: PostgreSQL's protocol allows 65535, SQLite 32766. */
#define DH_STMT_PARAMS_MAX 32000
/* Distinct SQL texts one connection keeps prepared; the server uses well under this. */
#define DH_STMT_CACHE 256

enum dh_val {
	DH_V_NULL,
	DH_V_INT,
	DH_V_REAL,
	DH_V_TEXT,
};

/* One bound parameter. Text is borrowed until the statement is reset, unless owned. */
struct dh_param {
	enum dh_val type;
	int64_t i;
	double d;
	const char *s;
	size_t len;
	char *owned;  /* freed at reset */
	char num[32]; /* a number as text, for engines that send text */
};

struct dh_db_driver;

/* A prepared statement; a driver allocates its own larger struct with this one first. */
struct dh_stmt {
	struct dh_db *db;
	int nparams; /* highest parameter number bound */
	int cap;     /* slots in p */
	struct dh_param *p;
	struct dh_param small[DH_STMT_PARAMS]; /* p, unless a statement needs more */
	bool started; /* stepped since the last reset: parameters were sent */
};

enum dh_db_engine {
	DH_DB_SQLITE,
	DH_DB_PG,
};

struct commit_hook {
	dh_db_hook_fn fn;
	void *cls;
	void (*release)(void *cls);
};

struct stmt_slot {
	const char *sql;
	struct dh_stmt *st;
	char *owned; /* the slot's own copy of sql, for texts built at run time */
};

/* A connection; a driver allocates its own larger struct with this one first. */
struct dh_db {
	const struct dh_db_driver *drv;
	int tx_depth;      /* > 0 while dh_db_tx_run runs its function */
	bool auth_changed; /* the running transaction changed users, tokens or rights */
	bool wrote;        /* the running transaction was opened by the runner (a write) */
	struct commit_hook *hooks;
	size_t nhooks, hooks_cap;
	size_t nstmt;
	struct stmt_slot stmts[DH_STMT_CACHE];
};

struct dh_db_driver {
	enum dh_db_engine engine;
	const char *name;
	/* Opens a connection to target (the engine's part of the URL). */
	struct dh_db *(*open)(const char *target, struct dh_error *err);
	void (*close)(struct dh_db *db);
	/* Is the connection still usable? (false: the per-thread connection is reopened) */
	bool (*alive)(struct dh_db *db);
	/* Prepares one statement written with ?N parameters (once: used by one run, then
	 * finalized). NULL on an error (logged). */
	struct dh_stmt *(*prepare)(struct dh_db *db, const char *sql, bool once);
	void (*finalize)(struct dh_stmt *st);
	/* Sends the parameters at the first step after a reset. 1: a row, 0: done, -1: error. */
	int (*step)(struct dh_stmt *st);
	void (*reset)(struct dh_stmt *st);
	int (*col_count)(struct dh_stmt *st);
	const char *(*col_name)(struct dh_stmt *st, int i);
	enum dh_val (*col_type)(struct dh_stmt *st, int i);
	int64_t (*col_int)(struct dh_stmt *st, int i);
	double (*col_real)(struct dh_stmt *st, int i);
	/* NULL for SQL NULL; valid until the next step or reset. */
	const char *(*col_text)(struct dh_stmt *st, int i, size_t *len);
	/* Rows changed by the statement's last step. */
	int64_t (*changes)(struct dh_stmt *st);
	/* Maps the connection's last error: constraints, busy/serialization, the rest DH_E_DB. */
	enum dh_err (*error)(struct dh_db *db, struct dh_error *err);
	/* Runs a script of statements without parameters (migrations). */
	enum dh_err (*script)(struct dh_db *db, const char *sql, struct dh_error *err);
	/* A write transaction. commit and begin map a lost race to DH_E_BUSY. */
	enum dh_err (*begin)(struct dh_db *db);
	enum dh_err (*commit)(struct dh_db *db);
	void (*rollback)(struct dh_db *db);
	/* Serialises schema migrations among processes (NULL: nothing to serialise). */
	enum dh_err (*lock_schema)(struct dh_db *db, bool lock);
	/* The migrations of this engine. */
	const struct dh_migration *migrations;
	const size_t *nmigrations;
};

extern const struct dh_db_driver dh_db_sqlite_driver;
extern const struct dh_db_driver dh_db_pg_driver;

/*
 * Picks the driver and its target for url: "" or "sqlite:" is data_dir's devicehub.db,
 * "sqlite:PATH" that file, a postgresql:// or postgres:// URI or a libpq key=value string
 * PostgreSQL (DH_E_INVALID when this build has no PostgreSQL). target gets the engine's
 * part: the SQLite file's path, or the PostgreSQL connection string.
 */
enum dh_err dh_db_url_parse(const char *url, const char *data_dir, const struct dh_db_driver **drv,
			    char *target, size_t size, struct dh_error *err);

static inline bool dh_db_is_pg(const struct dh_db *db)
{
	return db->drv->engine == DH_DB_PG;
}

/* The text for this connection's engine: the two dialects differ in a few statements. */
static inline const char *dh_db_sql(const struct dh_db *db, const char *sqlite_sql,
				    const char *pg_sql)
{
	return dh_db_is_pg(db) ? pg_sql : sqlite_sql;
}

/*
 * A cached prepared statement for sql (a string literal or other text that lives as long as
 * the program: the cache keys on its address), reset with cleared parameters. NULL on a
 * prepare error (logged).
 */
struct dh_stmt *dh_db_prep(struct dh_db *db, const char *sql);
/* The same for SQL text built at run time (the cache keeps a copy, matched by content); only
 * for a small, bounded set of texts, e.g. one per table and lookup kind. */
struct dh_stmt *dh_db_prep_text(struct dh_db *db, const char *sql);

/* A statement built at run time for one run (not cached); dh_stmt_free when done. */
struct dh_stmt *dh_db_prep_once(struct dh_db *db, const char *sql);
void dh_stmt_free(struct dh_stmt *st);
/* For drivers: readies a new statement of db. */
void dh_stmt_init(struct dh_stmt *st, struct dh_db *db);
/* For drivers: frees what the statement's parameters own. */
void dh_stmt_params_free(struct dh_stmt *st);

/* Parameters (numbered from 1); text and json are borrowed until the next reset. */
void dh_stmt_text(struct dh_stmt *st, int i, const char *s);
void dh_stmt_textn(struct dh_stmt *st, int i, const char *s, size_t len);
/* Binds NULL for NULL or "". */
void dh_stmt_text_opt(struct dh_stmt *st, int i, const char *s);
void dh_stmt_int(struct dh_stmt *st, int i, int64_t v);
void dh_stmt_real(struct dh_stmt *st, int i, double v);
void dh_stmt_null(struct dh_stmt *st, int i);
/* A JSON scalar as its SQL value (bool as 0/1); objects and arrays as JSON text. */
bool dh_stmt_json(struct dh_stmt *st, int i, json_t *v);
/* Takes ownership of s (malloc'd, freed at reset). */
void dh_stmt_text_take(struct dh_stmt *st, int i, char *s);

/* 1: a row, 0: done, -1: an error (dh_stmt_error says which). */
int dh_stmt_step(struct dh_stmt *st);
void dh_stmt_reset(struct dh_stmt *st);
int64_t dh_stmt_changes(struct dh_stmt *st);
/* The error of the last failed step, mapped (constraint names in err->fields). */
enum dh_err dh_stmt_error(struct dh_stmt *st, struct dh_error *err);
/* Steps a statement that returns no rows, resets it; DH_OK or the mapped error. */
enum dh_err dh_stmt_run(struct dh_stmt *st, struct dh_error *err);

bool dh_stmt_isnull(struct dh_stmt *st, int i);
int64_t dh_stmt_col_int(struct dh_stmt *st, int i);
const char *dh_stmt_col_text(struct dh_stmt *st, int i);
/* Copies column i as a malloc'd string (NULL for SQL NULL). */
char *dh_stmt_col_strdup(struct dh_stmt *st, int i);
/* Copies column i into buf (size bytes with the NUL); "" for NULL. The copy is always
 * well-formed UTF-8: cut between two characters when it does not fit, and any byte that is
 * not UTF-8 (a row an older build cut inside a character) written as \xNN. */
void dh_stmt_col_copy(struct dh_stmt *st, int i, char *buf, size_t size);
/* The current row as a JSON object keyed by column name (new reference). Text that is not
 * UTF-8 is given with such bytes as \xNN rather than failing the row. */
json_t *dh_stmt_row_json(struct dh_stmt *st);

/* Rewrites ?N and ? parameters as $N (outside quoted text); malloc'd, NULL if out of memory. */
char *dh_db_sql_dollar(const char *sql);

/* Did the running transaction change users, tokens or rights? (for the engine's commit) */
bool dh_db_tx_auth_changed(struct dh_db *db);

/* Says that the auth generation cannot be trusted now (false) or again (true). */
void dh_db_auth_trust(bool ok);

/* Moves the write generation (after this process's commits and other processes'). */
void dh_db_write_bump(void);
/* Says that write generations cannot be trusted now (0) or again (true). */
void dh_db_write_trust(bool ok);

#endif
