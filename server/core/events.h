/*
 * The in-process event bus for session changes: a bounded ring of the latest events with
 * a sequence number. Publishers (API handlers, workers, the reaper) append; subscribers
 * (the SSE endpoint) read everything after the last sequence they saw, or wait for it.
 * Old events fall off the ring; a subscriber that fell behind learns how many it missed.
 */
#ifndef DH_CORE_EVENTS_H
#define DH_CORE_EVENTS_H

#include "core/rights.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Events kept for late readers: a few seconds of a busy fleet. */
#define DH_EVENTS_RING 4096

/* One event. scope fields say who may see it (uuid text or ""). */
struct dh_event {
	uint64_t seq;
	char type[32];    /* "session.created", "session.state", "session.progress" */
	char session[40]; /* session id */
	char product[40]; /* scope for rights filtering */
	char model[40];
	char channel[40];
	enum dh_action need; /* the right a reader needs over the scope (update, or draft) */
	char *data;          /* compact JSON text, owned by the ring */
};

/*
 * Appends an event; data (borrowed, may be NULL) is serialised now. Never blocks on
 * subscribers. product/model/channel may be NULL.
 */
void dh_events_publish(const char *type, const char *session_id, const char *product,
		       const char *model, const char *channel, json_t *data);
/* The same for an event only readers holding need over the scope may see (e.g. DH_ACT_DRAFT
 * for a session whose target is a draft); dh_events_publish needs DH_ACT_UPDATE. */
void dh_events_publish_for(enum dh_action need, const char *type, const char *session_id,
			   const char *product, const char *model, const char *channel,
			   json_t *data);

/* The sequence number of the newest event (0 when none yet). */
uint64_t dh_events_last_seq(void);

/*
 * Copies up to max events with seq > after into out (data strings are malloc'd copies the
 * caller frees with dh_event_release). Waits up to wait_ms for one to arrive when none is
 * there yet (0: no wait). Returns how many were copied; *missed gets how many events after
 * `after` had already left the ring.
 */
size_t dh_events_read(uint64_t after, struct dh_event *out, size_t max, int wait_ms,
		      uint64_t *missed);
void dh_event_release(struct dh_event *ev);

/* Wakes every waiting reader (shutdown). */
void dh_events_wake_all(void);

#endif
