/*
 * The connection guard: the HTTP server's connection-level policy, kept apart from the
 * library that moves the bytes so that another send path can carry it over unchanged.
 *
 * - Admission: at most max_connections are served at once. Up to `reserve` more are
 *   accepted only to be answered 503 with Retry-After when their request head arrives
 *   (the caller asks dh_guard_head_done), so that a client beyond the cap gets an answer
 *   at once instead of waiting in the listen queue or being reset.
 * - Per client address (an IPv4 address, or an IPv6 /64, since one host holds a whole /64):
 *   at most per_address connections are open at once; beyond, a new connection is closed
 *   as soon as it is accepted (dh_guard_admit).
 * - Head deadline: a request head must be complete within head_timeout_ms, counted from
 *   the accept, or from the end of the previous answer on a kept-alive connection; when
 *   the kernel was still sending that answer during the window (a device on a slow link
 *   reading an image written into a grown send buffer at once), the window starts again. A
 *   connection that misses it is cut by the guard's thread: over plain HTTP, when bytes of
 *   a request did arrive, it first gets a JSON 408 and a moment to read it; otherwise (idle
 *   keep-alive, TLS) it is closed. A client sending one header line every few seconds can
 *   therefore hold a connection for head_timeout_ms at most.
 * - Body rate: while a request body is read, each window of head_timeout_ms must bring at
 *   least min_body_rate bytes per second (or the end of the body), or the connection is cut
 *   the same way: a body sent a byte at a time cannot hold a connection either.
 *
 * - Lingering close (as nginx's lingering_close): a connection answered before its request
 *   was read whole (an error found in the head: 413 for a declared length, 401, 404, a
 *   framing error, 503 beyond the cap) is closed after the answer while the client may still
 *   be sending its body. Closing a socket with unread bytes makes the kernel reset the
 *   connection, and the reset destroys the answer in the client's buffers (or fails the
 *   client's send before it reads anything). So when such a connection closes, the guard
 *   keeps a duplicate of its socket, shut down for writing, and reads and drops what still
 *   comes on its own thread (an epoll set, no HTTP thread held), until the client closes its
 *   side or a bound of time, idle time or bytes is reached; only then is it really closed.
 *
 * The guard knows sockets, addresses and time; it never reads or closes a socket the
 * caller owns: it only writes the 408 and shuts a socket down, so that the caller's event
 * loop sees the end and closes it as usual (a lingering socket is the guard's own
 * duplicate). Every call is thread-safe.
 */
#ifndef DH_HTTP_GUARD_H
#define DH_HTTP_GUARD_H

#include "core/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Sockets drained after an early answer at once; beyond, a closing connection is closed
 * at once (and may be reset, as without lingering). The server counts them into the
 * descriptors it keeps apart from client connections. */
#define DH_GUARD_LINGER_MAX 256

/* Bytes of a client address key: an IPv4 address mapped into IPv6, or an IPv6 /64. */
#define DH_CLIENT_KEY_LEN 16

/* The client key of an address (AF_INET or AF_INET6; anything else maps to all zeros). */
void dh_client_key(const struct sockaddr *sa, uint8_t out[DH_CLIENT_KEY_LEN]);

struct dh_guard_limits {
	unsigned max_connections; /* served at once */
	unsigned reserve;         /* accepted beyond max_connections, only to be answered 503 */
	unsigned per_address;     /* open connections per client key; 0: no limit */
	unsigned head_timeout_ms; /* a request head must be complete within this */
	unsigned min_body_rate;   /* bytes per second a body must average per window; 0: any */
	/* builds the X-Request-Id of a 408 answer (16 hex digits and a NUL); may be NULL */
	void (*request_id)(char out[17]);
};

/* One open connection, owned by the guard between dh_guard_admit and dh_guard_close. */
struct dh_guard_conn;

struct dh_guard_stats {
	unsigned long long open;            /* open connections, served or not */
	unsigned long long refused_cap;     /* answered 503 beyond max_connections */
	unsigned long long refused_address; /* closed at accept: per-address limit */
	unsigned long long refused_full;    /* closed at accept: the reserve was full too */
	unsigned long long head_timeouts;   /* cut for missing the head deadline */
	unsigned long long body_timeouts;   /* cut for a body slower than min_body_rate */
	unsigned long long timeout_408;     /* cut connections that were answered 408 first */
	unsigned long long lingering;       /* sockets drained now after an early answer */
	unsigned long long lingered;        /* lingering closes begun so far */
};

/* Takes the limits and starts the guard's thread. DH_E_NOMEM, DH_E_INTERNAL on failure. */
enum dh_err dh_guard_start(const struct dh_guard_limits *limits, struct dh_error *err);
/* Stops the thread; call after every connection was closed (the daemon stopped). */
void dh_guard_stop(void);

/* The per-address limit alone, asked by libmicrohttpd of each accepted socket before it
 * makes a connection of it: false when the address already holds per_address connections
 * (counted as refused_address; the socket is closed). dh_guard_admit asks again. */
bool dh_guard_address_allowed(const struct sockaddr *sa);

/*
 * A connection was accepted: fd is its socket (still owned by the caller), sa the peer,
 * is_tls whether the socket carries TLS (the guard then never writes to it). Checks the
 * bounds and counts the connection in under one lock, so that threads accepting at once
 * cannot pass a bound together. Returns the guard's record, in the head phase; or NULL when
 * max_connections and the reserve are all open (counted as refused_full), when the address
 * already holds per_address connections (refused_address), or when out of memory. The
 * caller then closes the connection at once, without an answer.
 */
struct dh_guard_conn *dh_guard_admit(int fd, const struct sockaddr *sa, bool is_tls);

/*
 * The request head arrived. Returns false when the guard already cut the connection (the
 * caller closes it without answering). Otherwise *refuse tells whether the connection is
 * beyond max_connections and must be answered 503 (then closed).
 */
bool dh_guard_head_done(struct dh_guard_conn *c, bool *refuse);

/*
 * The library is about to answer by itself (a malformed head): false when the guard already
 * cut the connection, so that nothing more is written to it. Ends the head phase.
 */
bool dh_guard_may_answer(struct dh_guard_conn *c);

/* The request has a body (called after dh_guard_head_done): its rate is watched from now
 * until dh_guard_body_done. dh_guard_body_bytes counts what arrived (lock-free). */
void dh_guard_body_begin(struct dh_guard_conn *c);
void dh_guard_body_bytes(struct dh_guard_conn *c, size_t n);
/* The body is complete, or the request was answered without reading all of it. */
void dh_guard_body_done(struct dh_guard_conn *c);

/*
 * The request is answered before its body was read whole, so the connection is closed after
 * the answer while the client may still send: when it closes, the guard drains it for a
 * bounded time first (lingering close, above). Call before the answer is queued.
 */
void dh_guard_answered_early(struct dh_guard_conn *c);

/* An answer was sent and the connection is kept alive: the next head's deadline starts. */
void dh_guard_request_done(struct dh_guard_conn *c);

/* The connection is gone: frees the record without looking at its socket (which may be
 * closed already). NULL is ignored. */
void dh_guard_close(struct dh_guard_conn *c);

/*
 * The caller is about to close the connection's socket, which is still open: frees the
 * record like dh_guard_close, after starting a lingering close when the connection was
 * answered early or unread bytes wait in the socket. Returns true when it did: the guard
 * then holds a duplicate of the socket, so closing the caller's descriptor no longer
 * removes the socket from an epoll set of the caller's (remove it first: EPOLL_CTL_DEL).
 * NULL is ignored.
 */
bool dh_guard_close_lingering(struct dh_guard_conn *c);

/* The client key of a connection (for per-address rate limits). */
const uint8_t *dh_guard_client_key(const struct dh_guard_conn *c);

/*
 * One pointer the caller keeps with a connection, which the guard only stores (NULL until
 * set): http/server.c keeps the request it is reading there, so that a request the library
 * drops without ending it is freed when the connection closes. Only the connection's own
 * thread may use it. NULL records are ignored (dh_guard_user returns NULL).
 */
void dh_guard_set_user(struct dh_guard_conn *c, void *p);
void *dh_guard_user(const struct dh_guard_conn *c);

void dh_guard_stats_get(struct dh_guard_stats *out);

#endif
