/*
 * Semantic Versioning 2.0.0: parsing and precedence. Pure functions over caller-owned text;
 * no allocation. Build metadata is parsed (for validation) and ignored by comparison.
 */
#ifndef DH_CORE_SEMVER_H
#define DH_CORE_SEMVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest version string accepted; versions are human-chosen labels, not documents. */
#define DH_SEMVER_MAX 128

struct dh_semver {
	uint64_t major, minor, patch;
	char pre[DH_SEMVER_MAX];   /* pre-release without the '-', "" if none */
	char build[DH_SEMVER_MAX]; /* build metadata without the '+', "" if none */
};

/* Parses text into v. Returns true when text is a valid SemVer 2.0 string. */
bool dh_semver_parse(const char *text, struct dh_semver *v);

/* Precedence: <0, 0, >0 as a is lower, equal, higher than b (build metadata ignored). */
int dh_semver_cmp(const struct dh_semver *a, const struct dh_semver *b);

/* Parses both and compares; an invalid string sorts below every valid one. */
int dh_semver_cmp_text(const char *a, const char *b);

#endif
