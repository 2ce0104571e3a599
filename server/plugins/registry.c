/*
 * The step-name registry. Built-in steps are listed here; loadable plugins register
 * themselves at start-up through the loader.
 */
#include "plugins/registry.h"
#include "plugins/http_step.h"
#include "plugins/loader.h"
#include "plugins/mesh_smp.h"

#include <string.h>

static const struct {
	const char *name;
	bool admin_only;
} builtin[] = {
	{ "link", false },
	{ "exec", true },
	{ "mesh_smp", false },
	{ "http", false },
};

bool dh_plugin_known(const char *name, bool *admin_only)
{
	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
		if (strcmp(name, builtin[i].name) == 0) {
			*admin_only = builtin[i].admin_only;
			return true;
		}
	}
	return dh_plugin_loaded(name, admin_only);
}

/* Params checkers of built-in steps, run when a procedure is saved. */
static const struct {
	const char *name;
	bool (*validate)(const json_t *params, char *why, size_t cap);
} validators[] = {
	{ "mesh_smp", dh_mesh_smp_validate },
	{ "exec", dh_exec_validate },
	{ "http", dh_http_step_validate },
};

bool dh_plugin_validate(const char *name, const json_t *params, char *why, size_t cap)
{
	for (size_t i = 0; i < sizeof(validators) / sizeof(validators[0]); i++) {
		if (strcmp(name, validators[i].name) == 0)
			return validators[i].validate(params, why, cap);
	}
	return true;
}
