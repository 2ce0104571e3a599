/*
 * Static files of the dashboard (web/) and the OpenAPI document, served from the web
 * directory with sendfile. Paths are checked so that nothing outside it can be named.
 */
#ifndef DH_HTTP_STATIC_H
#define DH_HTTP_STATIC_H

#include "http/req.h"

/* Serves req->path below the web directory ("/" is index.html); 404 when absent. */
enum dh_err dh_http_static(struct dh_req *req);
/* Serves web/openapi.json. */
enum dh_err dh_http_openapi(struct dh_req *req);

#endif
