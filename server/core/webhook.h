/*
 * Webhook rules without I/O: signing secrets ("whsec_" and the base64 of the HMAC key), the
 * Standard Webhooks signature of one attempt, and the retry delays. The sender
 * (webhooks/sender.c) and the API (api/webhooks.c) use them; the unit test walks them with
 * the specification's own example.
 */
#ifndef DH_CORE_WEBHOOK_H
#define DH_CORE_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* HMAC key bytes: Standard Webhooks asks for 24 to 64; new secrets get 32 (256 bits). */
#define DH_WEBHOOK_KEY_MIN 24
#define DH_WEBHOOK_KEY_MAX 64
#define DH_WEBHOOK_KEY_NEW 32
/* "whsec_" + base64 of the longest key + NUL. */
#define DH_WEBHOOK_SECRET_MAX (6 + 88 + 1)
/* "v1," + base64 of a SHA-256 digest + NUL. */
#define DH_WEBHOOK_SIG_MAX (3 + 44 + 1)
/* The longest delay between two attempts (API.md: at most 10 min apart). */
#define DH_WEBHOOK_RETRY_MAX_MS (10 * 60 * 1000)

/* A fresh secret "whsec_<base64 of DH_WEBHOOK_KEY_NEW random bytes>"; false when the
 * kernel's random source failed. */
bool dh_webhook_secret_new(char out[DH_WEBHOOK_SECRET_MAX]);

/*
 * Checks a secret given as "whsec_<base64>" (standard alphabet, padded or not) whose key is
 * DH_WEBHOOK_KEY_MIN..DH_WEBHOOK_KEY_MAX bytes; the key's bytes go to key, their number to
 * *len. False for anything else.
 */
bool dh_webhook_secret_parse(const char *text, uint8_t key[DH_WEBHOOK_KEY_MAX], size_t *len);

/*
 * The webhook-signature value of one attempt: "v1," and the base64 of
 * HMAC-SHA256(key, id "." timestamp "." body).
 */
void dh_webhook_sign(const uint8_t *key, size_t key_len, const char *id, int64_t timestamp,
		     const char *body, size_t body_len, char out[DH_WEBHOOK_SIG_MAX]);

/*
 * Milliseconds to wait after the failed attempt number attempts (1 for the first): base_ms
 * doubled for each attempt after the first, up to DH_WEBHOOK_RETRY_MAX_MS, times a jitter
 * factor from 0.8 to 1.2 chosen by r (0 <= r < 1), and again at most DH_WEBHOOK_RETRY_MAX_MS.
 */
int64_t dh_webhook_retry_ms(unsigned attempts, unsigned base_ms, double r);

#endif
