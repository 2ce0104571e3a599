/*
 * dh-fleet: the load client of scripts/bench's fleet mode. It plays a fleet of devices on
 * slow links: N keep-alive HTTP/1.1 connections, each downloading one URL again and again
 * and reading it at a fixed byte rate through one small buffer, as a device with a small
 * receive window would. One epoll loop per process handles thousands of connections;
 * reads are paced by a timer wheel of 1 ms slots. It checks every byte against the
 * expected image and prints one JSON line of totals, its own CPU time included, so that
 * the driver can tell whether the client kept up. A benchmark tool: built, never installed.
 *
 * Usage: dh-fleet --url http://HOST:PORT/PATH --clients N --rate BYTES_PER_S --seconds S
 *        [--header "Name: value"]... [--expect FILE] [--buffer B] [--rcvbuf B] [--ramp S]
 *        [--sources K] [--procs P] [--stall S] [--requests N]
 *
 * --requests N: each client downloads N times, then keeps its connection open and idle
 * until the end (for measuring what an idle keep-alive connection costs the server).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Timer wheel: 1 ms slots; a deadline further out than the wheel waits in its slot and is
 * put back until it is due. 8192 slots cover the longest pause between two reads (a 4 KiB
 * buffer at 1 KiB/s is 4 s). */
#define WHEEL_SLOTS 8192
/* A response head longer than this is a protocol failure (devicehubd's and nginx's are
 * under 400 bytes). */
#define HEAD_MAX 1024
/* Request text: the request line, Host and the extra headers. */
#define REQ_MAX     2048
#define MAX_HEADERS 8
/* Largest read buffer accepted by --buffer. */
#define BUF_MAX (1024 * 1024)
/* A failed connection is opened again after this pause, as a device would retry. */
#define RETRY_MS 1000
/* Longest wait for a connect or a response head before the attempt counts as failed. */
#define HEAD_TIMEOUT_MS 30000

enum state {
	C_IDLE,       /* waiting in the wheel for its (re)connect time */
	C_CONNECTING, /* non-blocking connect in progress */
	C_HEAD,       /* request sent, reading the response head */
	C_BODY,       /* reading the body at the paced rate */
	C_PARKED,     /* done (--requests): connected and idle until the end */
};

struct conn {
	struct conn *prev, *next; /* wheel slot list */
	int64_t due_ms;           /* wheel deadline; -1 when not in the wheel */
	int fd;
	int index;
	enum state st;
	bool readable;    /* an edge said data is there and no read has seen EAGAIN since */
	bool waiting;     /* wanted data and found none: waiting for the server */
	bool stall_noted; /* this wait already counted as a stall */
	bool close_after; /* the answer said Connection: close */
	int64_t t0_ms;    /* the current request's send time: the pacing origin */
	int64_t wait_ms;  /* start of the current wait for data */
	unsigned done;    /* downloads completed */
	uint64_t body_len, body_got;
	size_t head_len;
	char head[HEAD_MAX];
};

struct stats {
	uint64_t bytes, downloads, requests, connects;
	uint64_t fail_connect, fail_status, fail_closed, fail_mismatch, fail_proto, fail_timeout;
	uint64_t stalls;
	uint64_t open_max, parked;
	double max_wait_s, max_lag_s, cpu_s, wall_s;
};

static struct {
	char host[256];
	unsigned port;
	char path[1024];
	const char *headers[MAX_HEADERS];
	int nheaders;
	unsigned clients, procs, sources, requests;
	uint64_t rate;
	double seconds, ramp, stall;
	size_t buffer;
	int rcvbuf;
	const char *expect_path;
} opt = { .procs = 1, .buffer = 4096, .rcvbuf = 16384, .ramp = 5, .stall = 10 };

static const unsigned char *expect; /* the image every answer must equal, or NULL */
static size_t expect_len;
static char request[REQ_MAX];
static size_t request_len;
static struct sockaddr_in dest;

static struct conn *conns;
static unsigned nconns;
static int ep;
static struct conn *wheel[WHEEL_SLOTS];
static int64_t wheel_now; /* every slot up to this ms has been run */
static unsigned char *rbuf;
static struct stats st;
static uint64_t open_now;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *msg)
{
	fprintf(stderr, "dh-fleet: %s\n", msg);
	exit(2);
}

/* ---- the wheel ---- */

static void wheel_del(struct conn *c)
{
	struct conn **slot;

	if (c->due_ms < 0)
		return;
	slot = &wheel[c->due_ms & (WHEEL_SLOTS - 1)];
	if (c->prev)
		c->prev->next = c->next;
	else
		*slot = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	c->due_ms = -1;
}

static void wheel_add(struct conn *c, int64_t due)
{
	struct conn **slot;

	wheel_del(c);
	if (due <= wheel_now)
		due = wheel_now + 1;
	c->due_ms = due;
	slot = &wheel[due & (WHEEL_SLOTS - 1)];
	c->prev = NULL;
	c->next = *slot;
	if (*slot)
		(*slot)->prev = c;
	*slot = c;
}

/* ---- connections ---- */

static void conn_close(struct conn *c, bool reset)
{
	if (c->fd >= 0) {
		if (reset) {
			struct linger l = { 1, 0 };
			setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		}
		close(c->fd);
		c->fd = -1;
		open_now--;
	}
	c->st = C_IDLE;
	c->readable = c->waiting = c->stall_noted = c->close_after = false;
}

/* A failed attempt: counted by the caller; the connection is opened again later. */
static void conn_fail(struct conn *c, int64_t now)
{
	conn_close(c, true);
	wheel_add(c, now + RETRY_MS);
}

static void conn_open(struct conn *c, int64_t now)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
				  .data.ptr = c };
	int one = 1;

	if (fd < 0) {
		st.fail_connect++;
		wheel_add(c, now + RETRY_MS);
		return;
	}
	if (opt.rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opt.rcvbuf, sizeof(opt.rcvbuf));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (opt.sources > 0) {
		/* spread the connections over 127.0.0.1..K so that ports never run out */
		struct sockaddr_in src = { .sin_family = AF_INET };
		src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(c->index % (int)opt.sources));
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
			close(fd);
			st.fail_connect++;
			wheel_add(c, now + RETRY_MS);
			return;
		}
	}
	if (connect(fd, (struct sockaddr *)&dest, sizeof(dest)) != 0 && errno != EINPROGRESS) {
		close(fd);
		st.fail_connect++;
		wheel_add(c, now + RETRY_MS);
		return;
	}
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		die("epoll_ctl failed");
	c->fd = fd;
	c->st = C_CONNECTING;
	c->t0_ms = now;
	open_now++;
	if (open_now > st.open_max)
		st.open_max = open_now;
	st.connects++;
	wheel_add(c, now + HEAD_TIMEOUT_MS);
}

static void send_request(struct conn *c, int64_t now)
{
	ssize_t n = send(c->fd, request, request_len, MSG_NOSIGNAL);

	if (n != (ssize_t)request_len) { /* a fresh socket takes 2 KiB at once */
		st.fail_proto++;
		conn_fail(c, now);
		return;
	}
	st.requests++;
	c->st = C_HEAD;
	c->t0_ms = now;
	c->head_len = 0;
	c->body_len = c->body_got = 0;
	c->waiting = c->stall_noted = false;
	wheel_add(c, now + HEAD_TIMEOUT_MS);
}

/* Parses the head in c->head[0..end); false on anything but a 200 with a length. */
static bool parse_head(struct conn *c, size_t end)
{
	char *p = c->head, *line, *eol;
	bool have_len = false;

	if (end < 12 ||
	    (strncmp(p, "HTTP/1.1 200", 12) != 0 && strncmp(p, "HTTP/1.0 200", 12) != 0))
		return false;
	c->close_after = strncmp(p, "HTTP/1.0", 8) == 0;
	line = strstr(p, "\r\n");
	while (line && line + 2 < p + end) {
		line += 2;
		eol = strstr(line, "\r\n");
		if (!eol || eol == line)
			break;
		if (strncasecmp(line, "Content-Length:", 15) == 0) {
			char *e;
			c->body_len = strtoull(line + 15, &e, 10);
			have_len = e != line + 15;
		} else if (strncasecmp(line, "Connection:", 11) == 0) {
			const char *v = line + 11;
			while (*v == ' ')
				v++;
			c->close_after = strncasecmp(v, "close", 5) == 0;
		}
		line = eol;
	}
	return have_len;
}

/* Body bytes arrived: check them against the image and count them. */
static bool take_body(struct conn *c, const unsigned char *data, size_t n)
{
	if (n > c->body_len - c->body_got) {
		st.fail_proto++; /* more than the Content-Length said */
		return false;
	}
	if (expect && (c->body_len != expect_len || memcmp(data, expect + c->body_got, n) != 0)) {
		st.fail_mismatch++;
		return false;
	}
	c->body_got += n;
	st.bytes += n;
	return true;
}

/* When the pacing allows the next read of want bytes: the first buffer at once, then the
 * rate. */
static int64_t read_time(const struct conn *c, uint64_t want)
{
	uint64_t need = c->body_got + want;

	if (need <= opt.buffer)
		return c->t0_ms;
	return c->t0_ms + (int64_t)((need - opt.buffer) * 1000 / opt.rate);
}

static void download_done(struct conn *c, int64_t now)
{
	st.downloads++;
	if (opt.requests && ++c->done >= opt.requests && !c->close_after) {
		c->st = C_PARKED;
		wheel_del(c);
		return;
	}
	if (c->close_after) {
		conn_close(c, false);
		conn_open(c, now);
		return;
	}
	send_request(c, now);
}

/* Reads what the pacing allows now; schedules the next read or waits for an edge. */
static void pump(struct conn *c, int64_t now)
{
	while (c->st == C_HEAD || c->st == C_BODY) {
		uint64_t want = opt.buffer;
		ssize_t n;

		if (c->st == C_BODY) {
			uint64_t left = c->body_len - c->body_got;
			int64_t t;
			if (left == 0) {
				download_done(c, now);
				continue;
			}
			if (left < want)
				want = left;
			t = read_time(c, want);
			if (t > now) {
				wheel_add(c, t);
				return;
			}
		}
		if (!c->readable) {
			if (!c->waiting) {
				c->waiting = true;
				c->wait_ms = now;
			}
			if (c->st == C_BODY)
				wheel_del(c); /* the edge wakes it; housekeeping notes stalls */
			return;
		}
		n = recv(c->fd, rbuf, want, 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->readable = false;
			continue;
		}
		if (n <= 0) {
			st.fail_closed++;
			conn_fail(c, now);
			return;
		}
		if (c->waiting) {
			double w = (double)(now - c->wait_ms) / 1000.0;
			if (w > st.max_wait_s)
				st.max_wait_s = w;
			if (w > opt.stall && !c->stall_noted)
				st.stalls++;
			c->waiting = c->stall_noted = false;
		}
		if (c->st == C_HEAD) {
			size_t prev = c->head_len, room = HEAD_MAX - 1 - prev;
			size_t take = (size_t)n < room ? (size_t)n : room, off;
			char *end;
			memcpy(c->head + prev, rbuf, take);
			c->head_len += take;
			c->head[c->head_len] = 0;
			end = strstr(c->head, "\r\n\r\n");
			if (!end) {
				if (c->head_len >= HEAD_MAX - 1) {
					st.fail_proto++;
					conn_fail(c, now);
					return;
				}
				continue;
			}
			if (!parse_head(c, (size_t)(end + 4 - c->head))) {
				st.fail_status++;
				conn_fail(c, now);
				return;
			}
			c->st = C_BODY;
			wheel_del(c);
			/* the rest of this read is body (the terminator ends after prev) */
			off = (size_t)(end + 4 - c->head) - prev;
			if ((size_t)n > off && !take_body(c, rbuf + off, (size_t)n - off)) {
				conn_fail(c, now);
				return;
			}
			continue;
		}
		if (!take_body(c, rbuf, (size_t)n)) {
			conn_fail(c, now);
			return;
		}
	}
}

static void on_event(struct conn *c, uint32_t ev, int64_t now)
{
	if (c->fd < 0)
		return;
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->readable = true;
	if (c->st == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || (ev & (EPOLLERR | EPOLLHUP))) {
			st.fail_connect++;
			conn_fail(c, now);
			return;
		}
		send_request(c, now);
	}
	if (c->st == C_HEAD || (c->st == C_BODY && c->waiting))
		pump(c, now);
	else if (c->st == C_PARKED && c->readable) {
		/* an idle connection hears nothing until the end: a close or stray bytes fail */
		char b;
		ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->readable = false;
			return;
		}
		st.fail_closed++;
		conn_fail(c, now);
	}
}

static void on_timer(struct conn *c, int64_t now)
{
	switch (c->st) {
	case C_IDLE:
		conn_open(c, now);
		break;
	case C_CONNECTING:
	case C_HEAD:
		st.fail_timeout++;
		conn_fail(c, now);
		break;
	case C_BODY:
		pump(c, now);
		break;
	case C_PARKED:
		break;
	}
}

static void wheel_run(int64_t now)
{
	int64_t steps = now - wheel_now;

	if (steps > WHEEL_SLOTS)
		steps = WHEEL_SLOTS; /* a whole turn visits every slot */
	for (int64_t i = 1; i <= steps; i++) {
		struct conn **slot = &wheel[(wheel_now + i) & (WHEEL_SLOTS - 1)];
		struct conn *c = *slot, *due = NULL;
		/* take the due entries off first: handlers add to slots, this one included */
		while (c) {
			struct conn *next = c->next;
			if (c->due_ms <= now) {
				wheel_del(c);
				c->next = due;
				due = c;
			}
			c = next;
		}
		while (due) {
			c = due;
			due = c->next;
			c->next = NULL;
			on_timer(c, now);
		}
	}
	wheel_now = now;
}

/* Once a second: waits longer than --stall count as stalls (once per wait). */
static void housekeeping(int64_t now)
{
	for (unsigned i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];
		if (c->waiting && !c->stall_noted &&
		    now - c->wait_ms > (int64_t)(opt.stall * 1000)) {
			c->stall_noted = true;
			st.stalls++;
		}
	}
}

/* How far behind its schedule each running download is at the end. */
static void final_lag(int64_t now)
{
	for (unsigned i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];
		double lag, w;
		if (c->st != C_BODY || c->body_got < opt.buffer)
			continue;
		lag = (double)(now - read_time(c, 0)) / 1000.0;
		if (lag > st.max_lag_s)
			st.max_lag_s = lag;
		if (c->waiting) {
			w = (double)(now - c->wait_ms) / 1000.0;
			if (w > st.max_wait_s)
				st.max_wait_s = w;
		}
	}
}

static void run(unsigned first, unsigned count)
{
	struct epoll_event evs[512];
	int64_t start = now_ms(), end = start + (int64_t)(opt.seconds * 1000),
		next_hk = start + 1000;
	struct rusage ru;

	nconns = count;
	conns = calloc(count ? count : 1, sizeof(*conns));
	rbuf = malloc(opt.buffer);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || !rbuf || ep < 0)
		die("out of memory");
	wheel_now = start;
	for (unsigned i = 0; i < count; i++) {
		struct conn *c = &conns[i];
		c->fd = -1;
		c->due_ms = -1;
		c->index = (int)(first + i);
		/* connections open evenly over the ramp */
		wheel_add(c, start + 1 + (int64_t)(opt.ramp * 1000 * (first + i) / opt.clients));
	}
	for (;;) {
		int64_t now = now_ms(), timeout;
		int n;
		if (now >= end)
			break;
		timeout = 1;
		n = epoll_wait(ep, evs, 512, (int)timeout);
		now = now_ms();
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events, now);
		wheel_run(now);
		if (now >= next_hk) {
			housekeeping(now);
			next_hk = now + 1000;
		}
	}
	final_lag(now_ms());
	for (unsigned i = 0; i < count; i++) {
		if (conns[i].st == C_PARKED)
			st.parked++;
		conn_close(&conns[i], true);
	}
	getrusage(RUSAGE_SELF, &ru);
	st.cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		   (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	st.wall_s = (double)(now_ms() - start) / 1000.0;
}

static void parse_url(const char *url)
{
	const char *p, *slash, *colon;
	size_t hl;

	if (strncmp(url, "http://", 7) != 0)
		die("--url must start with http://");
	p = url + 7;
	slash = strchr(p, '/');
	if (!slash)
		slash = p + strlen(p);
	colon = memchr(p, ':', (size_t)(slash - p));
	hl = (size_t)((colon ? colon : slash) - p);
	if (hl == 0 || hl >= sizeof(opt.host))
		die("bad host in --url");
	memcpy(opt.host, p, hl);
	opt.host[hl] = 0;
	opt.port = colon ? (unsigned)strtoul(colon + 1, NULL, 10) : 80;
	snprintf(opt.path, sizeof(opt.path), "%s", *slash ? slash : "/");
	dest.sin_family = AF_INET;
	dest.sin_port = htons((uint16_t)opt.port);
	if (inet_pton(AF_INET, opt.host, &dest.sin_addr) != 1)
		die("--url needs an IPv4 address as host");
}

static void build_request(void)
{
	int n = snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: %s:%u\r\n", opt.path,
			 opt.host, opt.port);

	for (int i = 0; i < opt.nheaders && n > 0 && (size_t)n < sizeof(request); i++)
		n += snprintf(request + n, sizeof(request) - (size_t)n, "%s\r\n", opt.headers[i]);
	if (n > 0 && (size_t)n < sizeof(request))
		n += snprintf(request + n, sizeof(request) - (size_t)n, "\r\n");
	if (n <= 0 || (size_t)n >= sizeof(request))
		die("request too long");
	request_len = (size_t)n;
}

static void load_expect(void)
{
	struct stat sb;
	int fd;

	if (!opt.expect_path)
		return;
	fd = open(opt.expect_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) != 0 || sb.st_size <= 0)
		die("cannot read --expect");
	expect_len = (size_t)sb.st_size;
	expect = mmap(NULL, expect_len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (expect == MAP_FAILED)
		die("cannot map --expect");
}

static double num(const char *s)
{
	char *e;
	double v = strtod(s, &e);

	if (e == s || *e || v < 0)
		die("bad number");
	return v;
}

static void add(struct stats *a, const struct stats *b)
{
	a->bytes += b->bytes;
	a->downloads += b->downloads;
	a->requests += b->requests;
	a->connects += b->connects;
	a->fail_connect += b->fail_connect;
	a->fail_status += b->fail_status;
	a->fail_closed += b->fail_closed;
	a->fail_mismatch += b->fail_mismatch;
	a->fail_proto += b->fail_proto;
	a->fail_timeout += b->fail_timeout;
	a->stalls += b->stalls;
	a->open_max += b->open_max;
	a->parked += b->parked;
	a->max_wait_s = a->max_wait_s > b->max_wait_s ? a->max_wait_s : b->max_wait_s;
	a->max_lag_s = a->max_lag_s > b->max_lag_s ? a->max_lag_s : b->max_lag_s;
	a->cpu_s += b->cpu_s;
	a->wall_s = a->wall_s > b->wall_s ? a->wall_s : b->wall_s;
}

int main(int argc, char **argv)
{
	const char *url = NULL;
	struct stats total = { 0 };
	double busiest = 0;
	pid_t *kids;
	int *pipes;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			die("every option takes a value");
		i++;
		if (strcmp(a, "--url") == 0)
			url = v;
		else if (strcmp(a, "--header") == 0 && opt.nheaders < MAX_HEADERS)
			opt.headers[opt.nheaders++] = v;
		else if (strcmp(a, "--clients") == 0)
			opt.clients = (unsigned)num(v);
		else if (strcmp(a, "--rate") == 0)
			opt.rate = (uint64_t)num(v);
		else if (strcmp(a, "--seconds") == 0)
			opt.seconds = num(v);
		else if (strcmp(a, "--ramp") == 0)
			opt.ramp = num(v);
		else if (strcmp(a, "--buffer") == 0)
			opt.buffer = (size_t)num(v);
		else if (strcmp(a, "--rcvbuf") == 0)
			opt.rcvbuf = (int)num(v);
		else if (strcmp(a, "--sources") == 0)
			opt.sources = (unsigned)num(v);
		else if (strcmp(a, "--procs") == 0)
			opt.procs = (unsigned)num(v);
		else if (strcmp(a, "--stall") == 0)
			opt.stall = num(v);
		else if (strcmp(a, "--requests") == 0)
			opt.requests = (unsigned)num(v);
		else if (strcmp(a, "--expect") == 0)
			opt.expect_path = v;
		else
			die("unknown option (see the comment at the top of dh-fleet.c)");
	}
	if (!url || !opt.clients || !opt.rate || opt.seconds <= 0)
		die("--url, --clients, --rate and --seconds are required");
	if (opt.buffer == 0 || opt.buffer > BUF_MAX || opt.procs == 0 || opt.procs > opt.clients)
		die("bad --buffer or --procs");
	parse_url(url);
	build_request();
	load_expect();
	signal(SIGPIPE, SIG_IGN);
	kids = calloc(opt.procs, sizeof(*kids));
	pipes = calloc(opt.procs, sizeof(*pipes));
	if (!kids || !pipes)
		die("out of memory");
	for (unsigned p = 0; p < opt.procs; p++) {
		int fds[2];
		unsigned first = (unsigned)((uint64_t)opt.clients * p / opt.procs);
		unsigned last = (unsigned)((uint64_t)opt.clients * (p + 1) / opt.procs);
		if (pipe(fds) != 0)
			die("pipe failed");
		kids[p] = fork();
		if (kids[p] < 0)
			die("fork failed");
		if (kids[p] == 0) {
			close(fds[0]);
			run(first, last - first);
			if (write(fds[1], &st, sizeof(st)) != (ssize_t)sizeof(st))
				_exit(1);
			_exit(0);
		}
		close(fds[1]);
		pipes[p] = fds[0];
	}
	for (unsigned p = 0; p < opt.procs; p++) {
		struct stats s;
		int status;
		if (read(pipes[p], &s, sizeof(s)) != (ssize_t)sizeof(s))
			die("a worker process died");
		waitpid(kids[p], &status, 0);
		if (s.wall_s > 0 && s.cpu_s / s.wall_s > busiest)
			busiest = s.cpu_s / s.wall_s;
		add(&total, &s);
	}
	printf("{\"clients\": %u, \"rate\": %" PRIu64 ", \"seconds\": %.1f, \"procs\": %u, "
	       "\"bytes\": %" PRIu64 ", \"downloads\": %" PRIu64 ", \"requests\": %" PRIu64
	       ", \"connects\": %" PRIu64 ", \"open_max\": %" PRIu64 ", \"fail_connect\": %" PRIu64
	       ", \"fail_status\": %" PRIu64 ", \"fail_closed\": %" PRIu64
	       ", \"fail_mismatch\": %" PRIu64 ", \"fail_proto\": %" PRIu64
	       ", \"fail_timeout\": %" PRIu64 ", \"stalls\": %" PRIu64 ", \"parked\": %" PRIu64
	       ", \"max_wait_s\": %.2f, \"max_lag_s\": %.2f, \"cpu_s\": %.2f, \"wall_s\": %.2f, "
	       "\"busiest_proc\": %.3f}\n",
	       opt.clients, opt.rate, opt.seconds, opt.procs, total.bytes, total.downloads,
	       total.requests, total.connects, total.open_max, total.fail_connect,
	       total.fail_status, total.fail_closed, total.fail_mismatch, total.fail_proto,
	       total.fail_timeout, total.stalls, total.parked, total.max_wait_s, total.max_lag_s,
	       total.cpu_s, total.wall_s, busiest);
	return 0;
}
