/*
 * Webhook secrets, signatures and retry delays (see webhook.h), over nettle's HMAC-SHA256 and
 * base64.
 */
#include "core/webhook.h"

#include "core/util.h"

#include <inttypes.h>
#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <stdio.h>
#include <string.h>

#define PREFIX     "whsec_"
#define PREFIX_LEN 6

bool dh_webhook_secret_new(char out[DH_WEBHOOK_SECRET_MAX])
{
	uint8_t key[DH_WEBHOOK_KEY_NEW];

	if (!dh_random(key, sizeof(key)))
		return false;
	memcpy(out, PREFIX, PREFIX_LEN);
	base64_encode_raw(out + PREFIX_LEN, sizeof(key), key);
	out[PREFIX_LEN + BASE64_ENCODE_RAW_LENGTH(sizeof(key))] = 0;
	return true;
}

bool dh_webhook_secret_parse(const char *text, uint8_t key[DH_WEBHOOK_KEY_MAX], size_t *len)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				       "0123456789+/";
	struct base64_decode_ctx ctx;
	uint8_t buf[BASE64_DECODE_LENGTH(DH_WEBHOOK_SECRET_MAX)];
	char padded[DH_WEBHOOK_SECRET_MAX];
	size_t n, body, out = sizeof(buf);

	if (!text || strncmp(text, PREFIX, PREFIX_LEN) != 0)
		return false;
	text += PREFIX_LEN;
	n = strlen(text);
	/* nettle's decoder skips white space; a secret is one exact string */
	body = strspn(text, alphabet);
	if (n == 0 || n > DH_WEBHOOK_SECRET_MAX - PREFIX_LEN - 1 || n - body > 2 ||
	    strspn(text + body, "=") != n - body || (n - body && n % 4) || n % 4 == 1)
		return false;
	/* the decoder wants the padding that unpadded secrets leave out */
	memcpy(padded, text, n);
	while (n % 4)
		padded[n++] = '=';
	base64_decode_init(&ctx);
	if (!base64_decode_update(&ctx, &out, buf, n, padded) || !base64_decode_final(&ctx))
		return false;
	if (out < DH_WEBHOOK_KEY_MIN || out > DH_WEBHOOK_KEY_MAX)
		return false;
	memcpy(key, buf, out);
	*len = out;
	return true;
}

void dh_webhook_sign(const uint8_t *key, size_t key_len, const char *id, int64_t timestamp,
		     const char *body, size_t body_len, char out[DH_WEBHOOK_SIG_MAX])
{
	struct hmac_sha256_ctx ctx;
	uint8_t digest[SHA256_DIGEST_SIZE];
	char ts[24];
	int n = snprintf(ts, sizeof(ts), "%" PRId64, timestamp);

	hmac_sha256_set_key(&ctx, key_len, key);
	hmac_sha256_update(&ctx, strlen(id), (const uint8_t *)id);
	hmac_sha256_update(&ctx, 1, (const uint8_t *)".");
	hmac_sha256_update(&ctx, (size_t)(n > 0 ? n : 0), (const uint8_t *)ts);
	hmac_sha256_update(&ctx, 1, (const uint8_t *)".");
	hmac_sha256_update(&ctx, body_len, (const uint8_t *)body);
	hmac_sha256_digest(&ctx, sizeof(digest), digest);
	memcpy(out, "v1,", 3);
	base64_encode_raw(out + 3, sizeof(digest), digest);
	out[3 + BASE64_ENCODE_RAW_LENGTH(sizeof(digest))] = 0;
}

int64_t dh_webhook_retry_ms(unsigned attempts, unsigned base_ms, double r)
{
	double d = base_ms;

	for (unsigned i = 1; i < attempts && d < DH_WEBHOOK_RETRY_MAX_MS; i++)
		d *= 2;
	if (d > DH_WEBHOOK_RETRY_MAX_MS)
		d = DH_WEBHOOK_RETRY_MAX_MS;
	if (!(r >= 0.0 && r < 1.0))
		r = 0.5;
	d *= 0.8 + 0.4 * r;
	if (d > DH_WEBHOOK_RETRY_MAX_MS)
		d = DH_WEBHOOK_RETRY_MAX_MS;
	return d < 1 ? 1 : (int64_t)d;
}
