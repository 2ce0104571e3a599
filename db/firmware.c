/*
 * Firmware rows: the catalogue of uploaded images with their channels, lists with the
 * filters of API.md, and the reference checks of a delete. Rows come back as JSON objects
 * keyed by column name, with the model's product_id and a "channels" array of channel ids
 * added. The image files themselves are db/blob.c's.
 */
#include "driver.h"
#include "sql.h"

#include "core/target.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every firmware query selects the same row shape (the engines name the aggregate apart). */
#define FW_SELECT_(agg)                                                                            \
	"SELECT f.*, m.product_id AS product_id, (SELECT " agg "(fc.channel_id, ',') "             \
	"FROM firmware_channels fc WHERE fc.firmware_id = f.id) AS channel_ids "                   \
	"FROM firmware f JOIN models m ON m.id = f.model_id "
#define FW_SELECT_LITE FW_SELECT_("group_concat")
#define FW_SELECT_PG   FW_SELECT_("string_agg")

/* How an image meets a grant: its model's product, its model, one of its channels. */
static const struct dh_db_scope_cols fw_cols = {
	.product = "m.product_id = ?",
	.model = "f.model_id = ?",
	.channel = "EXISTS (SELECT 1 FROM firmware_channels g WHERE g.firmware_id = f.id AND"
		   " g.channel_id = ?)",
	.restricted = "f.draft <> 0",
};

/* The current row with channel_ids turned into a "channels" array (new reference). */
static json_t *row_json(struct dh_stmt *st)
{
	json_t *row = dh_stmt_row_json(st), *chans = json_array();
	const char *ids;

	if (!row || !chans)
		goto fail;
	ids = json_string_value(json_object_get(row, "channel_ids"));
	while (ids && *ids) {
		size_t n = strcspn(ids, ",");
		if (json_array_append_new(chans, json_stringn(ids, n)) != 0)
			goto fail;
		ids += n;
		if (*ids == ',')
			ids++;
	}
	json_object_del(row, "channel_ids");
	if (json_object_set_new(row, "channels", chans) != 0)
		goto fail_row;
	return row;
fail:
	json_decref(chans);
fail_row:
	json_decref(row);
	return NULL;
}

enum dh_err dh_db_firmware_get(struct dh_db *db, const char *key, json_t **row)
{
	static const char lite[] = FW_SELECT_LITE "WHERE f.id = ?1 OR f.tid = ?1 LIMIT 1";
	static const char pg[] = FW_SELECT_PG "WHERE f.id = ?1 OR f.tid = ?1 LIMIT 1";
	struct dh_stmt *st = dh_db_prep(db, dh_db_sql(db, lite, pg));
	enum dh_err rc = DH_E_NOT_FOUND;
	int r;

	*row = NULL;
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, key);
	r = dh_stmt_step(st);
	if (r > 0) {
		*row = row_json(st);
		rc = *row ? DH_OK : DH_E_NOMEM;
	} else if (r < 0) {
		rc = dh_stmt_error(st, NULL);
	}
	dh_stmt_reset(st);
	return rc;
}

enum dh_err dh_db_firmware_set_channels(struct dh_db *db, const char *id,
					const char *const *channels, size_t n, struct dh_error *err)
{
	struct dh_stmt *st = dh_db_prep(db, "DELETE FROM firmware_channels WHERE firmware_id = ?1");
	enum dh_err rc;

	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, id);
	rc = dh_stmt_run(st, err);
	for (size_t i = 0; rc == DH_OK && i < n; i++) {
		st = dh_db_prep(db, "INSERT INTO firmware_channels (firmware_id, channel_id)"
				    " VALUES (?1, ?2) ON CONFLICT DO NOTHING");
		if (!st)
			return DH_E_DB;
		dh_stmt_text(st, 1, id);
		dh_stmt_text(st, 2, channels[i]);
		rc = dh_stmt_run(st, err);
	}
	return rc;
}

enum dh_err dh_db_firmware_insert(struct dh_db *db, json_t *row, const char *const *channels,
				  size_t n, struct dh_error *err)
{
	const char *id = json_string_value(json_object_get(row, "id"));
	char key[DH_TARGET_KEY_MAX];
	enum dh_err rc;

	if (!id || !dh_target_key_text(json_string_value(json_object_get(row, "version")), key))
		return DH_E_INTERNAL;
	if (json_object_set_new(row, "version_key", json_string(key)) != 0)
		return DH_E_NOMEM;
	rc = dh_db_obj_insert(db, "firmware", row, err);
	if (rc == DH_OK)
		rc = dh_db_firmware_set_channels(db, id, channels, n, err);
	return rc;
}

static enum dh_err fill_keys_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct dh_stmt *sel, *upd;
	char id[DH_UUID_LEN], key[DH_TARGET_KEY_MAX];
	enum dh_err rc = DH_OK;
	int r, *n = cls;

	*n = 0;
	sel = dh_db_prep(db, "SELECT id, version FROM firmware WHERE version_key IS NULL");
	if (!sel)
		return dh_error_set(err, DH_E_DB, "Cannot read firmware versions");
	while ((r = dh_stmt_step(sel)) > 0) {
		/* a version that does not parse (none is stored so) gets the lowest key */
		const char *v = dh_stmt_col_text(sel, 1);
		dh_target_key_text(v ? v : "", key);
		dh_stmt_col_copy(sel, 0, id, sizeof(id));
		upd = dh_db_prep(db, "UPDATE firmware SET version_key = ?2 WHERE id = ?1");
		if (!upd) {
			rc = dh_error_set(err, DH_E_DB, "Cannot prepare the key update");
			break;
		}
		dh_stmt_text(upd, 1, id);
		dh_stmt_text(upd, 2, key);
		rc = dh_stmt_run(upd, err);
		if (rc != DH_OK)
			break;
		(*n)++;
	}
	if (rc == DH_OK && r < 0)
		rc = dh_stmt_error(sel, err);
	dh_stmt_reset(sel);
	return rc;
}

enum dh_err dh_db_firmware_fill_keys(struct dh_db *db, struct dh_error *err)
{
	int n = 0;
	enum dh_err rc = dh_db_tx_run(db, fill_keys_tx, &n, err);

	if (rc == DH_OK && n)
		dh_info("db.firmware_keys", "filled=%d", n);
	return rc;
}

enum dh_err dh_db_firmware_list(struct dh_db *db, const struct dh_db_firmware_filter *f,
				int64_t limit, int64_t offset, json_t **rows, int64_t *count)
{
	struct dh_stmt *st = NULL;
	enum dh_err rc = DH_OK;
	struct dh_sql q;
	char tail[160];
	int r, n;

	*rows = NULL;
	*count = 0;
	for (int pass = 0; pass < 2; pass++) {
		dh_sql_init(&q);
		/* the page's ids first, sorting (create_time, id) pairs only: the memory of a
		 * deep page stays small whatever plan the database picks */
		if (pass) {
			dh_sql_add(&q, dh_db_sql(db, FW_SELECT_LITE, FW_SELECT_PG));
			dh_sql_add(&q, "WHERE f.id IN (SELECT f.id FROM firmware f JOIN"
				       " models m ON m.id = f.model_id ");
		} else
			dh_sql_add(&q, "SELECT count(*) FROM firmware f JOIN models m ON"
				       " m.id = f.model_id ");
		dh_sql_add(&q, "WHERE ");
		if (f->model_id) {
			dh_sql_add(&q, "f.model_id = ");
			dh_sql_text(&q, f->model_id);
			dh_sql_add(&q, " AND ");
		}
		if (f->channel_id) {
			dh_sql_add(&q, "EXISTS (SELECT 1 FROM firmware_channels c WHERE"
				       " c.firmware_id = f.id AND c.channel_id = ");
			dh_sql_text(&q, f->channel_id);
			dh_sql_add(&q, ") AND ");
		}
		if (f->version) {
			dh_sql_add(&q, "f.version = ");
			dh_sql_text(&q, f->version);
			dh_sql_add(&q, " AND ");
		}
		if (f->draft >= 0)
			dh_sql_add(&q, f->draft ? "f.draft <> 0 AND " : "f.draft = 0 AND ");
		dh_sql_visibility(&q, f->vis, &fw_cols);
		if (pass) {
			n = snprintf(tail, sizeof(tail),
				     " ORDER BY f.create_time, f.id LIMIT %lld OFFSET %lld)"
				     " ORDER BY f.create_time, f.id",
				     (long long)limit, (long long)offset);
			if (n < 0 || (size_t)n >= sizeof(tail)) {
				dh_sql_release(&q);
				rc = DH_E_INTERNAL;
				goto out;
			}
			dh_sql_add(&q, tail);
			*rows = json_array();
			if (!*rows) {
				dh_sql_release(&q);
				rc = DH_E_NOMEM;
				goto out;
			}
		}
		st = dh_sql_prepare(db, &q);
		dh_sql_release(&q);
		if (!st) {
			rc = DH_E_DB;
			goto out;
		}
		while ((r = dh_stmt_step(st)) > 0) {
			if (pass == 0) {
				*count = dh_stmt_col_int(st, 0);
			} else if (json_array_append_new(*rows, row_json(st)) != 0) {
				rc = DH_E_NOMEM;
				goto out;
			}
		}
		if (r < 0) {
			rc = dh_stmt_error(st, NULL);
			goto out;
		}
		dh_stmt_free(st);
		st = NULL;
	}
out:
	dh_stmt_free(st);
	if (rc != DH_OK) {
		json_decref(*rows);
		*rows = NULL;
	}
	return rc;
}

enum dh_err dh_db_firmware_delete(struct dh_db *db, const char *id, bool *blob_unused,
				  struct dh_error *err)
{
	struct dh_stmt *st;
	char sha[DH_SHA256_HEX] = "";
	enum dh_err rc;
	bool used;
	int r;

	*blob_unused = false;
	/* a device twin's reference is ON DELETE SET NULL in SQL, yet losing what a device
	 * runs would be wrong: refuse like a foreign key would */
	st = dh_db_prep(db, "SELECT 1 FROM devices WHERE current_firmware_id = ?1 LIMIT 1");
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, id);
	r = dh_stmt_step(st);
	rc = r < 0 ? dh_stmt_error(st, err) : DH_OK;
	dh_stmt_reset(st);
	if (rc != DH_OK)
		return rc;
	if (r > 0)
		return dh_error_set(err, DH_E_REFERENCED,
				    "This firmware is the current firmware of a device.");
	/* a session on its way to it would lose its image (the key is ON DELETE SET NULL, so
	 * that finished sessions keep their history) */
	st = dh_db_prep(db, "SELECT 1 FROM sessions WHERE target_firmware_id = ?1 AND finished = 0"
			    " LIMIT 1");
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, id);
	r = dh_stmt_step(st);
	rc = r < 0 ? dh_stmt_error(st, err) : DH_OK;
	dh_stmt_reset(st);
	if (rc != DH_OK)
		return rc;
	if (r > 0)
		return dh_error_set(
			err, DH_E_REFERENCED,
			"This firmware is the target of a session that is not finished.");
	st = dh_db_prep(db, "DELETE FROM firmware WHERE id = ?1 RETURNING sha256");
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, id);
	while ((r = dh_stmt_step(st)) > 0)
		dh_stmt_col_copy(st, 0, sha, sizeof(sha));
	rc = r < 0 ? dh_stmt_error(st, err) : DH_OK;
	dh_stmt_reset(st);
	if (rc != DH_OK)
		return rc;
	if (!sha[0])
		return DH_E_NOT_FOUND;
	rc = dh_db_firmware_sha_used(db, sha, &used);
	*blob_unused = rc == DH_OK && !used;
	return rc;
}

enum dh_err dh_db_firmware_sha_used(struct dh_db *db, const char *sha256, bool *used)
{
	struct dh_stmt *st = dh_db_prep(db, "SELECT 1 FROM firmware WHERE sha256 = ?1 LIMIT 1");
	enum dh_err rc = DH_OK;
	int r;

	*used = true;
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, sha256);
	r = dh_stmt_step(st);
	if (r < 0)
		rc = dh_stmt_error(st, NULL);
	else
		*used = r > 0;
	dh_stmt_reset(st);
	return rc;
}

/* ---- images in the database (shared databases only) ---- */

/* Bytes per stored chunk: one row stays small for the server, and a fill streams. */
#define BLOB_CHUNK (1024 * 1024)

static char hexdig(unsigned v)
{
	return (char)(v < 10 ? '0' + v : 'a' + v - 10);
}

enum dh_err dh_db_blob_store(struct dh_db *db, const char *sha256, uint64_t size, const char *path,
			     struct dh_error *err)
{
	/* locks an existing row (DO UPDATE) so that a concurrent drop waits for this insert */
	static const char upsert[] =
		"INSERT INTO blobs (sha256, size, create_time) VALUES (?1, ?2, ?3)"
		" ON CONFLICT (sha256) DO UPDATE SET size = blobs.size RETURNING (xmax = 0)";
	static const char chunk[] =
		"INSERT INTO blob_chunks (sha256, idx, data) VALUES (?1, ?2, decode(?3, 'hex'))";
	struct dh_stmt *st;
	char now[DH_TIME_LEN], *hex = NULL;
	unsigned char *buf = NULL;
	bool inserted = false;
	enum dh_err rc = DH_OK;
	int fd = -1, r;

	if (!dh_db_is_pg(db))
		return DH_OK; /* SQLite: the blob store in the data dir is the truth */
	st = dh_db_prep(db, upsert);
	if (!st)
		return DH_E_DB;
	dh_time_format(dh_now_us(), now);
	dh_stmt_text(st, 1, sha256);
	dh_stmt_int(st, 2, (int64_t)size);
	dh_stmt_text(st, 3, now);
	while ((r = dh_stmt_step(st)) > 0)
		inserted = dh_stmt_col_int(st, 0) != 0;
	if (r < 0)
		rc = dh_stmt_error(st, err);
	dh_stmt_reset(st);
	if (rc != DH_OK || !inserted)
		return rc; /* stored by an earlier upload: its chunks committed with its row */
	buf = malloc(BLOB_CHUNK);
	hex = malloc(2 * BLOB_CHUNK + 1);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (!buf || !hex || fd < 0) {
		rc = dh_error_set(err, fd < 0 ? DH_E_IO : DH_E_NOMEM,
				  "Cannot read the image to store it.");
		goto out;
	}
	for (int64_t idx = 0;; idx++) {
		size_t got = 0;
		while (got < BLOB_CHUNK) {
			ssize_t n = read(fd, buf + got, BLOB_CHUNK - got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				rc = dh_error_set(err, DH_E_IO,
						  "Cannot read the image to store it.");
				goto out;
			}
			if (n == 0)
				break;
			got += (size_t)n;
		}
		if (got == 0 && idx > 0)
			break;
		for (size_t i = 0; i < got; i++) {
			hex[2 * i] = hexdig(buf[i] >> 4);
			hex[2 * i + 1] = hexdig(buf[i] & 15);
		}
		hex[2 * got] = 0;
		st = dh_db_prep(db, chunk);
		if (!st) {
			rc = DH_E_DB;
			goto out;
		}
		dh_stmt_text(st, 1, sha256);
		dh_stmt_int(st, 2, idx);
		dh_stmt_text(st, 3, hex);
		rc = dh_stmt_run(st, err);
		if (rc != DH_OK || got < BLOB_CHUNK)
			break;
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(hex);
	return rc;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

enum dh_err dh_db_blob_fetch(struct dh_db *db, const char *sha256, int fd, uint64_t *written)
{
	static const char sql[] = "SELECT encode(data, 'hex') FROM blob_chunks"
				  " WHERE sha256 = ?1 AND idx = ?2";
	enum dh_err rc = DH_OK;
	unsigned char *buf = NULL;

	*written = 0;
	if (!dh_db_is_pg(db))
		return DH_E_NOT_FOUND;
	buf = malloc(BLOB_CHUNK);
	if (!buf)
		return DH_E_NOMEM;
	for (int64_t idx = 0; rc == DH_OK; idx++) {
		struct dh_stmt *st = dh_db_prep(db, sql);
		const char *hex;
		size_t n = 0;
		int r;
		if (!st) {
			rc = DH_E_DB;
			break;
		}
		dh_stmt_text(st, 1, sha256);
		dh_stmt_int(st, 2, idx);
		r = dh_stmt_step(st);
		if (r <= 0) {
			if (r < 0)
				rc = dh_stmt_error(st, NULL);
			else if (idx == 0)
				rc = DH_E_NOT_FOUND;
			dh_stmt_reset(st);
			break;
		}
		hex = dh_stmt_col_text(st, 0);
		for (; hex && hex[2 * n] && hex[2 * n + 1] && n < BLOB_CHUNK; n++) {
			int hi = unhex(hex[2 * n]), lo = unhex(hex[2 * n + 1]);
			if (hi < 0 || lo < 0)
				break;
			buf[n] = (unsigned char)(hi << 4 | lo);
		}
		dh_stmt_reset(st);
		for (size_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, n - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				rc = DH_E_IO;
				break;
			}
			off += (size_t)w;
		}
		*written += n;
	}
	free(buf);
	return rc;
}

static enum dh_err drop_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	static const char sql[] = "DELETE FROM blobs WHERE sha256 = ?1 AND NOT EXISTS"
				  " (SELECT 1 FROM firmware WHERE sha256 = ?1)";
	struct dh_stmt *st = dh_db_prep(db, sql);

	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, cls);
	return dh_stmt_run(st, err);
}

void dh_db_blob_drop_unused(struct dh_db *db, const char *sha256)
{
	enum dh_err rc;

	if (!dh_db_is_pg(db))
		return;
	/* an upload of the same image that committed meanwhile keeps it (a foreign key) */
	rc = dh_db_tx_run(db, drop_tx, (void *)sha256, NULL);
	if (rc != DH_OK && rc != DH_E_REFERENCED)
		dh_warn("blob.drop", "sha256=%s code=%s", sha256, dh_err_name(rc));
}
