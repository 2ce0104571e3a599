/*
 * The flusher of delivered bytes: moves what the transports recorded in the delivery
 * tracker (core/delivery.h) into the sessions' rows, in short transactions, and publishes
 * session.delivered at each further tenth of coverage and session.downloaded once, when
 * coverage reaches 1. Runs on the reaper thread every DH_DELIVERY_FLUSH_MS, from
 * dh_session_fire before every state change (for that session), and at shutdown.
 */
#ifndef DH_PIPELINE_DELIVERED_H
#define DH_PIPELINE_DELIVERED_H

#include "dh_db.h"

/*
 * Writes what was recorded for session only (NULL: for every session) on db. What cannot
 * be written (a database error) is given back to the tracker for the next flush.
 */
void dh_delivered_flush(struct dh_db *db, const char *only);

/* The session object's "delivered": {"bytes_sent", "coverage"} (new reference). */
json_t *dh_delivered_to_json(int64_t bytes, int64_t covered, int64_t size);

#endif
