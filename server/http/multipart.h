/*
 * An incremental multipart/form-data parser (RFC 7578 over RFC 2046): bytes go in as they
 * arrive, in chunks of any size, and come out as callbacks per part (headers parsed, data,
 * end). It never holds a part's body, only one header line at a time, so an upload of any
 * size streams through in bounded memory. Pure: no MHD, no files, no allocation after
 * dh_multipart_new.
 */
#ifndef DH_HTTP_MULTIPART_H
#define DH_HTTP_MULTIPART_H

#include "core/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 2046 5.1.1: a boundary is 1 to 70 characters. */
#define DH_MULTIPART_BOUNDARY_MAX 70
/* Longest part header line; a Content-Disposition with a long file name fits in 1 KiB. */
#define DH_MULTIPART_LINE_MAX 1024
/* Header lines per part; form parts carry two or three. */
#define DH_MULTIPART_HEADERS_MAX 16
/* Longest part name and file name kept (a file name of 255 bytes is the usual FS limit). */
#define DH_MULTIPART_NAME_MAX     128
#define DH_MULTIPART_FILENAME_MAX 255
/* Longest part Content-Type kept. */
#define DH_MULTIPART_CTYPE_MAX 128
/* Transport padding (spaces and tabs) accepted after a boundary. */
#define DH_MULTIPART_PAD_MAX 64
/*
 * Bytes an upload may carry besides its file's content, since --max-upload bounds the file
 * alone: boundaries, part headers and the text fields. 2 MiB holds 64 parts with sixteen
 * header lines of DH_MULTIPART_LINE_MAX each, and is nothing next to an image.
 */
#define DH_MULTIPART_FORM_MAX (2u * 1024 * 1024)

/* The largest whole body of an upload whose file may have max_file bytes: max_file and
 * DH_MULTIPART_FORM_MAX, saturating at UINT64_MAX. */
uint64_t dh_multipart_body_limit(uint64_t max_file);

/* What the headers of one part said. Strings are NUL-terminated. */
struct dh_multipart_part {
	char name[DH_MULTIPART_NAME_MAX + 1];
	char filename[DH_MULTIPART_FILENAME_MAX + 1];
	bool has_filename;
	char content_type[DH_MULTIPART_CTYPE_MAX + 1];
};

/* Callbacks; each returns DH_OK to go on, or an error (with err filled) to stop parsing. */
struct dh_multipart_cb {
	enum dh_err (*part_begin)(void *cls, const struct dh_multipart_part *part,
				  struct dh_error *err);
	enum dh_err (*part_data)(void *cls, const char *data, size_t len, struct dh_error *err);
	enum dh_err (*part_end)(void *cls, struct dh_error *err);
};

struct dh_multipart;

/*
 * Checks a request's Content-Type: DH_E_MEDIA_TYPE unless it is multipart/form-data,
 * DH_E_INVALID when its boundary parameter (token or quoted string) is missing or bad.
 * On success boundary gets the boundary text.
 */
enum dh_err dh_multipart_boundary(const char *content_type,
				  char boundary[DH_MULTIPART_BOUNDARY_MAX + 1],
				  struct dh_error *err);

/* A parser for the given boundary calling cb with cls; NULL when out of memory. */
struct dh_multipart *dh_multipart_new(const char *boundary, const struct dh_multipart_cb *cb,
				      void *cls);
void dh_multipart_free(struct dh_multipart *mp);

/*
 * Feeds len bytes. DH_E_INVALID (err says why) for malformed input, or the error a callback
 * returned; after an error every later call returns it again.
 */
enum dh_err dh_multipart_feed(struct dh_multipart *mp, const char *data, size_t len,
			      struct dh_error *err);

/* The body has ended: DH_OK when the closing boundary was seen, else DH_E_INVALID. */
enum dh_err dh_multipart_finish(struct dh_multipart *mp, struct dh_error *err);

#endif
