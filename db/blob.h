/*
 * The content-addressed blob store of firmware images under <data_dir>/blobs: uploads are
 * written to blobs/tmp, hashed (SHA-256) while written, fsync'ed and renamed to
 * blobs/sha256/<2 hex>/<64 hex>, so identical images share one file and a blob never
 * changes once in place. Also a small cache of read-only mappings of blobs, keyed by hash
 * and reference counted, from which downloads are sent without copies. Knows files only;
 * which rows refer to a blob is the database's business.
 */
#ifndef DH_DB_BLOB_H
#define DH_DB_BLOB_H

#include "core/err.h"
#include "core/util.h"

#include <nettle/sha2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest blob path: data dirs are operator-chosen paths, 4 KiB is PATH_MAX on Linux. */
#define DH_BLOB_PATH_MAX 4096
/* Mappings kept in the cache (each with its descriptor); beyond it the least recently used
 * one goes (freed with its last reference). */
#define DH_BLOB_MAP_SLOTS 64

/*
 * Remembers data_dir, creates blobs/tmp and blobs/sha256 and removes temporary files left
 * by a process that died mid-upload. Call once at start-up, before any other call.
 */
enum dh_err dh_blob_setup(const char *data_dir, struct dh_error *err);

/* The path of the blob with this hash (64 lower-case hex digits). False if it does not fit
 * or sha256 is not a hash. */
bool dh_blob_path(const char *sha256, char *buf, size_t size);

/* Does the text look like a blob hash (64 lower-case hex digits)? */
bool dh_blob_sha_valid(const char *sha256);

/* An upload in progress: a temporary file and the running hash. Caller-owned storage. */
struct dh_blob_writer {
	int fd; /* -1 when closed */
	char tmp_path[DH_BLOB_PATH_MAX];
	struct sha256_ctx ctx;
	uint64_t size;
	char sha256[DH_SHA256_HEX]; /* set by dh_blob_writer_close */
	bool is_open;               /* a temporary file exists (until placed or released) */
};

/* Creates the temporary file. DH_E_IO (err says why) when it cannot. */
enum dh_err dh_blob_writer_open(struct dh_blob_writer *w, struct dh_error *err);
/* Appends len bytes and hashes them. */
enum dh_err dh_blob_writer_write(struct dh_blob_writer *w, const void *data, size_t len,
				 struct dh_error *err);
/* Flushes to disk (fsync), closes the file and fills w->sha256; the file stays temporary. */
enum dh_err dh_blob_writer_close(struct dh_blob_writer *w, struct dh_error *err);
/*
 * Moves the closed temporary file into place as blob w->sha256 (rename and a directory
 * fsync). When that blob already exists the temporary file is dropped instead (*created
 * false). Call with the blob pinned (dh_blob_pin) and outside any transaction: the row that
 * refers to it is written after, and the pin keeps a concurrent delete from removing it.
 */
enum dh_err dh_blob_writer_place(struct dh_blob_writer *w, bool *created, struct dh_error *err);
/* Closes and removes the temporary file if one is left; safe to call more than once. */
void dh_blob_writer_release(struct dh_blob_writer *w);

/*
 * Removing blobs that no row refers to any more, without a lock held across the database.
 * An upload pins its blob from before it is placed until after the transaction that records
 * it has ended; every pin and unpin moves an epoch. A remover reads the epoch, then checks in
 * the database (after its own commit) that no row refers to the blob, then calls
 * dh_blob_remove_unused: the file goes only if no upload of that blob was pinned since the
 * epoch read (an upload that ended before it had committed before the check, so the check
 * saw its row).
 */
void dh_blob_pin(const char *sha256);
void dh_blob_unpin(const char *sha256);
uint64_t dh_blob_epoch(void);
/* True when the file was removed (its cached mapping is dropped too). */
bool dh_blob_remove_unused(const char *sha256, uint64_t since_epoch);

/*
 * Makes blob sha256 (size bytes) present in this data dir: when the file is missing it is
 * fetched from the database (a shared PostgreSQL keeps every image; each process's blob
 * store is its local cache of them) into a temporary file, checked and renamed into place.
 * Two threads missing the same blob both fetch; the second rename changes nothing.
 * DH_E_IO (err filled) when it is in neither place.
 */
enum dh_err dh_blob_ensure(const char *sha256, uint64_t size, struct dh_error *err);

/*
 * A read-only mapping of a whole blob and an open descriptor of its file (for sendfile,
 * which takes an offset and so never moves the descriptor's position: any number of
 * downloads share it); both are valid until the last put.
 */
struct dh_blob_map {
	const uint8_t *data;
	uint64_t size;
	int fd;
};

/*
 * A reference to the mapping of blob sha256, which must be size bytes long; from the cache
 * or mapped now. NULL when the blob is missing or has another size (err filled: DH_E_IO).
 * Thread-safe; each get needs one dh_blob_map_put.
 */
struct dh_blob_map *dh_blob_map_get(const char *sha256, uint64_t size, struct dh_error *err);
/*
 * The same without ever touching the database, for threads that must not wait on it (the
 * CoAP thread): when the blob's file is not here, NULL with *absent true (and err filled);
 * dh_blob_fill_later brings it.
 */
struct dh_blob_map *dh_blob_map_get_local(const char *sha256, uint64_t size, bool *absent,
					  struct dh_error *err);
/* Drops a reference (cls-style signature so that it can be a release callback). */
void dh_blob_map_put(void *map);
/* Drops the cache's own reference to blob sha256 (after its file was removed). */
void dh_blob_map_forget(const char *sha256);
/* Drops every cached mapping not in use (at shutdown, and in tests). */
void dh_blob_map_clear(void);

/*
 * Fills in the background: one thread of its own copies blobs from the database
 * (dh_blob_ensure), for callers that must not wait (the CoAP thread answers 5.03 meanwhile)
 * and ahead of need (a server that learns of another's link). Started only on a shared
 * database; nothing else can fill a missing blob.
 */
/* Blobs queued, being copied, or failed a moment ago, at once; more asks hear DH_E_BUSY (a
 * CoAP device asks again a second later). One slot is a few dozen bytes. */
#define DH_BLOB_FILL_SLOTS 64
/* Seconds a failed copy is remembered: asks meanwhile hear DH_E_IO instead of starting
 * another copy of an image the database does not have. */
#define DH_BLOB_FILL_RETRY_S 10

/*
 * Asks for blob sha256 (size bytes) to be copied here; returns at once, without touching the
 * database. DH_OK: it is here, queued or being copied (look again later); DH_E_IO: its last
 * copy failed less than DH_BLOB_FILL_RETRY_S ago, or the filler is not running (a database
 * of its own: what is missing stays missing); DH_E_BUSY: DH_BLOB_FILL_SLOTS copies wait
 * already; DH_E_INVALID: not a blob hash. Thread-safe.
 */
enum dh_err dh_blob_fill_later(const char *sha256, uint64_t size);
/* Starts the filler thread (from main, after dh_blob_setup); stop ends it, after the copy
 * under way if any. */
enum dh_err dh_blob_filler_start(struct dh_error *err);
void dh_blob_filler_stop(void);

#endif
