/*
 * The webhook sender: one thread that moves deliveries from the outbox (db/webhooks.c) to
 * their receivers with the libcurl multi interface, signed (core/webhook.h) and guarded
 * (outbound/outbound.h). Per webhook it sends in outbox order, at most
 * --webhook-endpoint-concurrency at once and never past a delivery that waits for its retry,
 * so that a failing or slow receiver holds back only its own deliveries; at most
 * --webhook-concurrency requests are in flight in all. A delivery is claimed with a lease
 * before it is sent, so that only one process sends it at a time.
 *
 * Shared memory: the stop and kick flags (atomic), the multi handle's pointer (guarded by the
 * sender's mutex, for the kick), the counters (atomic). Everything else belongs to the thread.
 */
#ifndef DH_WEBHOOKS_SENDER_H
#define DH_WEBHOOKS_SENDER_H

#include "core/err.h"

#include <stdint.h>

/* Starts the thread (once, after the database is ready). */
enum dh_err dh_webhook_sender_start(struct dh_error *err);

/* Stops it: requests in flight are abandoned and their deliveries stay pending, without the
 * attempt counting, for the next start (or another process). */
void dh_webhook_sender_stop(void);

/* Wakes the sender: deliveries were written or put back. Never blocks; a no-op when the
 * sender is not running. */
void dh_webhook_sender_kick(void);

/* What this process's sender did since it started, for /metrics. */
struct dh_webhook_stats {
	uint64_t attempts_ok;      /* answered 2xx */
	uint64_t attempts_status;  /* answered another status */
	uint64_t attempts_timeout; /* no answer in time */
	uint64_t attempts_refused; /* the private-address guard refused the address */
	uint64_t attempts_error;   /* could not connect, TLS, ... */
	uint64_t delivered;
	uint64_t failed; /* given up: max age or attempts */
	unsigned in_flight;
};

void dh_webhook_sender_stats(struct dh_webhook_stats *out);

#endif
