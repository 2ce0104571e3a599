/*
 * The one path by which a session changes state (see session.h), its JSON shape, and the
 * session events for the dashboard.
 */
#include "pipeline/session.h"

#include "blob.h"
#include "core/text.h"
#include "core/util.h"
#include "log.h"
#include "pipeline/delivered.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
		"{s:s, s:s, s:s, s:s, s:b, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:O, s:O,"
		" s:s, s:o, s:o, s:o, s:o, s:o}",
		"id", s->id, "create_time", s->create_time, "creator", s->creator, "state",
		dh_state_name(s->state), "finished", s->finished, "expiration_time",
		time_or_null(s->finished ? 0 : s->expire_us), "delivery_procedure", s->procedure,
		"current_firmware", str_or_null(s->current_fw), "target_firmware",
		str_or_null(s->target_fw), "device", str_or_null(s->device), "device_id",
		str_or_null(s->device_name), "payload",
		dh_session_payload_view(s, s->payload, true), "error",
		s->error ? s->error : json_null(), "history",
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

/* Emits an event of s with data (taken) in db's running transaction, or now. */
static enum dh_err emit(struct dh_db *db, const char *type, const struct dh_session *s,
			json_t *data)
{
	/* a session whose target is a draft is for readers who may have drafts */
	enum dh_err rc =
		data ? dh_db_event_emit(db, s->target_is_draft ? DH_ACT_DRAFT : DH_ACT_UPDATE, type,
					s->id, s->product, s->model,
					*s->channel ? s->channel : NULL, data)
		     : DH_E_NOMEM;

	json_decref(data);
	return rc;
}

/*
 * Events keep the payload as stored, links as their prefixes: the outbox, the events table
 * and the bus hold no token. The reader's copy gets it when it is sent
 * (dh_session_event_view), from the id and the run the event names.
 */
enum dh_err dh_session_emit_created(struct dh_db *db, const struct dh_session *s)
{
	json_t *data = dh_session_to_json(s);

	if (data && json_object_set_new(data, "payload",
					json_is_object(s->payload) ? json_deep_copy(s->payload)
								   : json_object()) != 0) {
		json_decref(data);
		data = NULL;
	}
	return emit(db, "session.created", s, data);
}

enum dh_err dh_session_emit_progress(struct dh_db *db, const struct dh_session *s, json_t *payload)
{
	return emit(db, "session.progress", s,
		    json_pack("{s:s, s:s, s:I, s:o}", "id", s->id, "state", dh_state_name(s->state),
			      "attempts", (json_int_t)s->attempts, "payload",
			      json_is_object(payload) ? json_deep_copy(payload) : json_object()));
}

enum dh_err dh_session_emit_state(struct dh_db *db, const struct dh_session *s)
{
	return emit(db, "session.state", s, state_event(s));
}

json_t *dh_session_error(const char *code, const char *fmt, ...)
{
	char detail[DH_SESSION_DETAIL_MAX];
	va_list ap;

	/* the detail may carry a device's message or a program's output: any bytes */
	va_start(ap, fmt);
	dh_text_vformat(detail, sizeof(detail), fmt, ap);
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

/* Does the session's link serve downloads in its current state? (API.md: short links) */
static bool link_valid(const struct dh_session *s)
{
	return !s->finished && (s->state == DH_ST_PROCESSING || s->state == DH_ST_CREATED);
}

/* Drops s's link from the table once its state no longer allows downloads through it: any
 * link of the session, also one of an earlier run that this server learnt from another. */
static void link_follow(const struct dh_session *s)
{
	if (!link_valid(s))
		dh_links_drop_session(s->id);
}

/* The link table entry of s (scalars as loaded for a download) under hash h. */
static void link_of(const struct dh_session *s, const char *image_time,
		    const uint8_t h[DH_LINK_HASH_LEN], struct dh_link *l)
{
	memset(l, 0, sizeof(*l));
	memcpy(l->hash, h, DH_LINK_HASH_LEN);
	snprintf(l->session, sizeof(l->session), "%s", s->id);
	snprintf(l->product, sizeof(l->product), "%s", s->product);
	snprintf(l->model, sizeof(l->model), "%s", s->model);
	snprintf(l->channel, sizeof(l->channel), "%s", s->channel);
	snprintf(l->device_name, sizeof(l->device_name), "%s", s->device_name);
	snprintf(l->sha256, sizeof(l->sha256), "%s", s->target_sha256);
	l->size = s->target_size > 0 ? (uint64_t)s->target_size : 0;
	snprintf(l->image_time, sizeof(l->image_time), "%s", image_time ? image_time : "");
}

enum dh_err dh_session_link_key_setup(const char *data_dir, struct dh_error *err)
{
	uint8_t key[DH_LINK_KEY_LEN + 1];
	char path[PATH_MAX];
	ssize_t n = -1;
	int fd, k;

	k = snprintf(path, sizeof(path), "%s/" DH_LINK_KEY_FILE, data_dir);
	if (k < 0 || (size_t)k >= sizeof(path))
		return dh_error_set(err, DH_E_IO, "The data directory path is too long.");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, key, sizeof(key));
		close(fd);
		if (n != DH_LINK_KEY_LEN)
			return dh_error_set(
				err, DH_E_IO,
				"%s must hold exactly %d bytes. Restore it, or remove it"
				" to make a new key (links already given out keep"
				" working, but sessions then show them as null).",
				path, DH_LINK_KEY_LEN);
		dh_link_key_set(key);
		return DH_OK;
	}
	if (errno != ENOENT)
		return dh_error_set(err, DH_E_IO, "Cannot read %s: %s", path, strerror(errno));
	if (!dh_random(key, DH_LINK_KEY_LEN))
		return dh_error_set(err, DH_E_IO, "No random bytes for the link key.");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0) {
		n = write(fd, key, DH_LINK_KEY_LEN);
		if (fsync(fd) != 0)
			n = -1;
		close(fd);
	}
	if (n != DH_LINK_KEY_LEN) {
		if (fd >= 0)
			unlink(path);
		return dh_error_set(err, DH_E_IO, "Cannot write %s: %s", path, strerror(errno));
	}
	dh_info("links.key_created", "path=\"%s\"", path);
	dh_link_key_set(key);
	return DH_OK;
}

enum dh_err dh_session_link_issue(struct dh_db *db, const char *id, char *kind, size_t kind_size)
{
	struct dh_session s = { 0 };
	struct dh_link l;
	uint8_t h[DH_LINK_HASH_LEN], old[DH_LINK_HASH_LEN];
	char image_time[DH_TIME_LEN], hex[DH_SHA256_HEX], token[DH_LINK_TOKEN_LEN];
	bool had_old;
	enum dh_err rc;

	rc = dh_db_session_get_download(db, id, &s, image_time);
	if (rc == DH_OK)
		rc = dh_db_session_method_kind(db, id, kind, kind_size);
	if (rc != DH_OK)
		goto out;
	if (s.state != DH_ST_PROCESSING || s.finished || !*s.target_sha256) {
		rc = DH_E_STATE;
		goto out;
	}
	if (!dh_link_token(s.id, s.attempts, token)) {
		rc = DH_E_INTERNAL;
		goto out;
	}
	dh_link_hash(token, strlen(token), h);
	dh_link_hash_hex(h, hex);
	link_of(&s, image_time, h, &l);
	had_old = dh_link_hash_parse(s.link_hash, old) && memcmp(old, h, sizeof(h)) != 0;
	/*
	 * Valid in memory before the hash is stored: a state change that reloads the session
	 * after the store sees the hash and drops the link; one that comes before makes the
	 * store fail, and then the link is dropped here. Either way no stale link survives.
	 */
	rc = dh_links_put(&l);
	if (rc != DH_OK)
		goto out;
	rc = dh_db_session_set_link(db, id, hex);
	if (rc != DH_OK) {
		dh_links_drop(h);
		goto out;
	}
	if (had_old)
		dh_links_drop(old);
out:
	dh_db_session_release(&s);
	return rc;
}

/* payload (borrowed) as shown: short_link and coap_link, when they are prefixes ending in
 * DH_LINK_PREFIX_END, completed with token, or null without one (new reference). */
static json_t *links_complete(json_t *payload, const char *token)
{
	static const char *const keys[] = { "short_link", "coap_link" };
	const size_t end_len = strlen(DH_LINK_PREFIX_END);
	char url[DH_BASE_URL_MAX + DH_LINK_TOKEN_LEN + 8];
	json_t *out;

	if (!json_is_object(payload))
		return json_object();
	out = json_copy(payload);
	for (size_t i = 0; out && i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = json_string_value(json_object_get(out, keys[i]));
		size_t n = v ? strlen(v) : 0;
		int k = -1;
		if (n < end_len || strcmp(v + n - end_len, DH_LINK_PREFIX_END) != 0)
			continue;
		if (token)
			k = snprintf(url, sizeof(url), "%s%s", v, token);
		if (k > 0 && (size_t)k < sizeof(url))
			json_object_set_new(out, keys[i], json_string(url));
		else
			json_object_set_new(out, keys[i], json_null());
	}
	return out;
}

/* Does payload hold a link prefix that a view completes? */
static bool has_link_prefix(json_t *payload)
{
	static const char *const keys[] = { "short_link", "coap_link" };
	const size_t end_len = strlen(DH_LINK_PREFIX_END);

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = json_string_value(json_object_get(payload, keys[i]));
		size_t n = v ? strlen(v) : 0;
		if (n >= end_len && strcmp(v + n - end_len, DH_LINK_PREFIX_END) == 0)
			return true;
	}
	return false;
}

json_t *dh_session_payload_view(const struct dh_session *s, json_t *payload, bool verify)
{
	char token[DH_LINK_TOKEN_LEN];
	bool have_token = has_link_prefix(payload) && dh_link_token(s->id, s->attempts, token);

	if (have_token && verify) {
		uint8_t h[DH_LINK_HASH_LEN], stored[DH_LINK_HASH_LEN];
		/* shown while it serves downloads, and only under the key that issued it */
		dh_link_hash(token, strlen(token), h);
		have_token = link_valid(s) && dh_link_hash_parse(s->link_hash, stored) &&
			     dh_ct_equal(h, stored, sizeof(h));
	}
	return links_complete(payload, have_token ? token : NULL);
}

/*
 * Does the link under hash h, of session id, serve downloads now? The link table answers
 * for the links of this process's database; a database other processes share (their links
 * join the table only when presented), or a table not loaded yet, is asked too. The table
 * is not changed: a download of the link puts it there.
 */
static bool link_serves(struct dh_db *db, const char *id, const uint8_t h[DH_LINK_HASH_LEN])
{
	struct dh_session s = { 0 };
	struct dh_link l;
	char hex[DH_SHA256_HEX], image_time[DH_TIME_LEN];
	bool serves;

	if (dh_links_find(h, &l))
		return strcmp(l.session, id) == 0;
	if (!db || (dh_links_ready() && !dh_db_is_shared()))
		return false;
	dh_hex(h, DH_LINK_HASH_LEN, hex);
	serves = dh_db_session_by_link(db, hex, &s, image_time) == DH_OK && link_valid(&s) &&
		 *s.target_sha256 && strcmp(s.id, id) == 0;
	dh_db_session_release(&s);
	return serves;
}

/* Is type an event whose data carries a session's payload (and its run, "attempts")? */
static bool carries_payload(const char *type)
{
	return type &&
	       (strcmp(type, "session.created") == 0 || strcmp(type, "session.progress") == 0);
}

enum dh_err dh_session_event_view(struct dh_db *db, const char *type, json_t *data, json_t **out,
				  char token[DH_LINK_TOKEN_LEN])
{
	json_t *payload = json_object_get(data, "payload"), *run, *shown;
	const char *id = json_string_value(json_object_get(data, "id"));
	char t[DH_LINK_TOKEN_LEN];
	bool have_token = false;

	*out = NULL;
	token[0] = 0;
	if (!carries_payload(type) || !json_is_object(data) || !has_link_prefix(payload))
		return DH_OK;
	run = json_object_get(data, "attempts");
	if (id && json_is_integer(run) && json_integer_value(run) >= 0 &&
	    json_integer_value(run) <= INT_MAX &&
	    dh_link_token(id, (int)json_integer_value(run), t)) {
		uint8_t h[DH_LINK_HASH_LEN];
		dh_link_hash(t, strlen(t), h);
		have_token = link_serves(db, id, h);
	}
	shown = links_complete(payload, have_token ? t : NULL);
	*out = shown ? json_copy(data) : NULL;
	if (!*out || json_object_set_new(*out, "payload", shown) != 0) {
		if (!*out)
			json_decref(shown);
		json_decref(*out);
		*out = NULL;
		return DH_E_NOMEM;
	}
	if (have_token)
		memcpy(token, t, DH_LINK_TOKEN_LEN);
	return DH_OK;
}

/* Could text, an event's JSON, hold a link prefix? A cheap test before parsing: such a
 * string ends in DH_LINK_PREFIX_END, which JSON writes as is, followed by its quote. */
static bool may_hold_link(const char *text)
{
	return text && strstr(text, DH_LINK_PREFIX_END "\"") != NULL;
}

enum dh_err dh_session_event_text(struct dh_db *db, const char *type, const char *text, char **out,
				  char token[DH_LINK_TOKEN_LEN])
{
	json_t *data = NULL, *shown = NULL;
	enum dh_err rc = DH_OK;

	*out = NULL;
	token[0] = 0;
	if (!carries_payload(type) || !may_hold_link(text))
		return DH_OK;
	data = json_loads(text, JSON_DECODE_ANY, NULL);
	if (data)
		rc = dh_session_event_view(db, type, data, &shown, token);
	if (shown) {
		*out = json_dumps(shown, JSON_COMPACT);
		if (!*out)
			rc = DH_E_NOMEM;
	}
	json_decref(shown);
	json_decref(data);
	return rc;
}

enum dh_err dh_session_webhook_body(struct dh_db *db, const char *body, char **out,
				    char token[DH_LINK_TOKEN_LEN])
{
	json_t *ev = NULL, *shown = NULL;
	enum dh_err rc = DH_OK;

	*out = NULL;
	token[0] = 0;
	if (!may_hold_link(body))
		return DH_OK;
	ev = json_loads(body, 0, NULL);
	if (ev)
		rc = dh_session_event_view(db, json_string_value(json_object_get(ev, "type")),
					   json_object_get(ev, "data"), &shown, token);
	if (shown) {
		/* the envelope's members keep their order: only data's links change (set_new
		 * takes shown, also when it fails) */
		if (json_object_set_new(ev, "data", shown) == 0)
			*out = json_dumps(ev, JSON_COMPACT);
		if (!*out)
			rc = DH_E_NOMEM;
	}
	json_decref(ev);
	return rc;
}

struct load_ctx {
	size_t n;
	enum dh_err rc;
};

/* The image of a link this server did not issue: copied here in the background (a shared
 * database), so that the first block a device asks for finds it. */
static void prefetch(const struct dh_session *s)
{
	if (dh_db_is_shared() && s->target_size >= 0)
		dh_blob_fill_later(s->target_sha256, (uint64_t)s->target_size);
}

static void load_one(void *cls, const struct dh_session *s, const char *image_time)
{
	struct load_ctx *c = cls;
	uint8_t h[DH_LINK_HASH_LEN];
	struct dh_link l;

	if (!dh_link_hash_parse(s->link_hash, h) || !*s->target_sha256)
		return;
	link_of(s, image_time, h, &l);
	prefetch(s);
	if (dh_links_put(&l) == DH_OK)
		c->n++;
	else
		c->rc = DH_E_NOMEM;
}

enum dh_err dh_session_link_lookup(struct dh_db *db, const uint8_t hash[DH_LINK_HASH_LEN],
				   struct dh_link *l)
{
	struct dh_session s = { 0 };
	char hex[DH_SHA256_HEX], image_time[DH_TIME_LEN];
	enum dh_err rc;

	dh_hex(hash, DH_LINK_HASH_LEN, hex);
	rc = dh_db_session_by_link(db, hex, &s, image_time);
	if (rc == DH_OK && (!link_valid(&s) || !*s.target_sha256))
		rc = DH_E_NOT_FOUND;
	if (rc == DH_OK) {
		link_of(&s, image_time, hash, l);
		rc = dh_links_put(l);
		if (rc == DH_OK)
			dh_links_find(hash, l); /* the table's copy, with its ETag */
	}
	dh_db_session_release(&s);
	return rc;
}

void dh_session_link_recheck(struct dh_db *db, const char *id)
{
	struct dh_session s = { 0 };
	char image_time[DH_TIME_LEN];
	uint8_t h[DH_LINK_HASH_LEN];
	struct dh_link l;

	if (dh_db_session_get_download(db, id, &s, image_time) == DH_OK) {
		/* a link another server issued is served here too: CoAP looks nowhere else */
		if (link_valid(&s) && *s.target_sha256 && dh_link_hash_parse(s.link_hash, h)) {
			link_of(&s, image_time, h, &l);
			dh_links_put(&l);
			prefetch(&s);
		} else {
			link_follow(&s);
		}
	}
	dh_db_session_release(&s);
}

enum dh_err dh_session_links_load(struct dh_db *db)
{
	struct load_ctx c = { 0, DH_OK };
	enum dh_err rc = dh_db_session_links(db, load_one, &c);

	if (rc == DH_OK)
		rc = c.rc;
	dh_info("links.loaded", "links=%zu", c.n);
	if (rc == DH_OK)
		dh_links_set_ready(true);
	return rc;
}

struct fire {
	struct dh_session *s;
	const struct dh_session_move *m;
	bool won;
};

/* The move, the reload and the event, in one transaction (or the caller's). */
static enum dh_err fire_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct fire *f = cls;
	char id[DH_UUID_LEN];
	enum dh_err rc;

	(void)err;
	rc = dh_db_session_move(db, f->s->id, f->m, &f->won);
	if (rc != DH_OK)
		return rc;
	/* reload either way: a loser reports the state the winner left */
	snprintf(id, sizeof(id), "%s", f->s->id);
	dh_db_session_release(f->s);
	rc = dh_db_session_get(db, id, f->s);
	if (rc == DH_OK && f->won)
		rc = dh_session_emit_state(db, f->s);
	return rc;
}

enum dh_err dh_session_fire(struct dh_db *db, struct dh_session *s, enum dh_fsm_event ev,
			    const struct dh_session_fire_opts *o, struct dh_error *err)
{
	static const struct dh_session_fire_opts none = { 0 };
	const struct dh_fsm_row *row;
	struct dh_session_move m = { 0 };
	struct fire f = { .s = s, .m = &m };
	enum dh_state from = s->state;
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
	m.lease_owner = o->lease_owner;
	m.lease_ended = o->lease_ended;
	m.due_by = o->due_by;
	if (!row->finishes)
		m.expire_us = dh_now_us() + s->timeouts[dh_fsm_timeout(row->to)] * 1000000LL;
	rc = dh_db_tx_run(db, fire_tx, &f, NULL);
	if (rc != DH_OK)
		return dh_error_set(err, rc, NULL);
	if (!f.won)
		return not_now(err, s, ev);
	link_follow(s);
	dh_info("session.state", "id=%s from=%s to=%s event=%s finished=%s", s->id,
		dh_state_name(from), dh_state_name(s->state), dh_event_name(ev),
		s->finished ? "true" : "false");
	return DH_OK;
}
