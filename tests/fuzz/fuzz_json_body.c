/*
 * Fuzz target for request bodies read as JSON (server/http/json_body.c): jansson with
 * duplicate keys refused, then the depth limit. Every input is either a value that dumps
 * and parses back equal, or DH_E_BAD_JSON with a sentence and no value.
 */
#include "http/json_body.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dh_error err = { 0 };
	json_t *j = NULL, *back = NULL;
	enum dh_err rc = dh_json_body_parse((const char *)data, size, &j, &err);
	char *text;

	if (rc != DH_OK) {
		if (rc != DH_E_BAD_JSON || j || !err.detail[0] ||
		    !memchr(err.detail, 0, sizeof(err.detail)))
			abort();
		goto out;
	}
	if (!j)
		abort();
	text = json_dumps(j, JSON_ENCODE_ANY);
	if (text) {
		back = json_loads(text, JSON_DECODE_ANY, NULL);
		if (back && !json_equal(j, back))
			abort();
		free(text);
	}
out:
	json_decref(back);
	json_decref(j);
	dh_error_release(&err);
	return 0;
}
