/*
 * The log writer. Each line is built in a stack buffer and written with one write(2) so
 * that lines from different threads do not interleave.
 */
#include "log.h"

#include "core/util.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

void dh_log(enum dh_log_level lvl, const char *event, const char *fmt, ...)
{
	char line[2048], ts[DH_TIME_LEN];
	int n, m;
	va_list ap;

	if (!dh_log_enabled(lvl))
		return;
	dh_time_format(dh_now_us(), ts);
	n = snprintf(line, sizeof(line), "%s %s %s ", ts, names[lvl], event);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

const char *dh_log_quote(const char *s, char *buf, unsigned size)
{
	unsigned o = 0;
	int quote = 0;

	if (size < 4)
		return "";
	if (!s)
		s = "";
	for (const char *p = s; *p; p++) {
		if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20)
			quote = 1;
	}
	if (!*s)
		quote = 1;
	if (quote)
		buf[o++] = '"';
	for (const char *p = s; *p && o + 5 < size; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			o += (unsigned)snprintf(buf + o, size - o, "\\x%02x", c);
		} else {
			buf[o++] = (char)c;
		}
	}
	if (quote)
		buf[o++] = '"';
	buf[o] = 0;
	return buf;
}
