/*
 * Fuzz target for the router's path matching (server/http/router.c) over the real route
 * table: the first input byte picks the method, the rest is the path as the client sent it.
 * A match names a route that takes the method, and every capture is a non-empty piece of
 * the path without a '/'.
 */
#include "http/router.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dh_route_match m;
	unsigned method;
	size_t plen;
	char *path;
	bool any;

	if (size == 0)
		return 0;
	method = 1u << (data[0] % 7);
	path = malloc(size);
	if (!path)
		return 0;
	memcpy(path, data + 1, size - 1);
	path[size - 1] = 0;
	plen = strlen(path);
	any = dh_route_find(dh_routes, dh_routes_count, method, path, &m);
	if (m.route) {
		if (!any || m.route < dh_routes || m.route >= dh_routes + dh_routes_count ||
		    !(m.route->methods & method))
			abort();
	} else if (any && m.allowed == 0) {
		abort();
	}
	if (m.nargs > DH_MAX_ARGS || (!m.route && m.nargs))
		abort();
	for (size_t i = 0; i < m.nargs; i++) {
		if (m.arg_len[i] == 0 || m.arg_start[i] < path ||
		    m.arg_start[i] + m.arg_len[i] > path + plen ||
		    memchr(m.arg_start[i], '/', m.arg_len[i]))
			abort();
	}
	free(path);
	return 0;
}
