/*
 * Snapshots for backup and restore (see snapshot.h): picks the engine from the database URL
 * as the server does and hands over to its part (db/sqlite/snapshot.c); a PostgreSQL
 * database is refused with the way to back it up. Installs a checked copy as a data dir's
 * database file.
 */
#include "snapshot.h"

#include "driver.h"
#include "sqlite/sqlite_snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* Longest path handled; data dirs are operator-chosen paths and PATH_MAX is 4 KiB. */
#define SNAPSHOT_PATH_MAX 4096

static enum dh_err use_pg_dump(struct dh_error *err)
{
	return dh_error_set(
		err, DH_E_INVALID,
		"The database is PostgreSQL: devicehubd backup copies only a SQLite database. Back up PostgreSQL with pg_dump (and restore with pg_restore); the images are in the database too (see the README, \"Backup and restore\")");
}

/* The SQLite file of database (a --database URL) and data_dir, or why there is none. */
static enum dh_err sqlite_file(const char *database, const char *data_dir, char *path, size_t size,
			       struct dh_error *err)
{
	const struct dh_db_driver *drv = NULL;
	enum dh_err rc;

	if (!database)
		database = "";
	rc = dh_db_url_parse(database, data_dir, &drv, path, size, err);
	if (rc == DH_OK && drv->engine == DH_DB_SQLITE)
		return DH_OK;
	/* also when this build cannot reach PostgreSQL at all: the advice is the same */
	if (rc == DH_OK || strncmp(database, "postgresql:", 11) == 0 ||
	    strncmp(database, "postgres:", 9) == 0 || strchr(database, '=')) {
		dh_error_release(err);
		return use_pg_dump(err);
	}
	return rc;
}

enum dh_err dh_db_snapshot_take(const char *database, const char *data_dir, const char *dest,
				dh_db_blob_fn fn, void *cls, struct dh_db_snapshot_info *info,
				struct dh_error *err)
{
	char path[SNAPSHOT_PATH_MAX];
	enum dh_err rc;

	if ((rc = sqlite_file(database, data_dir, path, sizeof(path), err)) != DH_OK)
		return rc;
	return dh_db_sqlite_snapshot_take(path, dest, fn, cls, info, err);
}

enum dh_err dh_db_snapshot_check(const char *path, dh_db_blob_fn fn, void *cls,
				 struct dh_db_snapshot_info *info, struct dh_error *err)
{
	return dh_db_sqlite_snapshot_check(path, fn, cls, info, err);
}

enum dh_err dh_db_snapshot_install(const char *path, const char *data_dir, struct dh_error *err)
{
	char target[SNAPSHOT_PATH_MAX];
	enum dh_err rc;
	int fd;

	if ((rc = sqlite_file("", data_dir, target, sizeof(target), err)) != DH_OK)
		return rc;
	/* link then unlink: never replaces a database that is already there */
	if (link(path, target) != 0)
		return dh_error_set(err, errno == EEXIST ? DH_E_CONFLICT : DH_E_IO,
				    "Cannot place the database at %s: %s", target, strerror(errno));
	unlink(path);
	fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		if (fd >= 0)
			close(fd);
		return dh_error_set(err, DH_E_IO, "Cannot sync %s: %s", data_dir, strerror(errno));
	}
	close(fd);
	return DH_OK;
}
