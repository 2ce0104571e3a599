/*
 * SMP client over one transport: request/answer matching, retransmission with backoff and an
 * adaptive timeout on UDP, v1/v2 negotiation, and the operations (echo, params, image state,
 * upload, reset, shell exec). The upload keeps a go-back-N window of chunks in flight and
 * always continues from the offset the device reports (SMP.md 3.2-3.5). Owns no transport
 * and no file; dh_smp_read_file is the one helper that touches the file system.
 */
#include "smp/client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Waits are cut into slices this long so that the cancellation flag is seen promptly. */
#define WAIT_SLICE_MS 100
/* The adaptive retransmission timeout never exceeds this. */
#define RTO_MAX_MS 5000

void dh_smp_client_opts_default(struct dh_smp_client_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->timeout_ms = 3000;
	o->shell_timeout_ms = 10000;
	o->first_chunk_timeout_ms = 40000;
	o->chunk_timeout_ms = 5000;
	o->rto_ms = 250;
	o->rto_min_ms = 30;
	o->retries = 5;
	o->mtu = 0;
	o->window = 0;
	o->cancel = NULL;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dh_smp_now_ms(void)
{
	return now_ms();
}

static bool past_deadline(const struct dh_smp_client *c)
{
	return c->deadline_ms && now_ms() >= c->deadline_ms;
}

void dh_smp_client_init(struct dh_smp_client *c, struct dh_smp_transport *tr,
			const struct dh_smp_client_opts *o)
{
	uint8_t r = 0;
	int fd;

	memset(c, 0, sizeof(*c));
	c->tr = tr;
	if (o)
		c->o = *o;
	else
		dh_smp_client_opts_default(&c->o);
	c->ver = 1;
	c->srtt_ms = -1;
	c->rttvar_ms = 0;
	/* A random start keeps late answers to a previous run from matching. */
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, &r, 1) != 1)
			r = (uint8_t)now_ms();
		close(fd);
	} else {
		r = (uint8_t)now_ms();
	}
	c->seq = r;
}

static bool is_cancelled(const struct dh_smp_client *c)
{
	return c->o.cancel && atomic_load(c->o.cancel);
}

static int cur_rto(const struct dh_smp_client *c)
{
	int v;

	if (c->srtt_ms < 0)
		return (int)c->o.rto_ms;
	v = c->srtt_ms + 4 * c->rttvar_ms;
	if (v < (int)c->o.rto_min_ms)
		v = (int)c->o.rto_min_ms;
	if (v > RTO_MAX_MS)
		v = RTO_MAX_MS;
	return v;
}

/* Jacobson/Karels smoothing; only answers to frames sent once are sampled (Karn). */
static void rtt_sample(struct dh_smp_client *c, int64_t ms)
{
	int r = ms > RTO_MAX_MS ? RTO_MAX_MS : (int)ms;

	if (c->srtt_ms < 0) {
		c->srtt_ms = r;
		c->rttvar_ms = r / 2;
		return;
	}
	c->rttvar_ms = (3 * c->rttvar_ms + abs(c->srtt_ms - r)) / 4;
	c->srtt_ms = (7 * c->srtt_ms + r) / 8;
}

static bool matches(const uint8_t *f, size_t n, const struct dh_smp_hdr *req)
{
	struct dh_smp_hdr h;

	if (!dh_smp_hdr_decode(f, n, &h))
		return false;
	return h.op == req->op + 1 && h.group == req->group && h.id == req->id && h.seq == req->seq;
}

static size_t frame_cap(const struct dh_smp_client *c)
{
	size_t cap = DH_SMP_FRAME_MAX;

	if (c->tr->path_max && c->tr->path_max < cap)
		cap = c->tr->path_max;
	return cap;
}

/* Sends frame and waits for the answer matching req; the answer is left in c->rx. */
static enum dh_smp_status exchange(struct dh_smp_client *c, const uint8_t *frame, size_t n,
				   const struct dh_smp_hdr *req, unsigned timeout_ms,
				   bool retransmit, size_t *rn)
{
	bool retx = retransmit && c->tr->lossy;
	int64_t start = now_ms(), end = start + timeout_ms, next;
	int rto = retx ? cur_rto(c) : (int)timeout_ms;
	unsigned attempt = 0;
	enum dh_smp_status st;

	next = start + rto < end ? start + rto : end;
	st = c->tr->ops->send(c->tr, frame, n);
	if (st != DH_SMP_OK)
		return st;
	for (;;) {
		int64_t now = now_ms(), wait;

		if (is_cancelled(c))
			return DH_SMP_E_CANCELLED;
		if (past_deadline(c))
			return DH_SMP_E_TIMEOUT;
		if (now >= next) {
			if (now >= end || !retx || attempt >= c->o.retries)
				return DH_SMP_E_TIMEOUT;
			attempt++;
			c->retransmits++;
			rto *= 2;
			/* After the last retransmission, wait out the whole timeout. */
			next = now + rto < end && attempt < c->o.retries ? now + rto : end;
			st = c->tr->ops->send(c->tr, frame, n);
			if (st != DH_SMP_OK)
				return st;
			continue;
		}
		wait = next - now < WAIT_SLICE_MS ? next - now : WAIT_SLICE_MS;
		st = c->tr->ops->recv(c->tr, c->rx, sizeof(c->rx), rn, (int)wait);
		if (st == DH_SMP_E_TIMEOUT)
			continue;
		if (st != DH_SMP_OK)
			return st;
		if (!matches(c->rx, *rn, req))
			continue; /* late answer or duplicate of an answered seq */
		if (attempt == 0 && retx)
			rtt_sample(c, now_ms() - start);
		return DH_SMP_OK;
	}
}

enum dh_smp_status dh_smp_request(struct dh_smp_client *c, uint8_t op, uint16_t group, uint8_t id,
				  const struct dh_smp_body *b, unsigned timeout_ms, bool retransmit,
				  bool is_shell, cbor_item_t **root)
{
	int tries;

	*root = NULL;
	memset(&c->err, 0, sizeof(c->err));
	for (tries = 0; tries < 2; tries++) {
		struct dh_smp_hdr h = { .op = op, .ver = c->ver, .group = group, .id = id };
		struct dh_smp_hdr rh;
		struct dh_smp_err e;
		cbor_item_t *it = NULL;
		enum dh_smp_status st;
		size_t n = 0, rn = 0;

		h.seq = c->seq++;
		st = dh_smp_frame_build(&h, b, c->tx, frame_cap(c), &n);
		if (st != DH_SMP_OK)
			return st;
		st = exchange(c, c->tx, n, &h, timeout_ms, retransmit, &rn);
		if (st != DH_SMP_OK)
			return st;
		st = dh_smp_frame_decode(c->rx, rn, &rh, &it);
		if (st != DH_SMP_OK)
			return st;
		if (h.ver == 1 && rh.ver == 0)
			c->peer_v1 = true;
		if (dh_smp_body_error(it, is_shell, &e)) {
			cbor_decref(&it);
			/* A v2-only server refuses v1 with rc 12: switch and ask again. */
			if (e.kind == DH_SMP_ERR_MGMT && e.rc == DH_SMP_MGMT_TOO_OLD &&
			    c->ver == 0) {
				c->ver = 1;
				continue;
			}
			c->err = e;
			return DH_SMP_E_REMOTE;
		}
		*root = it;
		return DH_SMP_OK;
	}
	return DH_SMP_E_PROTO;
}

enum dh_smp_status dh_smp_echo(struct dh_smp_client *c, const char *text, char *out, size_t cap)
{
	struct dh_smp_body b;
	cbor_item_t *root = NULL;
	enum dh_smp_status st;

	dh_smp_body_init(&b);
	dh_smp_body_put_text(&b, "d", text);
	st = dh_smp_request(c, DH_SMP_OP_WRITE, DH_SMP_GROUP_OS, DH_SMP_OS_ECHO, &b,
			    c->o.timeout_ms, true, false, &root);
	if (st != DH_SMP_OK)
		goto out;
	st = dh_smp_dec_echo(root, out, cap);
out:
	if (root)
		cbor_decref(&root);
	return st;
}

enum dh_smp_status dh_smp_read_params(struct dh_smp_client *c, struct dh_smp_params *p)
{
	struct dh_smp_body b;
	cbor_item_t *root = NULL;
	enum dh_smp_status st;

	dh_smp_body_init(&b);
	st = dh_smp_request(c, DH_SMP_OP_READ, DH_SMP_GROUP_OS, DH_SMP_OS_PARAMS, &b,
			    c->o.timeout_ms, true, false, &root);
	if (st == DH_SMP_E_REMOTE && c->err.kind == DH_SMP_ERR_MGMT &&
	    c->err.rc == DH_SMP_MGMT_ENOTSUP) {
		c->params.buf_size = DH_SMP_DEFAULT_BUF_SIZE;
		c->params.buf_count = DH_SMP_DEFAULT_BUF_COUNT;
		c->params_fallback = true;
		c->have_params = true;
		st = DH_SMP_OK;
		goto out;
	}
	if (st != DH_SMP_OK)
		goto out;
	st = dh_smp_dec_params(root, &c->params);
	if (st == DH_SMP_OK)
		c->have_params = true;
out:
	if (st == DH_SMP_OK && p)
		*p = c->params;
	if (root)
		cbor_decref(&root);
	return st;
}

enum dh_smp_status dh_smp_image_state(struct dh_smp_client *c, struct dh_smp_image_list *l)
{
	struct dh_smp_body b;
	cbor_item_t *root = NULL;
	enum dh_smp_status st;

	dh_smp_body_init(&b);
	st = dh_smp_request(c, DH_SMP_OP_READ, DH_SMP_GROUP_IMAGE, DH_SMP_IMG_STATE, &b,
			    c->o.timeout_ms, true, false, &root);
	if (st != DH_SMP_OK)
		goto out;
	st = dh_smp_dec_image_state(root, l);
out:
	if (root)
		cbor_decref(&root);
	return st;
}

enum dh_smp_status dh_smp_reset(struct dh_smp_client *c, bool force)
{
	struct dh_smp_body b;
	cbor_item_t *root = NULL;
	enum dh_smp_status st;

	dh_smp_body_init(&b);
	if (force)
		dh_smp_body_put_bool(&b, "force", true);
	st = dh_smp_request(c, DH_SMP_OP_WRITE, DH_SMP_GROUP_OS, DH_SMP_OS_RESET, &b,
			    c->o.timeout_ms, true, false, &root);
	if (root)
		cbor_decref(&root);
	return st;
}

enum dh_smp_status dh_smp_shell_exec(struct dh_smp_client *c, const char *const *argv, size_t argc,
				     bool idempotent, struct dh_smp_shell_rsp *r)
{
	struct dh_smp_body b;
	cbor_item_t *root = NULL;
	enum dh_smp_status st;

	if (argc == 0 || argc > DH_SMP_ARGV_MAX)
		return DH_SMP_E_INVALID;
	dh_smp_body_init(&b);
	dh_smp_body_put_text_array(&b, "argv", argv, argc);
	st = dh_smp_request(c, DH_SMP_OP_WRITE, DH_SMP_GROUP_SHELL, DH_SMP_SHELL_EXEC, &b,
			    c->o.shell_timeout_ms, idempotent, true, &root);
	if (st != DH_SMP_OK)
		goto out;
	st = dh_smp_dec_shell(root, r);
out:
	if (root)
		cbor_decref(&root);
	return st;
}

void dh_smp_chunk_sizes(const struct dh_smp_client *c, size_t *first, size_t *next)
{
	uint64_t f = c->have_params ? c->params.buf_size : DH_SMP_DEFAULT_BUF_SIZE;

	if (c->tr->kind == DH_SMP_TR_SERIAL)
		f = f > DH_SMP_SERIAL_OVERHEAD ? f - DH_SMP_SERIAL_OVERHEAD : 0;
	if (c->tr->path_max && f > c->tr->path_max)
		f = c->tr->path_max;
	if (c->o.mtu && f > c->o.mtu)
		f = c->o.mtu;
	if (f > DH_SMP_FRAME_MAX)
		f = DH_SMP_FRAME_MAX;
	/* Multiples of 4 are kind to flash drivers (SMP.md 3.4). */
	*first = f > DH_SMP_UPLOAD_FIRST_OVERHEAD ? (size_t)(f - DH_SMP_UPLOAD_FIRST_OVERHEAD) & ~3u
						  : 0;
	*next = f > DH_SMP_UPLOAD_NEXT_OVERHEAD ? (size_t)(f - DH_SMP_UPLOAD_NEXT_OVERHEAD) & ~3u
						: 0;
}

/* One upload request in flight. */
struct inflight {
	uint8_t seq;
	uint64_t off;
	size_t len;
	bool first;
	int64_t start, end, next;
	int rto;
	unsigned attempts;
};

struct upload {
	struct dh_smp_client *c;
	const uint8_t *data;
	size_t total;
	uint32_t image;
	uint8_t sha[DH_SMP_SHA_LEN];
	struct inflight q[DH_SMP_WINDOW_MAX];
	size_t nq;
};

static enum dh_smp_status send_chunk(struct upload *u, struct inflight *e)
{
	struct dh_smp_client *c = u->c;
	struct dh_smp_chunk ch = { 0 };
	size_t n = 0;
	enum dh_smp_status st;

	ch.off = e->off;
	ch.data = u->data + e->off;
	ch.data_len = e->len;
	ch.is_first = e->first;
	ch.image = u->image;
	ch.total_len = u->total;
	ch.sha = u->sha;
	st = dh_smp_enc_upload(c->ver, e->seq, &ch, c->tx, frame_cap(c), &n);
	if (st != DH_SMP_OK)
		return st;
	return c->tr->ops->send(c->tr, c->tx, n);
}

static enum dh_smp_status queue_chunk(struct upload *u, uint64_t off, size_t first_sz,
				      size_t next_sz)
{
	struct dh_smp_client *c = u->c;
	struct inflight *e = &u->q[u->nq];
	bool retx = c->tr->lossy;
	size_t want;
	unsigned timeout;

	memset(e, 0, sizeof(*e));
	e->first = off == 0;
	want = e->first ? first_sz : next_sz;
	e->off = off;
	e->len = u->total - off < want ? u->total - off : want;
	e->seq = c->seq++;
	e->start = now_ms();
	timeout = e->first ? c->o.first_chunk_timeout_ms : c->o.chunk_timeout_ms;
	e->end = e->start + timeout;
	/*
	 * The first chunk may start a long slot erase; retransmitting it meanwhile is harmless
	 * (same sha: the device answers with its current offset), and the last retransmission
	 * waits out the whole first-chunk timeout.
	 */
	e->rto = retx ? cur_rto(c) : (int)timeout;
	e->next = e->start + e->rto < e->end ? e->start + e->rto : e->end;
	u->nq++;
	return send_chunk(u, e);
}

/* Drops entries 0..k-1 of the queue (they were acknowledged). */
static void dequeue(struct upload *u, size_t k)
{
	memmove(u->q, u->q + k, (u->nq - k) * sizeof(u->q[0]));
	u->nq -= k;
}

enum dh_smp_status dh_smp_upload(struct dh_smp_client *c, const uint8_t *data, size_t len,
				 uint32_t image, dh_smp_progress_fn cb, void *cb_ctx,
				 struct dh_smp_upload_result *res)
{
	struct upload *u = NULL;
	struct dh_smp_upload_result r = { 0 };
	size_t first_sz, next_sz, i;
	uint64_t next_off = 0;
	unsigned window;
	bool seen_first = false;
	enum dh_smp_status st = DH_SMP_OK;
	unsigned long retx0 = c->retransmits;

	memset(&c->err, 0, sizeof(c->err));
	if (len == 0 || len > DH_SMP_IMAGE_MAX)
		return DH_SMP_E_INVALID;
	if (!c->have_params) {
		st = dh_smp_read_params(c, NULL);
		if (st != DH_SMP_OK)
			return st;
	}
	dh_smp_chunk_sizes(c, &first_sz, &next_sz);
	if (first_sz < 32 || next_sz == 0)
		return DH_SMP_E_INVALID;
	/* Each request and its answer hold one device buffer each: at most buf_count - 1. */
	window = c->params.buf_count > 1 ? (unsigned)(c->params.buf_count - 1 > DH_SMP_WINDOW_MAX
							      ? DH_SMP_WINDOW_MAX
							      : c->params.buf_count - 1)
					 : 1;
	if (c->o.window && c->o.window < window)
		window = c->o.window;
	u = calloc(1, sizeof(*u));
	if (!u)
		return DH_SMP_E_NOMEM;
	u->c = c;
	u->data = data;
	u->total = len;
	u->image = image;
	dh_smp_sha256(data, len, u->sha);
	r.chunk_first = first_sz;
	r.chunk_next = next_sz;
	r.window = window;
	if (cb)
		cb(cb_ctx, 0, len);

	for (;;) {
		struct dh_smp_upload_rsp ur;
		struct dh_smp_hdr rh;
		struct inflight *e = NULL;
		cbor_item_t *root = NULL;
		int64_t now, wake;
		size_t rn = 0;

		if (is_cancelled(c)) {
			st = DH_SMP_E_CANCELLED;
			goto out;
		}
		if (past_deadline(c)) {
			st = DH_SMP_E_TIMEOUT;
			goto out;
		}
		/* The first chunk travels alone: its answer says where to go on (resume). */
		while (u->nq < window && next_off < len && !(u->nq > 0 && u->q[0].first)) {
			st = queue_chunk(u, next_off, first_sz, next_sz);
			if (st != DH_SMP_OK)
				goto out;
			next_off += u->q[u->nq - 1].len;
		}
		now = now_ms();
		wake = now + WAIT_SLICE_MS;
		for (i = 0; i < u->nq; i++) {
			struct inflight *q = &u->q[i];

			if (now >= q->next) {
				if (now >= q->end || !c->tr->lossy || q->attempts >= c->o.retries) {
					st = DH_SMP_E_TIMEOUT;
					goto out;
				}
				q->attempts++;
				c->retransmits++;
				q->rto *= 2;
				q->next = now + q->rto < q->end && q->attempts < c->o.retries
						  ? now + q->rto
						  : q->end;
				st = send_chunk(u, q);
				if (st != DH_SMP_OK)
					goto out;
			}
			if (q->next < wake)
				wake = q->next;
		}
		st = c->tr->ops->recv(c->tr, c->rx, sizeof(c->rx), &rn,
				      wake > now ? (int)(wake - now) : 0);
		if (st == DH_SMP_E_TIMEOUT) {
			st = DH_SMP_OK;
			continue;
		}
		if (st != DH_SMP_OK)
			goto out;
		for (i = 0; i < u->nq; i++) {
			struct dh_smp_hdr req = { .op = DH_SMP_OP_WRITE,
						  .group = DH_SMP_GROUP_IMAGE,
						  .id = DH_SMP_IMG_UPLOAD,
						  .seq = u->q[i].seq };

			if (matches(c->rx, rn, &req)) {
				e = &u->q[i];
				break;
			}
		}
		if (!e)
			continue; /* late, duplicate, or for a chunk already given up */
		if (e->attempts == 0 && c->tr->lossy)
			rtt_sample(c, now_ms() - e->start);
		st = dh_smp_frame_decode(c->rx, rn, &rh, &root);
		if (st != DH_SMP_OK)
			goto out;
		if (rh.ver == 0 && c->ver == 1)
			c->peer_v1 = true;
		if (dh_smp_body_error(root, false, &c->err)) {
			cbor_decref(&root);
			st = DH_SMP_E_REMOTE;
			goto out;
		}
		st = dh_smp_dec_upload(root, &ur);
		cbor_decref(&root);
		if (st != DH_SMP_OK)
			goto out;
		if (ur.off > len) {
			st = DH_SMP_E_PROTO;
			goto out;
		}
		if (e->first && !seen_first) {
			seen_first = true;
			r.resumed_from = ur.off;
		}
		if (ur.off == len) {
			r.has_match = ur.has_match;
			r.match = ur.match;
			if (cb)
				cb(cb_ctx, len, len);
			st = ur.has_match && !ur.match ? DH_SMP_E_MISMATCH : DH_SMP_OK;
			goto out;
		}
		if (ur.off == 0) {
			/* The device lost the upload state (reboot, erase, other client). */
			if (++r.restarts > DH_SMP_UPLOAD_RESTARTS_MAX) {
				st = DH_SMP_E_PROTO;
				goto out;
			}
			u->nq = 0;
			next_off = 0;
			if (cb)
				cb(cb_ctx, 0, len);
			continue;
		}
		/* Cumulative: an answer that ends a queued chunk acknowledges all before it. */
		for (i = 0; i < u->nq; i++) {
			if (u->q[i].off + u->q[i].len == ur.off)
				break;
		}
		if (i < u->nq) {
			dequeue(u, i + 1);
		} else {
			/* Go back to where the device is; answers to the dropped chunks are
			 * ignored. */
			u->nq = 0;
			next_off = ur.off;
		}
		if (cb)
			cb(cb_ctx, ur.off, len);
	}
out:
	r.retransmits = c->retransmits - retx0;
	if (res)
		*res = r;
	free(u);
	return st;
}

enum dh_smp_status dh_smp_read_file(const char *path, uint8_t **data, size_t *len, char *errbuf,
				    size_t errcap)
{
	struct stat sb;
	uint8_t *buf = NULL;
	size_t done = 0;
	enum dh_smp_status st = DH_SMP_E_IO;
	int fd;

	*data = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(errbuf, errcap, "cannot open %s: %s", path, strerror(errno));
		return DH_SMP_E_IO;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		snprintf(errbuf, errcap, "%s is not a regular file", path);
		goto out;
	}
	if (sb.st_size <= 0 || (uint64_t)sb.st_size > DH_SMP_IMAGE_MAX) {
		snprintf(errbuf, errcap, "%s: size %lld outside 1..%u bytes", path,
			 (long long)sb.st_size, DH_SMP_IMAGE_MAX);
		st = DH_SMP_E_INVALID;
		goto out;
	}
	buf = malloc((size_t)sb.st_size);
	if (!buf) {
		snprintf(errbuf, errcap, "out of memory for %s", path);
		st = DH_SMP_E_NOMEM;
		goto out;
	}
	while (done < (size_t)sb.st_size) {
		ssize_t r = read(fd, buf + done, (size_t)sb.st_size - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(errbuf, errcap, "cannot read %s: %s", path,
				 r < 0 ? strerror(errno) : "file shrank");
			goto out;
		}
		done += (size_t)r;
	}
	*data = buf;
	*len = done;
	buf = NULL;
	st = DH_SMP_OK;
out:
	free(buf);
	close(fd);
	return st;
}
