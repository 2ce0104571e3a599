/*
 * Session changes shared by the API handlers, the workers and the reaper: the JSON shape of
 * a session, and dh_session_fire, the one path by which a session changes state. It looks
 * the (state, event) pair up in the transition table of core/fsm.c, sets the new state's
 * expiration from the procedure's timeouts, applies it as a compare-and-set in the database
 * and publishes the change as an event. Owns no state of its own.
 */
#ifndef DH_PIPELINE_SESSION_H
#define DH_PIPELINE_SESSION_H

#include "core/err.h"
#include "core/fsm.h"
#include "dh_db.h"

#include <jansson.h>

/* The API object of s: id, create_time, creator, state, finished, expiration_time, ... */
json_t *dh_session_to_json(const struct dh_session *s);

/* Extra effects of a transition. */
struct dh_session_fire_opts {
	json_t *error;         /* borrowed; stored as the session's error (fail) */
	const char *base_url;  /* stored with start, for download links */
	bool twin_runs_target; /* confirm success */
};

/*
 * Moves s (as loaded; refreshed on success) by event ev. Returns DH_E_GONE when s is
 * finished, DH_E_STATE (detail names the current state) when the table has no row for the
 * pair or a racing call changed it first, database errors otherwise. err may be NULL. On
 * success publishes "session.state" and logs session.state.
 */
enum dh_err dh_session_fire(struct dh_db *db, struct dh_session *s, enum dh_fsm_event ev,
			    const struct dh_session_fire_opts *o, struct dh_error *err);

/* Publishes "session.created" with the session object. */
void dh_session_publish_created(const struct dh_session *s);

/* Publishes "session.progress" with {id, state, payload}. */
void dh_session_publish_progress(const struct dh_session *s, json_t *payload);

/* Builds {"code", "detail"} (new reference) for a session's error. */
json_t *dh_session_error(const char *code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
