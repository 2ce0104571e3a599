/*
 * Range and If-Range parsing for image downloads. Turns one header value into a byte
 * interval within a known size, or says why it cannot. Knows nothing of MHD or files;
 * api/downloads.c applies the result. Numbers saturate instead of overflowing, so a
 * forty-digit start is simply "beyond the end".
 */
#include "http/range.h"

#include <string.h>
#include <strings.h>

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Parses digits at *p (at least one), saturating at UINT64_MAX; advances *p. */
static bool parse_num(const char **p, const char *end, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (s >= end || !is_digit(*s))
		return false;
	for (; s < end && is_digit(*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
	}
	*p = s;
	*out = v;
	return true;
}

/* One range-spec in [s, end), already trimmed of whitespace. */
static enum dh_range_kind parse_spec(const char *s, const char *end, uint64_t size,
				     struct dh_range *out)
{
	uint64_t a, b;

	if (s < end && *s == '-') {
		s++;
		if (!parse_num(&s, end, &b) || s != end)
			return DH_RANGE_INVALID;
		if (b == 0 || size == 0)
			return DH_RANGE_UNSATISFIABLE;
		if (b > size)
			b = size;
		out->start = size - b;
		out->len = b;
		return DH_RANGE_ONE;
	}
	if (!parse_num(&s, end, &a) || s >= end || *s != '-')
		return DH_RANGE_INVALID;
	s++;
	if (s == end) {
		b = UINT64_MAX;
	} else {
		if (!parse_num(&s, end, &b) || s != end)
			return DH_RANGE_INVALID;
		if (b < a)
			return DH_RANGE_INVALID;
	}
	if (a >= size)
		return DH_RANGE_UNSATISFIABLE;
	if (b >= size)
		b = size - 1;
	out->start = a;
	out->len = b - a + 1;
	return DH_RANGE_ONE;
}

enum dh_range_kind dh_range_parse(const char *value, uint64_t size, struct dh_range *out)
{
	const char *p, *end;
	enum dh_range_kind kind = DH_RANGE_INVALID;
	struct dh_range r = { 0 };
	size_t n, specs = 0;

	if (!value)
		return DH_RANGE_NONE;
	n = strnlen(value, DH_RANGE_HEADER_MAX + 1);
	if (n > DH_RANGE_HEADER_MAX)
		return DH_RANGE_INVALID;
	end = value + n;
	for (p = value; p < end && is_ows(*p); p++)
		;
	/* the unit is case-insensitive; no whitespace around '=' (RFC 9110 14.2) */
	if (end - p < 6 || strncasecmp(p, "bytes=", 6) != 0)
		return DH_RANGE_INVALID;
	p += 6;
	/* a comma-separated list in which empty elements are allowed (RFC 9110 5.6.1) */
	while (p <= end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma ? comma : end, *s = p;

		while (s < e && is_ows(*s))
			s++;
		while (e > s && is_ows(e[-1]))
			e--;
		if (s < e) {
			enum dh_range_kind k = parse_spec(s, e, size, &r);
			if (k == DH_RANGE_INVALID)
				return DH_RANGE_INVALID;
			if (specs++ == 0)
				kind = k;
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	if (specs == 0)
		return DH_RANGE_INVALID;
	if (specs > 1)
		return DH_RANGE_MULTI;
	if (kind == DH_RANGE_ONE && out)
		*out = r;
	return kind;
}

bool dh_range_if_range_ok(const char *if_range, const char *etag, const char *last_modified)
{
	const char *s, *e;
	size_t n;

	if (!if_range)
		return true;
	for (s = if_range; is_ows(*s); s++)
		;
	e = s + strlen(s);
	while (e > s && is_ows(e[-1]))
		e--;
	n = (size_t)(e - s);
	if (n == 0)
		return false;
	if (*s == '"' || (n > 1 && s[0] == 'W' && s[1] == '/'))
		return etag && strlen(etag) == n && memcmp(s, etag, n) == 0;
	return last_modified && strlen(last_modified) == n && memcmp(s, last_modified, n) == 0;
}
