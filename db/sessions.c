/*
 * Firmware-update sessions in SQLite: insert, load, list, the compare-and-set state move,
 * the worker's atomic claim, payload merges, the reaper's due and stale lists, and the device
 * twin and firmware look-ups a session request needs. State rules live in core/fsm.c; this
 * file only makes each change atomic (UPDATE ... WHERE state = ?, then the changed rows),
 * guarded by the lease where a worker or a reaper of one process acts on a shared database.
 */
#include "driver.h"
#include "sql.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_COLS                                                                               \
	"s.id, s.create_time, s.creator, s.creator_id, s.state, s.finished, s.expire_us,"          \
	" s.delivery_procedure_id, s.product_id, s.model_id, s.channel_id, s.device_ref,"          \
	" s.device_name, s.current_firmware_id, s.current_version, s.target_firmware_id,"          \
	" s.target_version, f.sha256, f.size, s.allow_draft, s.needs_confirm, s.ready_timeout,"    \
	" s.processing_timeout, s.confirm_timeout, s.retention, s.base_url, s.attempts, f.draft,"  \
	" s.steps, s.payload, s.error, s.history, s.link_hash, s.delivered_bytes,"                 \
	" s.delivered_covered FROM sessions s LEFT JOIN firmware f ON f.id = s.target_firmware_id"

/* Where the columns after the scalars begin: JSON columns in SESSION_COLS, then the extras. */
#define COL_EXTRAS_FULL     32
#define COL_EXTRAS_DOWNLOAD 29

/* The columns of dh_db_session_get_download and dh_db_session_links. */
#define DOWNLOAD_COLS                                                                              \
	"s.id, s.create_time, s.creator, s.creator_id, s.state, s.finished,"                       \
	" s.expire_us, s.delivery_procedure_id, s.product_id, s.model_id, s.channel_id,"           \
	" s.device_ref, s.device_name, s.current_firmware_id, s.current_version,"                  \
	" s.target_firmware_id, s.target_version, f.sha256, f.size, s.allow_draft,"                \
	" s.needs_confirm, s.ready_timeout, s.processing_timeout, s.confirm_timeout,"              \
	" s.retention, s.base_url, s.attempts, f.draft, f.create_time, s.link_hash,"               \
	" s.delivered_bytes, s.delivered_covered"

void dh_db_session_release(struct dh_session *s)
{
	json_decref(s->steps);
	json_decref(s->payload);
	json_decref(s->error);
	json_decref(s->history);
	memset(s, 0, sizeof(*s));
}

static json_t *col_json(struct dh_stmt *st, int i, json_t *(*fallback)(void))
{
	const char *t = dh_stmt_col_text(st, i);
	json_t *v = t ? json_loads(t, JSON_DECODE_ANY, NULL) : NULL;

	if (!v && fallback)
		v = fallback();
	return v;
}

/* The scalar columns 0-27 of SESSION_COLS (or of a query with the same first columns). */
static void row_scalars(struct dh_stmt *st, struct dh_session *s)
{
	char state[32];

	dh_stmt_col_copy(st, 0, s->id, sizeof(s->id));
	dh_stmt_col_copy(st, 1, s->create_time, sizeof(s->create_time));
	dh_stmt_col_copy(st, 2, s->creator, sizeof(s->creator));
	dh_stmt_col_copy(st, 3, s->creator_id, sizeof(s->creator_id));
	dh_stmt_col_copy(st, 4, state, sizeof(state));
	s->state = dh_state_parse(state);
	s->finished = dh_stmt_col_int(st, 5) != 0;
	s->expire_us = dh_stmt_col_int(st, 6);
	dh_stmt_col_copy(st, 7, s->procedure, sizeof(s->procedure));
	dh_stmt_col_copy(st, 8, s->product, sizeof(s->product));
	dh_stmt_col_copy(st, 9, s->model, sizeof(s->model));
	dh_stmt_col_copy(st, 10, s->channel, sizeof(s->channel));
	dh_stmt_col_copy(st, 11, s->device, sizeof(s->device));
	dh_stmt_col_copy(st, 12, s->device_name, sizeof(s->device_name));
	dh_stmt_col_copy(st, 13, s->current_fw, sizeof(s->current_fw));
	dh_stmt_col_copy(st, 14, s->current_version, sizeof(s->current_version));
	dh_stmt_col_copy(st, 15, s->target_fw, sizeof(s->target_fw));
	dh_stmt_col_copy(st, 16, s->target_version, sizeof(s->target_version));
	dh_stmt_col_copy(st, 17, s->target_sha256, sizeof(s->target_sha256));
	s->target_size = dh_stmt_col_int(st, 18);
	s->allow_draft = dh_stmt_col_int(st, 19) != 0;
	s->needs_confirm = dh_stmt_col_int(st, 20) != 0;
	for (int i = 0; i < 4; i++)
		s->timeouts[i] = dh_stmt_col_int(st, 21 + i);
	dh_stmt_col_copy(st, 25, s->base_url, sizeof(s->base_url));
	s->attempts = (int)dh_stmt_col_int(st, 26);
	s->target_is_draft = dh_stmt_col_int(st, 27) != 0;
}

/* link_hash, delivered_bytes, delivered_covered from column i on. */
static void row_extras(struct dh_stmt *st, int i, struct dh_session *s)
{
	dh_stmt_col_copy(st, i, s->link_hash, sizeof(s->link_hash));
	s->delivered_bytes = dh_stmt_col_int(st, i + 1);
	s->delivered_covered = dh_stmt_col_int(st, i + 2);
}

static void row_to_session(struct dh_stmt *st, struct dh_session *s)
{
	row_scalars(st, s);
	row_extras(st, COL_EXTRAS_FULL, s);
	s->steps = col_json(st, 28, json_array);
	s->payload = col_json(st, 29, json_object);
	s->error = col_json(st, 30, NULL);
	s->history = col_json(st, 31, json_array);
}

enum dh_err dh_db_session_insert(struct dh_db *db, const struct dh_session *s, struct dh_error *err)
{
	static const char sql[] =
		"INSERT INTO sessions (id, create_time, update_time, creator, creator_id, state,"
		" finished, expire_us, delivery_procedure_id, product_id, model_id, channel_id,"
		" device_ref, device_name, current_firmware_id, current_version, target_firmware_id,"
		" target_version, allow_draft, steps, needs_confirm, ready_timeout,"
		" processing_timeout, confirm_timeout, retention, payload, history)"
		" VALUES (?1, ?2, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
		" ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, '{}', ?24)";
	struct dh_stmt *st = dh_db_prep(db, sql);
	char *steps = NULL, history[128];
	int n;

	if (!st)
		return dh_error_set(err, DH_E_DB, NULL);
	steps = json_dumps(s->steps ? s->steps : json_array(), JSON_COMPACT);
	if (!steps)
		return dh_error_set(err, DH_E_NOMEM, NULL);
	/* state names and times are plain ASCII: no escaping needed */
	n = snprintf(history, sizeof(history), "[{\"state\":\"%s\",\"time\":\"%s\"}]",
		     dh_state_name(s->state), s->create_time);
	if (n < 0 || (size_t)n >= sizeof(history)) {
		free(steps);
		return dh_error_set(err, DH_E_INTERNAL, NULL);
	}
	dh_stmt_text(st, 1, s->id);
	dh_stmt_text(st, 2, s->create_time);
	dh_stmt_text(st, 3, s->creator);
	dh_stmt_text_opt(st, 4, s->creator_id);
	dh_stmt_text(st, 5, dh_state_name(s->state));
	if (s->expire_us)
		dh_stmt_int(st, 6, s->expire_us);
	dh_stmt_text(st, 7, s->procedure);
	dh_stmt_text(st, 8, s->product);
	dh_stmt_text(st, 9, s->model);
	dh_stmt_text_opt(st, 10, s->channel);
	dh_stmt_text_opt(st, 11, s->device);
	dh_stmt_text_opt(st, 12, s->device_name);
	dh_stmt_text_opt(st, 13, s->current_fw);
	dh_stmt_text_opt(st, 14, s->current_version);
	dh_stmt_text_opt(st, 15, s->target_fw);
	dh_stmt_text_opt(st, 16, s->target_version);
	dh_stmt_int(st, 17, s->allow_draft);
	dh_stmt_text_take(st, 18, steps);
	dh_stmt_int(st, 19, s->needs_confirm);
	for (int i = 0; i < 4; i++)
		dh_stmt_int(st, 20 + i, s->timeouts[i]);
	dh_stmt_text(st, 24, history);
	return dh_stmt_run(st, err);
}

/* Reads one session row (SESSION_COLS) by id; DH_E_NOT_FOUND when none. */
static enum dh_err get_one(struct dh_stmt *st, const char *id, struct dh_session *s,
			   bool scalars_only, char image_time[DH_TIME_LEN])
{
	enum dh_err rc = DH_E_NOT_FOUND;
	int r;

	dh_stmt_text(st, 1, id);
	r = dh_stmt_step(st);
	if (r > 0) {
		if (scalars_only) {
			row_scalars(st, s);
			dh_stmt_col_copy(st, 28, image_time, DH_TIME_LEN);
			row_extras(st, COL_EXTRAS_DOWNLOAD, s);
		} else {
			row_to_session(st, s);
		}
		rc = DH_OK;
	} else if (r < 0) {
		rc = dh_stmt_error(st, NULL);
	}
	dh_stmt_reset(st);
	return rc;
}

enum dh_err dh_db_session_get(struct dh_db *db, const char *id, struct dh_session *s)
{
	static const char sql[] = "SELECT " SESSION_COLS " WHERE s.id = ?1";
	struct dh_stmt *st = dh_db_prep(db, sql);

	return st ? get_one(st, id, s, false, NULL) : DH_E_DB;
}

enum dh_err dh_db_session_get_download(struct dh_db *db, const char *id, struct dh_session *s,
				       char image_time[DH_TIME_LEN])
{
	/* SESSION_COLS' scalar columns, then the image's create_time: no JSON to parse */
	static const char sql[] = "SELECT " DOWNLOAD_COLS " FROM sessions s LEFT JOIN firmware f"
				  " ON f.id = s.target_firmware_id WHERE s.id = ?1";
	struct dh_stmt *st = dh_db_prep(db, sql);

	return st ? get_one(st, id, s, true, image_time) : DH_E_DB;
}

static enum dh_err twin_state(struct dh_db *db, const char *id, const char *state, bool to_target)
{
	static const char sql[] = "UPDATE devices SET last_state = ?2 WHERE last_session_id = ?1"
				  " AND id = (SELECT device_ref FROM sessions WHERE id = ?1)";
	static const char sql_target[] =
		"UPDATE devices SET current_firmware_id = s.target_firmware_id,"
		" current_firmware_version = s.target_version FROM (SELECT device_ref,"
		" target_firmware_id, target_version FROM sessions WHERE id = ?1) AS s"
		" WHERE devices.id = s.device_ref AND s.target_firmware_id IS NOT NULL";
	struct dh_stmt *st = dh_db_prep(db, sql);
	enum dh_err rc;

	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, id);
	dh_stmt_text(st, 2, state);
	rc = dh_stmt_run(st, NULL);
	if (rc != DH_OK || !to_target)
		return rc;
	st = dh_db_prep(db, sql_target);
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, id);
	return dh_stmt_run(st, NULL);
}

struct move_args {
	const char *id;
	const struct dh_session_move *m;
	bool *won;
};

static enum dh_err move_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	/* ?10: only while this owner holds the lease; ?11: only once that lease ended;
	 * ?12: only once the timeout is due. Two reapers or a reaper and a worker racing for
	 * one session: exactly one update matches. */
	static const char lite[] =
		"UPDATE sessions SET state = ?3, finished = ?4, expire_us = ?5,"
		" error = coalesce(?6, error), base_url = coalesce(?7, base_url), update_time = ?8,"
		" history = CASE WHEN ?3 = ?2 THEN history"
		" ELSE json_insert(history, '$[#]', json_object('state', ?3, 'time', ?8)) END,"
		" lease_owner = CASE WHEN ?3 = 'processing' THEN lease_owner ELSE NULL END,"
		" lease_until = CASE WHEN ?3 = 'processing' THEN lease_until ELSE NULL END,"
		" queue_us = CASE WHEN ?3 = 'queued' THEN ?9 ELSE queue_us END"
		" WHERE id = ?1 AND state = ?2 AND finished = 0 AND (?10 IS NULL OR lease_owner = ?10)"
		" AND (?11 = 0 OR coalesce(lease_until, 0) <= ?11)"
		" AND (?12 = 0 OR coalesce(expire_us, 0) <= ?12)";
	static const char pg[] =
		"UPDATE sessions SET state = ?3::text, finished = ?4, expire_us = ?5::bigint,"
		" error = coalesce(?6::text, error), base_url = coalesce(?7::text, base_url),"
		" update_time = ?8::text,"
		" history = CASE WHEN ?3::text = ?2::text THEN history"
		" ELSE (history::jsonb || jsonb_build_array(jsonb_build_object('state', ?3::text,"
		" 'time', ?8::text)))::text END,"
		" lease_owner = CASE WHEN ?3::text = 'processing' THEN lease_owner ELSE NULL END,"
		" lease_until = CASE WHEN ?3::text = 'processing' THEN lease_until ELSE NULL END,"
		" queue_us = CASE WHEN ?3::text = 'queued' THEN ?9::bigint ELSE queue_us END"
		" WHERE id = ?1 AND state = ?2::text AND finished = 0"
		" AND (?10::text IS NULL OR lease_owner = ?10::text)"
		" AND (?11::bigint = 0 OR coalesce(lease_until, 0) <= ?11::bigint)"
		" AND (?12::bigint = 0 OR coalesce(expire_us, 0) <= ?12::bigint)";
	struct move_args *a = cls;
	const struct dh_session_move *m = a->m;
	const struct dh_fsm_row *row = m->row;
	struct dh_stmt *st;
	char now[DH_TIME_LEN], *error = NULL;
	int64_t now_us = dh_now_us();
	enum dh_err rc;
	int r;

	(void)err;
	*a->won = false;
	st = dh_db_prep(db, dh_db_sql(db, lite, pg));
	if (!st)
		return DH_E_DB;
	dh_time_format(now_us, now);
	if (m->error && !(error = json_dumps(m->error, JSON_COMPACT)))
		return DH_E_NOMEM;
	dh_stmt_text(st, 1, a->id);
	dh_stmt_text(st, 2, dh_state_name(row->from));
	dh_stmt_text(st, 3, dh_state_name(row->to));
	dh_stmt_int(st, 4, row->finishes);
	if (m->expire_us && !row->finishes)
		dh_stmt_int(st, 5, m->expire_us);
	else
		dh_stmt_null(st, 5);
	dh_stmt_text_take(st, 6, error);
	dh_stmt_text(st, 7, m->base_url);
	dh_stmt_text(st, 8, now);
	dh_stmt_int(st, 9, now_us);
	dh_stmt_text(st, 10, m->lease_owner);
	dh_stmt_int(st, 11, m->lease_owner && m->lease_ended ? now_us : 0);
	dh_stmt_int(st, 12, m->due_by);
	r = dh_stmt_step(st);
	rc = r < 0 ? dh_stmt_error(st, NULL) : DH_OK;
	if (rc == DH_OK && dh_stmt_changes(st) != 1) {
		dh_stmt_reset(st);
		return DH_OK; /* another call moved it first */
	}
	dh_stmt_reset(st);
	if (rc != DH_OK)
		return rc;
	rc = twin_state(db, a->id, dh_state_name(row->to), m->twin_runs_target);
	*a->won = rc == DH_OK;
	return rc;
}

enum dh_err dh_db_session_move(struct dh_db *db, const char *id, const struct dh_session_move *m,
			       bool *won)
{
	struct move_args a = { id, m, won };
	enum dh_err rc = dh_db_tx_run(db, move_tx, &a, NULL);

	if (rc != DH_OK)
		*won = false;
	return rc;
}

struct claim_args {
	const char *owner;
	int64_t lease_us;
	struct dh_session *s;
};

static enum dh_err claim_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	static const char lite[] =
		"UPDATE sessions SET state = 'processing', lease_owner = ?1, link_hash = NULL,"
		" payload = json_remove(payload, '$.short_link', '$.coap_link'),"
		" lease_until = ?2 + ?4,"
		" expire_us = ?2 + processing_timeout * 1000000, attempts = attempts + 1,"
		" update_time = ?3,"
		" history = json_insert(history, '$[#]', json_object('state', 'processing', 'time', ?3))"
		" WHERE id = (SELECT id FROM sessions WHERE state = 'queued' AND finished = 0"
		" ORDER BY queue_us, id LIMIT 1) AND state = 'queued' AND finished = 0 RETURNING id";
	/* SKIP LOCKED: workers of several processes each take a different session at once */
	static const char pg[] =
		"UPDATE sessions SET state = 'processing', lease_owner = ?1::text, link_hash = NULL,"
		" payload = (payload::jsonb - 'short_link' - 'coap_link')::text,"
		" lease_until = ?2::bigint + ?4::bigint,"
		" expire_us = ?2::bigint + processing_timeout * 1000000, attempts = attempts + 1,"
		" update_time = ?3::text,"
		" history = (history::jsonb || jsonb_build_array(jsonb_build_object('state',"
		" 'processing', 'time', ?3::text)))::text"
		" WHERE id = (SELECT id FROM sessions WHERE state = 'queued' AND finished = 0"
		" ORDER BY queue_us, id LIMIT 1 FOR UPDATE SKIP LOCKED) AND state = 'queued'"
		" AND finished = 0 RETURNING id";
	struct claim_args *a = cls;
	struct dh_stmt *st;
	char now[DH_TIME_LEN], id[DH_UUID_LEN] = "";
	int64_t now_us = dh_now_us();
	enum dh_err rc = DH_OK;
	int r;

	(void)err;
	st = dh_db_prep(db, dh_db_sql(db, lite, pg));
	if (!st)
		return DH_E_DB;
	dh_time_format(now_us, now);
	dh_stmt_text(st, 1, a->owner);
	dh_stmt_int(st, 2, now_us);
	dh_stmt_text(st, 3, now);
	dh_stmt_int(st, 4, a->lease_us);
	while ((r = dh_stmt_step(st)) > 0)
		dh_stmt_col_copy(st, 0, id, sizeof(id));
	if (r < 0)
		rc = dh_stmt_error(st, NULL);
	dh_stmt_reset(st);
	if (rc != DH_OK)
		return rc;
	if (!*id)
		return DH_E_NOT_FOUND;
	rc = twin_state(db, id, "processing", false);
	if (rc == DH_OK) {
		dh_db_session_release(a->s);
		rc = dh_db_session_get(db, id, a->s);
	}
	return rc;
}

enum dh_err dh_db_session_claim(struct dh_db *db, const char *owner, int64_t lease_us,
				struct dh_session *s)
{
	struct claim_args a = { owner, lease_us, s };
	enum dh_err rc = dh_db_tx_run(db, claim_tx, &a, NULL);

	if (rc != DH_OK)
		dh_db_session_release(s);
	return rc;
}

/* RFC 7396: keys of patch replace those of target, nested objects merge, null removes. */
static json_t *merge_patch(json_t *target, json_t *patch)
{
	const char *k;
	json_t *v, *out;

	if (!json_is_object(patch))
		return json_deep_copy(patch);
	out = json_is_object(target) ? json_deep_copy(target) : json_object();
	json_object_foreach(patch, k, v)
	{
		if (!out)
			break;
		if (json_is_null(v)) {
			json_object_del(out, k);
		} else if (json_object_set_new(out, k, merge_patch(json_object_get(out, k), v)) !=
			   0) {
			json_decref(out);
			out = NULL;
		}
	}
	return out;
}

struct merge_args {
	const char *id;
	const char *owner;
	json_t *obj;
	json_t **payload;
};

static enum dh_err merge_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	/* FOR UPDATE: two merges of one session never lose each other's keys */
	static const char lite[] = "SELECT payload FROM sessions WHERE id = ?1 AND"
				   " state = 'processing' AND (?2 IS NULL OR lease_owner = ?2)";
	static const char pg[] = "SELECT payload FROM sessions WHERE id = ?1 AND"
				 " state = 'processing' AND (?2::text IS NULL OR lease_owner ="
				 " ?2::text) FOR UPDATE";
	static const char upd[] =
		"UPDATE sessions SET payload = ?2, update_time = ?3 WHERE id = ?1";
	struct merge_args *a = cls;
	struct dh_stmt *st = dh_db_prep(db, dh_db_sql(db, lite, pg));
	json_t *old = NULL, *merged;
	char now[DH_TIME_LEN], *text;
	enum dh_err rc = DH_E_STATE;
	int r;

	json_decref(*a->payload);
	*a->payload = NULL;
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, a->id);
	dh_stmt_text(st, 2, a->owner);
	r = dh_stmt_step(st);
	if (r > 0) {
		old = col_json(st, 0, json_object);
		rc = DH_OK;
	} else if (r < 0) {
		rc = dh_stmt_error(st, err);
	}
	dh_stmt_reset(st);
	if (rc != DH_OK)
		return rc;
	merged = merge_patch(old, a->obj);
	json_decref(old);
	text = merged ? json_dumps(merged, JSON_COMPACT) : NULL;
	st = text ? dh_db_prep(db, upd) : NULL;
	if (!st) {
		free(text);
		json_decref(merged);
		return text ? DH_E_DB : DH_E_NOMEM;
	}
	dh_time_format(dh_now_us(), now);
	dh_stmt_text(st, 1, a->id);
	dh_stmt_text_take(st, 2, text);
	dh_stmt_text(st, 3, now);
	rc = dh_stmt_run(st, err);
	if (rc == DH_OK)
		*a->payload = merged;
	else
		json_decref(merged);
	return rc;
}

enum dh_err dh_db_session_merge(struct dh_db *db, const char *id, const char *owner, json_t *obj,
				json_t **payload)
{
	json_t *out = NULL;
	struct merge_args a = { id, owner, obj, &out };
	enum dh_err rc = dh_db_tx_run(db, merge_tx, &a, NULL);

	if (payload)
		*payload = out;
	else
		json_decref(out);
	return rc;
}

static size_t due_rows(struct dh_stmt *st, struct dh_session_due *out, size_t max)
{
	size_t n = 0;
	char state[32];

	while (n < max && dh_stmt_step(st) > 0) {
		dh_stmt_col_copy(st, 0, out[n].id, sizeof(out[n].id));
		dh_stmt_col_copy(st, 1, state, sizeof(state));
		out[n].state = dh_state_parse(state);
		out[n].attempts = (int)dh_stmt_col_int(st, 2);
		dh_stmt_col_copy(st, 3, out[n].owner, sizeof(out[n].owner));
		n++;
	}
	dh_stmt_reset(st);
	return n;
}

size_t dh_db_session_due(struct dh_db *db, int64_t now_us, struct dh_session_due *out, size_t max)
{
	/* the partial index sessions_expire answers this without a table scan */
	static const char lite[] =
		"SELECT id, state, attempts, lease_owner FROM sessions INDEXED BY sessions_expire"
		" WHERE finished = 0 AND expire_us <= ?1 ORDER BY expire_us LIMIT ?2";
	static const char pg[] =
		"SELECT id, state, attempts, lease_owner FROM sessions"
		" WHERE finished = 0 AND expire_us <= ?1 ORDER BY expire_us LIMIT ?2";
	struct dh_stmt *st = dh_db_prep(db, dh_db_sql(db, lite, pg));

	if (!st)
		return 0;
	dh_stmt_int(st, 1, now_us);
	dh_stmt_int(st, 2, (int64_t)max);
	return due_rows(st, out, max);
}

size_t dh_db_session_stale(struct dh_db *db, const char *owner, int64_t now_us,
			   struct dh_session_due *out, size_t max)
{
	static const char sql[] =
		"SELECT id, state, attempts, lease_owner FROM sessions WHERE state = 'processing'"
		" AND finished = 0 AND coalesce(lease_owner, '') != ?1"
		" AND coalesce(lease_until, 0) <= ?2 ORDER BY queue_us LIMIT ?3";
	struct dh_stmt *st = dh_db_prep(db, sql);

	if (!st)
		return 0;
	dh_stmt_text(st, 1, owner);
	dh_stmt_int(st, 2, now_us);
	dh_stmt_int(st, 3, (int64_t)max);
	return due_rows(st, out, max);
}

struct renew_args {
	const char *owner;
	int64_t until_us;
	char (*ids)[DH_UUID_LEN];
	size_t max, n;
};

static enum dh_err renew_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	static const char sql[] = "UPDATE sessions SET lease_until = ?2 WHERE lease_owner = ?1"
				  " AND state = 'processing' AND finished = 0 RETURNING id";
	struct renew_args *a = cls;
	struct dh_stmt *st = dh_db_prep(db, sql);
	enum dh_err rc = DH_OK;
	int r;

	a->n = 0;
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, a->owner);
	dh_stmt_int(st, 2, a->until_us);
	while ((r = dh_stmt_step(st)) > 0) {
		if (a->n < a->max)
			dh_stmt_col_copy(st, 0, a->ids[a->n++], DH_UUID_LEN);
	}
	if (r < 0)
		rc = dh_stmt_error(st, err);
	dh_stmt_reset(st);
	return rc;
}

enum dh_err dh_db_session_renew(struct dh_db *db, const char *owner, int64_t until_us,
				char (*ids)[DH_UUID_LEN], size_t max, size_t *n)
{
	struct renew_args a = { owner, until_us, ids, max, 0 };
	enum dh_err rc = dh_db_tx_run(db, renew_tx, &a, NULL);

	*n = rc == DH_OK ? a.n : 0;
	return rc;
}

static enum dh_err release_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	static const char lite[] = "UPDATE sessions SET lease_until = 0,"
				   " attempts = max(attempts - 1, 0)"
				   " WHERE state = 'processing' AND lease_owner = ?1";
	static const char pg[] = "UPDATE sessions SET lease_until = 0,"
				 " attempts = greatest(attempts - 1, 0)"
				 " WHERE state = 'processing' AND lease_owner = ?1";
	struct dh_stmt *st = dh_db_prep(db, dh_db_sql(db, lite, pg));

	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, cls);
	return dh_stmt_run(st, err);
}

void dh_db_session_release_leases(struct dh_db *db, const char *owner)
{
	struct dh_error err = { 0 };

	if (dh_db_tx_run(db, release_tx, (void *)owner, &err) != DH_OK)
		dh_warn("session.lease", "what=release detail=\"%s\"", dh_error_detail(&err));
	dh_error_release(&err);
}

/* How a session meets a grant; a session whose target is a draft is restricted. */
static const struct dh_db_scope_cols session_cols = {
	.product = "s.product_id = ?",
	.model = "s.model_id = ?",
	.channel = "s.channel_id = ?",
	.restricted = "coalesce(s.target_firmware_id, '') IN (SELECT id FROM firmware WHERE"
		      " draft <> 0)",
};

/* Appends the WHERE of a session list (filters and visibility) to q. */
static void session_where(struct dh_sql *q, const struct dh_session_filter *f)
{
	dh_sql_add(q, " WHERE ");
	if (f->state) {
		dh_sql_add(q, "s.state = ");
		dh_sql_text(q, f->state);
		dh_sql_add(q, " AND ");
	}
	if (f->device) {
		dh_sql_add(q, "(s.device_ref = ");
		dh_sql_text(q, f->device);
		dh_sql_add(q, " OR s.device_name = ");
		dh_sql_text(q, f->device);
		dh_sql_add(q, ") AND ");
	}
	if (f->model) {
		dh_sql_add(q, "s.model_id = ");
		dh_sql_text(q, f->model);
		dh_sql_add(q, " AND ");
	}
	if (f->finished >= 0)
		dh_sql_add(q, f->finished ? "s.finished = 1 AND " : "s.finished = 0 AND ");
	dh_sql_visibility(q, f->vis, &session_cols);
}

enum dh_err dh_db_session_list(struct dh_db *db, const struct dh_session_filter *f, int64_t limit,
			       int64_t offset, struct dh_session **out, size_t *n, int64_t *count)
{
	struct dh_session *arr = NULL;
	size_t cap = 0, k = 0;
	enum dh_err rc = DH_OK;
	struct dh_sql q;
	char tail[160];
	int r;

	*out = NULL;
	*n = 0;
	*count = 0;
	r = snprintf(tail, sizeof(tail),
		     " ORDER BY s.create_time DESC, s.id DESC LIMIT %lld OFFSET %lld)"
		     " ORDER BY s.create_time DESC, s.id DESC",
		     (long long)limit, (long long)offset);
	if (r < 0 || (size_t)r >= sizeof(tail))
		return DH_E_INTERNAL;
	for (int pass = 0; pass < 2; pass++) {
		struct dh_stmt *st;
		dh_sql_init(&q);
		/* the page's ids are chosen first, sorting only (create_time, id) pairs, so that
		 * memory stays small whatever plan the database picks and however deep the page */
		dh_sql_add(&q, pass ? "SELECT " SESSION_COLS " WHERE s.id IN (SELECT s.id FROM"
				      " sessions s"
				    : "SELECT count(*) FROM sessions s");
		session_where(&q, f);
		if (pass)
			dh_sql_add(&q, tail);
		st = dh_sql_prepare(db, &q);
		dh_sql_release(&q);
		if (!st) {
			rc = DH_E_DB;
			break;
		}
		if (pass == 0) {
			if ((r = dh_stmt_step(st)) > 0)
				*count = dh_stmt_col_int(st, 0);
			else
				rc = dh_stmt_error(st, NULL);
			dh_stmt_free(st);
			if (rc != DH_OK)
				break;
			continue;
		}
		while ((r = dh_stmt_step(st)) > 0) {
			if (k == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				struct dh_session *na = realloc(arr, ncap * sizeof(*arr));
				if (!na) {
					rc = DH_E_NOMEM;
					break;
				}
				arr = na;
				cap = ncap;
			}
			memset(&arr[k], 0, sizeof(arr[k]));
			row_to_session(st, &arr[k]);
			k++;
		}
		if (rc == DH_OK && r < 0)
			rc = dh_stmt_error(st, NULL);
		dh_stmt_free(st);
	}
	if (rc != DH_OK) {
		for (size_t i = 0; i < k; i++)
			dh_db_session_release(&arr[i]);
		free(arr);
		return rc;
	}
	*out = arr;
	*n = k;
	return DH_OK;
}

enum dh_err dh_db_device_upsert(struct dh_db *db, const char *model_id, const char *device_id,
				const char *channel_id, const char *version, const char *fw_id,
				char ref[DH_UUID_LEN], struct dh_error *err)
{
	static const char sql[] =
		"INSERT INTO devices (id, device_id, model_id, channel_id, current_firmware_id,"
		" current_firmware_version, last_seen, create_time)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT (model_id, device_id) DO UPDATE"
		" SET channel_id = coalesce(excluded.channel_id, devices.channel_id),"
		" current_firmware_id = excluded.current_firmware_id,"
		" current_firmware_version = coalesce(excluded.current_firmware_version,"
		" devices.current_firmware_version), last_seen = excluded.last_seen RETURNING id";
	struct dh_stmt *st = dh_db_prep(db, sql);
	char id[DH_UUID_LEN], now[DH_TIME_LEN];
	enum dh_err rc = DH_OK;
	int r;

	if (!st)
		return dh_error_set(err, DH_E_DB, NULL);
	dh_uuid_new(id);
	dh_time_format(dh_now_us(), now);
	dh_stmt_text(st, 1, id);
	dh_stmt_text(st, 2, device_id);
	dh_stmt_text(st, 3, model_id);
	dh_stmt_text_opt(st, 4, channel_id);
	dh_stmt_text_opt(st, 5, fw_id);
	dh_stmt_text_opt(st, 6, version);
	dh_stmt_text(st, 7, now);
	while ((r = dh_stmt_step(st)) > 0)
		dh_stmt_col_copy(st, 0, ref, DH_UUID_LEN);
	if (r < 0)
		rc = dh_stmt_error(st, err);
	dh_stmt_reset(st);
	return rc;
}

enum dh_err dh_db_device_set_session(struct dh_db *db, const char *ref, const char *session_id,
				     const char *state)
{
	static const char sql[] =
		"UPDATE devices SET last_session_id = ?2, last_state = ?3 WHERE id = ?1";
	struct dh_stmt *st = dh_db_prep(db, sql);

	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, ref);
	dh_stmt_text(st, 2, session_id);
	dh_stmt_text(st, 3, state);
	return dh_stmt_run(st, NULL);
}

enum dh_err dh_db_firmware_by_version(struct dh_db *db, const char *model_id, const char *version,
				      char id[DH_UUID_LEN], bool *is_draft)
{
	static const char sql[] =
		"SELECT id, draft FROM firmware WHERE model_id = ?1 AND version = ?2";
	struct dh_stmt *st = dh_db_prep(db, sql);
	enum dh_err rc = DH_E_NOT_FOUND;
	int r;

	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, model_id);
	dh_stmt_text(st, 2, version);
	r = dh_stmt_step(st);
	if (r > 0) {
		dh_stmt_col_copy(st, 0, id, DH_UUID_LEN);
		if (is_draft)
			*is_draft = dh_stmt_col_int(st, 1) != 0;
		rc = DH_OK;
	} else if (r < 0) {
		rc = dh_stmt_error(st, NULL);
	}
	dh_stmt_reset(st);
	return rc;
}

enum dh_err dh_db_firmware_target(struct dh_db *db, const char *model_id, const char *channel_id,
				  const char *current_key, bool drafts, char id[DH_UUID_LEN],
				  char version[DH_SEMVER_MAX])
{
	/* walks firmware_precedence from the top; the channel is checked per row by its key */
	static const char sql[] =
		"SELECT f.id, f.version FROM firmware f JOIN firmware_channels fc"
		" ON fc.firmware_id = f.id AND fc.channel_id = ?2"
		" WHERE f.model_id = ?1 AND f.version_key > ?3 AND (f.draft = 0 OR ?4 = 1)"
		" ORDER BY f.version_key DESC, f.create_time, f.id LIMIT 1";
	struct dh_stmt *st = dh_db_prep(db, sql);
	enum dh_err rc = DH_OK;
	int r;

	id[0] = 0;
	version[0] = 0;
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, model_id);
	dh_stmt_text(st, 2, channel_id);
	dh_stmt_text(st, 3, current_key);
	dh_stmt_int(st, 4, drafts);
	r = dh_stmt_step(st);
	if (r > 0) {
		dh_stmt_col_copy(st, 0, id, DH_UUID_LEN);
		dh_stmt_col_copy(st, 1, version, DH_SEMVER_MAX);
	} else if (r < 0) {
		rc = dh_stmt_error(st, NULL);
	}
	dh_stmt_reset(st);
	return rc;
}

enum dh_err dh_db_session_counts(struct dh_db *db, int64_t counts[DH_ST__COUNT])
{
	/* GROUP BY state walks the (state, queue_us) index, not the table */
	static const char sql[] = "SELECT state, count(*) FROM sessions GROUP BY state";
	struct dh_stmt *st = dh_db_prep(db, sql);
	enum dh_err rc = DH_OK;
	int r;

	for (int i = 0; i < DH_ST__COUNT; i++)
		counts[i] = 0;
	if (!st)
		return DH_E_DB;
	while ((r = dh_stmt_step(st)) > 0) {
		const char *name = dh_stmt_col_text(st, 0);
		enum dh_state state = dh_state_parse(name ? name : "");
		if ((unsigned)state < DH_ST__COUNT)
			counts[state] = dh_stmt_col_int(st, 1);
	}
	if (r < 0)
		rc = dh_stmt_error(st, NULL);
	dh_stmt_reset(st);
	return rc;
}

struct link_args {
	const char *id;
	const char *hash_hex;
};

static enum dh_err set_link_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	static const char sql[] = "UPDATE sessions SET link_hash = ?2 WHERE id = ?1"
				  " AND state = 'processing' AND finished = 0";
	struct link_args *a = cls;
	struct dh_stmt *st = dh_db_prep(db, sql);
	enum dh_err rc = DH_OK;

	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, a->id);
	dh_stmt_text(st, 2, a->hash_hex);
	if (dh_stmt_step(st) < 0)
		rc = dh_stmt_error(st, err);
	else if (dh_stmt_changes(st) != 1)
		rc = DH_E_STATE;
	dh_stmt_reset(st);
	return rc;
}

enum dh_err dh_db_session_set_link(struct dh_db *db, const char *id, const char *hash_hex)
{
	struct link_args a = { id, hash_hex };

	return dh_db_tx_run(db, set_link_tx, &a, NULL);
}

enum dh_err dh_db_session_links(struct dh_db *db,
				void (*fn)(void *cls, const struct dh_session *s,
					   const char *image_time),
				void *cls)
{
	static const char sql[] = "SELECT " DOWNLOAD_COLS " FROM sessions s JOIN firmware f"
				  " ON f.id = s.target_firmware_id WHERE s.link_hash IS NOT NULL"
				  " AND s.state IN ('processing', 'created') AND s.finished = 0";
	struct dh_stmt *st = dh_db_prep(db, sql);
	char image_time[DH_TIME_LEN];
	enum dh_err rc = DH_OK;
	int r;

	if (!st)
		return DH_E_DB;
	while ((r = dh_stmt_step(st)) > 0) {
		struct dh_session s = { 0 };
		row_scalars(st, &s);
		dh_stmt_col_copy(st, 28, image_time, sizeof(image_time));
		row_extras(st, COL_EXTRAS_DOWNLOAD, &s);
		fn(cls, &s, image_time);
	}
	if (r < 0)
		rc = dh_stmt_error(st, NULL);
	dh_stmt_reset(st);
	return rc;
}

enum dh_err dh_db_session_method_kind(struct dh_db *db, const char *id, char *kind, size_t size)
{
	static const char sql[] = "SELECT m.kind FROM sessions s JOIN delivery_procedures p"
				  " ON p.id = s.delivery_procedure_id JOIN delivery_methods m"
				  " ON m.id = p.delivery_method_id WHERE s.id = ?1";
	struct dh_stmt *st = dh_db_prep(db, sql);
	enum dh_err rc = DH_E_NOT_FOUND;
	int r;

	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, id);
	r = dh_stmt_step(st);
	if (r > 0) {
		dh_stmt_col_copy(st, 0, kind, size);
		rc = DH_OK;
	} else if (r < 0) {
		rc = dh_stmt_error(st, NULL);
	}
	dh_stmt_reset(st);
	return rc;
}

enum dh_err dh_db_session_delivered_get(struct dh_db *db, const char *id, struct dh_db_delivered *d)
{
	/* FOR UPDATE on a shared database: two processes' flushers add, never overwrite */
	static const char lite[] = "SELECT s.state, f.size, s.delivered_bytes, s.delivered_covered,"
				   " s.delivered_ranges, s.product_id FROM sessions s LEFT JOIN"
				   " firmware f ON f.id = s.target_firmware_id WHERE s.id = ?1";
	static const char pg[] = "SELECT s.state, f.size, s.delivered_bytes, s.delivered_covered,"
				 " s.delivered_ranges, s.product_id FROM sessions s LEFT JOIN"
				 " firmware f ON f.id = s.target_firmware_id WHERE s.id = ?1"
				 " FOR UPDATE OF s";
	struct dh_stmt *st = dh_db_prep(db, dh_db_sql(db, lite, pg));
	enum dh_err rc = DH_E_NOT_FOUND;
	char state[32];
	int r;

	memset(d, 0, sizeof(*d));
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, id);
	r = dh_stmt_step(st);
	if (r > 0) {
		dh_stmt_col_copy(st, 0, state, sizeof(state));
		d->state = dh_state_parse(state);
		d->size = dh_stmt_col_int(st, 1);
		d->bytes = dh_stmt_col_int(st, 2);
		d->covered = dh_stmt_col_int(st, 3);
		d->ranges = dh_stmt_col_strdup(st, 4);
		dh_stmt_col_copy(st, 5, d->product, sizeof(d->product));
		if (!d->ranges)
			d->ranges = strdup("");
		rc = d->ranges ? DH_OK : DH_E_NOMEM;
	} else if (r < 0) {
		rc = dh_stmt_error(st, NULL);
	}
	dh_stmt_reset(st);
	return rc;
}

enum dh_err dh_db_session_delivered_set(struct dh_db *db, const char *id,
					const struct dh_db_delivered *d)
{
	static const char sql[] = "UPDATE sessions SET delivered_bytes = ?2,"
				  " delivered_covered = ?3, delivered_ranges = ?4 WHERE id = ?1";
	struct dh_stmt *st = dh_db_prep(db, sql);

	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, id);
	dh_stmt_int(st, 2, d->bytes);
	dh_stmt_int(st, 3, d->covered);
	dh_stmt_text(st, 4, d->ranges ? d->ranges : "");
	return dh_stmt_run(st, NULL);
}

enum dh_err dh_db_device_psk(struct dh_db *db, const char *identity, char *key, size_t size)
{
	/* the partial unique index devices_psk_identity answers this */
	static const char sql[] =
		"SELECT coap_psk FROM devices WHERE device_id = ?1 AND coap_psk IS NOT NULL";
	struct dh_stmt *st = dh_db_prep(db, sql);
	enum dh_err rc = DH_E_NOT_FOUND;
	int r;

	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, identity);
	r = dh_stmt_step(st);
	if (r > 0) {
		dh_stmt_col_copy(st, 0, key, size);
		rc = DH_OK;
	} else if (r < 0) {
		rc = dh_stmt_error(st, NULL);
	}
	dh_stmt_reset(st);
	return rc;
}

enum dh_err dh_db_session_by_link(struct dh_db *db, const char *hash_hex, struct dh_session *s,
				  char image_time[DH_TIME_LEN])
{
	/* the unique partial index sessions_link answers this in one probe */
	static const char sql[] = "SELECT " DOWNLOAD_COLS " FROM sessions s LEFT JOIN firmware f"
				  " ON f.id = s.target_firmware_id WHERE s.link_hash = ?1";
	struct dh_stmt *st = dh_db_prep(db, sql);

	return st ? get_one(st, hash_hex, s, true, image_time) : DH_E_DB;
}
