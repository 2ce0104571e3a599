/*
 * Webhooks: subscriptions to events (a URL, the event types, an optional product/model scope,
 * active, a signing secret) on the CRUD engine, and their delivery log with redelivery.
 * The secret is made here and shown only in the answer that made it (create, or a patch with
 * "rotate_secret": true or a new "secret"); the database keeps the HMAC key, which signing
 * needs. Deliveries are written by the outbox (webhooks/emit.c) and sent by
 * webhooks/sender.c; this file only reads them and puts one back in the queue.
 */
#include "api/api.h"
#include "api/objects.h"

#include "config.h"
#include "core/event_types.h"
#include "core/util.h"
#include "core/webhook.h"
#include "outbound/outbound.h"
#include "webhooks/sender.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Event types one webhook may list: every type, and "*". */
#define EVENTS_MAX 32
/* Webhooks in all: each event is written once per matching webhook (db/webhooks.c). */
#define WEBHOOKS_MAX 1000
/* How long a rotated-out key still signs, next to the new one: a day to switch receivers. */
#define ROTATE_GRACE_US (24LL * 3600 * 1000000)

static enum dh_err webhook_scope(struct dh_req *req, json_t *row, struct dh_scope *s,
				 char ids[3][DH_UUID_LEN])
{
	const char *product = json_string_value(json_object_get(row, "product_id"));
	const char *model = json_string_value(json_object_get(row, "model_id"));

	(void)req;
	snprintf(ids[0], DH_UUID_LEN, "%s", product ? product : "");
	snprintf(ids[1], DH_UUID_LEN, "%s", model ? model : "");
	s->product = *ids[0] ? ids[0] : NULL;
	s->model = *ids[1] ? ids[1] : NULL;
	return DH_OK;
}

/* events: "*" or known types, no repeats; sets events_match (",a,b,") for the outbox. */
static enum dh_err check_events(struct dh_req *req, json_t *row)
{
	json_t *events = json_object_get(row, "events"), *v, *parsed = NULL;
	char match[EVENTS_MAX * (DH_EVENT_TYPE_MAX + 1) + 2], what[160];
	size_t i, o = 1;

	if (!events)
		return DH_OK; /* create without: the table's default, all events */
	if (json_is_string(events)) {
		/* a patch that leaves events alone sees the stored text */
		parsed = json_loads(json_string_value(events), 0, NULL);
		events = parsed;
	}
	match[0] = ',';
	match[1] = 0;
	if (!json_is_array(events) || json_array_size(events) == 0 ||
	    json_array_size(events) > EVENTS_MAX) {
		json_decref(parsed);
		return dh_error_field(&req->err, "events",
				      "must be a list of 1 to 32 event types, or [\"*\"]");
	}
	json_array_foreach(events, i, v)
	{
		const char *t = json_string_value(v);
		char item[DH_EVENT_TYPE_MAX + 3];
		if (!t || (strcmp(t, "*") != 0 && !dh_event_type_find(t))) {
			snprintf(what, sizeof(what), "events[%zu]: unknown event type '%.40s'", i,
				 t ? t : "(not a string)");
			json_decref(parsed);
			return dh_error_field(&req->err, "events", what);
		}
		snprintf(item, sizeof(item), ",%s,", t);
		if (strstr(match, item)) {
			snprintf(what, sizeof(what), "events[%zu]: '%s' is listed twice", i, t);
			json_decref(parsed);
			return dh_error_field(&req->err, "events", what);
		}
		o += (size_t)snprintf(match + o, sizeof(match) - o, "%s,", t);
	}
	json_decref(parsed);
	json_object_set_new(row, "events_match", json_string(match));
	return DH_OK;
}

/* Keeps a new secret for the answer of this request (shown once). */
static enum dh_err keep_secret(struct dh_req *req, const char *secret)
{
	char *copy = strdup(secret);

	if (!copy)
		return DH_E_NOMEM;
	if (req->handler_state_free)
		req->handler_state_free(req->handler_state);
	req->handler_state = copy;
	req->handler_state_free = free;
	return DH_OK;
}

/* The stored form of a secret: the base64 of the key, after "whsec_". */
static const char *stored_form(const char *secret)
{
	return secret + 6;
}

static enum dh_err set_secret(struct dh_req *req, json_t *row, bool creating)
{
	json_t *given = json_object_get(req->json, "secret"), *stored = NULL;
	/* booleans reach the hook as stored, 0 or 1 */
	bool rotate = json_integer_value(json_object_get(row, "rotate_secret")) != 0;
	char fresh[DH_WEBHOOK_SECRET_MAX];
	uint8_t key[DH_WEBHOOK_KEY_MAX];
	const char *secret, *id;
	size_t len;
	enum dh_err rc;

	if (given && rotate)
		return dh_error_field(&req->err, "rotate_secret",
				      "give either a new secret or rotate_secret, not both");
	if (given) {
		secret = json_string_value(given);
		if (!dh_webhook_secret_parse(secret, key, &len))
			return dh_error_field(&req->err, "secret",
					      "must be whsec_ and the base64 of a 24 to 64 byte"
					      " key");
	} else if (creating || rotate) {
		if (!dh_webhook_secret_new(fresh))
			return DH_E_INTERNAL;
		secret = fresh;
	} else {
		return DH_OK;
	}
	if (!creating) {
		/* the key it replaces still signs for a while, beside the new one */
		id = json_string_value(json_object_get(row, "id"));
		rc = dh_db_obj_get(req->db, "webhooks", id, false, &stored);
		if (rc != DH_OK)
			return rc;
		json_object_set(row, "previous_secret", json_object_get(stored, "secret"));
		json_object_set_new(row, "previous_until_us",
				    json_integer(dh_now_us() + ROTATE_GRACE_US));
		json_decref(stored);
	}
	if (keep_secret(req, secret) != DH_OK)
		return DH_E_NOMEM;
	json_object_set_new(row, "secret", json_string(stored_form(secret)));
	return DH_OK;
}

static enum dh_err check_webhook(struct dh_req *req, const struct dh_resource *res, json_t *row,
				 bool creating)
{
	const char *url = json_string_value(json_object_get(row, "url"));
	const char *model = json_string_value(json_object_get(row, "model_id"));
	const char *product = json_string_value(json_object_get(row, "product_id"));
	char why[DH_OUTBOUND_WHY_MAX], owner[DH_UUID_LEN];
	json_t *rows = NULL;
	int64_t count = 0;
	enum dh_err rc;

	(void)res;
	if (url && !dh_outbound_url_check(url, dh_cfg.webhook_allow_private, why, sizeof(why)))
		dh_error_field(&req->err, "url", why);
	check_events(req, row);
	if (model) {
		/* a model's webhook belongs to the model's product, like a grant */
		rc = dh_api_model_product(req, model, owner);
		if (rc != DH_OK && rc != DH_E_NOT_FOUND)
			return rc;
		if (rc == DH_OK && product && json_object_get(req->json, "product") &&
		    strcmp(product, owner) != 0)
			dh_error_field(&req->err, "model", "belongs to another product");
		else if (rc == DH_OK)
			json_object_set_new(row, "product_id", json_string(owner));
	}
	if (req->err.code != DH_OK)
		return req->err.code;
	if (creating) {
		rc = dh_db_obj_list(req->db, "webhooks", NULL, 0, NULL, 1, 0, &rows, &count);
		json_decref(rows);
		if (rc != DH_OK)
			return rc;
		if (count >= WEBHOOKS_MAX)
			return dh_error_set(&req->err, DH_E_CONFLICT,
					    "There are already %d webhooks, the most this server"
					    " keeps.",
					    WEBHOOKS_MAX);
	}
	return set_secret(req, row, creating);
}

static enum dh_err show_secret_once(struct dh_req *req, json_t *row, json_t *out)
{
	(void)row;
	if (req->handler_state && (req->method == DH_POST || req->method == DH_PATCH))
		json_object_set_new(out, "secret", json_string(req->handler_state));
	return DH_OK;
}

static const struct dh_field webhook_fields[] = {
	{ .name = "tid", .column = "tid", .type = DH_F_TID, .flags = DH_F_FILTER | DH_F_NULLABLE },
	{ .name = "url",
	  .column = "url",
	  .type = DH_F_TEXT,
	  .flags = DH_F_REQUIRED,
	  .min = 1,
	  .max = DH_OUTBOUND_URL_MAX },
	{ .name = "description", .column = "description", .type = DH_F_TEXT, .max = 4000 },
	{ .name = "events", .column = "events", .type = DH_F_ARRAY },
	{ .name = "product",
	  .column = "product_id",
	  .type = DH_F_REF,
	  .flags = DH_F_FILTER | DH_F_NULLABLE,
	  .ref_table = "products",
	  .ref_has_tid = true },
	{ .name = "model",
	  .column = "model_id",
	  .type = DH_F_REF,
	  .flags = DH_F_FILTER | DH_F_NULLABLE,
	  .ref_table = "models",
	  .ref_has_tid = true },
	{ .name = "active", .column = "active", .type = DH_F_BOOL, .flags = DH_F_FILTER },
	{ .name = "secret",
	  .column = "secret",
	  .type = DH_F_TEXT,
	  .flags = DH_F_HIDDEN,
	  .min = 1,
	  .max = DH_WEBHOOK_SECRET_MAX },
	{ .name = "rotate_secret",
	  .column = "rotate_secret",
	  .type = DH_F_BOOL,
	  .flags = DH_F_VIRTUAL },
};

static const struct dh_resource webhooks = {
	.name = "webhook",
	.table = "webhooks",
	.has_tid = true,
	.fields = webhook_fields,
	.nfields = sizeof(webhook_fields) / sizeof(webhook_fields[0]),
	.right = DH_ACT_MANAGE,
	.hooks = { .validate = check_webhook,
		   .scope = webhook_scope,
		   .decorate = show_secret_once },
};

DH_CRUD_HANDLERS(webhooks, webhooks)

/* ---- the delivery log ---- */

static json_t *time_or_null(json_t *us)
{
	char t[DH_TIME_LEN];

	if (!json_is_integer(us) || json_integer_value(us) <= 0)
		return json_null();
	dh_time_format(json_integer_value(us), t);
	return json_string(t);
}

/* A delivery row (db/webhooks.c's columns) as the API object. */
static json_t *delivery_to_json(json_t *row)
{
	const char *status = json_string_value(json_object_get(row, "status"));
	bool pending = status && strcmp(status, "pending") == 0;

	return json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:o, s:o, s:O, s:o}", "id",
			 json_object_get(row, "id"), "webhook", json_object_get(row, "webhook_id"),
			 "event", json_object_get(row, "event"), "status",
			 json_object_get(row, "status"), "attempts",
			 json_object_get(row, "attempts"), "last_status_code",
			 json_object_get(row, "last_status_code"), "last_error",
			 json_object_get(row, "last_error"), "last_response",
			 json_object_get(row, "last_response"), "last_attempt_time",
			 time_or_null(json_object_get(row, "last_attempt_us")), "next_attempt_time",
			 pending ? time_or_null(json_object_get(row, "next_us")) : json_null(),
			 "create_time", json_object_get(row, "create_time"), "done_time",
			 time_or_null(json_object_get(row, "done_us")));
}

enum dh_err dh_api_webhook_deliveries(struct dh_req *req)
{
	static const char *const statuses[] = { "pending", "delivered", "failed" };
	const char *status = dh_req_query(req, "status");
	json_t *hook = NULL, *rows = NULL, *results = NULL, *row;
	int64_t limit, offset, count;
	enum dh_err rc;
	size_t i;

	rc = dh_api_obj_load(req, &webhooks, req->args[0], DH_ACT_MANAGE, &hook);
	if (rc != DH_OK)
		return rc;
	rc = dh_api_page(req, &limit, &offset);
	if (rc != DH_OK)
		goto out;
	for (i = 0; status && i < 3 && strcmp(status, statuses[i]) != 0; i++)
		;
	if (status && i == 3) {
		rc = dh_error_field(&req->err, "status", "one of pending, delivered, failed");
		goto out;
	}
	rc = dh_db_webhook_deliveries(req->db, json_string_value(json_object_get(hook, "id")),
				      status, limit, offset, &rows, &count);
	if (rc != DH_OK)
		goto out;
	results = json_array();
	json_array_foreach(rows, i, row)
	{
		if (!results || json_array_append_new(results, delivery_to_json(row)) != 0) {
			rc = DH_E_NOMEM;
			goto out;
		}
	}
	rc = dh_http_reply_json(req, 200, dh_api_list_envelope(req, count, limit, offset, results));
	results = NULL;
out:
	json_decref(hook);
	json_decref(rows);
	json_decref(results);
	return rc;
}

enum dh_err dh_api_webhook_redeliver(struct dh_req *req)
{
	json_t *hook = NULL, *row = NULL;
	const char *hid;
	enum dh_err rc;

	rc = dh_api_obj_load(req, &webhooks, req->args[0], DH_ACT_MANAGE, &hook);
	if (rc != DH_OK)
		return rc;
	hid = json_string_value(json_object_get(hook, "id"));
	rc = dh_uuid_valid(req->args[1])
		     ? dh_db_webhook_redeliver(req->db, hid, req->args[1], dh_now_us())
		     : DH_E_NOT_FOUND;
	if (rc == DH_E_NOT_FOUND) {
		rc = dh_error_set(&req->err, DH_E_NOT_FOUND, "No such delivery of this webhook.");
		goto out;
	}
	if (rc != DH_OK)
		goto out;
	dh_webhook_sender_kick();
	rc = dh_db_webhook_delivery_get(req->db, hid, req->args[1], &row);
	if (rc == DH_OK)
		rc = dh_http_reply_json(req, 200, delivery_to_json(row));
out:
	json_decref(hook);
	json_decref(row);
	return rc;
}
