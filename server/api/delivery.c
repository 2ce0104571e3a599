/*
 * Delivery methods and delivery procedures. A procedure names its method, the ordered
 * steps a worker runs for each session, whether the device must confirm, and the
 * timeouts of each session state. Steps are checked here against the plugin registry;
 * `exec` steps may only be configured by an admin.
 */
#include "api/api.h"
#include "api/objects.h"
#include "core/text.h"
#include "core/util.h"
#include "plugins/registry.h"

#include <stdio.h>
#include <string.h>

/* Payload keys of the pipeline and the built-in steps: a step's name may not take them, since
 * steps such as http merge their answer into the payload under their name. */
static const char *const reserved_names[] = { "download_link", "size",      "sha256", "progress",
					      "short_link",    "coap_link", "mesh",   "delivered" };

/* Steps in one procedure; a real pipeline has two or three. */
#define DH_MAX_STEPS 32
/* Ten years: the longest timeout or retention accepted, in seconds. */
#define DH_MAX_TIMEOUT 315360000LL

static const struct dh_field method_fields[] = {
	{ .name = "tid", .column = "tid", .type = DH_F_TID, .flags = DH_F_REQUIRED | DH_F_FILTER },
	{ .name = "name",
	  .column = "name",
	  .type = DH_F_TEXT,
	  .flags = DH_F_REQUIRED,
	  .min = 1,
	  .max = 200 },
	{ .name = "kind",
	  .column = "kind",
	  .type = DH_F_TID,
	  .flags = DH_F_REQUIRED | DH_F_FILTER },
};

static const struct dh_resource methods = {
	.name = "delivery method",
	.table = "delivery_methods",
	.has_tid = true,
	.fields = method_fields,
	.nfields = sizeof(method_fields) / sizeof(method_fields[0]),
	.right = DH_ACT_MANAGE,
	.event_kind = "delivery_method",
};

DH_CRUD_HANDLERS(delivery_methods, methods)

/* A step's optional name: a tid, not a reserved payload key, unique in the procedure. */
static enum dh_err check_step_name(struct dh_req *req, json_t *steps, size_t i)
{
	json_t *v = json_object_get(json_array_get(steps, i), "name");
	const char *name = json_string_value(v);
	char what[160];

	if (!v)
		return DH_OK;
	if (!name || !dh_tid_valid(name)) {
		snprintf(what, sizeof(what), "step %zu: 'name' must match [A-Za-z0-9._-]{1,64}", i);
		return dh_error_field(&req->err, "steps", what);
	}
	for (size_t r = 0; r < sizeof(reserved_names) / sizeof(reserved_names[0]); r++) {
		if (strcmp(name, reserved_names[r]) == 0) {
			snprintf(what, sizeof(what),
				 "step %zu: the name '%s' is a payload key of"
				 " its own",
				 i, name);
			return dh_error_field(&req->err, "steps", what);
		}
	}
	for (size_t j = 0; j < i; j++) {
		const char *other =
			json_string_value(json_object_get(json_array_get(steps, j), "name"));
		if (other && strcmp(other, name) == 0) {
			snprintf(what, sizeof(what), "step %zu: the name '%s' is taken by step %zu",
				 i, name, j);
			return dh_error_field(&req->err, "steps", what);
		}
	}
	return DH_OK;
}

static enum dh_err check_steps(struct dh_req *req, const struct dh_resource *res, json_t *row,
			       bool creating)
{
	json_t *steps = json_object_get(row, "steps"), *step, *v;
	const char *k, *plugin;
	char what[160 + DH_PLUGIN_WHY_MAX], why[DH_PLUGIN_WHY_MAX];
	bool admin_only;
	size_t i;

	(void)res;
	(void)creating;
	if (!steps || json_is_string(steps))
		return DH_OK; /* unchanged, stored form */
	if (json_array_size(steps) > DH_MAX_STEPS)
		return dh_error_field(&req->err, "steps", "at most 32 steps");
	json_array_foreach(steps, i, step)
	{
		if (!json_is_object(step)) {
			snprintf(what, sizeof(what), "step %zu must be an object", i);
			return dh_error_field(&req->err, "steps", what);
		}
		json_object_foreach(step, k, v)
		{
			if (strcmp(k, "plugin") && strcmp(k, "params") && strcmp(k, "name")) {
				snprintf(what, sizeof(what), "step %zu: unknown key '%s'", i, k);
				return dh_error_field(&req->err, "steps", what);
			}
		}
		if (check_step_name(req, steps, i) != DH_OK)
			return req->err.code;
		plugin = json_string_value(json_object_get(step, "plugin"));
		if (!plugin) {
			snprintf(what, sizeof(what), "step %zu: 'plugin' must be a string", i);
			return dh_error_field(&req->err, "steps", what);
		}
		v = json_object_get(step, "params");
		if (v && !json_is_object(v)) {
			snprintf(what, sizeof(what), "step %zu: 'params' must be an object", i);
			return dh_error_field(&req->err, "steps", what);
		}
		if (!dh_plugin_known(plugin, &admin_only)) {
			snprintf(what, sizeof(what), "step %zu: unknown plugin '%.*s'", i,
				 DH_TEXT_CUT(plugin, 60));
			return dh_error_field(&req->err, "steps", what);
		}
		if (admin_only && !dh_rights_is_admin(&req->who))
			return dh_error_set(&req->err, DH_E_FORBIDDEN,
					    "Only an admin may configure '%s' steps.", plugin);
		if (!dh_plugin_validate(plugin, v, why, sizeof(why))) {
			snprintf(what, sizeof(what), "step %zu (%.*s): %s", i,
				 DH_TEXT_CUT(plugin, 40), why);
			return dh_error_field(&req->err, "steps", what);
		}
	}
	return DH_OK;
}

static const struct dh_field procedure_fields[] = {
	{ .name = "tid", .column = "tid", .type = DH_F_TID, .flags = DH_F_REQUIRED | DH_F_FILTER },
	{ .name = "name",
	  .column = "name",
	  .type = DH_F_TEXT,
	  .flags = DH_F_REQUIRED,
	  .min = 1,
	  .max = 200 },
	{ .name = "delivery_method",
	  .column = "delivery_method_id",
	  .type = DH_F_REF,
	  .flags = DH_F_REQUIRED | DH_F_FILTER,
	  .ref_table = "delivery_methods",
	  .ref_has_tid = true },
	{ .name = "steps", .column = "steps", .type = DH_F_ARRAY },
	{ .name = "confirm", .column = "confirm", .type = DH_F_BOOL },
	{ .name = "ready_timeout",
	  .column = "ready_timeout",
	  .type = DH_F_INT,
	  .min = 1,
	  .max = DH_MAX_TIMEOUT },
	{ .name = "processing_timeout",
	  .column = "processing_timeout",
	  .type = DH_F_INT,
	  .min = 1,
	  .max = DH_MAX_TIMEOUT },
	{ .name = "confirm_timeout",
	  .column = "confirm_timeout",
	  .type = DH_F_INT,
	  .min = 1,
	  .max = DH_MAX_TIMEOUT },
	{ .name = "retention",
	  .column = "retention",
	  .type = DH_F_INT,
	  .min = 1,
	  .max = DH_MAX_TIMEOUT },
};

static const struct dh_resource procedures = {
	.name = "delivery procedure",
	.table = "delivery_procedures",
	.has_tid = true,
	.fields = procedure_fields,
	.nfields = sizeof(procedure_fields) / sizeof(procedure_fields[0]),
	.right = DH_ACT_MANAGE,
	.hooks = { .validate = check_steps },
	.event_kind = "delivery_procedure",
};

DH_CRUD_HANDLERS(delivery_procedures, procedures)
