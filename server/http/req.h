/*
 * The request context every handler receives, and the calls a handler uses to read the
 * request and to answer it. Handlers in api/ see only this header, never MHD. Each request
 * owns one struct dh_req, freed when MHD completes the request, so an aborted connection
 * leaks nothing.
 */
#ifndef DH_HTTP_REQ_H
#define DH_HTTP_REQ_H

#include "core/err.h"
#include "core/rights.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dh_answer;
struct dh_db;
struct dh_head;
struct dh_guard_conn;
struct dh_route;

/* Captured {id} segments of one path. */
#define DH_MAX_ARGS 4
/* A request id: 16 hex digits. */
#define DH_REQ_ID_LEN 17

enum dh_method {
	DH_GET = 1 << 0,
	DH_HEAD = 1 << 1,
	DH_POST = 1 << 2,
	DH_PUT = 1 << 3,
	DH_PATCH = 1 << 4,
	DH_DELETE = 1 << 5,
	DH_OPTIONS = 1 << 6,
};

struct dh_req {
	void *conn; /* struct MHD_Connection *; only http/ looks inside */
	enum dh_method method;
	const char *method_name;
	const char *path;
	char id[DH_REQ_ID_LEN];
	int64_t start_us;

	/* http/ only: the request target as received (before MHD decoded it) and what the
	 * checks before routing found */
	const char *raw_target; /* only its address and length are used: MHD decodes it in place */
	size_t raw_target_len;
	const char *target_problem; /* why the raw target cannot be served, or NULL */
	size_t head_cost;           /* what the head holds in MHD's memory so far (server.c) */
	bool target_too_long;       /* the target's query goes beyond what a head may hold */
	bool begun;                 /* the access handler ran for this request */
	bool close_after;           /* answer with Connection: close (the framing is not trusted) */
	bool has_body;        /* a Content-Length above 0 or a chunked body follows the head */
	unsigned retry_after; /* seconds for Retry-After of a 429/503; 0: the default */
	struct dh_guard_conn *guard; /* the connection's record in http/guard.c, or NULL */

	const struct dh_route *route;
	unsigned allow_methods;  /* for 405: what the path accepts */
	unsigned route_flags;    /* of the route whose pattern owns the path, even on a 405 */
	char *args[DH_MAX_ARGS]; /* captures, NUL-terminated copies owned by the request */
	size_t nargs;

	char *body; /* accumulated body for non-streaming routes (NUL-terminated) */
	size_t body_len, body_cap;
	bool body_too_large;
	json_t *json; /* parsed JSON body of POST/PATCH/PUT, or NULL */

	bool authenticated;
	struct dh_principal who;
	struct dh_db *db; /* this thread's connection */
	struct dh_error err;

	void *response; /* struct MHD_Response * to queue */
	unsigned status;

	void *handler_state; /* streaming handlers keep their state here */
	void (*handler_state_free)(void *);

	/*
	 * When set, called once as the HTTP layer is done with the answer: sent is how many
	 * bytes of its body were handed to the kernel -- the whole body when the answer
	 * completed; of an answer cut short by an error or the client going away, what the
	 * direct path (http/direct.c) had sent, and 0 from libmicrohttpd, which does not tell.
	 * For accounting what was sent; on_done owns cls. The request itself may be gone by
	 * then (the direct path frees it once the head of the answer is out).
	 */
	void (*on_done)(uint64_t sent, void *cls);
	void *on_done_cls;

	/* http/ only: on the direct path (http/direct.c) the answer under construction and the
	 * request's head; NULL with libmicrohttpd */
	struct dh_answer *answer;
	const struct dh_head *head;
	int sock;            /* the direct path's socket of the request */
	uint64_t answer_len; /* length of the body of the answer set (libmicrohttpd's on_done) */
};

/*
 * A request header or query argument, or NULL. The string lives as long as the request.
 * A query argument (name and value) and a path capture (req->args) are always well-formed
 * UTF-8 without NUL: the HTTP layer answers 400 (naming the parameter), or 404 for a
 * capture, before a handler runs. A header value is bytes as sent: whoever echoes one
 * checks it first.
 */
const char *dh_req_header(struct dh_req *req, const char *name);
const char *dh_req_query(struct dh_req *req, const char *name);

/* The absolute base URL for links: --public-url, or scheme://Host of the request. */
void dh_req_base_url(struct dh_req *req, char *buf, size_t size);

/* Absolute URL of this path with the same query (every parameter, percent-encoded), but limit
 * and offset replaced. malloc'd, the caller frees it; NULL when out of memory. */
char *dh_req_page_url(struct dh_req *req, int64_t limit, int64_t offset);

/* Answers with JSON; takes ownership of body (also on failure). */
enum dh_err dh_http_reply_json(struct dh_req *req, unsigned status, json_t *body);
/* Answers with {"code","detail","fields"} from err. */
enum dh_err dh_http_reply_error(struct dh_req *req, const struct dh_error *err);
/* Answers with no body (204, or a HEAD answer with explicit length). */
enum dh_err dh_http_reply_empty(struct dh_req *req, unsigned status);
/* Answers with text of the given content type (copied). */
enum dh_err dh_http_reply_text(struct dh_req *req, unsigned status, const char *ctype,
			       const char *text, size_t len);
/* Answers with len bytes at data that stay valid until release(cls) is called by the
 * HTTP layer (or forever if release is NULL). No copy is made. */
enum dh_err dh_http_reply_buffer(struct dh_req *req, unsigned status, const void *data, size_t len,
				 void (*release)(void *), void *cls);
/* Answers with len bytes of fd from off, sent with sendfile; takes ownership of fd. */
enum dh_err dh_http_reply_fd(struct dh_req *req, unsigned status, int fd, uint64_t off,
			     uint64_t len);
/*
 * Answers with len bytes from off of a file that is open as fd and mapped at data (the same
 * bytes: an image in the blob store), both valid until release(cls), which the HTTP layer
 * calls once (also when it fails). No copy is made: large answers go out by sendfile from
 * fd (which may be shared, its position is never used), small ones from data.
 */
enum dh_err dh_http_reply_file(struct dh_req *req, unsigned status, int fd, const void *data,
			       uint64_t off, uint64_t len, void (*release)(void *), void *cls);
/*
 * Answers with a stream of unknown length: read(cls, pos, buf, max) returns bytes written,
 * 0 to be called again later, or -1 to end the stream; release(cls) when it is done.
 */
typedef long (*dh_stream_read_fn)(void *cls, uint64_t pos, char *buf, size_t max);
enum dh_err dh_http_reply_stream(struct dh_req *req, unsigned status, const char *ctype,
				 dh_stream_read_fn read, void *cls, void (*release)(void *));
/*
 * Long-lived streams (Server-Sent Events) must not hold one of MHD's few pool threads
 * while they have nothing to send. A stream's read callback may park its connection with
 * dh_http_suspend(conn) (conn is req->conn, which stays valid as long as the stream's
 * response lives) and then return 0; any thread wakes it with dh_http_resume(conn), after
 * which MHD calls the read callback again. Call each once per park: suspend only from the
 * read callback (MHD's rule), resume exactly once after each suspend.
 */
void dh_http_suspend(void *conn);
void dh_http_resume(void *conn);
/* The connection's socket, for a poll() that notices a client gone while its connection
 * is parked (MHD does not look at parked sockets); -1 when unknown. */
int dh_http_conn_fd(void *conn);
/* Adds a header to the answer created by one of the calls above. */
void dh_http_header(struct dh_req *req, const char *name, const char *value);

#endif
