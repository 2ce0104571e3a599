/*
 * The connection guard (see guard.h): admission counts, the per-address table and the
 * head deadlines, with one thread that cuts connections whose head is late. Owns its
 * records and its thread; never closes a descriptor (the event loop that owns it does).
 */
#include "http/guard.h"

#include "core/util.h"
#include "log.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The guard's thread looks at the deadlines at least this often, so a connection is cut
 * at most this late; 4 wake-ups a second cost nothing measurable. */
#define DH_GUARD_TICK_MS 250
/* A connection beyond max_connections is only there to be told 503: a client that does not
 * send its request head within this time is closed without an answer (the reserve would
 * otherwise fill with idle connections). */
#define DH_GUARD_OVER_CAP_HEAD_MS 2000
/* After a 408, the client has this long to read it before the socket is shut down for
 * reading too (a slow-loris client would otherwise keep it open until it stops sending). */
#define DH_GUARD_LINGER_MS 2000
/* tcpi_last_data_recv counts in jiffies (up to 10 ms): on a kept-alive connection, data
 * received within this margin of the start of the head phase is taken as belonging to the
 * previous request. */
#define DH_GUARD_RECV_SLACK_MS 20
/* Smallest per-address table; it is sized to twice the connections it can hold. */
#define DH_GUARD_MIN_SLOTS 64

enum phase {
	PH_HEAD, /* waiting for a request head; listed with a deadline */
	PH_BODY, /* reading a body; listed with the end of the current rate window */
	PH_BUSY, /* a request is handled or answered */
	PH_CUT,  /* cut by the guard: nothing more may be written to it */
};

enum list_id {
	L_NONE = -1,
	L_HEAD = 0, /* head phase, served connections: deadline head_timeout_ms */
	L_OVER,     /* head phase, beyond max_connections: DH_GUARD_OVER_CAP_HEAD_MS */
	L_BODY,     /* body phase: windows of head_timeout_ms */
	L_LINGER,   /* answered 408, shut down for writing; fully shut down at the deadline */
	L_COUNT
};

struct dh_guard_conn {
	struct dh_guard_conn *prev, *next;
	enum list_id list;
	enum phase phase;
	int fd;
	bool is_tls, over_cap;
	unsigned requests; /* answered on this connection so far */
	int64_t head_start_ms, deadline_ms;
	_Atomic uint64_t body_bytes; /* added by the request's thread without the lock */
	uint64_t body_mark;          /* body_bytes at the start of the current window */
	uint8_t key[DH_CLIENT_KEY_LEN];
};

struct list {
	struct dh_guard_conn *first, *last;
};

struct addr_slot {
	uint8_t key[DH_CLIENT_KEY_LEN];
	uint32_t count; /* 0: free */
};

/* Everything below is guarded by `lock`. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static pthread_t thread;
static bool running, stop;
static struct dh_guard_limits lim;
static struct list lists[L_COUNT];
static struct addr_slot *slots;
static size_t slot_mask;
static uint64_t seed[2];
static unsigned served, extra; /* open connections within and beyond max_connections */
static struct dh_guard_stats stats;
/* The whole 408 answer, built once; the request id is written at id_408 for each use. */
static char answer_408[512];
static size_t answer_408_len, id_408;

void dh_client_key(const struct sockaddr *sa, uint8_t out[DH_CLIENT_KEY_LEN])
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(out, 0, DH_CLIENT_KEY_LEN);
	if (sa && sa->sa_family == AF_INET) {
		memcpy(out, mapped, sizeof(mapped));
		memcpy(out + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} else if (sa && sa->sa_family == AF_INET6) {
		const uint8_t *a =
			((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
		/* an IPv4-mapped address is that IPv4 address; any other is its /64 */
		memcpy(out, a, memcmp(a, mapped, sizeof(mapped)) == 0 ? 16 : 8);
	}
}

/* ---- the per-address table: open addressing, linear probing, keyed hash ---- */

static size_t slot_home(const uint8_t key[DH_CLIENT_KEY_LEN])
{
	uint64_t h = seed[0], w;

	/* keyed with a random seed, so that a client cannot pick addresses that collide */
	for (int i = 0; i < 2; i++) {
		memcpy(&w, key + 8 * i, 8);
		h ^= w + seed[1];
		h *= 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	return (size_t)(h ^ (h >> 32)) & slot_mask;
}

/* The slot holding key, or the free slot where it would go. */
static size_t slot_find(const uint8_t key[DH_CLIENT_KEY_LEN])
{
	size_t i = slot_home(key);

	while (slots[i].count && memcmp(slots[i].key, key, DH_CLIENT_KEY_LEN) != 0)
		i = (i + 1) & slot_mask;
	return i;
}

static void slot_add(const uint8_t key[DH_CLIENT_KEY_LEN])
{
	size_t i = slot_find(key);

	if (!slots[i].count)
		memcpy(slots[i].key, key, DH_CLIENT_KEY_LEN);
	slots[i].count++;
}

static void slot_del(const uint8_t key[DH_CLIENT_KEY_LEN])
{
	size_t i = slot_find(key), j = i;

	if (!slots[i].count || --slots[i].count)
		return;
	/* backward-shift deletion: no tombstones, so the table never fills with dead slots */
	for (;;) {
		size_t k;
		j = (j + 1) & slot_mask;
		if (!slots[j].count)
			break;
		k = slot_home(slots[j].key);
		/* leave slots[j] where it is if its home lies cyclically in (i, j] */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		slots[i] = slots[j];
		i = j;
	}
	slots[i].count = 0;
}

/* ---- deadline lists (each is FIFO: entries share one timeout, so it stays sorted) ---- */

static void list_remove(struct dh_guard_conn *c)
{
	struct list *l;

	if (c->list == L_NONE)
		return;
	l = &lists[c->list];
	if (c->prev)
		c->prev->next = c->next;
	else
		l->first = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		l->last = c->prev;
	c->prev = c->next = NULL;
	c->list = L_NONE;
}

static void list_append(struct dh_guard_conn *c, enum list_id id, int64_t deadline_ms)
{
	struct list *l = &lists[id];

	list_remove(c);
	c->list = id;
	c->deadline_ms = deadline_ms;
	c->prev = l->last;
	c->next = NULL;
	if (l->last)
		l->last->next = c;
	else
		l->first = c;
	l->last = c;
}

static void head_begin(struct dh_guard_conn *c, int64_t now)
{
	c->phase = PH_HEAD;
	c->head_start_ms = now;
	if (c->over_cap)
		list_append(c, L_OVER, now + DH_GUARD_OVER_CAP_HEAD_MS);
	else
		list_append(c, L_HEAD, now + lim.head_timeout_ms);
}

/* ---- cutting a late connection ---- */

/*
 * Whether bytes of a request arrived in this head phase, asked from the kernel at the moment
 * of the cut (nothing is measured per request). On a fresh connection any byte received is
 * one; on a kept-alive one, a byte received later than the start of the phase (the previous
 * request's bytes all came before its answer was sent).
 */
static bool data_arrived(const struct dh_guard_conn *c, int64_t now)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
		return false;
	if (c->requests == 0)
		return len >= offsetof(struct tcp_info, tcpi_bytes_received) +
				       sizeof(ti.tcpi_bytes_received) &&
		       ti.tcpi_bytes_received > 0;
	return (int64_t)ti.tcpi_last_data_recv + DH_GUARD_RECV_SLACK_MS < now - c->head_start_ms;
}

/*
 * Cuts a connection whose head is late. The lock is held across these non-blocking calls on
 * purpose: while it is held the caller cannot close the descriptor (dh_guard_close takes the
 * lock first), so it cannot have been reused for another connection.
 */
static void cut(struct dh_guard_conn *c, int64_t now)
{
	bool in_body = c->phase == PH_BODY;
	bool answer = !c->is_tls && !c->over_cap && (in_body || data_arrived(c, now));

	list_remove(c);
	c->phase = PH_CUT;
	if (in_body)
		stats.body_timeouts++;
	else
		stats.head_timeouts++;
	if (answer && answer_408_len) {
		char buf[sizeof(answer_408)], id[17];
		memcpy(buf, answer_408, answer_408_len);
		if (lim.request_id) {
			lim.request_id(id);
			memcpy(buf + id_408, id, 16);
		}
		if (send(c->fd, buf, answer_408_len, MSG_DONTWAIT | MSG_NOSIGNAL) ==
		    (ssize_t)answer_408_len) {
			stats.timeout_408++;
			shutdown(c->fd, SHUT_WR);
			list_append(c, L_LINGER, now + DH_GUARD_LINGER_MS);
			return;
		}
	}
	shutdown(c->fd, SHUT_RDWR);
}

static int64_t earliest(int64_t now)
{
	int64_t t = now + DH_GUARD_TICK_MS;

	for (int i = 0; i < L_COUNT; i++) {
		if (lists[i].first && lists[i].first->deadline_ms < t)
			t = lists[i].first->deadline_ms;
	}
	return t;
}

static void *guard_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	while (!stop) {
		int64_t now = dh_mono_ms(), next;
		struct timespec ts;
		struct dh_guard_conn *c;

		for (int i = L_HEAD; i <= L_OVER; i++) {
			while ((c = lists[i].first) && c->deadline_ms <= now)
				cut(c, now);
		}
		while ((c = lists[L_BODY].first) && c->deadline_ms <= now) {
			uint64_t got = atomic_load_explicit(&c->body_bytes, memory_order_relaxed);
			uint64_t need = (uint64_t)lim.min_body_rate * lim.head_timeout_ms / 1000;
			if (got - c->body_mark < need) {
				cut(c, now);
				continue;
			}
			c->body_mark = got;
			list_append(c, L_BODY, c->deadline_ms + lim.head_timeout_ms);
		}
		while ((c = lists[L_LINGER].first) && c->deadline_ms <= now) {
			list_remove(c);
			shutdown(c->fd, SHUT_RDWR);
		}
		next = earliest(now);
		ts.tv_sec = (time_t)(next / 1000);
		ts.tv_nsec = (long)(next % 1000) * 1000000L;
		pthread_cond_timedwait(&wake, &lock, &ts);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* ---- the public calls ---- */

static void build_408(void)
{
	static const char body[] = "{\"code\":\"request_timeout\",\"detail\":\"The request head "
				   "or body did not arrive in time.\"}";
	static const char id_field[] = "X-Request-Id: ";
	int n = snprintf(answer_408, sizeof(answer_408),
			 "HTTP/1.1 408 Request Timeout\r\n"
			 "Connection: close\r\n"
			 "Content-Type: application/json; charset=utf-8\r\n"
			 "%s0000000000000000\r\n"
			 "Content-Length: %zu\r\n\r\n%s",
			 id_field, sizeof(body) - 1, body);

	answer_408_len = n > 0 && (size_t)n < sizeof(answer_408) ? (size_t)n : 0;
	id_408 = (size_t)(strstr(answer_408, id_field) - answer_408) + sizeof(id_field) - 1;
}

enum dh_err dh_guard_start(const struct dh_guard_limits *limits, struct dh_error *err)
{
	pthread_condattr_t ca;
	size_t want = 2 * ((size_t)limits->max_connections + limits->reserve), n = 1;

	lim = *limits;
	while (n < want || n < DH_GUARD_MIN_SLOTS)
		n *= 2;
	slots = calloc(n, sizeof(*slots));
	if (!slots)
		return dh_error_set(err, DH_E_NOMEM, "No memory for %zu connection slots", n);
	slot_mask = n - 1;
	if (!dh_random(seed, sizeof(seed))) {
		seed[0] = (uint64_t)dh_now_us();
		seed[1] = (uint64_t)getpid();
	}
	build_408();
	memset(lists, 0, sizeof(lists));
	memset(&stats, 0, sizeof(stats));
	served = extra = 0;
	stop = false;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wake, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&thread, NULL, guard_main, NULL) != 0) {
		free(slots);
		slots = NULL;
		pthread_cond_destroy(&wake);
		return dh_error_set(err, DH_E_INTERNAL, "Cannot start the connection guard thread");
	}
	running = true;
	return DH_OK;
}

void dh_guard_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&lock);
	stop = true;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	pthread_join(thread, NULL);
	pthread_cond_destroy(&wake);
	running = false;
	free(slots);
	slots = NULL;
}

bool dh_guard_address_allowed(const struct sockaddr *sa)
{
	uint8_t key[DH_CLIENT_KEY_LEN];
	bool ok = true;

	if (!lim.per_address)
		return true;
	dh_client_key(sa, key);
	pthread_mutex_lock(&lock);
	if (slots) {
		size_t i = slot_find(key);
		ok = slots[i].count < lim.per_address;
		if (!ok)
			stats.refused_address++;
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

bool dh_guard_has_room(void)
{
	bool ok;

	pthread_mutex_lock(&lock);
	ok = served + extra < lim.max_connections + lim.reserve;
	if (!ok)
		stats.refused_full++;
	pthread_mutex_unlock(&lock);
	return ok;
}

struct dh_guard_conn *dh_guard_open(int fd, const struct sockaddr *sa, bool is_tls)
{
	struct dh_guard_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->is_tls = is_tls;
	c->list = L_NONE;
	dh_client_key(sa, c->key);
	pthread_mutex_lock(&lock);
	c->over_cap = served >= lim.max_connections;
	if (c->over_cap)
		extra++;
	else
		served++;
	if (slots)
		slot_add(c->key);
	stats.open++;
	head_begin(c, dh_mono_ms());
	pthread_mutex_unlock(&lock);
	return c;
}

bool dh_guard_head_done(struct dh_guard_conn *c, bool *refuse)
{
	bool ok;

	*refuse = false;
	if (!c)
		return true;
	pthread_mutex_lock(&lock);
	ok = c->phase != PH_CUT;
	if (ok) {
		list_remove(c);
		c->phase = PH_BUSY;
		/* a place may have become free since the accept */
		if (c->over_cap && served < lim.max_connections) {
			c->over_cap = false;
			extra--;
			served++;
		}
		if (c->over_cap) {
			*refuse = true;
			stats.refused_cap++;
		}
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

bool dh_guard_may_answer(struct dh_guard_conn *c)
{
	bool ok;

	if (!c)
		return true;
	pthread_mutex_lock(&lock);
	ok = c->phase != PH_CUT;
	if (ok) {
		list_remove(c);
		c->phase = PH_BUSY;
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

void dh_guard_body_begin(struct dh_guard_conn *c)
{
	if (!c || !lim.min_body_rate)
		return;
	pthread_mutex_lock(&lock);
	if (c->phase == PH_BUSY) {
		c->phase = PH_BODY;
		c->body_mark = atomic_load_explicit(&c->body_bytes, memory_order_relaxed);
		list_append(c, L_BODY, dh_mono_ms() + lim.head_timeout_ms);
	}
	pthread_mutex_unlock(&lock);
}

void dh_guard_body_bytes(struct dh_guard_conn *c, size_t n)
{
	if (c)
		atomic_fetch_add_explicit(&c->body_bytes, n, memory_order_relaxed);
}

void dh_guard_body_done(struct dh_guard_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&lock);
	if (c->phase == PH_BODY) {
		list_remove(c);
		c->phase = PH_BUSY;
	}
	pthread_mutex_unlock(&lock);
}

void dh_guard_request_done(struct dh_guard_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&lock);
	if (c->phase == PH_BUSY || c->phase == PH_BODY) {
		c->requests++;
		head_begin(c, dh_mono_ms());
	}
	pthread_mutex_unlock(&lock);
}

void dh_guard_close(struct dh_guard_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&lock);
	list_remove(c);
	if (c->over_cap)
		extra--;
	else
		served--;
	if (slots)
		slot_del(c->key);
	stats.open--;
	pthread_mutex_unlock(&lock);
	free(c);
}

const uint8_t *dh_guard_client_key(const struct dh_guard_conn *c)
{
	static const uint8_t none[DH_CLIENT_KEY_LEN];

	return c ? c->key : none;
}

void dh_guard_stats_get(struct dh_guard_stats *out)
{
	pthread_mutex_lock(&lock);
	*out = stats;
	pthread_mutex_unlock(&lock);
}
