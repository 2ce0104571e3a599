/*
 * The direct path (see direct.h): the listening socket, the event threads, their
 * connections and the sending of answers. Owns every connection from accept until it is
 * closed or handed to libmicrohttpd; never parses anything but with http/head.c and never
 * decides an answer itself (http/server.c does, with the same code as for libmicrohttpd's
 * requests).
 *
 * Each connection sits in its thread's epoll, edge-triggered for input and output, from
 * accept to close, so no epoll_ctl is made per request. A connection is in one of two
 * states: waiting for a head (peeked, never consumed until it is known to be ours) or
 * sending an answer; nothing is read while an answer is sent, so a pipelined request waits
 * in the socket. Memory per connection is one struct dconn (~200 bytes); the head and the
 * answer's header lines are built in the thread's buffers and copied only when the socket
 * did not take them at once.
 */
#include "http/direct.h"

#include "core/util.h"
#include "dh_db.h"
#include "http/guard.h"
#include "http/mhd_shim.h"
#include "http/router.h"
#include "log.h"

#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Events taken per epoll_wait. */
#define DH_DIRECT_EVENTS 256
/* Connections one thread accepts per wake-up, so that a burst is shared among threads. */
#define DH_DIRECT_ACCEPTS 64
/* Largest sendfile call: one client on a fast link cannot hold its thread much longer than
 * 2 MiB takes to copy into a socket (nginx's sendfile_max_chunk default too). */
#define DH_DIRECT_SEND_MAX (2 * 1024 * 1024)
/*
 * Bodies from this size on go out by sendfile, smaller ones with the head in one writev from
 * the blob's mapping: a copy of up to 64 KiB costs less than a second system call, while
 * sendfile saves copying larger ones (measured with libmicrohttpd: sendfile 0.61-0.79x nginx
 * at 256 connections for 1 MiB where sending from the mapping gave 0.37-0.46x).
 */
#define DH_DIRECT_SENDFILE_MIN (64 * 1024)
/* Room for the status line, Date, Connection, X-Request-Id and Content-Length lines. */
#define DH_DIRECT_OUT_EXTRA 256
/* How often a thread looks for stalled answers (and a paused accept); also its longest
 * sleep, so that a stop is seen within this time even without the wake-up. */
#define DH_DIRECT_TICK_MS 1000
/*
 * A head is peeked from its start each time more of it came: one that arrives in more than
 * this many pieces (a client sending a byte at a time) goes to libmicrohttpd, which reads
 * heads incrementally, so that peeking costs at most this many copies of DH_HEAD_MAX. Real
 * clients send a head in one piece.
 */
#define DH_DIRECT_PEEKS_MAX 4
/* After running out of descriptors, a thread stops accepting for this long (the listening
 * socket would otherwise wake it in a loop). */
#define DH_DIRECT_ACCEPT_PAUSE_MS 100

enum dstate {
	D_HEAD, /* waiting for (the rest of) a request head */
	D_SEND, /* sending an answer */
};

enum pump_result {
	P_DONE, /* the answer is out */
	P_WAIT, /* the socket is full: wait for EPOLLOUT */
	P_FAIL, /* the connection failed */
};

struct dthread;

struct dconn {
	struct dconn *prev, *next;   /* the thread's connections */
	struct dconn *sprev, *snext; /* the thread's answers being sent, oldest progress first */
	struct dthread *t;
	struct dh_guard_conn *guard;
	int fd;
	uint8_t state;
	bool in_ready;    /* input arrived that no peek has seen */
	bool hup;         /* the peer shut down its side (or the guard cut the connection) */
	bool close_after; /* close once the answer is out */
	bool sending_listed;
	bool use_sendfile;
	bool own_fd;
	uint8_t partial_peeks; /* peeks of the current head that found it incomplete */
	int64_t progress_ms;
	/* the answer being sent: the rest of its head, then its body */
	char *out;
	uint32_t out_len, out_off;
	bool out_owned;
	const char *data;
	int file_fd;
	uint64_t off, left, sent;
	void (*release)(void *);
	void *cls;
	void (*on_done)(uint64_t sent, void *cls);
	void *done_cls;
	socklen_t peer_len;
	struct sockaddr_in6 peer; /* large enough for an IPv4 address too */
};

struct dthread {
	pthread_t id;
	bool started;
	int ep, wake;
	struct dconn *conns;
	struct dconn *slow_first, *slow_last;
	int64_t next_tick_ms, accept_paused_until;
	time_t date_sec;
	char date[40];
	struct dh_answer answer;
	char in[DH_HEAD_MAX];
	char out[DH_ANSWER_HEAD_MAX + DH_DIRECT_OUT_EXTRA];
};

static struct dthread *threads;
static unsigned nthreads;
static int listen_fd = -1;
static struct MHD_Daemon *mhd;
static unsigned send_timeout_ms;
static atomic_bool stop;
static atomic_ullong n_requests, n_handoffs, n_body_bytes;
/* Guard records of connections in transit to libmicrohttpd, by descriptor. */
static _Atomic(struct dh_guard_conn *) *handoff;
static size_t handoff_len;

/* ---- answers ---- */

static void release_body(struct dh_answer *a)
{
	if (a->body == DH_BODY_COPY)
		free((void *)a->data);
	if (a->own_fd && a->fd >= 0)
		close(a->fd);
	if (a->release)
		a->release(a->cls);
}

void dh_answer_reset(struct dh_answer *a)
{
	release_body(a);
	a->status = 0;
	a->head_len = 0;
	a->head_overflow = false;
	a->body = DH_BODY_NONE;
	a->data = NULL;
	a->fd = -1;
	a->own_fd = false;
	a->off = a->len = 0;
	a->release = NULL;
	a->cls = NULL;
}

bool dh_answer_header(struct dh_answer *a, const char *name, const char *value)
{
	size_t n = strlen(name), v = strlen(value);

	if (n + v + 4 > sizeof(a->head) - a->head_len) {
		a->head_overflow = true;
		return false;
	}
	memcpy(a->head + a->head_len, name, n);
	memcpy(a->head + a->head_len + n, ": ", 2);
	memcpy(a->head + a->head_len + n + 2, value, v);
	memcpy(a->head + a->head_len + n + 2 + v, "\r\n", 2);
	a->head_len += n + v + 4;
	return true;
}

enum dh_err dh_answer_copy(struct dh_answer *a, unsigned status, const char *text, size_t len)
{
	char *copy = malloc(len ? len : 1);

	if (!copy)
		return DH_E_NOMEM;
	memcpy(copy, text, len);
	dh_answer_reset(a);
	a->status = status;
	a->body = DH_BODY_COPY;
	a->data = copy;
	a->len = len;
	return DH_OK;
}

void dh_answer_bytes(struct dh_answer *a, unsigned status, const void *data, size_t len,
		     void (*release)(void *), void *cls)
{
	dh_answer_reset(a);
	a->status = status;
	a->body = DH_BODY_BYTES;
	a->data = data;
	a->len = len;
	a->release = release;
	a->cls = cls;
}

void dh_answer_file(struct dh_answer *a, unsigned status, int fd, bool own_fd, const void *data,
		    uint64_t off, uint64_t len, void (*release)(void *), void *cls)
{
	dh_answer_reset(a);
	a->status = status;
	a->body = DH_BODY_FILE;
	a->fd = fd;
	a->own_fd = own_fd;
	a->data = data;
	a->off = off;
	a->len = len;
	a->release = release;
	a->cls = cls;
}

/* ---- connections ---- */

static void slow_remove(struct dconn *c)
{
	struct dthread *t = c->t;

	if (!c->sending_listed)
		return;
	if (c->sprev)
		c->sprev->snext = c->snext;
	else
		t->slow_first = c->snext;
	if (c->snext)
		c->snext->sprev = c->sprev;
	else
		t->slow_last = c->sprev;
	c->sprev = c->snext = NULL;
	c->sending_listed = false;
}

/* The answer made progress (or started): to the end of the list, the newest. */
static void slow_touch(struct dconn *c, int64_t now)
{
	struct dthread *t = c->t;

	c->progress_ms = now;
	if (c->sending_listed && t->slow_last == c)
		return;
	slow_remove(c);
	c->sprev = t->slow_last;
	if (t->slow_last)
		t->slow_last->snext = c;
	else
		t->slow_first = c;
	t->slow_last = c;
	c->sending_listed = true;
}

/* Ends the answer in progress, if any: accounting, then its body is released. */
static void answer_end(struct dconn *c)
{
	if (c->state != D_SEND)
		return;
	slow_remove(c);
	atomic_fetch_add_explicit(&n_body_bytes, c->sent, memory_order_relaxed);
	if (c->on_done)
		c->on_done(c->sent, c->done_cls);
	c->on_done = NULL;
	if (c->own_fd && c->file_fd >= 0)
		close(c->file_fd);
	if (c->release)
		c->release(c->cls);
	c->release = NULL;
	if (c->out_owned)
		free(c->out);
	c->out = NULL;
	c->out_owned = false;
	c->file_fd = -1;
	c->own_fd = false;
	c->data = NULL;
	c->left = c->sent = 0;
	c->state = D_HEAD;
}

static void conn_unlink(struct dconn *c)
{
	struct dthread *t = c->t;

	if (c->prev)
		c->prev->next = c->next;
	else
		t->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

static void conn_close(struct dconn *c)
{
	answer_end(c);
	conn_unlink(c);
	/* unread bytes (a pipelined request after a closing answer) would reset the answer:
	 * the guard drains them from a duplicate, which keeps the socket in this epoll set */
	if (dh_guard_close_lingering(c->guard))
		epoll_ctl(c->t->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd); /* also takes it out of the epoll */
	free(c);
}

/* Gives the connection to libmicrohttpd with its unread bytes; it stays there. */
static void hand_off(struct dconn *c)
{
	int fd = c->fd;
	struct dh_guard_conn *g = c->guard;

	epoll_ctl(c->t->ep, EPOLL_CTL_DEL, fd, NULL);
	conn_unlink(c);
	if ((size_t)fd < handoff_len)
		atomic_store(&handoff[fd], g);
	else
		dh_guard_close(g); /* cannot happen: the table covers every descriptor */
	atomic_fetch_add_explicit(&n_handoffs, 1, memory_order_relaxed);
	/*
	 * On failure (out of memory: the guard keeps libmicrohttpd within its connection limit)
	 * libmicrohttpd has closed the socket, and the record comes back here. Should another
	 * thread have accepted a connection on the same descriptor number meanwhile and handed
	 * it over too, one record would be lost: counted open, never closed.
	 */
	if (MHD_add_connection(mhd, fd, (const struct sockaddr *)&c->peer, c->peer_len) !=
		    MHD_YES &&
	    (size_t)fd < handoff_len)
		dh_guard_close(atomic_exchange(&handoff[fd], NULL));
	free(c);
}

struct dh_guard_conn *dh_direct_take_guard(int fd)
{
	if (!handoff || fd < 0 || (size_t)fd >= handoff_len)
		return NULL;
	return atomic_exchange(&handoff[fd], NULL);
}

void dh_direct_forget_handoffs(void)
{
	for (size_t i = 0; handoff && i < handoff_len; i++)
		dh_guard_close(atomic_exchange(&handoff[i], NULL));
	free(handoff);
	handoff = NULL;
	handoff_len = 0;
}

/* ---- sending ---- */

static enum pump_result pump(struct dconn *c, int64_t now)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		size_t head = c->out_len - c->out_off;
		if (c->left && !c->use_sendfile) {
			/* head and a body from memory in one call */
			struct iovec iov[2] = { { c->out + c->out_off, head },
						{ (void *)(c->data + c->off), (size_t)c->left } };
			n = writev(c->fd, iov, 2);
		} else {
			/* MSG_MORE: the head leaves with the body's first segment */
			n = send(c->fd, c->out + c->out_off, head,
				 MSG_NOSIGNAL | (c->left ? MSG_MORE : 0));
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? P_WAIT : P_FAIL;
		}
		slow_touch(c, now);
		if ((size_t)n <= head) {
			c->out_off += (uint32_t)n;
			continue;
		}
		c->out_off = c->out_len;
		c->off += (uint64_t)n - head;
		c->left -= (uint64_t)n - head;
		c->sent += (uint64_t)n - head;
	}
	while (c->left) {
		size_t want = c->left < DH_DIRECT_SEND_MAX ? (size_t)c->left : DH_DIRECT_SEND_MAX;
		if (c->use_sendfile) {
			off_t o = (off_t)c->off;
			n = sendfile(c->fd, c->file_fd, &o, want);
		} else {
			n = send(c->fd, c->data + c->off, want, MSG_NOSIGNAL);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? P_WAIT : P_FAIL;
		}
		if (n == 0)
			return P_FAIL; /* the file is shorter than it was said to be */
		slow_touch(c, now);
		c->off += (uint64_t)n;
		c->left -= (uint64_t)n;
		c->sent += (uint64_t)n;
	}
	return P_DONE;
}

/*
 * The socket did not take the whole answer: keep the rest of its head, which may still be in
 * the thread's buffer (the next answer reuses it). False when out of memory.
 */
static bool keep_head(struct dconn *c)
{
	size_t rest = c->out_len - c->out_off;
	char *copy;

	if (c->out_owned || rest == 0)
		return true;
	copy = malloc(rest);
	if (!copy)
		return false;
	memcpy(copy, c->out + c->out_off, rest);
	c->out = copy;
	c->out_len = (uint32_t)rest;
	c->out_off = 0;
	c->out_owned = true;
	return true;
}

/* ---- the head of an answer ---- */

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

static char *put_u64(char *p, unsigned long long v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n", made once a second per thread. */
static const char *date_line(struct dthread *t)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t now = time(NULL);
	struct tm tm;
	int n;

	if (now == t->date_sec)
		return t->date;
	if (!gmtime_r(&now, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
	    tm.tm_mon > 11)
		return "";
	n = snprintf(t->date, sizeof(t->date), "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
		     days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
		     tm.tm_min, tm.tm_sec);
	if (n < 0 || (size_t)n >= sizeof(t->date))
		return "";
	t->date_sec = now;
	return t->date;
}

/*
 * Starts sending the answer req built: the head as libmicrohttpd writes it (status line,
 * Date, Connection when closing, our headers, Content-Length last), then the body, whose
 * ownership moves from the answer to the connection.
 */
static void answer_start(struct dconn *c, struct dh_req *req, int64_t now)
{
	struct dthread *t = c->t;
	struct dh_answer *a = &t->answer;
	const char *reason = MHD_get_reason_phrase_for(a->status), *date = date_line(t);
	uint64_t len = a->body == DH_BODY_NONE ? 0 : a->len;
	char *p = t->out;

	p = put(p, "HTTP/1.1 ", 9);
	p = put_u64(p, a->status);
	*p++ = ' ';
	p = put(p, reason, strnlen(reason, 64));
	p = put(p, "\r\n", 2);
	p = put(p, date, strlen(date));
	if (c->close_after)
		p = put(p, "Connection: close\r\n", 19);
	p = put(p, a->head, a->head_len);
	p = put(p, "X-Request-Id: ", 14);
	p = put(p, req->id, strnlen(req->id, DH_REQ_ID_LEN - 1));
	p = put(p, "\r\nContent-Length: ", 18);
	p = put_u64(p, len);
	p = put(p, "\r\n\r\n", 4);

	c->state = D_SEND;
	c->out = t->out;
	c->out_len = (uint32_t)(p - t->out);
	c->out_off = 0;
	c->out_owned = false;
	c->on_done = req->on_done;
	c->done_cls = req->on_done_cls;
	req->on_done = NULL;
	c->data = a->data;
	c->file_fd = a->body == DH_BODY_FILE ? a->fd : -1;
	c->own_fd = a->own_fd;
	c->off = a->off;
	c->left = req->method == DH_HEAD ? 0 : len;
	c->sent = 0;
	c->use_sendfile = c->file_fd >= 0 && (len >= DH_DIRECT_SENDFILE_MIN || !a->data);
	c->release = a->release;
	c->cls = a->cls;
	if (a->body == DH_BODY_COPY) {
		c->release = free;
		c->cls = (void *)a->data;
	}
	/* the connection owns the body now */
	a->body = DH_BODY_NONE;
	a->release = NULL;
	a->own_fd = false;
	a->data = NULL;
	dh_answer_reset(a);
	slow_touch(c, now);
}

/* ---- requests ---- */

/*
 * Runs the request whose plain head h was peeked into t->in (a route of the direct path):
 * takes the head from the socket, lets http/server.c decide the answer and starts it.
 * False when the connection was closed instead.
 */
static bool serve(struct dconn *c, struct dh_head *h, int64_t now)
{
	struct dthread *t = c->t;
	struct dh_req req;
	bool refuse = false;

	/* take the head from the socket: it was peeked, so it is all there */
	if (recv(c->fd, t->in, h->len, 0) != (ssize_t)h->len ||
	    !dh_guard_head_done(c->guard, &refuse)) {
		conn_close(c); /* an error, or the guard cut it (head too late): no answer */
		return false;
	}
	/* the same bytes are back in t->in: end the target and each value with a NUL */
	((char *)h->target)[h->target_len] = 0;
	for (size_t i = 0; i < h->nfields; i++)
		((char *)h->fields[i].value)[h->fields[i].value_len] = 0;
	memset(&req, 0, sizeof(req));
	req.answer = &t->answer;
	req.head = h;
	req.sock = c->fd;
	req.method = h->method;
	req.method_name = h->method == DH_GET ? "GET" : "HEAD";
	req.path = h->target;
	req.raw_target = h->target;
	req.raw_target_len = h->target_len;
	req.begun = true;
	req.start_us = dh_now_us();
	req.guard = c->guard;
	req.close_after = h->close;
	dh_http_request_id(req.id);
	dh_answer_reset(&t->answer);
	t->answer.before_handler = false;
	dh_http_serve_direct(&req, refuse);
	c->close_after = req.close_after || t->answer.before_handler || atomic_load(&stop);
	atomic_fetch_add_explicit(&n_requests, 1, memory_order_relaxed);
	answer_start(c, &req, now);
	dh_http_release_direct(&req);
	return true;
}

/*
 * Reads the next request head. Returns true when an answer was started; false when the
 * connection waits for input, was handed to libmicrohttpd or was closed (*gone then).
 */
static bool next_request(struct dconn *c, int64_t now, bool *gone)
{
	struct dthread *t = c->t;
	struct dh_head h;
	struct dh_route_match m;
	char path[DH_HEAD_TARGET_MAX + 1];
	enum dh_head_kind kind;
	ssize_t n;

	if (!c->in_ready) {
		if (c->hup) { /* the peer shut down and everything it sent was read */
			conn_close(c);
			*gone = true;
		}
		return false;
	}
	do
		n = recv(c->fd, t->in, sizeof(t->in), MSG_PEEK);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		c->in_ready = false;
		return false;
	}
	if (n <= 0) { /* closed by the client, or an error */
		conn_close(c);
		*gone = true;
		return false;
	}
	kind = dh_head_parse(t->in, (size_t)n, &h);
	if (kind == DH_HEAD_PARTIAL && ++c->partial_peeks >= DH_DIRECT_PEEKS_MAX)
		kind = DH_HEAD_OTHER;
	if (kind == DH_HEAD_PARTIAL) {
		/* the rest comes with the next edge; a peer that shut down sends none */
		c->in_ready = false;
		if (c->hup) {
			conn_close(c);
			*gone = true;
		}
		return false;
	}
	if (kind == DH_HEAD_PLAIN) {
		memcpy(path, h.target, h.target_len);
		path[h.target_len] = 0;
		if (!dh_route_find(dh_routes, dh_routes_count, h.method, path, &m) || !m.route ||
		    !(m.route->flags & DH_ROUTE_DIRECT))
			kind = DH_HEAD_OTHER;
	}
	if (kind == DH_HEAD_OTHER) {
		hand_off(c);
		*gone = true;
		return false;
	}
	/* bytes after this head are the next request's; more may come by an edge */
	c->in_ready = (size_t)n > h.len;
	c->partial_peeks = 0;
	if (!serve(c, &h, now)) {
		*gone = true;
		return false;
	}
	return true;
}

/*
 * Moves the connection on as far as it goes without waiting: sends the answer in progress,
 * then serves the requests that are already there (pipelined ones one after the other, in
 * a loop rather than by recursion), until the socket is full or the input runs out.
 */
static void drive(struct dconn *c, int64_t now)
{
	bool gone = false;

	for (;;) {
		if (c->state == D_SEND) {
			enum pump_result r = pump(c, now);
			if (r == P_WAIT) {
				if (!keep_head(c))
					conn_close(c);
				return;
			}
			if (r == P_FAIL) {
				conn_close(c);
				return;
			}
			answer_end(c);
			if (c->close_after) {
				conn_close(c);
				return;
			}
			dh_guard_request_done(c->guard);
		}
		if (!next_request(c, now, &gone))
			return;
	}
}

static void on_event(struct dconn *c, uint32_t ev, int64_t now)
{
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->in_ready = true;
	if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->hup = true;
	/* while an answer is sent only output (or an error) moves it on */
	if (c->state == D_SEND && !(ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)))
		return;
	drive(c, now);
}

/* ---- accepting ---- */

static void accept_some(struct dthread *t, int64_t now)
{
	for (int i = 0; i < DH_DIRECT_ACCEPTS; i++) {
		struct sockaddr_in6 peer;
		socklen_t plen = sizeof(peer);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };
		struct dconn *c;
		struct dh_guard_conn *guard;
		int one = 1;
		int fd = accept4(listen_fd, (struct sockaddr *)&peer, &plen,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				dh_warn("http.accept",
					"errno=%d detail=\"out of descriptors or memory; "
					"accepting again in %d ms\"",
					errno, DH_DIRECT_ACCEPT_PAUSE_MS);
				epoll_ctl(t->ep, EPOLL_CTL_DEL, listen_fd, NULL);
				t->accept_paused_until = now + DH_DIRECT_ACCEPT_PAUSE_MS;
			}
			return; /* EAGAIN: another thread took it; ECONNABORTED and the like: gone
				 */
		}
		guard = dh_guard_admit(fd, (const struct sockaddr *)&peer, false);
		c = guard ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			/* refused, or out of memory: without a record it would escape every
			 * limit */
			dh_guard_close(guard);
			close(fd);
			continue;
		}
		c->t = t;
		c->fd = fd;
		c->file_fd = -1;
		c->peer = peer;
		c->peer_len = plen;
		c->guard = guard;
		/* answers leave whole (writev, MSG_MORE): Nagle would only hold their last segment
		 */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		ev.data.ptr = c;
		if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			dh_guard_close(c->guard);
			close(fd);
			free(c);
			continue;
		}
		c->next = t->conns;
		if (t->conns)
			t->conns->prev = c;
		t->conns = c;
		/* input that came before the accept is reported by the epoll_ctl above */
	}
}

static bool listen_add(struct dthread *t)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = NULL };

	return epoll_ctl(t->ep, EPOLL_CTL_ADD, listen_fd, &ev) == 0;
}

/* Once a tick: answers without progress for send_timeout_ms are cut (libmicrohttpd's
 * connection timeout for its own answers), and a paused accept resumes. */
static void tick(struct dthread *t, int64_t now)
{
	while (t->slow_first && now - t->slow_first->progress_ms >= (int64_t)send_timeout_ms)
		conn_close(t->slow_first);
	if (t->accept_paused_until && now >= t->accept_paused_until) {
		t->accept_paused_until = 0;
		if (!listen_add(t))
			t->accept_paused_until = now + DH_DIRECT_ACCEPT_PAUSE_MS;
	}
	t->next_tick_ms = now + DH_DIRECT_TICK_MS;
}

static void *thread_main(void *arg)
{
	struct dthread *t = arg;
	struct epoll_event evs[DH_DIRECT_EVENTS];

	t->next_tick_ms = dh_mono_ms() + DH_DIRECT_TICK_MS;
	while (!atomic_load(&stop)) {
		int n = epoll_wait(t->ep, evs, DH_DIRECT_EVENTS, DH_DIRECT_TICK_MS);
		int64_t now = dh_mono_ms();

		for (int i = 0; i < n && !atomic_load(&stop); i++) {
			if (evs[i].data.ptr == NULL)
				accept_some(t, now);
			else if (evs[i].data.ptr != (void *)t)
				on_event(evs[i].data.ptr, evs[i].events, now);
		}
		if (now >= t->next_tick_ms)
			tick(t, now);
	}
	while (t->conns)
		conn_close(t->conns);
	dh_db_thread_close();
	return NULL;
}

/* ---- start and stop ---- */

static void free_threads(void)
{
	for (unsigned i = 0; i < nthreads; i++) {
		if (threads[i].ep >= 0)
			close(threads[i].ep);
		if (threads[i].wake >= 0)
			close(threads[i].wake);
	}
	free(threads);
	threads = NULL;
	nthreads = 0;
}

enum dh_err dh_direct_start(int fd, unsigned n, struct MHD_Daemon *daemon, unsigned timeout_s,
			    struct dh_error *err)
{
	struct rlimit rl;

	listen_fd = fd;
	mhd = daemon;
	send_timeout_ms = timeout_s * 1000;
	atomic_store(&stop, false);
	/* a slot per possible descriptor: the table is touched only where descriptors are */
	handoff_len = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
			      ? (size_t)rl.rlim_cur
			      : 1048576;
	handoff = calloc(handoff_len, sizeof(*handoff));
	threads = calloc(n ? n : 1, sizeof(*threads));
	if (!handoff || !threads) {
		free(handoff);
		handoff = NULL;
		free(threads);
		threads = NULL;
		return dh_error_set(err, DH_E_NOMEM, "No memory for the HTTP threads");
	}
	nthreads = n ? n : 1;
	for (unsigned i = 0; i < nthreads; i++)
		threads[i].ep = threads[i].wake = -1;
	for (unsigned i = 0; i < nthreads; i++) {
		struct dthread *t = &threads[i];
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = t };
		t->ep = epoll_create1(EPOLL_CLOEXEC);
		t->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		t->answer.fd = -1;
		if (t->ep < 0 || t->wake < 0 ||
		    epoll_ctl(t->ep, EPOLL_CTL_ADD, t->wake, &ev) != 0 || !listen_add(t))
			goto fail;
	}
	for (unsigned i = 0; i < nthreads; i++) {
		if (pthread_create(&threads[i].id, NULL, thread_main, &threads[i]) != 0)
			goto fail;
		threads[i].started = true;
	}
	return DH_OK;
fail:
	dh_direct_stop();
	return dh_error_set(err, DH_E_INTERNAL, "Cannot start the HTTP threads");
}

void dh_direct_stop(void)
{
	atomic_store(&stop, true);
	for (unsigned i = 0; i < nthreads; i++) {
		uint64_t one = 1;
		if (threads[i].wake >= 0 && write(threads[i].wake, &one, sizeof(one)) < 0)
			dh_debug("http.direct_wake", "errno=%d", errno);
	}
	for (unsigned i = 0; i < nthreads; i++) {
		if (threads[i].started)
			pthread_join(threads[i].id, NULL);
	}
	free_threads();
	if (listen_fd >= 0)
		close(listen_fd);
	listen_fd = -1;
}

void dh_direct_stats_get(struct dh_direct_stats *out)
{
	out->requests = atomic_load(&n_requests);
	out->handoffs = atomic_load(&n_handoffs);
	out->body_bytes = atomic_load(&n_body_bytes);
}
