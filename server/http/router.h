/*
 * The route table: method + path pattern -> handler and required action. Patterns are
 * literal segments and "{id}" captures; a trailing slash is optional on every path.
 * dh_route_find is pure (no MHD) so that the unit tests walk it directly.
 */
#ifndef DH_HTTP_ROUTER_H
#define DH_HTTP_ROUTER_H

#include "http/req.h"

typedef enum dh_err (*dh_route_fn)(struct dh_req *req);
/* Streaming body consumer: called per chunk as it arrives; len 0 never passed. */
typedef enum dh_err (*dh_stream_fn)(struct dh_req *req, const char *data, size_t len);

/* Route flags. */
#define DH_ROUTE_STREAM_BODY 1u /* body goes to .stream, not accumulated */
#define DH_ROUTE_RAW_BODY    2u /* accumulate but do not parse as JSON */
#define DH_ROUTE_SECRET_PATH 4u /* the path holds a credential: never logged */
/* GET and HEAD may be served by the direct path (http/direct.c): the handler answers with
 * the reply calls of req.h only (no stream, no suspend) and reads no query parameter. */
#define DH_ROUTE_DIRECT 8u

struct dh_route {
	unsigned methods; /* DH_GET | DH_HEAD ... */
	const char *pattern;
	dh_route_fn handler;
	enum dh_action right; /* DH_ACT_NONE: public; else checked with dh_rights_any */
	unsigned flags;
	dh_stream_fn stream;
};

extern const struct dh_route dh_routes[];
extern const size_t dh_routes_count;
/* GET/HEAD of any path outside /api/ that no route takes: the dashboard's files. */
extern const struct dh_route dh_route_static;

/* Outcome of matching a path against the table. */
struct dh_route_match {
	const struct dh_route *route; /* NULL: no route for method+path */
	const struct dh_route *owner; /* the first route of the pattern that owns the path */
	unsigned allowed;             /* when route is NULL: the methods the path accepts (405) */
	size_t nargs;
	const char *arg_start[DH_MAX_ARGS];
	size_t arg_len[DH_MAX_ARGS];
};

/*
 * Matches method and path (no query string) against routes[0..n). Returns true when some
 * pattern matched the path at all (m->route may still be NULL: 405). Of the patterns that
 * match, only the most literal count (a literal segment beats a capture at the first place
 * they differ); routes must list a pattern before every less literal one it overlaps.
 */
bool dh_route_find(const struct dh_route *routes, size_t n, unsigned method, const char *path,
		   struct dh_route_match *m);

/*
 * Does path (a C string, or NULL) lie under a route of routes[0..n) whose path holds a
 * credential (DH_ROUTE_SECRET_PATH): does it start, after any run of leading slashes, with
 * such a pattern's literal part before its first capture ("/d/")? True whatever the method,
 * and also for a path no route takes ("/d/TOKEN/x"), so that a request answered before or
 * without routing cannot log the credential either.
 */
bool dh_route_path_is_secret(const struct dh_route *routes, size_t n, const char *path);

/* "GET, HEAD" etc. for an Allow header. */
void dh_route_allow_string(unsigned methods, char *buf, size_t size);

#endif
