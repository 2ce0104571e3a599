/*
 * The `http` delivery step: calls an outside HTTP service for each session (e.g. an LwM2M
 * server's REST API, to write a device's Package URI and execute Update) and merges the JSON
 * answer into the payload under the step's name. This header exposes the pure parts, so that
 * the API checks params when a procedure is saved and the unit tests walk the templates.
 *
 * Params (unknown keys are refused when the procedure is saved):
 *   method   "GET", "POST" (default), "PUT", "PATCH" or "DELETE"
 *   url      absolute http or https URL (required); placeholders may appear in its path and
 *            query (their values are percent-encoded there), not in scheme, host or port
 *   headers  {"Name": "value", ...}, at most DH_HTTP_STEP_HEADERS; values may hold placeholders
 *   body     any JSON value (not with GET); its strings may hold placeholders; a string that
 *            is exactly "{firmware.size}" becomes a number. Sent as JSON (Content-Type
 *            application/json unless headers name another).
 *   expect   [status, ...] the statuses that count as success (default: any 2xx)
 *   timeout  seconds for the call (the pipeline's time limit of the step)
 * Placeholders: {session.id}, {device.id}, {firmware.version}, {firmware.sha256},
 * {firmware.size}, {link} (payload.download_link), {short_link}, {coap_link} (from the
 * payload, when an earlier step put them there); "{{" and "}}" are literal braces.
 * The same private-address rule as webhooks applies (--webhook-allow-private).
 */
#ifndef DH_PLUGINS_HTTP_STEP_H
#define DH_PLUGINS_HTTP_STEP_H

#include "plugins/dh_plugin.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Headers one step may set. */
#define DH_HTTP_STEP_HEADERS 32
/* Longest header value: tokens and short facts, not documents. */
#define DH_HTTP_STEP_HEADER_MAX 1024
/* Largest answer read: what is merged into the payload must stay small (it is stored with
 * the session and sent with every GET of it). */
#define DH_HTTP_STEP_ANSWER_MAX (64 * 1024)
/* Longest expanded URL, header value or body: a few times the template's own bound. */
#define DH_HTTP_STEP_TEXT_MAX (256 * 1024)
/* Largest "timeout" in seconds: one day; a remote call that takes longer is broken. */
#define DH_HTTP_STEP_TIMEOUT_MAX 86400
/* Bytes of an unexpected answer quoted in the session's error. */
#define DH_HTTP_STEP_EXCERPT 200

/* The values of the placeholders for one session; NULL: not available. */
struct dh_http_vars {
	const char *session_id;
	const char *device_id;
	const char *fw_version;
	const char *fw_sha256;
	const char *fw_size;
	const char *link;
	const char *short_link;
	const char *coap_link;
};

/*
 * Expands the placeholders of tmpl into a new malloc'd string (*out). vars NULL only checks
 * the template. url_encode percent-encodes each substituted value (for URLs). Returns false
 * with why (cap bytes) naming the placeholder that is unknown or has no value here.
 */
bool dh_http_step_expand(const char *tmpl, const struct dh_http_vars *vars, bool url_encode,
			 char **out, char *why, size_t cap);

/* The registry's params check: true when params suit the step; otherwise why names the key. */
bool dh_http_step_validate(const json_t *params, char *why, size_t cap);

/* The step as a built-in plugin (listed in plugins/loader.c). */
extern const struct dh_plugin dh_plugin_http;

#endif
