/*
 * Aggregated session counts (see stats.h). Two GROUP BY queries over the sessions created
 * in the window, which the create_time index bounds; the WHERE carries the caller's grants
 * exactly as the session list does (dh_sql_visibility). create_time is RFC 3339 text in
 * UTC, so its first 13 characters are the hour and text order is time order.
 */
#include "stats.h"

#include "sql.h"

/* How a session meets a grant: the same columns as the session list (sessions.c). */
static const struct dh_db_scope_cols stats_cols = {
	.product = "s.product_id = ?",
	.model = "s.model_id = ?",
	.channel = "s.channel_id = ?",
	.restricted = "coalesce(s.target_firmware_id, '') IN (SELECT id FROM firmware WHERE"
		      " draft <> 0)",
};

static void stats_where(struct dh_sql *q, const struct dh_db_stats_filter *f)
{
	dh_sql_add(q, " WHERE s.create_time >= ");
	dh_sql_text(q, f->since);
	if (f->model) {
		dh_sql_add(q, " AND s.model_id = ");
		dh_sql_text(q, f->model);
	}
	dh_sql_add(q, " AND ");
	dh_sql_visibility(q, f->vis, &stats_cols);
}

/* Runs the query built from head, the window's WHERE and tail; each row joins *rows. */
static enum dh_err rows_of(struct dh_db *db, const struct dh_db_stats_filter *f, const char *head,
			   const char *tail, json_t **rows)
{
	struct dh_stmt *st;
	enum dh_err rc = DH_OK;
	struct dh_sql q;
	int r;

	*rows = json_array();
	if (!*rows)
		return DH_E_NOMEM;
	dh_sql_init(&q);
	dh_sql_add(&q, head);
	stats_where(&q, f);
	dh_sql_add(&q, tail);
	st = dh_sql_prepare(db, &q);
	dh_sql_release(&q);
	if (!st)
		return DH_E_DB;
	while ((r = dh_stmt_step(st)) > 0) {
		json_t *row = dh_stmt_row_json(st);
		if (!row || json_array_append_new(*rows, row) != 0) {
			rc = DH_E_NOMEM;
			break;
		}
	}
	if (rc == DH_OK && r < 0)
		rc = dh_stmt_error(st, NULL);
	dh_stmt_free(st);
	return rc;
}

enum dh_err dh_db_session_stats(struct dh_db *db, const struct dh_db_stats_filter *f,
				json_t **hours, json_t **firmware)
{
	enum dh_err rc;

	*firmware = NULL;
	rc = rows_of(db, f,
		     "SELECT substr(s.create_time, 1, 13) AS hour, s.state AS state,"
		     " count(*) AS count FROM sessions s",
		     " GROUP BY substr(s.create_time, 1, 13), s.state ORDER BY 1, 2", hours);
	if (rc == DH_OK)
		rc = rows_of(db, f,
			     "SELECT s.target_firmware_id AS firmware, fw.model_id AS model,"
			     " m.tid AS model_tid, fw.version AS version, s.state AS state,"
			     " count(*) AS count FROM sessions s"
			     " JOIN firmware fw ON fw.id = s.target_firmware_id"
			     " JOIN models m ON m.id = fw.model_id",
			     " GROUP BY s.target_firmware_id, fw.model_id, m.tid, fw.version,"
			     " fw.version_key, s.state ORDER BY fw.model_id, fw.version_key,"
			     " s.target_firmware_id, s.state",
			     firmware);
	if (rc != DH_OK) {
		json_decref(*hours);
		json_decref(*firmware);
		*hours = *firmware = NULL;
	}
	return rc;
}
