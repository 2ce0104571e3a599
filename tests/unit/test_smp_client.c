/*
 * Unit tests of the SMP client over UDP (server/smp/client.c, udp.c) against an in-process
 * fake device thread on a loopback socket: basic operations, params fallback, v1-only peers,
 * image upload with loss, duplicates, stale answers, a device reboot mid-upload, resume of a
 * partial upload, "match": false, timeouts with retransmission, and cancellation.
 */
#include "smp/client.h"
#include "smp/transport.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define IMG_MAX (256 * 1024)

struct peer {
	int fd;
	unsigned port;
	pthread_t th;
	bool running;    /* the thread runs: the test neither sets nor reads the rest */
	atomic_int stop; /* set by the test thread, read by the peer thread */
	/* behaviour: set before peer_run (thread creation publishes it to the peer) */
	int drop_every; /* drop every Nth request */
	int dup_every;  /* send every Nth answer twice */
	bool stale;   /* precede each answer by one for a long-answered seq and one with a bad id */
	bool v1_only; /* answer with ver 0 */
	bool v2_only; /* refuse v1 requests with rc 12 */
	bool no_params;     /* rc 8 to mcumgr params */
	bool mute;          /* answer nothing */
	bool match_false;   /* final upload answer "match": false */
	uint64_t reboot_at; /* lose the upload state once the offset passes this (once) */
	unsigned buf_count;
	/* upload state */
	uint8_t img[IMG_MAX];
	uint64_t len, off;
	bool active;
	uint8_t sha[32];
	/* counters: read after peer_halt (the join publishes them to the test) */
	unsigned received, dropped, chunks;
};

struct upload_req {
	uint64_t off, len, image;
	uint8_t data[2048];
	size_t data_len;
	uint8_t sha[40];
	size_t sha_len;
};

static void answer(struct peer *p, struct sockaddr_in *from, struct dh_smp_hdr *h,
		   struct dh_smp_body *b)
{
	uint8_t out[2048];
	size_t n = 0;
	int copies = 1;

	if (p->dup_every && p->received % (unsigned)p->dup_every == 0)
		copies = 2;
	h->op++;
	h->ver = p->v1_only ? 0 : h->ver;
	if (p->stale) {
		struct dh_smp_hdr s = *h;
		struct dh_smp_body e;

		dh_smp_body_init(&e);
		dh_smp_body_put_uint(&e, "off", 0);
		s.seq = (uint8_t)(h->seq - 100);
		if (dh_smp_frame_build(&s, &e, out, sizeof(out), &n) == DH_SMP_OK)
			sendto(p->fd, out, n, 0, (struct sockaddr *)from, sizeof(*from));
		s.seq = h->seq;
		s.id = (uint8_t)(h->id + 1);
		if (dh_smp_frame_build(&s, &e, out, sizeof(out), &n) == DH_SMP_OK)
			sendto(p->fd, out, n, 0, (struct sockaddr *)from, sizeof(*from));
	}
	if (dh_smp_frame_build(h, b, out, sizeof(out), &n) != DH_SMP_OK)
		return;
	while (copies-- > 0)
		sendto(p->fd, out, n, 0, (struct sockaddr *)from, sizeof(*from));
}

static void handle_upload(struct peer *p, const cbor_item_t *root, struct dh_smp_body *b)
{
	static const struct dh_smp_field f[] = {
		{ "off", DH_SMP_F_UINT, offsetof(struct upload_req, off), 0, 0 },
		{ "len", DH_SMP_F_UINT, offsetof(struct upload_req, len), 0, 0 },
		{ "image", DH_SMP_F_UINT, offsetof(struct upload_req, image), 0, 0 },
		{ "data", DH_SMP_F_BYTES, offsetof(struct upload_req, data), 2048,
		  offsetof(struct upload_req, data_len) },
		{ "sha", DH_SMP_F_BYTES, offsetof(struct upload_req, sha), 40,
		  offsetof(struct upload_req, sha_len) },
	};
	struct upload_req *r = calloc(1, sizeof(*r));
	uint32_t present = 0;
	uint8_t digest[32];

	p->chunks++;
	if (!r || dh_smp_map_decode(root, f, 5, r, &present) != DH_SMP_OK || !(present & 1u)) {
		dh_smp_body_put_uint(b, "rc", 3);
		goto out;
	}
	if (r->off == 0) {
		if (p->active && r->sha_len == 32 && memcmp(r->sha, p->sha, 32) == 0) {
			dh_smp_body_put_uint(b, "off", p->off); /* resume */
			goto out;
		}
		if (!(present & 2u) || r->len > IMG_MAX) {
			dh_smp_body_put_uint(b, "rc", 3);
			goto out;
		}
		p->active = true;
		p->len = r->len;
		p->off = 0;
		memcpy(p->sha, r->sha, 32);
	}
	if (!p->active) {
		dh_smp_body_put_uint(b, "off", 0); /* state lost */
		goto out;
	}
	if (r->off != p->off) {
		dh_smp_body_put_uint(b, "off", p->off);
		goto out;
	}
	if (r->off + r->data_len > p->len) {
		dh_smp_body_put_uint(b, "rc", 3);
		goto out;
	}
	memcpy(p->img + p->off, r->data, r->data_len);
	p->off += r->data_len;
	dh_smp_body_put_uint(b, "off", p->off);
	if (p->off == p->len) {
		p->active = false;
		dh_smp_sha256(p->img, p->len, digest);
		dh_smp_body_put_bool(b, "match",
				     !p->match_false && memcmp(digest, p->sha, 32) == 0);
	} else if (p->reboot_at && p->off >= p->reboot_at) {
		p->reboot_at = 0;
		p->active = false;
	}
out:
	free(r);
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	uint8_t buf[4096];

	while (!atomic_load(&p->stop)) {
		struct pollfd pf = { .fd = p->fd, .events = POLLIN };
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		struct dh_smp_hdr h;
		struct dh_smp_body b;
		cbor_item_t *root = NULL;
		ssize_t n;

		if (poll(&pf, 1, 20) <= 0)
			continue;
		n = recvfrom(p->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (n <= 0)
			continue;
		p->received++;
		if (p->mute || (p->drop_every && p->received % (unsigned)p->drop_every == 0)) {
			p->dropped++;
			continue;
		}
		if (dh_smp_frame_decode(buf, (size_t)n, &h, &root) != DH_SMP_OK)
			continue;
		dh_smp_body_init(&b);
		if (p->v2_only && h.ver == 0) {
			dh_smp_body_put_uint(&b, "rc", 12);
		} else if (h.group == DH_SMP_GROUP_OS && h.id == DH_SMP_OS_ECHO) {
			struct cbor_pair *pairs = cbor_map_handle(root);
			char text[128];

			if (cbor_map_size(root) == 1 &&
			    dh_smp_cbor_text(pairs[0].value, text, sizeof(text), NULL, NULL))
				dh_smp_body_put_text(&b, "r", text);
		} else if (h.group == DH_SMP_GROUP_OS && h.id == DH_SMP_OS_PARAMS &&
			   !p->no_params) {
			dh_smp_body_put_uint(&b, "buf_size", 2048);
			dh_smp_body_put_uint(&b, "buf_count", p->buf_count);
		} else if (h.group == DH_SMP_GROUP_IMAGE && h.id == DH_SMP_IMG_UPLOAD) {
			handle_upload(p, root, &b);
		} else {
			dh_smp_body_put_uint(&b, "rc", 8);
		}
		cbor_decref(&root);
		answer(p, &from, &h, &b);
	}
	return NULL;
}

static struct peer *peer_start(void)
{
	struct peer *p = calloc(1, sizeof(*p));
	struct sockaddr_in a = { 0 };
	socklen_t al = sizeof(a);

	ck_assert_ptr_nonnull(p);
	p->buf_count = 4;
	p->fd = socket(AF_INET, SOCK_DGRAM, 0);
	ck_assert_int_ge(p->fd, 0);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(p->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(p->fd, (struct sockaddr *)&a, &al), 0);
	p->port = ntohs(a.sin_port);
	return p;
}

static void peer_run(struct peer *p)
{
	ck_assert_int_eq(pthread_create(&p->th, NULL, peer_main, p), 0);
	p->running = true;
}

static void peer_halt(struct peer *p)
{
	if (!p->running)
		return;
	atomic_store(&p->stop, 1);
	pthread_join(p->th, NULL);
	p->running = false;
}

static void peer_stop(struct peer *p)
{
	peer_halt(p);
	close(p->fd);
	free(p);
}

struct fixture {
	struct peer *p;
	struct dh_smp_transport *t;
	struct dh_smp_client *c;
	uint8_t *img;
	size_t img_len;
};

/* Opens the peer and the client; the test sets the peer's behaviour, then fixture_go. */
static void fixture_open(struct fixture *fx, const struct dh_smp_client_opts *o)
{
	char err[128];
	size_t i;

	fx->p = peer_start();
	fx->t = dh_smp_udp_open("127.0.0.1", fx->p->port, err, sizeof(err));
	ck_assert_msg(fx->t != NULL, "%s", err);
	fx->c = malloc(sizeof(*fx->c));
	ck_assert_ptr_nonnull(fx->c);
	dh_smp_client_init(fx->c, fx->t, o);
	fx->img_len = 100000;
	fx->img = malloc(fx->img_len);
	ck_assert_ptr_nonnull(fx->img);
	for (i = 0; i < fx->img_len; i++)
		fx->img[i] = (uint8_t)(i * 31 + (i >> 8));
}

static void fixture_go(struct fixture *fx)
{
	peer_run(fx->p);
}

/* Stops the peer so that the test may read its counters and the image it received. */
static void fixture_halt(struct fixture *fx)
{
	peer_halt(fx->p);
}

static void fixture_close(struct fixture *fx)
{
	peer_stop(fx->p);
	dh_smp_transport_free(fx->t);
	free(fx->c);
	free(fx->img);
}

static void check_uploaded(struct fixture *fx)
{
	fixture_halt(fx);
	ck_assert_uint_eq(fx->p->len, fx->img_len);
	ck_assert_mem_eq(fx->p->img, fx->img, fx->img_len);
}

START_TEST(basic_ops)
{
	struct fixture fx;
	struct dh_smp_params p;
	struct dh_smp_image_list l;
	char out[64];

	fixture_open(&fx, NULL);
	fixture_go(&fx);
	ck_assert_int_eq(dh_smp_echo(fx.c, "hello", out, sizeof(out)), DH_SMP_OK);
	ck_assert_str_eq(out, "hello");
	ck_assert(!fx.c->peer_v1);
	ck_assert_int_eq(dh_smp_read_params(fx.c, &p), DH_SMP_OK);
	ck_assert_uint_eq(p.buf_size, 2048);
	ck_assert_uint_eq(p.buf_count, 4);
	ck_assert(!fx.c->params_fallback);
	ck_assert_int_eq(dh_smp_image_state(fx.c, &l), DH_SMP_E_REMOTE);
	ck_assert_int_eq(fx.c->err.rc, 8);
	fixture_close(&fx);
}
END_TEST

START_TEST(params_fallback_and_v1_peer)
{
	struct fixture fx;
	struct dh_smp_params p;
	size_t first, next;
	char out[64];

	fixture_open(&fx, NULL);
	fx.p->no_params = true;
	fx.p->v1_only = true;
	fixture_go(&fx);
	ck_assert_int_eq(dh_smp_echo(fx.c, "x", out, sizeof(out)), DH_SMP_OK);
	ck_assert(fx.c->peer_v1);
	ck_assert_int_eq(dh_smp_read_params(fx.c, &p), DH_SMP_OK);
	ck_assert(fx.c->params_fallback);
	ck_assert_uint_eq(p.buf_size, 384);
	ck_assert_uint_eq(p.buf_count, 4);
	dh_smp_chunk_sizes(fx.c, &first, &next);
	ck_assert_uint_eq(first, (384 - 76) & ~3u);
	ck_assert_uint_eq(next, (384 - 26) & ~3u);
	fixture_close(&fx);
}
END_TEST

START_TEST(v1_request_to_v2_only_peer)
{
	struct fixture fx;
	char out[64];

	fixture_open(&fx, NULL);
	fx.p->v2_only = true;
	fixture_go(&fx);
	fx.c->ver = 0;
	/* rc 12 (UNSUPPORTED_TOO_OLD) switches the client to v2 and it asks again. */
	ck_assert_int_eq(dh_smp_echo(fx.c, "again", out, sizeof(out)), DH_SMP_OK);
	ck_assert_str_eq(out, "again");
	ck_assert_uint_eq(fx.c->ver, 1);
	fixture_close(&fx);
}
END_TEST

START_TEST(upload_clean)
{
	struct fixture fx;
	struct dh_smp_upload_result r;

	fixture_open(&fx, NULL);
	fixture_go(&fx);
	ck_assert_int_eq(dh_smp_upload(fx.c, fx.img, fx.img_len, 0, NULL, NULL, &r), DH_SMP_OK);
	ck_assert(r.has_match && r.match);
	ck_assert_uint_eq(r.window, 3);
	ck_assert_uint_eq(r.chunk_first, 1472 - 76);
	ck_assert_uint_eq(r.chunk_next, 1444);
	ck_assert_uint_eq(r.restarts, 0);
	check_uploaded(&fx);
	fixture_close(&fx);
}
END_TEST

static void count_progress(void *ctx, uint64_t off, uint64_t len)
{
	uint64_t *last = ctx;

	ck_assert_uint_le(off, len);
	*last = off;
}

START_TEST(upload_loss_dup_stale)
{
	struct dh_smp_client_opts o;
	struct fixture fx;
	struct dh_smp_upload_result r;
	uint64_t last = 0;

	dh_smp_client_opts_default(&o);
	o.rto_ms = 50;
	fixture_open(&fx, &o);
	fx.p->drop_every = 7;
	fx.p->dup_every = 5;
	fx.p->stale = true;
	fixture_go(&fx);
	ck_assert_int_eq(dh_smp_upload(fx.c, fx.img, fx.img_len, 0, count_progress, &last, &r),
			 DH_SMP_OK);
	ck_assert_uint_eq(last, fx.img_len);
	ck_assert(r.match);
	fixture_halt(&fx);
	ck_assert_uint_gt(fx.p->dropped, 0);
	check_uploaded(&fx);
	fixture_close(&fx);
}
END_TEST

START_TEST(upload_window_one)
{
	struct fixture fx;
	struct dh_smp_upload_result r;

	fixture_open(&fx, NULL);
	fx.p->buf_count = 2;
	fixture_go(&fx);
	ck_assert_int_eq(dh_smp_upload(fx.c, fx.img, fx.img_len, 0, NULL, NULL, &r), DH_SMP_OK);
	ck_assert_uint_eq(r.window, 1);
	check_uploaded(&fx);
	fixture_close(&fx);
}
END_TEST

START_TEST(upload_reboot_restarts)
{
	struct fixture fx;
	struct dh_smp_upload_result r;

	fixture_open(&fx, NULL);
	fx.p->reboot_at = 50000;
	fixture_go(&fx);
	ck_assert_int_eq(dh_smp_upload(fx.c, fx.img, fx.img_len, 0, NULL, NULL, &r), DH_SMP_OK);
	ck_assert_uint_eq(r.restarts, 1);
	ck_assert(r.match);
	check_uploaded(&fx);
	fixture_close(&fx);
}
END_TEST

START_TEST(upload_resumes)
{
	struct fixture fx;
	struct dh_smp_upload_result r;
	const uint64_t have = 40000;

	fixture_open(&fx, NULL);
	/* The device holds the first 40000 bytes of the same upload (same sha). */
	fx.p->active = true;
	fx.p->len = fx.img_len;
	fx.p->off = have;
	memcpy(fx.p->img, fx.img, have);
	dh_smp_sha256(fx.img, fx.img_len, fx.p->sha);
	fixture_go(&fx);
	ck_assert_int_eq(dh_smp_upload(fx.c, fx.img, fx.img_len, 0, NULL, NULL, &r), DH_SMP_OK);
	ck_assert_uint_eq(r.resumed_from, have);
	ck_assert(r.match);
	/* 1 first chunk + the rest from 40000 in 1444-byte chunks. */
	fixture_halt(&fx);
	ck_assert_uint_eq(fx.p->chunks, 1 + (fx.img_len - have + 1443) / 1444);
	check_uploaded(&fx);
	fixture_close(&fx);
}
END_TEST

START_TEST(upload_match_false)
{
	struct fixture fx;
	struct dh_smp_upload_result r;

	fixture_open(&fx, NULL);
	fx.p->match_false = true;
	fixture_go(&fx);
	ck_assert_int_eq(dh_smp_upload(fx.c, fx.img, fx.img_len, 0, NULL, NULL, &r),
			 DH_SMP_E_MISMATCH);
	ck_assert(r.has_match && !r.match);
	fixture_close(&fx);
}
END_TEST

START_TEST(timeout_retransmits)
{
	struct dh_smp_client_opts o;
	struct fixture fx;
	char out[16];

	dh_smp_client_opts_default(&o);
	/* The five retransmissions are due 310 ms in (10, 20, 40, 80, 160 ms apart): 2.7 s
	 * before the timeout, which a loaded machine's delays do not use up. */
	o.rto_ms = 10;
	o.timeout_ms = 3000;
	fixture_open(&fx, &o);
	fx.p->mute = true;
	fixture_go(&fx);
	ck_assert_int_eq(dh_smp_echo(fx.c, "x", out, sizeof(out)), DH_SMP_E_TIMEOUT);
	/* The original and 5 retransmissions of the same frame. */
	ck_assert_uint_eq(fx.c->retransmits, 5);
	fixture_halt(&fx);
	ck_assert_uint_eq(fx.p->received, 6);
	fixture_close(&fx);
}
END_TEST

START_TEST(cancel_flag)
{
	struct dh_smp_client_opts o;
	struct fixture fx;
	atomic_int cancel = 1;
	char out[16];

	dh_smp_client_opts_default(&o);
	o.cancel = &cancel;
	fixture_open(&fx, &o);
	fx.p->mute = true;
	fixture_go(&fx);
	ck_assert_int_eq(dh_smp_echo(fx.c, "x", out, sizeof(out)), DH_SMP_E_CANCELLED);
	fixture_close(&fx);
}
END_TEST

START_TEST(udp_open_errors)
{
	char err[128];

	ck_assert_ptr_null(dh_smp_udp_open("host.invalid.", 1337, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "resolve"));
	ck_assert_ptr_null(dh_smp_udp_open("127.0.0.1", 0, err, sizeof(err)));
}
END_TEST

static Suite *smp_client_suite(void)
{
	Suite *s = suite_create("smp_client");
	TCase *tc = tcase_create("udp");

	tcase_add_test(tc, basic_ops);
	tcase_add_test(tc, params_fallback_and_v1_peer);
	tcase_add_test(tc, v1_request_to_v2_only_peer);
	tcase_add_test(tc, upload_clean);
	tcase_add_test(tc, upload_loss_dup_stale);
	tcase_add_test(tc, upload_window_one);
	tcase_add_test(tc, upload_reboot_restarts);
	tcase_add_test(tc, upload_resumes);
	tcase_add_test(tc, upload_match_false);
	tcase_add_test(tc, timeout_retransmits);
	tcase_add_test(tc, cancel_flag);
	tcase_add_test(tc, udp_open_errors);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(smp_client_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
