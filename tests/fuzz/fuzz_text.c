/*
 * Fuzz target for the text rules every outside string meets (core/text.c), the logger's
 * escaping (log.c) and the RFC 3339 parser (core/util.c). Properties: cleaned and logged
 * text is always UTF-8 and never holds a line break; escaped text holds no control byte (but
 * the line feeds and tabs it was told to keep); cleaning well-formed text without NUL
 * changes nothing; a cut never ends inside a character of well-formed text; a time that
 * parses formats to one that parses to the same instant.
 */
#include "core/text.h"
#include "core/util.h"
#include "log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t sizes[] = { 1, 2, 5, 16, 129, 512 };
	const char *in = (const char *)data;
	char *text = malloc(size + 1), *out = malloc(4 * size + 1);
	bool valid = dh_utf8_valid(in, size);
	bool has_nul = memchr(data, 0, size) != NULL;
	size_t n, len;
	char line[600], t[DH_TIME_LEN];
	int64_t us, again;

	if (!text || !out)
		goto out;
	memcpy(text, data, size);
	text[size] = 0;
	len = strlen(text);
	n = dh_text_clean(out, 4 * size + 1, in, size);
	if (!dh_utf8_valid(out, n) || strlen(out) != n)
		abort();
	if (valid && !has_nul && (n != size || memcmp(out, in, size) != 0))
		abort();
	n = dh_text_escape(out, 4 * size + 1, in, size, DH_TEXT_CONTROLS | DH_TEXT_KEEP_LINES);
	if (!dh_utf8_valid(out, n) || strlen(out) != n)
		abort();
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];
		if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f ||
		    (c == 0xc2 && (unsigned char)out[i + 1] < 0xa0))
			abort();
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		n = dh_text_escape(line, sizes[i], in, size, DH_TEXT_CONTROLS);
		if (n >= sizes[i] || !dh_utf8_valid(line, n) || memchr(line, '\n', n))
			abort();
		n = dh_text_clean(line, sizes[i], in, size);
		if (n >= sizes[i] || !dh_utf8_valid(line, n))
			abort();
		n = dh_utf8_cut(text, sizes[i]);
		if (n > sizes[i] || n > len ||
		    (dh_utf8_valid(text, len) && !dh_utf8_valid(text, n)))
			abort();
		n = dh_log_format(line, sizes[i], "k=%s n=%d", text, 7);
		if (n >= sizes[i] || !dh_utf8_valid(line, n) || memchr(line, '\n', n) ||
		    memchr(line, '\r', n))
			abort();
	}
	n = dh_utf8_trim_partial(in, size);
	if (n > size || (valid && n != size))
		abort();
	if (dh_time_parse(text, &us)) {
		dh_time_format(us, t);
		if (!dh_time_parse(t, &again) || again != us)
			abort();
	}
out:
	free(text);
	free(out);
	return 0;
}
