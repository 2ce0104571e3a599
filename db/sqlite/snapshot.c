/*
 * Snapshots of a SQLite database for backup and restore (see db/snapshot.h): the online
 * backup API inside one read transaction of a connection of its own, never the server's
 * per-thread ones. Only reads the live database: a server may be running on it.
 */
#include "sqlite/sqlite_snapshot.h"

#include "blob.h"
#include "driver.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long a snapshot waits on a lock of the live database (a checkpoint in progress). */
#define SNAPSHOT_BUSY_TIMEOUT_MS 10000

static enum dh_err sql_fail(sqlite3 *h, const char *what, const char *path, struct dh_error *err)
{
	return dh_error_set(err, DH_E_DB, "%s %s: %s", what, path,
			    h ? sqlite3_errmsg(h) : "out of memory");
}

/* Calls fn for each distinct image hash of the database on h, in the current transaction. */
static enum dh_err each_blob(sqlite3 *h, const char *path, dh_db_blob_fn fn, void *cls,
			     int64_t *count, struct dh_error *err)
{
	sqlite3_stmt *st = NULL;
	enum dh_err rc = DH_OK;
	int s;

	*count = 0;
	if (sqlite3_prepare_v2(h, "SELECT DISTINCT sha256 FROM firmware ORDER BY sha256", -1, &st,
			       NULL) != SQLITE_OK)
		return sql_fail(h, "Cannot list the images of", path, err);
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *sha = (const char *)sqlite3_column_text(st, 0);
		if (!dh_blob_sha_valid(sha)) {
			rc = dh_error_set(
				err, DH_E_DB,
				"Database %s names an image '%.80s' that is not a SHA-256", path,
				sha ? sha : "");
			goto out;
		}
		(*count)++;
		if (fn && !fn(cls, sha, err)) {
			rc = err && err->code != DH_OK ? err->code : DH_E_IO;
			goto out;
		}
	}
	if (s != SQLITE_DONE)
		rc = sql_fail(h, "Cannot list the images of", path, err);
out:
	sqlite3_finalize(st);
	return rc;
}

/* Highest applied migration of the database on h, or -1 (err filled). */
static int schema_version(sqlite3 *h, const char *path, struct dh_error *err)
{
	sqlite3_stmt *st = NULL;
	int v = -1;

	if (sqlite3_prepare_v2(h, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1,
			       &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	else
		sql_fail(h, "Not a Device Hub database:", path, err);
	sqlite3_finalize(st);
	return v;
}

/* PRAGMA quick_check of the database on h. */
static enum dh_err quick_check(sqlite3 *h, const char *path, struct dh_error *err)
{
	sqlite3_stmt *st = NULL;
	enum dh_err rc = DH_OK;

	if (sqlite3_prepare_v2(h, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		rc = sql_fail(h, "Cannot check", path, err);
	} else {
		const char *res = (const char *)sqlite3_column_text(st, 0);
		if (!res || strcmp(res, "ok") != 0)
			rc = dh_error_set(err, DH_E_DB, "Database %s is damaged: %.200s", path,
					  res ? res : "?");
	}
	sqlite3_finalize(st);
	return rc;
}

static int64_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

enum dh_err dh_db_sqlite_snapshot_take(const char *path, const char *dest, dh_db_blob_fn fn,
				       void *cls, struct dh_db_snapshot_info *info,
				       struct dh_error *err)
{
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *bk = NULL;
	struct dh_db_snapshot_info got = { 0 };
	struct stat st;
	enum dh_err rc = DH_OK;
	int s;

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return dh_error_set(err, DH_E_NOT_FOUND, "No database at %s", path);
	/* read only: a live server's database is never written by a backup */
	if (sqlite3_open_v2(path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		rc = sql_fail(src, "Cannot open", path, err);
		goto out;
	}
	sqlite3_busy_timeout(src, SNAPSHOT_BUSY_TIMEOUT_MS);
	/*
	 * One read transaction covers the image list and the copy: the backup API reads within
	 * a transaction its source connection already holds, so both see the same snapshot
	 * however much the server writes meanwhile (WAL keeps that snapshot's pages).
	 */
	if (sqlite3_exec(src, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		rc = sql_fail(src, "Cannot read", path, err);
		goto out;
	}
	got.schema_version = schema_version(src, path, err);
	if (got.schema_version < 0) {
		rc = DH_E_DB;
		goto out;
	}
	if ((rc = each_blob(src, path, fn, cls, &got.blobs, err)) != DH_OK)
		goto out;
	/* a new file of its own: never through a symbolic link someone put at dest */
	if (sqlite3_open_v2(dest, &dst,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW,
			    NULL) != SQLITE_OK) {
		rc = sql_fail(dst, "Cannot create", dest, err);
		goto out;
	}
	bk = sqlite3_backup_init(dst, "main", src, "main");
	if (!bk) {
		rc = sql_fail(dst, "Cannot start the copy into", dest, err);
		goto out;
	}
	s = sqlite3_backup_step(bk, -1);
	if (sqlite3_backup_finish(bk) != SQLITE_OK || s != SQLITE_DONE) {
		rc = sql_fail(dst, "Cannot copy the database into", dest, err);
		goto out;
	}
	/* the snapshot is one self-contained file: no write-ahead log beside it */
	if (sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK) {
		rc = sql_fail(dst, "Cannot finish", dest, err);
		goto out;
	}
	if ((rc = quick_check(dst, dest, err)) != DH_OK)
		goto out;
	got.bytes = file_size(dest);
out:
	if (src)
		sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(src);
	if (dst && sqlite3_close(dst) != SQLITE_OK && rc == DH_OK)
		rc = dh_error_set(err, DH_E_DB, "Cannot close %s", dest);
	if (rc != DH_OK)
		unlink(dest);
	else if (info)
		*info = got;
	return rc;
}

enum dh_err dh_db_sqlite_snapshot_check(const char *path, dh_db_blob_fn fn, void *cls,
					struct dh_db_snapshot_info *info, struct dh_error *err)
{
	const struct dh_db_driver *drv = &dh_db_sqlite_driver;
	struct dh_db_snapshot_info got = { 0 };
	sqlite3 *h = NULL;
	enum dh_err rc;
	int newest = *drv->nmigrations ? drv->migrations[*drv->nmigrations - 1].version : 0;

	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		rc = sql_fail(h, "Cannot open", path, err);
		goto out;
	}
	if ((rc = quick_check(h, path, err)) != DH_OK)
		goto out;
	got.schema_version = schema_version(h, path, err);
	if (got.schema_version < 0) {
		rc = DH_E_DB;
		goto out;
	}
	if (got.schema_version > newest) {
		rc = dh_error_set(
			err, DH_E_INVALID,
			"The backup's database has schema version %d, newer than this build's %d; restore it with a newer devicehubd",
			got.schema_version, newest);
		goto out;
	}
	if (sqlite3_exec(h, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		rc = sql_fail(h, "Cannot read", path, err);
		goto out;
	}
	rc = each_blob(h, path, fn, cls, &got.blobs, err);
	sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
	got.bytes = file_size(path);
out:
	sqlite3_close(h);
	if (rc == DH_OK && info)
		*info = got;
	return rc;
}
