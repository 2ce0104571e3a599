/*
 * SMP client: sequence numbers, matching answers to requests by op/group/id/seq, timeouts
 * and retransmission on lossy transports, version negotiation (SMP.md 1.5, 1.6, 3.5), and the
 * operations the Device Hub needs: echo, mcumgr params, image state, image upload with resume
 * and a go-back-N window, reset and shell exec. Owns nothing but its buffers; the caller owns
 * the transport and frees it after the client.
 */
#ifndef DH_SMP_CLIENT_H
#define DH_SMP_CLIENT_H

#include "smp/smp.h"
#include "smp/transport.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most requests in flight during an upload; the device also bounds it by buf_count - 1. */
#define DH_SMP_WINDOW_MAX 8
/* A {"off": 0} mid-upload (device lost the state) restarts it at most this many times. */
#define DH_SMP_UPLOAD_RESTARTS_MAX 5
/* Largest image file accepted: well above any MCUboot slot of a mesh distributor. */
#define DH_SMP_IMAGE_MAX (64u * 1024u * 1024u)
/* Used when mcumgr params answers rc 8 (SMP.md 2). */
#define DH_SMP_DEFAULT_BUF_SIZE  384
#define DH_SMP_DEFAULT_BUF_COUNT 4

/* Timeouts and limits; dh_smp_client_opts_default() gives the SMP.md 3.5 values. */
struct dh_smp_client_opts {
	unsigned timeout_ms;             /* echo, params, state, reset: 3000 */
	unsigned shell_timeout_ms;       /* shell exec: 10000 */
	unsigned first_chunk_timeout_ms; /* first upload chunk (may erase the slot): 40000 */
	unsigned chunk_timeout_ms;       /* later chunks: 5000 */
	/*
	 * Initial retransmission timeout on lossy transports (UDP): 250. It adapts to the
	 * measured round trip (srtt + 4 * rttvar) but never goes below rto_min_ms (30).
	 */
	unsigned rto_ms;
	unsigned rto_min_ms;
	unsigned retries; /* retransmissions of one request: 5, backoff 1x, 2x, 4x... */
	size_t mtu;       /* cap on the frame size, 0 for none */
	unsigned window;  /* cap on upload requests in flight, 0 = buf_count - 1 */
	/* optional: non-zero aborts waits with DH_SMP_E_CANCELLED; another thread (or a
	 * signal handler) may set it while a wait runs, hence atomic */
	atomic_int *cancel;
};

void dh_smp_client_opts_default(struct dh_smp_client_opts *o);

struct dh_smp_client {
	struct dh_smp_transport *tr; /* borrowed */
	struct dh_smp_client_opts o;
	uint8_t seq;  /* next sequence number */
	uint8_t ver;  /* header version sent: 1 (v2) unless the device asked for v1 */
	bool peer_v1; /* the device answered a v2 request with ver 0 (SMP.md 1.6) */
	bool have_params;
	bool params_fallback; /* params answered rc 8: 384 x 4 assumed */
	struct dh_smp_params params;
	int srtt_ms, rttvar_ms; /* -1 until the first sample */
	unsigned long retransmits;
	/* Monotonic ms (dh_smp_now_ms) after which waits fail with DH_SMP_E_TIMEOUT; 0 = none. */
	int64_t deadline_ms;
	struct dh_smp_err err; /* the device's error after DH_SMP_E_REMOTE */
	uint8_t tx[DH_SMP_FRAME_MAX];
	uint8_t rx[DH_SMP_FRAME_MAX];
};

/* Milliseconds of the monotonic clock. */
int64_t dh_smp_now_ms(void);

/* Prepares c over tr with options o (NULL for defaults). The seq starts random. */
void dh_smp_client_init(struct dh_smp_client *c, struct dh_smp_transport *tr,
			const struct dh_smp_client_opts *o);

/*
 * Sends one request with body b and waits for the matching answer, retransmitting the same
 * frame on lossy transports when retransmit is true (do not for non-idempotent shell
 * commands). On DH_SMP_OK, *root owns the decoded body (cbor_decref it). A device error gives
 * DH_SMP_E_REMOTE with c->err filled. is_shell makes "rc" next to "o" a result, not an error.
 */
enum dh_smp_status dh_smp_request(struct dh_smp_client *c, uint8_t op, uint16_t group, uint8_t id,
				  const struct dh_smp_body *b, unsigned timeout_ms, bool retransmit,
				  bool is_shell, cbor_item_t **root);

/* Echo text and copy the answer to out (SMP.md 2). */
enum dh_smp_status dh_smp_echo(struct dh_smp_client *c, const char *text, char *out, size_t cap);
/* Reads mcumgr params into c->params (falls back to 384 x 4 on rc 8) and copies them to p. */
enum dh_smp_status dh_smp_read_params(struct dh_smp_client *c, struct dh_smp_params *p);
enum dh_smp_status dh_smp_image_state(struct dh_smp_client *c, struct dh_smp_image_list *l);
enum dh_smp_status dh_smp_reset(struct dh_smp_client *c, bool force);

/*
 * Runs argv on the device shell (SMP.md 4) and fills r. idempotent allows retransmission on
 * UDP; send false for commands that must not run twice ("dfu slot add").
 */
enum dh_smp_status dh_smp_shell_exec(struct dh_smp_client *c, const char *const *argv, size_t argc,
				     bool idempotent, struct dh_smp_shell_rsp *r);

/* Data sizes of the first and the later upload chunks for this device and transport. */
void dh_smp_chunk_sizes(const struct dh_smp_client *c, size_t *first, size_t *next);

/* Called after each accepted answer with the device's offset and the total length. */
typedef void (*dh_smp_progress_fn)(void *ctx, uint64_t off, uint64_t len);

struct dh_smp_upload_result {
	bool has_match; /* the last answer carried "match" */
	bool match;
	unsigned restarts; /* times the device answered {"off": 0} mid-upload */
	unsigned long retransmits;
	uint64_t resumed_from; /* offset the device reported for the first chunk */
	size_t chunk_first, chunk_next;
	unsigned window;
};

/*
 * Uploads len bytes of data as image number image (SMP.md 3.2): first chunk with len, sha
 * (SHA-256 of data) and image; later chunks from the offset the device reports; a window of
 * requests in flight (go-back-N); a restart on {"off": 0}; resume when the device already
 * holds part of the same upload. "match": false gives DH_SMP_E_MISMATCH. Reads mcumgr params
 * first when c has none. cb may be NULL.
 */
enum dh_smp_status dh_smp_upload(struct dh_smp_client *c, const uint8_t *data, size_t len,
				 uint32_t image, dh_smp_progress_fn cb, void *cb_ctx,
				 struct dh_smp_upload_result *res);

/*
 * Reads a whole file (at most DH_SMP_IMAGE_MAX bytes) into a malloc'd buffer the caller
 * frees. Writes a sentence to errbuf on failure.
 */
enum dh_smp_status dh_smp_read_file(const char *path, uint8_t **data, size_t *len, char *errbuf,
				    size_t errcap);

#endif
