/*
 * libmicrohttpd glue: daemon start/stop, the access handler that routes, authenticates,
 * accumulates or streams the body within its limit and calls the handler, the completion
 * callback that frees the request, and the reply calls of req.h. The only file besides
 * http/ helpers that includes microhttpd.h.
 */
#include "http/server.h"

#include "api/api.h"
#include "config.h"
#include "core/text.h"
#include "core/util.h"
#include "dh_db.h"
#include "http/direct.h"
#include "http/guard.h"
#include "http/json_body.h"
#include "http/mhd_shim.h"
#include "http/multipart.h"
#include "http/ratelimit.h"
#include "http/req.h"
#include "http/router.h"
#include "http/tls.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The largest request head served: its bytes and what MHD keeps for each header, query
 * parameter and trailer besides them (DH_HEAD_ENTRY_COST). Beyond, 431. MHD builds the
 * answer's status line and headers in the same connection memory as the head
 * (DH_CONN_MEMORY), so a bound below that memory is what leaves room for an answer: heads
 * that filled it were closed without any.
 */
#define DH_MHD_HEAD_MAX (32 * 1024)
/* Of that, the request line with its query parameters may take all but 8 KiB; beyond, 414.
 * So a target refused as too long still leaves its headers (a browser's take 1 to 2 KiB)
 * room to be read, and the answer is the 414. */
#define DH_MHD_TARGET_MAX (DH_MHD_HEAD_MAX - 8 * 1024)
/* What MHD 0.9.75 keeps per header, parameter or trailer besides the bytes of the head: a
 * list entry of 56 bytes, rounded up to 64 in its memory pool; 8 more for the ": " and CRLF
 * around a header's name and value, and for the request line's method and version. */
#define DH_HEAD_ENTRY_COST 72
/* Room for the head of an answer (ours are under 600 bytes) after the largest request head. */
#define DH_ANSWER_ROOM (2 * 1024)
/*
 * Per-connection memory MHD may use for headers and buffers. MHD zeroes the whole pool
 * between keep-alive requests, so its size is paid on every request: 128 KiB made memset
 * a third of the CPU time and halved the rate of 4 KiB range downloads (wrk, c64). The
 * largest head and the room for an answer: 34 KiB.
 */
#define DH_CONN_MEMORY (DH_MHD_HEAD_MAX + DH_ANSWER_ROOM)
/* JSON answers up to this size are dumped into a per-thread buffer; larger ones (long
 * lists) are dumped a second time into a malloc'd buffer of the size the first dump gave. */
#define DH_JSON_SMALL (64 * 1024)
/* Seconds a connection may stay silent while a body is read or an answer sent; the head of
 * each request has --head-timeout (http/guard.c). */
#define DH_CONN_TIMEOUT 120
/* Descriptors kept for everything but client connections and their files: each thread's
 * database connection, the log, listening sockets, the direct path's epoll and wake-up
 * descriptors, the blob cache's files (64), plugins, step programs, CoAP.
 * Sockets in a lingering close (DH_GUARD_LINGER_MAX, http/guard.h) are counted apart. */
#define DH_FD_OTHER 256
/*
 * libmicrohttpd 0.9.75's MHD_OPTION_STRICT_FOR_CLIENT: -1 is the only value that refuses a
 * header name followed by whitespace ("Content-Length : 5", which a proxy in front might
 * read as a length and MHD as another header: RFC 9112 section 5.1 requires a 400). It
 * turns on none of the checks of 1 (a Host header on HTTP/1.1, no space in the target; the
 * target is checked by http/server.c itself).
 */
#define DH_MHD_STRICTNESS (-1)
/*
 * libmicrohttpd answers of at least this many bytes of a file go out by sendfile from a
 * descriptor of their own, smaller ones from the blob's mapping (measured on 1 MiB: sendfile
 * 0.61-0.79x nginx at 256 connections where the mapping gave 0.37-0.46x; for 4 KiB ranges
 * the mapping saves a dup and a close per request). The direct path has its own threshold.
 */
#define DH_SENDFILE_MIN (64 * 1024)
/* Connections waiting in the kernel to be accepted by the direct path's threads (the
 * kernel caps it at net.core.somaxconn): a fleet connecting at once is queued, not refused. */
#define DH_LISTEN_BACKLOG 4096
/* Seconds a client beyond --max-connections is asked to wait (Retry-After of its 503). */
#define DH_CAP_RETRY_AFTER 2
/* Buckets of the rate-limit tables (http/ratelimit.c, about 64 bytes each): tokens busy at
 * the same moment, and addresses failing to authenticate at the same moment. A key pushed
 * out starts again with a full bucket; one that keeps asking is not pushed out. */
#define DH_RATE_TOKEN_SLOTS   4096
#define DH_RATE_ADDRESS_SLOTS 4096

static struct MHD_Daemon *daemon_h;
/* per token: --rate-limit per second, burst --rate-burst; per address: failed
 * authentications, --auth-fail-limit per minute. NULL when off. */
static struct dh_rate_table *token_rate, *auth_fail_rate;
static atomic_ullong n_rate_token, n_rate_auth, n_auth_failed;
static unsigned max_conns; /* --max-connections as fitted to the open-files limit */
static atomic_int stopping;
static atomic_ullong n_requests, n_2xx, n_3xx, n_4xx, n_5xx, n_upload;

int dh_http_stopping(void)
{
	return atomic_load(&stopping);
}

void dh_http_stats_get(struct dh_http_stats *out)
{
	struct dh_guard_stats g;
	struct dh_direct_stats d;

	out->requests = atomic_load(&n_requests);
	out->status_2xx = atomic_load(&n_2xx);
	out->status_3xx = atomic_load(&n_3xx);
	out->status_4xx = atomic_load(&n_4xx);
	out->status_5xx = atomic_load(&n_5xx);
	out->bytes_uploaded = atomic_load(&n_upload);
	dh_guard_stats_get(&g);
	out->conn_open = g.open;
	out->conn_refused_cap = g.refused_cap;
	out->conn_refused_address = g.refused_address;
	out->conn_refused_full = g.refused_full;
	out->head_timeouts = g.head_timeouts;
	out->body_timeouts = g.body_timeouts;
	out->timeout_408 = g.timeout_408;
	out->lingering = g.lingering;
	out->lingered = g.lingered;
	out->max_connections = max_conns;
	out->rate_limited_token = atomic_load(&n_rate_token);
	out->rate_limited_auth = atomic_load(&n_rate_auth);
	out->auth_failed = atomic_load(&n_auth_failed);
	dh_direct_stats_get(&d);
	out->direct_requests = d.requests;
	out->direct_handoffs = d.handoffs;
	out->direct_body_bytes = d.body_bytes;
}

static const struct {
	const char *name;
	enum dh_method m;
} method_names[] = {
	{ "GET", DH_GET },         { "HEAD", DH_HEAD },   { "POST", DH_POST },
	{ "PUT", DH_PUT },         { "PATCH", DH_PATCH }, { "DELETE", DH_DELETE },
	{ "OPTIONS", DH_OPTIONS },
};

static enum dh_method method_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
		if (strcmp(s, method_names[i].name) == 0)
			return method_names[i].m;
	}
	return 0;
}

/* ---- reply calls (req.h) ---- */

static enum dh_err set_response(struct dh_req *req, unsigned status, struct MHD_Response *r)
{
	req->answer_len = 0;
	if (!r)
		return DH_E_NOMEM;
	if (req->response)
		MHD_destroy_response(req->response);
	req->response = r;
	req->status = status;
	return DH_OK;
}

void dh_http_header(struct dh_req *req, const char *name, const char *value)
{
	if (req->answer) {
		if (req->answer->status && !dh_answer_header(req->answer, name, value))
			dh_error("http.header_overflow", "id=%s name=%s", req->id, name);
		return;
	}
	if (req->response)
		MHD_add_response_header(req->response, name, value);
}

enum dh_err dh_http_reply_text(struct dh_req *req, unsigned status, const char *ctype,
			       const char *text, size_t len)
{
	struct MHD_Response *r;
	enum dh_err rc;

	if (req->answer) {
		rc = dh_answer_copy(req->answer, status, text, len);
		if (rc == DH_OK && ctype)
			dh_http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
		return rc;
	}
	r = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
	rc = set_response(req, status, r);

	if (rc == DH_OK && ctype)
		dh_http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	return rc;
}

enum dh_err dh_http_reply_json(struct dh_req *req, unsigned status, json_t *body)
{
	/* Most answers fit: dumped here and copied once by MHD; json_dumps grows its buffer by
	 * realloc and copies it once more at the end. */
	static _Thread_local char small[DH_JSON_SMALL];
	const size_t flags = JSON_COMPACT | JSON_ENSURE_ASCII;
	size_t n = body ? json_dumpb(body, small, sizeof(small), flags) : 0;
	struct MHD_Response *r = NULL;
	char *text = NULL;
	bool answered = false; /* the direct path's answer was set */
	enum dh_err rc;

	if (n == 0)
		goto out;
	if (n <= sizeof(small)) {
		if (req->answer)
			answered = dh_answer_copy(req->answer, status, small, n) == DH_OK;
		else
			r = MHD_create_response_from_buffer(n, small, MHD_RESPMEM_MUST_COPY);
		goto out;
	}
	text = malloc(n);
	if (!text || json_dumpb(body, text, n, flags) != n)
		goto out;
	if (req->answer) {
		answered = dh_answer_copy(req->answer, status, text, n) == DH_OK;
		goto out;
	}
	r = MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_FREE);
	if (r)
		text = NULL;
out:
	free(text);
	json_decref(body);
	if (!r && !answered)
		return DH_E_NOMEM;
	rc = answered ? DH_OK : set_response(req, status, r);
	if (rc == DH_OK)
		dh_http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE,
			       "application/json; charset=utf-8");
	return rc;
}

/*
 * The answer of last resort: the code's own sentence, a fixed ASCII text built without
 * jansson, for when the detail could not be encoded or memory ran short. A client always
 * gets its status and code in JSON.
 */
static enum dh_err reply_error_fixed(struct dh_req *req, enum dh_err code)
{
	char text[256];
	int n = snprintf(text, sizeof(text), "{\"code\":\"%s\",\"detail\":\"%s\"}",
			 dh_err_name(code), dh_err_sentence(code));

	if (n < 0 || (size_t)n >= sizeof(text))
		return DH_E_INTERNAL; /* the table's texts are short: cannot happen */
	return dh_http_reply_text(req, dh_err_status(code), "application/json; charset=utf-8", text,
				  (size_t)n);
}

enum dh_err dh_http_reply_error(struct dh_req *req, const struct dh_error *err)
{
	json_t *body;
	enum dh_err code = err->code == DH_OK ? DH_E_INTERNAL : err->code;
	unsigned status = dh_err_status(code);

	/* struct dh_error keeps its detail and fields well-formed, so this only fails for want
	 * of memory; then the fixed answer still tells the client what happened */
	body = json_pack("{s:s, s:s}", "code", dh_err_name(code), "detail", dh_error_detail(err));
	if (body && err->fields && json_object_size(err->fields) &&
	    json_object_set(body, "fields", err->fields) != 0) {
		json_decref(body);
		body = NULL;
	}
	if (!body || dh_http_reply_json(req, status, body) != DH_OK) {
		dh_warn("http.reply_error", "id=%s code=%s fallback=fixed", req->id,
			dh_err_name(code));
		if (reply_error_fixed(req, code) != DH_OK)
			return DH_E_NOMEM;
	}
	if (status == 401)
		dh_http_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Token");
	if (status == 503 || status == 429) {
		char secs[24];
		snprintf(secs, sizeof(secs), "%u", req->retry_after ? req->retry_after : 1);
		dh_http_header(req, MHD_HTTP_HEADER_RETRY_AFTER, secs);
	}
	return DH_OK;
}

enum dh_err dh_http_reply_empty(struct dh_req *req, unsigned status)
{
	if (req->answer)
		return dh_answer_copy(req->answer, status, "", 0);
	return set_response(req, status,
			    MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT));
}

enum dh_err dh_http_reply_buffer(struct dh_req *req, unsigned status, const void *data, size_t len,
				 void (*release)(void *), void *cls)
{
	struct MHD_Response *r;
	enum dh_err rc;

	if (req->answer) {
		dh_answer_bytes(req->answer, status, data, len, release, cls);
		return DH_OK;
	}
	if (release)
		r = MHD_create_response_from_buffer_with_free_callback_cls(
			len, (void *)data, (MHD_ContentReaderFreeCallback)release, cls);
	else
		r = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
	if (!r && release)
		release(cls);
	rc = set_response(req, status, r);
	req->answer_len = len;
	return rc;
}

enum dh_err dh_http_reply_fd(struct dh_req *req, unsigned status, int fd, uint64_t off,
			     uint64_t len)
{
	struct MHD_Response *r;
	enum dh_err rc;

	if (req->answer) {
		dh_answer_file(req->answer, status, fd, true, NULL, off, len, NULL, NULL);
		return DH_OK;
	}
	r = MHD_create_response_from_fd_at_offset64(len, fd, off);
	if (!r)
		close(fd);
	rc = set_response(req, status, r);
	req->answer_len = len;
	return rc;
}

enum dh_err dh_http_reply_file(struct dh_req *req, unsigned status, int fd, const void *data,
			       uint64_t off, uint64_t len, void (*release)(void *), void *cls)
{
	int own;

	if (req->answer) {
		dh_answer_file(req->answer, status, fd, false, data, off, len, release, cls);
		return DH_OK;
	}
	/*
	 * libmicrohttpd closes the descriptor of its answer: give it one of its own (sendfile
	 * with an offset never moves the shared position). With TLS it would read the file into
	 * its buffer to encrypt it: sending from the mapping saves that copy and the descriptor;
	 * so does a small answer, and any answer when no descriptor is left.
	 */
	own = len < DH_SENDFILE_MIN || fd < 0 || *dh_cfg.tls_cert ? -1
								  : fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (own < 0)
		return dh_http_reply_buffer(req, status, (const uint8_t *)data + off, (size_t)len,
					    release, cls);
	if (release)
		release(cls);
	return dh_http_reply_fd(req, status, own, off, len);
}

struct stream_cls {
	dh_stream_read_fn read;
	void *cls;
	void (*release)(void *);
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream_cls *s = cls;
	long n = s->read(s->cls, pos, buf, max);

	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct stream_cls *s = cls;

	if (s->release)
		s->release(s->cls);
	free(s);
}

enum dh_err dh_http_reply_stream(struct dh_req *req, unsigned status, const char *ctype,
				 dh_stream_read_fn read, void *cls, void (*release)(void *))
{
	struct stream_cls *s = NULL;
	struct MHD_Response *r;
	enum dh_err rc;

	/*
	 * A HEAD gets the headers alone. libmicrohttpd 0.9.75 still writes the last chunk
	 * ("0\r\n\r\n") of a streamed answer to a HEAD, bytes that the client (or a proxy that
	 * keeps the connection) then takes for the start of the next answer.
	 */
	if (req->method == DH_HEAD && !req->answer) {
		if (release)
			release(cls);
		rc = dh_http_reply_empty(req, status);
		if (rc == DH_OK && ctype)
			dh_http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
		return rc;
	}
	s = req->answer ? NULL : calloc(1, sizeof(*s));
	if (!s) {
		if (release)
			release(cls);
		/* the direct path serves no stream (DH_ROUTE_DIRECT says so) */
		return req->answer ? DH_E_INTERNAL : DH_E_NOMEM;
	}
	s->read = read;
	s->cls = cls;
	s->release = release;
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
	if (!r) {
		stream_free(s);
		return DH_E_NOMEM;
	}
	rc = set_response(req, status, r);
	if (rc == DH_OK && ctype)
		dh_http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	return rc;
}

void dh_http_suspend(void *conn)
{
	MHD_suspend_connection(conn);
}

void dh_http_resume(void *conn)
{
	MHD_resume_connection(conn);
}

int dh_http_conn_fd(void *conn)
{
	const union MHD_ConnectionInfo *ci =
		conn ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD) : NULL;

	return ci ? ci->connect_fd : -1;
}

const char *dh_req_header(struct dh_req *req, const char *name)
{
	/* the direct path ended each value with a NUL in its buffer */
	if (req->head)
		return dh_head_get(req->head, name, NULL);
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *dh_req_query(struct dh_req *req, const char *name)
{
	/* a target with a query never takes the direct path */
	if (req->head)
		return NULL;
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* Is host (a Host header) one of --allowed-hosts? Case does not matter; a port must match
 * as written (an entry without one allows the Host without one only). */
static bool host_allowed(const char *host)
{
	const char *p = dh_cfg.allowed_hosts;
	size_t n = strlen(host);

	while (p && *p) {
		size_t len = strcspn(p, ",");
		const char *s = p, *e = p + len;
		while (s < e && *s == ' ')
			s++;
		while (e > s && e[-1] == ' ')
			e--;
		if ((size_t)(e - s) == n && strncasecmp(s, host, n) == 0)
			return true;
		p += len;
		if (*p == ',')
			p++;
	}
	return false;
}

/* scheme://address:port of this end of the client's connection: where the client reached the
 * server, which no header can change. false when the socket cannot say. */
static bool local_base_url(struct dh_req *req, const char *scheme, char *buf, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char addr[INET6_ADDRSTRLEN];
	int fd = req->head ? req->sock : dh_http_conn_fd(req->conn), n;
	unsigned port;

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return false;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		if (!inet_ntop(AF_INET, &a->sin_addr, addr, sizeof(addr)))
			return false;
		port = ntohs(a->sin_port);
		n = snprintf(buf, size, "%s://%s:%u", scheme, addr, port);
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		port = ntohs(a->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			/* an IPv4 client of a dual-stack socket: its IPv4 address */
			if (!inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], addr, sizeof(addr)))
				return false;
			n = snprintf(buf, size, "%s://%s:%u", scheme, addr, port);
		} else {
			if (!inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof(addr)))
				return false;
			n = snprintf(buf, size, "%s://[%s]:%u", scheme, addr, port);
		}
	} else {
		return false;
	}
	return n > 0 && (size_t)n < size;
}

void dh_req_base_url(struct dh_req *req, char *buf, size_t size)
{
	const char *scheme = *dh_cfg.tls_cert ? "https" : "http";
	const char *host;
	size_t n;

	if (dh_cfg.public_url && *dh_cfg.public_url) {
		snprintf(buf, size, "%s", dh_cfg.public_url);
		n = strlen(buf);
		if (n > 0 && buf[n - 1] == '/')
			buf[n - 1] = 0;
		return;
	}
	/*
	 * A Host header is the client's word, and links outlive the request: a session's link
	 * is handed to its device, which sends its token there. So the header counts only when
	 * the operator listed it (--allowed-hosts); otherwise the link names the address the
	 * client reached this server at (issue 10, item 6).
	 */
	host = dh_req_header(req, MHD_HTTP_HEADER_HOST);
	if (host && *host && strspn(host, DH_HOST_CHARS) == strlen(host) && host_allowed(host)) {
		snprintf(buf, size, "%s://%s", scheme, host);
		return;
	}
	if (!local_base_url(req, scheme, buf, size))
		snprintf(buf, size, "%s://localhost:%u", scheme, dh_cfg.port);
}

/* The next page's URL, grown as needed: a query is bounded only by what a request head
 * may hold (DH_MHD_TARGET_MAX), and every parameter is carried over. */
struct page_ctx {
	char *buf;
	size_t len, cap;
	bool failed;
};

static void page_put(struct page_ctx *c, const char *s, size_t n)
{
	if (c->failed)
		return;
	if (n >= c->cap - c->len) {
		size_t ncap = c->cap ? c->cap : 256;
		char *b;
		while (n >= ncap - c->len) {
			if (ncap > SIZE_MAX / 2) {
				c->failed = true;
				return;
			}
			ncap *= 2;
		}
		b = realloc(c->buf, ncap);
		if (!b) {
			c->failed = true;
			return;
		}
		c->buf = b;
		c->cap = ncap;
	}
	memcpy(c->buf + c->len, s, n);
	c->len += n;
	c->buf[c->len] = 0;
}

/* Percent-encodes s[0..n) but the unreserved characters of RFC 3986 (and '/' when keep_slash). */
static void page_put_escaped(struct page_ctx *c, const char *s, size_t n, bool keep_slash)
{
	static const char hx[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char e[3] = { '%', hx[ch >> 4], hx[ch & 15] };
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~' ||
		    (ch == '/' && keep_slash))
			page_put(c, s + i, 1);
		else
			page_put(c, e, 3);
	}
}

static enum MHD_Result page_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				size_t key_size, const char *value, size_t value_size)
{
	struct page_ctx *c = cls;

	(void)kind;
	if (strcmp(key, "limit") == 0 || strcmp(key, "offset") == 0)
		return MHD_YES;
	page_put(c, "&", 1);
	page_put_escaped(c, key, key_size, false);
	if (value) {
		page_put(c, "=", 1);
		page_put_escaped(c, value, value_size, false);
	}
	return c->failed ? MHD_NO : MHD_YES;
}

char *dh_req_page_url(struct dh_req *req, int64_t limit, int64_t offset)
{
	struct page_ctx c = { 0 };
	char base[DH_BASE_URL_MAX], tail[64];
	int n;

	dh_req_base_url(req, base, sizeof(base));
	n = snprintf(tail, sizeof(tail), "?limit=%lld&offset=%lld", (long long)limit,
		     (long long)offset);
	if (n < 0 || (size_t)n >= sizeof(tail))
		return NULL;
	page_put(&c, base, strlen(base));
	page_put_escaped(&c, req->path, strlen(req->path), true);
	page_put(&c, tail, (size_t)n);
	if (!req->head)
		MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, page_arg, &c);
	if (c.failed) {
		free(c.buf);
		return NULL;
	}
	return c.buf;
}

/*
 * Query arguments reach SQL (filters) and JSON (next links, error details): each name and
 * value must be well-formed UTF-8 without NUL, so that dh_req_query hands handlers only
 * text. Every bad one is named in req->err.
 */
static enum MHD_Result query_check(void *cls, enum MHD_ValueKind kind, const char *key,
				   size_t key_size, const char *value, size_t value_size)
{
	struct dh_req *req = cls;

	(void)kind;
	if (memchr(key, 0, key_size) || !dh_utf8_valid(key, key_size))
		dh_error_field(&req->err, key,
			       "the parameter's name must be UTF-8 text without NUL bytes");
	else if (value && (memchr(value, 0, value_size) || !dh_utf8_valid(value, value_size)))
		dh_error_field(&req->err, key, "must be UTF-8 text without NUL bytes");
	return MHD_YES;
}

/* ---- the request cycle ---- */

static void req_free(struct dh_req *req)
{
	if (!req)
		return;
	for (size_t i = 0; i < req->nargs; i++)
		free(req->args[i]);
	free(req->body);
	json_decref(req->json);
	dh_principal_release(&req->who);
	dh_error_release(&req->err);
	if (req->response)
		MHD_destroy_response(req->response);
	if (req->handler_state_free)
		req->handler_state_free(req->handler_state);
	free(req);
}

void dh_http_count_status(unsigned status)
{
	atomic_fetch_add(&n_requests, 1);
	if (status >= 500)
		atomic_fetch_add(&n_5xx, 1);
	else if (status >= 400)
		atomic_fetch_add(&n_4xx, 1);
	else if (status >= 300)
		atomic_fetch_add(&n_3xx, 1);
	else
		atomic_fetch_add(&n_2xx, 1);
}

/* The path as the log may show it: not one under a route whose path holds a credential (a
 * short link's token), whatever answered it -- a refused method, a refused target or body
 * framing before routing, a 404 -- so that no log reader can use it. */
static const char *log_path(const struct dh_req *req)
{
	return (req->route_flags & DH_ROUTE_SECRET_PATH) ||
			       dh_route_path_is_secret(dh_routes, dh_routes_count, req->path)
		       ? "(a path that holds a credential)"
		       : req->path;
}

/* What every answer does once it is decided: counted for /metrics, and logged. */
static void count_and_log(struct dh_req *req, unsigned status)
{
	dh_http_count_status(status);
	/* the server's own faults; 501, 503 and 505 answer what a client asked for */
	if (status == 500 || status == 502 || status == 504)
		dh_error("http.request", "id=%s method=%s path=%s status=%u code=%s", req->id,
			 req->method_name, log_path(req), status,
			 req->err.code ? dh_err_name(req->err.code) : "-");
	else if (dh_log_enabled(DH_LOG_DEBUG))
		dh_debug("http.request", "id=%s method=%s path=%s status=%u us=%lld", req->id,
			 req->method_name, log_path(req), status,
			 (long long)(dh_now_us() - req->start_us));
}

static enum MHD_Result queue(struct dh_req *req)
{
	enum MHD_Result r;
	const char *path = log_path(req);

	if (!req->response) {
		struct dh_error e = { .code = DH_E_INTERNAL };
		if (dh_http_reply_error(req, &e) != DH_OK) {
			dh_error("http.no_answer", "id=%s method=%s path=%s", req->id,
				 req->method_name, path);
			return MHD_NO;
		}
	}
	dh_guard_body_done(req->guard); /* answered: the rest of a body is no longer waited for */
	MHD_add_response_header(req->response, "X-Request-Id", req->id);
	if (req->close_after)
		MHD_add_response_header(req->response, MHD_HTTP_HEADER_CONNECTION, "close");
	r = dh_mhd_queue(req->conn, req->status, req->response);
	count_and_log(req, req->status);
	MHD_destroy_response(req->response);
	req->response = NULL;
	return r;
}

/* Replaces whatever answer was set with the error err (or req->err); DH_OK unless even the
 * fixed answer could not be made (out of memory). */
static enum dh_err answer_error(struct dh_req *req, enum dh_err code)
{
	if (req->err.code != code) {
		dh_error_release(&req->err);
		req->err.code = code;
	}
	if (req->response) {
		MHD_destroy_response(req->response);
		req->response = NULL;
	}
	if (req->answer)
		dh_answer_reset(req->answer);
	if (dh_http_reply_error(req, &req->err) != DH_OK) {
		dh_error("http.no_answer", "id=%s method=%s path=%s code=%s", req->id,
			 req->method_name, log_path(req), dh_err_name(code));
		return DH_E_NOMEM;
	}
	if (code == DH_E_METHOD) {
		char allow[96];
		dh_route_allow_string(req->allow_methods, allow, sizeof(allow));
		dh_http_header(req, MHD_HTTP_HEADER_ALLOW, allow);
	}
	return DH_OK;
}

/* Answers err (or req->err) now. */
static enum MHD_Result fail(struct dh_req *req, enum dh_err code)
{
	if (answer_error(req, code) != DH_OK)
		return MHD_NO;
	return queue(req);
}

static bool is_json_type(const char *ct)
{
	if (!ct)
		return false;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, "application/json", 16) == 0 &&
	       (ct[16] == 0 || ct[16] == ';' || ct[16] == ' ');
}

static enum dh_err parse_json_body(struct dh_req *req)
{
	/* a body on GET, HEAD or DELETE means nothing: ignore it */
	if (req->body_len == 0 || (req->method & (DH_GET | DH_HEAD | DH_DELETE)))
		return DH_OK;
	if (!is_json_type(dh_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE)))
		return dh_error_set(
			&req->err, DH_E_MEDIA_TYPE,
			"The body must be JSON sent as Content-Type: application/json.");
	return dh_json_body_parse(req->body, req->body_len, &req->json, &req->err);
}

static enum dh_err append_body(struct dh_req *req, const char *data, size_t len)
{
	uint64_t limit = dh_cfg.max_body;

	if (req->body_too_large)
		return DH_OK;
	if (len > limit || req->body_len > limit - len) {
		req->body_too_large = true;
		return DH_OK;
	}
	if (req->body_len + len + 1 > req->body_cap) {
		size_t ncap = req->body_cap ? req->body_cap : 1024;
		char *n;
		while (ncap < req->body_len + len + 1)
			ncap *= 2;
		n = realloc(req->body, ncap);
		if (!n)
			return DH_E_NOMEM;
		req->body = n;
		req->body_cap = ncap;
	}
	memcpy(req->body + req->body_len, data, len);
	req->body_len += len;
	req->body[req->body_len] = 0;
	return DH_OK;
}

/* Eight lower-case hex digits of v at out (no NUL). */
static void hex32(char *out, uint32_t v)
{
	static const char hx[] = "0123456789abcdef";

	for (int i = 7; i >= 0; i--, v >>= 4)
		out[i] = hx[v & 15];
}

static atomic_ullong id_counter;

/* "%08llx%08llx" of the seconds and a counter, without printf's per-call cost */
static void request_id(char *out, int64_t now_us)
{
	unsigned long long n = atomic_fetch_add(&id_counter, 1);

	hex32(out, (uint32_t)(now_us / 1000000));
	hex32(out + 8, (uint32_t)n);
	out[16] = 0;
}

void dh_http_request_id(char out[17])
{
	request_id(out, dh_now_us());
}

static struct dh_req *req_new(struct MHD_Connection *conn)
{
	struct dh_req *req = calloc(1, sizeof(*req));

	if (!req)
		return NULL;
	req->conn = conn;
	req->start_us = dh_now_us();
	request_id(req->id, req->start_us);
	return req;
}

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static unsigned hex_value(unsigned char c)
{
	return c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

/*
 * Why a request target as received cannot be served, or NULL. MHD decodes %XX in place and
 * hands the path on as a C string, so a %00 would cut it ("/index.html%00.js" would serve
 * index.html) and other control bytes would reach handlers and logs: any space or control
 * byte, raw or %-encoded, in the path or the query is refused before routing.
 */
static const char *target_problem(const char *t)
{
	for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
		if (*p <= 0x20 || *p == 0x7f)
			return "The request target contains a space or a control character.";
		if (*p == '%' && is_hex(p[1]) && is_hex(p[2])) {
			unsigned v = hex_value(p[1]) * 16 + hex_value(p[2]);
			if (v < 0x20 || v == 0x7f)
				return "The request target encodes a control character (%00 to %1F, "
				       "%7F).";
		}
	}
	return NULL;
}

/* The guard's record of a connection (set by on_connection), or NULL. */
static struct dh_guard_conn *guard_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

/* MHD's accept policy: the per-address limit. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	(void)cls;
	(void)addrlen;
	return dh_guard_address_allowed(addr) ? MHD_YES : MHD_NO;
}

/* MHD's connection start and end: the guard keeps a record of each connection. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	const union MHD_ConnectionInfo *fd, *addr;

	(void)cls;
	if (code != MHD_CONNECTION_NOTIFY_STARTED) {
		/* a request MHD closed without ending it (it does so after a second error in one
		 * request, e.g. when its memory ran out): it no longer holds it */
		req_free(dh_guard_user(*socket_context));
		/* MHD closes the socket right after this (and takes it out of its epoll set, if
		 * it has one, before): a lingering close keeps a duplicate */
		dh_guard_close_lingering(*socket_context);
		*socket_context = NULL;
		return;
	}
	fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	addr = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!fd)
		return;
	/* handed over by the direct path: its record, head deadline and all, comes along */
	*socket_context = dh_direct_take_guard(fd->connect_fd);
	if (*socket_context)
		return;
	/* on_accept asked for the address first, but pool threads accept at once: the guard
	 * admits under its lock. Refused, or out of memory (without a record it would escape
	 * every limit): closed without an answer. */
	*socket_context = dh_guard_admit(fd->connect_fd, addr ? addr->client_addr : NULL,
					 *dh_cfg.tls_cert != 0);
	if (!*socket_context)
		shutdown(fd->connect_fd, SHUT_RDWR);
}

/*
 * MHD is about to store a header, query parameter or trailer of the connection's request:
 * the head may hold DH_MHD_HEAD_MAX, the request line with its parameters DH_MHD_TARGET_MAX
 * (a parameter's bytes are the request line's, counted when it arrived). A parameter beyond
 * makes the target too long (414).
 */
static bool shim_may_store(struct MHD_Connection *conn, enum MHD_ValueKind kind, size_t bytes)
{
	struct dh_req *req = dh_guard_user(guard_of(conn));
	bool is_query = kind == MHD_GET_ARGUMENT_KIND;
	size_t cost = DH_HEAD_ENTRY_COST + (is_query ? 0 : bytes);
	size_t max = is_query ? DH_MHD_TARGET_MAX : DH_MHD_HEAD_MAX;

	if (!req)
		return true;
	if (req->head_cost > max || cost > max - req->head_cost) {
		if (is_query)
			req->target_too_long = true;
		return false;
	}
	req->head_cost += cost;
	return true;
}

static bool shim_may_answer(struct MHD_Connection *conn)
{
	struct dh_guard_conn *g = guard_of(conn);

	if (!dh_guard_may_answer(g))
		return false;
	/* the library answers a malformed head and closes: the rest may still be coming */
	dh_guard_answered_early(g);
	return true;
}

/*
 * MHD's URI log callback: called with the raw request target as soon as the request line is
 * parsed, before MHD decodes it. The request context starts here (MHD hands what this
 * returns to every later callback of the request, also when the head never completes).
 */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct dh_req *req = req_new(conn);

	(void)cls;
	if (req) {
		req->guard = guard_of(conn);
		/* the connection's request until on_completed: MHD does not always end a request
		 * it gives up on (on_connection frees it then), and never holds two at once */
		req_free(dh_guard_user(req->guard));
		dh_guard_set_user(req->guard, req);
		req->raw_target = uri;
		req->raw_target_len = strlen(uri);
		req->target_problem = target_problem(uri);
		req->head_cost = req->raw_target_len + DH_HEAD_ENTRY_COST;
		req->target_too_long = req->head_cost > DH_MHD_TARGET_MAX;
	}
	return req;
}

struct framing {
	unsigned n_length, n_coding, n_host;
	const char *length, *coding;
	const char *bad; /* why a header line cannot be trusted, or NULL */
};

/* RFC 9110 5.6.2: a token, what a header name must be. */
static bool is_token(const char *s, size_t n)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == 0 || !strchr(tchar, s[i]))
			return false;
	}
	return true;
}

/* Does name start with the framing header framing and go on (case does not matter)? */
static bool extends(const char *name, size_t n, const char *framing)
{
	size_t k = strlen(framing);

	return n > k && strncasecmp(name, framing, k) == 0;
}

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
				      size_t key_size, const char *value, size_t value_size)
{
	struct framing *f = cls;

	(void)kind;
	/*
	 * libmicrohttpd 0.9.75 takes a line that starts with a space or tab (obsolete line
	 * folding) as a continuation and appends it to the header's *name*, keeping the value
	 * of the first line: "Content-Length: 0" + " 2" reaches us as "Content-Length2: 0",
	 * while a proxy that joins folded lines reads "Content-Length: 02". A name that is no
	 * token, or a framing header's name with more after it, is that mark; a value with a
	 * control byte (a bare CR, which a proxy may take for the end of the line) is refused
	 * as well (RFC 9112 2.2, 5.2).
	 */
	if (!is_token(key, key_size) || extends(key, key_size, MHD_HTTP_HEADER_CONTENT_LENGTH) ||
	    extends(key, key_size, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
		f->bad = "A header line is malformed: a name that is not a token, or a line that "
			 "continues the one before it (obsolete line folding).";
		return MHD_YES;
	}
	for (size_t i = 0; value && i < value_size; i++) {
		unsigned char c = (unsigned char)value[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			f->bad = "A header value contains a control character (a bare CR, for "
				 "one).";
			return MHD_YES;
		}
	}
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		f->n_length++;
		f->length = value;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		f->n_coding++;
		f->coding = value;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
		f->n_host++;
	}
	return MHD_YES;
}

/*
 * How the body is delimited must be beyond doubt, or a request could be read one way here
 * and another way by a proxy in front (request smuggling), or wait forever for a body MHD
 * cannot delimit. Accepted: no body headers, one Content-Length that is a decimal number,
 * or one "Transfer-Encoding: chunked" (exactly what MHD decodes), among header lines that
 * are read the same way by everyone (see framing_header) and one Host at most. Everything
 * else is answered at once, and the connection is closed after the answer.
 */
static enum dh_err check_framing(struct dh_req *req)
{
	struct framing f = { 0 };
	uint64_t n = 0;
	enum dh_err rc = DH_OK;

	MHD_get_connection_values_n(req->conn, MHD_HEADER_KIND, framing_header, &f);
	if (f.bad)
		rc = dh_error_set(&req->err, DH_E_BAD_REQUEST, "%s", f.bad);
	else if (f.n_host > 1)
		rc = dh_error_set(&req->err, DH_E_BAD_REQUEST, "Host may be sent once.");
	else if (f.n_coding > 1)
		rc = dh_error_set(&req->err, DH_E_BAD_REQUEST,
				  "Transfer-Encoding may be sent once.");
	else if (f.n_coding == 1 && f.n_length > 0)
		rc = dh_error_set(&req->err, DH_E_BAD_REQUEST,
				  "A request may not carry both Transfer-Encoding and "
				  "Content-Length.");
	else if (f.n_coding == 1 && strcasecmp(f.coding, "chunked") != 0)
		rc = dh_error_set(&req->err, DH_E_NOT_IMPLEMENTED,
				  "Only 'Transfer-Encoding: chunked' is supported for request "
				  "bodies.");
	else if (f.n_length > 1)
		rc = dh_error_set(&req->err, DH_E_BAD_REQUEST, "Content-Length may be sent once.");
	else if (f.n_length == 1 && !dh_parse_u64(f.length, &n))
		rc = f.length[0] && strspn(f.length, "0123456789") == strlen(f.length)
			     ? dh_error_set(&req->err, DH_E_TOO_LARGE,
					    "The Content-Length is larger than the server accepts.")
			     : dh_error_set(&req->err, DH_E_BAD_REQUEST,
					    "Content-Length must be a decimal number of bytes.");
	if (rc != DH_OK)
		req->close_after = true;
	else
		req->has_body = f.n_coding == 1 || (f.n_length == 1 && n > 0);
	return rc;
}

/*
 * An answer from the first call, before any of the body was read: MHD then closes the
 * connection after it, while a client that announced a body may still be sending it. The
 * guard drains such a connection before it is really closed (lingering close, guard.h), or
 * the kernel's reset would destroy the answer in the client's buffers.
 */
static void answer_early(struct dh_req *req)
{
	if (req->close_after || dh_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH) ||
	    dh_req_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING))
		dh_guard_answered_early(req->guard);
}

/* Whole seconds for Retry-After from milliseconds, at least 1. */
static unsigned retry_seconds(uint64_t ms)
{
	uint64_t s = (ms + 999) / 1000;

	return s < 1 ? 1 : s > 3600 ? 3600 : (unsigned)s;
}

/*
 * Authentication with its two rate limits. An address whose failed authentications used up
 * --auth-fail-limit gets 429 for every request with credentials, before they are looked
 * at: a guesser learns nothing more until its bucket refills (a refused request costs no
 * failure). A request without credentials is 401 and counts as no failure. An
 * authenticated token whose user's tokens together went beyond --rate-limit gets 429.
 */
static enum dh_err authenticate(struct dh_req *req)
{
	const uint8_t *addr = dh_guard_client_key(req->guard);
	bool has_credentials = dh_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION) != NULL;
	uint64_t wait;
	enum dh_err rc;

	if (has_credentials &&
	    (wait = dh_rate_peek(auth_fail_rate, addr, DH_CLIENT_KEY_LEN, dh_mono_ms()))) {
		atomic_fetch_add(&n_rate_auth, 1);
		req->retry_after = retry_seconds(wait);
		return dh_error_set(&req->err, DH_E_RATE,
				    "Too many failed authentications from your address; retry in "
				    "%u s.",
				    req->retry_after);
	}
	rc = dh_api_authenticate(req);
	if (rc == DH_E_UNAUTHORIZED && has_credentials) {
		atomic_fetch_add(&n_auth_failed, 1);
		dh_rate_take(auth_fail_rate, addr, DH_CLIENT_KEY_LEN, dh_mono_ms());
	}
	if (rc != DH_OK)
		return rc;
	/* one bucket per user, not per token: any token can mint more tokens for its user, so a
	 * bucket per token would bound nothing */
	wait = dh_rate_take(token_rate, req->who.user_id, strlen(req->who.user_id), dh_mono_ms());
	if (wait) {
		atomic_fetch_add(&n_rate_token, 1);
		req->retry_after = retry_seconds(wait);
		return dh_error_set(
			&req->err, DH_E_RATE,
			"This token's user made more than %u requests a second; retry in %u s.",
			dh_cfg.rate_limit, req->retry_after);
	}
	return DH_OK;
}

/* First call for a request: route, authenticate, check declared body size. Returns
 * DH_OK to go on reading the body. */
static enum dh_err begin(struct dh_req *req)
{
	struct dh_route_match m;
	const char *cl;
	uint64_t declared, limit;
	char allow[96];
	enum dh_err rc;

	if (dh_http_stopping())
		return dh_error_set(&req->err, DH_E_UNAVAILABLE, "The server is shutting down.");
	if (req->target_problem)
		return dh_error_set(&req->err, DH_E_BAD_REQUEST, "%s", req->target_problem);
	if (req->target_too_long) {
		req->close_after = true;
		return dh_error_set(&req->err, DH_E_URI_TOO_LONG,
				    "The request target, with its query parameters, is longer than "
				    "the server accepts (%u bytes).",
				    (unsigned)DH_MHD_TARGET_MAX);
	}
	/* a plain head of the direct path has no body headers (http/head.c) */
	rc = req->head ? DH_OK : check_framing(req);
	if (rc != DH_OK)
		return rc;
	if (!dh_route_find(dh_routes, dh_routes_count, req->method, req->path, &m)) {
		if (!(req->method & (DH_GET | DH_HEAD)) || strncmp(req->path, "/api/", 5) == 0)
			return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such path: %.*s",
					    DH_TEXT_CUT(req->path, 200));
		m.route = &dh_route_static;
	}
	req->route_flags = m.owner ? m.owner->flags : 0;
	if (!m.route) {
		req->allow_methods = m.allowed;
		dh_route_allow_string(m.allowed, allow, sizeof(allow));
		dh_error_set(&req->err, DH_E_METHOD, "Method %s not allowed here; allowed: %s.",
			     req->method_name, allow);
		return DH_E_METHOD;
	}
	req->route = m.route;
	for (size_t i = 0; i < m.nargs; i++) {
		req->args[i] = strndup(m.arg_start[i], m.arg_len[i]);
		if (!req->args[i])
			return DH_E_NOMEM;
		req->nargs++;
	}
	req->db = dh_db_thread();
	if (!req->db)
		return dh_error_set(&req->err, DH_E_UNAVAILABLE, "The database is not reachable.");
	if (req->route->right != DH_ACT_NONE) {
		rc = authenticate(req);
		if (rc != DH_OK)
			return rc;
		if (!dh_rights_any(&req->who, req->route->right)) {
			/* an id that names nothing is 404 for every caller (API.md), and so is
			 * one beyond the caller's every grant (README, "Security model") */
			if (req->nargs && !dh_api_route_id_visible(req))
				return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such object.");
			return dh_error_set(&req->err, DH_E_FORBIDDEN,
					    "This needs the '%s' right, which your token lacks.",
					    dh_action_name(req->route->right));
		}
	}
	/* a capture names an object by uuid or tid: text that is not UTF-8 names nothing */
	for (size_t i = 0; i < req->nargs; i++) {
		if (!dh_utf8_valid(req->args[i], strlen(req->args[i])))
			return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such object: '%s'.",
					    req->args[i]);
	}
	if (!req->head) /* nor a query */
		MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, query_check, req);
	if (req->err.code != DH_OK)
		return dh_error_set(&req->err, DH_E_INVALID,
				    "Query parameters must be UTF-8 text without NUL bytes.");
	/* a streamed upload's --max-upload bounds its file; the form around it has its own */
	limit = (req->route->flags & DH_ROUTE_STREAM_BODY)
			? dh_multipart_body_limit(dh_cfg.max_upload)
			: dh_cfg.max_body;
	cl = dh_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && dh_parse_u64(cl, &declared) && declared > limit)
		return dh_error_set(&req->err, DH_E_TOO_LARGE,
				    "The body of %llu bytes is larger than the limit of %llu.",
				    (unsigned long long)declared, (unsigned long long)limit);
	return DH_OK;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct dh_req *req = *con_cls;
	enum dh_err rc;

	(void)cls;
	if (!req) {
		/* on_request_line could not allocate it: without the raw target the path cannot
		 * be checked, so do not serve it */
		req = req_new(conn);
		if (!req)
			return MHD_NO;
		*con_cls = req;
		req->begun = true;
		req->method = method_parse(method);
		req->method_name = method;
		req->path = url;
		return fail(req, DH_E_NOMEM);
	}
	if (!req->begun) {
		bool refuse;
		req->begun = true;
		req->method = method_parse(method);
		req->method_name = method;
		req->path = url;
		if (!dh_guard_head_done(req->guard, &refuse))
			return MHD_NO; /* the guard cut it (head too late): close, do not answer */
		if (refuse) {
			req->close_after = true;
			req->retry_after = DH_CAP_RETRY_AFTER;
			answer_early(req);
			return fail(req, dh_error_set(&req->err, DH_E_UNAVAILABLE,
						      "The server serves %u connections at once, "
						      "its limit; retry later.",
						      max_conns));
		}
		/* MHD found the version after the raw target; if the target's C string ends
		 * earlier, a raw NUL byte cut it */
		if (!req->target_problem && (uintptr_t)url == (uintptr_t)req->raw_target &&
		    (uintptr_t)version != (uintptr_t)url + req->raw_target_len + 1)
			req->target_problem = "The request target contains a NUL byte.";
		rc = begin(req);
		if (rc != DH_OK) {
			answer_early(req);
			return fail(req, rc);
		}
		if (req->has_body)
			dh_guard_body_begin(req->guard);
		return MHD_YES;
	}
	if (req->status) /* already answered (an error while streaming) */ {
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size) {
		size_t len = *upload_size;
		*upload_size = 0;
		atomic_fetch_add(&n_upload, len);
		dh_guard_body_bytes(req->guard, len);
		if (req->route->flags & DH_ROUTE_STREAM_BODY) {
			rc = req->route->stream(req, upload, len);
			if (rc != DH_OK)
				return fail(req, rc);
			return MHD_YES;
		}
		rc = append_body(req, upload, len);
		if (rc != DH_OK)
			return fail(req, rc);
		return MHD_YES;
	}
	/* the whole body is here: its rate no longer matters, however long the handler takes
	 * (a large upload's fsync and rename, for one) */
	dh_guard_body_done(req->guard);
	if (req->body_too_large)
		return fail(req, dh_error_set(&req->err, DH_E_TOO_LARGE,
					      "The body is larger than the limit of %llu bytes.",
					      (unsigned long long)dh_cfg.max_body));
	if (!(req->route->flags & (DH_ROUTE_STREAM_BODY | DH_ROUTE_RAW_BODY))) {
		rc = parse_json_body(req);
		if (rc != DH_OK)
			return fail(req, rc);
	}
	rc = req->route->handler(req);
	if (rc != DH_OK)
		return fail(req, rc);
	return queue(req);
}

void dh_http_serve_direct(struct dh_req *req, bool over_cap)
{
	enum dh_err rc;

	if (over_cap) {
		req->close_after = true;
		req->retry_after = DH_CAP_RETRY_AFTER;
		rc = dh_error_set(
			&req->err, DH_E_UNAVAILABLE,
			"The server serves %u connections at once, its limit; retry later.",
			max_conns);
		goto early;
	}
	rc = begin(req);
	if (rc != DH_OK)
		goto early;
	rc = req->route->handler(req);
	if (rc == DH_OK && !req->answer->status)
		rc = DH_E_INTERNAL; /* a handler that answered nothing */
	if (rc != DH_OK && answer_error(req, rc) != DH_OK)
		return; /* no answer at all: the direct path closes the connection */
	count_and_log(req, req->answer->status);
	return;
early:
	/* as libmicrohttpd does with an answer queued before the body could be read */
	req->answer->before_handler = true;
	if (answer_error(req, rc) == DH_OK)
		count_and_log(req, req->answer->status);
}

void dh_http_release_direct(struct dh_req *req)
{
	for (size_t i = 0; i < req->nargs; i++)
		free(req->args[i]);
	json_decref(req->json);
	dh_principal_release(&req->who);
	dh_error_release(&req->err);
	if (req->handler_state_free)
		req->handler_state_free(req->handler_state);
	if (req->on_done) /* never started: nothing was sent */
		req->on_done(0, req->on_done_cls);
	req->on_done = NULL;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct dh_req *req = *con_cls;

	(void)cls;
	/* libmicrohttpd does not tell how much of an answer cut short was sent */
	if (req && req->on_done)
		req->on_done(toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? req->answer_len : 0,
			     req->on_done_cls);
	/* kept alive: the next request's head has its own deadline */
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		dh_guard_request_done(guard_of(conn));
	if (req && dh_guard_user(req->guard) == req)
		dh_guard_set_user(req->guard, NULL);
	req_free(req);
	*con_cls = NULL;
}

/*
 * MHD's messages while the daemon starts or stops concern the operator (a port in use, a TLS
 * setting). Once it serves, nearly all are about one client's malformed request or dropped
 * connection, which any client can cause at will: those are debug lines, so that a client
 * cannot flood the log. Running out of descriptors or hitting the connection limit stays a
 * warning.
 */
static atomic_bool mhd_serving;

static void log_mhd(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = 0;
	if (!atomic_load(&mhd_serving) || strstr(msg, "resource limit") ||
	    strstr(msg, "connection limit"))
		dh_warn("http.mhd", "detail=\"%s\"", msg);
	else
		dh_debug("http.mhd", "detail=\"%s\"", msg);
}

/* Connections accepted beyond --max-connections only to be answered 503: an eighth more,
 * and some more for small caps, so that a burst beyond the cap is answered, not queued. */
static unsigned reserve_for(unsigned max)
{
	return max / 8 + 16;
}

/*
 * Descriptors max served connections (and their reserve) may need. A connection holds its
 * socket. Downloads on the direct path and with TLS send from the blob cache's shared
 * descriptors; a file of their own is held by uploads (the temporary file) and by the
 * answers libmicrohttpd sends by sendfile on plain HTTP: an eighth of the connections is
 * counted for those, all of them when the direct path is off (every connection may then be
 * a download holding its image file). Sockets in a lingering close are counted too.
 */
static uint64_t descriptors_for(unsigned max, bool own_files)
{
	uint64_t files = own_files ? max : max / 8;

	return (uint64_t)max + reserve_for(max) + files + DH_FD_OTHER + DH_GUARD_LINGER_MAX;
}

/* The cap that fits the open-files limit: lowers max until descriptors_for(max) fits. */
static unsigned fit_connections(unsigned max, bool own_files)
{
	struct rlimit rl;
	uint64_t nofile;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return max;
	nofile = rl.rlim_cur;
	while (max > 1 && descriptors_for(max, own_files) > nofile)
		max = max > 4096 ? max - max / 16 : max - 1;
	if (max != dh_cfg.max_connections)
		dh_warn("http.limits",
			"max_connections=%u requested=%u nofile=%llu detail=\"lowered to fit the "
			"open-files limit: each connection holds a socket, some a file too\"",
			max, dh_cfg.max_connections, (unsigned long long)nofile);
	return max;
}

static void stop_rate_limits(void)
{
	dh_rate_table_free(token_rate);
	dh_rate_table_free(auth_fail_rate);
	token_rate = auth_fail_rate = NULL;
}

static enum dh_err start_rate_limits(struct dh_error *err)
{
	/* units: a request is 1000, refilled --rate-limit a millisecond; a failure is 60000,
	 * refilled --auth-fail-limit a millisecond (ratelimit.h) */
	struct dh_rate_config tok = { .capacity = (uint64_t)dh_cfg.rate_burst * 1000,
				      .refill_per_ms = dh_cfg.rate_limit,
				      .cost = 1000 };
	struct dh_rate_config fail = { .capacity = (uint64_t)dh_cfg.auth_fail_limit * 60000,
				       .refill_per_ms = dh_cfg.auth_fail_limit,
				       .cost = 60000 };

	if (dh_cfg.rate_limit) {
		token_rate = dh_rate_table_new(&tok, DH_RATE_TOKEN_SLOTS);
		if (!token_rate)
			return dh_error_set(err, DH_E_NOMEM, "No memory for the rate-limit table");
	}
	if (dh_cfg.auth_fail_limit) {
		auth_fail_rate = dh_rate_table_new(&fail, DH_RATE_ADDRESS_SLOTS);
		if (!auth_fail_rate)
			return dh_error_set(err, DH_E_NOMEM, "No memory for the rate-limit table");
	}
	dh_info("http.rate_limits", "per_token_per_s=%u burst=%u auth_failures_per_min=%u",
		dh_cfg.rate_limit, dh_cfg.rate_burst, dh_cfg.auth_fail_limit);
	return DH_OK;
}

/*
 * The listening socket of the direct path, bound and listening as libmicrohttpd would make
 * it (SO_REUSEADDR; an IPv6 address serves IPv6 only), non-blocking. -1 with err filled.
 */
static int listen_socket(const struct sockaddr *sa, socklen_t len, unsigned *port,
			 struct dh_error *err)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in6 bound;
	socklen_t blen = sizeof(bound);

	if (fd < 0) {
		dh_error_set(err, DH_E_IO, "Cannot make a socket: errno %d", errno);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, sa, len) != 0 || listen(fd, DH_LISTEN_BACKLOG) != 0 ||
	    getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
		dh_error_set(err, DH_E_IO, "Cannot listen on %s port %u", dh_cfg.listen,
			     dh_cfg.port);
		close(fd);
		return -1;
	}
	*port = ntohs(bound.sin6_port); /* the port sits at the same place in sockaddr_in */
	return fd;
}

enum dh_err dh_http_start(unsigned *bound_port, struct dh_error *err)
{
	/*
	 * poll(), not epoll: with MHD 0.9.75's edge-triggered epoll a client that hung up in the
	 * middle of an upload was at times not noticed until the connection timeout, keeping the
	 * request (and its temporary blob file) alive for two minutes; test_firmware's aborted
	 * upload test failed about one run in two. poll() is level-triggered and sees the hang-up.
	 */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG |
			 MHD_ALLOW_SUSPEND_RESUME;
	struct sockaddr_in6 a6 = { 0 };
	struct sockaddr_in a4 = { 0 };
	struct sockaddr *sa;
	const char *cert = dh_tls_cert_pem(), *key = dh_tls_key_pem();
	const union MHD_DaemonInfo *info;
	socklen_t sa_len;
	/* with TLS libmicrohttpd holds every connection: the direct path speaks plain HTTP */
	bool direct = dh_cfg.http_direct && !*dh_cfg.tls_cert;
	int lfd = -1;
	struct dh_guard_limits gl = { 0 };
	enum dh_err rc;

	if (!dh_mhd_shim_init())
		dh_warn("http.mhd_shim",
			"detail=\"libmicrohttpd's own error pages are not replaced: "
			"MHD_queue_response does not resolve to devicehubd's\"");
	if (strchr(dh_cfg.listen, ':')) {
		a6.sin6_family = AF_INET6;
		a6.sin6_port = htons((uint16_t)dh_cfg.port);
		if (inet_pton(AF_INET6, dh_cfg.listen, &a6.sin6_addr) != 1)
			return dh_error_set(err, DH_E_INVALID, "--listen %s is not an address",
					    dh_cfg.listen);
		flags |= MHD_USE_IPv6;
		sa = (struct sockaddr *)&a6;
		sa_len = sizeof(a6);
	} else {
		a4.sin_family = AF_INET;
		a4.sin_port = htons((uint16_t)dh_cfg.port);
		if (inet_pton(AF_INET, dh_cfg.listen, &a4.sin_addr) != 1)
			return dh_error_set(err, DH_E_INVALID, "--listen %s is not an address",
					    dh_cfg.listen);
		sa = (struct sockaddr *)&a4;
		sa_len = sizeof(a4);
	}
	if (*dh_cfg.tls_cert) {
		/* main() loaded and checked them with dh_tls_load */
		if (!cert || !key)
			return dh_error_set(err, DH_E_INTERNAL, "TLS files were not loaded");
		flags |= MHD_USE_TLS;
	}
	max_conns = fit_connections(dh_cfg.max_connections, !direct && !*dh_cfg.tls_cert);
	gl.max_connections = max_conns;
	gl.reserve = reserve_for(max_conns);
	gl.per_address = dh_cfg.max_connections_per_address;
	gl.head_timeout_ms = dh_cfg.head_timeout * 1000;
	gl.min_body_rate = dh_cfg.min_body_rate;
	gl.request_id = dh_http_request_id;
	rc = start_rate_limits(err);
	if (rc == DH_OK)
		rc = dh_guard_start(&gl, err);
	if (rc != DH_OK) {
		stop_rate_limits();
		return rc;
	}
	dh_mhd_shim_may_answer = shim_may_answer;
	dh_mhd_shim_may_store = shim_may_store;
	if (direct) {
		lfd = listen_socket(sa, sa_len, bound_port, err);
		if (lfd < 0) {
			dh_guard_stop();
			stop_rate_limits();
			return err->code;
		}
		/* connections come from the direct path, which applied the accept policy */
		flags |= MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
	}
	daemon_h = MHD_start_daemon(
		flags, (uint16_t)dh_cfg.port, direct ? NULL : on_accept, NULL, on_request, NULL,
		MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL, MHD_OPTION_SOCK_ADDR, sa,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)dh_cfg.http_threads,
		MHD_OPTION_CONNECTION_LIMIT, gl.max_connections + gl.reserve,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)DH_CONN_MEMORY,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)DH_CONN_TIMEOUT,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_URI_LOG_CALLBACK,
		on_request_line, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
		MHD_OPTION_STRICT_FOR_CLIENT, (int)DH_MHD_STRICTNESS,
		cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert, MHD_OPTION_HTTPS_MEM_KEY,
		key, MHD_OPTION_HTTPS_PRIORITIES, dh_cfg.tls_priorities, MHD_OPTION_END);
	if (!daemon_h) {
		if (lfd >= 0)
			close(lfd);
		dh_guard_stop();
		stop_rate_limits();
		return dh_error_set(err, DH_E_IO, "Cannot listen on %s port %u", dh_cfg.listen,
				    dh_cfg.port);
	}
	if (direct) {
		rc = dh_direct_start(lfd, dh_cfg.http_threads, daemon_h, DH_CONN_TIMEOUT, err);
		if (rc != DH_OK) {
			MHD_stop_daemon(daemon_h);
			daemon_h = NULL;
			dh_direct_forget_handoffs();
			dh_guard_stop();
			stop_rate_limits();
			return rc;
		}
	}
	dh_info("http.limits",
		"max_connections=%u reserve=%u per_address=%u head_timeout_s=%u "
		"min_body_rate=%u idle_timeout_s=%u",
		gl.max_connections, gl.reserve, gl.per_address, dh_cfg.head_timeout,
		gl.min_body_rate, DH_CONN_TIMEOUT);
	dh_info("http.paths", "direct=%s threads=%u", direct ? "yes" : "no", dh_cfg.http_threads);
	atomic_store(&mhd_serving, true);
	if (!direct) {
		info = MHD_get_daemon_info(daemon_h, MHD_DAEMON_INFO_BIND_PORT);
		*bound_port = info ? info->port : dh_cfg.port;
	}
	return DH_OK;
}

void dh_http_stop(void)
{
	atomic_store(&stopping, 1);
	atomic_store(&mhd_serving, false);
	if (daemon_h) {
		dh_direct_stop(); /* first: it hands connections to libmicrohttpd */
		MHD_stop_daemon(daemon_h);
		daemon_h = NULL;
		dh_direct_forget_handoffs();
		dh_guard_stop(); /* every connection is closed now */
		stop_rate_limits();
	}
	dh_tls_release();
}
