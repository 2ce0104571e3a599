/*
 * The link table of links.h: a chained hash table whose bucket index comes from the token
 * hash itself (uniform, since it is SHA-256 output), behind one read-write lock. Entries
 * are compared in constant time, so a probe's duration does not depend on how much of a
 * stored hash a presented one shares.
 */
#include "core/links.h"

#include <nettle/hmac.h>
#include <nettle/sha2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((DH_LINK_TOKEN_BYTES * 8 + 5) / 6 + 1 == DH_LINK_TOKEN_LEN,
	       "DH_LINK_TOKEN_LEN holds the base64url text of DH_LINK_TOKEN_BYTES and NUL");

/* Buckets; a power of two. 100 000 active links give chains of about six. */
#define LINKS_BUCKETS 16384

struct entry {
	struct entry *next;  /* in its token hash's chain */
	struct entry *snext; /* in its session's chain */
	struct dh_link l;
};

static struct {
	pthread_rwlock_t lock;
	struct entry *bucket[LINKS_BUCKETS];
	struct entry *by_session[LINKS_BUCKETS]; /* the same entries, by session id */
	size_t n;
} tab = { .lock = PTHREAD_RWLOCK_INITIALIZER };

static uint8_t link_key[DH_LINK_KEY_LEN];
static bool has_key;
static atomic_bool ready;

void dh_link_key_set(const uint8_t key[DH_LINK_KEY_LEN])
{
	memcpy(link_key, key, DH_LINK_KEY_LEN);
	has_key = true;
}

bool dh_link_token(const char *session, int attempts, char out[DH_LINK_TOKEN_LEN])
{
	static const char b64url[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	struct hmac_sha256_ctx ctx;
	uint8_t mac[SHA256_DIGEST_SIZE];
	char run[24];
	uint32_t acc = 0; /* only its low bits matter: unsigned shifts wrap */
	unsigned bits = 0;
	size_t o = 0;
	int n;

	if (!has_key)
		return false;
	n = snprintf(run, sizeof(run), ":%d", attempts);
	if (n < 0 || (size_t)n >= sizeof(run))
		return false;
	hmac_sha256_set_key(&ctx, DH_LINK_KEY_LEN, link_key);
	hmac_sha256_update(&ctx, strlen(session), (const uint8_t *)session);
	hmac_sha256_update(&ctx, (size_t)n, (const uint8_t *)run);
	hmac_sha256_digest(&ctx, sizeof(mac), mac);
	for (size_t i = 0; i < DH_LINK_TOKEN_BYTES; i++) {
		acc = acc << 8 | mac[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = b64url[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = b64url[(acc << (6 - bits)) & 63];
	out[o] = 0;
	return true;
}

size_t dh_link_token_mask(char *text, size_t len, const char *token)
{
	size_t n = token ? strlen(token) : 0, hits = 0, i = 0;

	if (!text || n == 0)
		return 0;
	while (i + n <= len) {
		if (memcmp(text + i, token, n) == 0) {
			memset(text + i, '*', n);
			hits++;
			i += n;
		} else {
			i++;
		}
	}
	/* a token cut by a bound on the text */
	for (size_t k = n - 1; k >= DH_LINK_MASK_MIN; k--) {
		if (k <= len && memcmp(text + len - k, token, k) == 0) {
			memset(text + len - k, '*', k);
			hits++;
			break;
		}
	}
	return hits;
}

void dh_link_hash(const char *token, size_t len, uint8_t out[DH_LINK_HASH_LEN])
{
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	sha256_update(&ctx, len, (const uint8_t *)token);
	sha256_digest(&ctx, DH_LINK_HASH_LEN, out);
}

void dh_link_hash_hex(const uint8_t hash[DH_LINK_HASH_LEN], char out[DH_SHA256_HEX])
{
	dh_hex(hash, DH_LINK_HASH_LEN, out);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool dh_link_hash_parse(const char *hex, uint8_t out[DH_LINK_HASH_LEN])
{
	if (!hex || strlen(hex) != 2 * DH_LINK_HASH_LEN)
		return false;
	for (size_t i = 0; i < DH_LINK_HASH_LEN; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

bool dh_url_host(const char *url, char *out, size_t size)
{
	const char *p = url ? strstr(url, "://") : NULL, *end, *at;
	size_t n;

	if (!p || p == url)
		return false;
	p += 3;
	end = p + strcspn(p, "/?#");
	/* user info ends at the last '@' of the authority */
	for (at = p; at < end; at++) {
		if (*at == '@')
			p = at + 1;
	}
	if (*p == '[') {
		const char *close = memchr(p, ']', (size_t)(end - p));
		if (!close)
			return false;
		n = (size_t)(close - p) + 1;
	} else {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		n = (size_t)((colon ? colon : end) - p);
	}
	if (n == 0 || n >= size)
		return false;
	memcpy(out, p, n);
	out[n] = 0;
	return true;
}

static size_t bucket_of(const uint8_t hash[DH_LINK_HASH_LEN])
{
	return ((size_t)hash[0] << 8 | hash[1]) & (LINKS_BUCKETS - 1);
}

/* The entry slot of hash in its chain (where it is, or the chain's end). Call locked. */
static struct entry **slot(const uint8_t hash[DH_LINK_HASH_LEN])
{
	struct entry **pp = &tab.bucket[bucket_of(hash)];

	while (*pp && !dh_ct_equal((*pp)->l.hash, hash, DH_LINK_HASH_LEN))
		pp = &(*pp)->next;
	return pp;
}

/* The session chain of a session id (FNV-1a: session ids are not secret, any spread does). */
static struct entry **session_chain(const char *session)
{
	uint32_t h = 2166136261u;

	for (; *session; session++)
		h = (h ^ (uint8_t)*session) * 16777619u;
	return &tab.by_session[h & (LINKS_BUCKETS - 1)];
}

/* Takes e out of both chains. Call locked; the caller frees e. */
static void unlink_entry(struct entry *e)
{
	struct entry **pp = slot(e->l.hash);

	if (*pp == e)
		*pp = e->next;
	for (pp = session_chain(e->l.session); *pp && *pp != e; pp = &(*pp)->snext)
		;
	if (*pp)
		*pp = e->snext;
	tab.n--;
}

enum dh_err dh_links_put(const struct dh_link *l)
{
	uint8_t sha[DH_LINK_HASH_LEN];
	struct entry *e, *o, *next, *gone = NULL, **pp;

	if (!dh_link_hash_parse(l->sha256, sha))
		return DH_E_INVALID;
	e = malloc(sizeof(*e));
	if (!e)
		return DH_E_NOMEM;
	e->l = *l;
	memcpy(e->l.etag, sha, DH_LINK_ETAG_LEN);
	pthread_rwlock_wrlock(&tab.lock);
	/* a session has one valid link, its current run's: an earlier run's goes now, also on
	 * a server that learnt of both from others */
	for (o = *session_chain(l->session); o; o = next) {
		next = o->snext;
		if (strcmp(o->l.session, l->session) == 0) {
			unlink_entry(o);
			o->next = gone;
			gone = o;
		}
	}
	pp = slot(l->hash);
	if (*pp) {
		o = *pp;
		unlink_entry(o);
		o->next = gone;
		gone = o;
		pp = slot(l->hash);
	}
	e->next = *pp;
	*pp = e;
	pp = session_chain(l->session);
	e->snext = *pp;
	*pp = e;
	tab.n++;
	pthread_rwlock_unlock(&tab.lock);
	while (gone) {
		o = gone;
		gone = o->next;
		free(o);
	}
	return DH_OK;
}

void dh_links_drop(const uint8_t hash[DH_LINK_HASH_LEN])
{
	struct entry **pp, *e = NULL;

	pthread_rwlock_wrlock(&tab.lock);
	pp = slot(hash);
	if (*pp) {
		e = *pp;
		unlink_entry(e);
	}
	pthread_rwlock_unlock(&tab.lock);
	free(e);
}

void dh_links_drop_session(const char *session)
{
	struct entry *o, *next, *gone = NULL;

	pthread_rwlock_wrlock(&tab.lock);
	for (o = *session_chain(session); o; o = next) {
		next = o->snext;
		if (strcmp(o->l.session, session) == 0) {
			unlink_entry(o);
			o->next = gone;
			gone = o;
		}
	}
	pthread_rwlock_unlock(&tab.lock);
	while (gone) {
		o = gone;
		gone = o->next;
		free(o);
	}
}

bool dh_links_find(const uint8_t hash[DH_LINK_HASH_LEN], struct dh_link *out)
{
	struct entry **pp;
	bool found;

	pthread_rwlock_rdlock(&tab.lock);
	pp = slot(hash);
	found = *pp != NULL;
	if (found)
		*out = (*pp)->l;
	pthread_rwlock_unlock(&tab.lock);
	return found;
}

bool dh_links_ready(void)
{
	return atomic_load(&ready);
}

void dh_links_set_ready(bool r)
{
	atomic_store(&ready, r);
}

size_t dh_links_count(void)
{
	size_t n;

	pthread_rwlock_rdlock(&tab.lock);
	n = tab.n;
	pthread_rwlock_unlock(&tab.lock);
	return n;
}

void dh_links_clear(void)
{
	pthread_rwlock_wrlock(&tab.lock);
	for (size_t b = 0; b < LINKS_BUCKETS; b++) {
		while (tab.bucket[b]) {
			struct entry *e = tab.bucket[b];
			tab.bucket[b] = e->next;
			free(e);
		}
		tab.by_session[b] = NULL;
	}
	tab.n = 0;
	pthread_rwlock_unlock(&tab.lock);
}
