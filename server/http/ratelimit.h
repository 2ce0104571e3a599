/*
 * Token buckets for rate limits, in a table of fixed size: memory stays the same whatever
 * number of tokens or client addresses a peer makes up. Used by http/server.c for the
 * per-token request rate (--rate-limit, --rate-burst) and the per-address rate of failed
 * authentications (--auth-fail-limit). Knows nothing of HTTP; time is passed in, so that
 * the unit test can drive it.
 *
 * A bucket holds up to `capacity` units and gains `refill_per_ms` units each millisecond;
 * an event takes `cost` units. Pick units so that both rates are whole numbers: for R
 * requests per second, cost 1000 and refill R; for F failures per minute, cost 60000 and
 * refill F.
 */
#ifndef DH_HTTP_RATELIMIT_H
#define DH_HTTP_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/* Longest key kept (a token id is a 36-character uuid; an address key 16 bytes). Longer
 * keys are cut, which only merges buckets. */
#define DH_RATE_KEY_MAX 40

struct dh_rate_config {
	uint64_t capacity;      /* units in a full bucket (the burst) */
	uint64_t refill_per_ms; /* units gained per millisecond */
	uint64_t cost;          /* units one event takes */
};

struct dh_rate_table;

/* A table of `slots` buckets (rounded up to a whole number of sets); NULL without memory
 * or with a capacity below the cost or a zero refill. Free with dh_rate_table_free. */
struct dh_rate_table *dh_rate_table_new(const struct dh_rate_config *cfg, size_t slots);
void dh_rate_table_free(struct dh_rate_table *t);

/* Takes one event's cost from key's bucket at now_ms: returns 0 when it could, otherwise
 * the milliseconds until it could (and takes nothing). Thread-safe. */
uint64_t dh_rate_take(struct dh_rate_table *t, const void *key, size_t len, int64_t now_ms);

/* The milliseconds until key's bucket holds one event's cost (0: now); takes nothing. */
uint64_t dh_rate_peek(struct dh_rate_table *t, const void *key, size_t len, int64_t now_ms);

#endif
