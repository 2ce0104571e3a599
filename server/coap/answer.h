/*
 * The answer to one CoAP request of the image server: path dispatch (/d/<token>,
 * /.well-known/core), methods, and the stateless block of an image (coap/block.h) with its
 * options (ETag, Content-Format, Block2, Size2). Fills a response PDU from the request PDU
 * and knows nothing of sockets, threads, sessions or the database: where a token's image
 * comes from and what counts as sent are the caller's (struct dh_coap_env). coap/server.c
 * calls it for every request; the fuzz target calls it with PDUs parsed from raw bytes.
 */
#ifndef DH_COAP_ANSWER_H
#define DH_COAP_ANSWER_H

#include <coap3/coap.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An image as the answer needs it; filled by the caller's resolve. */
struct dh_coap_image {
	const uint8_t *data; /* size bytes, valid until release */
	uint64_t size;
	uint8_t etag[8]; /* strong ETag (the first bytes of the image's SHA-256) */
	void *priv;      /* the caller's */
};

/* What resolve says. */
#define DH_COAP_FOUND   1
#define DH_COAP_UNKNOWN 0
#define DH_COAP_NOT_YET (-1)

struct dh_coap_env {
	/*
	 * The image of token (len bytes, not NUL-terminated; any bytes) into img: DH_COAP_FOUND,
	 * DH_COAP_UNKNOWN when the token names no image that may be served now (the answer is
	 * 4.04, the same for every such token), DH_COAP_NOT_YET while the server cannot tell yet
	 * (starting up: 5.03 with Max-Age 1, so that the client asks again).
	 */
	int (*resolve)(void *cls, const uint8_t *token, size_t len, struct dh_coap_image *img);
	/* Called once after each successful resolve, when the answer no longer needs img. */
	void (*release)(void *cls, struct dh_coap_image *img);
	/* The answer carries bytes off .. off+len of img (called before release). */
	void (*sent)(void *cls, const struct dh_coap_image *img, uint64_t off, uint64_t len);
	void *cls;
};

/* What an answer did, for the caller's log and counters. */
struct dh_coap_outcome {
	unsigned code;  /* class * 100 + detail, e.g. 205, 404 */
	uint64_t bytes; /* image bytes in the payload */
};

/*
 * Fills response (code, options, payload; type, message id and token are the caller's) for
 * request. max_payload is the room the datagram leaves for options and payload; blocks
 * shrink to fit it. Never fails: every request gets a code (5.00 when the PDU cannot take
 * the answer).
 */
void dh_coap_answer(const coap_pdu_t *request, coap_pdu_t *response, size_t max_payload,
		    const struct dh_coap_env *env, struct dh_coap_outcome *out);

/* The /.well-known/core document (RFC 6690 link format) this server answers. */
extern const char dh_coap_wellknown[];

#endif
