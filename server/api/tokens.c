/*
 * Tokens: the secrets clients send as "Authorization: Token <secret>". The secret is made
 * here, shown once in the create answer, and only its SHA-256 is stored. Any user may
 * manage their own tokens (any grant will do, whatever its scope); an admin manages
 * everyone's. Revocation is final. Revocation and deletion take effect at the next request
 * through the authentication cache's generation counter.
 */
#include "api/api.h"
#include "api/objects.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Random bytes in a secret: 192 bits, written as 48 hex digits after "dh_". */
#define DH_SECRET_BYTES 24
#define DH_SECRET_LEN   (3 + 2 * DH_SECRET_BYTES + 1)

static enum dh_err own_only(struct dh_req *req, json_t *row)
{
	const char *user = json_string_value(json_object_get(row, "user_id"));

	if (dh_rights_is_admin(&req->who) || (user && strcmp(user, req->who.user_id) == 0))
		return DH_OK;
	return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such token.");
}

static size_t own_filter(struct dh_req *req, struct dh_db_where *w, size_t max)
{
	if (max == 0 || dh_rights_is_admin(&req->who))
		return 0;
	w[0].column = "user_id";
	w[0].value = json_string(req->who.user_id);
	return 1;
}

static enum dh_err make_secret(struct dh_req *req, const struct dh_resource *res, json_t *row,
			       bool creating)
{
	uint8_t raw[DH_SECRET_BYTES];
	char *secret, hash[DH_SHA256_HEX];

	(void)res;
	if (!creating)
		return own_only(req, row);
	if (!json_object_get(row, "user_id"))
		json_object_set_new(row, "user_id", json_string(req->who.user_id));
	if (own_only(req, row) != DH_OK)
		return dh_error_set(&req->err, DH_E_FORBIDDEN,
				    "Only an admin may create tokens for other users.");
	secret = malloc(DH_SECRET_LEN);
	if (!secret || !dh_random(raw, sizeof(raw))) {
		free(secret);
		return DH_E_INTERNAL;
	}
	memcpy(secret, "dh_", 3);
	dh_hex(raw, sizeof(raw), secret + 3);
	dh_sha256_hex(secret, strlen(secret), hash);
	json_object_set_new(row, "secret_hash", json_string(hash));
	json_object_set_new(row, "prefix", json_stringn(secret, 7));
	free(req->handler_state);
	req->handler_state = secret;
	req->handler_state_free = free;
	return DH_OK;
}

static enum dh_err show_secret_once(struct dh_req *req, json_t *row, json_t *out)
{
	(void)row;
	if (req->handler_state && req->method == DH_POST)
		json_object_set_new(out, "secret", json_string(req->handler_state));
	return DH_OK;
}

/* Revocation is final: no one, owner or admin, sets a revoked token's revoked back to false.
 * Checked against the stored row inside the write transaction, so that a revocation that
 * commits first cannot be undone by a patch read before it. */
static enum dh_err revocation_is_final(struct dh_req *req, const char *id, json_t *cols,
				       json_t *row)
{
	json_t *stored = NULL, *v = cols ? json_object_get(cols, "revoked") : NULL;
	enum dh_err rc;

	(void)row;
	if (!v || json_integer_value(v) != 0)
		return DH_OK;
	rc = dh_db_obj_get(req->db, "tokens", id, false, &stored);
	if (rc == DH_OK && json_integer_value(json_object_get(stored, "revoked")) != 0)
		rc = dh_error_set(&req->err, DH_E_REVOKED,
				  "The token was revoked, and revocation is final; create a new"
				  " token instead.");
	json_decref(stored);
	return rc;
}

static const struct dh_field token_fields[] = {
	{ .name = "tid", .column = "tid", .type = DH_F_TID, .flags = DH_F_FILTER | DH_F_NULLABLE },
	{ .name = "user",
	  .column = "user_id",
	  .type = DH_F_REF,
	  .flags = DH_F_FILTER | DH_F_IMMUTABLE,
	  .ref_table = "users",
	  .ref_has_tid = true },
	{ .name = "name", .column = "name", .type = DH_F_TEXT, .max = 200 },
	{ .name = "expire_time",
	  .column = "expire_time",
	  .type = DH_F_TIME,
	  .flags = DH_F_NULLABLE },
	{ .name = "revoked", .column = "revoked", .type = DH_F_BOOL, .flags = DH_F_FILTER },
	{ .name = "prefix", .column = "prefix", .type = DH_F_TEXT, .flags = DH_F_READONLY },
	{ .name = "secret_hash",
	  .column = "secret_hash",
	  .type = DH_F_TEXT,
	  .flags = DH_F_READONLY | DH_F_HIDDEN },
};

static const struct dh_resource tokens = {
	.name = "token",
	.table = "tokens",
	.has_tid = true,
	.fields = token_fields,
	.nfields = sizeof(token_fields) / sizeof(token_fields[0]),
	.right = DH_ACT_AUTH,
	.hooks = { .validate = make_secret,
		   .access = own_only,
		   .before_write = revocation_is_final,
		   .decorate = show_secret_once,
		   .after_write = dh_api_obj_auth_changed,
		   .list_filter = own_filter },
};

DH_CRUD_HANDLERS(tokens, tokens)
