/*
 * Firmware images: the streamed multipart upload into the blob store, the catalogue
 * (list, get, patch, delete) and the image download. An upload's state lives in
 * req->handler_state from its first body chunk to the end of the request, so an aborted
 * connection frees it and removes its temporary file. A firmware's access-rights scope is
 * its model's product, the model and its channels: writes need `upload` over the model or,
 * with channel-narrowed grants, over every channel of the image; reads need `upload` or
 * `update` over the model or one of its channels.
 */
#include "api/api.h"
#include "api/objects.h"

#include "blob.h"
#include "config.h"
#include "core/mcuboot.h"
#include "core/semver.h"
#include "core/text.h"
#include "core/util.h"
#include "dh_db.h"
#include "http/multipart.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Channels one image may be in; a model has a handful (stable, beta, ...). */
#define DH_FW_CHANNELS_MAX 32
/* Longest description (bytes); a release note, not a document. */
#define DH_FW_DESCRIPTION_MAX 4096
/* Parts one upload may have: a file and a few fields, channels perhaps repeated. */
#define DH_FW_PARTS_MAX 64
/* Bytes of the image kept for header inspection: the MCUboot header fields. */
#define DH_FW_HEAD_LEN DH_MCUBOOT_HDR_LEN

/* The text fields of an upload, in the order of this table. */
enum form_field {
	FF_MODEL,
	FF_VERSION,
	FF_CHANNELS,
	FF_DRAFT,
	FF_DESCRIPTION,
	FF_TID,
	FF__COUNT,
};

static const struct {
	const char *name;
	size_t max;       /* longest value accepted */
	bool is_repeated; /* may come as several parts (joined with commas) */
} form_fields[FF__COUNT] = {
	[FF_MODEL] = { "model", 64, false },
	[FF_VERSION] = { "version", DH_SEMVER_MAX, false },
	[FF_CHANNELS] = { "channels", DH_FW_CHANNELS_MAX * 65, true },
	[FF_DRAFT] = { "draft", 5, false },
	[FF_DESCRIPTION] = { "description", DH_FW_DESCRIPTION_MAX, false },
	[FF_TID] = { "tid", DH_TID_MAX, false },
};

struct upload {
	struct dh_multipart *mp;
	struct dh_blob_writer blob;
	bool has_file, in_file;
	char filename[DH_MULTIPART_FILENAME_MAX + 1];
	uint8_t head[DH_FW_HEAD_LEN];
	size_t head_len;
	uint64_t received;   /* body bytes: at most --max-upload + DH_MULTIPART_FORM_MAX */
	uint64_t file_bytes; /* the file part's: at most --max-upload */
	enum dh_err rc;      /* the first error; req->err says more */
	unsigned parts;
	int current;             /* form field of the part being read, -1: none/file */
	char *values[FF__COUNT]; /* malloc'd, NUL-terminated */
	size_t lens[FF__COUNT];
	bool seen[FF__COUNT];
};

static void upload_free(void *p)
{
	struct upload *u = p;

	if (!u)
		return;
	dh_multipart_free(u->mp);
	dh_blob_writer_release(&u->blob);
	for (int i = 0; i < FF__COUNT; i++)
		free(u->values[i]);
	free(u);
}

/* Drops the temporary file now, so that it is gone before the error answer is sent. */
static void upload_abort(struct dh_req *req)
{
	struct upload *u = req->handler_state;

	if (u)
		dh_blob_writer_release(&u->blob);
}

static enum dh_err part_begin(void *cls, const struct dh_multipart_part *part, struct dh_error *err)
{
	struct dh_req *req = cls;
	struct upload *u = req->handler_state;

	if (++u->parts > DH_FW_PARTS_MAX)
		return dh_error_set(err, DH_E_INVALID, "The upload has more than %d parts.",
				    DH_FW_PARTS_MAX);
	u->current = -1;
	if (strcmp(part->name, "file") == 0) {
		if (u->has_file)
			return dh_error_field(err, "file", "given twice; upload one image");
		u->has_file = true;
		u->in_file = true;
		snprintf(u->filename, sizeof(u->filename), "%s", part->filename);
		return dh_blob_writer_open(&u->blob, err);
	}
	for (int i = 0; i < FF__COUNT; i++) {
		if (strcmp(part->name, form_fields[i].name) != 0)
			continue;
		if (u->seen[i] && !form_fields[i].is_repeated)
			return dh_error_field(err, part->name, "given twice");
		if (u->seen[i]) {
			/* a repeated channels part: join with a comma */
			char *n = realloc(u->values[i], u->lens[i] + 2);
			if (!n)
				return DH_E_NOMEM;
			u->values[i] = n;
			n[u->lens[i]++] = ',';
			n[u->lens[i]] = 0;
		}
		u->seen[i] = true;
		u->current = i;
		return DH_OK;
	}
	return dh_error_field(err, part->name, "unknown field");
}

static enum dh_err part_data(void *cls, const char *data, size_t len, struct dh_error *err)
{
	struct dh_req *req = cls;
	struct upload *u = req->handler_state;
	int i = u->current;
	char *n;

	if (u->in_file) {
		if (len > dh_cfg.max_upload - u->file_bytes)
			return dh_error_set(err, DH_E_TOO_LARGE,
					    "The image is larger than the limit of %llu bytes.",
					    (unsigned long long)dh_cfg.max_upload);
		u->file_bytes += len;
		if (u->head_len < DH_FW_HEAD_LEN) {
			size_t k = DH_FW_HEAD_LEN - u->head_len;
			k = k < len ? k : len;
			memcpy(u->head + u->head_len, data, k);
			u->head_len += k;
		}
		return dh_blob_writer_write(&u->blob, data, len, err);
	}
	if (i < 0)
		return DH_OK;
	if (len > form_fields[i].max || u->lens[i] + len > form_fields[i].max) {
		char what[64];
		snprintf(what, sizeof(what), "longer than %zu bytes", form_fields[i].max);
		return dh_error_field(err, form_fields[i].name, what);
	}
	n = realloc(u->values[i], u->lens[i] + len + 1);
	if (!n)
		return DH_E_NOMEM;
	memcpy(n + u->lens[i], data, len);
	u->lens[i] += len;
	n[u->lens[i]] = 0;
	u->values[i] = n;
	return DH_OK;
}

static enum dh_err part_end(void *cls, struct dh_error *err)
{
	struct dh_req *req = cls;
	struct upload *u = req->handler_state;

	(void)err;
	u->in_file = false;
	u->current = -1;
	return DH_OK;
}

static const struct dh_multipart_cb upload_cb = { part_begin, part_data, part_end };

/*
 * Sets up the upload state at the first body chunk (or at the end when there was none).
 * The state exists even when the content type is wrong, so that the error is kept.
 */
static enum dh_err upload_start(struct dh_req *req)
{
	char boundary[DH_MULTIPART_BOUNDARY_MAX + 1];
	struct upload *u = calloc(1, sizeof(*u));

	if (!u)
		return DH_E_NOMEM;
	u->blob.fd = -1;
	u->current = -1;
	req->handler_state = u;
	req->handler_state_free = upload_free;
	u->rc = dh_multipart_boundary(dh_req_header(req, "Content-Type"), boundary, &req->err);
	if (u->rc == DH_OK) {
		u->mp = dh_multipart_new(boundary, &upload_cb, req);
		if (!u->mp)
			u->rc = DH_E_NOMEM;
	}
	return DH_OK;
}

/*
 * MHD cannot answer in the middle of a request body, so a failed upload keeps reading (and
 * dropping) the rest of it; the error, kept in u->rc and req->err, is answered at the end.
 * The temporary file goes at once.
 */
enum dh_err dh_api_firmware_upload_chunk(struct dh_req *req, const char *data, size_t len)
{
	struct upload *u;
	enum dh_err rc;

	if (!req->handler_state && (rc = upload_start(req)) != DH_OK)
		return rc;
	u = req->handler_state;
	if (u->rc != DH_OK)
		return DH_OK;
	u->received += len;
	if (u->received > dh_multipart_body_limit(dh_cfg.max_upload))
		u->rc = dh_error_set(&req->err, DH_E_TOO_LARGE,
				     "The upload is larger than the limit of %llu bytes (the image"
				     " and %u bytes for the form around it).",
				     (unsigned long long)dh_multipart_body_limit(dh_cfg.max_upload),
				     DH_MULTIPART_FORM_MAX);
	else
		u->rc = dh_multipart_feed(u->mp, data, len, &req->err);
	if (u->rc != DH_OK)
		upload_abort(req);
	return DH_OK;
}

/* ---- scope and rights ---- */

static enum dh_err fw_load(struct dh_req *req, const char *key, bool is_write, json_t **row);

bool dh_api_firmware_visible(struct dh_req *req, const char *key)
{
	struct dh_error kept = req->err; /* what the request found so far stays */
	json_t *row = NULL;
	bool seen;

	memset(&req->err, 0, sizeof(req->err));
	seen = fw_load(req, key, false, &row) != DH_E_NOT_FOUND;
	json_decref(row);
	dh_error_release(&req->err);
	req->err = kept;
	return seen;
}

/*
 * May the caller do act on a firmware of (product, model) in channels? A grant over the
 * model (or wider) always does; channel-narrowed grants must cover every channel when
 * is_write, one of them otherwise.
 */
static bool fw_allow(struct dh_req *req, enum dh_action act, const char *product, const char *model,
		     json_t *channels, bool is_write)
{
	struct dh_scope s = { .product = product, .model = model };
	size_t i, n = json_array_size(channels), ok = 0;
	json_t *c;

	if (dh_rights_allow(&req->who, act, &s))
		return true;
	json_array_foreach(channels, i, c)
	{
		s.channel = json_string_value(c);
		if (dh_rights_allow(&req->who, act, &s))
			ok++;
	}
	return is_write ? n > 0 && ok == n : ok > 0;
}

/* Who reads the catalogue: those who run updates or upload; drafts are for those who may
 * put drafts on devices (draft, and manage and admin that imply it) or upload them. */
#define FW_READ_ACTS  ((1u << DH_ACT_UPDATE) | (1u << DH_ACT_UPLOAD))
#define FW_DRAFT_ACTS ((1u << DH_ACT_DRAFT) | (1u << DH_ACT_UPLOAD))

static bool fw_allow_any(struct dh_req *req, unsigned acts, const char *product, const char *model,
			 json_t *channels)
{
	for (int a = DH_ACT_UPDATE; a <= DH_ACT_ADMIN; a++) {
		if ((acts & (1u << a)) &&
		    fw_allow(req, (enum dh_action)a, product, model, channels, false))
			return true;
	}
	return false;
}

static bool fw_readable(struct dh_req *req, json_t *row)
{
	const char *p = json_string_value(json_object_get(row, "product_id"));
	const char *m = json_string_value(json_object_get(row, "model_id"));
	json_t *ch = json_object_get(row, "channels");
	bool is_draft = json_integer_value(json_object_get(row, "draft")) != 0;

	return fw_allow_any(req, is_draft ? FW_DRAFT_ACTS : FW_READ_ACTS, p, m, ch);
}

/* Loads firmware key for reading or writing: 404 unless the caller sees it, 403 unless it
 * may act on it. */
static enum dh_err fw_load(struct dh_req *req, const char *key, bool is_write, json_t **row)
{
	struct dh_scope s = { 0 };
	enum dh_err rc;
	bool ok;

	*row = NULL;
	if (!key || strlen(key) > 64)
		return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such firmware.");
	rc = dh_db_firmware_get(req->db, key, row);
	if (rc == DH_E_NOT_FOUND)
		return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such firmware: '%s'.", key);
	if (rc != DH_OK)
		return rc;
	s.product = json_string_value(json_object_get(*row, "product_id"));
	s.model = json_string_value(json_object_get(*row, "model_id"));
	/* a draft is hidden from those who may not have it, as it is from the list */
	if (!dh_rights_sees(&req->who, &s) ||
	    (json_integer_value(json_object_get(*row, "draft")) != 0 &&
	     !fw_allow_any(req, FW_DRAFT_ACTS, s.product, s.model,
			   json_object_get(*row, "channels")))) {
		rc = dh_error_set(&req->err, DH_E_NOT_FOUND, "No such firmware: '%s'.", key);
	} else {
		ok = is_write ? fw_allow(req, DH_ACT_UPLOAD, s.product, s.model,
					 json_object_get(*row, "channels"), true)
			      : fw_readable(req, *row);
		if (!ok)
			rc = dh_error_set(&req->err, DH_E_FORBIDDEN,
					  "Your access rights do not cover this firmware.");
	}
	if (rc != DH_OK) {
		json_decref(*row);
		*row = NULL;
	}
	return rc;
}

/* The API object of a firmware row (new reference, NULL when out of memory). */
static json_t *fw_to_json(json_t *row)
{
	const char *info = json_string_value(json_object_get(row, "image_info"));
	json_t *ii = info ? json_loads(info, 0, NULL) : NULL;

	return json_pack("{s:O, s:O, s:O, s:O, s:O, s:b, s:O, s:O, s:O, s:O, s:o, s:O}", "id",
			 json_object_get(row, "id"), "tid", json_object_get(row, "tid"), "model",
			 json_object_get(row, "model_id"), "version",
			 json_object_get(row, "version"), "channels",
			 json_object_get(row, "channels"), "draft",
			 json_integer_value(json_object_get(row, "draft")) != 0, "description",
			 json_object_get(row, "description"), "size", json_object_get(row, "size"),
			 "sha256", json_object_get(row, "sha256"), "filename",
			 json_object_get(row, "filename"), "image_info", ii ? ii : json_null(),
			 "create_time", json_object_get(row, "create_time"));
}

/* ---- upload ---- */

/* image_info of an image from its first bytes: the MCUboot header's fields, or JSON null. */
static json_t *image_info(const uint8_t *h, size_t n)
{
	struct dh_mcuboot_hdr hdr;

	if (!dh_mcuboot_parse(h, n, &hdr))
		return json_null();
	return dh_mcuboot_to_json(&hdr);
}

/* Splits a comma list of channel keys, resolves each (uuid or tid) and drops repeats. */
static enum dh_err resolve_channels(struct dh_req *req, const char *list,
				    char ids[DH_FW_CHANNELS_MAX][DH_UUID_LEN], size_t *n)
{
	char key[DH_TID_MAX + 1];
	const char *p = list;

	*n = 0;
	while (p && *p) {
		size_t len = strcspn(p, ","), i;
		const char *s = p, *e = p + len;
		char id[DH_UUID_LEN];
		json_t *v;
		enum dh_err rc;

		p = *e ? e + 1 : e;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (s == e)
			continue;
		if ((size_t)(e - s) > DH_TID_MAX)
			return dh_error_field(&req->err, "channels", "each must be a uuid or tid");
		memcpy(key, s, (size_t)(e - s));
		key[e - s] = 0;
		v = json_string(key);
		if (!v)
			return DH_E_NOMEM;
		rc = dh_api_resolve_ref(req, "channels", "channels", true, v, id);
		json_decref(v);
		if (rc != DH_OK)
			return rc;
		for (i = 0; i < *n && strcmp(ids[i], id) != 0; i++)
			;
		if (i < *n)
			continue;
		if (*n == DH_FW_CHANNELS_MAX)
			return dh_error_field(&req->err, "channels", "too many channels");
		memcpy(ids[(*n)++], id, DH_UUID_LEN);
	}
	return DH_OK;
}

/* Checks the text fields and builds the row; every problem is named in req->err. */
static enum dh_err upload_row(struct dh_req *req, struct upload *u, json_t *row,
			      char channels[DH_FW_CHANNELS_MAX][DH_UUID_LEN], size_t *nch)
{
	char model_id[DH_UUID_LEN] = "";
	const char *v;
	struct dh_semver sv;
	json_t *key;
	enum dh_err rc;

	*nch = 0;
	if (!u->has_file)
		dh_error_field(&req->err, "file", "required: the image as a file part");
	else if (u->blob.size == 0)
		dh_error_field(&req->err, "file", "is empty");
	else if (!dh_utf8_valid(u->filename, strlen(u->filename)))
		dh_error_field(&req->err, "file", "the file name must be UTF-8 text");
	/* parts are bytes: each text field must be text before it is looked at */
	for (int i = 0; i < FF__COUNT; i++) {
		if (u->values[i] && (strlen(u->values[i]) != u->lens[i] ||
				     !dh_utf8_valid(u->values[i], u->lens[i]))) {
			dh_error_field(&req->err, form_fields[i].name,
				       "must be UTF-8 text without NUL bytes");
			free(u->values[i]);
			u->values[i] = NULL;
			u->lens[i] = 0;
		}
	}
	v = u->values[FF_MODEL];
	if (!v) {
		dh_error_field(&req->err, "model", "required");
	} else {
		key = json_string(v);
		rc = key ? dh_api_resolve_ref(req, "model", "models", true, key, model_id)
			 : DH_E_NOMEM;
		json_decref(key);
		if (rc != DH_OK && rc != DH_E_INVALID)
			return rc;
	}
	v = u->values[FF_VERSION];
	if (!v)
		dh_error_field(&req->err, "version", "required"); /* unless named above */
	else if (!dh_semver_parse(v, &sv))
		dh_error_field(&req->err, "version", "must be a SemVer 2.0 version");
	rc = resolve_channels(req, u->values[FF_CHANNELS], channels, nch);
	if (rc != DH_OK && rc != DH_E_INVALID)
		return rc;
	v = u->values[FF_DRAFT];
	if (v && strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
		dh_error_field(&req->err, "draft", "must be true or false");
	v = u->values[FF_TID];
	if (v && (!dh_tid_valid(v) || dh_uuid_valid(v)))
		dh_error_field(&req->err, "tid",
			       "must match [A-Za-z0-9._-]{1,64} and not look like a uuid");
	if (req->err.code != DH_OK)
		return req->err.code;
	if (json_object_set_new(row, "tid", v ? json_string(v) : json_null()) ||
	    json_object_set_new(row, "model_id", json_string(model_id)) ||
	    json_object_set_new(row, "version", json_string(u->values[FF_VERSION])) ||
	    json_object_set_new(row, "draft",
				json_integer(u->values[FF_DRAFT] &&
					     strcmp(u->values[FF_DRAFT], "true") == 0)) ||
	    json_object_set_new(
		    row, "description",
		    json_string(u->values[FF_DESCRIPTION] ? u->values[FF_DESCRIPTION] : "")) ||
	    json_object_set_new(row, "filename", json_string(u->filename)))
		return DH_E_NOMEM;
	return DH_OK;
}

/* Is blob sha256 still referenced by a firmware row? (true on a database error: keep it) */
static bool blob_in_use(struct dh_db *db, const char *sha256)
{
	bool used = true;

	if (dh_db_firmware_sha_used(db, sha256, &used) != DH_OK)
		used = true;
	return used;
}

/* Removes blob sha256 from disk when no firmware refers to it any more (blob.h's protocol:
 * epoch first, then the database, then the file). Call after the commit that dropped a
 * reference, outside any transaction. */
static bool drop_blob_if_unused(struct dh_db *db, const char *sha256)
{
	uint64_t epoch = dh_blob_epoch();

	return !blob_in_use(db, sha256) && dh_blob_remove_unused(sha256, epoch);
}

/* firmware.created/updated (the firmware as stored now) or firmware.deleted (as it was:
 * before), in the running transaction, scoped by the firmware's product and model; the
 * event stream shows a draft's events only to those who may see drafts. */
static enum dh_err fw_emit(struct dh_db *db, const char *type, const char *id, json_t *before)
{
	json_t *row = before ? json_incref(before) : NULL, *data = NULL;
	enum dh_err rc = DH_OK;

	if (!row)
		rc = dh_db_firmware_get(db, id, &row);
	if (rc == DH_OK) {
		bool is_draft = json_integer_value(json_object_get(row, "draft")) != 0;
		data = fw_to_json(row);
		rc = data ? dh_db_event_emit(
				    db, is_draft ? DH_ACT_DRAFT : DH_ACT_UPDATE, type, NULL,
				    json_string_value(json_object_get(row, "product_id")),
				    json_string_value(json_object_get(row, "model_id")), NULL, data)
			  : DH_E_NOMEM;
	}
	json_decref(row);
	json_decref(data);
	return rc;
}

struct fw_insert {
	json_t *row;
	const char *const *channels;
	size_t nch;
	const char *sha256;
	uint64_t size;
};

/* The image (a shared database keeps it too) and its row, in one transaction. */
static enum dh_err insert_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct fw_insert *f = cls;
	char path[DH_BLOB_PATH_MAX];
	enum dh_err rc;

	if (!dh_blob_path(f->sha256, path, sizeof(path)))
		return DH_E_INTERNAL;
	rc = dh_db_blob_store(db, f->sha256, f->size, path, err);
	if (rc == DH_OK)
		rc = dh_db_firmware_insert(db, f->row, f->channels, f->nch, err);
	if (rc == DH_OK)
		rc = fw_emit(db, "firmware.created",
			     json_string_value(json_object_get(f->row, "id")), NULL);
	return rc;
}

/*
 * Moves the image into the blob store, then records the row in one transaction. The file
 * work (rename, directory fsync) happens before the transaction, with the blob pinned so
 * that a concurrent delete of another firmware sharing the image cannot remove it; a failed
 * insert removes the file again if nothing else refers to it.
 */
static enum dh_err upload_store(struct dh_req *req, struct upload *u, json_t *row,
				const char *const *channels, size_t nch)
{
	struct fw_insert f = { row, channels, nch, u->blob.sha256, u->blob.size };
	char sha[DH_SHA256_HEX];
	bool created = false;
	enum dh_err rc;

	snprintf(sha, sizeof(sha), "%s", u->blob.sha256);
	dh_blob_pin(sha);
	rc = dh_blob_writer_place(&u->blob, &created, &req->err);
	if (rc == DH_OK)
		rc = dh_db_tx_run(req->db, insert_tx, &f, &req->err);
	dh_blob_unpin(sha);
	if (rc != DH_OK && created)
		drop_blob_if_unused(req->db, sha);
	if (rc == DH_E_CONFLICT && json_object_get(req->err.fields, "version"))
		dh_error_set(&req->err, DH_E_CONFLICT,
			     "This model already has firmware version %s; images are immutable.",
			     u->values[FF_VERSION]);
	return rc;
}

enum dh_err dh_api_firmware_create(struct dh_req *req)
{
	char channels[DH_FW_CHANNELS_MAX][DH_UUID_LEN], product[DH_UUID_LEN], id[DH_UUID_LEN];
	char now[DH_TIME_LEN], *info_text = NULL;
	const char *chp[DH_FW_CHANNELS_MAX];
	json_t *row = NULL, *stored = NULL, *chj = NULL, *info = NULL;
	struct upload *u;
	size_t nch = 0;
	enum dh_err rc;

	if (!req->handler_state) {
		/* no body at all: still say what is wrong with the content type first */
		rc = upload_start(req);
		if (rc != DH_OK)
			goto out;
	}
	u = req->handler_state;
	rc = u->rc != DH_OK ? u->rc : dh_multipart_finish(u->mp, &req->err);
	if (rc != DH_OK)
		goto out;
	row = json_object();
	chj = json_array();
	if (!row || !chj) {
		rc = DH_E_NOMEM;
		goto out;
	}
	rc = upload_row(req, u, row, channels, &nch);
	if (rc != DH_OK)
		goto out;
	for (size_t i = 0; i < nch; i++) {
		chp[i] = channels[i];
		json_array_append_new(chj, json_string(channels[i]));
	}
	rc = dh_api_model_product(req, json_string_value(json_object_get(row, "model_id")),
				  product);
	if (rc != DH_OK)
		goto out;
	if (!fw_allow(req, DH_ACT_UPLOAD, product,
		      json_string_value(json_object_get(row, "model_id")), chj, true)) {
		rc = dh_error_set(&req->err, DH_E_FORBIDDEN,
				  "Your access rights do not allow uploads for this model%s.",
				  nch ? " and these channels" : "");
		goto out;
	}
	rc = dh_blob_writer_close(&u->blob, &req->err);
	if (rc != DH_OK)
		goto out;
	info = image_info(u->head, u->head_len);
	dh_uuid_new(id);
	dh_time_format(dh_now_us(), now);
	json_object_set_new(row, "id", json_string(id));
	json_object_set_new(row, "create_time", json_string(now));
	json_object_set_new(row, "size", json_integer((json_int_t)u->blob.size));
	json_object_set_new(row, "sha256", json_string(u->blob.sha256));
	info_text = json_is_null(info) ? NULL : json_dumps(info, JSON_COMPACT);
	json_object_set_new(row, "image_info", info_text ? json_string(info_text) : json_null());
	rc = upload_store(req, u, row, chp, nch);
	if (rc != DH_OK)
		goto out;
	rc = dh_db_firmware_get(req->db, id, &stored);
	if (rc != DH_OK)
		goto out;
	dh_info("firmware.uploaded", "id=%s model=%s version=%s size=%llu sha256=%s", id,
		json_string_value(json_object_get(row, "model_id")), u->values[FF_VERSION],
		(unsigned long long)u->blob.size, u->blob.sha256);
	rc = dh_http_reply_json(req, 201, fw_to_json(stored));
out:
	if (rc != DH_OK)
		upload_abort(req);
	json_decref(row);
	json_decref(stored);
	json_decref(chj);
	json_decref(info);
	free(info_text);
	return rc;
}

/* ---- catalogue ---- */

enum dh_err dh_api_firmware_list(struct dh_req *req)
{
	struct dh_db_firmware_filter f = { .draft = -1 };
	struct dh_api_visibility vis = { 0 };
	char model_id[DH_UUID_LEN], channel_id[DH_UUID_LEN];
	int64_t limit, offset, count = 0;
	json_t *rows = NULL, *results = NULL, *row;
	const char *q;
	bool empty = false;
	enum dh_err rc;
	size_t i;

	rc = dh_api_page(req, &limit, &offset);
	if (rc != DH_OK)
		return rc;
	if ((q = dh_req_query(req, "draft")) != NULL) {
		if (strcmp(q, "true") != 0 && strcmp(q, "false") != 0)
			return dh_error_field(&req->err, "draft", "must be true or false");
		f.draft = strcmp(q, "true") == 0;
	}
	/* an unknown model or channel matches nothing, as for configuration objects */
	if ((q = dh_req_query(req, "model")) != NULL) {
		if (strlen(q) > 64 ||
		    dh_db_obj_resolve(req->db, "models", q, true, model_id) != DH_OK)
			empty = true;
		f.model_id = model_id;
	}
	if ((q = dh_req_query(req, "channel")) != NULL) {
		if (strlen(q) > 64 ||
		    dh_db_obj_resolve(req->db, "channels", q, true, channel_id) != DH_OK)
			empty = true;
		f.channel_id = channel_id;
	}
	f.version = dh_req_query(req, "version");
	results = json_array();
	if (!results)
		return DH_E_NOMEM;
	if (empty)
		goto reply;
	rc = dh_api_visibility(req, FW_READ_ACTS, FW_DRAFT_ACTS, &vis);
	if (rc != DH_OK)
		goto out;
	f.vis = dh_api_visibility_db(&vis);
	rc = dh_db_firmware_list(req->db, &f, limit, offset, &rows, &count);
	if (rc != DH_OK)
		goto out;
	json_array_foreach(rows, i, row)
	{
		if (json_array_append_new(results, fw_to_json(row)) != 0) {
			rc = DH_E_NOMEM;
			goto out;
		}
	}
reply:
	rc = dh_http_reply_json(req, 200, dh_api_list_envelope(req, count, limit, offset, results));
	results = NULL;
out:
	dh_api_visibility_release(&vis);
	json_decref(rows);
	json_decref(results);
	return rc;
}

enum dh_err dh_api_firmware_get(struct dh_req *req)
{
	json_t *row = NULL;
	enum dh_err rc = fw_load(req, req->args[0], false, &row);

	if (rc == DH_OK)
		rc = dh_http_reply_json(req, 200, fw_to_json(row));
	json_decref(row);
	return rc;
}

/* Fields of a firmware that describe the image itself: never changed by PATCH. */
static const char *const immutable_fields[] = {
	"model", "version", "file", "size", "sha256", "filename", "image_info", NULL,
};

/* Reads a PATCH body into column changes (cols) and, when given, new channel ids. */
static enum dh_err patch_body(struct dh_req *req, json_t *cols,
			      char channels[DH_FW_CHANNELS_MAX][DH_UUID_LEN], size_t *nch,
			      bool *has_channels)
{
	const char *k;
	json_t *v;
	enum dh_err rc;

	*has_channels = false;
	if (!req->json || !json_is_object(req->json))
		return dh_error_set(&req->err, DH_E_INVALID,
				    "A JSON object body is required (Content-Type: "
				    "application/json).");
	json_object_foreach(req->json, k, v)
	{
		bool immutable = false;
		for (size_t i = 0; immutable_fields[i]; i++)
			immutable = immutable || strcmp(k, immutable_fields[i]) == 0;
		if (immutable) {
			dh_error_field(
				&req->err, k,
				"cannot be changed: the image and its version are immutable");
		} else if (strcmp(k, "id") == 0 || strcmp(k, "create_time") == 0) {
			continue; /* echoing an object back is harmless */
		} else if (strcmp(k, "draft") == 0) {
			if (!json_is_boolean(v))
				dh_error_field(&req->err, k, "must be true or false");
			else
				json_object_set_new(cols, "draft", json_integer(json_is_true(v)));
		} else if (strcmp(k, "description") == 0) {
			if (!json_is_string(v) || json_string_length(v) > DH_FW_DESCRIPTION_MAX ||
			    strlen(json_string_value(v)) != json_string_length(v))
				dh_error_field(&req->err, k,
					       "must be a string of at most 4096 bytes");
			else
				json_object_set(cols, "description", v);
		} else if (strcmp(k, "tid") == 0) {
			if (json_is_null(v))
				json_object_set(cols, "tid", v);
			else if (!json_is_string(v) || !dh_tid_valid(json_string_value(v)) ||
				 dh_uuid_valid(json_string_value(v)))
				dh_error_field(
					&req->err, k,
					"must match [A-Za-z0-9._-]{1,64} and not look like a "
					"uuid");
			else
				json_object_set(cols, "tid", v);
		} else if (strcmp(k, "channels") == 0) {
			size_t i;
			json_t *c;
			char list[DH_FW_CHANNELS_MAX * 66] = "";
			size_t o = 0;
			if (!json_is_array(v) || json_array_size(v) > DH_FW_CHANNELS_MAX) {
				dh_error_field(&req->err, k,
					       "must be a list of channel ids or tids");
				continue;
			}
			json_array_foreach(v, i, c)
			{
				const char *s = json_string_value(c);
				if (!s || !*s || strlen(s) > DH_TID_MAX || strchr(s, ',')) {
					dh_error_field(&req->err, k, "each must be a uuid or tid");
					break;
				}
				o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s",
						      i ? "," : "", s);
			}
			if (req->err.fields && json_object_get(req->err.fields, k))
				continue;
			rc = resolve_channels(req, list, channels, nch);
			if (rc != DH_OK && rc != DH_E_INVALID)
				return rc;
			*has_channels = true;
		} else {
			dh_error_field(&req->err, k, "unknown field");
		}
	}
	return req->err.code;
}

struct fw_patch {
	const char *id;
	json_t *cols;
	const char *const *channels; /* NULL: unchanged */
	size_t nch;
};

static enum dh_err patch_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct fw_patch *p = cls;
	enum dh_err rc = DH_OK;

	if (json_object_size(p->cols))
		rc = dh_db_obj_update(db, "firmware", p->id, p->cols, err);
	if (rc == DH_OK && p->channels)
		rc = dh_db_firmware_set_channels(db, p->id, p->channels, p->nch, err);
	if (rc == DH_OK)
		rc = fw_emit(db, "firmware.updated", p->id, NULL);
	return rc;
}

enum dh_err dh_api_firmware_patch(struct dh_req *req)
{
	char channels[DH_FW_CHANNELS_MAX][DH_UUID_LEN];
	const char *chp[DH_FW_CHANNELS_MAX];
	json_t *row = NULL, *cols = NULL, *chj = NULL, *stored = NULL;
	size_t nch = 0;
	bool has_channels;
	const char *id;
	enum dh_err rc;

	rc = fw_load(req, req->args[0], true, &row);
	if (rc != DH_OK)
		goto out;
	cols = json_object();
	chj = json_array();
	if (!cols || !chj) {
		rc = DH_E_NOMEM;
		goto out;
	}
	rc = patch_body(req, cols, channels, &nch, &has_channels);
	if (rc != DH_OK)
		goto out;
	id = json_string_value(json_object_get(row, "id"));
	if (has_channels) {
		for (size_t i = 0; i < nch; i++) {
			chp[i] = channels[i];
			json_array_append_new(chj, json_string(channels[i]));
		}
		/* moving an image between channels needs the right over the new ones too */
		if (!fw_allow(req, DH_ACT_UPLOAD,
			      json_string_value(json_object_get(row, "product_id")),
			      json_string_value(json_object_get(row, "model_id")), chj, true)) {
			rc = dh_error_set(&req->err, DH_E_FORBIDDEN,
					  "Your access rights do not cover these channels.");
			goto out;
		}
	}
	rc = dh_db_tx_run(req->db, patch_tx,
			  &(struct fw_patch){ id, cols, has_channels ? chp : NULL, nch },
			  &req->err);
	if (rc != DH_OK)
		goto out;
	rc = dh_db_firmware_get(req->db, id, &stored);
	if (rc == DH_OK)
		rc = dh_http_reply_json(req, 200, fw_to_json(stored));
out:
	json_decref(row);
	json_decref(cols);
	json_decref(chj);
	json_decref(stored);
	return rc;
}

struct fw_delete {
	const char *id;
	json_t *row; /* as loaded, for the event */
	bool blob_unused;
};

static enum dh_err delete_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct fw_delete *d = cls;
	enum dh_err rc = dh_db_firmware_delete(db, d->id, &d->blob_unused, err);

	if (rc == DH_OK)
		rc = fw_emit(db, "firmware.deleted", d->id, d->row);
	return rc;
}

enum dh_err dh_api_firmware_delete(struct dh_req *req)
{
	struct fw_delete d = { 0 };
	json_t *row = NULL;
	const char *sha;
	bool removed = false;
	enum dh_err rc;

	rc = fw_load(req, req->args[0], true, &row);
	if (rc != DH_OK)
		goto out;
	d.id = json_string_value(json_object_get(row, "id"));
	d.row = row;
	sha = json_string_value(json_object_get(row, "sha256"));
	rc = dh_db_tx_run(req->db, delete_tx, &d, &req->err);
	if (rc != DH_OK) {
		if (rc == DH_E_REFERENCED)
			dh_error_set(&req->err, DH_E_REFERENCED,
				     "This firmware is still referenced by a device or a session; "
				     "change those first.");
		goto out;
	}
	/* the file goes after the commit, outside the transaction */
	if (d.blob_unused) {
		removed = drop_blob_if_unused(req->db, sha);
		dh_db_blob_drop_unused(req->db, sha);
	}
	dh_info("firmware.deleted", "id=%s blob_removed=%s", d.id, removed ? "yes" : "no");
	rc = dh_http_reply_empty(req, 204);
out:
	json_decref(row);
	return rc;
}

enum dh_err dh_api_firmware_image(struct dh_req *req)
{
	json_t *row = NULL;
	enum dh_err rc = fw_load(req, req->args[0], false, &row);

	if (rc == DH_OK)
		rc = dh_api_send_blob(req, json_string_value(json_object_get(row, "sha256")),
				      (uint64_t)json_integer_value(json_object_get(row, "size")),
				      json_string_value(json_object_get(row, "create_time")), NULL);
	json_decref(row);
	return rc;
}
