/*
 * The bucket table of ratelimit.h: sets of DH_RATE_WAYS entries, a key's set chosen by a
 * keyed hash (a random seed, so that a peer cannot aim keys at one set), one mutex per
 * stripe of sets. A new key takes an empty entry of its set, else one whose bucket has
 * refilled completely (forgetting it changes nothing), else the least recently used one;
 * an evicted key starts again with a full bucket.
 */
#include "http/ratelimit.h"

#include "core/util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Entries per set: a set is scanned linearly, and eight 64-byte entries are a few cache
 * lines. */
#define DH_RATE_WAYS 8
/* Mutexes shared by the sets (set i uses stripe i % DH_RATE_STRIPES): enough that HTTP
 * threads rarely meet, few enough to be allocated with the table. */
#define DH_RATE_STRIPES 64

struct entry {
	uint8_t key[DH_RATE_KEY_MAX];
	uint8_t len;     /* 0: free */
	uint64_t level;  /* units at `last` */
	int64_t last_ms; /* time of the last take or look; also the LRU order */
};

struct dh_rate_table {
	struct dh_rate_config cfg;
	size_t nsets;
	uint64_t seed[2];
	pthread_mutex_t locks[DH_RATE_STRIPES];
	struct entry *entries; /* nsets * DH_RATE_WAYS */
};

struct dh_rate_table *dh_rate_table_new(const struct dh_rate_config *cfg, size_t slots)
{
	struct dh_rate_table *t;

	if (!cfg->refill_per_ms || cfg->capacity < cfg->cost || !cfg->cost)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->cfg = *cfg;
	t->nsets = (slots + DH_RATE_WAYS - 1) / DH_RATE_WAYS;
	if (t->nsets == 0)
		t->nsets = 1;
	t->entries = calloc(t->nsets * DH_RATE_WAYS, sizeof(*t->entries));
	if (!t->entries) {
		free(t);
		return NULL;
	}
	if (!dh_random(t->seed, sizeof(t->seed))) {
		t->seed[0] = (uint64_t)dh_now_us();
		t->seed[1] = (uint64_t)getpid();
	}
	for (int i = 0; i < DH_RATE_STRIPES; i++)
		pthread_mutex_init(&t->locks[i], NULL);
	return t;
}

void dh_rate_table_free(struct dh_rate_table *t)
{
	if (!t)
		return;
	for (int i = 0; i < DH_RATE_STRIPES; i++)
		pthread_mutex_destroy(&t->locks[i]);
	free(t->entries);
	free(t);
}

static size_t set_of(const struct dh_rate_table *t, const uint8_t *key, size_t len)
{
	uint64_t h = t->seed[0] ^ len;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = 0;
		memcpy(&w, key + i, len - i < 8 ? len - i : 8);
		h ^= w + t->seed[1];
		h *= 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	return (size_t)(h ^ (h >> 32)) % t->nsets;
}

/* The bucket's level at now: what it held plus the refill since, at most full. */
static uint64_t level_at(const struct dh_rate_config *cfg, const struct entry *e, int64_t now)
{
	uint64_t dt = now > e->last_ms ? (uint64_t)(now - e->last_ms) : 0;

	/* dt * refill cannot overflow before it exceeds the capacity by far */
	if (dt >= (cfg->capacity / cfg->refill_per_ms) + 1)
		return cfg->capacity;
	return e->level + dt * cfg->refill_per_ms >= cfg->capacity
		       ? cfg->capacity
		       : e->level + dt * cfg->refill_per_ms;
}

/* The entry of key in set s, or NULL; lock held. */
static struct entry *entry_find(struct dh_rate_table *t, size_t s, const uint8_t *key, size_t len)
{
	struct entry *set = t->entries + s * DH_RATE_WAYS;

	for (int w = 0; w < DH_RATE_WAYS; w++) {
		if (set[w].len == len && memcmp(set[w].key, key, len) == 0)
			return &set[w];
	}
	return NULL;
}

/* A new entry for key in set s, with a full bucket, evicting another; lock held. */
static struct entry *entry_add(struct dh_rate_table *t, size_t s, const uint8_t *key, size_t len,
			       int64_t now)
{
	struct entry *set = t->entries + s * DH_RATE_WAYS, *victim = NULL;

	for (int w = 0; w < DH_RATE_WAYS && !victim; w++) {
		if (!set[w].len || level_at(&t->cfg, &set[w], now) == t->cfg.capacity)
			victim = &set[w];
	}
	if (!victim) {
		victim = &set[0];
		for (int w = 1; w < DH_RATE_WAYS; w++) {
			if (set[w].last_ms < victim->last_ms)
				victim = &set[w];
		}
	}
	memcpy(victim->key, key, len);
	victim->len = (uint8_t)len;
	victim->level = t->cfg.capacity;
	victim->last_ms = now;
	return victim;
}

static uint64_t rate_op(struct dh_rate_table *t, const void *key, size_t len, int64_t now,
			bool take)
{
	const struct dh_rate_config *cfg = &t->cfg;
	uint64_t level, wait = 0;
	size_t s;
	struct entry *e;

	if (len > DH_RATE_KEY_MAX)
		len = DH_RATE_KEY_MAX;
	if (len == 0)
		return 0;
	s = set_of(t, key, len);
	pthread_mutex_lock(&t->locks[s % DH_RATE_STRIPES]);
	e = entry_find(t, s, key, len);
	/* a look at an unknown key finds a full bucket: it does not take an entry */
	if (!e && take)
		e = entry_add(t, s, key, len, now);
	if (e) {
		level = level_at(cfg, e, now);
		e->level = level;
		e->last_ms = now;
		if (level < cfg->cost)
			wait = (cfg->cost - level + cfg->refill_per_ms - 1) / cfg->refill_per_ms;
		else if (take)
			e->level = level - cfg->cost;
	}
	pthread_mutex_unlock(&t->locks[s % DH_RATE_STRIPES]);
	return wait;
}

uint64_t dh_rate_take(struct dh_rate_table *t, const void *key, size_t len, int64_t now_ms)
{
	return t ? rate_op(t, key, len, now_ms, true) : 0;
}

uint64_t dh_rate_peek(struct dh_rate_table *t, const void *key, size_t len, int64_t now_ms)
{
	return t ? rate_op(t, key, len, now_ms, false) : 0;
}
