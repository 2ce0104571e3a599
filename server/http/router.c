/*
 * Path matching for the route table. A pattern is split on '/', literal segments must be
 * equal, "{...}" segments capture one non-empty segment. One trailing slash on the path is
 * ignored, so "/api/v1/products" and "/api/v1/products/" reach the same route. When several
 * patterns match a path, the most literal one owns it: a literal segment wins over a
 * capture at the first position where they differ, so "/firmware-update/request" is never
 * taken for a session "{id}" (its other methods are 405, not a look-up of "request"). The
 * table lists literal patterns first, so that a look-up still stops at its first hit.
 */
#include "http/router.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Longest path the router considers; longer ones cannot match any route. */
#define ROUTE_PATH_MAX 1024

/*
 * Matches one pattern, character by character (routing runs on every request: this stops at
 * the first character that differs). *literal gets one bit per segment, the first segment
 * highest, set for a literal segment: of two patterns that match a path, the larger value is
 * the more literal. Patterns have far fewer than 64 segments.
 */
static bool match_one(const char *p, const char *path, size_t plen, struct dh_route_match *m,
		      uint64_t *literal)
{
	const char *s = path, *end = path + plen;
	size_t nargs = 0;

	*literal = 0;
	for (;;) {
		/* p and s are at the start of a segment */
		if (*p == '{') {
			const char *start = s;
			while (s < end && *s != '/')
				s++;
			if (s == start || nargs >= DH_MAX_ARGS)
				return false;
			m->arg_start[nargs] = start;
			m->arg_len[nargs] = (size_t)(s - start);
			nargs++;
			while (*p && *p != '/')
				p++;
			*literal <<= 1;
		} else {
			while (*p && *p != '/' && s < end && *s == *p) {
				p++;
				s++;
			}
			if ((*p && *p != '/') || (s < end && *s != '/'))
				return false;
			*literal = *literal << 1 | 1;
		}
		if (!*p)
			break;
		if (s == end)
			return false;
		p++; /* both at a '/' */
		s++;
	}
	if (s != end)
		return false;
	m->nargs = nargs;
	return true;
}

bool dh_route_find(const struct dh_route *routes, size_t n, unsigned method, const char *path,
		   struct dh_route_match *m)
{
	size_t plen = strlen(path);
	uint64_t best = 0, literal;
	bool any = false;

	memset(m, 0, sizeof(*m));
	if (plen > ROUTE_PATH_MAX)
		return false;
	if (plen > 1 && path[plen - 1] == '/')
		plen--;
	/*
	 * The most literal matching pattern owns the path. The table lists a literal pattern
	 * before every capture pattern it overlaps (test_router checks the real one), so the
	 * first pattern that matches is the most literal: later ones count only if they are
	 * as literal. The first of those that takes the method wins at once.
	 */
	for (size_t i = 0; i < n; i++) {
		struct dh_route_match tmp;
		if (!match_one(routes[i].pattern, path, plen, &tmp, &literal))
			continue;
		if (!any) {
			any = true;
			best = literal;
			m->owner = &routes[i];
		} else if (literal != best) {
			continue;
		}
		m->allowed |= routes[i].methods;
		if (routes[i].methods & method) {
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

bool dh_route_path_is_secret(const struct dh_route *routes, size_t n, const char *path)
{
	if (!path)
		return false;
	while (path[0] == '/' && path[1] == '/')
		path++;
	for (size_t i = 0; i < n; i++) {
		const char *p = routes[i].pattern;
		size_t k = strcspn(p, "{");
		if ((routes[i].flags & DH_ROUTE_SECRET_PATH) && strncmp(path, p, k) == 0)
			return true;
	}
	return false;
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
