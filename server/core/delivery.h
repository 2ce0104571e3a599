/*
 * Bytes delivered per session, the same for every transport (HTTP downloads, short links,
 * CoAP blocks, and whatever send path comes next): a transport calls dh_delivery_sent once
 * for each stretch of image bytes it handed to the network, and that is all it does. The
 * tracker keeps, per session, the bytes and the interval set (core/coverage.h) recorded
 * since the last flush, in memory only; no database row is written per range or block.
 *
 * The flusher (pipeline/delivered.c, on the reaper thread every DH_DELIVERY_FLUSH_MS and
 * at every state change) takes what was recorded with dh_delivery_take and adds it to the
 * session's row; it publishes session.delivered and, once, session.downloaded. An entry
 * lives from the first send after a flush until the next flush, so memory is bounded by
 * the sessions downloading within one flush interval (DH_DELIVERY_MAX_SESSIONS at most).
 *
 * Shared memory: the entry table, guarded by one mutex held for a hash look-up and an
 * interval insert, never across I/O.
 */
#ifndef DH_CORE_DELIVERY_H
#define DH_CORE_DELIVERY_H

#include "core/coverage.h"
#include "core/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How often the flusher writes what was recorded: what a restart may lose at most. */
#define DH_DELIVERY_FLUSH_MS 1000
/*
 * Sessions the tracker holds between two flushes; beyond, sends of further sessions are
 * not counted (and counted in dh_delivery_dropped). 65536 entries of ~200 bytes plus
 * their intervals: a fleet far beyond one flush interval's worth of downloading devices.
 */
#define DH_DELIVERY_MAX_SESSIONS 65536

/* Whom a send counts for. Strings are borrowed for the call; "" where not applicable. */
struct dh_delivery_who {
	const char *session; /* the session's uuid */
	const char *product; /* the session's rights scope, for the events */
	const char *model;
	const char *channel;
	uint64_t size; /* the size of the session's image */
};

/*
 * Records that len bytes of the session's image starting at off were sent (off and len
 * are clipped to the image). Thread-safe; only memory and a short mutex, never I/O, so
 * any transport thread may call it for every block or range.
 */
void dh_delivery_sent(const struct dh_delivery_who *who, uint64_t off, uint64_t len);

/* What was recorded for one session since the last take. */
struct dh_delivery_item {
	char session[DH_UUID_LEN];
	char product[DH_UUID_LEN];
	char model[DH_UUID_LEN];
	char channel[DH_UUID_LEN];
	uint64_t size;
	uint64_t bytes;         /* bytes sent, repeats included */
	struct dh_coverage cov; /* which bytes (owned: dh_delivery_item_release) */
};

/*
 * Moves up to max recorded items into out and forgets them: every session's when only is
 * NULL, else only that session's. Returns how many were moved.
 */
size_t dh_delivery_take(const char *only, struct dh_delivery_item *out, size_t max);

/* Gives back items whose flush failed (takes their coverage), to be taken again. */
void dh_delivery_restore(struct dh_delivery_item *items, size_t n);

/* Frees an item's coverage. */
void dh_delivery_item_release(struct dh_delivery_item *it);

/* Sends not recorded because the table was full or memory ran out, since start. */
uint64_t dh_delivery_dropped(void);

/* Forgets everything recorded (shutdown, tests). */
void dh_delivery_clear(void);

#endif
