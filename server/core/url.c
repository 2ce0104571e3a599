/*
 * Start-up URL forms (see url.h): a hand-written check of RFC 3986's authority and path
 * grammar, narrowed to what a link base needs. Every byte sequence gets an answer; nothing
 * here allocates.
 */
#include "core/url.h"

#include "core/text.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Longest piece of the checked text a sentence quotes (a scheme, a port, an entry). */
#define QUOTE_MAX 40

static bool say(char *why, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool say(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dh_text_vformat(why, size, fmt, ap);
	va_end(ap);
	return false;
}

/* s[0..n) for a sentence: printable ASCII by now, cut to QUOTE_MAX bytes with "...". */
#define QUOTE(s, n) (int)((n) > QUOTE_MAX ? QUOTE_MAX : (n)), (s), (n) > QUOTE_MAX ? "..." : ""

/* Well-formed UTF-8, no control character, and (unless spaces_ok) no space, all ASCII. */
static bool plain_ascii(const char *s, size_t n, bool spaces_ok, char *why, size_t size)
{
	size_t i;

	if (!dh_utf8_valid(s, n))
		return say(why, size, "is not UTF-8");
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return say(why, size, "holds a control character (byte 0x%02x at %zu)", c,
				   i);
	}
	for (i = 0; i < n; i++) {
		if ((unsigned char)s[i] >= 0x80)
			return say(
				why, size,
				"holds a character outside ASCII at byte %zu (a host name goes in"
				" its xn-- form, a path percent-encoded)",
				i);
		if (s[i] == ' ' && !spaces_ok)
			return say(why, size, "holds a space at byte %zu", i);
	}
	return true;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* HOST s[0..n): a DNS name, an IPv4 address, or [IPv6]. */
static bool host_ok(const char *s, size_t n, char *why, size_t size)
{
	char buf[64];
	unsigned char addr[16];
	size_t i, label = 0;
	bool numeric = true;

	if (n == 0)
		return say(why, size, "has no host");
	if (s[0] == '[') {
		/* the caller ends a bracketed host at its ']' */
		if (n < 3 || s[n - 1] != ']' || n - 2 >= sizeof(buf))
			return say(why, size, "host '%.*s%s' is not an IPv6 address in brackets",
				   QUOTE(s, n));
		memcpy(buf, s + 1, n - 2);
		buf[n - 2] = 0;
		if (inet_pton(AF_INET6, buf, addr) != 1)
			return say(why, size, "host '%.*s%s' is not an IPv6 address in brackets",
				   QUOTE(s, n));
		return true;
	}
	if (n > 253)
		return say(why, size, "host name is longer than 253 bytes");
	for (i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (label == 0)
				return say(why, size,
					   "host '%.*s%s' has an empty label (two dots, or a dot at"
					   " an end)",
					   QUOTE(s, n));
			if (label > 63)
				return say(why, size, "host has a label longer than 63 bytes");
			if (s[i - 1] == '-' || s[i - label] == '-')
				return say(why, size,
					   "host '%.*s%s' has a label that begins or ends with '-'",
					   QUOTE(s, n));
			label = 0;
			continue;
		}
		if (!is_alnum(s[i]) && s[i] != '-')
			return say(
				why, size,
				"host '%.*s%s' holds '%c', which a host name cannot (IPv6 goes in"
				" brackets)",
				QUOTE(s, n), s[i]);
		numeric = numeric && is_digit(s[i]);
		label++;
	}
	if (numeric) {
		/* all digits and dots: meant as an IPv4 address, so it must be one */
		if (n >= sizeof(buf))
			return say(why, size, "host is not an IPv4 address");
		memcpy(buf, s, n);
		buf[n] = 0;
		if (inet_pton(AF_INET, buf, addr) != 1)
			return say(why, size, "host '%.*s%s' is not an IPv4 address", QUOTE(s, n));
	}
	return true;
}

/* HOST[:PORT] s[0..n), printable ASCII without '/', '?' or '#'. */
static bool authority_ok(const char *s, size_t n, char *why, size_t size)
{
	const char *colon = NULL, *at = memchr(s, '@', n);
	size_t hn = n, pn, i;
	uint32_t port = 0;

	if (at)
		return say(why, size,
			   "has user information (user@host); a link must not carry credentials");
	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			return say(why, size, "has a '[' without its ']'");
		hn = (size_t)(close - s) + 1;
		if (hn < n && s[hn] != ':')
			return say(why, size, "has '%.*s%s' after the host's ']'",
				   QUOTE(s + hn, n - hn));
		colon = hn < n ? s + hn : NULL;
	} else {
		colon = memchr(s, ':', n);
		if (colon && memchr(colon + 1, ':', n - (size_t)(colon + 1 - s)))
			return say(why, size,
				   "has more than one ':' (an IPv6 host goes in brackets)");
		if (colon)
			hn = (size_t)(colon - s);
	}
	if (!host_ok(s, hn, why, size))
		return false;
	if (!colon)
		return true;
	pn = n - hn - 1;
	if (pn == 0)
		return say(why, size, "has a ':' but no port after it");
	for (i = 0; i < pn; i++) {
		if (!is_digit(colon[1 + i]) || i == 5)
			return say(why, size, "port '%.*s%s' is not a number in 1..65535",
				   QUOTE(colon + 1, pn));
		port = port * 10 + (uint32_t)(colon[1 + i] - '0');
	}
	if (port == 0 || port > 65535)
		return say(why, size, "port '%.*s%s' is not a number in 1..65535",
			   QUOTE(colon + 1, pn));
	return true;
}

/* PATH s[0..n), which begins with '/': segments of path characters, none empty or dots. */
static bool path_ok_check(const char *s, size_t n, char *why, size_t size)
{
	static const char extra[] = "-._~!$&'()*+,;=:@";
	size_t i = 0, seg;

	while (i < n) {
		i++; /* the '/' */
		seg = i;
		while (i < n && s[i] != '/') {
			if (s[i] == '%') {
				if (i + 2 >= n || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
					return say(
						why, size,
						"path has a '%%' not followed by two hex digits");
				i += 3;
				continue;
			}
			if (!is_alnum(s[i]) && !strchr(extra, s[i]))
				return say(why, size, "path holds '%c', which a URL path cannot",
					   s[i]);
			i++;
		}
		if (i == seg)
			return say(why, size, "path has an empty segment ('//')");
		if ((i - seg == 1 && s[seg] == '.') ||
		    (i - seg == 2 && s[seg] == '.' && s[seg + 1] == '.'))
			return say(why, size, "path has a '.' or '..' segment");
	}
	return true;
}

bool dh_url_base_check(const char *text, const char *const *schemes, bool path_ok, char *why,
		       size_t size)
{
	char want[64] = "";
	const char *sep, *auth, *end;
	size_t n = strlen(text), sn, k, w = 0;
	bool known = false;

	if (n > DH_URL_BASE_MAX)
		return say(why, size, "is longer than %d bytes", DH_URL_BASE_MAX);
	if (!plain_ascii(text, n, false, why, size))
		return false;
	for (k = 0; schemes[k]; k++) {
		int m = snprintf(want + w, sizeof(want) - w, "%s%s://", k ? " or " : "",
				 schemes[k]);
		if (m > 0 && (size_t)m < sizeof(want) - w)
			w += (size_t)m;
	}
	sep = strstr(text, "://");
	sn = sep ? (size_t)(sep - text) : 0;
	for (k = 0; k < sn; k++) {
		if (!((k == 0 && !is_digit(text[k]) && is_alnum(text[k])) ||
		      (k > 0 && (is_alnum(text[k]) || strchr("+.-", text[k])))))
			sep = NULL; /* "host/a://b" is no scheme */
	}
	if (!sep || sn == 0)
		return say(why, size, "does not start with %s", want);
	for (k = 0; schemes[k] && !known; k++)
		known = strlen(schemes[k]) == sn && strncasecmp(text, schemes[k], sn) == 0;
	if (!known)
		return say(why, size, "has the scheme '%.*s%s'; it must start with %s",
			   QUOTE(text, sn), want);
	auth = sep + 3;
	end = auth + strcspn(auth, "/?#");
	if (!authority_ok(auth, (size_t)(end - auth), why, size))
		return false;
	if (strchr(end, '?'))
		return say(why, size, "has a query ('?'), which a link base cannot have");
	if (strchr(end, '#'))
		return say(why, size, "has a fragment ('#'), which a link base cannot have");
	n = strlen(end);
	if (n > 0 && end[n - 1] == '/')
		n--; /* the one trailing '/' the server drops */
	if (n == 0)
		return true;
	if (!path_ok)
		return say(why, size, "has a path ('%.*s%s'); only a '/' may follow the host",
			   QUOTE(end, strlen(end)));
	return path_ok_check(end, n, why, size);
}

bool dh_url_hosts_check(const char *text, char *why, size_t size)
{
	size_t n = strlen(text), i = 0;
	char inner[DH_URL_WHY_MAX];

	if (n > DH_URL_HOSTS_MAX)
		return say(why, size, "is longer than %d bytes", DH_URL_HOSTS_MAX);
	if (!plain_ascii(text, n, true, why, size))
		return false;
	while (i <= n) {
		size_t len = strcspn(text + i, ","), s = i, e = i + len;

		while (s < e && text[s] == ' ')
			s++;
		while (e > s && text[e - 1] == ' ')
			e--;
		if (e == s)
			return say(why, size,
				   "has an empty entry (two commas, or a comma at an end)");
		if (memchr(text + s, ' ', e - s) || strcspn(text + s, "/?#") < e - s ||
		    !authority_ok(text + s, e - s, inner, sizeof(inner))) {
			if (memchr(text + s, ' ', e - s))
				snprintf(inner, sizeof(inner), "holds a space");
			else if (strcspn(text + s, "/?#") < e - s)
				snprintf(inner, sizeof(inner),
					 "holds '/', '?' or '#': a value is HOST or HOST:PORT");
			return say(why, size, "entry '%.*s%s': %s", QUOTE(text + s, e - s), inner);
		}
		i += len + 1;
	}
	return true;
}
