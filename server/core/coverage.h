/*
 * The set of distinct image bytes sent at least once: a sorted list of disjoint half-open
 * byte intervals [start, end) within [0, size), kept merged, with its total length. Used by
 * the delivery tracker (core/delivery.h) for what transports sent since the last flush and
 * by the flusher for what the database holds. Pure: no I/O, no locks; the caller guards it.
 *
 * Memory is bounded: at most DH_COVERAGE_MAX intervals. Adding one more disjoint interval
 * to a full set drops the shortest interval (the new one included), so the set may
 * under-count what was sent but never claims a byte that was not.
 */
#ifndef DH_CORE_COVERAGE_H
#define DH_CORE_COVERAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Most intervals one set keeps: 16 bytes each, 4 KiB per session at worst. A download in
 * order (CoAP blocks, HTTP with resume) stays one interval; only a client that skips
 * around in more than 256 separate places fragments the set that far.
 */
#define DH_COVERAGE_MAX 256
/*
 * Longest text form: per interval two 20-digit numbers, '-' and ',' (42 bytes), and NUL.
 * Sized for DH_COVERAGE_MAX intervals.
 */
#define DH_COVERAGE_TEXT_MAX (DH_COVERAGE_MAX * 42 + 1)

struct dh_interval {
	uint64_t start, end; /* half-open, start < end */
};

struct dh_coverage {
	uint64_t size;          /* the image size; bytes at or past it are ignored */
	uint64_t covered;       /* sum of the intervals' lengths */
	struct dh_interval *iv; /* sorted by start, disjoint and not touching */
	size_t n, cap;
	bool lossy; /* an interval was dropped at the limit (or for want of memory) */
};

/* Makes c an empty set over [0, size); caller-owned storage, no allocation yet. */
void dh_coverage_init(struct dh_coverage *c, uint64_t size);
/* Frees the intervals and empties c (size kept). */
void dh_coverage_release(struct dh_coverage *c);

/*
 * Adds [off, off + len) clipped to [0, size); overflow-safe for any off and len. Returns how
 * many bytes were not covered before (0 when nothing new, or when the interval was dropped
 * at the limit).
 */
uint64_t dh_coverage_add(struct dh_coverage *c, uint64_t off, uint64_t len);

/* Adds every interval of o (over any size; clipped to c's). Returns the bytes newly covered. */
uint64_t dh_coverage_merge(struct dh_coverage *c, const struct dh_coverage *o);

/* True when every byte of a non-empty image is covered. */
bool dh_coverage_full(const struct dh_coverage *c);

/* covered / size in [0, 1]; 0 for an empty image. Exactly 1 only when full. */
double dh_coverage_fraction(uint64_t covered, uint64_t size);

/*
 * Writes the intervals as "start-end,start-end" (decimal, end exclusive; "" when empty) into
 * buf. Returns the length, or 0 with buf "" when size is too small (DH_COVERAGE_TEXT_MAX
 * always fits).
 */
size_t dh_coverage_format(const struct dh_coverage *c, char *buf, size_t size);

/*
 * Adds the intervals of text (the format above; NULL or "" is empty) to c. Returns false,
 * leaving c as it was, when text is not that format or names an empty or reversed interval;
 * intervals may overlap, come in any order and reach past size (they are clipped).
 */
bool dh_coverage_parse(struct dh_coverage *c, const char *text);

#endif
