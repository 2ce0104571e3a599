/*
 * Where libmicrohttpd 0.9.75 answers a client by itself (a request head it cannot parse or
 * hold, a bad chunk, an HTTP version it does not speak), it queues a fixed HTML page; with a
 * malformed Content-Length it even sends the status line twice. No option turns this off.
 * mhd_shim.c replaces those answers with the JSON error body every other answer has, and
 * bounds what a request head may store in the connection's memory, by defining three of
 * MHD's exported functions in devicehubd itself (see the file's comment for how and why that
 * works, and docs/http.md for what is left).
 *
 * Only http/server.c uses this header.
 */
#ifndef DH_HTTP_MHD_SHIM_H
#define DH_HTTP_MHD_SHIM_H

#include <microhttpd.h>
#include <stdbool.h>

/*
 * Queues a response of our own: every MHD_queue_response call of devicehubd goes through
 * here, so that the shim can tell them from MHD's internal calls.
 */
enum MHD_Result dh_mhd_queue(struct MHD_Connection *conn, unsigned status, struct MHD_Response *r);

/*
 * Resolves MHD's own functions and checks that the process resolves MHD_queue_response to
 * the shim; false when it does not (MHD's HTML pages would then reach clients: logged as a
 * warning at start-up). Call once before the daemon starts.
 */
bool dh_mhd_shim_init(void);

/*
 * Called by the shim before it answers for MHD: returns false when the connection must be
 * closed without an answer (the connection guard already answered or cut it). Set once by
 * http/server.c before the daemon starts; NULL means "always answer".
 */
extern bool (*dh_mhd_shim_may_answer)(struct MHD_Connection *conn);

/*
 * Called by the shim before MHD stores a header, query parameter or trailer of a request
 * (bytes: its name and value) in the connection's memory: false when the request's head
 * would then hold more than the server accepts. MHD then answers 431 itself for a header or
 * trailer (as JSON); a query parameter is dropped, and http/server.c answers 414 for the
 * target. Set once by http/server.c before the daemon starts; NULL means "always store".
 */
extern bool (*dh_mhd_shim_may_store)(struct MHD_Connection *conn, enum MHD_ValueKind kind,
				     size_t bytes);

/* Fills a request id as for X-Request-Id (16 hex digits and a NUL). */
void dh_http_request_id(char out[17]);

/* Counts an answered status for /metrics (http/server.c owns the counters). */
void dh_http_count_status(unsigned status);

#endif
