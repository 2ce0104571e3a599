/*
 * Users: people and machines that hold tokens and access rights. Managing users needs
 * admin. Every change invalidates the authentication cache at once.
 */
#include "api/api.h"
#include "api/objects.h"

#include <string.h>

static enum dh_err not_self(struct dh_req *req, const struct dh_resource *res, json_t *row,
			    bool creating)
{
	(void)res;
	if (!creating && json_is_false(json_object_get(req->json, "is_active")) &&
	    strcmp(json_string_value(json_object_get(row, "id")), req->who.user_id) == 0)
		return dh_error_field(&req->err, "is_active", "you cannot deactivate yourself");
	return DH_OK;
}

static const struct dh_field user_fields[] = {
	{ .name = "tid", .column = "tid", .type = DH_F_TID, .flags = DH_F_REQUIRED | DH_F_FILTER },
	{ .name = "name",
	  .column = "name",
	  .type = DH_F_TEXT,
	  .flags = DH_F_REQUIRED,
	  .min = 1,
	  .max = DH_USER_NAME_MAX },
	{ .name = "email", .column = "email", .type = DH_F_TEXT, .max = 320 },
	{ .name = "is_active", .column = "is_active", .type = DH_F_BOOL, .flags = DH_F_FILTER },
};

static const struct dh_resource users = {
	.name = "user",
	.table = "users",
	.has_tid = true,
	.fields = user_fields,
	.nfields = sizeof(user_fields) / sizeof(user_fields[0]),
	.right = DH_ACT_ADMIN,
	.hooks = { .validate = not_self, .after_write = dh_api_obj_auth_changed },
};

DH_CRUD_HANDLERS(users, users)
