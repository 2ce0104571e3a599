/*
 * The HTTP server: starts and stops libmicrohttpd with the configured listen address,
 * thread pool, limits and TLS, and drives every request through the route table.
 */
#ifndef DH_HTTP_SERVER_H
#define DH_HTTP_SERVER_H

#include "core/err.h"

/* Starts serving; fills the actually bound port. */
enum dh_err dh_http_start(unsigned *bound_port, struct dh_error *err);
/* Stops accepting and waits for in-flight requests. */
void dh_http_stop(void);
/* True once dh_http_stop began: new requests get 503. */
int dh_http_stopping(void);

/* Request counters for /metrics. */
struct dh_http_stats {
	unsigned long long requests, status_2xx, status_3xx, status_4xx, status_5xx;
	unsigned long long bytes_uploaded;
	/* connections (http/guard.c) */
	unsigned long long conn_open, conn_refused_cap, conn_refused_address, conn_refused_full;
	unsigned long long head_timeouts, body_timeouts, timeout_408;
	unsigned long long lingering, lingered; /* lingering closes: now, begun so far */
	unsigned max_connections;               /* the cap in force (after the open-files limit) */
	/* rate limits: 429s per token and per address, failed authentications */
	unsigned long long rate_limited_token, rate_limited_auth, auth_failed;
	/* the direct path (http/direct.c): requests it answered, connections it handed to
	 * libmicrohttpd, body bytes it sent */
	unsigned long long direct_requests, direct_handoffs, direct_body_bytes;
};
void dh_http_stats_get(struct dh_http_stats *out);

#endif
