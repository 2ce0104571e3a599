/*
 * The connection guard (see guard.h): admission counts, the per-address table and the
 * head deadlines, with one thread that cuts connections whose head is late, and a second
 * one that drains sockets closed after an early answer (lingering close). Owns its records,
 * its threads and the duplicates of lingering sockets; never closes a descriptor the event
 * loop owns.
 */
#include "http/guard.h"

#include "core/util.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
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
/* tcpi_last_data_recv and tcpi_last_data_sent count in jiffies (up to 10 ms): on a
 * kept-alive connection, data received (sent) within this margin of the start of the head
 * phase (window) is taken as belonging to the previous request (answer). */
#define DH_GUARD_RECV_SLACK_MS 20
/* Smallest per-address table; it is sized to twice the connections it can hold. */
#define DH_GUARD_MIN_SLOTS 64
/*
 * Bounds of a lingering close (guard.h), nginx's defaults: a client gets at most
 * DH_GUARD_DRAIN_MS in all to finish sending and read the answer, and the socket is closed
 * once DH_GUARD_DRAIN_IDLE_MS pass without a byte from it. A client on a link of 1 Mbit/s
 * sends a 2 MiB body beyond --max-body in 17 s.
 */
#define DH_GUARD_DRAIN_MS      30000
#define DH_GUARD_DRAIN_IDLE_MS 5000
/* Bytes dropped from one lingering socket at most: an honest client that missed a limit
 * stops at its body's end, and a body this large costs a few milliseconds of reading; a
 * client sending on beyond it gets the reset it would get without lingering. */
#define DH_GUARD_DRAIN_BYTES (64ULL * 1024 * 1024)
/* One read of a lingering socket; at most DH_GUARD_DRAIN_READS of them per wake-up, so one
 * fast sender cannot keep the drain thread from the others (epoll reports it again). */
#define DH_GUARD_DRAIN_BUF   (64 * 1024)
#define DH_GUARD_DRAIN_READS 8

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
	bool answered_early; /* drain it when it closes (lingering close) */
	unsigned requests;   /* answered on this connection so far */
	int64_t head_start_ms, deadline_ms;
	_Atomic uint64_t body_bytes; /* added by the request's thread without the lock */
	uint64_t body_mark;          /* body_bytes at the start of the current window */
	uint8_t key[DH_CLIENT_KEY_LEN];
	void *user; /* the caller's pointer: only the connection's own thread uses it */
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
/* Sockets in a lingering close, drained by drain_thread; guarded by drain_lock. */
struct drain_slot {
	int fd; /* the guard's duplicate; -1: free */
	int64_t until_ms, idle_until_ms;
	uint64_t bytes;
};
static pthread_mutex_t drain_lock = PTHREAD_MUTEX_INITIALIZER;
static struct drain_slot drains[DH_GUARD_LINGER_MAX];
static int drain_epoll = -1, drain_wake = -1;
static pthread_t drain_thread;
static atomic_bool drain_stop;
static bool drain_running;
/* The epoll key of drain_wake (slots are keyed by their index). */
#define DRAIN_WAKE_KEY UINT32_MAX

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
 * Whether the previous answer was still on its way to the client in this head window: the
 * kernel sent data on the connection after the window began. The server writes an answer
 * into the socket at once (the kernel grows the send buffer to megabytes), so a device on a
 * slow link may still be reading a 1 MiB image long after the server's last write, which
 * began the head phase; its idle time must not run out before it had the answer. Bytes of
 * a new request do not change that: a client that has just read the last byte sends its
 * next head at once, and that head must not be taken for a late one because the deadline
 * came a moment before the event loop read it. A client that stops reading makes the kernel
 * send no more data (zero-window probes carry none), so it is cut one window later. Asked
 * at the deadline only, like data_arrived.
 */
static bool still_delivering(const struct dh_guard_conn *c, int64_t now)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int64_t window = now - (c->deadline_ms - (int64_t)lim.head_timeout_ms);

	if (c->requests == 0 || c->over_cap)
		return false;
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
	    len < offsetof(struct tcp_info, tcpi_last_data_sent) + sizeof(ti.tcpi_last_data_sent))
		return false;
	return (int64_t)ti.tcpi_last_data_sent + DH_GUARD_RECV_SLACK_MS < window;
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

		while ((c = lists[L_HEAD].first) && c->deadline_ms <= now) {
			/* the window starts again (appended last, so the list stays sorted) */
			if (still_delivering(c, now))
				list_append(c, L_HEAD, now + lim.head_timeout_ms);
			else
				cut(c, now);
		}
		while ((c = lists[L_OVER].first) && c->deadline_ms <= now)
			cut(c, now);
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

/* ---- lingering close: draining sockets answered early ---- */

static unsigned long long drain_count, drain_total; /* guarded by drain_lock */

static void drain_release(struct drain_slot *d)
{
	epoll_ctl(drain_epoll, EPOLL_CTL_DEL, d->fd, NULL);
	close(d->fd);
	d->fd = -1;
	drain_count--;
}

/* Reads and drops what came; false when the socket is done (end, error, too many bytes). */
static bool drain_read(struct drain_slot *d, int64_t now)
{
	static char scratch[DH_GUARD_DRAIN_BUF]; /* only the drain thread reads into it */

	for (int i = 0; i < DH_GUARD_DRAIN_READS; i++) {
		ssize_t n = recv(d->fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (n == 0)
			return false; /* the client closed its side: it has read what it wanted */
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		d->bytes += (uint64_t)n;
		d->idle_until_ms = now + DH_GUARD_DRAIN_IDLE_MS;
		if (d->bytes >= DH_GUARD_DRAIN_BYTES)
			return false;
	}
	return true;
}

static void *drain_main(void *arg)
{
	struct epoll_event ev[64];

	(void)arg;
	while (!atomic_load(&drain_stop)) {
		int n = epoll_wait(drain_epoll, ev, 64, DH_GUARD_TICK_MS);
		int64_t now = dh_mono_ms();

		pthread_mutex_lock(&drain_lock);
		for (int i = 0; i < n; i++) {
			uint32_t k = ev[i].data.u32;
			if (k == DRAIN_WAKE_KEY || k >= DH_GUARD_LINGER_MAX || drains[k].fd < 0)
				continue;
			if (!drain_read(&drains[k], now))
				drain_release(&drains[k]);
		}
		for (size_t k = 0; k < DH_GUARD_LINGER_MAX && drain_count; k++) {
			struct drain_slot *d = &drains[k];
			if (d->fd >= 0 && (now >= d->until_ms || now >= d->idle_until_ms))
				drain_release(d);
		}
		pthread_mutex_unlock(&drain_lock);
	}
	return NULL;
}

static bool drain_start(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = DRAIN_WAKE_KEY };

	for (size_t k = 0; k < DH_GUARD_LINGER_MAX; k++)
		drains[k].fd = -1;
	drain_count = drain_total = 0;
	atomic_store(&drain_stop, false);
	drain_epoll = epoll_create1(EPOLL_CLOEXEC);
	drain_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (drain_epoll < 0 || drain_wake < 0 ||
	    epoll_ctl(drain_epoll, EPOLL_CTL_ADD, drain_wake, &ev) != 0 ||
	    pthread_create(&drain_thread, NULL, drain_main, NULL) != 0) {
		if (drain_epoll >= 0)
			close(drain_epoll);
		if (drain_wake >= 0)
			close(drain_wake);
		drain_epoll = drain_wake = -1;
		return false;
	}
	drain_running = true;
	return true;
}

static void drain_stop_all(void)
{
	uint64_t one = 1;

	if (!drain_running)
		return;
	atomic_store(&drain_stop, true);
	if (write(drain_wake, &one, sizeof(one)) < 0)
		dh_debug("http.guard", "detail=\"cannot wake the drain thread\"");
	pthread_join(drain_thread, NULL);
	for (size_t k = 0; k < DH_GUARD_LINGER_MAX; k++) {
		if (drains[k].fd >= 0)
			drain_release(&drains[k]);
	}
	close(drain_epoll);
	close(drain_wake);
	drain_epoll = drain_wake = -1;
	drain_running = false;
}

/*
 * Starts the lingering close of fd, a socket about to be closed by its owner: a duplicate
 * keeps it open, shut down for writing (the answer is out; the client sees its end), and is
 * drained until the client closes or a bound is reached. When no slot or descriptor is
 * free, nothing happens (false): the socket closes as it would without lingering.
 */
static bool drain_add(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
	int64_t now = dh_mono_ms();
	bool added = false;
	size_t k;
	int dup_fd;

	pthread_mutex_lock(&drain_lock);
	for (k = 0; k < DH_GUARD_LINGER_MAX && drains[k].fd >= 0; k++)
		;
	if (!drain_running || k == DH_GUARD_LINGER_MAX)
		goto out;
	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0)
		goto out;
	shutdown(dup_fd, SHUT_WR);
	ev.data.u32 = (uint32_t)k;
	if (epoll_ctl(drain_epoll, EPOLL_CTL_ADD, dup_fd, &ev) != 0) {
		close(dup_fd);
		goto out;
	}
	drains[k] = (struct drain_slot){ .fd = dup_fd,
					 .until_ms = now + DH_GUARD_DRAIN_MS,
					 .idle_until_ms = now + DH_GUARD_DRAIN_IDLE_MS };
	drain_count++;
	drain_total++;
	added = true;
out:
	pthread_mutex_unlock(&drain_lock);
	return added;
}

/* Bytes received on fd that nobody read: closing it now would reset the connection. */
static bool has_unread(int fd)
{
	int n = 0;

	return fd >= 0 && ioctl(fd, SIOCINQ, &n) == 0 && n > 0;
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
	if (!drain_start()) {
		dh_guard_stop();
		return dh_error_set(err, DH_E_INTERNAL, "Cannot start the connection drain thread");
	}
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
	drain_stop_all();
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

struct dh_guard_conn *dh_guard_admit(int fd, const struct sockaddr *sa, bool is_tls)
{
	struct dh_guard_conn *c = calloc(1, sizeof(*c));
	bool ok;

	if (!c)
		return NULL;
	c->fd = fd;
	c->is_tls = is_tls;
	c->list = L_NONE;
	dh_client_key(sa, c->key);
	pthread_mutex_lock(&lock);
	ok = served + extra < lim.max_connections + lim.reserve;
	if (!ok)
		stats.refused_full++;
	else if (lim.per_address && slots && slots[slot_find(c->key)].count >= lim.per_address) {
		ok = false;
		stats.refused_address++;
	}
	if (ok) {
		c->over_cap = served >= lim.max_connections;
		if (c->over_cap)
			extra++;
		else
			served++;
		if (slots)
			slot_add(c->key);
		stats.open++;
		head_begin(c, dh_mono_ms());
	}
	pthread_mutex_unlock(&lock);
	if (ok)
		return c;
	free(c);
	return NULL;
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

void dh_guard_answered_early(struct dh_guard_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&lock);
	c->answered_early = true;
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

/* Frees c; with socket_open (the socket is still the connection's), drains it first when it
 * needs it. Returns whether a lingering close began. */
static bool close_record(struct dh_guard_conn *c, bool socket_open)
{
	bool linger;

	if (!c)
		return false;
	pthread_mutex_lock(&lock);
	/* a connection the guard cut (slow-loris) had its time: it is not drained */
	linger = socket_open && c->phase != PH_CUT && (c->answered_early || has_unread(c->fd));
	list_remove(c);
	if (c->over_cap)
		extra--;
	else
		served--;
	if (slots)
		slot_del(c->key);
	stats.open--;
	pthread_mutex_unlock(&lock);
	if (linger)
		linger = drain_add(c->fd);
	free(c);
	return linger;
}

void dh_guard_close(struct dh_guard_conn *c)
{
	close_record(c, false);
}

bool dh_guard_close_lingering(struct dh_guard_conn *c)
{
	return close_record(c, true);
}

const uint8_t *dh_guard_client_key(const struct dh_guard_conn *c)
{
	static const uint8_t none[DH_CLIENT_KEY_LEN];

	return c ? c->key : none;
}

void dh_guard_set_user(struct dh_guard_conn *c, void *p)
{
	if (c)
		c->user = p;
}

void *dh_guard_user(const struct dh_guard_conn *c)
{
	return c ? c->user : NULL;
}

void dh_guard_stats_get(struct dh_guard_stats *out)
{
	pthread_mutex_lock(&lock);
	*out = stats;
	pthread_mutex_unlock(&lock);
	pthread_mutex_lock(&drain_lock);
	out->lingering = drain_count;
	out->lingered = drain_total;
	pthread_mutex_unlock(&drain_lock);
}
