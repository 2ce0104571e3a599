/*
 * The SQLite part of db/snapshot.h: a copy of a live database file with SQLite's online
 * backup API, and the check of such a copy. Called only by db/snapshot.c.
 */
#ifndef DH_DB_SQLITE_SQLITE_SNAPSHOT_H
#define DH_DB_SQLITE_SQLITE_SNAPSHOT_H

#include "snapshot.h"

/* Copies the database file path (read only; a server may be writing) to the new file dest,
 * calling fn for every image hash in the same read transaction. */
enum dh_err dh_db_sqlite_snapshot_take(const char *path, const char *dest, dh_db_blob_fn fn,
				       void *cls, struct dh_db_snapshot_info *info,
				       struct dh_error *err);

/* Checks the copy at path and calls fn for every image hash it refers to. */
enum dh_err dh_db_sqlite_snapshot_check(const char *path, dh_db_blob_fn fn, void *cls,
					struct dh_db_snapshot_info *info, struct dh_error *err);

#endif
