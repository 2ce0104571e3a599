/*
 * Session events leave the data layer here: dh_db_event_emit serialises an event at once and
 * hands it to the bus of core/events.h only after the transaction that caused it committed,
 * so that no subscriber ever hears of a change that rolled back.
 */
#include "driver.h"

#include "pg/pg.h"

#include "core/events.h"

#include <stdlib.h>
#include <string.h>

struct pending_event {
	enum dh_action need;
	char type[32];
	char session[DH_UUID_LEN];
	char product[DH_UUID_LEN];
	char model[DH_UUID_LEN];
	char channel[DH_UUID_LEN];
	json_t *data;
};

static void copy(char *dst, size_t size, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n >= size)
		n = size - 1;
	if (n)
		memcpy(dst, src, n);
	dst[n] = 0;
}

static void pending_publish(void *cls)
{
	struct pending_event *e = cls;

	dh_events_publish_for(e->need, e->type, e->session, e->product, e->model,
			      *e->channel ? e->channel : NULL, e->data);
}

static void pending_free(void *cls)
{
	struct pending_event *e = cls;

	json_decref(e->data);
	free(e);
}

/*
 * Writes the event for the other processes of a shared database, in db's running transaction
 * (its own when there is none): a row of events, and a notification that names it, both
 * delivered only if the transaction commits.
 */
static enum dh_err share_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	static const char sql[] =
		"WITH e AS (INSERT INTO events (origin, need, type, session_id, product_id,"
		" model_id, channel_id, data, create_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
		" RETURNING seq) SELECT pg_notify('devicehub', 'e ' || ?1::text || ' ' || seq) FROM e";
	struct pending_event *e = cls;
	struct dh_stmt *st = dh_db_prep(db, sql);
	char *data = e->data ? json_dumps(e->data, JSON_COMPACT) : NULL;

	if (!st) {
		free(data);
		return DH_E_DB;
	}
	dh_stmt_text(st, 1, dh_pg_origin());
	dh_stmt_text(st, 2, dh_action_name(e->need));
	dh_stmt_text(st, 3, e->type);
	dh_stmt_text(st, 4, e->session);
	dh_stmt_text(st, 5, e->product);
	dh_stmt_text(st, 6, e->model);
	dh_stmt_text_opt(st, 7, e->channel);
	dh_stmt_text_take(st, 8, data);
	dh_stmt_int(st, 9, dh_now_us());
	return dh_stmt_run(st, err);
}

static enum dh_err share(struct dh_db *db, struct pending_event *e)
{
	return dh_db_tx_run(db, share_tx, e, NULL);
}

enum dh_err dh_db_event_emit(struct dh_db *db, enum dh_action need, const char *type,
			     const char *session_id, const char *product, const char *model,
			     const char *channel, json_t *data)
{
	struct pending_event *e = calloc(1, sizeof(*e));
	enum dh_err rc;

	if (!e)
		return DH_E_NOMEM;
	e->need = need;
	copy(e->type, sizeof(e->type), type);
	copy(e->session, sizeof(e->session), session_id);
	copy(e->product, sizeof(e->product), product);
	copy(e->model, sizeof(e->model), model);
	copy(e->channel, sizeof(e->channel), channel);
	/* a copy: the caller may change its value after the call */
	e->data = data ? json_deep_copy(data) : NULL;
	if (data && !e->data) {
		free(e);
		return DH_E_NOMEM;
	}
	/* the webhook outbox rows, in the transaction of the change (db/webhooks.c) */
	rc = dh_db_outbox_event(db, type, product, model, data);
	if (rc != DH_OK) {
		pending_free(e);
		return rc;
	}
	if (dh_db_is_pg(db)) {
		rc = share(db, e);
		if (rc != DH_OK) {
			pending_free(e);
			return rc;
		}
	}
	return dh_db_after_commit(db, pending_publish, e, pending_free);
}
