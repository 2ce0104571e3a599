/*
 * Fuzz target for the Range and If-Range parsers (server/http/range.c): the input is split
 * at its first NUL into a header value and an If-Range value, and parsed against a few
 * sizes; every result must lie inside the representation.
 */
#include "http/range.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t sizes[] = { 0, 1, 100, 1048576, UINT64_MAX };
	char *text = malloc(size + 1);
	struct dh_range r;
	const char *second;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	second = text + strlen(text);
	second = second < text + size ? second + 1 : second;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		if (dh_range_parse(text, sizes[i], &r) == DH_RANGE_ONE &&
		    (r.len == 0 || r.start >= sizes[i] || r.len > sizes[i] - r.start))
			abort();
	}
	(void)dh_range_if_range_ok(second, "\"abc\"", "Sat, 18 Apr 2026 13:12:50 GMT");
	(void)dh_range_if_range_ok(text, "\"abc\"", NULL);
	free(text);
	return 0;
}
