/*
 * SemVer 2.0.0 parsing and precedence (semver.org, items 2, 9, 10 and 11). Numeric
 * identifiers have no leading zeros; pre-release identifiers compare numerically when both
 * are numeric, lexically in ASCII otherwise, numeric below alphanumeric, and a longer list
 * wins when all earlier identifiers are equal.
 */
#include "core/semver.h"

#include <string.h>

static bool is_ident_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == '-';
}

static bool is_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
	}
	return true;
}

/* Reads a numeric core part without leading zeros; advances *p. */
static bool parse_num(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	size_t n = 0;

	while (s[n] >= '0' && s[n] <= '9') {
		unsigned d = (unsigned)(s[n] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		n++;
	}
	if (n == 0 || (n > 1 && s[0] == '0'))
		return false;
	*out = v;
	*p = s + n;
	return true;
}

/* Checks a dot-separated identifier list; numeric ones must lack leading zeros when
 * no_leading_zero is set (pre-release), not for build metadata. */
static bool check_idents(const char *s, size_t len, bool no_leading_zero)
{
	size_t start = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			size_t n = i - start;
			if (n == 0)
				return false;
			if (no_leading_zero && is_digits(s + start, n) && n > 1 && s[start] == '0')
				return false;
			start = i + 1;
		} else if (!is_ident_char(s[i])) {
			return false;
		}
	}
	return true;
}

bool dh_semver_parse(const char *text, struct dh_semver *v)
{
	const char *p = text;
	const char *plus, *end;
	size_t len;

	if (!text)
		return false;
	len = strlen(text);
	if (len == 0 || len >= DH_SEMVER_MAX)
		return false;
	memset(v, 0, sizeof(*v));
	if (!parse_num(&p, &v->major) || *p++ != '.' || !parse_num(&p, &v->minor) || *p++ != '.' ||
	    !parse_num(&p, &v->patch))
		return false;
	end = text + len;
	plus = strchr(p, '+');
	if (*p == '-') {
		const char *pre_end = plus ? plus : end;
		size_t n = (size_t)(pre_end - (p + 1));
		if (!check_idents(p + 1, n, true))
			return false;
		memcpy(v->pre, p + 1, n);
		v->pre[n] = 0;
		p = pre_end;
	}
	if (*p == '+') {
		size_t n = (size_t)(end - (p + 1));
		if (!check_idents(p + 1, n, false))
			return false;
		memcpy(v->build, p + 1, n);
		v->build[n] = 0;
		p = end;
	}
	return *p == 0;
}

static int cmp_u64(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b ? 1 : 0;
}

/* Compares one pre-release identifier each (lengths given; digits-only → numeric). */
static int cmp_ident(const char *a, size_t na, const char *b, size_t nb)
{
	bool da = is_digits(a, na), db = is_digits(b, nb);
	int c;

	if (da && db) {
		if (na != nb)
			return na < nb ? -1 : 1; /* no leading zeros: longer is larger */
		c = memcmp(a, b, na);
		return c < 0 ? -1 : c > 0;
	}
	if (da)
		return -1;
	if (db)
		return 1;
	c = memcmp(a, b, na < nb ? na : nb);
	if (c)
		return c < 0 ? -1 : 1;
	return na < nb ? -1 : na > nb ? 1 : 0;
}

int dh_semver_cmp(const struct dh_semver *a, const struct dh_semver *b)
{
	const char *pa = a->pre, *pb = b->pre;
	int c;

	if ((c = cmp_u64(a->major, b->major)) || (c = cmp_u64(a->minor, b->minor)) ||
	    (c = cmp_u64(a->patch, b->patch)))
		return c;
	if (!*pa || !*pb)
		return !*pa && !*pb ? 0 : !*pa ? 1 : -1; /* a release outranks its pre-releases */
	for (;;) {
		size_t na = strcspn(pa, "."), nb = strcspn(pb, ".");
		c = cmp_ident(pa, na, pb, nb);
		if (c)
			return c;
		pa += na;
		pb += nb;
		if (!*pa || !*pb)
			return !*pa && !*pb ? 0 : !*pa ? -1 : 1;
		pa++;
		pb++;
	}
}

int dh_semver_cmp_text(const char *a, const char *b)
{
	struct dh_semver va, vb;
	bool oka = dh_semver_parse(a, &va), okb = dh_semver_parse(b, &vb);

	if (!oka || !okb)
		return oka == okb ? 0 : oka ? 1 : -1;
	return dh_semver_cmp(&va, &vb);
}
