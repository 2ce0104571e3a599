/*
 * The interval set of coverage.h: sorted, merged intervals in one growing array (at most
 * DH_COVERAGE_MAX), binary search for the place of a new interval, memmove to insert or
 * to close the gap of merged ones. The text form is parsed saturating-free: any digit run
 * that overflows 64 bits makes the whole text invalid.
 */
#include "core/coverage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First allocation of a set's array; most sets never need more. */
#define COVERAGE_CAP0 4

void dh_coverage_init(struct dh_coverage *c, uint64_t size)
{
	memset(c, 0, sizeof(*c));
	c->size = size;
}

void dh_coverage_release(struct dh_coverage *c)
{
	uint64_t size = c->size;

	free(c->iv);
	dh_coverage_init(c, size);
}

/* Index of the first interval whose end is at or after start (touching counts). */
static size_t first_reaching(const struct dh_coverage *c, uint64_t start)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->iv[mid].end < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool grow(struct dh_coverage *c)
{
	size_t ncap;
	struct dh_interval *n;

	if (c->n < c->cap)
		return true;
	if (c->cap >= DH_COVERAGE_MAX)
		return false;
	ncap = c->cap ? c->cap * 2 : COVERAGE_CAP0;
	if (ncap > DH_COVERAGE_MAX)
		ncap = DH_COVERAGE_MAX;
	n = realloc(c->iv, ncap * sizeof(*n));
	if (!n)
		return false;
	c->iv = n;
	c->cap = ncap;
	return true;
}

static void remove_at(struct dh_coverage *c, size_t i)
{
	c->covered -= c->iv[i].end - c->iv[i].start;
	memmove(&c->iv[i], &c->iv[i + 1], (c->n - i - 1) * sizeof(c->iv[0]));
	c->n--;
}

/* Inserts [start, end), which touches no interval, before index at. */
static uint64_t insert_at(struct dh_coverage *c, size_t at, uint64_t start, uint64_t end)
{
	if (c->n == DH_COVERAGE_MAX || !grow(c)) {
		/* full: keep the longer intervals, so that the loss is as small as it can be */
		size_t k = 0;
		c->lossy = true;
		for (size_t i = 1; i < c->n; i++) {
			if (c->iv[i].end - c->iv[i].start < c->iv[k].end - c->iv[k].start)
				k = i;
		}
		if (c->n == 0 || end - start <= c->iv[k].end - c->iv[k].start)
			return 0;
		remove_at(c, k);
		if (k < at)
			at--;
	}
	memmove(&c->iv[at + 1], &c->iv[at], (c->n - at) * sizeof(c->iv[0]));
	c->iv[at].start = start;
	c->iv[at].end = end;
	c->n++;
	c->covered += end - start;
	return end - start;
}

uint64_t dh_coverage_add(struct dh_coverage *c, uint64_t off, uint64_t len)
{
	uint64_t start = off, end, old = 0, nstart, nend;
	size_t lo, hi;

	if (len == 0 || start >= c->size)
		return 0;
	end = len > c->size - start ? c->size : start + len;
	lo = first_reaching(c, start);
	hi = lo;
	while (hi < c->n && c->iv[hi].start <= end)
		hi++;
	if (lo == hi)
		return insert_at(c, lo, start, end);
	/* intervals lo .. hi-1 overlap or touch [start, end): fold them into iv[lo] */
	nstart = c->iv[lo].start < start ? c->iv[lo].start : start;
	nend = c->iv[hi - 1].end > end ? c->iv[hi - 1].end : end;
	for (size_t i = lo; i < hi; i++)
		old += c->iv[i].end - c->iv[i].start;
	c->iv[lo].start = nstart;
	c->iv[lo].end = nend;
	memmove(&c->iv[lo + 1], &c->iv[hi], (c->n - hi) * sizeof(c->iv[0]));
	c->n -= hi - lo - 1;
	c->covered += (nend - nstart) - old;
	return (nend - nstart) - old;
}

uint64_t dh_coverage_merge(struct dh_coverage *c, const struct dh_coverage *o)
{
	uint64_t added = 0;

	for (size_t i = 0; i < o->n; i++)
		added += dh_coverage_add(c, o->iv[i].start, o->iv[i].end - o->iv[i].start);
	return added;
}

bool dh_coverage_full(const struct dh_coverage *c)
{
	return c->size > 0 && c->covered == c->size;
}

double dh_coverage_fraction(uint64_t covered, uint64_t size)
{
	if (size == 0)
		return 0.0;
	if (covered >= size)
		return 1.0;
	return (double)covered / (double)size;
}

size_t dh_coverage_format(const struct dh_coverage *c, char *buf, size_t size)
{
	size_t o = 0;

	if (size == 0)
		return 0;
	buf[0] = 0;
	for (size_t i = 0; i < c->n; i++) {
		int n = snprintf(buf + o, size - o, "%s%llu-%llu", i ? "," : "",
				 (unsigned long long)c->iv[i].start,
				 (unsigned long long)c->iv[i].end);
		if (n < 0 || (size_t)n >= size - o) {
			buf[0] = 0;
			return 0;
		}
		o += (size_t)n;
	}
	return o;
}

/* Parses a run of decimal digits at *p; false when there is none or it overflows. */
static bool parse_num(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*p = s;
	*out = v;
	return true;
}

bool dh_coverage_parse(struct dh_coverage *c, const char *text)
{
	struct dh_coverage tmp;
	const char *p = text;
	bool ok = true;

	if (!text || !*text)
		return true;
	/* read everything first, so that a bad text leaves c untouched */
	dh_coverage_init(&tmp, UINT64_MAX);
	for (;;) {
		uint64_t a, b;
		if (!parse_num(&p, &a) || *p++ != '-' || !parse_num(&p, &b) || a >= b) {
			ok = false;
			break;
		}
		dh_coverage_add(&tmp, a, b - a);
		if (*p == 0)
			break;
		if (*p++ != ',') {
			ok = false;
			break;
		}
	}
	if (ok)
		dh_coverage_merge(c, &tmp);
	dh_coverage_release(&tmp);
	return ok;
}
