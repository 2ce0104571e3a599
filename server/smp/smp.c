/*
 * SMP frame codec: header packing, definite-map request bodies written with libcbor's
 * streaming encoder (minimal integers, exactly as the SMP.md section 9 vectors), response
 * bodies loaded with cbor_load and read through field tables, and the error name tables
 * (MGMT_ERR, image group, shell group). No I/O and no state; smp_client.c drives it.
 */
#include "smp/smp.h"

#include "core/text.h"

#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[DH_SMP_E__COUNT] = {
	[DH_SMP_OK] = "ok",
	[DH_SMP_E_INVALID] = "invalid argument",
	[DH_SMP_E_NOMEM] = "out of memory or buffer too small",
	[DH_SMP_E_IO] = "transport error",
	[DH_SMP_E_TIMEOUT] = "timeout",
	[DH_SMP_E_PROTO] = "protocol error",
	[DH_SMP_E_REMOTE] = "device error",
	[DH_SMP_E_MISMATCH] = "upload hash mismatch",
	[DH_SMP_E_CANCELLED] = "cancelled",
};

const char *dh_smp_strerror(enum dh_smp_status st)
{
	if ((unsigned)st >= DH_SMP_E__COUNT)
		return "unknown error";
	return status_names[st];
}

static const char *const mgmt_names[] = {
	"EOK",
	"EUNKNOWN",
	"ENOMEM",
	"EINVAL",
	"ETIMEOUT",
	"ENOENT",
	"EBADSTATE",
	"EMSGSIZE",
	"ENOTSUP",
	"ECORRUPT",
	"EBUSY",
	"EACCESSDENIED",
	"UNSUPPORTED_TOO_OLD",
	"UNSUPPORTED_TOO_NEW",
};

static const char *const image_names[] = {
	"OK",
	"unknown",
	"flash config query failed",
	"no image in slot",
	"no TLVs",
	"invalid TLV",
	"multiple hash TLVs",
	"TLV invalid size",
	"hash TLV not found",
	"no free slot",
	"flash open failed",
	"flash read failed",
	"flash write failed",
	"flash erase failed",
	"invalid slot",
	"out of heap",
	"flash context already set",
	"flash context not set",
	"flash area device NULL",
	"invalid page offset",
	"off missing",
	"len missing on first chunk",
	"first chunk shorter than the header",
	"header magic mismatch",
	"sha longer than 32 bytes",
	"load address does not match slot",
	"cannot read running version",
	"image not newer than running",
	"an image is already pending",
	"invalid vector table",
	"image too large for slot",
	"data overrun",
	"confirmation denied",
	"setting test on active slot denied",
	"active slot not known",
};

static const char *const shell_names[] = {
	"OK",
	"unknown",
	"command line too long",
	"empty command",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *dh_smp_mgmt_err_str(int64_t rc)
{
	if (rc < 0 || (uint64_t)rc >= NELEM(mgmt_names))
		return NULL;
	return mgmt_names[rc];
}

const char *dh_smp_image_err_str(int64_t rc)
{
	if (rc < 0 || (uint64_t)rc >= NELEM(image_names))
		return NULL;
	return image_names[rc];
}

const char *dh_smp_shell_err_str(int64_t rc)
{
	if (rc < 0 || (uint64_t)rc >= NELEM(shell_names))
		return NULL;
	return shell_names[rc];
}

const char *dh_smp_err_name(const struct dh_smp_err *e, char *out, size_t cap)
{
	const char *s = NULL;
	const char *gname = "group";

	if (cap == 0)
		return out;
	switch (e->kind) {
	case DH_SMP_ERR_NONE:
		snprintf(out, cap, "no error");
		break;
	case DH_SMP_ERR_MGMT:
		s = dh_smp_mgmt_err_str(e->rc);
		if (s)
			snprintf(out, cap, "MGMT_ERR_%s (%lld)%s%s", s, (long long)e->rc,
				 e->rsn[0] ? ": " : "", e->rsn);
		else
			snprintf(out, cap, "MGMT_ERR %lld%s%s", (long long)e->rc,
				 e->rsn[0] ? ": " : "", e->rsn);
		break;
	case DH_SMP_ERR_GROUP:
		if (e->group == DH_SMP_GROUP_IMAGE) {
			s = dh_smp_image_err_str(e->rc);
			gname = "image";
		} else if (e->group == DH_SMP_GROUP_SHELL) {
			s = dh_smp_shell_err_str(e->rc);
			gname = "shell";
		} else if (e->group == DH_SMP_GROUP_OS) {
			gname = "os";
		}
		snprintf(out, cap, "%s: %s (group %u rc %lld)", gname, s ? s : "error",
			 (unsigned)e->group, (long long)e->rc);
		break;
	}
	return out;
}

void dh_smp_hdr_encode(const struct dh_smp_hdr *h, uint8_t out[DH_SMP_HDR_LEN])
{
	out[0] = (uint8_t)((h->op & 7u) | ((h->ver & 3u) << 3));
	out[1] = h->flags;
	out[2] = (uint8_t)(h->len >> 8);
	out[3] = (uint8_t)h->len;
	out[4] = (uint8_t)(h->group >> 8);
	out[5] = (uint8_t)h->group;
	out[6] = h->seq;
	out[7] = h->id;
}

bool dh_smp_hdr_decode(const uint8_t *in, size_t n, struct dh_smp_hdr *h)
{
	if (n < DH_SMP_HDR_LEN)
		return false;
	h->op = in[0] & 7u;
	h->ver = (in[0] >> 3) & 3u;
	h->flags = in[1];
	h->len = (uint16_t)((in[2] << 8) | in[3]);
	h->group = (uint16_t)((in[4] << 8) | in[5]);
	h->seq = in[6];
	h->id = in[7];
	return true;
}

/* The map header takes at most 9 bytes; keys and values start after this reserve. */
#define BODY_RESERVE 9

void dh_smp_body_init(struct dh_smp_body *b)
{
	b->len = BODY_RESERVE;
	b->npairs = 0;
	b->ok = true;
}

static void body_raw(struct dh_smp_body *b, size_t written)
{
	if (written == 0)
		b->ok = false;
	else
		b->len += written;
}

static void body_bytes(struct dh_smp_body *b, const void *p, size_t n)
{
	if (!b->ok)
		return;
	if (n > sizeof(b->buf) - b->len) {
		b->ok = false;
		return;
	}
	if (n)
		memcpy(b->buf + b->len, p, n);
	b->len += n;
}

static void body_text(struct dh_smp_body *b, const char *s)
{
	size_t n = strlen(s);

	if (!b->ok)
		return;
	body_raw(b, cbor_encode_string_start(n, b->buf + b->len, sizeof(b->buf) - b->len));
	body_bytes(b, s, n);
}

static void body_key(struct dh_smp_body *b, const char *key)
{
	body_text(b, key);
	b->npairs++;
}

void dh_smp_body_put_uint(struct dh_smp_body *b, const char *key, uint64_t v)
{
	body_key(b, key);
	if (b->ok)
		body_raw(b, cbor_encode_uint(v, b->buf + b->len, sizeof(b->buf) - b->len));
}

void dh_smp_body_put_bool(struct dh_smp_body *b, const char *key, bool v)
{
	body_key(b, key);
	if (b->ok)
		body_raw(b, cbor_encode_bool(v, b->buf + b->len, sizeof(b->buf) - b->len));
}

void dh_smp_body_put_text(struct dh_smp_body *b, const char *key, const char *s)
{
	body_key(b, key);
	body_text(b, s);
}

void dh_smp_body_put_bytes(struct dh_smp_body *b, const char *key, const uint8_t *p, size_t n)
{
	body_key(b, key);
	if (b->ok)
		body_raw(b,
			 cbor_encode_bytestring_start(n, b->buf + b->len, sizeof(b->buf) - b->len));
	body_bytes(b, p, n);
}

void dh_smp_body_put_text_array(struct dh_smp_body *b, const char *key, const char *const *v,
				size_t n)
{
	size_t i;

	body_key(b, key);
	if (b->ok)
		body_raw(b, cbor_encode_array_start(n, b->buf + b->len, sizeof(b->buf) - b->len));
	for (i = 0; i < n; i++)
		body_text(b, v[i]);
}

enum dh_smp_status dh_smp_frame_build(struct dh_smp_hdr *h, const struct dh_smp_body *b,
				      uint8_t *out, size_t cap, size_t *n)
{
	uint8_t mh[BODY_RESERVE];
	size_t mlen, blen;

	if (!b->ok)
		return DH_SMP_E_NOMEM;
	mlen = cbor_encode_map_start(b->npairs, mh, sizeof(mh));
	if (mlen == 0)
		return DH_SMP_E_NOMEM;
	blen = mlen + (b->len - BODY_RESERVE);
	if (blen > UINT16_MAX || cap < DH_SMP_HDR_LEN || blen > cap - DH_SMP_HDR_LEN)
		return DH_SMP_E_NOMEM;
	h->len = (uint16_t)blen;
	dh_smp_hdr_encode(h, out);
	memcpy(out + DH_SMP_HDR_LEN, mh, mlen);
	memcpy(out + DH_SMP_HDR_LEN + mlen, b->buf + BODY_RESERVE, b->len - BODY_RESERVE);
	*n = DH_SMP_HDR_LEN + blen;
	return DH_SMP_OK;
}

static enum dh_smp_status build(uint8_t op, uint8_t ver, uint16_t group, uint8_t id, uint8_t seq,
				const struct dh_smp_body *b, uint8_t *out, size_t cap, size_t *n)
{
	struct dh_smp_hdr h = {
		.op = op, .ver = ver, .flags = 0, .len = 0, .group = group, .seq = seq, .id = id
	};

	return dh_smp_frame_build(&h, b, out, cap, n);
}

enum dh_smp_status dh_smp_enc_echo(uint8_t ver, uint8_t seq, const char *text, uint8_t *out,
				   size_t cap, size_t *n)
{
	struct dh_smp_body b;

	dh_smp_body_init(&b);
	dh_smp_body_put_text(&b, "d", text);
	return build(DH_SMP_OP_WRITE, ver, DH_SMP_GROUP_OS, DH_SMP_OS_ECHO, seq, &b, out, cap, n);
}

enum dh_smp_status dh_smp_enc_empty(uint8_t op, uint8_t ver, uint16_t group, uint8_t id,
				    uint8_t seq, uint8_t *out, size_t cap, size_t *n)
{
	struct dh_smp_body b;

	dh_smp_body_init(&b);
	return build(op, ver, group, id, seq, &b, out, cap, n);
}

enum dh_smp_status dh_smp_enc_upload(uint8_t ver, uint8_t seq, const struct dh_smp_chunk *c,
				     uint8_t *out, size_t cap, size_t *n)
{
	struct dh_smp_body b;

	/* Key order as Zephyr's own clients and the SMP.md vectors: image, len, off, sha, data. */
	dh_smp_body_init(&b);
	if (c->is_first) {
		dh_smp_body_put_uint(&b, "image", c->image);
		dh_smp_body_put_uint(&b, "len", c->total_len);
	}
	dh_smp_body_put_uint(&b, "off", c->off);
	if (c->is_first && c->sha)
		dh_smp_body_put_bytes(&b, "sha", c->sha, DH_SMP_SHA_LEN);
	dh_smp_body_put_bytes(&b, "data", c->data, c->data_len);
	return build(DH_SMP_OP_WRITE, ver, DH_SMP_GROUP_IMAGE, DH_SMP_IMG_UPLOAD, seq, &b, out, cap,
		     n);
}

enum dh_smp_status dh_smp_enc_shell(uint8_t ver, uint8_t seq, const char *const *argv, size_t argc,
				    uint8_t *out, size_t cap, size_t *n)
{
	struct dh_smp_body b;

	if (argc == 0 || argc > DH_SMP_ARGV_MAX)
		return DH_SMP_E_INVALID;
	dh_smp_body_init(&b);
	dh_smp_body_put_text_array(&b, "argv", argv, argc);
	return build(DH_SMP_OP_WRITE, ver, DH_SMP_GROUP_SHELL, DH_SMP_SHELL_EXEC, seq, &b, out, cap,
		     n);
}

enum dh_smp_status dh_smp_enc_reset(uint8_t ver, uint8_t seq, bool force, uint8_t *out, size_t cap,
				    size_t *n)
{
	struct dh_smp_body b;

	dh_smp_body_init(&b);
	if (force)
		dh_smp_body_put_bool(&b, "force", true);
	return build(DH_SMP_OP_WRITE, ver, DH_SMP_GROUP_OS, DH_SMP_OS_RESET, seq, &b, out, cap, n);
}

/*
 * Nesting allowed in a body: SMP answers nest at most three deep (map, "images" array, slot
 * map); the margin admits future fields without letting a hostile frame recurse deeply.
 */
#define CBOR_DEPTH_MAX 16

/* Reads the argument of an item head; returns its size or 0 when malformed or cut. */
static size_t cbor_head(const uint8_t *p, size_t n, uint64_t *val)
{
	uint8_t ai;
	size_t k, len;

	if (n == 0)
		return 0;
	ai = p[0] & 31u;
	if (ai < 24) {
		*val = ai;
		return 1;
	}
	if (ai == 31) {
		*val = 0;
		return 1;
	}
	if (ai > 27)
		return 0;
	len = (size_t)1 << (ai - 24);
	if (n < 1 + len)
		return 0;
	*val = 0;
	for (k = 0; k < len; k++)
		*val = *val << 8 | p[1 + k];
	return 1 + len;
}

/* Makes the text string whose head is at p[0] and whose size is n a byte string: its head,
 * and for an indefinite one each chunk's head. The sizes are unchanged. */
static void text_to_bytes(uint8_t *p, size_t n)
{
	size_t at, h;
	uint64_t v = 0;

	at = cbor_head(p, n, &v);
	p[0] = (uint8_t)(2u << 5 | (p[0] & 31u));
	if ((p[0] & 31u) != 31)
		return;
	while (at < n && p[at] != 0xff) {
		h = cbor_head(p + at, n - at, &v); /* walked by cbor_check: well-formed */
		p[at] = (uint8_t)(2u << 5 | (p[at] & 31u));
		at += h + (size_t)v;
	}
}

/*
 * Walks one CBOR item without allocating and returns its size, or 0 when it is malformed,
 * cut, or nested too deep. It also refuses a definite container whose count exceeds the bytes
 * left (each element takes at least one byte), which keeps cbor_load from allocating room
 * for billions of elements announced by a few hostile bytes.
 *
 * A text string that is not well-formed UTF-8 is made a byte string in place (libcbor would
 * refuse the whole body for it): a device's shell output cut at a byte count, or any text a
 * device does not check, still reads as bytes (dh_smp_cbor_text), and the printer escapes it.
 */
static size_t cbor_check(uint8_t *p, size_t n, int depth)
{
	uint8_t major, ai;
	uint64_t v = 0, i;
	size_t h, used, sub;
	bool is_text = true;

	if (depth > CBOR_DEPTH_MAX || n == 0)
		return 0;
	h = cbor_head(p, n, &v);
	if (h == 0)
		return 0;
	major = p[0] >> 5;
	ai = p[0] & 31u;
	used = h;
	switch (major) {
	case 0:
	case 1:
		return ai == 31 ? 0 : used;
	case 2:
	case 3:
		if (ai != 31) {
			if (v > n - used)
				return 0;
			if (major == 3 && !dh_utf8_valid((const char *)p + used, (size_t)v))
				text_to_bytes(p, used + (size_t)v);
			return used + (size_t)v;
		}
		/* Indefinite string: definite chunks of the same major type, then a break. */
		for (;;) {
			if (used >= n)
				return 0;
			if (p[used] == 0xff)
				break;
			if ((p[used] >> 5) != major || (p[used] & 31u) == 31)
				return 0;
			sub = cbor_check(p + used, n - used, depth + 1);
			if (sub == 0)
				return 0;
			is_text = is_text && (p[used] >> 5) == major; /* a chunk became bytes */
			used += sub;
		}
		if (major == 3 && !is_text)
			text_to_bytes(p, used + 1);
		return used + 1;
	case 4:
	case 5:
		if (ai != 31) {
			uint64_t items = major == 5 ? v * 2 : v;

			if (v > n || items > n - used)
				return 0;
			for (i = 0; i < items; i++) {
				sub = cbor_check(p + used, n - used, depth + 1);
				if (sub == 0)
					return 0;
				used += sub;
			}
			return used;
		}
		for (i = 0;; i++) {
			if (used >= n)
				return 0;
			if (p[used] == 0xff)
				return (major == 5 && i % 2 != 0) ? 0 : used + 1;
			sub = cbor_check(p + used, n - used, depth + 1);
			if (sub == 0)
				return 0;
			used += sub;
		}
	case 6:
		if (ai == 31)
			return 0;
		sub = cbor_check(p + used, n - used, depth + 1);
		return sub ? used + sub : 0;
	default:
		/* Simple values and floats; a break outside an indefinite container is invalid. */
		return ai == 31 ? 0 : used;
	}
}

enum dh_smp_status dh_smp_frame_decode(const uint8_t *frame, size_t n, struct dh_smp_hdr *h,
				       cbor_item_t **root)
{
	struct cbor_load_result res;
	cbor_item_t *it = NULL;
	uint8_t *body = NULL;
	enum dh_smp_status st = DH_SMP_OK;

	*root = NULL;
	if (!dh_smp_hdr_decode(frame, n, h))
		return DH_SMP_E_PROTO;
	if (n - DH_SMP_HDR_LEN != h->len)
		return DH_SMP_E_PROTO;
	if (h->len == 0) {
		it = cbor_new_definite_map(0);
		if (!it)
			return DH_SMP_E_NOMEM;
		*root = it;
		return DH_SMP_OK;
	}
	/* a copy: the check may turn text strings into byte strings */
	body = malloc(h->len);
	if (!body)
		return DH_SMP_E_NOMEM;
	memcpy(body, frame + DH_SMP_HDR_LEN, h->len);
	if (cbor_check(body, h->len, 0) != h->len) {
		st = DH_SMP_E_PROTO;
		goto out;
	}
	it = cbor_load(body, h->len, &res);
	if (!it) {
		st = res.error.code == CBOR_ERR_MEMERROR ? DH_SMP_E_NOMEM : DH_SMP_E_PROTO;
		goto out;
	}
	if (res.read != h->len || !cbor_isa_map(it)) {
		cbor_decref(&it);
		st = DH_SMP_E_PROTO;
		goto out;
	}
	*root = it;
out:
	free(body);
	return st;
}

bool dh_smp_cbor_text(const cbor_item_t *it, char *out, size_t cap, size_t *len, size_t *full_len)
{
	size_t used = 0, total = 0, i, nchunks;
	cbor_item_t **chunks;
	bool text;

	/* byte strings too: text that was not UTF-8 arrives as one (cbor_check) */
	if (cap == 0 || !(cbor_isa_string(it) || cbor_isa_bytestring(it)))
		return false;
	text = cbor_isa_string(it);
	if (text ? cbor_string_is_definite(it) : cbor_bytestring_is_definite(it)) {
		nchunks = 1;
		chunks = NULL;
	} else {
		nchunks = text ? cbor_string_chunk_count(it) : cbor_bytestring_chunk_count(it);
		chunks = text ? cbor_string_chunks_handle(it) : cbor_bytestring_chunks_handle(it);
	}
	for (i = 0; i < nchunks; i++) {
		const cbor_item_t *c = chunks ? chunks[i] : it;
		size_t clen = text ? cbor_string_length(c) : cbor_bytestring_length(c);
		const unsigned char *p = text ? cbor_string_handle(c) : cbor_bytestring_handle(c);
		size_t take;

		if (!(text ? cbor_string_is_definite(c) : cbor_bytestring_is_definite(c)))
			return false;
		total += clen;
		take = clen < cap - 1 - used ? clen : cap - 1 - used;
		if (take && p)
			memcpy(out + used, p, take);
		used += take;
	}
	/* a device's text cut at cap is cut between characters (what it is made of is the
	 * printer's business: core/text.h) */
	if (total > used)
		used = dh_utf8_trim_partial(out, used);
	out[used] = '\0';
	if (len)
		*len = used;
	if (full_len)
		*full_len = total;
	return true;
}

static bool cbor_bytes(const cbor_item_t *it, uint8_t *out, size_t cap, size_t *len)
{
	size_t used = 0, i, nchunks;
	cbor_item_t **chunks;

	if (!cbor_isa_bytestring(it))
		return false;
	if (cbor_bytestring_is_definite(it)) {
		nchunks = 1;
		chunks = NULL;
	} else {
		nchunks = cbor_bytestring_chunk_count(it);
		chunks = cbor_bytestring_chunks_handle(it);
	}
	for (i = 0; i < nchunks; i++) {
		const cbor_item_t *c = chunks ? chunks[i] : it;
		size_t clen = cbor_bytestring_length(c);
		const unsigned char *p = cbor_bytestring_handle(c);

		if (!cbor_bytestring_is_definite(c) || clen > cap - used)
			return false;
		if (clen && p)
			memcpy(out + used, p, clen);
		used += clen;
	}
	*len = used;
	return true;
}

static bool cbor_int64(const cbor_item_t *it, int64_t *v)
{
	uint64_t u;

	if (cbor_isa_uint(it)) {
		u = cbor_get_int(it);
		if (u > INT64_MAX)
			return false;
		*v = (int64_t)u;
		return true;
	}
	if (cbor_isa_negint(it)) {
		u = cbor_get_int(it);
		if (u > INT64_MAX)
			return false;
		*v = -1 - (int64_t)u;
		return true;
	}
	return false;
}

/* Keys longer than this are not ours and are skipped. */
#define KEY_MAX 32

enum dh_smp_status dh_smp_map_decode(const cbor_item_t *map, const struct dh_smp_field *fields,
				     size_t nfields, void *out, uint32_t *present)
{
	struct cbor_pair *pairs;
	size_t i, j, npairs;
	char key[KEY_MAX + 1];
	size_t klen;
	uint8_t *base = out;

	*present = 0;
	if (!cbor_isa_map(map) || nfields > 32)
		return DH_SMP_E_PROTO;
	npairs = cbor_map_size(map);
	pairs = cbor_map_handle(map);
	for (i = 0; i < npairs; i++) {
		const cbor_item_t *v = pairs[i].value;

		if (!dh_smp_cbor_text(pairs[i].key, key, sizeof(key), NULL, &klen) ||
		    klen > KEY_MAX)
			continue;
		for (j = 0; j < nfields; j++) {
			const struct dh_smp_field *f = &fields[j];
			void *dst = base + f->off;
			int64_t iv;
			size_t len;

			if (strcmp(f->key, key) != 0)
				continue;
			switch (f->type) {
			case DH_SMP_F_UINT:
				if (!cbor_isa_uint(v))
					return DH_SMP_E_PROTO;
				*(uint64_t *)dst = cbor_get_int(v);
				break;
			case DH_SMP_F_INT:
				if (!cbor_int64(v, &iv))
					return DH_SMP_E_PROTO;
				*(int64_t *)dst = iv;
				break;
			case DH_SMP_F_BOOL:
				if (!cbor_isa_float_ctrl(v) || !cbor_is_bool(v))
					return DH_SMP_E_PROTO;
				*(bool *)dst = cbor_get_bool(v);
				break;
			case DH_SMP_F_TEXT:
				if (!dh_smp_cbor_text(v, dst, f->cap, NULL, NULL))
					return DH_SMP_E_PROTO;
				break;
			case DH_SMP_F_BYTES:
				if (!cbor_bytes(v, dst, f->cap, &len))
					return DH_SMP_E_PROTO;
				*(size_t *)(base + f->len_off) = len;
				break;
			case DH_SMP_F_ITEM:
				*(const cbor_item_t **)dst = v;
				break;
			}
			*present |= 1u << j;
			break;
		}
	}
	return DH_SMP_OK;
}

struct err_fields {
	int64_t rc;
	const cbor_item_t *err;
	const cbor_item_t *o;
	char rsn[128];
};

struct group_err_fields {
	uint64_t group;
	int64_t rc;
};

bool dh_smp_body_error(const cbor_item_t *root, bool is_shell, struct dh_smp_err *e)
{
	static const struct dh_smp_field f[] = {
		{ "rc", DH_SMP_F_INT, offsetof(struct err_fields, rc), 0, 0 },
		{ "err", DH_SMP_F_ITEM, offsetof(struct err_fields, err), 0, 0 },
		{ "o", DH_SMP_F_ITEM, offsetof(struct err_fields, o), 0, 0 },
		{ "rsn", DH_SMP_F_TEXT, offsetof(struct err_fields, rsn),
		  sizeof(((struct err_fields *)0)->rsn), 0 },
	};
	static const struct dh_smp_field gf[] = {
		{ "group", DH_SMP_F_UINT, offsetof(struct group_err_fields, group), 0, 0 },
		{ "rc", DH_SMP_F_INT, offsetof(struct group_err_fields, rc), 0, 0 },
	};
	struct err_fields ef = { 0 };
	struct group_err_fields gef = { 0 };
	uint32_t present = 0, gpresent = 0;

	memset(e, 0, sizeof(*e));
	if (dh_smp_map_decode(root, f, NELEM(f), &ef, &present) != DH_SMP_OK) {
		/* An "rc" that is not an integer is still an error we cannot read. */
		e->kind = DH_SMP_ERR_MGMT;
		e->rc = DH_SMP_MGMT_EUNKNOWN;
		return true;
	}
	if ((present & 2u) && cbor_isa_map(ef.err)) {
		if (dh_smp_map_decode(ef.err, gf, NELEM(gf), &gef, &gpresent) == DH_SMP_OK &&
		    (gpresent & 2u) && gef.rc != 0) {
			e->kind = DH_SMP_ERR_GROUP;
			e->group = gef.group <= UINT16_MAX ? (uint16_t)gef.group : UINT16_MAX;
			e->rc = gef.rc;
			return true;
		}
	}
	if ((present & 1u) && ef.rc != 0 && !(is_shell && (present & 4u))) {
		e->kind = DH_SMP_ERR_MGMT;
		e->rc = ef.rc;
		memcpy(e->rsn, ef.rsn, sizeof(e->rsn));
		return true;
	}
	return false;
}

enum dh_smp_status dh_smp_dec_echo(const cbor_item_t *root, char *out, size_t cap)
{
	const cbor_item_t *r = NULL;
	struct cbor_pair *pairs = cbor_map_handle(root);
	size_t i, n = cbor_map_size(root);
	char key[4];

	for (i = 0; i < n; i++) {
		if (dh_smp_cbor_text(pairs[i].key, key, sizeof(key), NULL, NULL) &&
		    strcmp(key, "r") == 0)
			r = pairs[i].value;
	}
	if (!r || !dh_smp_cbor_text(r, out, cap, NULL, NULL))
		return DH_SMP_E_PROTO;
	return DH_SMP_OK;
}

enum dh_smp_status dh_smp_dec_params(const cbor_item_t *root, struct dh_smp_params *p)
{
	static const struct dh_smp_field f[] = {
		{ "buf_size", DH_SMP_F_UINT, offsetof(struct dh_smp_params, buf_size), 0, 0 },
		{ "buf_count", DH_SMP_F_UINT, offsetof(struct dh_smp_params, buf_count), 0, 0 },
	};
	uint32_t present;
	enum dh_smp_status st;

	memset(p, 0, sizeof(*p));
	st = dh_smp_map_decode(root, f, NELEM(f), p, &present);
	if (st != DH_SMP_OK)
		return st;
	if (present != 3u || p->buf_size == 0 || p->buf_count == 0)
		return DH_SMP_E_PROTO;
	return DH_SMP_OK;
}

struct image_fields {
	uint64_t image, slot;
	struct dh_smp_image_slot s;
};

static enum dh_smp_status dec_slot(const cbor_item_t *m, struct dh_smp_image_slot *s)
{
	static const struct dh_smp_field f[] = {
		{ "image", DH_SMP_F_UINT, offsetof(struct image_fields, image), 0, 0 },
		{ "slot", DH_SMP_F_UINT, offsetof(struct image_fields, slot), 0, 0 },
		{ "version", DH_SMP_F_TEXT, offsetof(struct image_fields, s.version),
		  sizeof(((struct dh_smp_image_slot *)0)->version), 0 },
		{ "hash", DH_SMP_F_BYTES, offsetof(struct image_fields, s.hash), DH_SMP_SHA_LEN,
		  offsetof(struct image_fields, s.hash_len) },
		{ "bootable", DH_SMP_F_BOOL, offsetof(struct image_fields, s.bootable), 0, 0 },
		{ "pending", DH_SMP_F_BOOL, offsetof(struct image_fields, s.pending), 0, 0 },
		{ "confirmed", DH_SMP_F_BOOL, offsetof(struct image_fields, s.confirmed), 0, 0 },
		{ "active", DH_SMP_F_BOOL, offsetof(struct image_fields, s.active), 0, 0 },
		{ "permanent", DH_SMP_F_BOOL, offsetof(struct image_fields, s.permanent), 0, 0 },
	};
	struct image_fields im = { 0 };
	uint32_t present;
	enum dh_smp_status st;

	st = dh_smp_map_decode(m, f, NELEM(f), &im, &present);
	if (st != DH_SMP_OK)
		return st;
	/* Missing booleans read false and a missing image reads 0 (frugal builds). */
	if (!(present & 2u) || im.image > UINT32_MAX || im.slot > UINT32_MAX)
		return DH_SMP_E_PROTO;
	*s = im.s;
	s->image = (uint32_t)im.image;
	s->slot = (uint32_t)im.slot;
	return DH_SMP_OK;
}

struct state_fields {
	const cbor_item_t *images;
	int64_t split;
};

enum dh_smp_status dh_smp_dec_image_state(const cbor_item_t *root, struct dh_smp_image_list *l)
{
	static const struct dh_smp_field f[] = {
		{ "images", DH_SMP_F_ITEM, offsetof(struct state_fields, images), 0, 0 },
		{ "splitStatus", DH_SMP_F_INT, offsetof(struct state_fields, split), 0, 0 },
	};
	struct state_fields sf = { 0 };
	uint32_t present;
	enum dh_smp_status st;
	cbor_item_t **items;
	size_t i, n;

	memset(l, 0, sizeof(*l));
	st = dh_smp_map_decode(root, f, NELEM(f), &sf, &present);
	if (st != DH_SMP_OK)
		return st;
	if (!(present & 1u) || !cbor_isa_array(sf.images))
		return DH_SMP_E_PROTO;
	l->has_split_status = (present & 2u) != 0;
	l->split_status = sf.split;
	n = cbor_array_size(sf.images);
	items = cbor_array_handle(sf.images);
	for (i = 0; i < n; i++) {
		if (l->n >= DH_SMP_IMAGES_MAX)
			break;
		if (!cbor_isa_map(items[i]))
			return DH_SMP_E_PROTO;
		st = dec_slot(items[i], &l->slots[l->n]);
		if (st != DH_SMP_OK)
			return st;
		l->n++;
	}
	return DH_SMP_OK;
}

enum dh_smp_status dh_smp_dec_upload(const cbor_item_t *root, struct dh_smp_upload_rsp *r)
{
	static const struct dh_smp_field f[] = {
		{ "off", DH_SMP_F_UINT, offsetof(struct dh_smp_upload_rsp, off), 0, 0 },
		{ "match", DH_SMP_F_BOOL, offsetof(struct dh_smp_upload_rsp, match), 0, 0 },
	};
	uint32_t present;
	enum dh_smp_status st;

	memset(r, 0, sizeof(*r));
	st = dh_smp_map_decode(root, f, NELEM(f), r, &present);
	if (st != DH_SMP_OK)
		return st;
	if (!(present & 1u))
		return DH_SMP_E_PROTO;
	r->has_match = (present & 2u) != 0;
	return DH_SMP_OK;
}

struct shell_fields {
	const cbor_item_t *o;
	int64_t ret;
	int64_t rc;
};

enum dh_smp_status dh_smp_dec_shell(const cbor_item_t *root, struct dh_smp_shell_rsp *r)
{
	static const struct dh_smp_field f[] = {
		{ "o", DH_SMP_F_ITEM, offsetof(struct shell_fields, o), 0, 0 },
		{ "ret", DH_SMP_F_INT, offsetof(struct shell_fields, ret), 0, 0 },
		{ "rc", DH_SMP_F_INT, offsetof(struct shell_fields, rc), 0, 0 },
	};
	struct shell_fields sf = { 0 };
	uint32_t present;
	enum dh_smp_status st;
	size_t full;

	r->o[0] = '\0';
	r->o_len = 0;
	r->o_truncated = false;
	r->ret = 0;
	st = dh_smp_map_decode(root, f, NELEM(f), &sf, &present);
	if (st != DH_SMP_OK)
		return st;
	if (!(present & 1u) || !dh_smp_cbor_text(sf.o, r->o, sizeof(r->o), &r->o_len, &full))
		return DH_SMP_E_PROTO;
	r->o_truncated = full > r->o_len;
	if (present & 2u)
		r->ret = sf.ret;
	else if (present & 4u)
		r->ret = sf.rc;
	return DH_SMP_OK;
}

void dh_smp_sha256(const uint8_t *p, size_t n, uint8_t out[DH_SMP_SHA_LEN])
{
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	sha256_update(&ctx, n, p);
	sha256_digest(&ctx, DH_SMP_SHA_LEN, out);
}
