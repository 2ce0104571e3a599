/*
 * The delivery tracker of delivery.h: a chained hash table of entries keyed by session id,
 * under one mutex. Entries are created by the first send after a take and removed by the
 * take that moves them out, so the table only ever holds one flush interval's worth.
 */
#include "core/delivery.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hash buckets; a power of two. Chains stay short for thousands of sessions. */
#define DELIVERY_BUCKETS 4096

struct entry {
	struct entry *next;
	struct dh_delivery_item it;
};

static struct {
	pthread_mutex_t lock;
	struct entry *bucket[DELIVERY_BUCKETS];
	size_t n;
} tab = { .lock = PTHREAD_MUTEX_INITIALIZER };

static atomic_ullong dropped;

static size_t bucket_of(const char *session)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (const char *p = session; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 16777619u;
	}
	return h & (DELIVERY_BUCKETS - 1);
}

static void copy(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

/* The entry of session, created when absent; NULL when the table is full. Call locked. */
static struct entry *entry_get(const struct dh_delivery_item *key)
{
	size_t b = bucket_of(key->session);
	struct entry *e;

	for (e = tab.bucket[b]; e; e = e->next) {
		if (strcmp(e->it.session, key->session) == 0)
			return e;
	}
	if (tab.n >= DH_DELIVERY_MAX_SESSIONS)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	memcpy(e->it.session, key->session, sizeof(e->it.session));
	memcpy(e->it.product, key->product, sizeof(e->it.product));
	memcpy(e->it.model, key->model, sizeof(e->it.model));
	memcpy(e->it.channel, key->channel, sizeof(e->it.channel));
	e->it.size = key->size;
	dh_coverage_init(&e->it.cov, key->size);
	e->next = tab.bucket[b];
	tab.bucket[b] = e;
	tab.n++;
	return e;
}

void dh_delivery_sent(const struct dh_delivery_who *who, uint64_t off, uint64_t len)
{
	struct dh_delivery_item key;
	struct entry *e;

	if (!who || !who->session || !*who->session || len == 0 || off >= who->size)
		return;
	if (len > who->size - off)
		len = who->size - off;
	copy(key.session, sizeof(key.session), who->session);
	copy(key.product, sizeof(key.product), who->product);
	copy(key.model, sizeof(key.model), who->model);
	copy(key.channel, sizeof(key.channel), who->channel);
	key.size = who->size;
	pthread_mutex_lock(&tab.lock);
	e = entry_get(&key);
	if (e) {
		e->it.bytes += len;
		dh_coverage_add(&e->it.cov, off, len);
	}
	pthread_mutex_unlock(&tab.lock);
	if (!e)
		atomic_fetch_add(&dropped, 1);
}

size_t dh_delivery_take(const char *only, struct dh_delivery_item *out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&tab.lock);
	for (size_t b = only ? bucket_of(only) : 0; b < DELIVERY_BUCKETS && n < max; b++) {
		struct entry **pp = &tab.bucket[b];
		while (*pp && n < max) {
			struct entry *e = *pp;
			if (only && strcmp(e->it.session, only) != 0) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			out[n++] = e->it; /* the coverage moves with it */
			free(e);
			tab.n--;
		}
		if (only)
			break;
	}
	pthread_mutex_unlock(&tab.lock);
	return n;
}

void dh_delivery_restore(struct dh_delivery_item *items, size_t n)
{
	pthread_mutex_lock(&tab.lock);
	for (size_t i = 0; i < n; i++) {
		struct entry *e = entry_get(&items[i]);
		if (e) {
			e->it.bytes += items[i].bytes;
			dh_coverage_merge(&e->it.cov, &items[i].cov);
		} else {
			atomic_fetch_add(&dropped, 1);
		}
		dh_coverage_release(&items[i].cov);
	}
	pthread_mutex_unlock(&tab.lock);
}

void dh_delivery_item_release(struct dh_delivery_item *it)
{
	dh_coverage_release(&it->cov);
}

uint64_t dh_delivery_dropped(void)
{
	return atomic_load(&dropped);
}

void dh_delivery_clear(void)
{
	pthread_mutex_lock(&tab.lock);
	for (size_t b = 0; b < DELIVERY_BUCKETS; b++) {
		while (tab.bucket[b]) {
			struct entry *e = tab.bucket[b];
			tab.bucket[b] = e->next;
			dh_coverage_release(&e->it.cov);
			free(e);
		}
	}
	tab.n = 0;
	pthread_mutex_unlock(&tab.lock);
}
