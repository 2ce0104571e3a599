/*
 * Unit tests of the SMP frame codec (server/smp/smp.c): every request vector of SMP.md
 * section 9 is re-encoded byte for byte, every response vector is decoded, and malformed
 * frames are refused. The vectors are copied here so the test reads no outside file.
 */
#include "smp/smp.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t IMAGE[] = {
	0x3d, 0xb8, 0xf3, 0x96, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x44, 0x65, 0x76, 0x69, 0x63, 0x65, 0x20, 0x48, 0x75, 0x62, 0x20, 0x74, 0x65,
	0x73, 0x74, 0x0a, 0x07, 0x69, 0x28, 0x00, 0x10, 0x00, 0x20, 0x00, 0x8b, 0xf0, 0xd0, 0x14,
	0x77, 0x74, 0xba, 0x1f, 0x4f, 0xb2, 0x35, 0x8a, 0x8d, 0x6c, 0xe6, 0xf0, 0xa2, 0x56, 0x41,
	0xb8, 0x5b, 0x10, 0x70, 0x19, 0xf6, 0x5b, 0x1c, 0xcb, 0xfb, 0x69, 0x83, 0xf2,
};
static const uint8_t V1[] = {
	0x02, 0x00, 0x00, 0x09, 0x00, 0x00, 0x01, 0x00, 0xa1,
	0x61, 0x64, 0x65, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
};
static const uint8_t V2[] = {
	0x03, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01, 0x00, 0xbf,
	0x61, 0x72, 0x65, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0xff,
};
static const uint8_t V3[] = {
	0x0a, 0x00, 0x00, 0x09, 0x00, 0x00, 0x02, 0x00, 0xa1,
	0x61, 0x64, 0x65, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
};
static const uint8_t V4[] = {
	0x0b, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x02, 0x00, 0xbf,
	0x61, 0x72, 0x65, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0xff,
};
static const uint8_t V5[] = {
	0x08, 0x00, 0x00, 0x01, 0x00, 0x00, 0x03, 0x06, 0xa0,
};
static const uint8_t V6[] = {
	0x09, 0x00, 0x00, 0x19, 0x00, 0x00, 0x03, 0x06, 0xbf, 0x68, 0x62,
	0x75, 0x66, 0x5f, 0x73, 0x69, 0x7a, 0x65, 0x19, 0x08, 0x00, 0x69,
	0x62, 0x75, 0x66, 0x5f, 0x63, 0x6f, 0x75, 0x6e, 0x74, 0x04, 0xff,
};
static const uint8_t V7[] = {
	0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x04, 0x00, 0xa0,
};
static const uint8_t V8[] = {
	0x01, 0x00, 0x00, 0xf6, 0x00, 0x01, 0x04, 0x00, 0xbf, 0x66, 0x69, 0x6d, 0x61, 0x67, 0x65,
	0x73, 0x9f, 0xbf, 0x64, 0x73, 0x6c, 0x6f, 0x74, 0x00, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69,
	0x6f, 0x6e, 0x65, 0x31, 0x2e, 0x30, 0x2e, 0x30, 0x64, 0x68, 0x61, 0x73, 0x68, 0x58, 0x20,
	0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
	0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
	0xaa, 0xaa, 0x68, 0x62, 0x6f, 0x6f, 0x74, 0x61, 0x62, 0x6c, 0x65, 0xf5, 0x67, 0x70, 0x65,
	0x6e, 0x64, 0x69, 0x6e, 0x67, 0xf4, 0x69, 0x63, 0x6f, 0x6e, 0x66, 0x69, 0x72, 0x6d, 0x65,
	0x64, 0xf5, 0x66, 0x61, 0x63, 0x74, 0x69, 0x76, 0x65, 0xf5, 0x69, 0x70, 0x65, 0x72, 0x6d,
	0x61, 0x6e, 0x65, 0x6e, 0x74, 0xf4, 0xff, 0xbf, 0x64, 0x73, 0x6c, 0x6f, 0x74, 0x01, 0x67,
	0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x67, 0x31, 0x2e, 0x32, 0x2e, 0x33, 0x2e, 0x34,
	0x64, 0x68, 0x61, 0x73, 0x68, 0x58, 0x20, 0x8b, 0xf0, 0xd0, 0x14, 0x77, 0x74, 0xba, 0x1f,
	0x4f, 0xb2, 0x35, 0x8a, 0x8d, 0x6c, 0xe6, 0xf0, 0xa2, 0x56, 0x41, 0xb8, 0x5b, 0x10, 0x70,
	0x19, 0xf6, 0x5b, 0x1c, 0xcb, 0xfb, 0x69, 0x83, 0xf2, 0x68, 0x62, 0x6f, 0x6f, 0x74, 0x61,
	0x62, 0x6c, 0x65, 0xf5, 0x67, 0x70, 0x65, 0x6e, 0x64, 0x69, 0x6e, 0x67, 0xf4, 0x69, 0x63,
	0x6f, 0x6e, 0x66, 0x69, 0x72, 0x6d, 0x65, 0x64, 0xf4, 0x66, 0x61, 0x63, 0x74, 0x69, 0x76,
	0x65, 0xf4, 0x69, 0x70, 0x65, 0x72, 0x6d, 0x61, 0x6e, 0x65, 0x6e, 0x74, 0xf4, 0xff, 0xff,
	0x6b, 0x73, 0x70, 0x6c, 0x69, 0x74, 0x53, 0x74, 0x61, 0x74, 0x75, 0x73, 0x00, 0xff,
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
static const uint8_t V10[] = {
	0x0b, 0x00, 0x00, 0x08, 0x00, 0x01, 0x05, 0x01,
	0xbf, 0x63, 0x6f, 0x66, 0x66, 0x18, 0x30, 0xff,
};
static const uint8_t V11[] = {
	0x0a, 0x00, 0x00, 0x36, 0x00, 0x01, 0x06, 0x01, 0xa2, 0x63, 0x6f, 0x66, 0x66,
	0x18, 0x30, 0x64, 0x64, 0x61, 0x74, 0x61, 0x58, 0x28, 0x07, 0x69, 0x28, 0x00,
	0x10, 0x00, 0x20, 0x00, 0x8b, 0xf0, 0xd0, 0x14, 0x77, 0x74, 0xba, 0x1f, 0x4f,
	0xb2, 0x35, 0x8a, 0x8d, 0x6c, 0xe6, 0xf0, 0xa2, 0x56, 0x41, 0xb8, 0x5b, 0x10,
	0x70, 0x19, 0xf6, 0x5b, 0x1c, 0xcb, 0xfb, 0x69, 0x83, 0xf2,
};
static const uint8_t V12[] = {
	0x0b, 0x00, 0x00, 0x0f, 0x00, 0x01, 0x06, 0x01, 0xbf, 0x63, 0x6f, 0x66,
	0x66, 0x18, 0x58, 0x65, 0x6d, 0x61, 0x74, 0x63, 0x68, 0xf5, 0xff,
};
static const uint8_t V13[] = {
	0x02, 0x00, 0x00, 0x3b, 0x00, 0x01, 0x08, 0x01, 0xa3, 0x63, 0x6f, 0x66, 0x66, 0x00,
	0x63, 0x6c, 0x65, 0x6e, 0x18, 0x28, 0x64, 0x64, 0x61, 0x74, 0x61, 0x58, 0x28, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
};
static const uint8_t V14[] = {
	0x03, 0x00, 0x00, 0x06, 0x00, 0x01, 0x08, 0x01, 0xbf, 0x62, 0x72, 0x63, 0x01, 0xff,
};
static const uint8_t V15_REQ[] = {
	0x0a, 0x00, 0x00, 0x3b, 0x00, 0x01, 0x09, 0x01, 0xa3, 0x63, 0x6f, 0x66, 0x66, 0x00,
	0x63, 0x6c, 0x65, 0x6e, 0x18, 0x28, 0x64, 0x64, 0x61, 0x74, 0x61, 0x58, 0x28, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
};
static const uint8_t V15_RSP[] = {
	0x0b, 0x00, 0x00, 0x13, 0x00, 0x01, 0x09, 0x01, 0xbf, 0x63, 0x65, 0x72, 0x72, 0xbf,
	0x65, 0x67, 0x72, 0x6f, 0x75, 0x70, 0x01, 0x62, 0x72, 0x63, 0x17, 0xff, 0xff,
};
static const uint8_t V16_REQ[] = {
	0x08, 0x00, 0x00, 0x01, 0x00, 0x4d, 0x06, 0x00, 0xa0,
};
static const uint8_t V16_RSP[] = {
	0x09, 0x00, 0x00, 0x06, 0x00, 0x4d, 0x06, 0x00, 0xbf, 0x62, 0x72, 0x63, 0x08, 0xff,
};
static const uint8_t V17[] = {
	0x0a, 0x00, 0x00, 0x1b, 0x00, 0x09, 0x0b, 0x00, 0xa1, 0x64, 0x61, 0x72,
	0x67, 0x76, 0x84, 0x64, 0x6d, 0x65, 0x73, 0x68, 0x66, 0x6d, 0x6f, 0x64,
	0x65, 0x6c, 0x73, 0x63, 0x64, 0x66, 0x64, 0x63, 0x67, 0x65, 0x74,
};
static const uint8_t V18[] = {
	0x0b, 0x00, 0x00, 0x28, 0x00, 0x09, 0x0b, 0x00, 0xbf, 0x61, 0x6f, 0x78,
	0x1d, 0x7b, 0x20, 0x22, 0x73, 0x74, 0x61, 0x74, 0x75, 0x73, 0x22, 0x3a,
	0x20, 0x30, 0x2c, 0x20, 0x22, 0x70, 0x68, 0x61, 0x73, 0x65, 0x22, 0x3a,
	0x20, 0x30, 0x20, 0x7d, 0x0d, 0x0a, 0x63, 0x72, 0x65, 0x74, 0x00, 0xff,
};
static const uint8_t V19_REQ[] = {
	0x0a, 0x00, 0x00, 0x21, 0x00, 0x09, 0x0c, 0x00, 0xa1, 0x64, 0x61, 0x72, 0x67, 0x76,
	0x86, 0x64, 0x6d, 0x65, 0x73, 0x68, 0x66, 0x6d, 0x6f, 0x64, 0x65, 0x6c, 0x73, 0x63,
	0x64, 0x66, 0x64, 0x65, 0x73, 0x74, 0x61, 0x72, 0x74, 0x61, 0x30, 0x61, 0x30,
};
static const uint8_t V19_RSP[] = {
	0x0b, 0x00, 0x00, 0x28, 0x00, 0x09, 0x0c, 0x00, 0xbf, 0x61, 0x6f, 0x78,
	0x1d, 0x7b, 0x20, 0x22, 0x73, 0x74, 0x61, 0x74, 0x75, 0x73, 0x22, 0x3a,
	0x20, 0x36, 0x2c, 0x20, 0x22, 0x70, 0x68, 0x61, 0x73, 0x65, 0x22, 0x3a,
	0x20, 0x30, 0x20, 0x7d, 0x0d, 0x0a, 0x63, 0x72, 0x65, 0x74, 0x35, 0xff,
};
static const uint8_t V22_ECHO_REQ[] = {
	0x0a, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0xa1,
	0x61, 0x64, 0x65, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
};
static const uint8_t V22_ECHO_RSP[] = {
	0x0b, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0xbf,
	0x61, 0x72, 0x65, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0xff,
};
static const uint8_t V22_CHUNK[] = {
	0x0a, 0x00, 0x00, 0x12, 0x00, 0x01, 0x02, 0x01, 0xa2, 0x63, 0x6f, 0x66, 0x66,
	0x19, 0x03, 0xe8, 0x64, 0x64, 0x61, 0x74, 0x61, 0x44, 0x01, 0x02, 0x03, 0x04,
};
static const uint8_t V22_OFF[] = {
	0x0b, 0x00, 0x00, 0x08, 0x00, 0x01, 0x02, 0x01,
	0xa1, 0x63, 0x6f, 0x66, 0x66, 0x19, 0x07, 0xd0,
};

static const uint8_t FILE_SHA[32] = {
	0x85, 0xe3, 0x9e, 0xf7, 0xef, 0xba, 0xbb, 0x72, 0x1e, 0xd6, 0x4e,
	0xc4, 0xe0, 0x28, 0x9a, 0x60, 0xcf, 0xb3, 0xf4, 0xc7, 0xd7, 0x61,
	0xfc, 0x95, 0x21, 0x21, 0xad, 0xa8, 0x01, 0x52, 0x0b, 0xf8,
};

static const uint8_t IMAGE_HASH[32] = {
	0x8b, 0xf0, 0xd0, 0x14, 0x77, 0x74, 0xba, 0x1f, 0x4f, 0xb2, 0x35,
	0x8a, 0x8d, 0x6c, 0xe6, 0xf0, 0xa2, 0x56, 0x41, 0xb8, 0x5b, 0x10,
	0x70, 0x19, 0xf6, 0x5b, 0x1c, 0xcb, 0xfb, 0x69, 0x83, 0xf2,
};

#define CHECK_FRAME(buf, n, vec)                                                                   \
	do {                                                                                       \
		ck_assert_uint_eq((n), sizeof(vec));                                               \
		ck_assert_mem_eq((buf), (vec), sizeof(vec));                                       \
	} while (0)

START_TEST(enc_echo_vectors)
{
	uint8_t buf[64];
	size_t n = 0;

	ck_assert_int_eq(dh_smp_enc_echo(0, 1, "hello", buf, sizeof(buf), &n), DH_SMP_OK);
	CHECK_FRAME(buf, n, V1);
	ck_assert_int_eq(dh_smp_enc_echo(1, 2, "hello", buf, sizeof(buf), &n), DH_SMP_OK);
	CHECK_FRAME(buf, n, V3);
	ck_assert_int_eq(dh_smp_enc_echo(1, 0, "hello", buf, sizeof(buf), &n), DH_SMP_OK);
	CHECK_FRAME(buf, n, V22_ECHO_REQ);
	/* A buffer one byte short is refused, not overrun. */
	ck_assert_int_eq(dh_smp_enc_echo(1, 0, "hello", buf, sizeof(V1) - 1, &n), DH_SMP_E_NOMEM);
}
END_TEST

START_TEST(enc_empty_vectors)
{
	uint8_t buf[16];
	size_t n = 0;

	ck_assert_int_eq(dh_smp_enc_empty(DH_SMP_OP_READ, 1, DH_SMP_GROUP_OS, DH_SMP_OS_PARAMS, 3,
					  buf, sizeof(buf), &n),
			 DH_SMP_OK);
	CHECK_FRAME(buf, n, V5);
	ck_assert_int_eq(dh_smp_enc_empty(DH_SMP_OP_READ, 0, DH_SMP_GROUP_IMAGE, DH_SMP_IMG_STATE,
					  4, buf, sizeof(buf), &n),
			 DH_SMP_OK);
	CHECK_FRAME(buf, n, V7);
	ck_assert_int_eq(dh_smp_enc_empty(DH_SMP_OP_READ, 1, 77, 0, 6, buf, sizeof(buf), &n),
			 DH_SMP_OK);
	CHECK_FRAME(buf, n, V16_REQ);
}
END_TEST

START_TEST(enc_upload_vectors)
{
	uint8_t buf[256], sha[32];
	size_t n = 0;
	struct dh_smp_chunk c = { 0 };

	dh_smp_sha256(IMAGE, sizeof(IMAGE), sha);
	ck_assert_mem_eq(sha, FILE_SHA, 32);
	dh_smp_sha256(IMAGE, 48, sha); /* header + body: the MCUboot image hash */
	ck_assert_mem_eq(sha, IMAGE_HASH, 32);

	c.is_first = true;
	c.off = 0;
	c.image = 0;
	c.total_len = sizeof(IMAGE);
	c.sha = FILE_SHA;
	c.data = IMAGE;
	c.data_len = 48;
	ck_assert_int_eq(dh_smp_enc_upload(1, 5, &c, buf, sizeof(buf), &n), DH_SMP_OK);
	CHECK_FRAME(buf, n, V9);
	ck_assert_uint_le(n - 48, DH_SMP_UPLOAD_FIRST_OVERHEAD);

	memset(&c, 0, sizeof(c));
	c.off = 48;
	c.data = IMAGE + 48;
	c.data_len = 40;
	ck_assert_int_eq(dh_smp_enc_upload(1, 6, &c, buf, sizeof(buf), &n), DH_SMP_OK);
	CHECK_FRAME(buf, n, V11);

	c.off = 1000;
	c.data = (const uint8_t *)"\x01\x02\x03\x04";
	c.data_len = 4;
	ck_assert_int_eq(dh_smp_enc_upload(1, 2, &c, buf, sizeof(buf), &n), DH_SMP_OK);
	CHECK_FRAME(buf, n, V22_CHUNK);
}
END_TEST

START_TEST(enc_generic_body_vectors)
{
	/* V13/V15: a hand-built first chunk {"off", "len", "data"} in that key order. */
	uint8_t data[40], buf[128];
	struct dh_smp_body b;
	struct dh_smp_hdr h = { .op = DH_SMP_OP_WRITE, .group = 1, .id = 1 };
	size_t n = 0;

	memset(data, 0, 32);
	memset(data + 32, 'x', 8);
	dh_smp_body_init(&b);
	dh_smp_body_put_uint(&b, "off", 0);
	dh_smp_body_put_uint(&b, "len", 40);
	dh_smp_body_put_bytes(&b, "data", data, sizeof(data));
	h.ver = 0;
	h.seq = 8;
	ck_assert_int_eq(dh_smp_frame_build(&h, &b, buf, sizeof(buf), &n), DH_SMP_OK);
	CHECK_FRAME(buf, n, V13);
	h.ver = 1;
	h.seq = 9;
	ck_assert_int_eq(dh_smp_frame_build(&h, &b, buf, sizeof(buf), &n), DH_SMP_OK);
	CHECK_FRAME(buf, n, V15_REQ);
}
END_TEST

START_TEST(enc_shell_vectors)
{
	static const char *const get[] = { "mesh", "models", "dfd", "get" };
	static const char *const start[] = { "mesh", "models", "dfd", "start", "0", "0" };
	const char *many[DH_SMP_ARGV_MAX + 1];
	uint8_t buf[128];
	size_t n = 0, i;

	ck_assert_int_eq(dh_smp_enc_shell(1, 11, get, 4, buf, sizeof(buf), &n), DH_SMP_OK);
	CHECK_FRAME(buf, n, V17);
	ck_assert_int_eq(dh_smp_enc_shell(1, 12, start, 6, buf, sizeof(buf), &n), DH_SMP_OK);
	CHECK_FRAME(buf, n, V19_REQ);
	for (i = 0; i < DH_SMP_ARGV_MAX + 1; i++)
		many[i] = "x";
	ck_assert_int_eq(dh_smp_enc_shell(1, 1, many, DH_SMP_ARGV_MAX + 1, buf, sizeof(buf), &n),
			 DH_SMP_E_INVALID);
	ck_assert_int_eq(dh_smp_enc_shell(1, 1, many, 0, buf, sizeof(buf), &n), DH_SMP_E_INVALID);
}
END_TEST

static cbor_item_t *decode_ok(const uint8_t *f, size_t n, struct dh_smp_hdr *h)
{
	cbor_item_t *root = NULL;

	ck_assert_int_eq(dh_smp_frame_decode(f, n, h, &root), DH_SMP_OK);
	ck_assert_ptr_nonnull(root);
	return root;
}

START_TEST(dec_echo_vectors)
{
	static const struct {
		const uint8_t *f;
		size_t n;
		uint8_t ver, seq;
	} t[] = {
		{ V2, sizeof(V2), 0, 1 },
		{ V4, sizeof(V4), 1, 2 },
		{ V22_ECHO_RSP, sizeof(V22_ECHO_RSP), 1, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct dh_smp_hdr h;
		struct dh_smp_err e;
		char text[32];
		cbor_item_t *root = decode_ok(t[i].f, t[i].n, &h);

		ck_assert_uint_eq(h.op, DH_SMP_OP_WRITE_RSP);
		ck_assert_uint_eq(h.ver, t[i].ver);
		ck_assert_uint_eq(h.seq, t[i].seq);
		ck_assert_uint_eq(h.group, 0);
		ck_assert(!dh_smp_body_error(root, false, &e));
		ck_assert_int_eq(dh_smp_dec_echo(root, text, sizeof(text)), DH_SMP_OK);
		ck_assert_str_eq(text, "hello");
		cbor_decref(&root);
	}
}
END_TEST

START_TEST(dec_params_vector)
{
	struct dh_smp_hdr h;
	struct dh_smp_params p;
	cbor_item_t *root = decode_ok(V6, sizeof(V6), &h);

	ck_assert_uint_eq(h.op, DH_SMP_OP_READ_RSP);
	ck_assert_uint_eq(h.id, DH_SMP_OS_PARAMS);
	ck_assert_int_eq(dh_smp_dec_params(root, &p), DH_SMP_OK);
	ck_assert_uint_eq(p.buf_size, 2048);
	ck_assert_uint_eq(p.buf_count, 4);
	cbor_decref(&root);
}
END_TEST

START_TEST(dec_image_state_vector)
{
	struct dh_smp_hdr h;
	struct dh_smp_image_list l;
	uint8_t aa[32];
	cbor_item_t *root = decode_ok(V8, sizeof(V8), &h);

	memset(aa, 0xaa, sizeof(aa));
	ck_assert_uint_eq(h.seq, 4);
	ck_assert_int_eq(dh_smp_dec_image_state(root, &l), DH_SMP_OK);
	ck_assert_uint_eq(l.n, 2);
	ck_assert(l.has_split_status);
	ck_assert_int_eq(l.split_status, 0);
	ck_assert_uint_eq(l.slots[0].slot, 0);
	ck_assert_uint_eq(l.slots[0].image, 0);
	ck_assert_str_eq(l.slots[0].version, "1.0.0");
	ck_assert_uint_eq(l.slots[0].hash_len, 32);
	ck_assert_mem_eq(l.slots[0].hash, aa, 32);
	ck_assert(l.slots[0].bootable && l.slots[0].confirmed && l.slots[0].active);
	ck_assert(!l.slots[0].pending && !l.slots[0].permanent);
	ck_assert_uint_eq(l.slots[1].slot, 1);
	ck_assert_str_eq(l.slots[1].version, "1.2.3.4");
	ck_assert_mem_eq(l.slots[1].hash, IMAGE_HASH, 32);
	ck_assert(l.slots[1].bootable);
	ck_assert(!l.slots[1].pending && !l.slots[1].confirmed && !l.slots[1].active);
	cbor_decref(&root);
}
END_TEST

START_TEST(dec_upload_vectors)
{
	static const struct {
		const uint8_t *f;
		size_t n;
		uint64_t off;
		bool has_match;
	} t[] = {
		{ V10, sizeof(V10), 48, false },
		{ V12, sizeof(V12), 88, true },
		{ V22_OFF, sizeof(V22_OFF), 2000, false },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct dh_smp_hdr h;
		struct dh_smp_upload_rsp r;
		struct dh_smp_err e;
		cbor_item_t *root = decode_ok(t[i].f, t[i].n, &h);

		ck_assert_uint_eq(h.group, DH_SMP_GROUP_IMAGE);
		ck_assert_uint_eq(h.id, DH_SMP_IMG_UPLOAD);
		ck_assert(!dh_smp_body_error(root, false, &e));
		ck_assert_int_eq(dh_smp_dec_upload(root, &r), DH_SMP_OK);
		ck_assert_uint_eq(r.off, t[i].off);
		ck_assert(r.has_match == t[i].has_match);
		if (r.has_match)
			ck_assert(r.match);
		cbor_decref(&root);
	}
}
END_TEST

START_TEST(dec_error_vectors)
{
	struct dh_smp_hdr h;
	struct dh_smp_err e;
	char name[128];
	cbor_item_t *root;

	root = decode_ok(V14, sizeof(V14), &h);
	ck_assert(dh_smp_body_error(root, false, &e));
	ck_assert_int_eq(e.kind, DH_SMP_ERR_MGMT);
	ck_assert_int_eq(e.rc, 1);
	ck_assert_str_eq(dh_smp_err_name(&e, name, sizeof(name)), "MGMT_ERR_EUNKNOWN (1)");
	cbor_decref(&root);

	root = decode_ok(V15_RSP, sizeof(V15_RSP), &h);
	ck_assert_uint_eq(h.ver, 1);
	ck_assert(dh_smp_body_error(root, false, &e));
	ck_assert_int_eq(e.kind, DH_SMP_ERR_GROUP);
	ck_assert_uint_eq(e.group, 1);
	ck_assert_int_eq(e.rc, 23);
	ck_assert_str_eq(dh_smp_err_name(&e, name, sizeof(name)),
			 "image: header magic mismatch (group 1 rc 23)");
	cbor_decref(&root);

	root = decode_ok(V16_RSP, sizeof(V16_RSP), &h);
	ck_assert_uint_eq(h.ver, 1);
	ck_assert_uint_eq(h.group, 77);
	ck_assert(dh_smp_body_error(root, false, &e));
	ck_assert_int_eq(e.kind, DH_SMP_ERR_MGMT);
	ck_assert_int_eq(e.rc, DH_SMP_MGMT_ENOTSUP);
	ck_assert_str_eq(dh_smp_err_name(&e, name, sizeof(name)), "MGMT_ERR_ENOTSUP (8)");
	cbor_decref(&root);
}
END_TEST

START_TEST(err_name_tables)
{
	static const struct {
		struct dh_smp_err e;
		const char *name;
	} t[] = {
		{ { DH_SMP_ERR_MGMT, 0, 12, "" }, "MGMT_ERR_UNSUPPORTED_TOO_OLD (12)" },
		{ { DH_SMP_ERR_MGMT, 0, 300, "" }, "MGMT_ERR 300" },
		{ { DH_SMP_ERR_MGMT, 0, 3, "bad" }, "MGMT_ERR_EINVAL (3): bad" },
		{ { DH_SMP_ERR_GROUP, 1, 9, "" }, "image: no free slot (group 1 rc 9)" },
		{ { DH_SMP_ERR_GROUP, 1, 99, "" }, "image: error (group 1 rc 99)" },
		{ { DH_SMP_ERR_GROUP, 9, 2, "" }, "shell: command line too long (group 9 rc 2)" },
		{ { DH_SMP_ERR_GROUP, 64, 5, "" }, "group: error (group 64 rc 5)" },
	};
	char name[128];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		ck_assert_str_eq(dh_smp_err_name(&t[i].e, name, sizeof(name)), t[i].name);
	ck_assert_str_eq(dh_smp_image_err_str(34), "active slot not known");
	ck_assert_ptr_null(dh_smp_image_err_str(35));
	ck_assert_str_eq(dh_smp_shell_err_str(3), "empty command");
	ck_assert_str_eq(dh_smp_mgmt_err_str(13), "UNSUPPORTED_TOO_NEW");
	ck_assert_str_eq(dh_smp_strerror(DH_SMP_E_TIMEOUT), "timeout");
}
END_TEST

START_TEST(dec_shell_vectors)
{
	struct dh_smp_hdr h;
	struct dh_smp_err e;
	struct dh_smp_shell_rsp *r = malloc(sizeof(*r));
	cbor_item_t *root;

	ck_assert_ptr_nonnull(r);
	root = decode_ok(V18, sizeof(V18), &h);
	ck_assert(!dh_smp_body_error(root, true, &e));
	ck_assert_int_eq(dh_smp_dec_shell(root, r), DH_SMP_OK);
	ck_assert_str_eq(r->o, "{ \"status\": 0, \"phase\": 0 }\r\n");
	ck_assert_int_eq(r->ret, 0);
	cbor_decref(&root);

	root = decode_ok(V19_RSP, sizeof(V19_RSP), &h);
	ck_assert_uint_eq(h.seq, 12);
	ck_assert(!dh_smp_body_error(root, true, &e));
	ck_assert_int_eq(dh_smp_dec_shell(root, r), DH_SMP_OK);
	ck_assert_str_eq(r->o, "{ \"status\": 6, \"phase\": 0 }\r\n");
	ck_assert_int_eq(r->ret, -22);
	cbor_decref(&root);
	free(r);
}
END_TEST

/* Text a device did not check: libcbor refuses text strings that are not UTF-8, so the frame
 * decoder loads them as byte strings and the field readers take either. */
START_TEST(dec_text_that_is_not_utf8)
{
	/* {"r": "a\xff\x1b"} */
	static const uint8_t def[] = { 0x0b, 0,    0,   7,    0,   0,    1,   0,
				       0xa1, 0x61, 'r', 0x63, 'a', 0xff, 0x1b };
	/* {"r": (_ "b\xc3", "\xa9c")}: a character split across chunks, each chunk invalid */
	static const uint8_t split[] = { 0x0b, 0,    0,    11,  0,    0,    1,    0,   0xa1, 0x61,
					 'r',  0x7f, 0x62, 'b', 0xc3, 0x62, 0xa9, 'c', 0xff };
	/* {"\xff": 1, "r": "x"}: a key that is not UTF-8 is skipped, not fatal */
	static const uint8_t key[] = { 0x0b, 0,    0,    8,    0,    0,   1,    0,
				       0xa2, 0x61, 0xff, 0x01, 0x61, 'r', 0x61, 'x' };
	static const struct {
		const uint8_t *f;
		size_t n, cap;
		const char *want;
	} t[] = {
		{ def, sizeof(def), 32, "a\xff\x1b" },
		{ split, sizeof(split), 32,
		  "b\xc3\xa9"
		  "c" },
		{ split, sizeof(split), 4, "b\xc3\xa9" },
		{ split, sizeof(split), 3, "b" }, /* cut */
		{ key, sizeof(key), 32, "x" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct dh_smp_hdr h;
		char text[32];
		cbor_item_t *root = decode_ok(t[i].f, t[i].n, &h);

		ck_assert_int_eq(dh_smp_dec_echo(root, text, t[i].cap), DH_SMP_OK);
		ck_assert_msg(strcmp(text, t[i].want) == 0, "case %zu", i);
		cbor_decref(&root);
	}
}
END_TEST

START_TEST(dec_legacy_forms)
{
	/* Legacy success {"rc": 0, "off": 5}, legacy shell {"o": "x", "rc": -2}. */
	static const uint8_t ok_rc0[] = { 0x03, 0,   0,    11,   0,   1,   1,   1,    0xbf, 0x62,
					  'r',  'c', 0x00, 0x63, 'o', 'f', 'f', 0x05, 0xff };
	static const uint8_t sh_rc[] = { 0x03, 0,   0,    9,   0,    9,   1,   0,   0xa2,
					 0x61, 'o', 0x61, 'x', 0x62, 'r', 'c', 0x21 };
	/* Chunked (indefinite) text key and value: {"r": "he" "llo"}. */
	static const uint8_t chunked[] = { 0x03, 0,    0,    14,  0,    0,    1,    0,
					   0xa1, 0x7f, 0x61, 'r', 0xff, 0x7f, 0x62, 'h',
					   'e',  0x63, 'l',  'l', 'o',  0xff };
	struct dh_smp_hdr h;
	struct dh_smp_err e;
	struct dh_smp_upload_rsp u;
	struct dh_smp_shell_rsp *r = malloc(sizeof(*r));
	char text[8];
	cbor_item_t *root;

	ck_assert_ptr_nonnull(r);
	root = decode_ok(ok_rc0, sizeof(ok_rc0), &h);
	ck_assert(!dh_smp_body_error(root, false, &e));
	ck_assert_int_eq(dh_smp_dec_upload(root, &u), DH_SMP_OK);
	ck_assert_uint_eq(u.off, 5);
	cbor_decref(&root);

	root = decode_ok(sh_rc, sizeof(sh_rc), &h);
	ck_assert(!dh_smp_body_error(root, true, &e));
	ck_assert(dh_smp_body_error(root, false, &e));
	ck_assert_int_eq(dh_smp_dec_shell(root, r), DH_SMP_OK);
	ck_assert_str_eq(r->o, "x");
	ck_assert_int_eq(r->ret, -2);
	cbor_decref(&root);

	root = decode_ok(chunked, sizeof(chunked), &h);
	ck_assert_int_eq(dh_smp_dec_echo(root, text, sizeof(text)), DH_SMP_OK);
	ck_assert_str_eq(text, "hello");
	/* A short destination cuts the text rather than overrunning it. */
	ck_assert_int_eq(dh_smp_dec_echo(root, text, 3), DH_SMP_OK);
	ck_assert_str_eq(text, "he");
	cbor_decref(&root);
	free(r);
}
END_TEST

START_TEST(dec_bad_frames)
{
	static const uint8_t short_hdr[] = { 0x0b, 0, 0, 1, 0, 0, 0 };
	/* Header says 9 bytes, body has 8. */
	static const uint8_t short_body[] = { 0x0b, 0,    0,   9,   0,   1,    1,    1,
					      0xbf, 0x63, 'o', 'f', 'f', 0x18, 0x30, 0xff };
	/* Body decodes in fewer bytes than len: trailing byte. */
	static const uint8_t trailing[] = { 0x0b, 0, 0, 2, 0, 1, 1, 1, 0xa0, 0x00 };
	/* Body is an array, not a map. */
	static const uint8_t not_map[] = { 0x0b, 0, 0, 1, 0, 1, 1, 1, 0x80 };
	/* Unterminated indefinite map. */
	static const uint8_t open_map[] = { 0x0b, 0, 0, 3, 0, 1, 1, 1, 0xbf, 0x61, 'a' };
	/* "off" as text: a known key of the wrong type. */
	static const uint8_t off_text[] = { 0x0b, 0,    0,   7,   0,   1,    1,  1,
					    0xa1, 0x63, 'o', 'f', 'f', 0x61, '1' };
	/* {"hash": 33 bytes} overruns the 32-byte hash field. */
	uint8_t big_hash[96];
	static const struct {
		const uint8_t *f;
		size_t n;
	} bad[] = {
		{ short_hdr, sizeof(short_hdr) }, { short_body, sizeof(short_body) },
		{ trailing, sizeof(trailing) },   { not_map, sizeof(not_map) },
		{ open_map, sizeof(open_map) },
	};
	struct dh_smp_hdr h;
	struct dh_smp_upload_rsp u;
	struct dh_smp_image_list l;
	cbor_item_t *root = NULL;
	size_t i, k = 0;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_ne(dh_smp_frame_decode(bad[i].f, bad[i].n, &h, &root), DH_SMP_OK);
		ck_assert_ptr_null(root);
	}
	root = decode_ok(off_text, sizeof(off_text), &h);
	ck_assert_int_eq(dh_smp_dec_upload(root, &u), DH_SMP_E_PROTO);
	cbor_decref(&root);
	root = decode_ok(V22_OFF, sizeof(V22_OFF), &h);
	ck_assert_int_eq(dh_smp_dec_image_state(root, &l), DH_SMP_E_PROTO);
	cbor_decref(&root);

	/* {"images": [{"slot": 1, "hash": h'00'x33}]} */
	memcpy(big_hash, "\x0b\x00\x00\x00\x00\x01\x01\x00", 8);
	k = 8;
	big_hash[k++] = 0xa1;
	big_hash[k++] = 0x66;
	memcpy(big_hash + k, "images", 6);
	k += 6;
	big_hash[k++] = 0x81;
	big_hash[k++] = 0xa2;
	big_hash[k++] = 0x64;
	memcpy(big_hash + k, "slot", 4);
	k += 4;
	big_hash[k++] = 0x01;
	big_hash[k++] = 0x64;
	memcpy(big_hash + k, "hash", 4);
	k += 4;
	big_hash[k++] = 0x58;
	big_hash[k++] = 33;
	memset(big_hash + k, 0, 33);
	k += 33;
	big_hash[3] = (uint8_t)(k - 8);
	root = decode_ok(big_hash, k, &h);
	ck_assert_int_eq(dh_smp_dec_image_state(root, &l), DH_SMP_E_PROTO);
	cbor_decref(&root);
}
END_TEST

START_TEST(hdr_roundtrip)
{
	struct dh_smp_hdr h = {
		.op = 3, .ver = 1, .flags = 0, .len = 0x1234, .group = 0xabcd, .seq = 0xfe, .id = 7
	};
	struct dh_smp_hdr g;
	uint8_t b[8];

	dh_smp_hdr_encode(&h, b);
	ck_assert_uint_eq(b[0], 0x0b);
	ck_assert(dh_smp_hdr_decode(b, sizeof(b), &g));
	ck_assert_uint_eq(g.len, 0x1234);
	ck_assert_uint_eq(g.group, 0xabcd);
	ck_assert_uint_eq(g.seq, 0xfe);
	ck_assert_uint_eq(g.id, 7);
	/* Reserved bits are ignored on receipt. */
	b[0] = 0xe9;
	ck_assert(dh_smp_hdr_decode(b, sizeof(b), &g));
	ck_assert_uint_eq(g.op, 1);
	ck_assert_uint_eq(g.ver, 1);
	ck_assert(!dh_smp_hdr_decode(b, 7, &g));
}
END_TEST

static Suite *smp_codec_suite(void)
{
	Suite *s = suite_create("smp_codec");
	TCase *tc = tcase_create("codec");

	tcase_add_test(tc, enc_echo_vectors);
	tcase_add_test(tc, enc_empty_vectors);
	tcase_add_test(tc, enc_upload_vectors);
	tcase_add_test(tc, enc_generic_body_vectors);
	tcase_add_test(tc, enc_shell_vectors);
	tcase_add_test(tc, dec_echo_vectors);
	tcase_add_test(tc, dec_params_vector);
	tcase_add_test(tc, dec_image_state_vector);
	tcase_add_test(tc, dec_upload_vectors);
	tcase_add_test(tc, dec_error_vectors);
	tcase_add_test(tc, err_name_tables);
	tcase_add_test(tc, dec_shell_vectors);
	tcase_add_test(tc, dec_text_that_is_not_utf8);
	tcase_add_test(tc, dec_legacy_forms);
	tcase_add_test(tc, dec_bad_frames);
	tcase_add_test(tc, hdr_roundtrip);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(smp_codec_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
