/*
 * The direct path: devicehubd's own event loop in front of libmicrohttpd on plain HTTP.
 * Its threads (one epoll each) accept every connection and read each request head with
 * MSG_PEEK, so that the bytes stay in the socket. A plain GET or HEAD of a route marked
 * DH_ROUTE_DIRECT (the image downloads and short links) is taken from the socket and run
 * through the same checks and handler as any request (http/server.c's
 * dh_http_serve_direct), and its answer is sent from here: the head and a small body with
 * one writev, a large body by sendfile from the blob's shared descriptor, paced by the
 * socket. Any other request -- another route, a head http/head.c does not call plain --
 * is handed to libmicrohttpd with MHD_add_connection, its bytes still unread, and the
 * connection stays there. The connection-level policy stays with http/guard.c, whose
 * record of a connection moves along with it.
 *
 * Only http/server.c uses this header.
 */
#ifndef DH_HTTP_DIRECT_H
#define DH_HTTP_DIRECT_H

#include "core/err.h"
#include "http/head.h"
#include "http/req.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct MHD_Daemon;
struct dh_guard_conn;

/* Header lines of one answer ("Name: value\r\n" each); downloads use about 300 bytes. */
#define DH_ANSWER_HEAD_MAX 2048

enum dh_answer_body {
	DH_BODY_NONE,  /* no answer set yet */
	DH_BODY_COPY,  /* text owned by the answer (JSON, errors) */
	DH_BODY_FILE,  /* a file region: sent from fd (sendfile) or from data */
	DH_BODY_BYTES, /* bytes of someone else's (released with release) */
};

/*
 * The answer a request on the direct path builds through the reply calls of req.h (in
 * http/server.c, which calls these when req->answer is set). It lives in its thread and is
 * sent from there once the handler returned.
 */
struct dh_answer {
	unsigned status;
	bool before_handler; /* answered before the handler ran: the connection closes */
	bool head_overflow;  /* a header did not fit: logged, the answer goes without it */
	size_t head_len;
	char head[DH_ANSWER_HEAD_MAX];
	enum dh_answer_body body;
	const char *data; /* COPY (owned), FILE (the mapping) and BYTES: the bytes */
	int fd;           /* FILE: the file, or -1 to send from data */
	bool own_fd;      /* FILE: close fd when done (dh_http_reply_fd) */
	uint64_t off, len;
	void (*release)(void *); /* the owner's release of data/fd, or NULL */
	void *cls;
};

/* Drops what the answer holds (body released, headers cleared). */
void dh_answer_reset(struct dh_answer *a);
/* Appends a header line; false (and head_overflow) when it does not fit. */
bool dh_answer_header(struct dh_answer *a, const char *name, const char *value);
/* Answers with a copy of text (len bytes). DH_E_NOMEM when out of memory. */
enum dh_err dh_answer_copy(struct dh_answer *a, unsigned status, const char *text, size_t len);
/* Answers with len bytes at data, released by release(cls) when done (if not NULL). */
void dh_answer_bytes(struct dh_answer *a, unsigned status, const void *data, size_t len,
		     void (*release)(void *), void *cls);
/* Answers with [off, off + len) of a file open as fd (-1: none) and mapped at data (NULL:
 * not mapped), released by release(cls); own_fd: close fd when done. */
void dh_answer_file(struct dh_answer *a, unsigned status, int fd, bool own_fd, const void *data,
		    uint64_t off, uint64_t len, void (*release)(void *), void *cls);

/*
 * Implemented by http/server.c: runs a request whose plain head was read and taken from
 * the socket (req->answer, req->head, method, path, id and guard are set): the checks of
 * every request (stopping, route, authentication with its rate limits, rights), the
 * handler, and the error answer when one of them fails. over_cap: the guard placed the
 * connection beyond --max-connections, answered 503.
 */
void dh_http_serve_direct(struct dh_req *req, bool over_cap);
/* Frees what a direct request holds (not the struct itself, nor its answer). */
void dh_http_release_direct(struct dh_req *req);

/*
 * Starts threads (at least 1) serving the listening socket listen_fd (non-blocking; owned
 * from now on, closed by dh_direct_stop), handing connections they do not serve to mhd,
 * which must have been started with MHD_USE_NO_LISTEN_SOCKET and MHD_USE_ITC. An answer
 * that makes no progress for send_timeout_s is cut.
 */
enum dh_err dh_direct_start(int listen_fd, unsigned threads, struct MHD_Daemon *mhd,
			    unsigned send_timeout_s, struct dh_error *err);
/* Stops the threads and closes their connections (before libmicrohttpd stops). */
void dh_direct_stop(void);
/* Closes the guard records of connections handed over but never taken by libmicrohttpd,
 * and frees the hand-over table (call after libmicrohttpd stopped). */
void dh_direct_forget_handoffs(void);
/* The guard record of a connection the direct path handed to libmicrohttpd, once: NULL
 * when fd was not handed over (its record is then libmicrohttpd's to open). */
struct dh_guard_conn *dh_direct_take_guard(int fd);

/* Counters for /metrics. */
struct dh_direct_stats {
	unsigned long long requests;   /* answered on the direct path */
	unsigned long long handoffs;   /* connections handed to libmicrohttpd */
	unsigned long long body_bytes; /* body bytes sent by the direct path */
};
void dh_direct_stats_get(struct dh_direct_stats *out);

#endif
