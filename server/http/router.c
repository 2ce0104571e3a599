/*
 * Path matching for the route table. A pattern is split on '/', literal segments must be
 * equal, "{...}" segments capture one non-empty segment. One trailing slash on the path is
 * ignored, so "/api/v1/products" and "/api/v1/products/" reach the same route.
 */
#include "http/router.h"

#include <stdio.h>
#include <string.h>

/* Longest path the router considers; longer ones cannot match any route. */
#define ROUTE_PATH_MAX 1024

static bool match_one(const char *pattern, const char *path, size_t plen, struct dh_route_match *m)
{
	const char *p = pattern, *s = path, *end = path + plen;
	size_t nargs = 0;

	while (*p && s <= end) {
		const char *pseg_end = strchr(p, '/');
		size_t pn = pseg_end ? (size_t)(pseg_end - p) : strlen(p);
		const char *sseg_end = memchr(s, '/', (size_t)(end - s));
		size_t sn = sseg_end ? (size_t)(sseg_end - s) : (size_t)(end - s);

		if (pn >= 2 && p[0] == '{' && p[pn - 1] == '}') {
			if (sn == 0 || nargs >= DH_MAX_ARGS)
				return false;
			m->arg_start[nargs] = s;
			m->arg_len[nargs] = sn;
			nargs++;
		} else if (pn != sn || memcmp(p, s, pn) != 0) {
			return false;
		}
		p += pn;
		s += sn;
		if (*p == '/' && s < end && *s == '/') {
			p++;
			s++;
		} else if (*p == '/' || (s < end && *s == '/')) {
			return false;
		}
	}
	if (*p || s != end)
		return false;
	m->nargs = nargs;
	return true;
}

bool dh_route_find(const struct dh_route *routes, size_t n, unsigned method, const char *path,
		   struct dh_route_match *m)
{
	size_t plen = strlen(path);
	bool any = false;

	memset(m, 0, sizeof(*m));
	if (plen > ROUTE_PATH_MAX)
		return false;
	if (plen > 1 && path[plen - 1] == '/')
		plen--;
	for (size_t i = 0; i < n; i++) {
		struct dh_route_match tmp;
		if (!match_one(routes[i].pattern, path, plen, &tmp))
			continue;
		any = true;
		m->allowed |= routes[i].methods;
		if (routes[i].methods & method) {
			/* the first route that takes the method wins; allowed only matters for 405
			 */
			for (size_t a = 0; a < tmp.nargs; a++) {
				m->arg_start[a] = tmp.arg_start[a];
				m->arg_len[a] = tmp.arg_len[a];
			}
			m->nargs = tmp.nargs;
			m->route = &routes[i];
			return true;
		}
	}
	return any;
}

void dh_route_allow_string(unsigned methods, char *buf, size_t size)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ DH_GET, "GET" },         { DH_HEAD, "HEAD" },   { DH_POST, "POST" },
		{ DH_PUT, "PUT" },         { DH_PATCH, "PATCH" }, { DH_DELETE, "DELETE" },
		{ DH_OPTIONS, "OPTIONS" },
	};
	size_t o = 0;

	if (size == 0)
		return;
	buf[0] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int n;
		if (!(methods & names[i].bit))
			continue;
		n = snprintf(buf + o, size - o, "%s%s", o ? ", " : "", names[i].name);
		if (n < 0 || (size_t)n >= size - o)
			return;
		o += (size_t)n;
	}
}
