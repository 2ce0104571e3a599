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
#include "core/links.h"
#include "dh_db.h"

#include <jansson.h>

/* The API object of s: id, create_time, creator, state, finished, expiration_time, ... */
json_t *dh_session_to_json(const struct dh_session *s);

/* Extra effects of a transition. */
struct dh_session_fire_opts {
	json_t *error;           /* borrowed; stored as the session's error (fail) */
	const char *base_url;    /* stored with start, for download links */
	bool twin_runs_target;   /* confirm success */
	const char *lease_owner; /* only while this process's lease holds (workers) ... */
	bool lease_ended;        /* ... or only once that owner's lease ended (takeover) */
	int64_t due_by;          /* only if the timeout fired by then (the reaper) */
};

/*
 * Moves s (as loaded; refreshed on success) by event ev, in one transaction with its
 * event, or inside the caller's running transaction (so that more work can join it). Returns
 * DH_E_GONE when s is finished, DH_E_STATE (detail names the current state) when the table has no
 * row for the pair or a racing call changed it first, database errors otherwise. err may be NULL.
 * On success publishes "session.state" and logs session.state.
 */
enum dh_err dh_session_fire(struct dh_db *db, struct dh_session *s, enum dh_fsm_event ev,
			    const struct dh_session_fire_opts *o, struct dh_error *err);

/*
 * Loads the link key from <data_dir>/link.key, creating the file (0600, DH_LINK_KEY_LEN
 * bytes from getrandom) when there is none, and hands it to core/links.h. DH_E_IO when
 * the file cannot be read or made, or has another size. Call once at start-up.
 */
enum dh_err dh_session_link_key_setup(const char *data_dir, struct dh_error *err);

/*
 * Issues the short link of session id's current run; the session must be processing (the
 * link step's worker). The token is valid at once in the link table (core/links.h) and its
 * hash stored with the session; a link of an earlier step stops working. kind gets the
 * kind of the session's delivery method ("http", "coap", ...). DH_E_STATE when the session
 * is no longer processing; database errors otherwise.
 *
 * The step stores only the links' prefixes in the payload ("<base>/d/"); every view of the
 * payload (dh_session_payload_view) completes them with the token, which is never stored.
 */
enum dh_err dh_session_link_issue(struct dh_db *db, const char *id, char *kind, size_t kind_size);

/* The suffix a link prefix in the payload ends with, completed by the token when shown. */
#define DH_LINK_PREFIX_END "/d/"

/*
 * The payload as shown (new reference, NULL on allocation failure): payload (borrowed)
 * with short_link and coap_link, when they are prefixes ending in DH_LINK_PREFIX_END,
 * completed with the token of s's run. With verify, only while the link serves downloads
 * (s processing or created) and s's stored link hash is that token's; otherwise they show
 * as null (the session moved on, or the link key changed since). Without verify (the worker
 * that just issued the link, whose copy of s predates the hash) unconditionally.
 */
json_t *dh_session_payload_view(const struct dh_session *s, json_t *payload, bool verify);

/*
 * Stored events hold no link token (dh_session_emit_*): these add it when an event goes out
 * to a reader allowed to see it (the event stream, a webhook's request).
 *
 * dh_session_event_view: the data (borrowed) of an event of type as that reader gets it.
 * For "session.created" and "session.progress" whose payload holds link prefixes, *out
 * gets a new reference with them completed by the token of the run the event names (data's
 * id and attempts) while that link serves downloads now (the run is the session's current
 * one, and it is processing or created), null otherwise: exactly what a session GET shows.
 * token gets the token shown ("" when none), so that a caller can keep it out of what it
 * stores (a receiver's answer). *out is NULL when data is shown as stored. db (may be NULL)
 * is asked when the link table cannot answer alone (a shared database). DH_E_NOMEM.
 *
 * dh_session_event_text does the same for data as JSON text (the event bus's), and
 * dh_session_webhook_body for a webhook request's body {"type", "time", "data"}: *out is a
 * new string (free()), or NULL when text is sent as stored.
 */
enum dh_err dh_session_event_view(struct dh_db *db, const char *type, json_t *data, json_t **out,
				  char token[DH_LINK_TOKEN_LEN]);
enum dh_err dh_session_event_text(struct dh_db *db, const char *type, const char *text, char **out,
				  char token[DH_LINK_TOKEN_LEN]);
enum dh_err dh_session_webhook_body(struct dh_db *db, const char *body, char **out,
				    char token[DH_LINK_TOKEN_LEN]);

/*
 * Finds the link whose token hashes to hash in the database (a link another process issued)
 * and adds it to the link table. DH_E_NOT_FOUND unless its session is processing or created.
 */
enum dh_err dh_session_link_lookup(struct dh_db *db, const uint8_t hash[DH_LINK_HASH_LEN],
				   struct dh_link *l);

/* Another process changed session id (its event arrived): a link it issued (the link step's
 * progress) joins the table, one it no longer serves leaves it. */
void dh_session_link_recheck(struct dh_db *db, const char *id);

/* Fills the link table from the database: every processing or created session's link. */
enum dh_err dh_session_links_load(struct dh_db *db);

/*
 * Emit "session.created" (the session object), "session.progress" ({id, state, attempts,
 * payload}) and "session.state" through dh_db_event_emit: published once db's running
 * transaction commits, at once outside one. The payload goes in as stored, links as their
 * prefixes (see dh_session_event_view).
 */
enum dh_err dh_session_emit_created(struct dh_db *db, const struct dh_session *s);
enum dh_err dh_session_emit_progress(struct dh_db *db, const struct dh_session *s, json_t *payload);
enum dh_err dh_session_emit_state(struct dh_db *db, const struct dh_session *s);

/*
 * Longest detail of a session's error, with its NUL: a device's confirm message (up to 1000
 * bytes) and a step's failure sentence (DH_STEP_ERROR_MAX and the step's name) fit whole.
 */
#define DH_SESSION_DETAIL_MAX 2048

/* Builds {"code", "detail"} (new reference) for a session's error. code must be ASCII (the
 * pipeline checks a step's); the detail is made well-formed UTF-8 whatever the arguments
 * hold and cut on a character boundary at DH_SESSION_DETAIL_MAX (core/text.h). */
json_t *dh_session_error(const char *code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
