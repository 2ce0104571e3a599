/*
 * JSON instead of libmicrohttpd's own HTML error pages.
 *
 * MHD 0.9.75 answers some requests before any callback of ours runs: a request line or
 * head larger than the connection's memory (414, 431), a header line without a colon, a
 * malformed chunk (400), a chunk size beyond 64 bits (413), an HTTP version other than 1.x
 * (505). It does so in transmit_error_response_len() with a fixed HTML page, and offers no
 * option or callback to change it. For a Content-Length it cannot parse it is worse: it
 * queues the page from parse_connection_headers(), then falls through into the normal
 * reply path and writes the status line and headers a second time.
 *
 * The library functions involved are exported and called from inside the library through
 * its procedure linkage table (readelf -r libmicrohttpd.so.12 lists JUMP_SLOT relocations
 * for MHD_queue_response, MHD_lookup_connection_value_n and MHD_set_connection_value_n), so
 * a definition in the executable takes their place for the library's own calls too, the
 * same way a program's malloc replaces libc's. The three definitions below:
 *
 * - MHD_queue_response: calls from devicehubd pass through unchanged (dh_mhd_queue marks
 *   them). Any other call is MHD answering by itself; the response is swapped for the JSON
 *   error body of the same status, with Content-Type and X-Request-Id.
 * - MHD_lookup_connection_value_n: a Content-Length that is not a decimal number below
 *   2^64 is reported as absent. MHD then reads no body and calls our access handler, whose
 *   framing check (http/server.c) sees the real header and answers 400 or 413 with
 *   "Connection: close", once. A Cookie header is reported as absent too: devicehubd reads
 *   no cookies, and MHD copied the header into the connection's memory to split it, queued
 *   its 431 when the copy did not fit and then went on with the request, so that the status
 *   line and headers went out twice. Every other lookup passes through unchanged.
 * - MHD_set_connection_value_n: MHD stores each header, query parameter and trailer of a
 *   request in the connection's memory, where it must later build the answer's head too.
 *   dh_mhd_shim_may_store (http/server.c) bounds what one request stores, so that room for
 *   the answer is always left: a head that filled the memory was closed without an answer.
 *   A header or trailer beyond the bound is refused, and MHD answers 431 itself. A query
 *   parameter beyond it is dropped (reported as stored): MHD's own refusal of one goes on
 *   with a half-parsed request line and closes the connection without an answer, so the
 *   server answers 414 for it instead.
 *
 * What this cannot reach (docs/http.md): a request line that is not "METHOD SP target ..."
 * at all is closed by MHD without any answer, and a build of MHD that binds these calls
 * inside the library (-Bsymbolic, LTO) would bypass the shim: dh_mhd_shim_init() warns, and
 * tests/api/test_http_errors.py fails for every status.
 */
#include "http/mhd_shim.h"

#include "core/err.h"
#include "log.h"

#include <dlfcn.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

typedef enum MHD_Result (*queue_fn)(struct MHD_Connection *, unsigned int, struct MHD_Response *);
typedef enum MHD_Result (*lookup_fn)(struct MHD_Connection *, enum MHD_ValueKind, const char *,
				     size_t, const char **, size_t *);
typedef enum MHD_Result (*set_fn)(struct MHD_Connection *, enum MHD_ValueKind, const char *, size_t,
				  const char *, size_t);

static queue_fn real_queue;
static lookup_fn real_lookup;
static set_fn real_set;
static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;
/* Set while devicehubd itself queues a response on this thread. */
static _Thread_local int queue_is_ours;

bool (*dh_mhd_shim_may_answer)(struct MHD_Connection *conn);
bool (*dh_mhd_shim_may_store)(struct MHD_Connection *conn, enum MHD_ValueKind kind, size_t bytes);

static void resolve(void)
{
	/* RTLD_NEXT: the next definition after this executable's, i.e. the library's */
	*(void **)&real_queue = dlsym(RTLD_NEXT, "MHD_queue_response");
	*(void **)&real_lookup = dlsym(RTLD_NEXT, "MHD_lookup_connection_value_n");
	*(void **)&real_set = dlsym(RTLD_NEXT, "MHD_set_connection_value_n");
}

bool dh_mhd_shim_init(void)
{
	queue_fn bound_queue;
	lookup_fn bound_lookup;
	set_fn bound_set;

	pthread_once(&resolve_once, resolve);
	if (!real_queue || !real_lookup || !real_set)
		return false;
	/* the process-wide binding must be ours, or MHD's internal calls do not reach us */
	*(void **)&bound_queue = dlsym(RTLD_DEFAULT, "MHD_queue_response");
	*(void **)&bound_lookup = dlsym(RTLD_DEFAULT, "MHD_lookup_connection_value_n");
	*(void **)&bound_set = dlsym(RTLD_DEFAULT, "MHD_set_connection_value_n");
	return bound_queue == MHD_queue_response && bound_lookup == MHD_lookup_connection_value_n &&
	       bound_set == MHD_set_connection_value_n;
}

enum MHD_Result dh_mhd_queue(struct MHD_Connection *conn, unsigned status, struct MHD_Response *r)
{
	enum MHD_Result rc;

	queue_is_ours++;
	rc = MHD_queue_response(conn, status, r);
	queue_is_ours--;
	return rc;
}

/* The error of a status MHD answers with by itself, with a sentence that says what MHD
 * found wrong (it does not tell us more than the status). */
static enum dh_err mhd_error(unsigned status, const char **detail)
{
	static const struct {
		unsigned status;
		enum dh_err code;
		const char *detail;
	} rows[] = {
		{ 400, DH_E_BAD_REQUEST,
		  "The request is not well-formed HTTP/1.1: a request line without a version, a "
		  "header line without a colon, or a malformed chunk of a chunked body." },
		{ 413, DH_E_TOO_LARGE, "A chunk of the body is larger than the server accepts." },
		{ 414, DH_E_URI_TOO_LONG,
		  "The request target is longer than the server accepts in a request head." },
		{ 431, DH_E_HEAD_TOO_LARGE,
		  "The request head (request line and headers) is larger than the server "
		  "accepts." },
		{ 505, DH_E_HTTP_VERSION, "Only HTTP/1.0 and HTTP/1.1 are served." },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (rows[i].status == status) {
			*detail = rows[i].detail;
			return rows[i].code;
		}
	}
	*detail = NULL;
	return status >= 500 ? DH_E_INTERNAL : DH_E_BAD_REQUEST;
}

/* MHD's answer for status, as our JSON error; NULL when out of memory. */
static struct MHD_Response *json_error(unsigned status)
{
	const char *detail;
	enum dh_err code = mhd_error(status, &detail);
	json_t *body = json_pack("{s:s, s:s}", "code", dh_err_name(code), "detail",
				 detail ? detail : dh_err_sentence(code));
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	struct MHD_Response *r = NULL;
	char id[17];

	json_decref(body);
	if (!text)
		return NULL;
	r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return NULL;
	}
	dh_http_request_id(id);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
	MHD_add_response_header(r, "X-Request-Id", id);
	return r;
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *connection, unsigned int status_code,
				   struct MHD_Response *response)
{
	struct MHD_Response *mine;
	enum MHD_Result rc;

	pthread_once(&resolve_once, resolve);
	if (!real_queue)
		return MHD_NO;
	if (queue_is_ours)
		return real_queue(connection, status_code, response);
	/* MHD answering by itself */
	if (dh_mhd_shim_may_answer && !dh_mhd_shim_may_answer(connection))
		return MHD_NO; /* MHD then closes the connection */
	mine = json_error(status_code);
	if (!mine)
		return real_queue(connection, status_code, response);
	rc = real_queue(connection, status_code, mine);
	MHD_destroy_response(mine); /* MHD holds its own reference once queued */
	dh_http_count_status(status_code);
	dh_debug("http.request", "method=- path=- status=%u from=mhd", status_code);
	return rc;
}

/* True when v[0..n) is what MHD can take as a Content-Length: 1 to 20 decimal digits with a
 * value below 2^64. */
static bool is_length(const char *v, size_t n)
{
	uint64_t x = 0;

	if (n == 0 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned char)v[i] - '0';
		if (d > 9 || x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
	}
	return true;
}

enum MHD_Result MHD_lookup_connection_value_n(struct MHD_Connection *connection,
					      enum MHD_ValueKind kind, const char *key,
					      size_t key_size, const char **value_ptr,
					      size_t *value_size_ptr)
{
	static const char cl[] = MHD_HTTP_HEADER_CONTENT_LENGTH;
	static const char cookie[] = MHD_HTTP_HEADER_COOKIE;
	const char *v = NULL;
	size_t n = 0;
	enum MHD_Result rc;

	pthread_once(&resolve_once, resolve);
	if (!real_lookup)
		return MHD_NO;
	if (key && key_size == sizeof(cookie) - 1 && (kind & MHD_HEADER_KIND) &&
	    strncasecmp(key, cookie, key_size) == 0)
		return MHD_NO; /* read by no one; MHD would copy it to split it */
	if (!key || key_size != sizeof(cl) - 1 || !(kind & MHD_HEADER_KIND) ||
	    strncasecmp(key, cl, key_size) != 0)
		return real_lookup(connection, kind, key, key_size, value_ptr, value_size_ptr);
	rc = real_lookup(connection, kind, key, key_size, &v, &n);
	if (rc != MHD_YES || !v || !is_length(v, n))
		return MHD_NO; /* absent or malformed: http/server.c answers for it */
	if (value_ptr)
		*value_ptr = v;
	if (value_size_ptr)
		*value_size_ptr = n;
	return MHD_YES;
}

enum MHD_Result MHD_set_connection_value_n(struct MHD_Connection *connection,
					   enum MHD_ValueKind kind, const char *key,
					   size_t key_size, const char *value, size_t value_size)
{
	pthread_once(&resolve_once, resolve);
	if (!real_set)
		return MHD_NO;
	if (dh_mhd_shim_may_store &&
	    !dh_mhd_shim_may_store(connection, kind, key_size + value_size))
		return kind == MHD_GET_ARGUMENT_KIND ? MHD_YES : MHD_NO;
	return real_set(connection, kind, key, key_size, value, value_size);
}
