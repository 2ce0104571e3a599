/*
 * Fuzz target for the multipart/form-data parser (server/http/multipart.c). The first input
 * byte picks a chunk size, the rest is a body with boundary "b" fed in chunks of that size;
 * the same bytes are also tried as a Content-Type value. Checks that data only arrives
 * inside a part and that the parser never reads or writes out of bounds.
 */
#include "http/multipart.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	bool in_part;
	size_t bytes;
};

static enum dh_err on_begin(void *cls, const struct dh_multipart_part *part, struct dh_error *err)
{
	struct fz *f = cls;

	(void)err;
	if (f->in_part || !part->name[0] || strlen(part->name) > DH_MULTIPART_NAME_MAX)
		abort();
	f->in_part = true;
	return DH_OK;
}

static enum dh_err on_data(void *cls, const char *data, size_t len, struct dh_error *err)
{
	struct fz *f = cls;

	(void)err;
	if (!f->in_part || len == 0)
		abort();
	f->bytes += (size_t)(unsigned char)data[0] + (size_t)(unsigned char)data[len - 1];
	return DH_OK;
}

static enum dh_err on_end(void *cls, struct dh_error *err)
{
	struct fz *f = cls;

	(void)err;
	if (!f->in_part)
		abort();
	f->in_part = false;
	return DH_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct dh_multipart_cb cb = { on_begin, on_data, on_end };
	char boundary[DH_MULTIPART_BOUNDARY_MAX + 1];
	struct dh_error err = { 0 };
	struct fz f = { 0 };
	struct dh_multipart *mp;
	size_t step, off = 1;
	enum dh_err rc = DH_OK;
	char *ct;

	if (size == 0)
		return 0;
	step = (size_t)data[0] % 17 + 1;
	mp = dh_multipart_new("b", &cb, &f);
	if (!mp)
		return 0;
	while (off < size && rc == DH_OK) {
		size_t k = size - off < step ? size - off : step;
		/* a separate copy per chunk lets ASan catch reads past its end */
		char *chunk = malloc(k);
		if (!chunk)
			break;
		memcpy(chunk, data + off, k);
		rc = dh_multipart_feed(mp, chunk, k, &err);
		free(chunk);
		off += k;
	}
	if (rc == DH_OK)
		(void)dh_multipart_finish(mp, &err);
	dh_error_release(&err);
	dh_multipart_free(mp);

	ct = malloc(size);
	if (ct) {
		memcpy(ct, data + 1, size - 1);
		ct[size - 1] = 0;
		if (dh_multipart_boundary(ct, boundary, &err) == DH_OK &&
		    (strlen(boundary) == 0 || strlen(boundary) > DH_MULTIPART_BOUNDARY_MAX))
			abort();
		dh_error_release(&err);
		free(ct);
	}
	return 0;
}
