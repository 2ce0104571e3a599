/*
 * Fuzz target for the direct path's request-head reader (server/http/head.c): the input is
 * read as received bytes, whole and cut at a few lengths. A plain head must lie inside the
 * input, end with a blank line, carry a target of path characters starting with '/' and
 * fields inside the head; and a plain head must also be plain when more bytes follow it,
 * while every prefix of it is partial.
 */
#include "http/head.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_plain(const char *buf, size_t len, const struct dh_head *h)
{
	if (h->len < 4 || h->len > len || memcmp(buf + h->len - 4, "\r\n\r\n", 4) != 0)
		abort();
	if (h->target < buf || h->target_len == 0 || h->target + h->target_len > buf + h->len ||
	    h->target[0] != '/' || memchr(h->target, '%', h->target_len) ||
	    memchr(h->target, '?', h->target_len))
		abort();
	if (h->method != DH_GET && h->method != DH_HEAD)
		abort();
	if (h->nfields == 0 || h->nfields > DH_HEAD_FIELDS || !dh_head_get(h, "host", NULL))
		abort();
	for (size_t i = 0; i < h->nfields; i++) {
		const struct dh_head_field *f = &h->fields[i];
		if (f->name < buf || f->name_len == 0 || f->name + f->name_len > buf + h->len ||
		    f->value < buf || f->value + f->value_len > buf + h->len ||
		    memchr(f->value, '\r', f->value_len) || memchr(f->value, '\n', f->value_len) ||
		    memchr(f->value, 0, f->value_len))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct dh_head h, h2;
	enum dh_head_kind kind = dh_head_parse(buf, size, &h);
	size_t cuts[] = { size / 2, size > 0 ? size - 1 : 0 };

	if (kind == DH_HEAD_PLAIN) {
		check_plain(buf, size, &h);
		/* the same head alone is plain too; each of its prefixes is partial */
		if (dh_head_parse(buf, h.len, &h2) != DH_HEAD_PLAIN || h2.len != h.len)
			abort();
		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
			if (cuts[i] < h.len && dh_head_parse(buf, cuts[i], &h2) != DH_HEAD_PARTIAL)
				abort();
		}
	} else if (kind == DH_HEAD_OTHER) {
		/* more bytes cannot make a head that is not plain plain again */
		char *more = malloc(size + 4);
		if (!more)
			return 0;
		memcpy(more, data, size);
		memcpy(more + size, "\r\n\r\n", 4);
		if (dh_head_parse(more, size + 4, &h2) != DH_HEAD_OTHER)
			abort();
		free(more);
	}
	return 0;
}
