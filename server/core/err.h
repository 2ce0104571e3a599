/*
 * The one error enum of Device Hub and its table of machine code, HTTP status and default
 * sentence. Functions that can fail return enum dh_err; when a caller needs more than the
 * code they also fill a struct dh_error. Codes are appended, never renumbered or reused.
 */
#ifndef DH_CORE_ERR_H
#define DH_CORE_ERR_H

#include <jansson.h>
#include <stdarg.h>

enum dh_err {
	DH_OK = 0,
	DH_E_NOMEM,
	DH_E_INTERNAL,
	DH_E_DB,
	DH_E_IO,
	DH_E_BAD_JSON,
	DH_E_INVALID,
	DH_E_UNAUTHORIZED,
	DH_E_FORBIDDEN,
	DH_E_NOT_FOUND,
	DH_E_METHOD,
	DH_E_CONFLICT,
	DH_E_REFERENCED,
	DH_E_STATE,
	DH_E_GONE,
	DH_E_TOO_LARGE,
	DH_E_MEDIA_TYPE,
	DH_E_RANGE,
	DH_E_RATE,
	DH_E_UNAVAILABLE,
	DH_E_BUSY,
	DH_E_TIMEOUT,
	DH_E_CANCELLED,
	DH_E_STEP,
	DH_E_BAD_REQUEST,
	DH_E_REQUEST_TIMEOUT,
	DH_E_URI_TOO_LONG,
	DH_E_HEAD_TOO_LARGE,
	DH_E_NOT_IMPLEMENTED,
	DH_E_HTTP_VERSION,
	DH_E_REVOKED,
	DH_E__COUNT
};

/* Longest detail sentence kept, with its NUL; longer ones are cut on a character boundary
 * (they are for humans). */
#define DH_ERR_DETAIL_MAX 512
/* Longest field name kept in "fields" (bytes): a client's unknown key is echoed up to this,
 * cut on a character boundary. Every name the API defines is far shorter. */
#define DH_ERR_FIELD_MAX 128

/*
 * A code with its sentence and, for validation errors, a "fields" object (owned: released by
 * dh_error_release). detail[0] == 0 means "use the table's default sentence".
 */
struct dh_error {
	enum dh_err code;
	char detail[DH_ERR_DETAIL_MAX];
	json_t *fields;
};

/* Machine string ("invalid_state"), HTTP status and default sentence of a code. */
const char *dh_err_name(enum dh_err code);
unsigned dh_err_status(enum dh_err code);
const char *dh_err_sentence(enum dh_err code);

/* Sets code and a printf-style detail; returns code so that callers can write
 * `return dh_error_set(err, DH_E_INVALID, "...")`. err may be NULL. The detail is always
 * well-formed UTF-8 whatever the arguments hold: bytes that are not are escaped as \xNN,
 * and a long detail is cut on a character boundary (core/text.h). */
enum dh_err dh_error_set(struct dh_error *err, enum dh_err code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Adds fields[name] = what and sets code DH_E_INVALID (detail if none yet). name and what
 * may hold any bytes: they are made well-formed as the detail is, and name is cut to
 * DH_ERR_FIELD_MAX bytes. The first problem reported for a name is kept. */
enum dh_err dh_error_field(struct dh_error *err, const char *name, const char *what);

/* The detail to show: the set sentence or the table's default. */
const char *dh_error_detail(const struct dh_error *err);

/* Frees fields and clears the struct to DH_OK. */
void dh_error_release(struct dh_error *err);

#endif
