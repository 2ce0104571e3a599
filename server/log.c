/*
 * The log writer. Each line is built in a stack buffer and written with one write(2) so
 * that lines from different threads do not interleave. The format string is the caller's
 * (a literal); every value it formats with %s or %c is escaped here, so no text from a
 * client, a device or a program can end a line, forge a key or break a reader's UTF-8.
 */
#include "log.h"

#include "core/text.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* One log line at most, newline included; a longer one is cut (on a character boundary). */
#define DH_LOG_LINE_MAX 2048

static atomic_int threshold = DH_LOG_INFO;
static const char *const names[] = { "debug", "info", "warn", "error" };

void dh_log_set_level(enum dh_log_level lvl)
{
	atomic_store(&threshold, (int)lvl);
}

int dh_log_level_parse(const char *name, enum dh_log_level *out)
{
	for (int i = 0; i <= DH_LOG_ERROR; i++) {
		if (name && strcmp(name, names[i]) == 0) {
			*out = (enum dh_log_level)i;
			return 1;
		}
	}
	return 0;
}

int dh_log_enabled(enum dh_log_level lvl)
{
	return (int)lvl >= atomic_load(&threshold);
}

/* The line being built: out[0..o), at most cap bytes of text (one more for the NUL). */
struct line {
	char *out;
	size_t o, cap;
	bool full;
};

/* Appends s[0..n) whole, or nothing (and the line is full from then on). */
static void put(struct line *l, const char *s, size_t n)
{
	if (l->full || n > l->cap - l->o) {
		l->full = true;
		return;
	}
	memcpy(l->out + l->o, s, n);
	l->o += n;
}

/*
 * How many bytes of v at i form one unit that is written as it is (a character that is
 * neither a control, a quote, a backslash nor a line or paragraph separator), or 0 when
 * the byte at i must be escaped.
 */
static size_t plain_unit(const unsigned char *v, size_t i, size_t n)
{
	size_t k = dh_utf8_char((const char *)v + i, n - i);

	if (k == 0)
		return 0;
	if (k == 1)
		return (v[i] < 0x20 || v[i] == 0x7f || v[i] == '"' || v[i] == '\\') ? 0 : 1;
	/* C1 controls (NEL, U+0085, ends a line for some readers), U+2028 and U+2029 */
	if (k == 2 && v[i] == 0xc2 && v[i + 1] < 0xa0)
		return 0;
	if (k == 3 && v[i] == 0xe2 && v[i + 1] == 0x80 && (v[i + 2] == 0xa8 || v[i + 2] == 0xa9))
		return 0;
	return k;
}

static bool needs_quotes(const unsigned char *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i] == ' ' || v[i] == '"' || v[i] == '=' || v[i] < 0x20 || v[i] == 0x7f)
			return true;
	}
	return false;
}

/*
 * Appends one value: a backslash before '"' and '\', \xNN for every other byte that is a
 * control or not UTF-8 (each byte of a C1 control or separator character too), in double
 * quotes when it holds a space, '"', '=' or a control, or when quoted is set. A value that
 * does not fit is cut between two units, and its quotes stay balanced.
 */
static void put_value(struct line *l, const char *s, size_t n, bool quoted)
{
	static const char hx[] = "0123456789abcdef";
	const unsigned char *v = (const unsigned char *)s;
	size_t i = 0, k;

	quoted = quoted || needs_quotes(v, n);
	if (quoted) {
		if (l->full || l->cap - l->o < 2) {
			l->full = true;
			return;
		}
		l->cap--; /* room for the closing quote, whatever happens */
		put(l, "\"", 1);
	}
	while (i < n && !l->full) {
		k = plain_unit(v, i, n);
		if (k > 0) {
			put(l, s + i, k);
			i += k;
		} else if (v[i] == '"' || v[i] == '\\') {
			char e[2] = { '\\', (char)v[i] };
			put(l, e, 2);
			i++;
		} else {
			size_t len = dh_utf8_char(s + i, n - i);
			/* a whole separator character is escaped byte by byte, as one unit */
			char e[16];
			size_t o = 0;
			if (len < 2)
				len = 1;
			for (size_t j = 0; j < len; j++) {
				e[o++] = '\\';
				e[o++] = 'x';
				e[o++] = hx[v[i + j] >> 4];
				e[o++] = hx[v[i + j] & 15];
			}
			put(l, e, o);
			i += len;
		}
	}
	if (quoted) {
		l->cap++;
		l->out[l->o++] = '"';
	}
}

/* Formats one non-string conversion spec[0..) with its argument taken from ap. */
static void put_number(struct line *l, const char *spec, size_t slen, va_list *ap)
{
	char fmt[32], tmp[128];
	char conv = spec[slen - 1];
	const char *len = spec;
	int n = -1;

	if (slen >= sizeof(fmt)) {
		l->full = true;
		return;
	}
	memcpy(fmt, spec, slen);
	fmt[slen] = 0;
	/* the length modifier sits just before the conversion character */
	while (len < spec + slen - 1 && !strchr("hljztL", *len))
		len++;
	switch (conv) {
	case 'd':
	case 'i':
		if (strncmp(len, "ll", 2) == 0)
			n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, long long));
		else if (*len == 'l')
			n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, long));
		else if (*len == 'z' || *len == 't')
			n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, ptrdiff_t));
		else if (*len == 'j')
			n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, intmax_t));
		else
			n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, int));
		break;
	case 'u':
	case 'x':
	case 'X':
	case 'o':
		if (strncmp(len, "ll", 2) == 0)
			n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, unsigned long long));
		else if (*len == 'l')
			n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, unsigned long));
		else if (*len == 'z' || *len == 't')
			n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, size_t));
		else if (*len == 'j')
			n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, uintmax_t));
		else
			n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, unsigned));
		break;
	case 'e':
	case 'E':
	case 'f':
	case 'F':
	case 'g':
	case 'G':
		if (*len == 'L')
			n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, long double));
		else
			n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, double));
		break;
	case 'p':
		n = snprintf(tmp, sizeof(tmp), fmt, va_arg(*ap, void *));
		break;
	default:
		break;
	}
	if (n < 0) {
		put(l, "?", 1);
		return;
	}
	put(l, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

size_t dh_log_vformat(char *out, size_t size, const char *fmt, va_list ap)
{
	struct line l = { .out = out, .cap = size ? size - 1 : 0 };
	const char *p = fmt;
	va_list aq;

	if (size == 0)
		return 0;
	va_copy(aq, ap);
	while (*p && !l.full) {
		const char *spec = p, *q;
		int prec = -1;
		size_t lit = strcspn(p, "%");

		if (lit > 0) {
			put(&l, p, lit);
			p += lit;
			continue;
		}
		/* a conversion: flags, width, precision, length, conversion character */
		q = p + 1;
		q += strspn(q, "-+ #0");
		if (*q == '*') {
			(void)va_arg(aq, int); /* widths pad numbers; a value is never padded */
			q++;
		} else {
			q += strspn(q, "0123456789");
		}
		if (*q == '.') {
			q++;
			if (*q == '*') {
				prec = va_arg(aq, int);
				q++;
			} else {
				prec = 0;
				for (; *q >= '0' && *q <= '9'; q++)
					prec = prec < 100000 ? prec * 10 + (*q - '0') : prec;
			}
		}
		q += strspn(q, "hljztL");
		if (!*q)
			break;
		p = q + 1;
		if (*q == '%') {
			put(&l, "%", 1);
		} else if (*q == 's' || *q == 'c') {
			char c;
			const char *v;
			size_t n;
			/* a value the format already wraps in quotes ("%s") keeps them: the quotes
			 * of the format are dropped and the value is quoted as any other */
			bool quoted = spec > fmt && spec[-1] == '"' && *p == '"' && l.o > 0 &&
				      l.out[l.o - 1] == '"';
			if (*q == 'c') {
				c = (char)va_arg(aq, int);
				v = &c;
				n = 1;
			} else {
				v = va_arg(aq, const char *);
				if (!v)
					v = "(null)";
				/* a precision may bound a buffer without NUL: read no further,
				 * and drop a character it cut */
				n = prec >= 0 ? strnlen(v, (size_t)prec) : strlen(v);
				if (prec >= 0 && n == (size_t)prec)
					n = dh_utf8_trim_partial(v, n);
			}
			if (quoted) {
				l.o--;
				p++;
			}
			/* an empty value after "key=" is written "" so that the key keeps a value
			 */
			put_value(&l, v, n, quoted || (n == 0 && l.o > 0 && l.out[l.o - 1] == '='));
		} else {
			put_number(&l, spec, (size_t)(p - spec), &aq);
		}
	}
	va_end(aq);
	out[l.o] = 0; /* put() writes whole units only: the line never ends inside one */
	return l.o;
}

size_t dh_log_format(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = dh_log_vformat(out, size, fmt, ap);
	va_end(ap);
	return n;
}

void dh_log(enum dh_log_level lvl, const char *event, const char *fmt, ...)
{
	char line[DH_LOG_LINE_MAX], ts[DH_TIME_LEN];
	int n;
	va_list ap;

	if (!dh_log_enabled(lvl))
		return;
	dh_time_format(dh_now_us(), ts);
	n = snprintf(line, sizeof(line), "%s %s %s ", ts, names[lvl], event);
	if (n < 0 || (size_t)n >= sizeof(line) - 1)
		return;
	va_start(ap, fmt);
	/* one byte stays free for the newline */
	n += (int)dh_log_vformat(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}
