/*
 * The webhook outbox in SQL: writing deliveries in the caller's transaction, the sender's
 * reads, compare-and-set claims with a lease, outcomes, pruning and counts, and the delivery
 * log of the API. Webhook subscriptions themselves are configuration objects (objects.c).
 * Rules (which events, when to retry) live in core/ and webhooks/; this file only makes each
 * change atomic. One SQL text serves both engines except where PostgreSQL needs a parameter's
 * type spelled out.
 */
#include "driver.h"

#include "core/event_types.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Webhooks one event is written for; the API keeps the number of webhooks below it. */
#define OUTBOX_FANOUT_MAX 1000

void dh_db_outbox_row_release(struct dh_outbox_row *r)
{
	free(r->body);
	free(r->url);
	memset(r, 0, sizeof(*r));
}

enum dh_err dh_db_outbox_add(struct dh_db *db, const char *type, bool opt_in, const char *product,
			     const char *model, const char *body, size_t *n)
{
	/* events_match is ",a,b," (or ",*,"): LIKE finds one type in it on both engines; no
	 * type contains LIKE's wildcards (core/event_types.c) */
	static const char lite[] =
		"SELECT id FROM webhooks WHERE active = 1"
		" AND (product_id IS NULL OR product_id = ?2) AND (model_id IS NULL OR model_id = ?3)"
		" AND (events_match LIKE '%,' || ?1 || ',%'"
		" OR (?4 = 0 AND events_match LIKE '%,*,%')) LIMIT ?5";
	static const char pg[] = "SELECT id FROM webhooks WHERE active = 1"
				 " AND (product_id IS NULL OR product_id = ?2::text)"
				 " AND (model_id IS NULL OR model_id = ?3::text)"
				 " AND (events_match LIKE '%,' || ?1::text || ',%'"
				 " OR (?4::int = 0 AND events_match LIKE '%,*,%')) LIMIT ?5";
	static const char sql_insert[] =
		"INSERT INTO webhook_deliveries (id, webhook_id, event, body, status, next_us,"
		" queue_us, create_time) VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5, ?6)";
	struct dh_stmt *st = dh_db_prep(db, dh_db_sql(db, lite, pg));
	char(*ids)[DH_UUID_LEN] = NULL, id[DH_UUID_LEN], now[DH_TIME_LEN];
	int64_t now_us = dh_now_us();
	size_t k = 0, cap = 0;
	enum dh_err rc = DH_OK;
	int r;

	*n = 0;
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, type);
	dh_stmt_text_opt(st, 2, product);
	dh_stmt_text_opt(st, 3, model);
	dh_stmt_int(st, 4, opt_in);
	dh_stmt_int(st, 5, OUTBOX_FANOUT_MAX);
	while ((r = dh_stmt_step(st)) > 0) {
		if (k == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			char(*nids)[DH_UUID_LEN] = realloc(ids, ncap * sizeof(*ids));
			if (!nids) {
				rc = DH_E_NOMEM;
				break;
			}
			ids = nids;
			cap = ncap;
		}
		dh_stmt_col_copy(st, 0, ids[k], DH_UUID_LEN);
		k++;
	}
	if (rc == DH_OK && r < 0)
		rc = dh_stmt_error(st, NULL);
	dh_stmt_reset(st);
	dh_time_format(now_us, now);
	for (size_t i = 0; rc == DH_OK && i < k; i++) {
		st = dh_db_prep(db, sql_insert);
		if (!st) {
			rc = DH_E_DB;
			break;
		}
		dh_uuid_new(id);
		dh_stmt_text(st, 1, id);
		dh_stmt_text(st, 2, ids[i]);
		dh_stmt_text(st, 3, type);
		dh_stmt_text(st, 4, body);
		dh_stmt_int(st, 5, now_us);
		dh_stmt_text(st, 6, now);
		rc = dh_stmt_run(st, NULL);
		if (rc == DH_OK)
			(*n)++;
	}
	free(ids);
	return rc;
}

size_t dh_db_outbox_webhooks(struct dh_db *db, char (*ids)[DH_UUID_LEN], size_t max)
{
	/* one index probe per webhook (webhook_deliveries_pending), not a scan of the backlog */
	static const char sql[] =
		"SELECT w.id FROM webhooks w WHERE w.active = 1 AND EXISTS (SELECT 1 FROM"
		" webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending')"
		" ORDER BY w.id LIMIT ?1";
	struct dh_stmt *st = dh_db_prep(db, sql);
	size_t n = 0;

	if (!st)
		return 0;
	dh_stmt_int(st, 1, (int64_t)max);
	while (n < max && dh_stmt_step(st) > 0)
		dh_stmt_col_copy(st, 0, ids[n++], DH_UUID_LEN);
	dh_stmt_reset(st);
	return n;
}

size_t dh_db_outbox_peek(struct dh_db *db, const char *webhook, struct dh_outbox_row *out,
			 size_t max)
{
	static const char sql[] =
		"SELECT d.seq, d.id, d.webhook_id, d.event, d.body, d.attempts, d.next_us,"
		" d.queue_us, d.lease_owner, coalesce(d.lease_until, 0), w.url, w.secret,"
		" w.previous_secret, coalesce(w.previous_until_us, 0), w.active"
		" FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
		" WHERE d.webhook_id = ?1 AND d.status = 'pending' ORDER BY d.seq LIMIT ?2";
	struct dh_stmt *st = dh_db_prep(db, sql);
	size_t n = 0;

	if (!st)
		return 0;
	dh_stmt_text(st, 1, webhook);
	dh_stmt_int(st, 2, (int64_t)max);
	while (n < max && dh_stmt_step(st) > 0) {
		struct dh_outbox_row *r = &out[n];
		memset(r, 0, sizeof(*r));
		r->seq = dh_stmt_col_int(st, 0);
		dh_stmt_col_copy(st, 1, r->id, sizeof(r->id));
		dh_stmt_col_copy(st, 2, r->webhook, sizeof(r->webhook));
		dh_stmt_col_copy(st, 3, r->event, sizeof(r->event));
		r->body = dh_stmt_col_strdup(st, 4);
		r->attempts = (int)dh_stmt_col_int(st, 5);
		r->next_us = dh_stmt_col_int(st, 6);
		r->queue_us = dh_stmt_col_int(st, 7);
		dh_stmt_col_copy(st, 8, r->lease_owner, sizeof(r->lease_owner));
		r->lease_until = dh_stmt_col_int(st, 9);
		r->url = dh_stmt_col_strdup(st, 10);
		dh_stmt_col_copy(st, 11, r->secret, sizeof(r->secret));
		dh_stmt_col_copy(st, 12, r->previous_secret, sizeof(r->previous_secret));
		r->previous_until_us = dh_stmt_col_int(st, 13);
		r->is_active = dh_stmt_col_int(st, 14) != 0;
		if (!r->body || !r->url) {
			dh_db_outbox_row_release(r);
			break;
		}
		n++;
	}
	dh_stmt_reset(st);
	return n;
}

/* The compare-and-set claim of one delivery; *won tells whether it changed the row. */
static enum dh_err claim_one(struct dh_db *db, const char *id, const char *owner, int64_t now_us,
			     int64_t lease_until, bool *won, struct dh_error *err)
{
	static const char sql[] =
		"UPDATE webhook_deliveries SET lease_owner = ?2, lease_until = ?4"
		" WHERE id = ?1 AND status = 'pending' AND (lease_owner IS NULL OR"
		" lease_owner = ?2 OR coalesce(lease_until, 0) <= ?3)";
	struct dh_stmt *st = dh_db_prep(db, sql);
	enum dh_err rc = DH_OK;

	*won = false;
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, id);
	dh_stmt_text(st, 2, owner);
	dh_stmt_int(st, 3, now_us);
	dh_stmt_int(st, 4, lease_until);
	if (dh_stmt_step(st) < 0)
		rc = dh_stmt_error(st, err);
	else
		*won = dh_stmt_changes(st) == 1;
	dh_stmt_reset(st);
	return rc;
}

struct claim_args {
	const char *const *ids;
	size_t n;
	const char *owner;
	int64_t now_us, lease_until;
	bool *won;
};

static enum dh_err claim_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct claim_args *a = cls;
	enum dh_err rc = DH_OK;

	for (size_t i = 0; rc == DH_OK && i < a->n; i++)
		rc = claim_one(db, a->ids[i], a->owner, a->now_us, a->lease_until, &a->won[i], err);
	return rc;
}

enum dh_err dh_db_outbox_claim(struct dh_db *db, const char *const *ids, size_t n,
			       const char *owner, int64_t now_us, int64_t lease_until, bool *won)
{
	struct claim_args a = { ids, n, owner, now_us, lease_until, won };

	return n ? dh_db_tx_run(db, claim_tx, &a, NULL) : DH_OK;
}

static enum dh_err record_one(struct dh_db *db, const char *id, const struct dh_outbox_result *res,
			      struct dh_error *err)
{
	static const char sql[] =
		"UPDATE webhook_deliveries SET status = ?2, attempts = attempts + 1,"
		" last_status_code = ?3, last_error = ?4, last_response = ?5, last_attempt_us = ?6,"
		" next_us = ?7, done_us = ?8, lease_owner = NULL, lease_until = NULL"
		" WHERE id = ?1 AND status = 'pending'";
	struct dh_stmt *st = dh_db_prep(db, sql);

	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, id);
	dh_stmt_text(st, 2, res->status);
	if (res->status_code > 0)
		dh_stmt_int(st, 3, res->status_code);
	else
		dh_stmt_null(st, 3);
	dh_stmt_text_opt(st, 4, res->error);
	dh_stmt_text_opt(st, 5, res->response);
	dh_stmt_int(st, 6, res->attempt_us);
	dh_stmt_int(st, 7, res->next_us);
	if (strcmp(res->status, "pending") != 0)
		dh_stmt_int(st, 8, res->attempt_us);
	else
		dh_stmt_null(st, 8);
	return dh_stmt_run(st, err);
}

struct record_args {
	const char *const *ids;
	const struct dh_outbox_result *res;
	size_t n;
};

static enum dh_err record_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct record_args *a = cls;
	enum dh_err rc = DH_OK;

	for (size_t i = 0; rc == DH_OK && i < a->n; i++)
		rc = record_one(db, a->ids[i], &a->res[i], err);
	return rc;
}

enum dh_err dh_db_outbox_record(struct dh_db *db, const char *const *ids,
				const struct dh_outbox_result *res, size_t n)
{
	struct record_args a = { ids, res, n };

	return n ? dh_db_tx_run(db, record_tx, &a, NULL) : DH_OK;
}

struct unlease_args {
	const char *owner;
	bool others;
};

static enum dh_err unlease_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	static const char sql_own[] = "UPDATE webhook_deliveries SET lease_owner = NULL,"
				      " lease_until = NULL WHERE status = 'pending'"
				      " AND lease_owner = ?1";
	static const char sql_others[] = "UPDATE webhook_deliveries SET lease_owner = NULL,"
					 " lease_until = NULL WHERE status = 'pending'"
					 " AND lease_owner IS NOT NULL AND lease_owner != ?1";
	struct unlease_args *a = cls;
	struct dh_stmt *st = dh_db_prep(db, a->others ? sql_others : sql_own);

	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, a->owner);
	return dh_stmt_run(st, err);
}

enum dh_err dh_db_outbox_unlease(struct dh_db *db, const char *owner, bool others)
{
	struct unlease_args a = { owner, others };

	return dh_db_tx_run(db, unlease_tx, &a, NULL);
}

struct prune_args {
	int64_t before_us;
	size_t max, n;
};

static enum dh_err prune_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	static const char sql[] =
		"DELETE FROM webhook_deliveries WHERE seq IN (SELECT seq FROM webhook_deliveries"
		" WHERE status IN ('delivered', 'failed') AND done_us < ?1 LIMIT ?2)";
	struct prune_args *a = cls;
	struct dh_stmt *st = dh_db_prep(db, sql);
	int r;

	a->n = 0;
	if (!st)
		return DH_E_DB;
	dh_stmt_int(st, 1, a->before_us);
	dh_stmt_int(st, 2, (int64_t)a->max);
	r = dh_stmt_step(st);
	if (r < 0) {
		enum dh_err rc = dh_stmt_error(st, err);
		dh_stmt_reset(st);
		return rc;
	}
	a->n = (size_t)dh_stmt_changes(st);
	dh_stmt_reset(st);
	return DH_OK;
}

size_t dh_db_outbox_prune(struct dh_db *db, int64_t before_us, size_t max)
{
	struct prune_args a = { before_us, max, 0 };

	return dh_db_tx_run(db, prune_tx, &a, NULL) == DH_OK ? a.n : 0;
}

enum dh_err dh_db_outbox_counts(struct dh_db *db, int64_t counts[3], int64_t *oldest_pending_us)
{
	/* GROUP BY status walks the (status, done_us) index, not the table */
	static const char sql[] = "SELECT status, count(*) FROM webhook_deliveries GROUP BY status";
	static const char sql_oldest[] = "SELECT coalesce(min(queue_us), 0) FROM webhook_deliveries"
					 " WHERE status = 'pending'";
	static const char *const names[3] = { "pending", "delivered", "failed" };
	struct dh_stmt *st = dh_db_prep(db, sql);
	enum dh_err rc = DH_OK;
	int r;

	counts[0] = counts[1] = counts[2] = 0;
	*oldest_pending_us = 0;
	if (!st)
		return DH_E_DB;
	while ((r = dh_stmt_step(st)) > 0) {
		const char *s = dh_stmt_col_text(st, 0);
		for (int i = 0; s && i < 3; i++) {
			if (strcmp(s, names[i]) == 0)
				counts[i] = dh_stmt_col_int(st, 1);
		}
	}
	if (r < 0)
		rc = dh_stmt_error(st, NULL);
	dh_stmt_reset(st);
	if (rc != DH_OK)
		return rc;
	st = dh_db_prep(db, sql_oldest);
	if (!st)
		return DH_E_DB;
	r = dh_stmt_step(st);
	if (r > 0)
		*oldest_pending_us = dh_stmt_col_int(st, 0);
	else
		rc = dh_stmt_error(st, NULL);
	dh_stmt_reset(st);
	return rc;
}

#define DELIVERY_COLS                                                                              \
	"id, webhook_id, event, status, attempts, last_status_code, last_error, last_response,"    \
	" last_attempt_us, next_us, done_us, create_time"

enum dh_err dh_db_webhook_deliveries(struct dh_db *db, const char *webhook, const char *status,
				     int64_t limit, int64_t offset, json_t **rows, int64_t *count)
{
	static const char count_lite[] = "SELECT count(*) FROM webhook_deliveries WHERE"
					 " webhook_id = ?1 AND (?2 IS NULL OR status = ?2)";
	static const char count_pg[] =
		"SELECT count(*) FROM webhook_deliveries WHERE"
		" webhook_id = ?1 AND (?2::text IS NULL OR status = ?2::text)";
	static const char lite[] = "SELECT " DELIVERY_COLS " FROM webhook_deliveries WHERE"
				   " webhook_id = ?1 AND (?2 IS NULL OR status = ?2)"
				   " ORDER BY seq DESC LIMIT ?3 OFFSET ?4";
	static const char pg[] = "SELECT " DELIVERY_COLS " FROM webhook_deliveries WHERE"
				 " webhook_id = ?1 AND (?2::text IS NULL OR status = ?2::text)"
				 " ORDER BY seq DESC LIMIT ?3 OFFSET ?4";
	struct dh_stmt *st = dh_db_prep(db, dh_db_sql(db, count_lite, count_pg));
	enum dh_err rc = DH_OK;
	int r;

	*rows = NULL;
	*count = 0;
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, webhook);
	dh_stmt_text_opt(st, 2, status);
	r = dh_stmt_step(st);
	if (r > 0)
		*count = dh_stmt_col_int(st, 0);
	else
		rc = dh_stmt_error(st, NULL);
	dh_stmt_reset(st);
	if (rc != DH_OK)
		return rc;
	st = dh_db_prep(db, dh_db_sql(db, lite, pg));
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, webhook);
	dh_stmt_text_opt(st, 2, status);
	dh_stmt_int(st, 3, limit);
	dh_stmt_int(st, 4, offset);
	*rows = json_array();
	while (*rows && (r = dh_stmt_step(st)) > 0) {
		if (json_array_append_new(*rows, dh_stmt_row_json(st)) != 0) {
			rc = DH_E_NOMEM;
			break;
		}
	}
	if (!*rows)
		rc = DH_E_NOMEM;
	else if (rc == DH_OK && r < 0)
		rc = dh_stmt_error(st, NULL);
	dh_stmt_reset(st);
	if (rc != DH_OK) {
		json_decref(*rows);
		*rows = NULL;
	}
	return rc;
}

enum dh_err dh_db_webhook_delivery_get(struct dh_db *db, const char *webhook, const char *id,
				       json_t **row)
{
	static const char sql[] = "SELECT " DELIVERY_COLS " FROM webhook_deliveries"
				  " WHERE id = ?1 AND webhook_id = ?2";
	struct dh_stmt *st = dh_db_prep(db, sql);
	enum dh_err rc = DH_E_NOT_FOUND;
	int r;

	*row = NULL;
	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, id);
	dh_stmt_text(st, 2, webhook);
	r = dh_stmt_step(st);
	if (r > 0) {
		*row = dh_stmt_row_json(st);
		rc = *row ? DH_OK : DH_E_NOMEM;
	} else if (r < 0) {
		rc = dh_stmt_error(st, NULL);
	}
	dh_stmt_reset(st);
	return rc;
}

struct redeliver_args {
	const char *webhook, *id;
	int64_t now_us;
};

static enum dh_err redeliver_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	/* a lease of an attempt in flight stays: that attempt's outcome still lands */
	static const char sql[] =
		"UPDATE webhook_deliveries SET status = 'pending', next_us = ?3, queue_us = ?3,"
		" done_us = NULL WHERE id = ?1 AND webhook_id = ?2";
	struct redeliver_args *a = cls;
	struct dh_stmt *st = dh_db_prep(db, sql);
	int r;

	if (!st)
		return DH_E_DB;
	dh_stmt_text(st, 1, a->id);
	dh_stmt_text(st, 2, a->webhook);
	dh_stmt_int(st, 3, a->now_us);
	r = dh_stmt_step(st);
	if (r < 0) {
		enum dh_err rc = dh_stmt_error(st, err);
		dh_stmt_reset(st);
		return rc;
	}
	r = dh_stmt_changes(st) == 1;
	dh_stmt_reset(st);
	return r ? DH_OK : DH_E_NOT_FOUND;
}

enum dh_err dh_db_webhook_redeliver(struct dh_db *db, const char *webhook, const char *id,
				    int64_t now_us)
{
	struct redeliver_args a = { webhook, id, now_us };

	return dh_db_tx_run(db, redeliver_tx, &a, NULL);
}

/* ---- events into the outbox ---- */

static void (*outbox_notify)(void);

void dh_db_outbox_notify(void (*fn)(void))
{
	outbox_notify = fn;
}

static void notify(void *cls)
{
	(void)cls;
	if (outbox_notify)
		outbox_notify();
}

struct event_args {
	const char *type, *product, *model;
	json_t *data;
};

static enum dh_err event_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct event_args *a = cls;
	const struct dh_event_type *t = dh_event_type_find(a->type);
	char now[DH_TIME_LEN], *body;
	json_t *ev;
	size_t n = 0;
	enum dh_err rc;

	(void)err;
	dh_time_format(dh_now_us(), now);
	ev = json_pack("{s:s, s:s, s:O}", "type", a->type, "time", now, "data",
		       a->data ? a->data : json_null());
	/* serialised once: every attempt and redelivery sends these bytes, but for a session's
	 * links, stored as prefixes, whose token the sender adds (pipeline/session.h) */
	body = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
	json_decref(ev);
	if (!body)
		return DH_E_NOMEM;
	rc = dh_db_outbox_add(db, a->type, t && t->is_opt_in, a->product, a->model, body, &n);
	free(body);
	if (rc == DH_OK && n)
		rc = dh_db_after_commit(db, notify, NULL, NULL);
	return rc;
}

enum dh_err dh_db_outbox_event(struct dh_db *db, const char *type, const char *product,
			       const char *model, json_t *data)
{
	struct event_args a = { type, product, model, data };

	/* joins the transaction of the change; on its own only when called outside one */
	return dh_db_tx_run(db, event_tx, &a, NULL);
}
