/*
 * The strict request-head reader of the direct download path (see head.h): plain GET and
 * HEAD heads are described, everything else is left to libmicrohttpd. Reads only
 * buf[0..len); keeps no state between calls (a partial head is read again from its start
 * when more bytes came, which costs nothing next to the system call that brought them).
 */
#include "http/head.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 5.6.2 tchar. */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* RFC 3986 pchar and '/' without pct-encoded: unreserved, sub-delims, ':' and '@'. */
static bool is_path_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("-._~!$&'()*+,;=:@/", c) != NULL;
}

/* A field value byte: visible ASCII, space, tab, or obs-text (RFC 9110 5.5). */
static bool is_value_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Does [p, end) start with lit? 1 yes, 0 no, -1 when the bytes there are a prefix of lit. */
static int starts(const char *p, const char *end, const char *lit)
{
	size_t n = strlen(lit), have = (size_t)(end - p);

	if (have < n)
		return memcmp(p, lit, have) == 0 ? -1 : 0;
	return memcmp(p, lit, n) == 0;
}

static bool name_is(const struct dh_head_field *f, const char *name)
{
	size_t n = strlen(name);

	return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

/* "close" and "keep-alive", comma-separated with optional whitespace; false otherwise. */
static bool connection_tokens(const char *v, size_t n, bool *close)
{
	size_t i = 0;

	while (i < n) {
		size_t s, e;
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
			i++;
		e = i;
		if (e == s)
			continue;
		if (e - s == 5 && strncasecmp(v + s, "close", 5) == 0)
			*close = true;
		else if (!(e - s == 10 && strncasecmp(v + s, "keep-alive", 10) == 0))
			return false;
	}
	return true;
}

/* The checks that need the whole head. */
static enum dh_head_kind check_fields(struct dh_head *h)
{
	static const char *const refused[] = { "content-length", "transfer-encoding", "expect",
					       "upgrade" };
	bool host = false;

	for (size_t i = 0; i < h->nfields; i++) {
		const struct dh_head_field *f = &h->fields[i];
		for (size_t j = i + 1; j < h->nfields; j++) {
			if (f->name_len == h->fields[j].name_len &&
			    strncasecmp(f->name, h->fields[j].name, f->name_len) == 0)
				return DH_HEAD_OTHER;
		}
		for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
			if (name_is(f, refused[k]))
				return DH_HEAD_OTHER;
		}
		if (name_is(f, "host"))
			host = true;
		else if (name_is(f, "connection") &&
			 !connection_tokens(f->value, f->value_len, &h->close))
			return DH_HEAD_OTHER;
	}
	return host ? DH_HEAD_PLAIN : DH_HEAD_OTHER;
}

enum dh_head_kind dh_head_parse(const char *buf, size_t len, struct dh_head *h)
{
	/* from DH_HEAD_MAX bytes on, a head that has not ended is not ours */
	const enum dh_head_kind short_kind = len >= DH_HEAD_MAX ? DH_HEAD_OTHER : DH_HEAD_PARTIAL;
	const char *p = buf, *end = buf + (len < DH_HEAD_MAX ? len : DH_HEAD_MAX), *s;
	int m;

	h->nfields = 0;
	h->close = false;
	h->len = 0;
	if ((m = starts(p, end, "GET /")) == 1) {
		h->method = DH_GET;
		p += 4;
	} else if (m == 0 && (m = starts(p, end, "HEAD /")) == 1) {
		h->method = DH_HEAD;
		p += 5;
	}
	if (m != 1)
		return m < 0 ? short_kind : DH_HEAD_OTHER;
	for (s = p; p < end && *p != ' '; p++) {
		if (!is_path_char((unsigned char)*p) || (size_t)(p - s) >= DH_HEAD_TARGET_MAX)
			return DH_HEAD_OTHER;
	}
	if (p == end)
		return short_kind;
	h->target = s;
	h->target_len = (size_t)(p - s);
	m = starts(p, end, " HTTP/1.1\r\n");
	if (m != 1)
		return m < 0 ? short_kind : DH_HEAD_OTHER;
	p += 11;
	for (;;) {
		struct dh_head_field *f;
		if (p == end)
			return short_kind;
		if (*p == '\r') {
			if (p + 1 == end)
				return short_kind;
			if (p[1] != '\n')
				return DH_HEAD_OTHER;
			h->len = (size_t)(p + 2 - buf);
			return check_fields(h);
		}
		for (s = p; p < end && is_tchar((unsigned char)*p); p++)
			;
		if (p == end)
			return short_kind;
		/* an empty name (a folded line, a stray LF or colon) or a space before the colon */
		if (p == s || *p != ':' || h->nfields == DH_HEAD_FIELDS)
			return DH_HEAD_OTHER;
		f = &h->fields[h->nfields];
		f->name = s;
		f->name_len = (size_t)(p - s);
		for (p++; p < end && (*p == ' ' || *p == '\t'); p++)
			;
		for (s = p; p < end && *p != '\r'; p++) {
			if (!is_value_char((unsigned char)*p))
				return DH_HEAD_OTHER;
		}
		if (p == end || p + 1 == end)
			return short_kind;
		if (p[1] != '\n')
			return DH_HEAD_OTHER;
		/* trailing whitespace: libmicrohttpd's trimming is its own business */
		if (p > s && (p[-1] == ' ' || p[-1] == '\t'))
			return DH_HEAD_OTHER;
		f->value = s;
		f->value_len = (size_t)(p - s);
		h->nfields++;
		p += 2;
	}
}

const char *dh_head_get(const struct dh_head *h, const char *name, size_t *value_len)
{
	for (size_t i = 0; i < h->nfields; i++) {
		if (name_is(&h->fields[i], name)) {
			if (value_len)
				*value_len = h->fields[i].value_len;
			return h->fields[i].value;
		}
	}
	return NULL;
}
