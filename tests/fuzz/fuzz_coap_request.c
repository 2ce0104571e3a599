/*
 * Fuzz target for the CoAP image server's request path (server/coap/answer.c and block.c):
 * the input is parsed by libcoap as a UDP datagram (option parsing is libcoap's) and, when
 * it parses, answered as the server would with one known token ("good", a 3000-byte image)
 * into a PDU of a typical and of a tiny size. Every answer must have a code of ours, every
 * image byte range sent must lie inside the image and match the Block2 option sent with it,
 * and each resolved image is released once. The input's first bytes also drive the block
 * planner directly.
 */
#include "coap/answer.h"
#include "coap/block.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define IMAGE_SIZE 3000

static uint8_t image[IMAGE_SIZE];

struct state {
	int held;          /* resolved and not yet released */
	uint64_t off, len; /* what sent reported */
	int sends;
};

static int resolve(void *cls, const uint8_t *token, size_t len, struct dh_coap_image *img)
{
	struct state *st = cls;

	if (len != 4 || memcmp(token, "good", 4) != 0)
		return len == 4 && memcmp(token, "wait", 4) == 0 ? DH_COAP_NOT_YET
								 : DH_COAP_UNKNOWN;
	img->data = image;
	img->size = IMAGE_SIZE;
	memset(img->etag, 0xE7, sizeof(img->etag));
	st->held++;
	return DH_COAP_FOUND;
}

static void release(void *cls, struct dh_coap_image *img)
{
	struct state *st = cls;

	(void)img;
	if (--st->held != 0)
		abort();
}

static void sent(void *cls, const struct dh_coap_image *img, uint64_t off, uint64_t len)
{
	struct state *st = cls;

	if (st->held != 1 || off > img->size || len > img->size - off || len > 1024)
		abort();
	st->off = off;
	st->len = len;
	st->sends++;
}

static void check_answer(const coap_pdu_t *resp, const struct state *st,
			 const struct dh_coap_outcome *out)
{
	static const unsigned codes[] = { 205, 400, 402, 404, 405, 500, 503 };
	coap_opt_iterator_t it;
	coap_opt_t *opt;
	struct dh_block2 b;
	const uint8_t *payload;
	size_t plen = 0;
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		if (out->code == codes[i])
			break;
	}
	if (i == sizeof(codes) / sizeof(codes[0]) || st->held != 0 || st->sends > 1)
		abort();
	if (coap_pdu_get_code(resp) != COAP_RESPONSE_CODE(out->code))
		abort();
	if (!st->sends)
		return;
	/* the payload is the image bytes reported, at the place Block2 names */
	if (!coap_get_data(resp, &plen, &payload) && st->len)
		abort();
	if (plen != st->len || (plen && memcmp(payload, image + st->off, plen) != 0))
		abort();
	opt = coap_check_option(resp, COAP_OPTION_BLOCK2, &it);
	if (opt) {
		if (!dh_block2_parse(coap_opt_value(opt), coap_opt_length(opt), &b) || b.szx > 6 ||
		    ((uint64_t)b.num << (b.szx + 4)) != st->off ||
		    st->len > ((uint64_t)16 << b.szx) || b.more != (st->off + st->len < IMAGE_SIZE))
			abort();
	} else if (st->off != 0 || st->len != IMAGE_SIZE) {
		abort();
	}
}

static void answer_once(const coap_pdu_t *req, size_t pdu_size)
{
	struct state st = { 0 };
	struct dh_coap_env env = { resolve, release, sent, &st };
	struct dh_coap_outcome out = { 0 };
	coap_pdu_t *resp = coap_pdu_init(COAP_MESSAGE_ACK, 0, coap_pdu_get_mid(req), pdu_size);

	if (!resp)
		return;
	dh_coap_answer(req, resp, pdu_size, &env, &out);
	check_answer(resp, &st, &out);
	coap_delete_pdu(resp);
}

static void plan_directly(const uint8_t *data, size_t size)
{
	struct dh_block2 b;
	struct dh_block2_plan p;
	uint64_t img = 0;

	if (size < 12)
		return;
	memcpy(&img, data + 4, 8);
	img &= (1ull << 40) - 1; /* images of up to a terabyte */
	if (!dh_block2_parse(data, 3, &b))
		abort();
	dh_block2_plan(img, data[3] & 1 ? &b : NULL, data[3] >> 1, &p);
	if (p.code == 205 &&
	    (p.len > ((uint64_t)16 << p.szx) || p.off > img || p.len > img - p.off ||
	     p.szx > DH_COAP_SZX_MAX || ((uint64_t)p.num << (p.szx + 4)) != p.off))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int started;
	coap_pdu_t *req;

	if (!started) {
		coap_startup();
		coap_set_log_level(0);
		for (size_t i = 0; i < IMAGE_SIZE; i++)
			image[i] = (uint8_t)(i * 7 + i / 256);
		started = 1;
	}
	plan_directly(data, size);
	req = coap_pdu_init(0, 0, 0, size > 0 ? size : 1);
	if (!req)
		return 0;
	if (coap_pdu_parse(COAP_PROTO_UDP, data, size, req) && coap_pdu_get_code(req) >= 1 &&
	    coap_pdu_get_code(req) < 32) {
		answer_once(req, 1152); /* a typical datagram */
		answer_once(req, 60);   /* room for 16-byte blocks only */
		answer_once(req, 30);   /* no room for a block: 5.00, never a short one */
	}
	coap_delete_pdu(req);
	return 0;
}
