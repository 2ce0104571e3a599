/*
 * Request bodies as JSON: jansson's parser with duplicate keys refused, then a nesting limit.
 * Pure (no MHD), so that the fuzz target tests/fuzz/fuzz_json_body.c reaches it directly;
 * http/server.c applies it to every JSON body after checking the method and Content-Type.
 */
#ifndef DH_HTTP_JSON_BODY_H
#define DH_HTTP_JSON_BODY_H

#include "core/err.h"

#include <jansson.h>
#include <stddef.h>

/* Deepest JSON nesting accepted in a request body; real bodies nest three or four levels. */
#define DH_JSON_MAX_DEPTH 32

/* Parses len bytes of body. DH_OK with *out a new reference, or DH_E_BAD_JSON with err's
 * detail saying where the text went wrong or that it nests too deep (*out is then NULL). */
enum dh_err dh_json_body_parse(const char *body, size_t len, json_t **out, struct dh_error *err);

#endif
