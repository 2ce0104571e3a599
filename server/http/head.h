/*
 * A strict reader of HTTP/1.1 request heads for the direct download path (http/direct.c).
 * It recognises only the plain shape a download takes -- "GET" or "HEAD", an origin-form
 * path of unreserved characters, HTTP/1.1, one Host, header fields "name: value" each at
 * most once, CRLF line ends, no body -- and calls everything else DH_HEAD_OTHER, which then
 * goes to libmicrohttpd with every byte still unread. So this parser never decides that a
 * request is bad, and a request it does not know is answered exactly as before. Pure: no
 * I/O, no MHD; every byte sequence gets a kind.
 */
#ifndef DH_HTTP_HEAD_H
#define DH_HTTP_HEAD_H

#include "http/req.h"

#include <stdbool.h>
#include <stddef.h>

/*
 * Longest head taken on the direct path: a download's head is a few hundred bytes (a
 * token, a Range, an If-Range). Longer heads, up to what a libmicrohttpd connection holds
 * (32 KiB), go to libmicrohttpd, which also answers 431 beyond.
 */
#define DH_HEAD_MAX 8192
/* Most header fields taken; curl sends 3, browsers about 15. */
#define DH_HEAD_FIELDS 32
/* Longest request target taken (a download path with a 64-character tid is under 120). */
#define DH_HEAD_TARGET_MAX 512

enum dh_head_kind {
	DH_HEAD_PARTIAL, /* a plain head so far; the rest has not arrived */
	DH_HEAD_OTHER,   /* not a plain GET/HEAD head: libmicrohttpd's to answer */
	DH_HEAD_PLAIN,   /* a complete plain head, described by struct dh_head */
};

struct dh_head_field {
	const char *name, *value; /* into the parsed buffer; not NUL-terminated */
	size_t name_len, value_len;
};

struct dh_head {
	enum dh_method method; /* DH_GET or DH_HEAD */
	const char *target;    /* the path, starting with '/'; into the buffer */
	size_t target_len;
	size_t len; /* bytes of the head, the blank line included */
	bool close; /* "Connection: close": close after the answer */
	size_t nfields;
	struct dh_head_field fields[DH_HEAD_FIELDS];
};

/*
 * Reads the head at buf[0..len). DH_HEAD_PLAIN fills *h (pointers into buf); the bytes after
 * h->len belong to the next request. DH_HEAD_PARTIAL when len is short of a plain head that
 * may still come (always DH_HEAD_OTHER from DH_HEAD_MAX bytes on). What makes a head OTHER:
 * any method but GET and HEAD; a target with '%', '?', '#' or any byte outside RFC 3986's
 * unreserved and sub-delims, ':', '@' and '/'; a version other than HTTP/1.1; a bare LF,
 * a folded line, a control byte in a value, a space before a colon, a name that is not a
 * token; a field sent twice; no Host; Content-Length, Transfer-Encoding, Expect, Upgrade;
 * a Connection other than close or keep-alive.
 */
enum dh_head_kind dh_head_parse(const char *buf, size_t len, struct dh_head *h);

/* The value of field name (case-insensitive) in h, or NULL; *value_len gets its length. */
const char *dh_head_get(const struct dh_head *h, const char *name, size_t *value_len);

#endif
