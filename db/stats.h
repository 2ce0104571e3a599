/*
 * Counts of firmware-update sessions for the dashboard's overview, computed by the database
 * (GROUP BY), never by loading sessions: per hour of creation and current state, and per
 * target firmware and outcome, over sessions created since a time, limited to what a
 * caller may see (struct dh_db_visibility, as the session list).
 */
#ifndef DH_DB_STATS_H
#define DH_DB_STATS_H

#include "dh_db.h"

/* Which sessions are counted. */
struct dh_db_stats_filter {
	const char *since;                  /* RFC 3339 UTC (+00:00): created at or after it */
	const char *model;                  /* model id, or NULL for every model */
	const struct dh_db_visibility *vis; /* NULL: every session */
};

/*
 * *hours gets a new array of {"hour": "YYYY-MM-DDTHH" (UTC), "state", "count"} rows, one per
 * hour of creation and current state that has sessions; *firmware a new array of
 * {"firmware", "model", "model_tid", "version", "state", "count"} rows, one per target firmware and
 * current state, ordered by model and version precedence (sessions without a target, i.e.
 * up_to_date, are not in it).
 */
enum dh_err dh_db_session_stats(struct dh_db *db, const struct dh_db_stats_filter *f,
				json_t **hours, json_t **firmware);

#endif
