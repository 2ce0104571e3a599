/*
 * SMP (mcumgr) frame codec: the 8-byte header of SMP v1 and v2, request bodies encoded as
 * definite CBOR maps with libcbor's encoder, response bodies decoded with cbor_load (definite
 * or indefinite containers, keys in any order, unknown keys skipped) through small field
 * tables, and the two error shapes folded into one error type with readable names. Pure
 * functions over caller buffers: no I/O, no sequence numbers, no retransmission (smp_client.c
 * owns those). See SMP.md sections 1-4.
 */
#ifndef DH_SMP_SMP_H
#define DH_SMP_SMP_H

#include <cbor.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The SMP header is always 8 bytes (SMP.md 1.1). */
#define DH_SMP_HDR_LEN 8
/*
 * Largest frame (header + CBOR) this library sends or accepts. Zephyr buffers are 384 bytes
 * (2048 with UDP) and a UDP datagram to a device is at most 1500 bytes, so 8 KiB leaves room
 * for larger custom builds while bounding every buffer that fills from the wire.
 */
#define DH_SMP_FRAME_MAX 8192
/* Largest shell output kept: the biggest capture buffer in SMP.md 4 is 1000 bytes. */
#define DH_SMP_SHELL_OUT_MAX 4096
/* Text fields from the wire (echo text, version strings) are cut to this size. */
#define DH_SMP_TEXT_MAX 512
/* At most this many slots in an image state answer (2 slots x up to 4 images). */
#define DH_SMP_IMAGES_MAX 8
/* Shell exec: the device accepts at most 20 arguments (SMP.md 4). */
#define DH_SMP_ARGV_MAX 20
#define DH_SMP_SHA_LEN  32

enum dh_smp_op {
	DH_SMP_OP_READ = 0,
	DH_SMP_OP_READ_RSP = 1,
	DH_SMP_OP_WRITE = 2,
	DH_SMP_OP_WRITE_RSP = 3,
};

enum dh_smp_group {
	DH_SMP_GROUP_OS = 0,
	DH_SMP_GROUP_IMAGE = 1,
	DH_SMP_GROUP_SHELL = 9,
};

enum dh_smp_cmd {
	DH_SMP_OS_ECHO = 0,
	DH_SMP_OS_RESET = 5,
	DH_SMP_OS_PARAMS = 6,
	DH_SMP_IMG_STATE = 0,
	DH_SMP_IMG_UPLOAD = 1,
	DH_SMP_IMG_ERASE = 5,
	DH_SMP_SHELL_EXEC = 0,
};

/* MGMT_ERR codes (v1 "rc") used by the logic; names for all come from dh_smp_err_name(). */
enum dh_smp_mgmt_err {
	DH_SMP_MGMT_EOK = 0,
	DH_SMP_MGMT_EUNKNOWN = 1,
	DH_SMP_MGMT_ENOTSUP = 8,
	DH_SMP_MGMT_TOO_OLD = 12,
	DH_SMP_MGMT_TOO_NEW = 13,
};

/* Library result codes. DH_SMP_E_REMOTE means the device answered with an error. */
enum dh_smp_status {
	DH_SMP_OK = 0,
	DH_SMP_E_INVALID,   /* bad argument from the caller */
	DH_SMP_E_NOMEM,     /* allocation failed or a buffer is too small */
	DH_SMP_E_IO,        /* transport failure (socket, tty) */
	DH_SMP_E_TIMEOUT,   /* no matching answer within the timeout and retries */
	DH_SMP_E_PROTO,     /* malformed frame or body, or an answer that breaks the protocol */
	DH_SMP_E_REMOTE,    /* the device answered an error: see struct dh_smp_err */
	DH_SMP_E_MISMATCH,  /* upload finished with "match": false */
	DH_SMP_E_CANCELLED, /* the caller's cancellation flag was set */
	DH_SMP_E__COUNT
};

/* Short text for a status, e.g. "timeout". Never NULL. */
const char *dh_smp_strerror(enum dh_smp_status st);

struct dh_smp_hdr {
	uint8_t op;  /* enum dh_smp_op */
	uint8_t ver; /* 0 = v1, 1 = v2 */
	uint8_t flags;
	uint16_t len; /* CBOR body length */
	uint16_t group;
	uint8_t seq;
	uint8_t id;
};

/* Writes the 8 header bytes to out. */
void dh_smp_hdr_encode(const struct dh_smp_hdr *h, uint8_t out[DH_SMP_HDR_LEN]);
/* Reads 8 bytes; reserved bits are ignored. Fails only when n < 8. */
bool dh_smp_hdr_decode(const uint8_t *in, size_t n, struct dh_smp_hdr *h);

/*
 * One device error in either shape (SMP.md 1.4): kind MGMT is {"rc": n} with n != 0 (an
 * MGMT_ERR code); kind GROUP is {"err": {"group": g, "rc": n}} with n != 0.
 */
enum dh_smp_err_kind {
	DH_SMP_ERR_NONE = 0,
	DH_SMP_ERR_MGMT,
	DH_SMP_ERR_GROUP,
};

struct dh_smp_err {
	enum dh_smp_err_kind kind;
	uint16_t group; /* GROUP kind only */
	int64_t rc;
	char rsn[128]; /* optional "rsn" text of a v1 error, else empty */
};

/*
 * Writes a readable name for e into out, e.g. "MGMT_ERR_ENOTSUP (8)" or "image: header magic
 * mismatch (group 1 rc 23)". Returns out.
 */
const char *dh_smp_err_name(const struct dh_smp_err *e, char *out, size_t cap);
/* Name of one MGMT_ERR code ("ENOTSUP"), or NULL when unknown. */
const char *dh_smp_mgmt_err_str(int64_t rc);
/* Meaning of an image group code, or NULL when unknown. */
const char *dh_smp_image_err_str(int64_t rc);
/* Meaning of a shell group code, or NULL when unknown. */
const char *dh_smp_shell_err_str(int64_t rc);

/*
 * A growing request body: a definite CBOR map written into a fixed buffer. Each put appends
 * one key and value; the map header is written by dh_smp_body_finish once the number of keys
 * is known. Overflow sets ok = false and later calls do nothing.
 */
struct dh_smp_body {
	uint8_t buf[DH_SMP_FRAME_MAX];
	size_t len;
	size_t npairs;
	bool ok;
};

void dh_smp_body_init(struct dh_smp_body *b);
void dh_smp_body_put_uint(struct dh_smp_body *b, const char *key, uint64_t v);
void dh_smp_body_put_bool(struct dh_smp_body *b, const char *key, bool v);
void dh_smp_body_put_text(struct dh_smp_body *b, const char *key, const char *s);
void dh_smp_body_put_bytes(struct dh_smp_body *b, const char *key, const uint8_t *p, size_t n);
void dh_smp_body_put_text_array(struct dh_smp_body *b, const char *key, const char *const *v,
				size_t n);

/*
 * Builds a whole frame: header h (its len is filled in) and the finished map of b. Writes at
 * most cap bytes to out and stores the frame size in *n. Returns DH_SMP_E_NOMEM when the
 * frame does not fit cap or the body overflowed.
 */
enum dh_smp_status dh_smp_frame_build(struct dh_smp_hdr *h, const struct dh_smp_body *b,
				      uint8_t *out, size_t cap, size_t *n);

/* Request encoders: each writes one complete frame (SMP.md 2-4 and the section 9 vectors). */
enum dh_smp_status dh_smp_enc_echo(uint8_t ver, uint8_t seq, const char *text, uint8_t *out,
				   size_t cap, size_t *n);
/* An empty-body request ({} = a0) for any read or write command. */
enum dh_smp_status dh_smp_enc_empty(uint8_t op, uint8_t ver, uint16_t group, uint8_t id,
				    uint8_t seq, uint8_t *out, size_t cap, size_t *n);

/* One upload chunk. is_first adds image, len and sha (sha may be NULL to leave it out). */
struct dh_smp_chunk {
	uint64_t off;
	const uint8_t *data;
	size_t data_len;
	bool is_first;
	uint32_t image;
	uint64_t total_len;
	const uint8_t *sha; /* 32 bytes or NULL */
};

enum dh_smp_status dh_smp_enc_upload(uint8_t ver, uint8_t seq, const struct dh_smp_chunk *c,
				     uint8_t *out, size_t cap, size_t *n);
enum dh_smp_status dh_smp_enc_shell(uint8_t ver, uint8_t seq, const char *const *argv, size_t argc,
				    uint8_t *out, size_t cap, size_t *n);
enum dh_smp_status dh_smp_enc_reset(uint8_t ver, uint8_t seq, bool force, uint8_t *out, size_t cap,
				    size_t *n);

/* Worst-case upload overhead per SMP.md 3.4: header + CBOR besides the data bytes. */
#define DH_SMP_UPLOAD_FIRST_OVERHEAD 76
#define DH_SMP_UPLOAD_NEXT_OVERHEAD  26

/*
 * Decodes a response frame: header, exact length (n == 8 + len), and a CBOR body that is one
 * map consuming exactly len bytes. On success *root owns the map (cbor_decref it). A zero
 * length body is accepted as an empty map. A text string that is not well-formed UTF-8 (a
 * device's output cut inside a character, or text it never checked) is loaded as a byte
 * string rather than failing the frame; dh_smp_cbor_text reads either.
 */
enum dh_smp_status dh_smp_frame_decode(const uint8_t *frame, size_t n, struct dh_smp_hdr *h,
				       cbor_item_t **root);

/*
 * Extracts the error of a decoded body. Returns true when the body is an error ("rc" != 0
 * without "o" next to it, or "err" with a non-zero "rc") and fills e; "rc": 0 is the legacy
 * success marker. A shell answer with "o" carries its result in "rc" instead (SMP.md 4), so
 * callers of shell exec pass is_shell = true.
 */
bool dh_smp_body_error(const cbor_item_t *root, bool is_shell, struct dh_smp_err *e);

/* Field-table decoding of one map: the building block of the response decoders. */
enum dh_smp_ftype {
	DH_SMP_F_UINT,  /* uint64_t */
	DH_SMP_F_INT,   /* int64_t, unsigned or negative */
	DH_SMP_F_BOOL,  /* bool */
	DH_SMP_F_TEXT,  /* char[cap], NUL-terminated, cut at cap - 1 (sets the truncated bit) */
	DH_SMP_F_BYTES, /* uint8_t[cap]; the length goes to the size_t at len_off */
	DH_SMP_F_ITEM,  /* const cbor_item_t * borrowed from the map */
};

struct dh_smp_field {
	const char *key;
	enum dh_smp_ftype type;
	size_t off;     /* offset of the destination in the output struct */
	size_t cap;     /* TEXT and BYTES: destination size */
	size_t len_off; /* BYTES: offset of the size_t length */
};

/*
 * Decodes the pairs of map whose keys appear in fields into out; other keys are skipped.
 * Sets bit i of *present for field i found with the right type (at most 32 fields). A known
 * key with a value of the wrong type, or bytes longer than cap, fails with DH_SMP_E_PROTO.
 */
enum dh_smp_status dh_smp_map_decode(const cbor_item_t *map, const struct dh_smp_field *fields,
				     size_t nfields, void *out, uint32_t *present);

/*
 * Copies a definite or chunked CBOR text string into out (NUL-terminated), as it is: a device
 * may send any bytes (a byte string is taken as text too: dh_smp_frame_decode turns text that
 * is not UTF-8 into one). Text longer than cap - 1 bytes is cut there, and a character the cut
 * would split is left out. *len (if given) gets the bytes copied, *full_len those sent.
 */
bool dh_smp_cbor_text(const cbor_item_t *it, char *out, size_t cap, size_t *len, size_t *full_len);

/* Response decoders. Each takes the root of a successful (non-error) body. */
struct dh_smp_params {
	uint64_t buf_size;
	uint64_t buf_count;
};

enum dh_smp_status dh_smp_dec_echo(const cbor_item_t *root, char *out, size_t cap);
enum dh_smp_status dh_smp_dec_params(const cbor_item_t *root, struct dh_smp_params *p);

struct dh_smp_image_slot {
	uint32_t image;
	uint32_t slot;
	char version[48];
	uint8_t hash[DH_SMP_SHA_LEN];
	size_t hash_len;
	bool bootable, pending, confirmed, active, permanent;
};

struct dh_smp_image_list {
	struct dh_smp_image_slot slots[DH_SMP_IMAGES_MAX];
	size_t n;
	bool has_split_status;
	int64_t split_status;
};

enum dh_smp_status dh_smp_dec_image_state(const cbor_item_t *root, struct dh_smp_image_list *l);

struct dh_smp_upload_rsp {
	uint64_t off;
	bool has_match;
	bool match;
};

enum dh_smp_status dh_smp_dec_upload(const cbor_item_t *root, struct dh_smp_upload_rsp *r);

struct dh_smp_shell_rsp {
	char o[DH_SMP_SHELL_OUT_MAX];
	size_t o_len;     /* bytes in o (before the NUL) */
	bool o_truncated; /* the device sent more than DH_SMP_SHELL_OUT_MAX - 1 bytes */
	int64_t ret;      /* from "ret", or legacy "rc" next to "o" */
};

enum dh_smp_status dh_smp_dec_shell(const cbor_item_t *root, struct dh_smp_shell_rsp *r);

/* SHA-256 (nettle) of a buffer, for the upload "sha". */
void dh_smp_sha256(const uint8_t *p, size_t n, uint8_t out[DH_SMP_SHA_LEN]);

#endif
