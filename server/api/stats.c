/*
 * GET /api/v1/firmware-update/stats: counts of the sessions created in the last N hours
 * (default 24) that the caller may see, per current state, per hour of creation and per
 * target firmware, for the dashboard's overview. The database does the counting
 * (db/stats.h); this file shapes the answer, with every state present in every count.
 */
#include "api/api.h"

#include "api/objects.h"
#include "core/util.h"
#include "http/req.h"
#include "stats.h"

#include <string.h>

/* The overview shows a day; a week of hourly buckets is the longest window asked for. */
#define STATS_HOURS_DEFAULT 24
#define STATS_HOURS_MAX     168
#define HOUR_US             (3600LL * 1000000LL)
/* "YYYY-MM-DDTHH": the hour of an RFC 3339 time, as db/stats.c groups by. */
#define HOUR_KEY_LEN 13

/* {"ready": 0, ...}: every state with a zero count. */
static json_t *zero_states(void)
{
	json_t *o = json_object();

	for (int s = 0; o && s < DH_ST__COUNT; s++) {
		const char *name = dh_state_name((enum dh_state)s);
		if (name && *name && json_object_set_new(o, name, json_integer(0)) != 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* Adds n to states[state] (a state the table knows; others are ignored). */
static void add_count(json_t *states, const char *state, json_int_t n)
{
	json_t *v = state ? json_object_get(states, state) : NULL;

	if (v)
		json_integer_set(v, json_integer_value(v) + n);
}

/* The answer's timeline: hours buckets from start, each {"start", "states"}. */
static json_t *timeline(int64_t start_us, unsigned hours, json_t *rows, json_t *totals)
{
	json_t *out = json_array(), *row;
	char when[DH_TIME_LEN];
	size_t i;

	for (unsigned h = 0; out && h < hours; h++) {
		json_t *states = zero_states();
		dh_time_format(start_us + (int64_t)h * HOUR_US, when);
		if (!states || json_array_append_new(out, json_pack("{s:s, s:o}", "start", when,
								    "states", states)) != 0) {
			json_decref(out);
			return NULL;
		}
	}
	json_array_foreach(rows, i, row)
	{
		const char *hour = json_string_value(json_object_get(row, "hour"));
		const char *state = json_string_value(json_object_get(row, "state"));
		json_int_t n = json_integer_value(json_object_get(row, "count"));
		for (unsigned h = 0; hour && out && h < hours; h++) {
			json_t *b = json_array_get(out, h);
			const char *start = json_string_value(json_object_get(b, "start"));
			if (start && strncmp(start, hour, HOUR_KEY_LEN) == 0) {
				add_count(json_object_get(b, "states"), state, n);
				add_count(totals, state, n);
				break;
			}
		}
	}
	return out;
}

/* The answer's firmware list: rows grouped by firmware (they come ordered by it). */
static json_t *per_firmware(json_t *rows)
{
	json_t *out = json_array(), *row, *last = NULL;
	size_t i;

	json_array_foreach(rows, i, row)
	{
		const char *fw = json_string_value(json_object_get(row, "firmware"));
		json_int_t n = json_integer_value(json_object_get(row, "count"));
		if (!out || !fw)
			continue;
		if (!last ||
		    strcmp(json_string_value(json_object_get(last, "firmware")), fw) != 0) {
			json_t *states = zero_states();
			last = states ? json_pack("{s:s, s:O, s:O, s:O, s:I, s:o}", "firmware", fw,
						  "model", json_object_get(row, "model"),
						  "model_tid", json_object_get(row, "model_tid"),
						  "version", json_object_get(row, "version"),
						  "total", (json_int_t)0, "states", states)
				      : NULL;
			if (!last || json_array_append_new(out, last) != 0) {
				json_decref(out);
				return NULL;
			}
		}
		add_count(json_object_get(last, "states"),
			  json_string_value(json_object_get(row, "state")), n);
		json_integer_set(json_object_get(last, "total"),
				 json_integer_value(json_object_get(last, "total")) + n);
	}
	return out;
}

enum dh_err dh_api_sessions_stats(struct dh_req *req)
{
	struct dh_api_visibility vis = { 0 };
	struct dh_db_stats_filter f = { 0 };
	const char *q;
	char since[DH_TIME_LEN], until[DH_TIME_LEN], model[DH_UUID_LEN] = "";
	json_t *hour_rows = NULL, *fw_rows = NULL, *totals = NULL, *line = NULL, *fws = NULL;
	json_t *body;
	int64_t now = dh_now_us(), start;
	unsigned hours = STATS_HOURS_DEFAULT;
	bool empty = false;
	uint64_t v;
	enum dh_err rc;

	q = dh_req_query(req, "hours");
	if (q) {
		if (!dh_parse_u64(q, &v) || v < 1 || v > STATS_HOURS_MAX)
			return dh_error_field(&req->err, "hours",
					      "must be an integer from 1 to 168");
		hours = (unsigned)v;
	}
	/* a model the caller names by id or tid; one that does not exist counts nothing */
	q = dh_req_query(req, "model");
	if (q) {
		if (strlen(q) > DH_TID_MAX ||
		    dh_db_obj_resolve(req->db, "models", q, true, model) != DH_OK)
			empty = true;
		f.model = model;
	}
	/* the current hour and the hours - 1 before it, whole hours in UTC */
	start = (now / HOUR_US - (int64_t)(hours - 1)) * HOUR_US;
	dh_time_format(start, since);
	dh_time_format(now, until);
	f.since = since;
	if (!empty) {
		rc = dh_api_visibility(req, 1u << DH_ACT_UPDATE, 1u << DH_ACT_DRAFT, &vis);
		if (rc != DH_OK)
			goto out;
		f.vis = dh_api_visibility_db(&vis);
		rc = dh_db_session_stats(req->db, &f, &hour_rows, &fw_rows);
		if (rc != DH_OK)
			goto out;
	}
	totals = zero_states();
	line = totals ? timeline(start, hours, hour_rows, totals) : NULL;
	fws = per_firmware(fw_rows);
	if (!totals || !line || !fws) {
		rc = DH_E_NOMEM;
		goto out;
	}
	body = json_pack("{s:s, s:s, s:i, s:O, s:O, s:O}", "since", since, "until", until, "hours",
			 (int)hours, "states", totals, "timeline", line, "firmware", fws);
	rc = body ? dh_http_reply_json(req, 200, body) : DH_E_NOMEM;
out:
	json_decref(hour_rows);
	json_decref(fw_rows);
	json_decref(totals);
	json_decref(line);
	json_decref(fws);
	dh_api_visibility_release(&vis);
	return rc;
}
