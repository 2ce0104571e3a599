/*
 * Logging: one line per event, "TIME level event key=value ...", to stderr. The level is
 * filtered before formatting. Callers never pass secrets or request bodies.
 */
#ifndef DH_LOG_H
#define DH_LOG_H

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

/* fmt is the key=value tail, printf-style; values with spaces must be quoted by the caller
 * with dh_log_quote or the %q-like helper below. */
void dh_log(enum dh_log_level lvl, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copies s into buf as a log value: quoted if it has spaces or quotes, control bytes escaped. */
const char *dh_log_quote(const char *s, char *buf, unsigned size);

#define dh_debug(ev, ...) dh_log(DH_LOG_DEBUG, ev, __VA_ARGS__)
#define dh_info(ev, ...)  dh_log(DH_LOG_INFO, ev, __VA_ARGS__)
#define dh_warn(ev, ...)  dh_log(DH_LOG_WARN, ev, __VA_ARGS__)
#define dh_error(ev, ...) dh_log(DH_LOG_ERROR, ev, __VA_ARGS__)

#endif
