/*
 * Fuzz target for the RFC 3339 parser (server/core/util.c), which reads time fields of
 * request bodies (expire_time, ...). The input, cut at its first NUL, is the text. What it
 * accepts is a real calendar instant: printed back (dh_time_format, UTC) it parses to the
 * same microsecond, and in UTC without a leap second it names the same date and time.
 */
#include "core/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int field(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), out[DH_TIME_LEN];
	int64_t t, t2;
	size_t n;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	if (!dh_time_parse(text, &t))
		goto out;
	dh_time_format(t, out);
	if (!dh_time_parse(out, &t2) || t2 != t)
		abort();
	n = strlen(text);
	/* "...Z" or "...+00:00", seconds below 60: the fields must survive unchanged */
	if ((text[n - 1] == 'Z' || text[n - 1] == 'z' || strcmp(text + n - 6, "+00:00") == 0 ||
	     strcmp(text + n - 6, "-00:00") == 0) &&
	    field(text + 17, 2) < 60) {
		if (field(text, 4) != field(out, 4) || field(text + 5, 2) != field(out + 5, 2) ||
		    field(text + 8, 2) != field(out + 8, 2) ||
		    field(text + 11, 2) != field(out + 11, 2) ||
		    field(text + 14, 2) != field(out + 14, 2) ||
		    field(text + 17, 2) != field(out + 17, 2))
			abort();
	}
out:
	free(text);
	return 0;
}
