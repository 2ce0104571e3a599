/*
 * Target selection: which firmware a device should get. Among the candidates (the
 * firmware of the device's model in its channel, loaded by the caller), the highest SemVer
 * precedence strictly above the current version; drafts only when the caller says they are
 * allowed (allow_draft_firmware given and the `draft` right held). Pure: no I/O, no
 * allocation.
 */
#ifndef DH_CORE_TARGET_H
#define DH_CORE_TARGET_H

#include <stdbool.h>
#include <stddef.h>

/* One firmware that could be the target; strings are borrowed. */
struct dh_target_candidate {
	const char *id;
	const char *version;
	bool is_draft;
};

/*
 * Index into c[0..n) of the target for a device running current (a SemVer string), or -1
 * when none is strictly higher (the session is up_to_date). Candidates whose version does
 * not parse are skipped; so are drafts unless drafts_allowed. An unparsable current version
 * selects nothing (callers validate it first). Among equal precedence (build metadata
 * differs) the first candidate wins, so the caller's order decides ties.
 */
long dh_target_select(const struct dh_target_candidate *c, size_t n, const char *current,
		      bool drafts_allowed);

#endif
