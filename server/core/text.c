/*
 * UTF-8 well-formedness, cutting and escaping (see text.h). Table 3-7 of the Unicode
 * standard ("Well-Formed UTF-8 Byte Sequences") is the rule the decoder follows, which is
 * also what jansson accepts.
 */
#include "core/text.h"

#include <stdint.h>
#include <stdio.h>

/* Longest text dh_text_vformat formats: the longest error detail or session error kept
 * is 4 KiB; the formatted text is staged on the stack before it is cleaned. */
#define DH_TEXT_FORMAT_MAX 8192

size_t dh_utf8_char(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (n == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		if (p[0] == 0xe0)
			lo = 0xa0; /* overlong below U+0800 */
		else if (p[0] == 0xed)
			hi = 0x9f; /* surrogates U+D800..U+DFFF */
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		if (p[0] == 0xf0)
			lo = 0x90; /* overlong below U+10000 */
		else if (p[0] == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0; /* a continuation byte, C0, C1 or F5..FF */
	}
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++) {
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	}
	return len;
}

bool dh_utf8_valid(const char *s, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		k = dh_utf8_char(s + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

size_t dh_utf8_trim_partial(const char *s, size_t n)
{
	/* a continuation byte that makes each lead's second byte well-formed: E0 needs A0..BF,
	 * ED 80..9F, F0 90..BF, F4 80..8F */
	static const unsigned char second[] = { 0x80, 0x90, 0xa0 };

	for (size_t back = 1; back <= 3 && back <= n; back++) {
		char c[4];
		size_t k = dh_utf8_char(s + n - back, 1) ? 1 : 0;
		if (k)
			return n; /* an ASCII byte: nothing incomplete after it */
		for (size_t f = 0; f < sizeof(second); f++) {
			for (size_t i = 0; i < 4; i++)
				c[i] = (char)(i < back ? s[n - back + i]
					      : i == 1 ? second[f]
						       : 0x80);
			k = dh_utf8_char(c, 4);
			if (k > back)
				return n - back;
		}
	}
	return n;
}

size_t dh_utf8_cut(const char *s, size_t max)
{
	size_t i = 0, k, n;

	if (!s)
		return 0;
	/* look at most one character (4 bytes) beyond max to decide */
	for (n = 0; n < max + 4 && s[n]; n++)
		;
	while (i < n) {
		k = dh_utf8_char(s + i, n - i);
		if (k == 0)
			k = 1;
		if (i + k > max)
			break;
		i += k;
	}
	return i;
}

/* Bytes of the control character (as dh_text_escape counts them) at in[0..k), or 0. */
static size_t control_char(const unsigned char *in, size_t k, unsigned flags)
{
	if (!(flags & DH_TEXT_CONTROLS))
		return 0;
	if (k == 1 && (in[0] < 0x20 || in[0] == 0x7f))
		return (flags & DH_TEXT_KEEP_LINES) && (in[0] == '\n' || in[0] == '\t') ? 0 : 1;
	if (k == 2 && in[0] == 0xc2 && in[1] < 0xa0)
		return 2;
	if (k == 3 && in[0] == 0xe2 && in[1] == 0x80 && (in[2] == 0xa8 || in[2] == 0xa9))
		return 3;
	return 0;
}

size_t dh_text_escape(char *out, size_t size, const char *in, size_t len, unsigned flags)
{
	static const char hx[] = "0123456789abcdef";
	size_t i = 0, o = 0, k, e;

	if (size == 0)
		return 0;
	while (i < len) {
		k = in[i] ? dh_utf8_char(in + i, len - i) : 0;
		e = k ? control_char((const unsigned char *)in + i, k, flags) : 1;
		if (e == 0) {
			if (o + k >= size)
				break;
			for (size_t j = 0; j < k; j++)
				out[o++] = in[i + j];
			i += k;
			continue;
		}
		/* a control character is escaped whole or not at all */
		if (o + 4 * e >= size)
			break;
		for (size_t j = 0; j < e; j++) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hx[(uint8_t)in[i + j] >> 4];
			out[o++] = hx[(uint8_t)in[i + j] & 15];
		}
		i += e;
	}
	out[o] = 0;
	return o;
}

size_t dh_text_clean(char *out, size_t size, const char *in, size_t len)
{
	return dh_text_escape(out, size, in, len, 0);
}

size_t dh_text_vformat(char *out, size_t size, const char *fmt, va_list ap)
{
	char stage[DH_TEXT_FORMAT_MAX];
	int n;

	if (size == 0)
		return 0;
	if (size > sizeof(stage))
		size = sizeof(stage);
	/*
	 * vsnprintf may cut inside a character at size - 1. Cleaning never writes fewer bytes
	 * than it reads, so what it copies into the same size - 1 bytes ends before that cut:
	 * a character split there is left out, never escaped.
	 */
	n = vsnprintf(stage, size, fmt, ap);
	if (n < 0) {
		out[0] = 0;
		return 0;
	}
	return dh_text_clean(out, size, stage, (size_t)n < size ? (size_t)n : size - 1);
}

size_t dh_text_format(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = dh_text_vformat(out, size, fmt, ap);
	va_end(ap);
	return n;
}
