/*
 * Every HTTP handler of the API, for the route table in http/routes.c, and the
 * authentication call the HTTP layer makes before a protected handler runs. Each handler
 * parses, checks rights, calls core/db and shapes JSON; it returns DH_OK after answering,
 * or an error code with req->err filled, which the router sends.
 */
#ifndef DH_API_H
#define DH_API_H

#include "core/delivery.h"
#include "http/req.h"

/* Reads Authorization (Token or Bearer), fills req->who; 401 on failure. Cached. */
enum dh_err dh_api_authenticate(struct dh_req *req);

/*
 * Checks again, as a new request would, the token of who (a principal dh_api_authenticate
 * filled): on DH_OK *who holds the user's grants and the token's expiry of now; DH_E_UNAUTHORIZED
 * (err filled) once the token is revoked, deleted or expired or its user deactivated or gone;
 * *who is then unchanged. For long-lived requests (event streams).
 */
enum dh_err dh_api_reauthenticate(struct dh_db *db, struct dh_principal *who, struct dh_error *err);

/*
 * Does the first {id} of the request's path name an object the caller may see? For a caller
 * that holds the route's right nowhere: the 404 that comes before a 403 (API.md: existence is
 * decided before rights) is also the answer for an object beyond every grant of the caller,
 * so that no token can tell what exists outside its scope (README, "Security model"). Each
 * kind decides as its own handlers do (dh_api_<kind>_visible); paths of kinds this does not
 * know answer true, so that their callers still get 403. Leaves req->err as it was.
 */
bool dh_api_route_id_visible(struct dh_req *req);

/* Frees the authentication cache (at shutdown). */
void dh_api_auth_cache_clear(void);

/* health.c */
enum dh_err dh_api_healthz(struct dh_req *req);
enum dh_err dh_api_metrics(struct dh_req *req);

/* CRUD of configuration objects: list, create, get, patch, delete per resource, and whether
 * a uuid or tid names one the caller may see (for dh_api_route_id_visible). */
#define DH_API_CRUD(name)                                                                          \
	enum dh_err dh_api_##name##_list(struct dh_req *req);                                      \
	enum dh_err dh_api_##name##_create(struct dh_req *req);                                    \
	enum dh_err dh_api_##name##_get(struct dh_req *req);                                       \
	enum dh_err dh_api_##name##_patch(struct dh_req *req);                                     \
	enum dh_err dh_api_##name##_delete(struct dh_req *req);                                    \
	bool dh_api_##name##_visible(struct dh_req *req, const char *key)

DH_API_CRUD(products);
DH_API_CRUD(models);
DH_API_CRUD(channels);
DH_API_CRUD(delivery_methods);
DH_API_CRUD(delivery_procedures);
DH_API_CRUD(devices);
DH_API_CRUD(users);
DH_API_CRUD(tokens);
DH_API_CRUD(access_rights);
DH_API_CRUD(webhooks);

/* webhooks.c: the delivery log of a webhook and redelivery */
enum dh_err dh_api_webhook_deliveries(struct dh_req *req);
enum dh_err dh_api_webhook_redeliver(struct dh_req *req);

/* web.c: the dashboard's static files and the OpenAPI document */
enum dh_err dh_api_web(struct dh_req *req);
enum dh_err dh_api_openapi(struct dh_req *req);

/* firmware.c: upload (streamed multipart body), catalogue and image download */
enum dh_err dh_api_firmware_upload_chunk(struct dh_req *req, const char *data, size_t len);
enum dh_err dh_api_firmware_create(struct dh_req *req);
enum dh_err dh_api_firmware_list(struct dh_req *req);
enum dh_err dh_api_firmware_get(struct dh_req *req);
enum dh_err dh_api_firmware_patch(struct dh_req *req);
enum dh_err dh_api_firmware_delete(struct dh_req *req);
enum dh_err dh_api_firmware_image(struct dh_req *req);
/* Does key name a firmware the caller may see (a draft only with a right to drafts)? */
bool dh_api_firmware_visible(struct dh_req *req, const char *key);

/*
 * downloads.c: answers GET or HEAD with the blob sha256 of size bytes: 200 with the whole
 * image, 206 for one satisfiable Range (If-Range honoured), 416 (JSON error, Content-Range
 * naming the size) when the range starts beyond the end; always Accept-Ranges, the strong
 * ETag (the quoted sha256), Content-Type application/octet-stream and, when last_modified
 * (RFC 3339, e.g. the image's create_time; may be NULL) parses, Last-Modified. Several
 * ranges or a malformed Range are ignored (200). The bytes go out by sendfile or from a
 * shared mapping of the blob, never copied in user space. The caller has checked rights.
 * DH_E_IO when the blob is missing. With who (a session's download; NULL otherwise) the
 * bytes of a GET answer count as delivered (core/delivery.h) once the HTTP layer reports
 * the whole answer handed to the kernel; an answer cut short counts nothing.
 */
enum dh_err dh_api_send_blob(struct dh_req *req, const char *sha256, uint64_t size,
			     const char *last_modified, const struct dh_delivery_who *who);

/*
 * downloads.c: GET or HEAD /d/{token}, a session's short link (core/links.h): the image as
 * dh_api_send_blob answers it, counted for the session; 404 "No such link." alike for a
 * token that never existed and one whose session is no longer processing or created.
 */
enum dh_err dh_api_short_link(struct dh_req *req);

/* sessions.c: firmware-update sessions and their download link */
enum dh_err dh_api_sessions_request(struct dh_req *req);
enum dh_err dh_api_sessions_list(struct dh_req *req);
enum dh_err dh_api_sessions_get(struct dh_req *req);
enum dh_err dh_api_sessions_start(struct dh_req *req);
enum dh_err dh_api_sessions_confirm(struct dh_req *req);
enum dh_err dh_api_sessions_image(struct dh_req *req);
/* Does key name a session the caller may see (one that leads to a draft only with a right to
 * drafts)? */
bool dh_api_sessions_visible(struct dh_req *req, const char *key);

/*
 * stats.c: GET /api/v1/firmware-update/stats, the counts of the sessions created in the
 * last ?hours= (1 to 168, default 24) that the caller's update grants cover, per state, per
 * hour and per target firmware; ?model= narrows them to one model.
 */
enum dh_err dh_api_sessions_stats(struct dh_req *req);

/*
 * events.c: GET /api/v1/events, Server-Sent Events of session changes the caller may see.
 * dh_api_events_stop ends every stream and joins the notifier; call it before
 * dh_http_stop so that no connection is left parked when MHD stops.
 */
enum dh_err dh_api_events(struct dh_req *req);
unsigned dh_api_events_subscribers(void);
void dh_api_events_stop(void);

#endif
