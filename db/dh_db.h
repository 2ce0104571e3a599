/*
 * The data-access layer: the only interface the server uses to reach SQLite. Each thread
 * gets its own connection (WAL, busy_timeout, foreign_keys=ON) with its own cache of
 * prepared statements; neither crosses threads. Configuration objects go through a small
 * generic object store (rows as JSON objects keyed by column name); sessions, auth and
 * firmware have dedicated calls in their own files.
 */
#ifndef DH_DB_H
#define DH_DB_H

#include "core/err.h"
#include "core/rights.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

struct dh_db;

/* One numbered migration compiled into the binary from migrations/NNNN_name.sql. */
struct dh_migration {
	int version;
	const char *name;
	const char *sql;
};

/* The migrations of this build, in order (generated at build time). */
extern const struct dh_migration dh_migrations[];
extern const size_t dh_migrations_count;

/*
 * Opens (creating if needed) <data_dir>/devicehub.db, applies pending migrations and
 * remembers the path for the per-thread connections. Call once from the main thread.
 */
enum dh_err dh_db_setup(const char *data_dir, struct dh_error *err);

/* This thread's connection, opened at first use; NULL if it cannot be opened. */
struct dh_db *dh_db_thread(void);
/* Closes this thread's connection now; for the main thread, whose key destructor never runs. */
void dh_db_thread_close(void);

/* Opens a connection to path (":memory:" works) owned by the caller. */
struct dh_db *dh_db_open(const char *path, struct dh_error *err);
void dh_db_close(struct dh_db *db);
sqlite3 *dh_db_handle(struct dh_db *db);

/*
 * Applies migrations[0..n) whose version is not yet in schema_migrations, each inside
 * its own transaction, in order. A failure rolls that migration back and stops.
 */
enum dh_err dh_db_migrate(struct dh_db *db, const struct dh_migration *m, size_t n,
			  struct dh_error *err);
/* Highest applied migration version, 0 for an empty database, -1 on error. */
int dh_db_schema_version(struct dh_db *db);

/*
 * A cached prepared statement for sql (a string literal or other text that lives as long as
 * the program: the cache keys on its address and content). Reset and cleared bindings.
 * NULL on a prepare error (logged).
 */
sqlite3_stmt *dh_db_prep(struct dh_db *db, const char *sql);

/* Runs one statement that returns no rows; maps constraint errors like the object store. */
enum dh_err dh_db_exec(struct dh_db *db, const char *sql, struct dh_error *err);

/* Short write transactions: BEGIN IMMEDIATE retried a bounded number of times on BUSY. */
enum dh_err dh_db_begin(struct dh_db *db);
enum dh_err dh_db_commit(struct dh_db *db);
void dh_db_rollback(struct dh_db *db);

/* Maps the connection's last SQLite error to a dh_err (constraint names in detail). */
enum dh_err dh_db_error(struct dh_db *db, int rc, struct dh_error *err);

/* Copies column i of the current row as a malloc'd string (NULL for SQL NULL). */
char *dh_db_col_strdup(sqlite3_stmt *st, int i);
/* Copies column i into buf (cut to size); "" for NULL. */
void dh_db_col_copy(sqlite3_stmt *st, int i, char *buf, size_t size);
/* Binds a json scalar (string, integer, real, bool, null); objects/arrays bind as JSON text. */
int dh_db_bind_json(sqlite3_stmt *st, int i, json_t *v);
/* The current row as a JSON object keyed by column name (new reference). */
json_t *dh_db_row_to_json(sqlite3_stmt *st);

/* ---- generic object store (configuration objects) ---- */

/* Equality filters for lists; value is borrowed. column names come from static tables. */
struct dh_db_where {
	const char *column;
	json_t *value;
};

/*
 * Finds the row of table whose id equals key, or whose tid equals key when has_tid.
 * *out gets a new JSON object (column → value). DH_E_NOT_FOUND when there is none.
 */
enum dh_err dh_db_obj_get(struct dh_db *db, const char *table, const char *key, bool has_tid,
			  json_t **out);
/* Resolves key (uuid or tid) to the row's id. DH_E_NOT_FOUND when unknown. */
enum dh_err dh_db_obj_resolve(struct dh_db *db, const char *table, const char *key, bool has_tid,
			      char id[DH_UUID_LEN]);
/* Inserts row (column → value, borrowed). UNIQUE violations give DH_E_CONFLICT naming the
 * column in err->fields. */
enum dh_err dh_db_obj_insert(struct dh_db *db, const char *table, json_t *row,
			     struct dh_error *err);
/* Updates the given columns of row id; DH_E_NOT_FOUND if no such row. */
enum dh_err dh_db_obj_update(struct dh_db *db, const char *table, const char *id, json_t *cols,
			     struct dh_error *err);
/* Deletes row id; DH_E_REFERENCED when other rows still point at it. */
enum dh_err dh_db_obj_delete(struct dh_db *db, const char *table, const char *id,
			     struct dh_error *err);
/*
 * Lists rows matching all filters, ordered by create_time then id, with limit/offset;
 * *rows gets a new array, *count the total number of matches.
 */
enum dh_err dh_db_obj_list(struct dh_db *db, const char *table, const struct dh_db_where *w,
			   size_t nw, int64_t limit, int64_t offset, json_t **rows, int64_t *count);

/* ---- authentication ---- */

/*
 * Loads the token whose secret hashes to hash: the user, its grants, and the token's expiry
 * (0 = never) and revocation. DH_E_UNAUTHORIZED when no such token or inactive user.
 */
enum dh_err dh_db_auth_lookup(struct dh_db *db, const char hash_hex[DH_SHA256_HEX],
			      struct dh_principal *p, int64_t *expire_us, bool *revoked);

/*
 * On a database without users, creates user "admin" with an everything-admin grant and a
 * token whose secret hashes to hash_hex. *created tells whether it did.
 */
enum dh_err dh_db_bootstrap_admin(struct dh_db *db, const char hash_hex[DH_SHA256_HEX],
				  bool *created, struct dh_error *err);

/* Increments on every change to users, tokens or access rights made through this process. */
unsigned long dh_db_auth_generation(void);
void dh_db_auth_changed(void);

/* ---- firmware catalogue (firmware.c) ---- */

/*
 * Rows of the firmware calls are JSON objects keyed by column name, plus "product_id" (of
 * the model) and "channels" (array of channel ids).
 */

/* The firmware whose id or tid is key; *row a new reference. DH_E_NOT_FOUND if none. */
enum dh_err dh_db_firmware_get(struct dh_db *db, const char *key, json_t **row);

/*
 * Inserts a firmware row (columns of table firmware, borrowed) and its channels (ids).
 * (model_id, version) or tid already taken gives DH_E_CONFLICT naming the field. Call
 * inside a transaction.
 */
enum dh_err dh_db_firmware_insert(struct dh_db *db, json_t *row, const char *const *channels,
				  size_t n, struct dh_error *err);

/* Replaces the channels of firmware id. Call inside a transaction. */
enum dh_err dh_db_firmware_set_channels(struct dh_db *db, const char *id,
					const char *const *channels, size_t n,
					struct dh_error *err);

/* Filters of the firmware list; NULL does not filter, draft -1 any, 0 or 1. */
struct dh_db_firmware_filter {
	const char *model_id;
	const char *channel_id;
	const char *version;
	int draft;
};

/* Lists matching rows oldest first with limit/offset; *rows a new array, *count the total. */
enum dh_err dh_db_firmware_list(struct dh_db *db, const struct dh_db_firmware_filter *f,
				int64_t limit, int64_t offset, json_t **rows, int64_t *count);

/*
 * Deletes firmware id. DH_E_REFERENCED while a device twin runs it or a session refers to
 * it. *blob_unused tells whether no other firmware shares its image. Call inside a
 * transaction.
 */
enum dh_err dh_db_firmware_delete(struct dh_db *db, const char *id, bool *blob_unused,
				  struct dh_error *err);

#endif
