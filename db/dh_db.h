/*
 * The data-access layer: the only interface the server uses to reach its database. It names
 * no engine: behind it sit SQLite (the embedded default, db/sqlite/) and PostgreSQL (several
 * processes on one database, db/pg/), chosen by the database URL (docs/database.md). Each
 * thread gets its own connection with its own cache of prepared statements; neither
 * crosses threads. Every write runs inside dh_db_tx_run. Configuration objects go through a
 * small generic object store (rows as JSON objects keyed by column name); sessions, auth
 * and firmware have dedicated calls in their own files.
 */
#ifndef DH_DB_H
#define DH_DB_H

#include "core/err.h"
#include "core/fsm.h"
#include "core/rights.h"
#include "core/semver.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct dh_db;

/* Longest base URL kept for a session's download links. */
#define DH_BASE_URL_MAX 512

/* One numbered migration compiled into the binary from migrations/NNNN_name.sql. */
struct dh_migration {
	int version;
	const char *name;
	const char *sql;
};

/*
 * Picks the engine from url and brings its schema up to this build: "" or "sqlite:" is
 * <data_dir>/devicehub.db (created if needed), "sqlite:PATH" that file, a postgresql:// (or
 * postgres://) URI or a libpq key=value string a PostgreSQL database. Applies pending
 * migrations (serialised among processes); refuses a schema newer than this build. Call
 * once from the main thread before any other call. err says why in one sentence (never
 * with a password).
 */
enum dh_err dh_db_setup(const char *url, const char *data_dir, struct dh_error *err);

/* "sqlite" or "postgresql": the engine dh_db_setup chose. */
const char *dh_db_engine_name(void);
/* May other processes write to this database (PostgreSQL), or is it this process's alone? */
bool dh_db_is_shared(void);

/* Stops what dh_db_setup started besides connections (the change listener of a shared
 * database). At shutdown, after the other threads. */
void dh_db_stop(void);

/*
 * fn(type, session id) runs on the listener thread whenever another process sharing the
 * database emitted an event (e.g. queued a session): the pipeline wakes its workers and
 * follows the session's short link. Set once at start-up.
 */
void dh_db_set_remote_hook(void (*fn)(const char *type, const char *session_id));

/* This thread's connection, opened at first use (reopened when the server dropped it);
 * NULL if it cannot be opened. */
struct dh_db *dh_db_thread(void);
/* Closes this thread's connection now; for the main thread, whose key destructor never runs. */
void dh_db_thread_close(void);

/* Opens a connection owned by the caller to url as dh_db_setup reads it ("sqlite::memory:"
 * works), without migrating. */
struct dh_db *dh_db_open(const char *url, struct dh_error *err);
void dh_db_close(struct dh_db *db);

/* The migrations of this build for db's engine, in order (compiled in from
 * migrations/<engine>/NNNN_name.sql). */
const struct dh_migration *dh_db_migrations(struct dh_db *db, size_t *n);

/*
 * Applies migrations[0..n) whose version is not yet in schema_migrations, each inside
 * its own transaction, in order. A failure rolls that migration back and stops.
 */
enum dh_err dh_db_migrate(struct dh_db *db, const struct dh_migration *m, size_t n,
			  struct dh_error *err);
/* Highest applied migration version, 0 for an empty database, -1 on error. */
int dh_db_schema_version(struct dh_db *db);

/* Runs one statement (a literal) whose rows are not needed; maps constraint errors like the
 * object store. */
enum dh_err dh_db_exec(struct dh_db *db, const char *sql, struct dh_error *err);

/* ---- transactions ---- */

/* Attempts of one transaction when it loses a race (busy, serialization, deadlock). */
#define DH_DB_TX_TRIES 5

/*
 * The work of one transaction. It runs between begin and commit on db and returns DH_OK to
 * commit, anything else to roll back (err filled as usual). DH_E_BUSY means a lost race:
 * the runner rolls back and calls it again, so it must do nothing outside the database
 * except through dh_db_after_commit.
 */
typedef enum dh_err (*dh_db_tx_fn)(struct dh_db *db, void *cls, struct dh_error *err);

/*
 * The one transaction runner: begins a write transaction, calls fn, commits, and on
 * DH_E_BUSY (from fn or the commit) rolls back and tries again, DH_DB_TX_TRIES times in
 * all; rolls back on every other error. Inside a transaction already running on db it just
 * calls fn, which then joins that transaction (its errors end the outer one). After a
 * commit it runs the hooks registered with dh_db_after_commit, in order, outside any lock.
 */
enum dh_err dh_db_tx_run(struct dh_db *db, dh_db_tx_fn fn, void *cls, struct dh_error *err);

/* Is a dh_db_tx_run function running on db now? */
bool dh_db_in_tx(struct dh_db *db);

typedef void (*dh_db_hook_fn)(void *cls);

/*
 * Registers fn(cls) to run once the running transaction has committed (cache invalidation,
 * event publication, waking workers), never for one that rolled back. release(cls), when not
 * NULL, runs after fn or instead of it. Outside a transaction fn runs at once.
 */
enum dh_err dh_db_after_commit(struct dh_db *db, dh_db_hook_fn fn, void *cls,
			       void (*release)(void *cls));

/*
 * Publishes a session event (core/events.h, for readers holding need over the scope) once
 * the running transaction commits (at once outside one). data is borrowed and copied now.
 * The one place events enter the bus, so that nothing is published for a change that rolled
 * back.
 */
enum dh_err dh_db_event_emit(struct dh_db *db, enum dh_action need, const char *type,
			     const char *session_id, const char *product, const char *model,
			     const char *channel, json_t *data);

/* ---- what a caller may see of a list ---- */

/*
 * The rows of a list a caller may see, given as grants (core/rights.h; a grant's empty
 * fields match anything): a row is visible when one grant of `any` covers its scope, and a
 * restricted row (a draft image, a session whose target is a draft) only when one grant of
 * `restricted` does too (the action that sees restricted rows implies the one that sees
 * rows, e.g. draft implies update). The API layer picks the grants that imply the action a
 * list needs; db turns them into the WHERE of the query, so the database filters, counts
 * and paginates. A NULL visibility shows every row.
 */
struct dh_db_visibility {
	const struct dh_grant *any;
	size_t nany;
	const struct dh_grant *restricted;
	size_t nrestricted;
};

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
/*
 * A model now belongs to product_id (it was moved): the rows that record a model's product
 * beside the model itself follow it, so that rights over the new product cover them and
 * rights over the old one no longer do: the model's sessions, the grants over the model and
 * the webhooks scoped to it. Devices and firmware have no product of their own (they join
 * the model). Call inside the transaction that moves the model.
 */
enum dh_err dh_db_model_product_follow(struct dh_db *db, const char *model_id,
				       const char *product_id, struct dh_error *err);
/* Deletes row id; DH_E_REFERENCED when other rows still point at it (a device: while one of
 * its sessions is not finished; err->detail then says so). */
enum dh_err dh_db_obj_delete(struct dh_db *db, const char *table, const char *id,
			     struct dh_error *err);
/*
 * Lists rows matching all filters and visible under vis (NULL: all; only for tables with a
 * scope: products, models, devices), ordered by create_time then id, with limit/offset;
 * *rows gets a new array, *count the total number of matches.
 */
enum dh_err dh_db_obj_list(struct dh_db *db, const char *table, const struct dh_db_where *w,
			   size_t nw, const struct dh_db_visibility *vis, int64_t limit,
			   int64_t offset, json_t **rows, int64_t *count);

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

/* Increments after every committed change to users, tokens or access rights. */
unsigned long dh_db_auth_generation(void);
/* Marks the running transaction as changing authentication data: the generation moves once
 * it commits (at once outside a transaction). */
void dh_db_auth_changed(struct dh_db *db);
/* Moves the generation now (internal to db/, and tests). */
void dh_db_auth_bump(void);

/*
 * Increments after every commit of a write by any connection of this process, once the
 * change is visible to other connections (and also just before it), and when another
 * process sharing the database reports a commit (PostgreSQL, within the propagation time of
 * docs/database.md). A value read before a query and found unchanged after it tags what the
 * query read as current until the value changes. 0: no such guarantee now (SQLite not in
 * WAL mode, or the change listener lost its connection); cache nothing.
 */
unsigned long dh_db_write_generation(void);

/* ---- firmware-update sessions (sessions.c) ---- */

/* A session row. Strings are "" when NULL in the database; json fields are owned. */
struct dh_session {
	char id[DH_UUID_LEN];
	char create_time[DH_TIME_LEN];
	char creator[DH_USER_NAME_MAX + 1];
	char creator_id[DH_UUID_LEN];
	enum dh_state state;
	bool finished;
	int64_t expire_us; /* when the current state's timeout fires; 0: none */
	char procedure[DH_UUID_LEN];
	char product[DH_UUID_LEN];
	char model[DH_UUID_LEN];
	char channel[DH_UUID_LEN];
	char device[DH_UUID_LEN];               /* the twin's id */
	char device_name[DH_DEVICE_ID_MAX + 1]; /* the twin's device_id */
	char current_fw[DH_UUID_LEN];
	char current_version[DH_SEMVER_MAX];
	char target_fw[DH_UUID_LEN];
	char target_version[DH_SEMVER_MAX];
	char target_sha256[DH_SHA256_HEX]; /* of the target image (joined, read only) */
	int64_t target_size;
	bool target_is_draft; /* the target image is a draft now (joined, read only) */
	bool allow_draft;
	bool needs_confirm;
	int64_t timeouts[4]; /* seconds, indexed by enum dh_timeout */
	char base_url[DH_BASE_URL_MAX];
	int attempts;
	char link_hash[DH_SHA256_HEX]; /* SHA-256 hex of the short-link token; "" when none */
	int64_t delivered_bytes;       /* image bytes sent, repeats included (flushed) */
	int64_t delivered_covered;     /* distinct image bytes sent at least once (flushed) */
	json_t *steps;                 /* array */
	json_t *payload;               /* object */
	json_t *error;                 /* object or NULL */
	json_t *history;               /* array of {state, time} */
};

/* Frees the json members and clears s. */
void dh_db_session_release(struct dh_session *s);

/* Inserts s as a new row (history gets its first entry). */
enum dh_err dh_db_session_insert(struct dh_db *db, const struct dh_session *s,
				 struct dh_error *err);

/* Loads session id into s (released first by the caller). DH_E_NOT_FOUND when none. */
enum dh_err dh_db_session_get(struct dh_db *db, const char *id, struct dh_session *s);

/* What an image download needs of session id: s without its JSON members (steps, payload,
 * error, history stay NULL) and the target image's create_time in image_time ("" if none). */
enum dh_err dh_db_session_get_download(struct dh_db *db, const char *id, struct dh_session *s,
				       char image_time[DH_TIME_LEN]);

/* What a move changes besides the state, and what guards it (see dh_db_session_move). */
struct dh_session_move {
	const struct dh_fsm_row *row; /* the transition; row->from is the expected state */
	int64_t expire_us;            /* new expiration; 0: none (finished) */
	json_t *error;                /* borrowed; stored when not NULL */
	const char *base_url;         /* stored when not NULL (start) */
	bool twin_runs_target;        /* confirm success: the device twin now runs the target */
	const char *lease_owner;      /* when set: only while this owner holds the lease */
	bool lease_ended;             /* with lease_owner: only once that lease has ended */
	int64_t due_by;               /* when set: only if the timeout fired by then */
};

/*
 * Compare-and-set of session id from m->row->from to m->row->to in one transaction (or the
 * caller's): only an unfinished session still in the expected state, and matching m's
 * guards, changes (*won tells whether this call won).
 * Appends to history when the state changes, clears the lease when leaving processing, sets
 * queue_us when entering queued, and keeps the device twin's last_state in step.
 */
enum dh_err dh_db_session_move(struct dh_db *db, const char *id, const struct dh_session_move *m,
			       bool *won);

/*
 * Claims the oldest queued session for a worker of process owner: queued -> processing with a
 * lease until now + lease_us, expiration now + processing_timeout, attempts + 1, the short
 * link of the last run cleared (link_hash and the payload's link prefixes), atomically
 * (UPDATE ... RETURNING; PostgreSQL skips rows other processes are claiming), then loads it
 * into s. DH_E_NOT_FOUND when nothing is queued.
 */
enum dh_err dh_db_session_claim(struct dh_db *db, const char *owner, int64_t lease_us,
				struct dh_session *s);

/*
 * Extends every lease owner holds on a processing session to until_us; ids gets (up to max)
 * the sessions it still holds, *n how many. A session of owner's workers missing from ids
 * was moved on elsewhere (timed out, taken over): its step should stop.
 */
enum dh_err dh_db_session_renew(struct dh_db *db, const char *owner, int64_t until_us,
				char (*ids)[DH_UUID_LEN], size_t max, size_t *n);

/*
 * Merges obj (borrowed) into the payload of a processing session (RFC 7396 merge: keys
 * replace, nested objects merge, null removes) whose lease owner holds (any when NULL).
 * *payload, when not NULL, gets the new payload (new reference). DH_E_STATE when the session
 * is no longer processing (or no longer owner's).
 */
enum dh_err dh_db_session_merge(struct dh_db *db, const char *id, const char *owner, json_t *obj,
				json_t **payload);

/* One (id, state) pair whose timeout fired or whose lease expired. */
struct dh_session_due {
	char id[DH_UUID_LEN];
	enum dh_state state;
	int attempts;
	char owner[DH_UUID_LEN]; /* the lease owner ("" if none) */
};

/* Up to max unfinished sessions with expire_us <= now_us, oldest first (by the index). */
size_t dh_db_session_due(struct dh_db *db, int64_t now_us, struct dh_session_due *out, size_t max);

/* Up to max processing sessions whose lease is not owner's and ended by now_us. */
size_t dh_db_session_stale(struct dh_db *db, const char *owner, int64_t now_us,
			   struct dh_session_due *out, size_t max);

/* Ends owner's leases at once (orderly shutdown): the next start takes the sessions up again
 * without counting that run as an attempt. */
void dh_db_session_release_leases(struct dh_db *db, const char *owner);

/* Filters of the session list; NULL/"" fields do not filter. finished: -1 any, 0, 1. */
struct dh_session_filter {
	const char *state;
	const char *device; /* twin id or the device's own name */
	const char *model;  /* model id */
	int finished;
	const struct dh_db_visibility *vis; /* NULL: every session */
};

/*
 * Lists sessions matching f, newest first, with limit/offset; *out gets a malloc'd array of
 * *n sessions (each released by dh_db_session_release, the array by free), *count the total.
 */
enum dh_err dh_db_session_list(struct dh_db *db, const struct dh_session_filter *f, int64_t limit,
			       int64_t offset, struct dh_session **out, size_t *n, int64_t *count);

/*
 * Sets the short-link token hash of session id while it is processing (the link step).
 * DH_E_STATE when the session is no longer processing; DH_E_CONFLICT if the hash is taken.
 */
enum dh_err dh_db_session_set_link(struct dh_db *db, const char *id, const char *hash_hex);

/*
 * Calls fn(cls, s, image_time) for every unfinished session in state processing or created
 * that has a short link (s holds the scalars, as dh_db_session_get_download gives them).
 */
enum dh_err dh_db_session_links(struct dh_db *db,
				void (*fn)(void *cls, const struct dh_session *s,
					   const char *image_time),
				void *cls);

/* The session whose short-link hash is hash_hex, as dh_db_session_get_download reads it.
 * DH_E_NOT_FOUND when none. */
enum dh_err dh_db_session_by_link(struct dh_db *db, const char *hash_hex, struct dh_session *s,
				  char image_time[DH_TIME_LEN]);

/* The kind of the session's delivery method ("http", "coap", ...) into kind. */
enum dh_err dh_db_session_method_kind(struct dh_db *db, const char *id, char *kind, size_t size);

/*
 * The CoAP pre-shared key of the device whose device_id is identity (among devices with a
 * key it is unique) into key (size bytes with its NUL). DH_E_NOT_FOUND when none has one.
 */
enum dh_err dh_db_device_psk(struct dh_db *db, const char *identity, char *key, size_t size);

/* The delivered counters of a session, as the flusher reads and writes them. */
struct dh_db_delivered {
	enum dh_state state;
	int64_t size;              /* the target image's size */
	int64_t bytes;             /* delivered_bytes */
	int64_t covered;           /* delivered_covered */
	char *ranges;              /* delivered_ranges (malloc'd; "" when none) */
	char product[DH_UUID_LEN]; /* the session's product now (its model may have moved) */
};

/* Reads the delivered counters of session id into d (free d->ranges). DH_E_NOT_FOUND. */
enum dh_err dh_db_session_delivered_get(struct dh_db *db, const char *id,
					struct dh_db_delivered *d);
/* Writes bytes, covered and ranges of d to session id. */
enum dh_err dh_db_session_delivered_set(struct dh_db *db, const char *id,
					const struct dh_db_delivered *d);

/* Counts stored sessions per state into counts[DH_ST__COUNT] (finished ones included). */
enum dh_err dh_db_session_counts(struct dh_db *db, int64_t counts[DH_ST__COUNT]);

/*
 * Creates or updates the twin (model_id, device_id) with what the device reported: channel
 * (NULL keeps it), version, the firmware of that version (NULL if none), last_seen = now.
 * Writes the twin's id into ref. Call inside a transaction.
 */
enum dh_err dh_db_device_upsert(struct dh_db *db, const char *model_id, const char *device_id,
				const char *channel_id, const char *version, const char *fw_id,
				char ref[DH_UUID_LEN], struct dh_error *err);

/* Points the twin at its latest session and state. */
enum dh_err dh_db_device_set_session(struct dh_db *db, const char *ref, const char *session_id,
				     const char *state);

/* The firmware of model with exactly version: id and draft flag. DH_E_NOT_FOUND if none. */
enum dh_err dh_db_firmware_by_version(struct dh_db *db, const char *model_id, const char *version,
				      char id[DH_UUID_LEN], bool *is_draft);

/*
 * Target selection: among the firmware of model in channel whose precedence key
 * (core/target.h) is above current_key, non-drafts only unless drafts, the highest; among
 * equal precedence (build metadata differs) the oldest. One indexed query, however many
 * images the channel holds. id and version get "" when there is none (up to date).
 */
enum dh_err dh_db_firmware_target(struct dh_db *db, const char *model_id, const char *channel_id,
				  const char *current_key, bool drafts, char id[DH_UUID_LEN],
				  char version[DH_SEMVER_MAX]);

/* ---- firmware catalogue (firmware.c) ---- */

/*
 * Rows of the firmware calls are JSON objects keyed by column name, plus "product_id" (of
 * the model) and "channels" (array of channel ids).
 */

/* The firmware whose id or tid is key; *row a new reference. DH_E_NOT_FOUND if none. */
enum dh_err dh_db_firmware_get(struct dh_db *db, const char *key, json_t **row);

/*
 * Inserts a firmware row (columns of table firmware, borrowed; its version_key is set here
 * from its version) and its channels (ids).
 * (model_id, version) or tid already taken gives DH_E_CONFLICT naming the field. Call
 * inside a transaction.
 */
enum dh_err dh_db_firmware_insert(struct dh_db *db, json_t *row, const char *const *channels,
				  size_t n, struct dh_error *err);

/* Gives firmware rows written before migration 0003 their precedence key; at start-up. */
enum dh_err dh_db_firmware_fill_keys(struct dh_db *db, struct dh_error *err);

/* Replaces the channels of firmware id. Call inside a transaction. */
enum dh_err dh_db_firmware_set_channels(struct dh_db *db, const char *id,
					const char *const *channels, size_t n,
					struct dh_error *err);

/* Filters of the firmware list; NULL does not filter, draft -1 any, 0 or 1. Drafts are the
 * restricted rows of vis. */
struct dh_db_firmware_filter {
	const char *model_id;
	const char *channel_id;
	const char *version;
	int draft;
	const struct dh_db_visibility *vis; /* NULL: every image */
};

/* Lists matching rows oldest first with limit/offset; *rows a new array, *count the total. */
enum dh_err dh_db_firmware_list(struct dh_db *db, const struct dh_db_firmware_filter *f,
				int64_t limit, int64_t offset, json_t **rows, int64_t *count);

/*
 * Deletes firmware id. DH_E_REFERENCED while a device twin runs it or an unfinished session
 * targets it (finished sessions keep their history with the target null). *blob_unused tells
 * whether no other firmware shares its image. Call inside a transaction.
 */
enum dh_err dh_db_firmware_delete(struct dh_db *db, const char *id, bool *blob_unused,
				  struct dh_error *err);

/* ---- images in a shared database (PostgreSQL; on SQLite these do nothing) ---- */

/*
 * Stores the image at path (size bytes, hash sha256) in the database unless it is there
 * already, in db's running transaction: the firmware row that refers to it comes after, in
 * the same transaction.
 */
enum dh_err dh_db_blob_store(struct dh_db *db, const char *sha256, uint64_t size, const char *path,
			     struct dh_error *err);
/* Writes the stored image sha256 to fd (*written bytes). DH_E_NOT_FOUND when the database
 * has none (always on SQLite). */
enum dh_err dh_db_blob_fetch(struct dh_db *db, const char *sha256, int fd, uint64_t *written);
/* Drops the stored image sha256 if no firmware refers to it any more (its own transaction). */
void dh_db_blob_drop_unused(struct dh_db *db, const char *sha256);

/* Does a firmware row refer to the image with this hash? */
enum dh_err dh_db_firmware_sha_used(struct dh_db *db, const char *sha256, bool *used);
/* ---- webhook outbox (webhooks.c) ---- */

/* Room for a webhook's secret as stored (the base64 of the longest HMAC key, NUL). */
#define DH_DB_SECRET_MAX 96

/* One pending delivery as the sender sees it, with its webhook's settings. */
struct dh_outbox_row {
	int64_t seq;          /* outbox order */
	char id[DH_UUID_LEN]; /* the webhook-id header */
	char webhook[DH_UUID_LEN];
	char event[32];
	char *body; /* the event as JSON text, malloc'd */
	char *url;  /* malloc'd */
	char secret[DH_DB_SECRET_MAX];
	char previous_secret[DH_DB_SECRET_MAX]; /* "" when none */
	int64_t previous_until_us;
	bool is_active;
	int attempts;
	int64_t next_us, queue_us;
	char lease_owner[DH_UUID_LEN]; /* "" when not claimed */
	int64_t lease_until;
};

void dh_db_outbox_row_release(struct dh_outbox_row *r);

/*
 * Writes one pending delivery of an event of type (body: its JSON text) for every active
 * webhook whose events name the type (or are "*", unless opt_in) and whose scope covers
 * product and model (NULL: the event belongs to no product; only unscoped webhooks get it).
 * Call inside the transaction of the change the event reports. *n gets how many rows.
 */
enum dh_err dh_db_outbox_add(struct dh_db *db, const char *type, bool opt_in, const char *product,
			     const char *model, const char *body, size_t *n);

/* Up to max active webhooks that have pending deliveries, by id. */
size_t dh_db_outbox_webhooks(struct dh_db *db, char (*ids)[DH_UUID_LEN], size_t max);

/* The first max pending deliveries of webhook in outbox order (the caller releases each). */
size_t dh_db_outbox_peek(struct dh_db *db, const char *webhook, struct dh_outbox_row *out,
			 size_t max);

/*
 * Claims the n pending deliveries ids for owner until lease_until, in one transaction: each a
 * compare-and-set that wins only when no other owner's lease runs at now_us; won[i] tells
 * whether ids[i] was won.
 */
enum dh_err dh_db_outbox_claim(struct dh_db *db, const char *const *ids, size_t n,
			       const char *owner, int64_t now_us, int64_t lease_until, bool *won);

/* The outcome of one attempt. */
struct dh_outbox_result {
	const char *status;   /* "pending" (retry at next_us), "delivered" or "failed" */
	long status_code;     /* the answer's HTTP status; 0: none came */
	const char *error;    /* one sentence, NULL on success */
	const char *response; /* an excerpt of the answer, NULL when none */
	int64_t attempt_us;
	int64_t next_us;
};

/* Records an attempt of each of the n pending deliveries ids (attempts + 1, outcome res[i])
 * and ends their leases, in one transaction. */
enum dh_err dh_db_outbox_record(struct dh_db *db, const char *const *ids,
				const struct dh_outbox_result *res, size_t n);

/* Ends the leases of owner (others false: at an orderly stop) or of every other owner
 * (others true: at start-up of the only process on this database). */
enum dh_err dh_db_outbox_unlease(struct dh_db *db, const char *owner, bool others);

/* Deletes up to max delivered or failed deliveries that ended before before_us. */
size_t dh_db_outbox_prune(struct dh_db *db, int64_t before_us, size_t max);

/* Stored deliveries per status (pending, delivered, failed) and when the oldest pending
 * one entered the queue (0: none). */
enum dh_err dh_db_outbox_counts(struct dh_db *db, int64_t counts[3], int64_t *oldest_pending_us);

/*
 * The delivery log of webhook, newest first, optionally of one status, with limit/offset:
 * *rows a new array of rows keyed by column (id, webhook_id, event, status, attempts,
 * last_status_code, last_error, last_response, last_attempt_us, next_us, done_us,
 * create_time), *count the total.
 */
enum dh_err dh_db_webhook_deliveries(struct dh_db *db, const char *webhook, const char *status,
				     int64_t limit, int64_t offset, json_t **rows, int64_t *count);

/* One delivery of webhook as such a row. DH_E_NOT_FOUND when none. */
enum dh_err dh_db_webhook_delivery_get(struct dh_db *db, const char *webhook, const char *id,
				       json_t **row);

/*
 * Writes the outbox rows of an event (dh_db_outbox_add with its body {"type", "time",
 * "data"}) in db's running transaction, or in one of its own outside one; once that commits,
 * calls the function given to dh_db_outbox_notify. dh_db_event_emit calls it for every event.
 */
enum dh_err dh_db_outbox_event(struct dh_db *db, const char *type, const char *product,
			       const char *model, json_t *data);

/* fn is called (on the committing thread, outside locks) after a commit that wrote
 * deliveries: the sender's wake-up. Set once at start-up. */
void dh_db_outbox_notify(void (*fn)(void));

/* Puts delivery id of webhook back in the queue, due now (its max age counts from now).
 * DH_E_NOT_FOUND when none. */
enum dh_err dh_db_webhook_redeliver(struct dh_db *db, const char *webhook, const char *id,
				    int64_t now_us);

#endif
