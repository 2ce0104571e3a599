/*
 * The event ring: a fixed array indexed by seq modulo its size, one mutex and one
 * condition variable. Publishing formats the JSON before taking the lock, so the lock is
 * held only for a copy of pointers.
 */
#include "core/events.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct dh_event ring[DH_EVENTS_RING];
static uint64_t last_seq;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

static void copy_id(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

void dh_events_publish(const char *type, const char *session_id, const char *product,
		       const char *model, const char *channel, json_t *data)
{
	dh_events_publish_for(DH_ACT_UPDATE, type, session_id, product, model, channel, data);
}

void dh_events_publish_for(enum dh_action need, const char *type, const char *session_id,
			   const char *product, const char *model, const char *channel,
			   json_t *data)
{
	struct dh_event ev = { 0 };
	char *old;

	ev.need = need;
	copy_id(ev.type, sizeof(ev.type), type);
	copy_id(ev.session, sizeof(ev.session), session_id);
	copy_id(ev.product, sizeof(ev.product), product);
	copy_id(ev.model, sizeof(ev.model), model);
	copy_id(ev.channel, sizeof(ev.channel), channel);
	ev.data = data ? json_dumps(data, JSON_COMPACT) : NULL;
	pthread_mutex_lock(&lock);
	ev.seq = ++last_seq;
	old = ring[ev.seq % DH_EVENTS_RING].data;
	ring[ev.seq % DH_EVENTS_RING] = ev;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	free(old);
}

uint64_t dh_events_last_seq(void)
{
	uint64_t s;

	pthread_mutex_lock(&lock);
	s = last_seq;
	pthread_mutex_unlock(&lock);
	return s;
}

size_t dh_events_read(uint64_t after, struct dh_event *out, size_t max, int wait_ms,
		      uint64_t *missed)
{
	size_t n = 0;
	uint64_t first;

	*missed = 0;
	pthread_mutex_lock(&lock);
	if (last_seq <= after && wait_ms > 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (last_seq <= after) {
			if (pthread_cond_timedwait(&cond, &lock, &ts) == ETIMEDOUT)
				break;
		}
	}
	first = after + 1;
	if (last_seq >= DH_EVENTS_RING && first <= last_seq - DH_EVENTS_RING) {
		*missed = last_seq - DH_EVENTS_RING + 1 - first;
		first = last_seq - DH_EVENTS_RING + 1;
	}
	for (uint64_t s = first; s <= last_seq && n < max; s++) {
		out[n] = ring[s % DH_EVENTS_RING];
		out[n].data = ring[s % DH_EVENTS_RING].data ? strdup(ring[s % DH_EVENTS_RING].data)
							    : NULL;
		n++;
	}
	pthread_mutex_unlock(&lock);
	return n;
}

void dh_event_release(struct dh_event *ev)
{
	free(ev->data);
	ev->data = NULL;
}

void dh_events_wake_all(void)
{
	pthread_mutex_lock(&lock);
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}
