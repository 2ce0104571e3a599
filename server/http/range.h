/*
 * Range and If-Range parsing for image downloads (RFC 9110 section 14). Turns one Range
 * header value into a byte interval within a known size, or says why it cannot; decides
 * whether an If-Range validator still matches. Knows nothing of MHD or files:
 * api/downloads.c applies the result.
 */
#ifndef DH_HTTP_RANGE_H
#define DH_HTTP_RANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest Range header value looked at; real clients send a few dozen bytes. */
#define DH_RANGE_HEADER_MAX 1024

/* What a Range header asks for, and so how to answer. */
enum dh_range_kind {
	DH_RANGE_NONE,          /* no header: 200 with the whole image */
	DH_RANGE_INVALID,       /* malformed or not "bytes": ignored, 200 with the whole image */
	DH_RANGE_MULTI,         /* several ranges: not supported, 200 with the whole image */
	DH_RANGE_ONE,           /* one satisfiable range: 206 */
	DH_RANGE_UNSATISFIABLE, /* starts at or beyond the end: 416 */
};

/* One byte interval: first byte and length (len >= 1 for DH_RANGE_ONE). */
struct dh_range {
	uint64_t start;
	uint64_t len;
};

/*
 * Parses a Range header value (NULL: no header) against a representation of size bytes.
 * "bytes=A-B" (B clamped to the end), "bytes=A-" and "bytes=-N" (the last N bytes, all of
 * them when N >= size) give DH_RANGE_ONE with *out filled; a start at or past the end, or
 * "-0", gives DH_RANGE_UNSATISFIABLE. Never fails: every byte sequence has a kind.
 */
enum dh_range_kind dh_range_parse(const char *value, uint64_t size, struct dh_range *out);

/*
 * Does an If-Range value (NULL: absent) allow the range to be applied? True when absent,
 * when it is exactly the strong etag (quotes included), or exactly last_modified (an
 * HTTP-date; may be NULL). A weak etag ("W/...") never matches.
 */
bool dh_range_if_range_ok(const char *if_range, const char *etag, const char *last_modified);

#endif
