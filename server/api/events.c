/*
 * GET /api/v1/events: session changes as Server-Sent Events, filtered by the caller's
 * access rights. Owns the list of subscribers and one notifier thread. A subscriber with
 * nothing to send parks its connection (dh_http_suspend) instead of holding one of MHD's
 * pool threads; the notifier resumes it when the event sequence moves past what it has
 * sent, when its heartbeat is due, when users, tokens or rights changed or its token
 * expired, or at shutdown. Reads the event ring of core/events.h. Before every event and
 * heartbeat it checks the subscriber's token again (through the authentication cache; the
 * database only after a change): a token that no longer authenticates ends the stream with
 * an `error` event, and changed grants apply to what the stream shows next.
 */
#include "api/api.h"

#include "config.h"
#include "core/events.h"
#include "core/util.h"
#include "dh_db.h"
#include "log.h"
#include "pipeline/session.h"

#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Heartbeat comment interval: often enough that proxies keep the stream open. */
#define DH_SSE_HEARTBEAT_MS 15000
/* Bounds of ?heartbeat=: below 100 ms a subscriber would mostly send comments. */
#define DH_SSE_HEARTBEAT_MIN_MS 100
#define DH_SSE_HEARTBEAT_MAX_MS 60000
/* What EventSource waits before it reconnects (the stream's retry: field). */
#define DH_SSE_RETRY_MS 3000
/* Events copied from the ring per read; the rest follow on the next call. */
#define DH_SSE_BATCH 64
/* A subscriber stops formatting once this much is pending: it sends that first. */
#define DH_SSE_BUF_HIGH (256 * 1024)
/* Longest the notifier sleeps; bounds how late it notices shutdown. */
#define DH_SSE_NOTIFY_MAX_MS 200
/* How long shutdown waits for subscribers to end their streams. */
#define DH_SSE_STOP_WAIT_MS 3000
/* Read-callback rounds before parking; each round sees newer events or a due heartbeat. */
#define DH_SSE_READ_ROUNDS 4
/*
 * One user's streams take at most this fraction of --max-events (and at least one), so that
 * one device, or one leaked token and the tokens it mints for its user, cannot take every
 * place from the dashboards: with the default 64, eight tabs per user.
 */
#define DH_SSE_USER_SHARE 8

struct sub {
	struct sub *prev, *next;
	void *conn;              /* the MHD connection, only for suspend/resume */
	struct dh_principal who; /* a copy: the request is gone while the stream lives */
	uint64_t after;          /* last sequence number examined */
	int64_t heartbeat_ms, heartbeat_due_ms;
	int fd;            /* its socket, polled while parked to notice a client gone */
	bool is_suspended; /* guarded by reg.lock */
	bool is_gone;      /* the client hung up while parked; guarded by reg.lock */
	/* the auth generation the token was last checked at, and its expiry (0: never);
	 * both guarded by reg.lock, which the notifier reads them under */
	unsigned long auth_gen;
	int64_t expire_us;
	bool is_ending; /* the token no longer authenticates: a last event is queued */
	char *buf;
	size_t len, off, cap;
};

/* Subscribers and the notifier; every field guarded by lock. */
static struct {
	pthread_mutex_t lock;
	struct sub *head;
	unsigned count;
	bool is_stopping;
	bool has_thread;
	pthread_t thread;
} reg = { .lock = PTHREAD_MUTEX_INITIALIZER };

static bool buf_append(struct sub *s, const char *text, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		size_t ncap = s->cap ? s->cap : 1024;
		char *nb;
		while (ncap < s->len + n + 1)
			ncap *= 2;
		nb = realloc(s->buf, ncap);
		if (!nb)
			return false;
		s->buf = nb;
		s->cap = ncap;
	}
	memcpy(s->buf + s->len, text, n);
	s->len += n;
	s->buf[s->len] = 0;
	return true;
}

static bool buf_printf(struct sub *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool buf_printf(struct sub *s, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(small))
		return false;
	return buf_append(s, small, (size_t)n);
}

/*
 * One event in SSE framing: id, event name, one data line (compact JSON has no newline).
 * The ring holds events as stored, a session's links as their prefixes: the token goes in
 * now, for this reader, while the link still serves (pipeline/session.h).
 */
static bool format_event(struct sub *s, const struct dh_event *ev)
{
	char token[DH_LINK_TOKEN_LEN], *shown = NULL;
	const char *data;
	bool ok;

	if (dh_session_event_text(dh_db_thread(), ev->type, ev->data, &shown, token) != DH_OK)
		return false;
	data = shown ? shown : ev->data ? ev->data : "{}";
	ok = buf_printf(s, "id: %" PRIu64 "\nevent: %s\ndata: ", ev->seq, ev->type) &&
	     buf_append(s, data, strlen(data)) && buf_append(s, "\n\n", 2);
	free(shown);
	return ok;
}

/* Is a check of the subscriber's token due: users, tokens or rights changed since the last
 * one, or the token expired? Called under reg.lock. */
static bool auth_due(const struct sub *s, unsigned long gen, int64_t now_us)
{
	return s->auth_gen != gen || (s->expire_us && s->expire_us <= now_us);
}

/*
 * Does the subscriber's token still authenticate, with `update` somewhere? Checked again as a
 * new request would be whenever one is due; the fresh grants replace the old ones, so a
 * change of rights applies to every event formatted after it. err says why not.
 */
static bool still_allowed(struct sub *s, struct dh_error *err)
{
	unsigned long gen = dh_db_auth_generation(); /* before the check: a change during it
						      * leaves the next one due */
	struct dh_db *db;
	bool due;

	pthread_mutex_lock(&reg.lock);
	due = auth_due(s, gen, dh_now_us());
	pthread_mutex_unlock(&reg.lock);
	if (!due)
		return true;
	db = dh_db_thread();
	if (!db) {
		dh_error_set(err, DH_E_UNAVAILABLE, "The database is not reachable.");
		return false;
	}
	if (dh_api_reauthenticate(db, &s->who, err) != DH_OK)
		return false;
	if (!dh_rights_any(&s->who, DH_ACT_UPDATE)) {
		dh_error_set(err, DH_E_FORBIDDEN,
			     "The token's user no longer has the 'update' right anywhere.");
		return false;
	}
	pthread_mutex_lock(&reg.lock);
	s->auth_gen = gen;
	s->expire_us = s->who.token_expire_us;
	pthread_mutex_unlock(&reg.lock);
	return true;
}

/* Queues the stream's last event, an error as the API answers it, after which it ends. */
static void end_with(struct sub *s, const struct dh_error *err)
{
	json_t *data = json_pack("{s:s, s:s}", "code", dh_err_name(err->code), "detail",
				 dh_error_detail(err));
	char *text = data ? json_dumps(data, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

	s->off = s->len = 0; /* nothing more of what the token may no longer see */
	if (!text || !buf_append(s, "event: error\ndata: ", 19) ||
	    !buf_append(s, text, strlen(text)) || !buf_append(s, "\n\n", 2))
		s->off = s->len = 0; /* out of memory: just end */
	s->is_ending = true;
	dh_info("events.closed", "user=%s code=%s", s->who.user_name, dh_err_name(err->code));
	free(text);
	json_decref(data);
}

/*
 * An image is in several channels, so a firmware event carries none: a grant narrowed to
 * a channel sees it when the channel is one of the image's (data.channels), as it sees the
 * image itself on GET. Parsed only for such events when the scope alone did not allow.
 */
static bool sees_by_channel(const struct dh_principal *who, const struct dh_event *ev,
			    struct dh_scope sc)
{
	json_t *data, *c;
	size_t i;
	bool ok = false;

	if (strncmp(ev->type, "firmware.", 9) != 0 || *ev->channel || !ev->data)
		return false;
	data = json_loads(ev->data, 0, NULL);
	json_array_foreach(json_object_get(data, "channels"), i, c)
	{
		sc.channel = json_string_value(c);
		if (sc.channel && dh_rights_allow(who, ev->need, &sc)) {
			ok = true;
			break;
		}
	}
	json_decref(data);
	return ok;
}

/* Formats what the ring holds after s->after and the caller may see; a heartbeat when
 * nothing else was written and one is due. The token is checked first, at every event and
 * heartbeat: one that no longer authenticates ends the stream instead. */
static void fill(struct sub *s)
{
	struct dh_event ev[DH_SSE_BATCH];
	struct dh_error err = { 0 };
	uint64_t missed = 0;
	size_t n;

	if (s->is_ending)
		return;
	if (!still_allowed(s, &err)) {
		end_with(s, &err);
		dh_error_release(&err);
		return;
	}
	n = dh_events_read(s->after, ev, DH_SSE_BATCH, 0, &missed);
	if (missed)
		buf_printf(s, "event: events.missed\ndata: {\"missed\":%" PRIu64 "}\n\n", missed);
	for (size_t i = 0; i < n; i++) {
		struct dh_scope sc = { .product = ev[i].product,
				       .model = ev[i].model,
				       .channel = *ev[i].channel ? ev[i].channel : NULL };
		if (s->len < DH_SSE_BUF_HIGH) {
			s->after = ev[i].seq;
			if (dh_rights_allow(&s->who, ev[i].need, &sc) ||
			    sees_by_channel(&s->who, &ev[i], sc))
				format_event(s, &ev[i]);
		}
		dh_event_release(&ev[i]);
	}
	if (s->len == 0 && dh_mono_ms() >= s->heartbeat_due_ms)
		buf_append(s, ": heartbeat\n\n", 13);
	if (s->len)
		s->heartbeat_due_ms = dh_mono_ms() + s->heartbeat_ms;
}

static long copy_out(struct sub *s, char *out, size_t max)
{
	size_t n = s->len - s->off;

	if (n > max)
		n = max;
	memcpy(out, s->buf + s->off, n);
	s->off += n;
	if (s->off == s->len)
		s->off = s->len = 0;
	return (long)n;
}

/* MHD's read callback, on a pool thread: send what is pending, else park the connection. */
static long sub_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct sub *s = cls;

	(void)pos;
	for (int round = 0; round < DH_SSE_READ_ROUNDS; round++) {
		bool is_stopping, has_news;

		if (s->off < s->len)
			return copy_out(s, out, max);
		if (s->is_ending)
			return -1;
		fill(s);
		if (s->len)
			return copy_out(s, out, max);
		/* decide and park under the lock the notifier scans with, so that an event
		 * published (or an auth change made) between the check and the park cannot be
		 * missed */
		pthread_mutex_lock(&reg.lock);
		is_stopping = reg.is_stopping || s->is_gone;
		has_news = dh_events_last_seq() > s->after || dh_mono_ms() >= s->heartbeat_due_ms ||
			   auth_due(s, dh_db_auth_generation(), dh_now_us());
		if (!is_stopping && !has_news) {
			s->is_suspended = true;
			dh_http_suspend(s->conn);
		}
		pthread_mutex_unlock(&reg.lock);
		if (is_stopping)
			return -1;
		if (!has_news)
			return 0;
	}
	return 0;
}

static void sub_free(void *cls)
{
	struct sub *s = cls;

	pthread_mutex_lock(&reg.lock);
	if (s->prev)
		s->prev->next = s->next;
	else
		reg.head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	reg.count--;
	pthread_mutex_unlock(&reg.lock);
	dh_principal_release(&s->who);
	free(s->buf);
	free(s);
}

/* Marks parked subscribers whose client hung up (MHD does not watch parked sockets), so
 * that their slot is freed now rather than at the next heartbeat. Called under reg.lock. */
static void find_gone(struct pollfd *pfd, struct sub **who, size_t cap)
{
	size_t n = 0;

	for (struct sub *s = reg.head; s && n < cap; s = s->next) {
		if (!s->is_suspended || s->fd < 0)
			continue;
		pfd[n].fd = s->fd;
		pfd[n].events = POLLRDHUP;
		pfd[n].revents = 0;
		who[n++] = s;
	}
	if (n == 0 || poll(pfd, n, 0) <= 0)
		return;
	for (size_t i = 0; i < n; i++) {
		if (pfd[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
			who[i]->is_gone = true;
	}
}

/* Resumes parked subscribers that have something to do; sleeps on the event ring until
 * the sequence moves or the earliest heartbeat is due. Exits at shutdown once every
 * subscriber has ended (or the wait bound passed). */
static void *notifier(void *arg)
{
	size_t cap = dh_cfg.max_events ? dh_cfg.max_events : 1;
	struct pollfd *pfd = calloc(cap, sizeof(*pfd));
	struct sub **who = calloc(cap, sizeof(*who));
	uint64_t seen = dh_events_last_seq();
	int64_t stop_deadline = 0;

	(void)arg;
	for (;;) {
		int64_t now = dh_mono_ms(), wake = now + DH_SSE_NOTIFY_MAX_MS, now_us = dh_now_us();
		unsigned long auth_gen = dh_db_auth_generation();
		struct dh_event ev;
		uint64_t missed;
		bool done;

		pthread_mutex_lock(&reg.lock);
		if (reg.is_stopping && !stop_deadline)
			stop_deadline = now + DH_SSE_STOP_WAIT_MS;
		if (pfd && who)
			find_gone(pfd, who, cap);
		for (struct sub *s = reg.head; s; s = s->next) {
			if (!s->is_suspended)
				continue;
			/* an auth change or an expiry wakes it too: its token is checked then */
			if (reg.is_stopping || s->is_gone || s->after < seen ||
			    now >= s->heartbeat_due_ms || auth_due(s, auth_gen, now_us)) {
				s->is_suspended = false;
				dh_http_resume(s->conn);
			} else if (s->heartbeat_due_ms < wake) {
				wake = s->heartbeat_due_ms;
			}
		}
		done = reg.is_stopping && (reg.count == 0 || now >= stop_deadline);
		pthread_mutex_unlock(&reg.lock);
		if (done)
			break;
		if (dh_events_read(seen, &ev, 1, (int)(wake > now ? wake - now : 1), &missed))
			dh_event_release(&ev);
		seen = dh_events_last_seq();
	}
	free(pfd);
	free(who);
	return NULL;
}

/* Reads ?name= as milliseconds or an event id; false (with err filled) when malformed. */
static bool parse_arg(struct dh_req *req, const char *name, const char *text, uint64_t min,
		      uint64_t max, uint64_t *out)
{
	char what[96];

	if (dh_parse_u64(text, out) && *out >= min && *out <= max)
		return true;
	snprintf(what, sizeof(what), "must be a whole number from %llu to %llu",
		 (unsigned long long)min, (unsigned long long)max);
	dh_error_field(&req->err, name, what);
	dh_error_set(&req->err, DH_E_INVALID, "The %s parameter is not valid.", name);
	return false;
}

/* Frees a subscriber that never joined the list. */
static void sub_discard(struct sub *s)
{
	if (!s)
		return;
	dh_principal_release(&s->who);
	free(s->buf);
	free(s);
}

/* Adds s to the list, starting the notifier with the first subscriber; the error when the
 * list is full or the server is stopping. */
static enum dh_err sub_join(struct dh_req *req, struct sub *s)
{
	unsigned per_user = dh_cfg.max_events / DH_SSE_USER_SHARE, mine = 0;
	enum dh_err rc = DH_OK;
	unsigned count;

	if (per_user == 0)
		per_user = 1;
	pthread_mutex_lock(&reg.lock);
	count = reg.count;
	for (const struct sub *o = reg.head; o; o = o->next)
		mine += strcmp(o->who.user_id, s->who.user_id) == 0;
	if (reg.is_stopping) {
		rc = dh_error_set(&req->err, DH_E_UNAVAILABLE, "The server is shutting down.");
	} else if (mine >= per_user && count < dh_cfg.max_events) {
		rc = dh_error_set(&req->err, DH_E_RATE,
				  "Your user has %u event streams open, the most one user may"
				  " hold; close one or poll /api/v1/firmware-update/.",
				  mine);
	} else if (count >= dh_cfg.max_events) {
		rc = dh_error_set(&req->err, DH_E_UNAVAILABLE,
				  "All %u event subscriptions are taken; try again later or poll"
				  " /api/v1/firmware-update/.",
				  dh_cfg.max_events);
	} else if (!reg.has_thread && pthread_create(&reg.thread, NULL, notifier, NULL) != 0) {
		rc = dh_error_set(&req->err, DH_E_UNAVAILABLE, "Cannot start the event notifier.");
	} else {
		reg.has_thread = true;
		s->next = reg.head;
		if (reg.head)
			reg.head->prev = s;
		reg.head = s;
		reg.count++;
	}
	pthread_mutex_unlock(&reg.lock);
	if (rc != DH_OK && count >= dh_cfg.max_events)
		dh_warn("events.full", "subscribers=%u max=%u", count, dh_cfg.max_events);
	return rc;
}

enum dh_err dh_api_events(struct dh_req *req)
{
	const char *hb = dh_req_query(req, "heartbeat");
	const char *last = dh_req_header(req, "Last-Event-ID");
	uint64_t heartbeat = DH_SSE_HEARTBEAT_MS, after, newest = dh_events_last_seq();
	struct sub *s = NULL;
	enum dh_err rc = DH_E_INVALID;

	if (hb && !parse_arg(req, "heartbeat", hb, DH_SSE_HEARTBEAT_MIN_MS, DH_SSE_HEARTBEAT_MAX_MS,
			     &heartbeat))
		goto out;
	/* EventSource sends Last-Event-ID on reconnects; ?last_event_id= serves a first connect */
	if (!last || !*last)
		last = dh_req_query(req, "last_event_id");
	after = newest;
	if (last && *last && !parse_arg(req, "last_event_id", last, 0, UINT64_MAX, &after))
		goto out;
	/* an id from before a restart (the sequence starts again at 1): send all kept events */
	if (after > newest)
		after = 0;
	rc = DH_E_NOMEM;
	s = calloc(1, sizeof(*s));
	if (!s || !dh_principal_copy(&s->who, &req->who))
		goto out;
	s->conn = req->conn;
	s->fd = dh_http_conn_fd(req->conn);
	s->after = after;
	s->heartbeat_ms = (int64_t)heartbeat;
	s->heartbeat_due_ms = dh_mono_ms() + s->heartbeat_ms;
	/* the first bytes open the stream for the client at once, and set its retry delay */
	if (!buf_printf(s, "retry: %d\n: connected\n\n", DH_SSE_RETRY_MS))
		goto out;
	rc = sub_join(req, s);
	if (rc != DH_OK)
		goto out;
	/* from here on sub_free owns s, also when the reply cannot be made */
	rc = dh_http_reply_stream(req, 200, "text/event-stream; charset=utf-8", sub_read, s,
				  sub_free);
	s = NULL;
	if (rc != DH_OK)
		goto out;
	dh_http_header(req, "Cache-Control", "no-cache");
	dh_http_header(req, "X-Accel-Buffering", "no");
	dh_debug("events.subscribe", "user=%s after=%llu heartbeat_ms=%llu", req->who.user_name,
		 (unsigned long long)after, (unsigned long long)heartbeat);
out:
	sub_discard(s);
	return rc;
}

unsigned dh_api_events_subscribers(void)
{
	unsigned n;

	pthread_mutex_lock(&reg.lock);
	n = reg.count;
	pthread_mutex_unlock(&reg.lock);
	return n;
}

void dh_api_events_stop(void)
{
	bool has_thread;

	pthread_mutex_lock(&reg.lock);
	reg.is_stopping = true;
	has_thread = reg.has_thread;
	pthread_mutex_unlock(&reg.lock);
	if (has_thread)
		pthread_join(reg.thread, NULL);
}
