/*
 * Consistent copies of the database for backups, behind calls that name no engine: take a
 * snapshot of a live database (with the images it refers to listed from that same
 * snapshot), check a snapshot, and install a checked one as a data dir's database. For
 * SQLite (db/sqlite/snapshot.c) the snapshot is a copy made with the online backup API
 * inside one read transaction, so the server keeps running and writing while it is taken.
 * A database the build cannot snapshot (PostgreSQL: pg_dump is the tool there) is refused
 * with a detail that says so.
 */
#ifndef DH_DB_SNAPSHOT_H
#define DH_DB_SNAPSHOT_H

#include "core/err.h"

#include <stdbool.h>
#include <stdint.h>

/* Called once per distinct image hash (64 hex digits) the snapshot refers to; returning
 * false stops the call with DH_E_IO (the callback fills err). */
typedef bool (*dh_db_blob_fn)(void *cls, const char *sha256, struct dh_error *err);

/* What a snapshot holds. */
struct dh_db_snapshot_info {
	int schema_version; /* highest applied migration */
	int64_t bytes;      /* size of the snapshot file */
	int64_t blobs;      /* distinct images referenced */
};

/*
 * Writes a snapshot of the database (the server's --database: "" or "sqlite:" for data_dir's
 * SQLite file, "sqlite:PATH" that file; a PostgreSQL URL is refused, DH_E_INVALID) to the
 * new file dest.
 * While the snapshot's read transaction is open, each_blob is called for every image the
 * snapshot refers to, so that the caller can open those files before a concurrent delete
 * could remove them. Only reads the database; the server may run. On failure dest is
 * removed. info (may be NULL) is filled on success.
 */
enum dh_err dh_db_snapshot_take(const char *database, const char *data_dir, const char *dest,
				dh_db_blob_fn each_blob, void *cls,
				struct dh_db_snapshot_info *info, struct dh_error *err);

/*
 * Checks the snapshot file path: an intact database of this schema family, not migrated by
 * a newer build, then calls each_blob for every image it refers to. Read only.
 */
enum dh_err dh_db_snapshot_check(const char *path, dh_db_blob_fn each_blob, void *cls,
				 struct dh_db_snapshot_info *info, struct dh_error *err);

/*
 * Moves the checked snapshot file path into data_dir as its database (a rename: path must
 * be on the same file system). DH_E_CONFLICT when data_dir already has a database.
 */
enum dh_err dh_db_snapshot_install(const char *path, const char *data_dir, struct dh_error *err);

#endif
