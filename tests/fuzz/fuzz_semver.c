/*
 * Fuzz target for SemVer parsing and precedence (server/core/semver.c), which reads versions
 * from uploads, session requests and list filters. The input, cut at its first newline, is
 * two versions. A parsed version printed back parses to the same fields, compares equal to
 * itself, and the order of two versions is antisymmetric.
 */
#include "core/semver.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sign(int x)
{
	return (x > 0) - (x < 0);
}

/* "major.minor.patch[-pre][+build]" of v, parsed again: must give v. */
static void round_trip(const struct dh_semver *v, struct dh_semver *w)
{
	char text[3 * 21 + 2 * DH_SEMVER_MAX + 8];
	int n = snprintf(text, sizeof(text), "%" PRIu64 ".%" PRIu64 ".%" PRIu64 "%s%s%s%s",
			 v->major, v->minor, v->patch, v->pre[0] ? "-" : "", v->pre,
			 v->build[0] ? "+" : "", v->build);

	if (n < 0 || (size_t)n >= sizeof(text))
		abort();
	if (!dh_semver_parse(text, w) || w->major != v->major || w->minor != v->minor ||
	    w->patch != v->patch || strcmp(w->pre, v->pre) || strcmp(w->build, v->build))
		abort();
	if (dh_semver_cmp(v, w) != 0 || dh_semver_cmp(v, v) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *second;
	struct dh_semver *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)), *w = malloc(sizeof(*w));
	bool ok_a, ok_b;

	if (!text || !a || !b || !w)
		goto out;
	memcpy(text, data, size);
	text[size] = 0;
	second = memchr(text, '\n', size);
	if (second)
		*second++ = 0;
	else
		second = text + size;
	ok_a = dh_semver_parse(text, a);
	ok_b = dh_semver_parse(second, b);
	if (ok_a)
		round_trip(a, w);
	if (ok_b)
		round_trip(b, w);
	if (ok_a && ok_b && sign(dh_semver_cmp(a, b)) != -sign(dh_semver_cmp(b, a)))
		abort();
	if (sign(dh_semver_cmp_text(text, second)) != -sign(dh_semver_cmp_text(second, text)))
		abort();
out:
	free(w);
	free(b);
	free(a);
	free(text);
	return 0;
}
