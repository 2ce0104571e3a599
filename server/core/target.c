/*
 * Target selection by SemVer precedence over a caller-loaded candidate list. See target.h.
 */
#include "core/target.h"

#include "core/semver.h"

long dh_target_select(const struct dh_target_candidate *c, size_t n, const char *current,
		      bool drafts_allowed)
{
	struct dh_semver cur, v, best;
	long found = -1;

	if (!current || !dh_semver_parse(current, &cur))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (c[i].is_draft && !drafts_allowed)
			continue;
		if (!c[i].version || !dh_semver_parse(c[i].version, &v))
			continue;
		if (dh_semver_cmp(&v, &cur) <= 0)
			continue;
		if (found < 0 || dh_semver_cmp(&v, &best) > 0) {
			best = v;
			found = (long)i;
		}
	}
	return found;
}
