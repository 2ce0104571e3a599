/*
 * Models: a product's hardware variants; firmware and devices belong to a model. A model's
 * access-rights scope is its product and itself. Moving a model to another product moves
 * everything of the model along in the same transaction: its firmware and devices (they
 * join the model), its sessions, the grants over it and its webhooks (they record the
 * product: dh_db_model_product_follow), so that rights over the new product cover all of it
 * and rights over the old one none. Every write invalidates the authentication cache.
 */
#include "api/api.h"
#include "api/objects.h"

#include <stdio.h>

static enum dh_err model_scope(struct dh_req *req, json_t *row, struct dh_scope *s,
			       char ids[3][DH_UUID_LEN])
{
	(void)req;
	snprintf(ids[0], DH_UUID_LEN, "%s", json_string_value(json_object_get(row, "product_id")));
	snprintf(ids[1], DH_UUID_LEN, "%s", json_string_value(json_object_get(row, "id")));
	s->product = ids[0];
	s->model = ids[1];
	return DH_OK;
}

/* after_write: inside the write's transaction, so a move is all or nothing */
static enum dh_err model_written(struct dh_req *req, const char *id, json_t *row)
{
	const char *product = json_string_value(json_object_get(row, "product_id"));
	enum dh_err rc;

	if (row && product) {
		rc = dh_db_model_product_follow(req->db, id, product, &req->err);
		if (rc != DH_OK)
			return rc;
	}
	return dh_api_obj_auth_changed(req, id, row);
}

static const struct dh_field model_fields[] = {
	{ .name = "tid", .column = "tid", .type = DH_F_TID, .flags = DH_F_REQUIRED | DH_F_FILTER },
	{ .name = "product",
	  .column = "product_id",
	  .type = DH_F_REF,
	  .flags = DH_F_REQUIRED | DH_F_FILTER,
	  .ref_table = "products",
	  .ref_has_tid = true },
	{ .name = "name",
	  .column = "name",
	  .type = DH_F_TEXT,
	  .flags = DH_F_REQUIRED,
	  .min = 1,
	  .max = 200 },
	{ .name = "description", .column = "description", .type = DH_F_TEXT, .max = 4000 },
};

static const struct dh_resource models = {
	.name = "model",
	.table = "models",
	.has_tid = true,
	.fields = model_fields,
	.nfields = sizeof(model_fields) / sizeof(model_fields[0]),
	.right = DH_ACT_MANAGE,
	/* grants over a model are over its product: a move changes what principals hold */
	.hooks = { .scope = model_scope, .after_write = model_written },
	.event_kind = "model",
};

DH_CRUD_HANDLERS(models, models)
