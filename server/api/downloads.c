/*
 * Image downloads: answers GET and HEAD for one stored blob with the Range, If-Range,
 * ETag and Last-Modified behaviour of API.md's Downloads section. The bytes come from the
 * blob's shared mapping and descriptor (db/blob.c's cache), whose reference the HTTP layer
 * drops when it is done with the answer; it sends large answers by sendfile and small ones
 * from the mapping, neither copying them through user space. Rights and which blob to send
 * are the callers' (firmware images, session download links).
 */
#include "api/api.h"

#include "blob.h"
#include "core/links.h"
#include "core/util.h"
#include "dh_db.h"
#include "http/range.h"
#include "pipeline/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* "Sat, 18 Apr 2026 13:12:50 GMT" and NUL. */
#define HTTP_DATE_LEN 32

/* Writes v in decimal at p and returns the end (no NUL); printf costs more per request. */
static char *put_u64(char *p, unsigned long long v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* Writes v as two digits at p and returns the end. */
static char *put_2d(char *p, int v)
{
	*p++ = (char)('0' + v / 10 % 10);
	*p++ = (char)('0' + v % 10);
	return p;
}

/* RFC 9110 5.6.7 IMF-fixdate, locale-independent. */
static bool http_date(const char *rfc3339, char out[HTTP_DATE_LEN])
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	int64_t us;
	time_t t;
	char *p = out;

	if (!rfc3339 || !dh_time_parse(rfc3339, &us))
		return false;
	t = (time_t)(us / 1000000);
	if (!gmtime_r(&t, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
	    tm.tm_mon > 11 || tm.tm_year < 0 || tm.tm_year > 9999 - 1900)
		return false;
	/* "Sun, 06 Nov 1994 08:49:37 GMT" */
	memcpy(p, days[tm.tm_wday], 3);
	p += 3;
	*p++ = ',';
	*p++ = ' ';
	p = put_2d(p, tm.tm_mday);
	*p++ = ' ';
	memcpy(p, months[tm.tm_mon], 3);
	p += 3;
	*p++ = ' ';
	p = put_2d(p, (tm.tm_year + 1900) / 100);
	p = put_2d(p, (tm.tm_year + 1900) % 100);
	*p++ = ' ';
	p = put_2d(p, tm.tm_hour);
	*p++ = ':';
	p = put_2d(p, tm.tm_min);
	*p++ = ':';
	p = put_2d(p, tm.tm_sec);
	memcpy(p, " GMT", 5);
	return true;
}

/* What one session download sends, kept until the HTTP layer says how it ended. */
struct sent {
	char session[DH_UUID_LEN], product[DH_UUID_LEN], model[DH_UUID_LEN], channel[DH_UUID_LEN];
	uint64_t size, off, len;
};

/*
 * The HTTP layer is done with the answer: counted are the bytes of the range it handed to
 * the kernel, from the start of the range (the whole range when the answer completed; of
 * one cut short, what the direct path had sent, nothing from libmicrohttpd, which does not
 * tell). The device's resume then counts what it fetches again, so coverage is never
 * claimed for bytes that did not leave.
 */
static void sent_done(uint64_t sent, void *cls)
{
	struct sent *t = cls;
	struct dh_delivery_who who = { t->session, t->product, t->model, t->channel, t->size };

	if (sent)
		dh_delivery_sent(&who, t->off, sent < t->len ? sent : t->len);
	free(t);
}

/* Arranges for [off, off + len) to count for who once the answer is out (GET only). */
static void count_when_sent(struct dh_req *req, const struct dh_delivery_who *who, uint64_t off,
			    uint64_t len)
{
	struct sent *t;

	if (!who || req->method != DH_GET || len == 0 || req->on_done)
		return;
	t = calloc(1, sizeof(*t));
	if (!t)
		return; /* the download goes on uncounted */
	snprintf(t->session, sizeof(t->session), "%s", who->session ? who->session : "");
	snprintf(t->product, sizeof(t->product), "%s", who->product ? who->product : "");
	snprintf(t->model, sizeof(t->model), "%s", who->model ? who->model : "");
	snprintf(t->channel, sizeof(t->channel), "%s", who->channel ? who->channel : "");
	t->size = who->size;
	t->off = off;
	t->len = len;
	req->on_done = sent_done;
	req->on_done_cls = t;
}

enum dh_err dh_api_send_blob(struct dh_req *req, const char *sha256, uint64_t size,
			     const char *last_modified, const struct dh_delivery_who *who)
{
	char etag[DH_SHA256_HEX + 2], date[HTTP_DATE_LEN], crange[96];
	struct dh_range r = { 0, size };
	struct dh_blob_map *map = NULL;
	enum dh_range_kind kind;
	bool has_date = http_date(last_modified, date);
	unsigned status = 200;
	size_t hlen;
	enum dh_err rc;

	hlen = strnlen(sha256, DH_SHA256_HEX - 1);
	etag[0] = '"';
	memcpy(etag + 1, sha256, hlen);
	memcpy(etag + 1 + hlen, "\"", 2);
	kind = dh_range_parse(dh_req_header(req, "Range"), size, &r);
	/* a stale If-Range means "send me the whole new image" (RFC 9110 13.1.5) */
	if ((kind == DH_RANGE_ONE || kind == DH_RANGE_UNSATISFIABLE) &&
	    !dh_range_if_range_ok(dh_req_header(req, "If-Range"), etag, has_date ? date : NULL))
		kind = DH_RANGE_NONE;
	if (kind == DH_RANGE_UNSATISFIABLE) {
		dh_error_set(&req->err, DH_E_RANGE,
			     "The range starts beyond the end of the %llu-byte image.",
			     (unsigned long long)size);
		rc = dh_http_reply_error(req, &req->err);
		if (rc != DH_OK)
			return rc;
		snprintf(crange, sizeof(crange), "bytes */%llu", (unsigned long long)size);
		dh_http_header(req, "Content-Range", crange);
		dh_http_header(req, "Accept-Ranges", "bytes");
		return DH_OK;
	}
	if (kind != DH_RANGE_ONE) {
		r.start = 0;
		r.len = size;
	} else {
		status = 206;
	}
	map = dh_blob_map_get(sha256, size, &req->err);
	if (!map)
		return req->err.code;
	/* the answer holds the mapping's reference; the HTTP layer puts it back */
	rc = dh_http_reply_file(req, status, map->fd, map->data, r.start, r.len, dh_blob_map_put,
				map);
	if (rc != DH_OK)
		return rc;
	dh_http_header(req, "Content-Type", "application/octet-stream");
	dh_http_header(req, "Accept-Ranges", "bytes");
	dh_http_header(req, "ETag", etag);
	if (has_date)
		dh_http_header(req, "Last-Modified", date);
	if (status == 206) {
		/* "bytes %llu-%llu/%llu" */
		char *p = crange;
		memcpy(p, "bytes ", 6);
		p = put_u64(p + 6, r.start);
		*p++ = '-';
		p = put_u64(p, r.start + r.len - 1);
		*p++ = '/';
		p = put_u64(p, size);
		*p = 0;
		dh_http_header(req, "Content-Range", crange);
	}
	count_when_sent(req, who, r.start, r.len);
	return DH_OK;
}

enum dh_err dh_api_short_link(struct dh_req *req)
{
	const char *token = req->nargs ? req->args[0] : "";
	uint8_t h[DH_LINK_HASH_LEN];
	struct dh_link l;
	struct dh_delivery_who who;

	/*
	 * One hash and one probe of the link table for every token, whatever it names: a link
	 * of a session in another state is not in the table, so it is answered exactly like a
	 * token that never existed, with the same work, body and headers.
	 */
	dh_link_hash(token, strlen(token), h);
	/* several servers on one database: a link another one issued is looked up there (for
	 * every token this table misses, so the work is again the same for all of them) */
	if (!dh_links_find(h, &l) &&
	    (!dh_db_is_shared() || dh_session_link_lookup(req->db, h, &l) != DH_OK))
		return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such link.");
	who.session = l.session;
	who.product = l.product;
	who.model = l.model;
	who.channel = l.channel;
	who.size = l.size;
	return dh_api_send_blob(req, l.sha256, l.size, l.image_time, &who);
}
