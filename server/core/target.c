/*
 * The precedence key of a SemVer version (see target.h). Layout, in byte order:
 *   major, minor, patch: two digits of length, then the digits (no leading zeros, so a
 *     longer number is a larger one and equal lengths compare digit by digit);
 *   a release: "~", which sorts above every pre-release byte below;
 *   a pre-release: each identifier as "0" + three digits of length + the digits when
 *     numeric (numeric identifiers rank below alphanumeric ones), or "1" + the identifier +
 *     "!" when alphanumeric ("!" sorts below every identifier character, so "a" < "ab").
 *     A shorter list that is a prefix of a longer one is a prefix of its key too: lower.
 */
#include "core/target.h"

#include <stdio.h>
#include <string.h>

/* Appends the decimal v with a two-digit length prefix at key + *o. */
static void put_number(char *key, size_t *o, uint64_t v)
{
	char digits[24];
	int n = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)v);

	*o += (size_t)snprintf(key + *o, DH_TARGET_KEY_MAX - *o, "%02d%s", n, digits);
}

void dh_target_key(const struct dh_semver *v, char key[DH_TARGET_KEY_MAX])
{
	const char *p = v->pre;
	size_t o = 0;

	put_number(key, &o, v->major);
	put_number(key, &o, v->minor);
	put_number(key, &o, v->patch);
	if (!*p) {
		key[o++] = '~';
		key[o] = 0;
		return;
	}
	while (*p) {
		size_t n = strcspn(p, "."), i;

		for (i = 0; i < n && p[i] >= '0' && p[i] <= '9'; i++)
			;
		if (i == n)
			o += (size_t)snprintf(key + o, DH_TARGET_KEY_MAX - o, "0%03zu%.*s", n,
					      (int)n, p);
		else
			o += (size_t)snprintf(key + o, DH_TARGET_KEY_MAX - o, "1%.*s!", (int)n, p);
		p += n;
		if (*p == '.')
			p++;
	}
	key[o] = 0;
}

bool dh_target_key_text(const char *text, char key[DH_TARGET_KEY_MAX])
{
	struct dh_semver v;

	key[0] = 0;
	if (!dh_semver_parse(text, &v))
		return false;
	dh_target_key(&v, key);
	return true;
}
