/*
 * Logging: one line per event, "TIME level event key=value ...", to stderr. The level is
 * filtered before formatting. Callers never pass secrets or request bodies; they pass any
 * other text as it is, for the logger escapes every value.
 */
#ifndef DH_LOG_H
#define DH_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum dh_log_level {
	DH_LOG_DEBUG = 0,
	DH_LOG_INFO,
	DH_LOG_WARN,
	DH_LOG_ERROR,
};

/* Sets the threshold; parse returns false for an unknown name. */
void dh_log_set_level(enum dh_log_level lvl);
int dh_log_level_parse(const char *name, enum dh_log_level *out);
int dh_log_enabled(enum dh_log_level lvl);

/*
 * Writes "TIME level event " and fmt, the key=value tail, printf-style: fmt is a literal of
 * the caller, its values may hold any bytes. Every %s and %c value is escaped by the logger
 * itself: '"' and '\' get a backslash; controls, bytes that are not UTF-8, C1 controls and
 * U+2028/U+2029 become \xNN (each byte); the value is put in double quotes when it holds a
 * space, '"', '=' or a control, or is empty after '='. A value the format wraps in quotes
 * itself ("\"%s\"") is always quoted, once. A precision (%.40s) cuts on a character
 * boundary. So no value can end the line or add a key. Numbers are formatted as printf does.
 */
void dh_log(enum dh_log_level lvl, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The tail dh_log writes, into out (size bytes, NUL-terminated; cut between two values or
 * escapes when too long); returns its length. For tests of the escaping. */
size_t dh_log_format(char *out, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
size_t dh_log_vformat(char *out, size_t size, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#define dh_debug(ev, ...) dh_log(DH_LOG_DEBUG, ev, __VA_ARGS__)
#define dh_info(ev, ...)  dh_log(DH_LOG_INFO, ev, __VA_ARGS__)
#define dh_warn(ev, ...)  dh_log(DH_LOG_WARN, ev, __VA_ARGS__)
#define dh_error(ev, ...) dh_log(DH_LOG_ERROR, ev, __VA_ARGS__)

#endif
