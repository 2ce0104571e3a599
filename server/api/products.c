/*
 * Products: the top of the catalogue. A product is its own access-rights scope.
 */
#include "api/api.h"
#include "api/objects.h"

#include <stdio.h>

static enum dh_err product_scope(struct dh_req *req, json_t *row, struct dh_scope *s,
				 char ids[3][DH_UUID_LEN])
{
	(void)req;
	snprintf(ids[0], DH_UUID_LEN, "%s", json_string_value(json_object_get(row, "id")));
	s->product = ids[0];
	return DH_OK;
}

static const struct dh_field product_fields[] = {
	{ .name = "tid", .column = "tid", .type = DH_F_TID, .flags = DH_F_REQUIRED | DH_F_FILTER },
	{ .name = "name",
	  .column = "name",
	  .type = DH_F_TEXT,
	  .flags = DH_F_REQUIRED,
	  .min = 1,
	  .max = 200 },
	{ .name = "description", .column = "description", .type = DH_F_TEXT, .max = 4000 },
};

static const struct dh_resource products = {
	.name = "product",
	.table = "products",
	.has_tid = true,
	.fields = product_fields,
	.nfields = sizeof(product_fields) / sizeof(product_fields[0]),
	.right = DH_ACT_MANAGE,
	.hooks = { .scope = product_scope },
	.event_kind = "product",
};

DH_CRUD_HANDLERS(products, products)
