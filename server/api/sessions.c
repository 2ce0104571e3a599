/*
 * Firmware-update sessions over HTTP: request (validate, resolve references given as uuid or
 * tid, upsert the device twin, select the target, insert in one transaction), start,
 * confirm, get, list, and the session's image download. Every state change goes through
 * dh_session_fire (pipeline/session.h), so the transition table decides what is allowed;
 * handlers never wait on a step: start only queues the session and kicks the workers.
 */
#include "api/api.h"
#include "api/objects.h"
#include "core/fsm.h"
#include "core/semver.h"
#include "core/target.h"
#include "core/util.h"
#include "dh_db.h"
#include "pipeline/pipeline.h"
#include "pipeline/session.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest confirm message (bytes of UTF-8); kept whole as the detail of the session's error
 * (DH_SESSION_DETAIL_MAX holds it). */
#define DH_CONFIRM_MSG_MAX 1000
_Static_assert(DH_CONFIRM_MSG_MAX < DH_SESSION_DETAIL_MAX - 1, "a confirm message is kept whole");

/* What a request body may hold, and of which JSON type. */
enum body_kind {
	BODY_REF,
	BODY_TEXT,
	BODY_SEMVER,
	BODY_BOOL,
};

static const struct {
	const char *name;
	enum body_kind kind;
} request_keys[] = {
	{ "model", BODY_REF },
	{ "device_id", BODY_TEXT },
	{ "delivery_method", BODY_REF },
	{ "delivery_procedure_tid", BODY_REF },
	{ "delivery_procedure", BODY_REF },
	{ "current_channel", BODY_REF },
	{ "current_firmware_version", BODY_SEMVER },
	{ "allow_draft_firmware", BODY_BOOL },
	{ "target_firmware", BODY_REF },
	{ "target_firmware_version", BODY_SEMVER },
};

#define NREQUEST_KEYS (sizeof(request_keys) / sizeof(request_keys[0]))

static enum dh_err check_body(struct dh_req *req, json_t *body)
{
	const char *k;
	json_t *v;
	struct dh_semver sv;

	if (!json_is_object(body))
		return dh_error_set(&req->err, DH_E_INVALID, "The body must be a JSON object.");
	json_object_foreach(body, k, v)
	{
		size_t i;
		for (i = 0; i < NREQUEST_KEYS; i++) {
			if (strcmp(k, request_keys[i].name) == 0)
				break;
		}
		if (i == NREQUEST_KEYS) {
			dh_error_field(&req->err, k, "unknown field");
			continue;
		}
		switch (request_keys[i].kind) {
		case BODY_REF:
			if (!json_is_string(v) || !json_string_length(v) ||
			    json_string_length(v) > 64)
				dh_error_field(&req->err, k, "must be a uuid or tid");
			break;
		case BODY_TEXT:
			if (!json_is_string(v) || !json_string_length(v) ||
			    json_string_length(v) > DH_DEVICE_ID_MAX)
				dh_error_field(&req->err, k, "must be a string of 1 to 128 bytes");
			break;
		case BODY_SEMVER:
			if (!json_is_string(v) || !dh_semver_parse(json_string_value(v), &sv))
				dh_error_field(&req->err, k, "must be a SemVer 2.0 version");
			break;
		case BODY_BOOL:
			if (!json_is_boolean(v))
				dh_error_field(&req->err, k, "must be true or false");
			break;
		}
	}
	if (!json_object_get(body, "delivery_procedure_tid") &&
	    !json_object_get(body, "delivery_procedure"))
		dh_error_field(&req->err, "delivery_procedure_tid", "required");
	return req->err.code;
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* Every action a grant can hold: any grant of the caller's, whatever it allows. */
#define ANY_GRANT                                                                                  \
	((1u << DH_ACT_UPDATE) | (1u << DH_ACT_DRAFT) | (1u << DH_ACT_UPLOAD) |                    \
	 (1u << DH_ACT_MANAGE) | (1u << DH_ACT_ADMIN))

/*
 * Finds the twin of device_id: within model when given (one the caller sees), else among the
 * twins of the models the caller sees, so that another tenant's device of that name is as
 * unknown as one that does not exist. *twin NULL when there is none.
 */
static enum dh_err find_twin(struct dh_req *req, const char *model, const char *device_id,
			     json_t **twin)
{
	struct dh_api_visibility vis = { 0 };
	struct dh_db_where w[2];
	size_t nw = 0;
	json_t *rows = NULL;
	int64_t count = 0;
	enum dh_err rc;

	*twin = NULL;
	if (!model) {
		rc = dh_api_visibility(req, ANY_GRANT, 0, &vis);
		if (rc != DH_OK)
			return rc;
		/* a channel-narrowed grant sees its model's objects (dh_rights_sees) */
		for (size_t i = 0; i < vis.v.nany; i++)
			vis.grants[i].channel[0] = 0;
	}
	w[nw].column = "device_id";
	w[nw++].value = json_string(device_id);
	if (model) {
		w[nw].column = "model_id";
		w[nw++].value = json_string(model);
	}
	rc = dh_db_obj_list(req->db, "devices", w, nw, model ? NULL : dh_api_visibility_db(&vis), 2,
			    0, &rows, &count);
	for (size_t i = 0; i < nw; i++)
		json_decref(w[i].value);
	dh_api_visibility_release(&vis);
	if (rc != DH_OK)
		return rc;
	if (count > 1)
		rc = dh_error_field(&req->err, "model",
				    "required: several models have a device with this device_id");
	else if (count == 1)
		*twin = json_incref(json_array_get(rows, 0));
	json_decref(rows);
	return rc;
}

/* Picks the target among the model's firmware in the channel (core/target.h). */
static enum dh_err select_target(struct dh_req *req, struct dh_session *s, bool drafts)
{
	char key[DH_TARGET_KEY_MAX];

	if (!dh_target_key_text(s->current_version, key))
		return DH_OK; /* validated before: cannot happen */
	return dh_db_firmware_target(req->db, s->model, s->channel, key, drafts, s->target_fw,
				     s->target_version);
}

static const char *const timeout_cols[4] = {
	[DH_TO_READY] = "ready_timeout",
	[DH_TO_PROCESSING] = "processing_timeout",
	[DH_TO_CONFIRM] = "confirm_timeout",
	[DH_TO_RETENTION] = "retention",
};

/* Copies what the session needs of the procedure row. */
static enum dh_err take_procedure(struct dh_session *s, json_t *proc)
{
	const char *steps = jstr(proc, "steps");

	snprintf(s->procedure, sizeof(s->procedure), "%s", jstr(proc, "id"));
	s->needs_confirm = json_integer_value(json_object_get(proc, "confirm")) != 0;
	for (int i = 0; i < 4; i++)
		s->timeouts[i] = json_integer_value(json_object_get(proc, timeout_cols[i]));
	s->steps = steps ? json_loads(steps, 0, NULL) : json_array();
	if (!json_is_array(s->steps)) {
		json_decref(s->steps);
		s->steps = json_array();
	}
	return s->steps ? DH_OK : DH_E_NOMEM;
}

static enum dh_err resolve(struct dh_req *req, const char *field, const char *table, json_t *value,
			   char id[DH_UUID_LEN])
{
	return dh_api_resolve_ref(req, field, table, true, value, id);
}

/* The explicit target (target_firmware or target_firmware_version), when one is named. */
static enum dh_err explicit_target(struct dh_req *req, json_t *body, struct dh_session *s,
				   json_t *fw_row, bool drafts)
{
	const char *version = jstr(body, "target_firmware_version");
	bool is_draft = false;
	enum dh_err rc;

	if (fw_row) {
		if (strcmp(jstr(fw_row, "model_id"), s->model) != 0)
			return dh_error_field(&req->err, "target_firmware",
					      "belongs to another model");
		snprintf(s->target_fw, sizeof(s->target_fw), "%s", jstr(fw_row, "id"));
		snprintf(s->target_version, sizeof(s->target_version), "%s",
			 jstr(fw_row, "version"));
		is_draft = json_integer_value(json_object_get(fw_row, "draft")) != 0;
	} else {
		rc = dh_db_firmware_by_version(req->db, s->model, version, s->target_fw, &is_draft);
		if (rc == DH_E_NOT_FOUND)
			return dh_error_field(&req->err, "target_firmware_version",
					      "no firmware of this model has this version");
		if (rc != DH_OK)
			return rc;
		snprintf(s->target_version, sizeof(s->target_version), "%s", version);
	}
	if (is_draft) {
		struct dh_scope sc = { s->product, s->model, *s->channel ? s->channel : NULL };
		/* a draft is hidden from those who may not have it: as if it did not exist */
		if (!dh_rights_allow(&req->who, DH_ACT_DRAFT, &sc))
			return dh_error_field(
				&req->err, fw_row ? "target_firmware" : "target_firmware_version",
				fw_row ? "no such firmware"
				       : "no firmware of this model has this version");
		if (!drafts)
			return dh_error_field(
				&req->err, fw_row ? "target_firmware" : "target_firmware_version",
				"is a draft: set allow_draft_firmware");
	}
	/* a device already running the named target has nothing to do */
	if (*s->current_version && dh_semver_cmp_text(s->current_version, s->target_version) == 0) {
		s->target_fw[0] = 0;
		s->target_version[0] = 0;
	}
	return DH_OK;
}

/*
 * May the caller act on session s? 404 (when hide) if it cannot see the scope, 403 without
 * `update` over it. A session whose target is a draft image is for those who may have drafts
 * (the `draft` right and what implies it): hidden from the others, like the draft itself.
 */
static enum dh_err check_rights(struct dh_req *req, const struct dh_session *s, bool hide)
{
	struct dh_scope sc = { .product = s->product,
			       .model = s->model,
			       .channel = *s->channel ? s->channel : NULL };

	if (hide && !dh_rights_sees(&req->who, &sc))
		return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such session.");
	if (!dh_rights_allow(&req->who, DH_ACT_UPDATE, &sc))
		return dh_error_set(&req->err, DH_E_FORBIDDEN,
				    "Your access rights do not cover firmware updates of this"
				    " model and channel.");
	if (s->target_is_draft && !dh_rights_allow(&req->who, DH_ACT_DRAFT, &sc)) {
		if (hide)
			return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such session.");
		return dh_error_set(&req->err, DH_E_FORBIDDEN,
				    "The target is a draft image, which needs the 'draft' right.");
	}
	return DH_OK;
}

static enum dh_err reply_session(struct dh_req *req, unsigned status, const struct dh_session *s)
{
	json_t *out = dh_session_to_json(s);

	return out ? dh_http_reply_json(req, status, out) : DH_E_NOMEM;
}

/*
 * The write of a request: the twin, the session, the twin's last session, the read back
 * and the session.created event, in one transaction. s holds the session to insert and
 * gets the stored one.
 */
struct request_write {
	struct dh_session *s;     /* to insert */
	struct dh_session stored; /* as read back */
};

static enum dh_err request_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct request_write *w = cls;
	struct dh_session *s = w->s;
	enum dh_err rc;

	if (*s->device_name) {
		rc = dh_db_device_upsert(db, s->model, s->device_name,
					 *s->channel ? s->channel : NULL,
					 *s->current_version ? s->current_version : NULL,
					 *s->current_fw ? s->current_fw : NULL, s->device, err);
		if (rc != DH_OK)
			return rc;
	}
	rc = dh_db_session_insert(db, s, err);
	if (rc == DH_OK && *s->device_name)
		rc = dh_db_device_set_session(db, s->device, s->id, dh_state_name(s->state));
	if (rc != DH_OK)
		return rc;
	/* read back what was stored; a retried attempt starts again from the same input */
	dh_db_session_release(&w->stored);
	rc = dh_db_session_get(db, s->id, &w->stored);
	if (rc == DH_OK)
		rc = dh_session_emit_created(db, &w->stored);
	return rc;
}

enum dh_err dh_api_sessions_request(struct dh_req *req)
{
	json_t *body = req->json, *proc = NULL, *twin = NULL, *fw_row = NULL;
	json_t *key;
	struct dh_session s = { 0 };
	struct request_write w = { .s = &s };
	char method[DH_UUID_LEN];
	const char *device_id = jstr(body, "device_id");
	bool drafts, explicit_fw;
	enum dh_err rc;

	rc = check_body(req, body);
	if (rc != DH_OK)
		goto out;
	drafts = json_is_true(json_object_get(body, "allow_draft_firmware"));
	key = json_object_get(body, "delivery_procedure_tid");
	if (!key)
		key = json_object_get(body, "delivery_procedure");
	rc = dh_db_obj_get(req->db, "delivery_procedures", json_string_value(key), true, &proc);
	if (rc == DH_E_NOT_FOUND)
		rc = dh_error_field(&req->err,
				    json_object_get(body, "delivery_procedure_tid")
					    ? "delivery_procedure_tid"
					    : "delivery_procedure",
				    "no such delivery procedure");
	if (rc != DH_OK)
		goto out;
	if (json_object_get(body, "delivery_method")) {
		rc = resolve(req, "delivery_method", "delivery_methods",
			     json_object_get(body, "delivery_method"), method);
		if (rc == DH_OK && strcmp(method, jstr(proc, "delivery_method_id")) != 0)
			rc = dh_error_field(&req->err, "delivery_method",
					    "is not the delivery procedure's method");
		if (rc != DH_OK)
			goto out;
	}
	rc = take_procedure(&s, proc);
	if (rc != DH_OK)
		goto out;
	if (json_object_get(body, "model")) {
		rc = resolve(req, "model", "models", json_object_get(body, "model"), s.model);
		if (rc != DH_OK)
			goto out;
	}
	if (json_object_get(body, "target_firmware")) {
		rc = dh_db_obj_get(req->db, "firmware", jstr(body, "target_firmware"), true,
				   &fw_row);
		/* one beyond the caller's grants (or a draft it may not have) does not exist */
		if (rc == DH_OK && !dh_api_firmware_visible(req, jstr(fw_row, "id")))
			rc = DH_E_NOT_FOUND;
		if (rc == DH_E_NOT_FOUND)
			rc = dh_error_field(&req->err, "target_firmware", "no such firmware");
		if (rc != DH_OK)
			goto out;
		if (!*s.model)
			snprintf(s.model, sizeof(s.model), "%s", jstr(fw_row, "model_id"));
	}
	if (device_id) {
		rc = find_twin(req, *s.model ? s.model : NULL, device_id, &twin);
		if (rc != DH_OK)
			goto out;
		if (twin && !*s.model)
			snprintf(s.model, sizeof(s.model), "%s", jstr(twin, "model_id"));
	}
	if (!*s.model) {
		rc = dh_error_field(&req->err, "model",
				    "required (no known device to take it from)");
		goto out;
	}
	if (json_object_get(body, "current_channel")) {
		rc = resolve(req, "current_channel", "channels",
			     json_object_get(body, "current_channel"), s.channel);
		if (rc != DH_OK)
			goto out;
	} else if (twin && jstr(twin, "channel_id")) {
		snprintf(s.channel, sizeof(s.channel), "%s", jstr(twin, "channel_id"));
	}
	if (jstr(body, "current_firmware_version"))
		snprintf(s.current_version, sizeof(s.current_version), "%s",
			 jstr(body, "current_firmware_version"));
	else if (twin && jstr(twin, "current_firmware_version"))
		snprintf(s.current_version, sizeof(s.current_version), "%s",
			 jstr(twin, "current_firmware_version"));
	explicit_fw = fw_row || jstr(body, "target_firmware_version");
	if (!explicit_fw && !*s.channel)
		dh_error_field(&req->err, "current_channel", "required");
	if (!explicit_fw && !*s.current_version)
		dh_error_field(&req->err, "current_firmware_version", "required");
	if (req->err.code) {
		rc = req->err.code;
		goto out;
	}
	rc = dh_api_model_product(req, s.model, s.product);
	if (rc != DH_OK)
		goto out;
	rc = check_rights(req, &s, false);
	if (rc != DH_OK)
		goto out;
	if (drafts) {
		struct dh_scope sc = { s.product, s.model, *s.channel ? s.channel : NULL };
		if (!dh_rights_allow(&req->who, DH_ACT_DRAFT, &sc)) {
			rc = dh_error_set(&req->err, DH_E_FORBIDDEN,
					  "allow_draft_firmware needs the 'draft' right over this"
					  " model and channel.");
			goto out;
		}
	}
	if (*s.current_version && dh_db_firmware_by_version(req->db, s.model, s.current_version,
							    s.current_fw, NULL) != DH_OK)
		s.current_fw[0] = 0;
	rc = explicit_fw ? explicit_target(req, body, &s, fw_row, drafts)
			 : select_target(req, &s, drafts);
	if (rc != DH_OK)
		goto out;
	dh_uuid_new(s.id);
	dh_time_format(dh_now_us(), s.create_time);
	snprintf(s.creator, sizeof(s.creator), "%s", req->who.user_name);
	snprintf(s.creator_id, sizeof(s.creator_id), "%s", req->who.user_id);
	s.state = *s.target_fw ? DH_ST_READY : DH_ST_UP_TO_DATE;
	s.allow_draft = drafts;
	s.expire_us = dh_now_us() + s.timeouts[dh_fsm_timeout(s.state)] * 1000000LL;
	if (device_id)
		snprintf(s.device_name, sizeof(s.device_name), "%s", device_id);
	rc = dh_db_tx_run(req->db, request_tx, &w, &req->err);
	if (rc == DH_OK)
		rc = reply_session(req, 201, &w.stored);
	dh_db_session_release(&w.stored);
out:
	json_decref(proc);
	json_decref(twin);
	json_decref(fw_row);
	dh_db_session_release(&s);
	return rc;
}

/*
 * Per-thread cache of the two reads devices repeat most, a session's JSON and what its
 * image download needs, valid while dh_db_write_generation() is unchanged: any commit by
 * any connection of the process drops every entry. Rights are checked on every request.
 */
#define SESS_CACHE_SLOTS 16

struct sess_cached {
	unsigned long gen;   /* 0: empty */
	struct dh_session s; /* scalar members only (JSON members NULL) */
	char image_time[DH_TIME_LEN];
	char *text; /* GET: the answer */
	size_t len;
};

struct sess_cache {
	bool registered; /* for tcache_free at thread exit */
	struct sess_cached get[SESS_CACHE_SLOTS], image[SESS_CACHE_SLOTS];
};

static _Thread_local struct sess_cache tcache;
static pthread_key_t tcache_key;
static pthread_once_t tcache_once = PTHREAD_ONCE_INIT;

static void tcache_free(void *p)
{
	struct sess_cache *c = p;

	for (size_t i = 0; i < SESS_CACHE_SLOTS; i++) {
		free(c->get[i].text);
		c->get[i].text = NULL;
		c->get[i].gen = c->image[i].gen = 0;
	}
}

static void tcache_key_make(void)
{
	pthread_key_create(&tcache_key, tcache_free);
}

/* This thread's slot for session id in arr (tcache.get or tcache.image). */
static struct sess_cached *tcache_slot(struct sess_cached *arr, const char *id)
{
	size_t h = 0;

	if (!tcache.registered) {
		pthread_once(&tcache_once, tcache_key_make);
		pthread_setspecific(tcache_key, &tcache);
		tcache.registered = true;
	}
	for (const char *p = id; *p; p++)
		h = h * 31 + (unsigned char)*p;
	return &arr[h % SESS_CACHE_SLOTS];
}

static bool tcache_hit(const struct sess_cached *c, const char *id, unsigned long gen)
{
	return gen && c->gen == gen && strcmp(c->s.id, id) == 0;
}

/* Keeps s's scalars in c as read at generation gen, if nothing committed since. */
static bool tcache_put(struct sess_cached *c, const struct dh_session *s, unsigned long gen)
{
	if (!gen || gen != dh_db_write_generation())
		return false;
	c->s = *s;
	c->s.steps = c->s.payload = c->s.error = c->s.history = NULL;
	c->gen = gen;
	return true;
}

/* Loads the session of the path into s, whole or (image_time set) only what a download needs,
 * and checks the caller's rights over it. */
static enum dh_err load_as(struct dh_req *req, struct dh_session *s, char *image_time)
{
	const char *id = req->nargs ? req->args[0] : "";
	enum dh_err rc;

	if (!dh_uuid_valid(id))
		return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such session.");
	rc = image_time ? dh_db_session_get_download(req->db, id, s, image_time)
			: dh_db_session_get(req->db, id, s);
	if (rc == DH_E_NOT_FOUND)
		return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such session: '%s'.", id);
	if (rc != DH_OK)
		return rc;
	return check_rights(req, s, true);
}

static enum dh_err load(struct dh_req *req, struct dh_session *s)
{
	return load_as(req, s, NULL);
}

bool dh_api_sessions_visible(struct dh_req *req, const char *key)
{
	struct dh_session s = { 0 };
	struct dh_error kept = req->err; /* what the request found so far stays */
	bool seen = false;

	memset(&req->err, 0, sizeof(req->err));
	if (key && dh_uuid_valid(key) && dh_db_session_get(req->db, key, &s) == DH_OK)
		seen = check_rights(req, &s, true) != DH_E_NOT_FOUND;
	dh_db_session_release(&s);
	dh_error_release(&req->err);
	req->err = kept;
	return seen;
}

enum dh_err dh_api_sessions_get(struct dh_req *req)
{
	static const char ctype[] = "application/json; charset=utf-8";
	const char *id = req->nargs ? req->args[0] : "";
	unsigned long gen = dh_db_write_generation(); /* before the read */
	struct sess_cached *c = tcache_slot(tcache.get, id);
	struct dh_session s = { 0 };
	json_t *out = NULL;
	char *text = NULL;
	enum dh_err rc;

	if (tcache_hit(c, id, gen)) {
		rc = check_rights(req, &c->s, true);
		return rc == DH_OK ? dh_http_reply_text(req, 200, ctype, c->text, c->len) : rc;
	}
	rc = load(req, &s);
	if (rc != DH_OK)
		goto out;
	out = dh_session_to_json(&s);
	text = out ? json_dumps(out, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	if (!text) {
		rc = DH_E_NOMEM;
		goto out;
	}
	rc = dh_http_reply_text(req, 200, ctype, text, strlen(text));
	if (rc == DH_OK) {
		char *old = c->text;
		c->gen = 0;
		if (tcache_put(c, &s, gen)) {
			c->text = text;
			c->len = strlen(text);
			text = NULL;
		} else {
			c->text = NULL;
		}
		free(old);
	}
out:
	free(text);
	json_decref(out);
	dh_db_session_release(&s);
	return rc;
}

enum dh_err dh_api_sessions_start(struct dh_req *req)
{
	struct dh_session s = { 0 };
	struct dh_session_fire_opts o = { 0 };
	char base[DH_BASE_URL_MAX];
	enum dh_err rc = load(req, &s);

	if (rc != DH_OK)
		goto out;
	dh_req_base_url(req, base, sizeof(base));
	o.base_url = base;
	rc = dh_session_fire(req->db, &s, DH_EV_START, &o, &req->err);
	if (rc != DH_OK)
		goto out;
	dh_pipeline_kick();
	rc = reply_session(req, 200, &s);
out:
	dh_db_session_release(&s);
	return rc;
}

enum dh_err dh_api_sessions_confirm(struct dh_req *req)
{
	struct dh_session s = { 0 };
	struct dh_session_fire_opts o = { 0 };
	json_t *body = req->json, *v;
	const char *k, *msg;
	bool ok;
	enum dh_err rc;

	if (!json_is_object(body)) {
		dh_error_field(&req->err, "success", "required");
		return dh_error_set(&req->err, DH_E_INVALID,
				    "The body must be a JSON object with 'success'.");
	}
	json_object_foreach(body, k, v)
	{
		if (strcmp(k, "success") && strcmp(k, "message"))
			dh_error_field(&req->err, k, "unknown field");
	}
	v = json_object_get(body, "success");
	if (!json_is_boolean(v))
		dh_error_field(&req->err, "success", v ? "must be true or false" : "required");
	v = json_object_get(body, "message");
	if (v && (!json_is_string(v) || json_string_length(v) > DH_CONFIRM_MSG_MAX))
		dh_error_field(&req->err, "message", "must be a string of at most 1000 bytes");
	if (req->err.code)
		return req->err.code;
	rc = load(req, &s);
	if (rc != DH_OK)
		goto out;
	ok = json_is_true(json_object_get(body, "success"));
	msg = jstr(body, "message");
	if (ok)
		o.twin_runs_target = true;
	else
		o.error = dh_session_error("device_failure", "%s",
					   msg && *msg ? msg : "The device reported a failure.");
	rc = dh_session_fire(req->db, &s, ok ? DH_EV_CONFIRM_OK : DH_EV_CONFIRM_FAIL, &o,
			     &req->err);
	if (rc == DH_OK)
		rc = reply_session(req, 200, &s);
out:
	json_decref(o.error);
	dh_db_session_release(&s);
	return rc;
}

static enum dh_err list_filter(struct dh_req *req, struct dh_session_filter *f, bool *empty,
			       char model[DH_UUID_LEN])
{
	const char *q;

	f->finished = -1;
	f->state = dh_req_query(req, "state");
	if (f->state && dh_state_parse(f->state) == DH_ST_NONE)
		dh_error_field(&req->err, "state", "must be a session state, e.g. ready");
	q = dh_req_query(req, "finished");
	if (q && strcmp(q, "true") == 0)
		f->finished = 1;
	else if (q && strcmp(q, "false") == 0)
		f->finished = 0;
	else if (q)
		dh_error_field(&req->err, "finished", "must be true or false");
	/* the twin's id, or the device's own name (device_id) */
	f->device = dh_req_query(req, "device");
	q = dh_req_query(req, "model");
	if (q) {
		if (strlen(q) > 64 || dh_db_obj_resolve(req->db, "models", q, true, model) != DH_OK)
			*empty = true;
		f->model = model;
	}
	return req->err.code;
}

enum dh_err dh_api_sessions_list(struct dh_req *req)
{
	struct dh_session_filter f = { 0 };
	struct dh_api_visibility vis = { 0 };
	struct dh_session *arr = NULL;
	size_t n = 0, i;
	int64_t limit, offset, count = 0;
	char model[DH_UUID_LEN] = "";
	json_t *results = NULL;
	bool empty = false;
	enum dh_err rc;

	rc = dh_api_page(req, &limit, &offset);
	if (rc == DH_OK)
		rc = list_filter(req, &f, &empty, model);
	if (rc != DH_OK)
		return rc;
	results = json_array();
	if (!results)
		return DH_E_NOMEM;
	if (!empty) {
		/* the caller's grants go into the query: the database counts and pages */
		rc = dh_api_visibility(req, 1u << DH_ACT_UPDATE, 1u << DH_ACT_DRAFT, &vis);
		if (rc != DH_OK)
			goto out;
		f.vis = dh_api_visibility_db(&vis);
		rc = dh_db_session_list(req->db, &f, limit, offset, &arr, &n, &count);
		if (rc != DH_OK)
			goto out;
	}
	for (i = 0; i < n; i++) {
		if (json_array_append_new(results, dh_session_to_json(&arr[i])) != 0) {
			rc = DH_E_NOMEM;
			goto out;
		}
	}
	rc = dh_http_reply_json(req, 200, dh_api_list_envelope(req, count, limit, offset, results));
	results = NULL;
out:
	for (i = 0; i < n; i++)
		dh_db_session_release(&arr[i]);
	free(arr);
	dh_api_visibility_release(&vis);
	json_decref(results);
	return rc;
}

enum dh_err dh_api_sessions_image(struct dh_req *req)
{
	const char *id = req->nargs ? req->args[0] : "";
	unsigned long gen = dh_db_write_generation(); /* before the read */
	struct sess_cached *c = tcache_slot(tcache.image, id);
	struct dh_session s = { 0 };
	enum dh_err rc;

	if (tcache_hit(c, id, gen)) {
		s = c->s;
		rc = check_rights(req, &s, true);
	} else {
		c->gen = 0;
		rc = load_as(req, &s, c->image_time);
		if (rc == DH_OK)
			tcache_put(c, &s, gen);
	}
	if (rc != DH_OK)
		goto out;
	if (s.finished) {
		rc = dh_error_set(&req->err, DH_E_GONE,
				  "The session is finished; request a new one to download.");
		goto out;
	}
	if (!*s.target_fw || !*s.target_sha256 ||
	    (s.state != DH_ST_PROCESSING && s.state != DH_ST_CREATED && s.state != DH_ST_SUCCESS)) {
		rc = dh_error_set(&req->err, DH_E_STATE,
				  "The session is in state '%s'; its image can be downloaded once"
				  " it is processing, created or success.",
				  dh_state_name(s.state));
		goto out;
	}
	{
		struct dh_delivery_who who = { s.id, s.product, s.model, s.channel,
					       (uint64_t)s.target_size };
		rc = dh_api_send_blob(req, s.target_sha256, (uint64_t)s.target_size, c->image_time,
				      &who);
	}
out:
	dh_db_session_release(&s);
	return rc;
}
