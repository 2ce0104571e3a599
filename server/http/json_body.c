/*
 * JSON request bodies (see json_body.h). The depth is measured on the parsed value; jansson
 * itself refuses nesting beyond its own limit (2048), which bounds the recursion here.
 */
#include "http/json_body.h"

/* Nesting depth of a JSON value: scalars 0, each container adds one. */
static size_t json_depth(json_t *v)
{
	size_t max = 0, d;
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach(v, k, x)
		{
			d = json_depth(x);
			max = d > max ? d : max;
		}
		return max + 1;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
		{
			d = json_depth(x);
			max = d > max ? d : max;
		}
		return max + 1;
	}
	return 0;
}

enum dh_err dh_json_body_parse(const char *body, size_t len, json_t **out, struct dh_error *err)
{
	json_error_t jerr;
	json_t *j;

	*out = NULL;
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return dh_error_set(err, DH_E_BAD_JSON,
				    "The body is not valid JSON: %s at line %d column %d.",
				    jerr.text, jerr.line, jerr.column);
	if (json_depth(j) > DH_JSON_MAX_DEPTH) {
		json_decref(j);
		return dh_error_set(err, DH_E_BAD_JSON, "The body nests deeper than %d levels.",
				    DH_JSON_MAX_DEPTH);
	}
	*out = j;
	return DH_OK;
}
