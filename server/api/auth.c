/*
 * Authentication of API calls: reads the Token/Bearer header, hashes the secret and finds
 * the principal, first in a small cache keyed by the hash and then in the database (one
 * indexed read). Cache entries carry the auth generation they were read at; any change to
 * users, tokens or rights bumps the generation, so a revocation takes effect at once.
 */
#include "api/api.h"

#include "core/util.h"
#include "dh_db.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Cache slots: one per recently seen token; a collision just evicts. */
#define AUTH_CACHE_SLOTS 1024
/* Longest secret considered; ours are 51 characters. */
#define AUTH_SECRET_MAX 256

struct cache_slot {
	char hash[DH_SHA256_HEX];
	unsigned long generation;
	int64_t expire_us;
	bool revoked;
	struct dh_principal who;
};

static struct cache_slot cache[AUTH_CACHE_SLOTS];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t slot_of(const char *hash)
{
	size_t h = 0;

	for (int i = 0; i < 8; i++)
		h = h * 16 + (size_t)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
	return h % AUTH_CACHE_SLOTS;
}

/* Copies a fresh cache entry for hash into the outputs; false on a miss. */
static bool cache_get(const char *hash, struct dh_principal *who, int64_t *expire, bool *revoked)
{
	struct cache_slot *s = &cache[slot_of(hash)];
	bool hit = false;

	pthread_mutex_lock(&cache_lock);
	if (s->generation == dh_db_auth_generation() &&
	    dh_ct_equal(s->hash, hash, DH_SHA256_HEX - 1) && dh_principal_copy(who, &s->who)) {
		*expire = s->expire_us;
		*revoked = s->revoked;
		hit = true;
	}
	pthread_mutex_unlock(&cache_lock);
	return hit;
}

static void cache_put(const char *hash, unsigned long generation, const struct dh_principal *who,
		      int64_t expire, bool revoked)
{
	struct cache_slot *s = &cache[slot_of(hash)];
	struct dh_principal copy, old;

	if (!dh_principal_copy(&copy, who))
		return;
	pthread_mutex_lock(&cache_lock);
	old = s->who;
	memcpy(s->hash, hash, DH_SHA256_HEX);
	s->generation = generation;
	s->expire_us = expire;
	s->revoked = revoked;
	s->who = copy;
	pthread_mutex_unlock(&cache_lock);
	dh_principal_release(&old);
}

/* The principal of the token whose secret hashes to hash: from the cache, else read (and
 * cached); 401 with err filled when the token does not authenticate (any more). */
static enum dh_err principal_of(struct dh_db *db, const char hash[DH_SHA256_HEX],
				struct dh_principal *who, struct dh_error *err)
{
	int64_t expire = 0;
	bool revoked = false;
	unsigned long gen;
	enum dh_err rc;

	if (!cache_get(hash, who, &expire, &revoked)) {
		gen = dh_db_auth_generation();
		rc = dh_db_auth_lookup(db, hash, who, &expire, &revoked);
		if (rc == DH_E_UNAUTHORIZED)
			return dh_error_set(err, DH_E_UNAUTHORIZED, "Unknown token.");
		if (rc != DH_OK)
			return rc;
		/* cache only what was read under a generation that is still current: a change
		 * that committed during the look-up moved it, and what was read may predate it */
		if (gen == dh_db_auth_generation())
			cache_put(hash, gen, who, expire, revoked);
	}
	memcpy(who->token_hash, hash, DH_SHA256_HEX);
	who->token_expire_us = expire;
	if (revoked)
		return dh_error_set(err, DH_E_UNAUTHORIZED, "The token was revoked.");
	if (expire && expire <= dh_now_us())
		return dh_error_set(err, DH_E_UNAUTHORIZED, "The token has expired.");
	return DH_OK;
}

enum dh_err dh_api_authenticate(struct dh_req *req)
{
	const char *h = dh_req_header(req, "Authorization"), *secret;
	char hash[DH_SHA256_HEX];
	enum dh_err rc;

	if (!h)
		return dh_error_set(&req->err, DH_E_UNAUTHORIZED,
				    "Send 'Authorization: Token <secret>'.");
	if (strncasecmp(h, "Token ", 6) == 0)
		secret = h + 6;
	else if (strncasecmp(h, "Bearer ", 7) == 0)
		secret = h + 7;
	else
		return dh_error_set(&req->err, DH_E_UNAUTHORIZED,
				    "The Authorization header must be 'Token <secret>' or"
				    " 'Bearer <secret>'.");
	while (*secret == ' ')
		secret++;
	if (!*secret || strlen(secret) > AUTH_SECRET_MAX)
		return dh_error_set(&req->err, DH_E_UNAUTHORIZED, "Unknown token.");
	dh_sha256_hex(secret, strlen(secret), hash);
	rc = principal_of(req->db, hash, &req->who, &req->err);
	if (rc != DH_OK)
		return rc;
	req->authenticated = true;
	return DH_OK;
}

enum dh_err dh_api_reauthenticate(struct dh_db *db, struct dh_principal *who, struct dh_error *err)
{
	struct dh_principal fresh = { 0 };
	char hash[DH_SHA256_HEX];
	enum dh_err rc;

	memcpy(hash, who->token_hash, DH_SHA256_HEX);
	rc = principal_of(db, hash, &fresh, err);
	if (rc != DH_OK) {
		dh_principal_release(&fresh);
		return rc;
	}
	dh_principal_release(who);
	*who = fresh;
	return DH_OK;
}

void dh_api_auth_cache_clear(void)
{
	pthread_mutex_lock(&cache_lock);
	for (size_t i = 0; i < AUTH_CACHE_SLOTS; i++) {
		dh_principal_release(&cache[i].who);
		cache[i].generation = 0;
	}
	pthread_mutex_unlock(&cache_lock);
}
