/*
 * Every HTTP handler of the API, for the route table in http/routes.c, and the
 * authentication call the HTTP layer makes before a protected handler runs. Each handler
 * parses, checks rights, calls core/db and shapes JSON; it returns DH_OK after answering,
 * or an error code with req->err filled, which the router sends.
 */
#ifndef DH_API_H
#define DH_API_H

#include "http/req.h"

/* Reads Authorization (Token or Bearer), fills req->who; 401 on failure. Cached. */
enum dh_err dh_api_authenticate(struct dh_req *req);

/* Frees the authentication cache (at shutdown). */
void dh_api_auth_cache_clear(void);

/* health.c */
enum dh_err dh_api_healthz(struct dh_req *req);
enum dh_err dh_api_metrics(struct dh_req *req);

/* CRUD of configuration objects: list, create, get, patch, delete per resource. */
#define DH_API_CRUD(name)                                                                          \
	enum dh_err dh_api_##name##_list(struct dh_req *req);                                      \
	enum dh_err dh_api_##name##_create(struct dh_req *req);                                    \
	enum dh_err dh_api_##name##_get(struct dh_req *req);                                       \
	enum dh_err dh_api_##name##_patch(struct dh_req *req);                                     \
	enum dh_err dh_api_##name##_delete(struct dh_req *req)

DH_API_CRUD(products);
DH_API_CRUD(models);
DH_API_CRUD(channels);
DH_API_CRUD(delivery_methods);
DH_API_CRUD(delivery_procedures);
DH_API_CRUD(devices);
DH_API_CRUD(users);
DH_API_CRUD(tokens);
DH_API_CRUD(access_rights);

/* web.c: the dashboard's static files and the OpenAPI document */
enum dh_err dh_api_web(struct dh_req *req);
enum dh_err dh_api_openapi(struct dh_req *req);

#endif
