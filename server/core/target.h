/*
 * Target selection: which firmware a device should get. Among the firmware of the device's
 * model in its channel, the highest SemVer precedence strictly above the current version;
 * drafts only when the caller says they are allowed. The database chooses (an indexed
 * ORDER BY ... LIMIT 1, however many images a channel holds), so precedence must be a plain
 * byte order: this module turns a version into a key whose bytewise order is SemVer
 * precedence. Pure: no I/O, no allocation.
 */
#ifndef DH_CORE_TARGET_H
#define DH_CORE_TARGET_H

#include "core/semver.h"

#include <stdbool.h>
#include <stddef.h>

/*
 * Room for the key of any version dh_semver_parse accepts (shorter than DH_SEMVER_MAX). The
 * worst growth is a one-digit numeric pre-release identifier with its dot: 2 characters
 * become 5 bytes; core numbers grow less. So under 2.5 bytes per character, plus the NUL.
 */
#define DH_TARGET_KEY_MAX (3 * DH_SEMVER_MAX)

/*
 * Writes the precedence key of v into key: for any two versions a and b,
 * strcmp(key(a), key(b)) has the sign of dh_semver_cmp(a, b) (build metadata is ignored,
 * so versions that differ only there share a key). The key uses printable ASCII only.
 */
void dh_target_key(const struct dh_semver *v, char key[DH_TARGET_KEY_MAX]);

/* The same from text; false (key set to "") when text is not a SemVer 2.0 version. */
bool dh_target_key_text(const char *text, char key[DH_TARGET_KEY_MAX]);

#endif
