/*
 * Block-wise answers (RFC 7959) without state: the Block2 option's value is read, and from
 * it and the image size alone the one block to send is planned. Pure: no libcoap, no I/O,
 * every byte sequence has an answer. coap/answer.c applies the plan to a PDU.
 */
#ifndef DH_COAP_BLOCK_H
#define DH_COAP_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest block size exponent: 1024-byte blocks (SZX 7 is reserved, RFC 7959 2.2). */
#define DH_COAP_SZX_MAX 6
/* Block numbers have 20 bits (RFC 7959 2.2): a 3-byte option value. */
#define DH_COAP_BLOCK_NUM_MAX 0xFFFFFu

/* A Block2 option as read from a request. */
struct dh_block2 {
	uint32_t num;
	bool more;    /* M: meaningless in a request (RFC 7959 2.4: the server ignores it) */
	unsigned szx; /* 0..7 */
};

/*
 * Reads a Block2 option value (len bytes, network order, RFC 7252 uint). False when the
 * value is longer than 3 bytes; any 0..3-byte value reads (zero bytes is block 0, SZX 0).
 */
bool dh_block2_parse(const uint8_t *value, size_t len, struct dh_block2 *out);

/* Encodes num/more/szx into at most 3 bytes at out; returns the length (0 for 0). */
size_t dh_block2_format(uint32_t num, bool more, unsigned szx, uint8_t out[3]);

/* What to answer to a GET of an image of some size. */
struct dh_block2_plan {
	unsigned code; /* CoAP code as class * 100 + detail: 205, 400 or 402 */
	bool block;    /* the answer carries a Block2 option (num, more, szx below) */
	uint32_t num;
	bool more;
	unsigned szx;
	uint64_t off, len; /* the payload: bytes off .. off+len of the image */
};

/*
 * Plans the answer to a GET of an image of size bytes, with the request's Block2 (NULL when
 * it had none) and the largest SZX the datagram has room for (max_szx, at most
 * DH_COAP_SZX_MAX). RFC 7959: the block size is the client's, or smaller when it does not
 * fit (the block number then scales so that the offset stays); SZX 7 is 4.00 Bad Request; a
 * block starting at or past the end is 4.02 Bad Option (block 0 of an empty image is an
 * empty 2.05). Without Block2 in the request the first block of max_szx is sent, with a
 * Block2 option only when the image does not fit in it.
 */
void dh_block2_plan(uint64_t size, const struct dh_block2 *req, unsigned max_szx,
		    struct dh_block2_plan *plan);

#endif
