/*
 * Small rules and conversions shared by every layer: tid and uuid syntax, RFC 3339 times,
 * checked number parsing, SHA-256 hex and constant-time comparison. No I/O besides the clock.
 */
#ifndef DH_CORE_UTIL_H
#define DH_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A uuid in text form is 36 characters; with the terminating NUL, 37. */
#define DH_UUID_LEN 37
/* A tid: [A-Za-z0-9._-]{1,64} (API.md). */
#define DH_TID_MAX 64
/* A device's own name (device_id: serial number, MAC, ...): 1 to 128 bytes of UTF-8. Buffers
 * that hold one are DH_DEVICE_ID_MAX + 1 bytes. */
#define DH_DEVICE_ID_MAX 128
/* "2026-04-18T13:12:50.365610+00:00" and NUL. */
#define DH_TIME_LEN   33
#define DH_SHA256_HEX 65

bool dh_tid_valid(const char *s);
/* True for a lower- or upper-case 8-4-4-4-12 hex uuid. */
bool dh_uuid_valid(const char *s);
/* Writes a fresh random v4 uuid, lower-case. */
void dh_uuid_new(char out[DH_UUID_LEN]);

/* Microseconds since the epoch, wall clock. */
int64_t dh_now_us(void);
/* Milliseconds of the monotonic clock, for deadlines. */
int64_t dh_mono_ms(void);
/* Formats t (µs since epoch, UTC) as RFC 3339 with microseconds and +00:00. */
void dh_time_format(int64_t t_us, char out[DH_TIME_LEN]);
/* Parses an RFC 3339 date-time (any offset, fraction optional, digits beyond microseconds
 * dropped) into µs since the epoch. Strict: each field in its range, the day within its
 * month (leap years too), offsets to ±23:59; no leap second. False for anything else. */
bool dh_time_parse(const char *s, int64_t *t_us);

/* Whole decimal string to uint64 with overflow check; no sign, no spaces. */
bool dh_parse_u64(const char *s, uint64_t *out);
/* Same for a bounded length prefix. */
bool dh_parse_u64n(const char *s, size_t n, uint64_t *out);

/* SHA-256 of buf as 64 lower-case hex digits. */
void dh_sha256_hex(const void *buf, size_t len, char out[DH_SHA256_HEX]);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void dh_hex(const uint8_t *in, size_t n, char *out);
/* Compares n bytes in time independent of where they differ. */
bool dh_ct_equal(const void *a, const void *b, size_t n);
/* Fills buf with n bytes from the kernel's random source. */
bool dh_random(void *buf, size_t n);

#endif
