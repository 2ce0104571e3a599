/*
 * The incremental multipart/form-data parser (see multipart.h). A byte-level state machine:
 * the preamble and each part's body are scanned for the delimiter CRLF "--" boundary, with
 * the match carried across chunks, so a boundary split anywhere between two reads is still
 * found; header lines are collected one at a time into a bounded buffer. The delimiter's
 * only CR is its first byte, so after a failed partial match no suffix of what was matched
 * can start a new one: those bytes are body data and only the current byte is looked at
 * again. Owns its state only; what the parts mean is the caller's business.
 */
#include "http/multipart.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum mp_state {
	MP_PREAMBLE,
	MP_AFTER_DELIM, /* just after "--boundary": "--", padding or CRLF follows */
	MP_AFTER_DASH,  /* one '-' of the closing "--" seen */
	MP_PAD,         /* transport padding after a boundary */
	MP_AFTER_CR,    /* CR after a boundary: LF must follow */
	MP_HEADER,      /* collecting a header line */
	MP_HEADER_LF,   /* CR at the end of a header line: LF must follow */
	MP_BODY,
	MP_EPILOGUE,
};

struct dh_multipart {
	const struct dh_multipart_cb *cb;
	void *cls;
	char delim[4 + DH_MULTIPART_BOUNDARY_MAX + 1]; /* CRLF "--" boundary */
	size_t dlen;
	enum mp_state state;
	size_t match; /* bytes of delim matched so far (preamble and body) */
	size_t pad;
	char line[DH_MULTIPART_LINE_MAX + 1];
	size_t line_len;
	unsigned nheaders;
	bool has_disposition;
	struct dh_multipart_part part;
	enum dh_err failed; /* sticky: DH_OK until the first error */
	bool done;          /* the closing boundary was seen */
};

static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_bchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("'()+_,-./:=? ", c));
}

static const char *skip_ows(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

typedef bool (*param_fn)(void *cls, const char *name, size_t nlen, const char *value, size_t vlen);

/*
 * Parses *( OWS ";" OWS name "=" ( token / quoted-string ) ) OWS up to end, unescaping
 * quoted values into a scratch buffer, and calls fn for each. False on a syntax error or
 * when fn says no.
 */
static bool parse_params(const char *p, const char *end, param_fn fn, void *cls)
{
	char value[DH_MULTIPART_LINE_MAX + 1];

	for (;;) {
		const char *name;
		size_t nlen, vlen = 0;

		p = skip_ows(p, end);
		if (p == end)
			return true;
		if (*p != ';')
			return false;
		p = skip_ows(p + 1, end);
		if (p == end)
			return true; /* a trailing ';' is harmless */
		name = p;
		while (p < end && is_tchar((unsigned char)*p))
			p++;
		nlen = (size_t)(p - name);
		p = skip_ows(p, end);
		if (nlen == 0 || p == end || *p != '=')
			return false;
		p = skip_ows(p + 1, end);
		if (p < end && *p == '"') {
			for (p++;; p++) {
				if (p == end)
					return false;
				if (*p == '"')
					break;
				if (*p == '\\') {
					if (++p == end)
						return false;
				}
				if (vlen >= DH_MULTIPART_LINE_MAX)
					return false;
				value[vlen++] = *p;
			}
			p++;
		} else {
			while (p < end && is_tchar((unsigned char)*p) &&
			       vlen < DH_MULTIPART_LINE_MAX)
				value[vlen++] = *p++;
			if (vlen == 0)
				return false;
		}
		value[vlen] = 0;
		if (!fn(cls, name, nlen, value, vlen))
			return false;
	}
}

static bool name_is(const char *name, size_t nlen, const char *want)
{
	return strlen(want) == nlen && strncasecmp(name, want, nlen) == 0;
}

/* Copies a value into a bounded field; false when it does not fit or holds a NUL. */
static bool copy_value(char *dst, size_t cap, const char *value, size_t vlen)
{
	if (vlen >= cap || memchr(value, 0, vlen))
		return false;
	memcpy(dst, value, vlen);
	dst[vlen] = 0;
	return true;
}

struct boundary_ctx {
	char *out;
	bool found;
};

static bool boundary_param(void *cls, const char *name, size_t nlen, const char *value, size_t vlen)
{
	struct boundary_ctx *c = cls;

	if (!name_is(name, nlen, "boundary"))
		return true;
	if (c->found || vlen == 0 || vlen > DH_MULTIPART_BOUNDARY_MAX || value[vlen - 1] == ' ')
		return false;
	for (size_t i = 0; i < vlen; i++) {
		if (!is_bchar((unsigned char)value[i]))
			return false;
	}
	memcpy(c->out, value, vlen);
	c->out[vlen] = 0;
	c->found = true;
	return true;
}

enum dh_err dh_multipart_boundary(const char *content_type,
				  char boundary[DH_MULTIPART_BOUNDARY_MAX + 1],
				  struct dh_error *err)
{
	static const char type[] = "multipart/form-data";
	struct boundary_ctx c = { .out = boundary };
	const char *p, *end;

	if (!content_type)
		return dh_error_set(err, DH_E_MEDIA_TYPE,
				    "The upload must be sent as multipart/form-data.");
	end = content_type + strlen(content_type);
	p = skip_ows(content_type, end);
	if ((size_t)(end - p) < sizeof(type) - 1 || strncasecmp(p, type, sizeof(type) - 1) != 0 ||
	    (p[sizeof(type) - 1] && p[sizeof(type) - 1] != ';' && p[sizeof(type) - 1] != ' ' &&
	     p[sizeof(type) - 1] != '\t'))
		return dh_error_set(err, DH_E_MEDIA_TYPE,
				    "The upload must be sent as multipart/form-data.");
	p += sizeof(type) - 1;
	if (!parse_params(p, end, boundary_param, &c) || !c.found)
		return dh_error_set(err, DH_E_INVALID,
				    "The multipart/form-data Content-Type lacks a valid boundary.");
	return DH_OK;
}

uint64_t dh_multipart_body_limit(uint64_t max_file)
{
	return max_file > UINT64_MAX - DH_MULTIPART_FORM_MAX ? UINT64_MAX
							     : max_file + DH_MULTIPART_FORM_MAX;
}

struct dh_multipart *dh_multipart_new(const char *boundary, const struct dh_multipart_cb *cb,
				      void *cls)
{
	struct dh_multipart *mp;
	size_t n = boundary ? strlen(boundary) : 0;

	if (n == 0 || n > DH_MULTIPART_BOUNDARY_MAX)
		return NULL;
	mp = calloc(1, sizeof(*mp));
	if (!mp)
		return NULL;
	mp->cb = cb;
	mp->cls = cls;
	memcpy(mp->delim, "\r\n--", 4);
	memcpy(mp->delim + 4, boundary, n);
	mp->dlen = 4 + n;
	mp->state = MP_PREAMBLE;
	mp->match = 2; /* the first boundary may open the body: count a CRLF as seen */
	return mp;
}

void dh_multipart_free(struct dh_multipart *mp)
{
	free(mp);
}

static enum dh_err fail(struct dh_multipart *mp, struct dh_error *err, const char *why)
{
	mp->failed = dh_error_set(err, DH_E_INVALID, "The multipart body is malformed: %s.", why);
	return mp->failed;
}

static enum dh_err cb_failed(struct dh_multipart *mp, struct dh_error *err, enum dh_err rc)
{
	if (err && err->code == DH_OK)
		dh_error_set(err, rc, NULL);
	mp->failed = rc;
	return rc;
}

static bool disposition_param(void *cls, const char *name, size_t nlen, const char *value,
			      size_t vlen)
{
	struct dh_multipart_part *part = cls;

	if (name_is(name, nlen, "name")) {
		if (part->name[0] || vlen == 0)
			return false;
		return copy_value(part->name, sizeof(part->name), value, vlen);
	}
	if (name_is(name, nlen, "filename")) {
		if (part->has_filename)
			return false;
		part->has_filename = true;
		return copy_value(part->filename, sizeof(part->filename), value, vlen);
	}
	return true; /* filename* and others: RFC 7578 4.2 says not to rely on them */
}

/* One complete header line of a part (without CRLF). */
static enum dh_err header_line(struct dh_multipart *mp, struct dh_error *err)
{
	const char *p = mp->line, *end = mp->line + mp->line_len, *colon, *v;
	size_t nlen;

	if (*p == ' ' || *p == '\t')
		return fail(mp, err, "folded part header lines are not allowed");
	colon = memchr(p, ':', mp->line_len);
	if (!colon || colon == p)
		return fail(mp, err, "a part header line has no name");
	nlen = (size_t)(colon - p);
	for (size_t i = 0; i < nlen; i++) {
		if (!is_tchar((unsigned char)p[i]))
			return fail(mp, err, "a part header name has invalid characters");
	}
	if (++mp->nheaders > DH_MULTIPART_HEADERS_MAX)
		return fail(mp, err, "a part has too many header lines");
	v = skip_ows(colon + 1, end);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (name_is(p, nlen, "Content-Disposition")) {
		static const char fd[] = "form-data";
		if (mp->has_disposition)
			return fail(mp, err, "a part has two Content-Disposition headers");
		if ((size_t)(end - v) < sizeof(fd) - 1 || strncasecmp(v, fd, sizeof(fd) - 1) != 0 ||
		    (v + sizeof(fd) - 1 < end && v[sizeof(fd) - 1] != ';' &&
		     v[sizeof(fd) - 1] != ' ' && v[sizeof(fd) - 1] != '\t'))
			return fail(mp, err, "a part's Content-Disposition is not form-data");
		if (!parse_params(v + sizeof(fd) - 1, end, disposition_param, &mp->part))
			return fail(mp, err, "a part's Content-Disposition parameters are invalid");
		mp->has_disposition = true;
	} else if (name_is(p, nlen, "Content-Type")) {
		if (!copy_value(mp->part.content_type, sizeof(mp->part.content_type), v,
				(size_t)(end - v)))
			return fail(mp, err, "a part's Content-Type is too long");
	}
	return DH_OK;
}

static enum dh_err headers_done(struct dh_multipart *mp, struct dh_error *err)
{
	enum dh_err rc;

	if (!mp->has_disposition || !mp->part.name[0])
		return fail(mp, err, "a part has no Content-Disposition with a name");
	if (mp->cb->part_begin) {
		rc = mp->cb->part_begin(mp->cls, &mp->part, err);
		if (rc != DH_OK)
			return cb_failed(mp, err, rc);
	}
	mp->state = MP_BODY;
	mp->match = 0;
	return DH_OK;
}

static enum dh_err emit(struct dh_multipart *mp, const char *data, size_t len, struct dh_error *err)
{
	enum dh_err rc;

	if (len == 0 || mp->state != MP_BODY || !mp->cb->part_data)
		return DH_OK;
	rc = mp->cb->part_data(mp->cls, data, len, err);
	return rc == DH_OK ? DH_OK : cb_failed(mp, err, rc);
}

/* A whole delimiter was matched in the preamble or a body. */
static enum dh_err delimiter(struct dh_multipart *mp, struct dh_error *err)
{
	enum dh_err rc;

	if (mp->state == MP_BODY && mp->cb->part_end) {
		rc = mp->cb->part_end(mp->cls, err);
		if (rc != DH_OK)
			return cb_failed(mp, err, rc);
	}
	mp->state = MP_AFTER_DELIM;
	mp->match = 0;
	mp->pad = 0;
	return DH_OK;
}

/* Scans preamble or body bytes from *pp; returns with *pp advanced. */
static enum dh_err scan(struct dh_multipart *mp, const char **pp, const char *end,
			struct dh_error *err)
{
	const char *p = *pp;
	enum dh_err rc = DH_OK;

	while (p < end && rc == DH_OK) {
		if (mp->match == 0) {
			const char *cr = memchr(p, '\r', (size_t)(end - p));
			const char *stop = cr ? cr : end;
			rc = emit(mp, p, (size_t)(stop - p), err);
			p = stop;
			if (cr) {
				mp->match = 1;
				p++;
			}
		} else if (*p == mp->delim[mp->match]) {
			p++;
			if (++mp->match == mp->dlen) {
				rc = delimiter(mp, err);
				break;
			}
		} else {
			/* not a delimiter after all: what matched was data; look at *p again */
			size_t m = mp->match;
			mp->match = 0;
			if (mp->state == MP_BODY)
				rc = emit(mp, mp->delim, m, err);
		}
	}
	*pp = p;
	return rc;
}

enum dh_err dh_multipart_feed(struct dh_multipart *mp, const char *data, size_t len,
			      struct dh_error *err)
{
	const char *p = data, *end = data + len;
	enum dh_err rc = DH_OK;

	if (mp->failed != DH_OK)
		return dh_error_set(err, mp->failed, "The multipart body was already rejected.");
	while (p < end && rc == DH_OK) {
		unsigned char c = (unsigned char)*p;

		switch (mp->state) {
		case MP_PREAMBLE:
		case MP_BODY:
			rc = scan(mp, &p, end, err);
			continue;
		case MP_AFTER_DELIM:
			if (c == '-')
				mp->state = MP_AFTER_DASH;
			else if (c == ' ' || c == '\t')
				mp->state = MP_PAD;
			else if (c == '\r')
				mp->state = MP_AFTER_CR;
			else
				rc = fail(mp, err, "a boundary is followed by other text");
			break;
		case MP_AFTER_DASH:
			if (c != '-')
				rc = fail(mp, err, "a boundary is followed by a single '-'");
			mp->state = MP_EPILOGUE;
			mp->done = true;
			break;
		case MP_PAD:
			if (c == '\r')
				mp->state = MP_AFTER_CR;
			else if ((c != ' ' && c != '\t') || ++mp->pad > DH_MULTIPART_PAD_MAX)
				rc = fail(mp, err, "a boundary is followed by other text");
			break;
		case MP_AFTER_CR:
			if (c != '\n')
				rc = fail(mp, err, "a boundary line does not end in CRLF");
			mp->state = MP_HEADER;
			mp->line_len = 0;
			mp->nheaders = 0;
			mp->has_disposition = false;
			memset(&mp->part, 0, sizeof(mp->part));
			break;
		case MP_HEADER:
			if (c == '\r') {
				mp->state = MP_HEADER_LF;
			} else if (c == '\n' || (c < 0x20 && c != '\t') || c == 0x7f) {
				rc = fail(mp, err, "a part header line holds a control character");
			} else if (mp->line_len >= DH_MULTIPART_LINE_MAX) {
				rc = fail(mp, err, "a part header line is too long");
			} else {
				mp->line[mp->line_len++] = (char)c;
			}
			break;
		case MP_HEADER_LF:
			if (c != '\n') {
				rc = fail(mp, err, "a part header line does not end in CRLF");
				break;
			}
			if (mp->line_len == 0) {
				p++;
				rc = headers_done(mp, err);
				continue;
			}
			mp->line[mp->line_len] = 0;
			rc = header_line(mp, err);
			mp->line_len = 0;
			mp->state = MP_HEADER;
			break;
		case MP_EPILOGUE:
			p = end; /* RFC 2046: the epilogue is to be ignored */
			continue;
		}
		p++;
	}
	return rc;
}

enum dh_err dh_multipart_finish(struct dh_multipart *mp, struct dh_error *err)
{
	if (mp->failed != DH_OK)
		return dh_error_set(err, mp->failed, "The multipart body was already rejected.");
	if (!mp->done)
		return fail(mp, err, "it ends before the closing boundary");
	return DH_OK;
}
