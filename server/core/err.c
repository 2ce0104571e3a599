/*
 * The error table: each code's machine string, HTTP status and default sentence. The HTTP
 * layer turns a struct dh_error into {"code","detail","fields"} from this table only.
 */
#include "core/err.h"

#include "core/text.h"

#include <stdio.h>
#include <string.h>

struct err_row {
	const char *name;
	unsigned status;
	const char *sentence;
};

static const struct err_row err_table[DH_E__COUNT] = {
	[DH_OK] = { "ok", 200, "OK." },
	[DH_E_NOMEM] = { "out_of_memory", 500, "The server ran out of memory." },
	[DH_E_INTERNAL] = { "internal_error", 500, "The server hit an internal error." },
	[DH_E_DB] = { "database_error", 500, "The database could not complete the request." },
	[DH_E_IO] = { "io_error", 500, "The server could not read or write its data." },
	[DH_E_BAD_JSON] = { "malformed_json", 400, "The body is not valid JSON." },
	[DH_E_INVALID] = { "invalid", 400, "Some fields are missing or invalid." },
	[DH_E_UNAUTHORIZED] = { "unauthorized", 401,
				"Missing, unknown, expired or revoked token." },
	[DH_E_FORBIDDEN] = { "forbidden", 403, "Your access rights do not cover this." },
	[DH_E_NOT_FOUND] = { "not_found", 404, "No such object." },
	[DH_E_METHOD] = { "method_not_allowed", 405, "Method not allowed on this path." },
	[DH_E_CONFLICT] = { "conflict", 409, "The object conflicts with an existing one." },
	[DH_E_REFERENCED] = { "referenced", 409, "The object is still referenced by others." },
	[DH_E_STATE] = { "invalid_state", 409, "Not allowed in the session's current state." },
	[DH_E_GONE] = { "finished", 410, "The session is finished; nothing more can be done." },
	[DH_E_TOO_LARGE] = { "too_large", 413, "The body is larger than the configured limit." },
	[DH_E_MEDIA_TYPE] = { "unsupported_media_type", 415, "Wrong content type." },
	[DH_E_RANGE] = { "range_not_satisfiable", 416, "The range cannot be satisfied." },
	[DH_E_RATE] = { "rate_limited", 429, "Too many requests; retry later." },
	[DH_E_UNAVAILABLE] = { "unavailable", 503, "The server is overloaded or shutting down." },
	[DH_E_BUSY] = { "busy", 503, "The database is busy; retry later." },
	[DH_E_TIMEOUT] = { "timeout", 504, "The operation timed out." },
	[DH_E_CANCELLED] = { "cancelled", 409, "The operation was cancelled." },
	[DH_E_STEP] = { "step_failed", 500, "A delivery step failed." },
	[DH_E_BAD_REQUEST] = { "bad_request", 400, "The request is not well-formed HTTP/1.1." },
	[DH_E_REQUEST_TIMEOUT] = { "request_timeout", 408,
				   "The request head did not arrive in time." },
	[DH_E_URI_TOO_LONG] = { "uri_too_long", 414,
				"The request target is longer than the server accepts." },
	[DH_E_HEAD_TOO_LARGE] = { "headers_too_large", 431,
				  "The request head is larger than the server accepts." },
	[DH_E_NOT_IMPLEMENTED] = { "not_implemented", 501,
				   "The request uses an HTTP feature this server does not have." },
	[DH_E_HTTP_VERSION] = { "http_version_not_supported", 505,
				"Only HTTP/1.0 and HTTP/1.1 are served." },
	[DH_E_REVOKED] = { "token_revoked", 409,
			   "The token is revoked, and revocation is final; create a new token." },
};

static const struct err_row *row(enum dh_err code)
{
	if ((unsigned)code >= DH_E__COUNT || !err_table[code].name)
		return &err_table[DH_E_INTERNAL];
	return &err_table[code];
}

const char *dh_err_name(enum dh_err code)
{
	return row(code)->name;
}

unsigned dh_err_status(enum dh_err code)
{
	return row(code)->status;
}

const char *dh_err_sentence(enum dh_err code)
{
	return row(code)->sentence;
}

enum dh_err dh_error_set(struct dh_error *err, enum dh_err code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	err->detail[0] = 0;
	if (fmt) {
		va_start(ap, fmt);
		dh_text_vformat(err->detail, sizeof(err->detail), fmt, ap);
		va_end(ap);
	}
	return code;
}

enum dh_err dh_error_field(struct dh_error *err, const char *name, const char *what)
{
	char key[DH_ERR_FIELD_MAX + 1], text[DH_ERR_DETAIL_MAX];

	if (!err)
		return DH_E_INVALID;
	if (err->code != DH_E_INVALID) {
		err->code = DH_E_INVALID;
		err->detail[0] = 0;
	}
	/* the name may be a client's unknown key or multipart part name: any bytes at all */
	name = name ? name : "";
	what = what ? what : "invalid";
	dh_text_clean(key, sizeof(key), name, strlen(name));
	dh_text_clean(text, sizeof(text), what, strlen(what));
	if (!err->fields)
		err->fields = json_object();
	if (err->fields && !json_object_get(err->fields, key))
		json_object_set_new(err->fields, key, json_string(text));
	if (!err->detail[0])
		dh_text_format(err->detail, sizeof(err->detail), "Invalid field '%s': %s", key,
			       text);
	return DH_E_INVALID;
}

const char *dh_error_detail(const struct dh_error *err)
{
	return err->detail[0] ? err->detail : dh_err_sentence(err->code);
}

void dh_error_release(struct dh_error *err)
{
	json_decref(err->fields);
	memset(err, 0, sizeof(*err));
}
