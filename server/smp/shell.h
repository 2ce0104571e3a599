/*
 * Parser for the text the Zephyr mesh shell prints (SMP.md 7.2): one-line objects such as
 * { "status": 0, "phase": 1, "group": 0x0000 }, the multi-line receivers-get block with its
 * target lines, and the "dfu slot add" messages of old and new releases. Tolerant and line
 * based: VT100 colour sequences are stripped, log lines in between are ignored, values may be
 * decimal, negative, 0x-hex, true/false or quoted strings, and a block whose closing brace is
 * missing is reported as truncated. Pure; no I/O.
 */
#ifndef DH_SMP_SHELL_H
#define DH_SMP_SHELL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Keys in one printed object: the largest (dfd get) has 9. */
#define DH_SMP_SHELL_KV_MAX 16
/* A quoted value holds at most a 16-byte FWID in hex (32 characters). */
#define DH_SMP_SHELL_STR_MAX 40
#define DH_SMP_SHELL_KEY_MAX 24
/* Target lines kept from one receivers-get answer (pages are small: 2 by default). */
#define DH_SMP_SHELL_TARGETS_MAX 16

enum dh_smp_shell_vtype {
	DH_SMP_SHELL_INT,
	DH_SMP_SHELL_BOOL,
	DH_SMP_SHELL_STR,
};

struct dh_smp_shell_kv {
	char key[DH_SMP_SHELL_KEY_MAX];
	enum dh_smp_shell_vtype type;
	int64_t num; /* INT, and BOOL as 0/1 */
	char str[DH_SMP_SHELL_STR_MAX];
};

struct dh_smp_shell_obj {
	struct dh_smp_shell_kv kv[DH_SMP_SHELL_KV_MAX];
	size_t n;
};

struct dh_smp_shell_target {
	int64_t index; /* the quoted number before the colon */
	struct dh_smp_shell_obj obj;
};

struct dh_smp_shell_doc {
	bool has_object;             /* a brace-delimited object was found */
	bool truncated;              /* an object or block was opened and never closed */
	struct dh_smp_shell_obj top; /* pairs of the first object (or of the block's top level) */
	struct dh_smp_shell_target targets[DH_SMP_SHELL_TARGETS_MAX];
	size_t n_targets;
	bool slot_added; /* "Slot added. Index: <i>" or "Slot added. ID: <i>" */
	int64_t slot_idx;
	bool slot_failed; /* "Failed to reserve slot.", "Failed to commit slot: <e>", "Failed." */
	char slot_failure[64];
};

/*
 * Parses n bytes of shell output into doc (caller-owned; about 22 KiB, so allocate it).
 * Never fails: what it cannot recognise it ignores.
 */
void dh_smp_shell_parse(const char *out, size_t n, struct dh_smp_shell_doc *doc);

/* Removes ESC [ ... <final> sequences and carriage returns; out holds at most cap - 1 bytes. */
size_t dh_smp_shell_strip(const char *in, size_t n, char *out, size_t cap);

/* Looks up an integer (or boolean) value. False when the key is missing or a string. */
bool dh_smp_shell_get_int(const struct dh_smp_shell_obj *o, const char *key, int64_t *v);
/* Looks up a quoted string value, or NULL. */
const char *dh_smp_shell_get_str(const struct dh_smp_shell_obj *o, const char *key);

#endif
