/*
 * The flusher of delivered.h. Each batch is one transaction: per session, read the row's
 * counters and intervals, add what the tracker recorded, write them back. The events are
 * emitted inside the transaction (dh_db_event_emit: published after the commit), from the
 * transition the transaction saw, so that a session reaches session.downloaded exactly once
 * even with several flushers.
 */
#include "pipeline/delivered.h"

#include "core/coverage.h"
#include "core/delivery.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

/* Sessions written per transaction: keeps each write short for the other writers. */
#define FLUSH_BATCH 64

/* What the transaction saw for one item, for the events after the commit. */
struct seen {
	bool written;
	enum dh_state state;
	int64_t size, bytes, covered_before, covered;
	char product[DH_UUID_LEN]; /* the row's: the link's may predate a move of the model */
};

json_t *dh_delivered_to_json(int64_t bytes, int64_t covered, int64_t size)
{
	return json_pack("{s:I, s:f}", "bytes_sent", (json_int_t)bytes, "coverage",
			 dh_coverage_fraction(covered > 0 ? (uint64_t)covered : 0,
					      size > 0 ? (uint64_t)size : 0));
}

/* Adds one item to its session's row. */
static enum dh_err write_one(struct dh_db *db, const struct dh_delivery_item *it, struct seen *sn)
{
	struct dh_db_delivered d;
	struct dh_coverage cov;
	char *text = NULL;
	enum dh_err rc;

	sn->written = false;
	rc = dh_db_session_delivered_get(db, it->session, &d);
	if (rc == DH_E_NOT_FOUND)
		return DH_OK; /* nothing to count for */
	if (rc != DH_OK)
		return rc;
	dh_coverage_init(&cov, d.size > 0 ? (uint64_t)d.size : 0);
	if (!dh_coverage_parse(&cov, d.ranges))
		dh_warn("delivered.ranges", "id=%s detail=\"unreadable ranges; counted afresh\"",
			it->session);
	dh_coverage_merge(&cov, &it->cov);
	text = malloc(DH_COVERAGE_TEXT_MAX);
	if (!text) {
		rc = DH_E_NOMEM;
		goto out;
	}
	dh_coverage_format(&cov, text, DH_COVERAGE_TEXT_MAX);
	sn->state = d.state;
	memcpy(sn->product, d.product, sizeof(sn->product));
	sn->size = d.size;
	sn->covered_before = d.covered;
	free(d.ranges);
	d.ranges = text;
	text = NULL;
	d.bytes += (int64_t)it->bytes;
	/* a row written by an older build may count more than its ranges: never go back */
	if ((int64_t)cov.covered > d.covered)
		d.covered = (int64_t)cov.covered;
	sn->bytes = d.bytes;
	sn->covered = d.covered;
	rc = dh_db_session_delivered_set(db, it->session, &d);
	sn->written = rc == DH_OK;
out:
	free(text);
	free(d.ranges);
	dh_coverage_release(&cov);
	return rc;
}

/* The tenth of coverage reached (0..10). */
static int tenth(int64_t covered, int64_t size)
{
	return size > 0 ? (int)(covered * 10 / size) : 0;
}

static enum dh_err publish(struct dh_db *db, const struct dh_delivery_item *it,
			   const struct seen *sn)
{
	const char *type;
	enum dh_err rc;
	json_t *ev;

	if (!sn->written)
		return DH_OK;
	if (sn->size > 0 && sn->covered >= sn->size && sn->covered_before < sn->size)
		type = "session.downloaded";
	else if (tenth(sn->covered, sn->size) > tenth(sn->covered_before, sn->size))
		type = "session.delivered";
	else
		return DH_OK;
	ev = json_pack("{s:s, s:s, s:o}", "id", it->session, "state", dh_state_name(sn->state),
		       "delivered", dh_delivered_to_json(sn->bytes, sn->covered, sn->size));
	rc = ev ? dh_db_event_emit(db, DH_ACT_UPDATE, type, it->session,
				   *sn->product ? sn->product : it->product, it->model,
				   *it->channel ? it->channel : NULL, ev)
		: DH_E_NOMEM;
	json_decref(ev);
	return rc;
}

struct flush {
	struct dh_delivery_item *items;
	struct seen *seen;
	size_t n;
};

static enum dh_err flush_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct flush *f = cls;
	enum dh_err rc = DH_OK;

	(void)err;
	for (size_t i = 0; rc == DH_OK && i < f->n; i++)
		rc = write_one(db, &f->items[i], &f->seen[i]);
	for (size_t i = 0; rc == DH_OK && i < f->n; i++)
		rc = publish(db, &f->items[i], &f->seen[i]);
	return rc;
}

void dh_delivered_flush(struct dh_db *db, const char *only)
{
	struct dh_delivery_item items[FLUSH_BATCH];
	struct seen seen[FLUSH_BATCH];
	size_t n;

	while ((n = dh_delivery_take(only, items, FLUSH_BATCH)) > 0) {
		struct flush f = { items, seen, n };
		enum dh_err rc = dh_db_tx_run(db, flush_tx, &f, NULL);
		if (rc != DH_OK) {
			dh_warn("delivered.flush",
				"sessions=%zu code=%s detail=\"kept for the next"
				" flush\"",
				n, dh_err_name(rc));
			dh_delivery_restore(items, n);
			return;
		}
		for (size_t i = 0; i < n; i++) {
			if (seen[i].written && seen[i].size > 0 &&
			    seen[i].covered >= seen[i].size &&
			    seen[i].covered_before < seen[i].size)
				dh_info("session.downloaded", "id=%s bytes_sent=%lld",
					items[i].session, (long long)seen[i].bytes);
			dh_delivery_item_release(&items[i]);
		}
		if (n < FLUSH_BATCH)
			return;
	}
}
