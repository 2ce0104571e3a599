/*
 * Unit tests of SMP over a serial console (server/smp/serial.c): CRC-16/XMODEM, the framing
 * vectors V20 and V21 of SMP.md section 9 byte for byte, reassembly among console text,
 * discarding of partial and corrupt packets, and a whole client exchange over a pseudo-terminal
 * pair with a fake device thread on the master side.
 */
#include "smp/client.h"
#include "smp/transport.h"

#include <check.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const uint8_t V3[] = {
	0x0a, 0x00, 0x00, 0x09, 0x00, 0x00, 0x02, 0x00, 0xa1,
	0x61, 0x64, 0x65, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
};
static const uint8_t V9[] = {
	0x0a, 0x00, 0x00, 0x70, 0x00, 0x01, 0x05, 0x01, 0xa5, 0x65, 0x69, 0x6d, 0x61, 0x67, 0x65,
	0x00, 0x63, 0x6c, 0x65, 0x6e, 0x18, 0x58, 0x63, 0x6f, 0x66, 0x66, 0x00, 0x63, 0x73, 0x68,
	0x61, 0x58, 0x20, 0x85, 0xe3, 0x9e, 0xf7, 0xef, 0xba, 0xbb, 0x72, 0x1e, 0xd6, 0x4e, 0xc4,
	0xe0, 0x28, 0x9a, 0x60, 0xcf, 0xb3, 0xf4, 0xc7, 0xd7, 0x61, 0xfc, 0x95, 0x21, 0x21, 0xad,
	0xa8, 0x01, 0x52, 0x0b, 0xf8, 0x64, 0x64, 0x61, 0x74, 0x61, 0x58, 0x30, 0x3d, 0xb8, 0xf3,
	0x96, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x01, 0x02, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x44,
	0x65, 0x76, 0x69, 0x63, 0x65, 0x20, 0x48, 0x75, 0x62, 0x20, 0x74, 0x65, 0x73, 0x74, 0x0a,
};
static const uint8_t V20[] = {
	0x06, 0x09, 0x41, 0x42, 0x4d, 0x4b, 0x41, 0x41, 0x41, 0x4a, 0x41,
	0x41, 0x41, 0x43, 0x41, 0x4b, 0x46, 0x68, 0x5a, 0x47, 0x56, 0x6f,
	0x5a, 0x57, 0x78, 0x73, 0x62, 0x77, 0x4c, 0x4d, 0x0a,
};
static const uint8_t V21[] = {
	0x06, 0x09, 0x41, 0x48, 0x6f, 0x4b, 0x41, 0x41, 0x42, 0x77, 0x41, 0x41, 0x45, 0x46, 0x41,
	0x61, 0x56, 0x6c, 0x61, 0x57, 0x31, 0x68, 0x5a, 0x32, 0x55, 0x41, 0x59, 0x32, 0x78, 0x6c,
	0x62, 0x68, 0x68, 0x59, 0x59, 0x32, 0x39, 0x6d, 0x5a, 0x67, 0x42, 0x6a, 0x63, 0x32, 0x68,
	0x68, 0x57, 0x43, 0x43, 0x46, 0x34, 0x35, 0x37, 0x33, 0x37, 0x37, 0x71, 0x37, 0x63, 0x68,
	0x37, 0x57, 0x54, 0x73, 0x54, 0x67, 0x4b, 0x4a, 0x70, 0x67, 0x7a, 0x37, 0x50, 0x30, 0x78,
	0x39, 0x64, 0x68, 0x2f, 0x4a, 0x55, 0x68, 0x49, 0x61, 0x32, 0x6f, 0x41, 0x56, 0x49, 0x4c,
	0x2b, 0x47, 0x52, 0x6b, 0x59, 0x58, 0x52, 0x68, 0x57, 0x44, 0x41, 0x39, 0x75, 0x50, 0x4f,
	0x57, 0x41, 0x41, 0x41, 0x41, 0x41, 0x43, 0x41, 0x41, 0x41, 0x41, 0x41, 0x51, 0x41, 0x41,
	0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x0a, 0x04, 0x14, 0x41, 0x41, 0x45, 0x43, 0x41, 0x77,
	0x41, 0x45, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x45, 0x52, 0x6c, 0x64,
	0x6d, 0x6c, 0x6a, 0x5a, 0x53, 0x42, 0x49, 0x64, 0x57, 0x49, 0x67, 0x64, 0x47, 0x56, 0x7a,
	0x64, 0x41, 0x71, 0x78, 0x49, 0x77, 0x3d, 0x3d, 0x0a,
};

START_TEST(crc_check_value)
{
	ck_assert_uint_eq(dh_smp_crc16((const uint8_t *)"123456789", 9, 0), 0x31c3);
	ck_assert_uint_eq(dh_smp_crc16(V3, sizeof(V3), 0), 0x02cc);
	ck_assert_uint_eq(dh_smp_crc16(V9, sizeof(V9), 0), 0xb123);
}
END_TEST

START_TEST(encode_vectors)
{
	uint8_t out[DH_SMP_SERIAL_ENC_MAX(sizeof(V9))];
	size_t n = 0;

	ck_assert_int_eq(dh_smp_serial_encode(V3, sizeof(V3), out, sizeof(out), &n), DH_SMP_OK);
	ck_assert_uint_eq(n, sizeof(V20));
	ck_assert_mem_eq(out, V20, sizeof(V20));
	ck_assert_int_eq(dh_smp_serial_encode(V9, sizeof(V9), out, sizeof(out), &n), DH_SMP_OK);
	ck_assert_uint_eq(n, sizeof(V21));
	ck_assert_mem_eq(out, V21, sizeof(V21));
	/* The first line is exactly 127 bytes with its markers and newline. */
	ck_assert_uint_eq((size_t)((uint8_t *)memchr(out, '\n', n) - out) + 1, 127);
	ck_assert_int_eq(dh_smp_serial_encode(V9, sizeof(V9), out, 10, &n), DH_SMP_E_NOMEM);
}
END_TEST

/* Feeds bytes; returns the number of frames completed and copies the last one. */
static int feed(struct dh_smp_deframer *d, const uint8_t *p, size_t n, uint8_t *last,
		size_t *last_len)
{
	int frames = 0;
	size_t i, fl;

	for (i = 0; i < n; i++) {
		if (dh_smp_deframer_push(d, p[i], &fl)) {
			memcpy(last, d->pkt + 2, fl);
			*last_len = fl;
			frames++;
		}
	}
	return frames;
}

#define FEED_STR(d, s, last, ll) feed((d), (const uint8_t *)(s), strlen(s), (last), (ll))

START_TEST(deframe_vectors)
{
	struct dh_smp_deframer d;
	uint8_t last[DH_SMP_FRAME_MAX];
	size_t ll = 0;

	dh_smp_deframer_init(&d);
	ck_assert_int_eq(feed(&d, V20, sizeof(V20), last, &ll), 1);
	ck_assert_uint_eq(ll, sizeof(V3));
	ck_assert_mem_eq(last, V3, sizeof(V3));
	ck_assert_int_eq(feed(&d, V21, sizeof(V21), last, &ll), 1);
	ck_assert_uint_eq(ll, sizeof(V9));
	ck_assert_mem_eq(last, V9, sizeof(V9));
	ck_assert_uint_eq(d.dropped, 0);
}
END_TEST

START_TEST(deframe_among_console_text)
{
	struct dh_smp_deframer d;
	uint8_t last[DH_SMP_FRAME_MAX];
	size_t ll = 0;

	dh_smp_deframer_init(&d);
	ck_assert_int_eq(FEED_STR(&d, "*** Booting Zephyr OS ***\r\nuart:~$ ", last, &ll), 0);
	/* A frame that starts right after the prompt, without a newline. */
	ck_assert_int_eq(feed(&d, V20, sizeof(V20), last, &ll), 1);
	ck_assert_mem_eq(last, V3, sizeof(V3));
	/* Console text between the two lines of V21 is ignored. */
	ck_assert_int_eq(feed(&d, V21, 127, last, &ll), 0);
	ck_assert_int_eq(FEED_STR(&d, "[00:00:01.000,000] <inf> main: log\r\n", last, &ll), 0);
	ck_assert_int_eq(feed(&d, V21 + 127, sizeof(V21) - 127, last, &ll), 1);
	ck_assert_mem_eq(last, V9, sizeof(V9));
}
END_TEST

START_TEST(deframe_discards_partial_and_corrupt)
{
	struct dh_smp_deframer d;
	uint8_t last[DH_SMP_FRAME_MAX], bad[sizeof(V20)];
	size_t ll = 0;

	dh_smp_deframer_init(&d);
	/* First line of V21, then a new start line: the partial packet is discarded. */
	ck_assert_int_eq(feed(&d, V21, 127, last, &ll), 0);
	ck_assert_int_eq(feed(&d, V20, sizeof(V20), last, &ll), 1);
	ck_assert_mem_eq(last, V3, sizeof(V3));
	ck_assert_uint_eq(d.dropped, 1);
	/* The orphaned continuation line is ignored. */
	ck_assert_int_eq(feed(&d, V21 + 127, sizeof(V21) - 127, last, &ll), 0);

	/* One changed base64 character breaks the CRC. */
	memcpy(bad, V20, sizeof(V20));
	bad[10] = bad[10] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(feed(&d, bad, sizeof(bad), last, &ll), 0);
	/* A line with a character outside base64, or a length not a multiple of 4. */
	ck_assert_int_eq(FEED_STR(&d,
				  "\x06\x09"
				  "AB*K\n",
				  last, &ll),
			 0);
	ck_assert_int_eq(FEED_STR(&d,
				  "\x06\x09"
				  "ABC\n",
				  last, &ll),
			 0);
	/* An over-long line is dropped whole. */
	{
		uint8_t lng[400];

		lng[0] = 0x06;
		lng[1] = 0x09;
		memset(lng + 2, 'A', sizeof(lng) - 3);
		lng[sizeof(lng) - 1] = '\n';
		ck_assert_int_eq(feed(&d, lng, sizeof(lng), last, &ll), 0);
	}
	/* A length field larger than the buffer. */
	ck_assert_int_eq(FEED_STR(&d, "\x06\x09/////w==\n", last, &ll), 0);
	/* Still in sync afterwards. */
	ck_assert_int_eq(feed(&d, V20, sizeof(V20), last, &ll), 1);
}
END_TEST

START_TEST(roundtrip_sizes)
{
	static uint8_t frame[DH_SMP_FRAME_MAX];
	static uint8_t enc[DH_SMP_SERIAL_ENC_MAX(DH_SMP_FRAME_MAX)];
	static const size_t sizes[] = {
		8, 9, 10, 11, 89, 90, 91, 92, 93, 94, 500, DH_SMP_FRAME_MAX
	};
	uint8_t last[DH_SMP_FRAME_MAX];
	size_t i, j, n, ll = 0;

	for (i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(i * 7 + 3);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct dh_smp_deframer d;

		dh_smp_deframer_init(&d);
		ck_assert_int_eq(dh_smp_serial_encode(frame, sizes[i], enc, sizeof(enc), &n),
				 DH_SMP_OK);
		/* Every line fits 127 bytes. */
		for (j = 0; j < n;) {
			uint8_t *nl = memchr(enc + j, '\n', n - j);

			ck_assert_ptr_nonnull(nl);
			ck_assert_uint_le((size_t)(nl - (enc + j)) + 1, DH_SMP_SERIAL_LINE_MAX);
			j = (size_t)(nl - enc) + 1;
		}
		ck_assert_int_eq(feed(&d, enc, n, last, &ll), 1);
		ck_assert_uint_eq(ll, sizes[i]);
		ck_assert_mem_eq(last, frame, sizes[i]);
	}
}
END_TEST

/* ---- a fake device on the master side of a pty ---- */

struct fake_dev {
	int fd;
	atomic_int stop;
	atomic_int answered;
};

static void dev_write(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void *fake_dev_main(void *arg)
{
	struct fake_dev *fd = arg;
	struct dh_smp_deframer d;
	uint8_t buf[256];

	dh_smp_deframer_init(&d);
	while (!fd->stop) {
		struct pollfd p = { .fd = fd->fd, .events = POLLIN };
		ssize_t r, i;

		if (poll(&p, 1, 50) <= 0)
			continue;
		r = read(fd->fd, buf, sizeof(buf));
		if (r <= 0)
			continue;
		for (i = 0; i < r; i++) {
			struct dh_smp_hdr h;
			struct dh_smp_body b;
			cbor_item_t *root = NULL;
			uint8_t rsp[512], enc[1024], echo[64];
			size_t fl, rn = 0, en = 0;
			static const char noise[] = "\r\n[00:00:00.500,000] <inf> smp: noise\r\n";

			if (!dh_smp_deframer_push(&d, buf[i], &fl))
				continue;
			/* Decode as a request: the decoder only checks the shape. */
			if (dh_smp_frame_decode(d.pkt + 2, fl, &h, &root) != DH_SMP_OK)
				continue;
			dh_smp_body_init(&b);
			if (h.group == DH_SMP_GROUP_OS && h.id == DH_SMP_OS_ECHO) {
				struct cbor_pair *pairs = cbor_map_handle(root);

				if (cbor_map_size(root) == 1 &&
				    dh_smp_cbor_text(pairs[0].value, (char *)echo, sizeof(echo),
						     NULL, NULL))
					dh_smp_body_put_text(&b, "r", (const char *)echo);
			} else if (h.group == DH_SMP_GROUP_OS && h.id == DH_SMP_OS_PARAMS) {
				dh_smp_body_put_uint(&b, "buf_size", 384);
				dh_smp_body_put_uint(&b, "buf_count", 4);
			} else {
				dh_smp_body_put_uint(&b, "rc", 8);
			}
			cbor_decref(&root);
			h.op++;
			if (dh_smp_frame_build(&h, &b, rsp, sizeof(rsp), &rn) != DH_SMP_OK)
				continue;
			if (dh_smp_serial_encode(rsp, rn, enc, sizeof(enc), &en) != DH_SMP_OK)
				continue;
			/* Counted before the answer leaves, so the client never sees it early. */
			atomic_fetch_add(&fd->answered, 1);
			dev_write(fd->fd, (const uint8_t *)noise, sizeof(noise) - 1);
			dev_write(fd->fd, enc, en);
		}
	}
	return NULL;
}

START_TEST(client_over_pty)
{
	struct fake_dev dev = { 0 };
	struct dh_smp_transport *t = NULL;
	struct dh_smp_client *c = malloc(sizeof(*c));
	struct dh_smp_params p;
	struct dh_smp_image_list l;
	pthread_t th;
	char err[128], out[64];
	const char *slave;

	ck_assert_ptr_nonnull(c);
	dev.fd = posix_openpt(O_RDWR | O_NOCTTY);
	ck_assert_int_ge(dev.fd, 0);
	ck_assert_int_eq(grantpt(dev.fd), 0);
	ck_assert_int_eq(unlockpt(dev.fd), 0);
	slave = ptsname(dev.fd);
	ck_assert_ptr_nonnull(slave);
	t = dh_smp_serial_open(slave, 115200, err, sizeof(err));
	ck_assert_msg(t != NULL, "%s", err);
	ck_assert_int_eq(pthread_create(&th, NULL, fake_dev_main, &dev), 0);

	dh_smp_client_init(c, t, NULL);
	ck_assert_int_eq(dh_smp_echo(c, "over a pty", out, sizeof(out)), DH_SMP_OK);
	ck_assert_str_eq(out, "over a pty");
	ck_assert_int_eq(dh_smp_read_params(c, &p), DH_SMP_OK);
	ck_assert_uint_eq(p.buf_size, 384);
	/* An SMP error comes back as DH_SMP_E_REMOTE with the code. */
	ck_assert_int_eq(dh_smp_image_state(c, &l), DH_SMP_E_REMOTE);
	ck_assert_int_eq(c->err.kind, DH_SMP_ERR_MGMT);
	ck_assert_int_eq(c->err.rc, 8);
	ck_assert_int_eq(atomic_load(&dev.answered), 3);
	ck_assert_uint_eq(c->retransmits, 0);

	dev.stop = 1;
	pthread_join(th, NULL);
	dh_smp_transport_free(t);
	close(dev.fd);
	free(c);
}
END_TEST

START_TEST(open_errors)
{
	char err[128];

	ck_assert_ptr_null(dh_smp_serial_open("/nonexistent/tty", 115200, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "cannot open"));
	ck_assert_ptr_null(dh_smp_serial_open("/dev/null", 115200, err, sizeof(err)));
	ck_assert_ptr_null(dh_smp_serial_open("/dev/null", 1234, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "baud"));
}
END_TEST

static Suite *smp_serial_suite(void)
{
	Suite *s = suite_create("smp_serial");
	TCase *tc = tcase_create("framing");
	TCase *pty = tcase_create("pty");

	tcase_add_test(tc, crc_check_value);
	tcase_add_test(tc, encode_vectors);
	tcase_add_test(tc, deframe_vectors);
	tcase_add_test(tc, deframe_among_console_text);
	tcase_add_test(tc, deframe_discards_partial_and_corrupt);
	tcase_add_test(tc, roundtrip_sizes);
	tcase_add_test(pty, client_over_pty);
	tcase_add_test(pty, open_errors);
	tcase_set_timeout(pty, 30);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, pty);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(smp_serial_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
