/*
 * The one path by which a session changes state (see session.h), its JSON shape, and the
 * session events for the dashboard.
 */
#include "pipeline/session.h"

#include "core/events.h"
#include "core/util.h"
#include "log.h"
#include "pipeline/delivered.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

static json_t *time_or_null(int64_t us)
{
	char t[DH_TIME_LEN];

	if (!us)
		return json_null();
	dh_time_format(us, t);
	return json_string(t);
}

json_t *dh_session_to_json(const struct dh_session *s)
{
	return json_pack(
		"{s:s, s:s, s:s, s:s, s:b, s:o, s:s, s:o, s:o, s:o, s:o, s:O, s:O, s:O,"
		" s:s, s:o, s:o, s:o, s:o, s:o}",
		"id", s->id, "create_time", s->create_time, "creator", s->creator, "state",
		dh_state_name(s->state), "finished", s->finished, "expiration_time",
		time_or_null(s->finished ? 0 : s->expire_us), "delivery_procedure", s->procedure,
		"current_firmware", str_or_null(s->current_fw), "target_firmware",
		str_or_null(s->target_fw), "device", str_or_null(s->device), "device_id",
		str_or_null(s->device_name), "payload", s->payload ? s->payload : json_object(),
		"error", s->error ? s->error : json_null(), "history",
		s->history ? s->history : json_array(), "model", s->model, "channel",
		str_or_null(s->channel), "current_firmware_version",
		str_or_null(s->current_version), "target_firmware_version",
		str_or_null(s->target_version), "attempts", json_integer(s->attempts), "delivered",
		dh_delivered_to_json(s->delivered_bytes, s->delivered_covered, s->target_size));
}

static json_t *state_event(const struct dh_session *s)
{
	return json_pack("{s:s, s:s, s:b, s:O, s:o, s:o, s:s}", "id", s->id, "state",
			 dh_state_name(s->state), "finished", s->finished, "error",
			 s->error ? s->error : json_null(), "expiration_time",
			 time_or_null(s->finished ? 0 : s->expire_us), "device",
			 str_or_null(s->device), "model", s->model);
}

static void publish(const char *type, const struct dh_session *s, json_t *data)
{
	dh_events_publish(type, s->id, s->product, s->model, *s->channel ? s->channel : NULL, data);
	json_decref(data);
}

void dh_session_publish_created(const struct dh_session *s)
{
	publish("session.created", s, dh_session_to_json(s));
}

void dh_session_publish_progress(const struct dh_session *s, json_t *payload)
{
	publish("session.progress", s,
		json_pack("{s:s, s:s, s:O}", "id", s->id, "state", dh_state_name(s->state),
			  "payload", payload ? payload : json_object()));
}

json_t *dh_session_error(const char *code, const char *fmt, ...)
{
	char detail[DH_ERR_DETAIL_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return json_pack("{s:s, s:s}", "code", code, "detail", detail);
}

/* The error of a call that the current state does not allow. */
static enum dh_err not_now(struct dh_error *err, const struct dh_session *s, enum dh_fsm_event ev)
{
	if (s->finished)
		return dh_error_set(err, DH_E_GONE,
				    "The session is finished (state '%s'); nothing more can be done"
				    " with it.",
				    dh_state_name(s->state));
	return dh_error_set(err, DH_E_STATE,
			    "The session is in state '%s', where '%s' is not allowed.",
			    dh_state_name(s->state), dh_event_name(ev));
}

enum dh_err dh_session_fire(struct dh_db *db, struct dh_session *s, enum dh_fsm_event ev,
			    const struct dh_session_fire_opts *o, struct dh_error *err)
{
	static const struct dh_session_fire_opts none = { 0 };
	const struct dh_fsm_row *row;
	struct dh_session_move m = { 0 };
	enum dh_state from = s->state;
	char id[DH_UUID_LEN];
	bool won = false;
	enum dh_err rc;

	if (!o)
		o = &none;
	if (s->finished)
		return not_now(err, s, ev);
	row = dh_fsm_find(s->state, ev);
	if (!row)
		return not_now(err, s, ev);
	/* what was sent so far is written with the change, so a restart keeps it */
	dh_delivered_flush(db, s->id);
	m.row = row;
	m.error = o->error;
	m.base_url = o->base_url;
	m.twin_runs_target = o->twin_runs_target;
	if (!row->finishes)
		m.expire_us = dh_now_us() + s->timeouts[dh_fsm_timeout(row->to)] * 1000000LL;
	rc = dh_db_session_move(db, s->id, &m, &won);
	if (rc != DH_OK)
		return dh_error_set(err, rc, NULL);
	/* reload either way: a loser reports the state the winner left */
	snprintf(id, sizeof(id), "%s", s->id);
	dh_db_session_release(s);
	rc = dh_db_session_get(db, id, s);
	if (rc != DH_OK)
		return dh_error_set(err, rc, NULL);
	if (!won)
		return not_now(err, s, ev);
	dh_info("session.state", "id=%s from=%s to=%s event=%s%s", s->id, dh_state_name(from),
		dh_state_name(s->state), dh_event_name(ev), s->finished ? " finished=true" : "");
	publish("session.state", s, state_event(s));
	return DH_OK;
}
