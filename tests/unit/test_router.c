/* Route matching: captures, optional trailing slash, 405 sets, and the real table. */
#include "http/router.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static enum dh_err h(struct dh_req *r)
{
	(void)r;
	return DH_OK;
}

static const struct dh_route table[] = {
	{ DH_GET, "/api/v1/products", h, DH_ACT_MANAGE, 0, NULL },
	{ DH_POST, "/api/v1/products", h, DH_ACT_MANAGE, 0, NULL },
	{ DH_GET | DH_HEAD, "/api/v1/products/{id}", h, DH_ACT_MANAGE, 0, NULL },
	{ DH_DELETE, "/api/v1/products/{id}", h, DH_ACT_MANAGE, 0, NULL },
	{ DH_POST, "/api/v1/firmware-update/{id}/start", h, DH_ACT_UPDATE, 0, NULL },
	{ DH_GET, "/healthz", h, DH_ACT_NONE, 0, NULL },
	{ DH_POST, "/api/v1/firmware-update/request", h, DH_ACT_UPDATE, 0, NULL },
	{ DH_GET | DH_HEAD, "/api/v1/firmware-update/{id}", h, DH_ACT_UPDATE, 0, NULL },
	{ DH_GET, "/api/v1/x/y/{id}", h, DH_ACT_NONE, 0, NULL },
	{ DH_PUT, "/api/v1/x/{id}/z", h, DH_ACT_NONE, 0, NULL },
};
#define N (sizeof(table) / sizeof(table[0]))

static const struct {
	unsigned method;
	const char *path;
	bool found;      /* some pattern matched the path */
	int route;       /* index into table, -1: none (405 when found) */
	const char *arg; /* first capture */
} cases[] = {
	{ DH_GET, "/api/v1/products", true, 0, NULL },
	{ DH_GET, "/api/v1/products/", true, 0, NULL },
	{ DH_POST, "/api/v1/products/", true, 1, NULL },
	{ DH_PUT, "/api/v1/products", true, -1, NULL },
	{ DH_GET, "/api/v1/products/abc", true, 2, "abc" },
	{ DH_GET, "/api/v1/products/abc/", true, 2, "abc" },
	{ DH_HEAD, "/api/v1/products/abc", true, 2, "abc" },
	{ DH_DELETE, "/api/v1/products/x-1", true, 3, "x-1" },
	{ DH_PATCH, "/api/v1/products/x", true, -1, NULL },
	{ DH_GET, "/api/v1/products/a/b", false, -1, NULL },
	{ DH_GET, "/api/v1/products//", false, -1, NULL },
	{ DH_GET, "/api/v1/product", false, -1, NULL },
	{ DH_GET, "/api/v1/productsx", false, -1, NULL },
	{ DH_POST, "/api/v1/firmware-update/5f/start", true, 4, "5f" },
	{ DH_POST, "/api/v1/firmware-update/5f/start/", true, 4, "5f" },
	{ DH_POST, "/api/v1/firmware-update//start", false, -1, NULL },
	{ DH_GET, "/healthz", true, 5, NULL },
	{ DH_GET, "/healthz/", true, 5, NULL },
	{ DH_GET, "/", false, -1, NULL },
	{ DH_GET, "", false, -1, NULL },
	{ DH_GET, "healthz", false, -1, NULL },
	/* a literal segment wins over a capture: GET on a POST-only literal path is 405 */
	{ DH_POST, "/api/v1/firmware-update/request", true, 6, NULL },
	{ DH_GET, "/api/v1/firmware-update/request", true, -1, NULL },
	{ DH_HEAD, "/api/v1/firmware-update/request/", true, -1, NULL },
	{ DH_GET, "/api/v1/firmware-update/requests", true, 7, "requests" },
	{ DH_GET, "/api/v1/firmware-update/abc", true, 7, "abc" },
	{ DH_POST, "/api/v1/firmware-update/abc", true, -1, NULL },
	/* ... at the first place where the patterns differ */
	{ DH_GET, "/api/v1/x/y/z", true, 8, "z" },
	{ DH_PUT, "/api/v1/x/y/z", true, -1, NULL },
	{ DH_PUT, "/api/v1/x/w/z", true, 9, "w" },
	{ DH_GET, "/api/v1/x/w/z", true, -1, NULL },
};

START_TEST(test_cases)
{
	struct dh_route_match m;
	bool found = dh_route_find(table, N, cases[_i].method, cases[_i].path, &m);

	ck_assert_msg(found == cases[_i].found, "%s", cases[_i].path);
	if (cases[_i].route < 0) {
		ck_assert_ptr_null(m.route);
	} else {
		ck_assert_ptr_eq(m.route, &table[cases[_i].route]);
	}
	if (cases[_i].arg) {
		ck_assert_uint_eq(m.nargs, 1);
		ck_assert_uint_eq(m.arg_len[0], strlen(cases[_i].arg));
		ck_assert(memcmp(m.arg_start[0], cases[_i].arg, m.arg_len[0]) == 0);
	}
}
END_TEST

START_TEST(test_allow)
{
	struct dh_route_match m;
	char allow[64];

	dh_route_find(table, N, DH_PUT, "/api/v1/products/1", &m);
	dh_route_allow_string(m.allowed, allow, sizeof(allow));
	ck_assert_str_eq(allow, "GET, HEAD, DELETE");
	/* only the most literal patterns give the Allow set */
	dh_route_find(table, N, DH_GET, "/api/v1/firmware-update/request", &m);
	dh_route_allow_string(m.allowed, allow, sizeof(allow));
	ck_assert_str_eq(allow, "POST");
	dh_route_find(table, N, DH_PUT, "/api/v1/x/y/z", &m);
	dh_route_allow_string(m.allowed, allow, sizeof(allow));
	ck_assert_str_eq(allow, "GET");
}
END_TEST

/* Splits pattern p into at most 16 segments; returns the count. */
static size_t segments(const char *p, const char *seg[16], size_t len[16])
{
	size_t n = 0;

	while (*p == '/' && n < 16) {
		const char *e = strchr(p + 1, '/');
		seg[n] = p + 1;
		len[n] = e ? (size_t)(e - p - 1) : strlen(p + 1);
		n++;
		p += 1 + len[n - 1];
	}
	return n;
}

/*
 * The router stops at its first hit, which is right only if the real table lists every
 * pattern before the less literal ones it overlaps (both match some path): at the first
 * place where two overlapping patterns differ, the earlier one must have the literal.
 */
START_TEST(test_real_table_lists_literal_patterns_first)
{
	for (size_t i = 0; i < dh_routes_count; i++) {
		for (size_t j = i + 1; j < dh_routes_count; j++) {
			const char *a[16], *b[16];
			size_t la[16], lb[16], na, nb, k;
			bool overlap = true;
			int first = 0; /* at the first difference: 1 if i is literal, -1 if j */

			na = segments(dh_routes[i].pattern, a, la);
			nb = segments(dh_routes[j].pattern, b, lb);
			if (na != nb)
				continue;
			for (k = 0; k < na && overlap; k++) {
				bool ca = a[k][0] == '{', cb = b[k][0] == '{';
				if (!ca && !cb)
					overlap = la[k] == lb[k] && memcmp(a[k], b[k], la[k]) == 0;
				else if (ca != cb && !first)
					first = ca ? -1 : 1;
			}
			ck_assert_msg(!overlap || first >= 0, "%s is listed after %s",
				      dh_routes[j].pattern, dh_routes[i].pattern);
		}
	}
}
END_TEST

/* Every row of the real table has a handler and a pattern that matches itself. */
START_TEST(test_real_table)
{
	for (size_t i = 0; i < dh_routes_count; i++) {
		char path[256];
		struct dh_route_match m;
		size_t o = 0;
		ck_assert(dh_routes[i].handler != NULL);
		for (const char *p = dh_routes[i].pattern; *p && o < sizeof(path) - 2; p++) {
			if (*p == '{') {
				path[o++] = 'x';
				while (*p && *p != '}')
					p++;
			} else {
				path[o++] = *p;
			}
		}
		path[o] = 0;
		ck_assert_msg(dh_route_find(dh_routes, dh_routes_count,
					    dh_routes[i].methods & -dh_routes[i].methods, path, &m),
			      "%s", dh_routes[i].pattern);
		ck_assert_msg(m.route == &dh_routes[i], "%s", dh_routes[i].pattern);
	}
}
END_TEST

/* Paths under a route that holds a credential are secret, whatever else they hold. */
START_TEST(test_secret_paths)
{
	static const struct {
		const char *path;
		bool secret;
	} t[] = {
		{ "/d/tok", true },   { "/d/tok/", true },      { "/d/tok/x", true },
		{ "//d/tok", true },  { "/d/", true },          { "/d", false },
		{ "/dx/tok", false }, { "/api/v1/d/x", false }, { "/", false },
		{ "", false },        { NULL, false },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		ck_assert_msg(dh_route_path_is_secret(dh_routes, dh_routes_count, t[i].path) ==
				      t[i].secret,
			      "%s", t[i].path ? t[i].path : "(null)");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("router");
	TCase *tc = tcase_create("match");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_cases, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_allow);
	tcase_add_test(tc, test_real_table);
	tcase_add_test(tc, test_secret_paths);
	tcase_add_test(tc, test_real_table_lists_literal_patterns_first);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
