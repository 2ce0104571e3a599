/*
 * Access rights: grants of an action (admin, manage, upload, update, draft) to a user over
 * everything, a product, a model, or a model and channel. Only an admin grants rights.
 * Every change invalidates the authentication cache at once.
 */
#include "api/api.h"
#include "api/objects.h"

#include <string.h>

static const char *const actions[] = { "admin", "manage", "upload", "update", "draft", NULL };

static bool set(json_t *row, const char *col)
{
	json_t *v = json_object_get(row, col);
	return v && json_is_string(v);
}

static enum dh_err check_scope_fields(struct dh_req *req, const struct dh_resource *res,
				      json_t *row, bool creating)
{
	char mp[DH_UUID_LEN];
	enum dh_err rc = DH_OK;

	(void)res;
	if (strcmp(json_string_value(json_object_get(row, "action")), "admin") == 0 &&
	    (set(row, "product_id") || set(row, "model_id") || set(row, "channel_id")))
		return dh_error_field(&req->err, "action", "admin is always over everything");
	if (set(row, "channel_id") && !set(row, "model_id"))
		return dh_error_field(&req->err, "channel", "a channel scope needs a model");
	if (!set(row, "model_id"))
		return DH_OK;
	rc = dh_api_model_product(req, json_string_value(json_object_get(row, "model_id")), mp);
	if (rc != DH_OK)
		return rc;
	/* on a patch the stored product follows a new model unless one is named too */
	if (set(row, "product_id") && (creating || json_object_get(req->json, "product")) &&
	    strcmp(json_string_value(json_object_get(row, "product_id")), mp) != 0)
		rc = dh_error_field(&req->err, "product", "is not the model's product");
	else
		json_object_set_new(row, "product_id", json_string(mp));
	return rc;
}

static const struct dh_field right_fields[] = {
	{ .name = "tid", .column = "tid", .type = DH_F_TID, .flags = DH_F_FILTER | DH_F_NULLABLE },
	{ .name = "user",
	  .column = "user_id",
	  .type = DH_F_REF,
	  .flags = DH_F_REQUIRED | DH_F_FILTER,
	  .ref_table = "users",
	  .ref_has_tid = true },
	{ .name = "action",
	  .column = "action",
	  .type = DH_F_ENUM,
	  .flags = DH_F_REQUIRED | DH_F_FILTER,
	  .enum_values = actions },
	{ .name = "product",
	  .column = "product_id",
	  .type = DH_F_REF,
	  .flags = DH_F_FILTER | DH_F_NULLABLE,
	  .ref_table = "products",
	  .ref_has_tid = true },
	{ .name = "model",
	  .column = "model_id",
	  .type = DH_F_REF,
	  .flags = DH_F_FILTER | DH_F_NULLABLE,
	  .ref_table = "models",
	  .ref_has_tid = true },
	{ .name = "channel",
	  .column = "channel_id",
	  .type = DH_F_REF,
	  .flags = DH_F_FILTER | DH_F_NULLABLE,
	  .ref_table = "channels",
	  .ref_has_tid = true },
};

static const struct dh_resource rights = {
	.name = "access right",
	.table = "access_rights",
	.has_tid = true,
	.fields = right_fields,
	.nfields = sizeof(right_fields) / sizeof(right_fields[0]),
	.right = DH_ACT_ADMIN,
	.hooks = { .validate = check_scope_fields, .after_write = dh_api_obj_auth_changed },
};

DH_CRUD_HANDLERS(access_rights, rights)
