/*
 * The step-name registry. Built-in steps are listed here; loadable plugins register
 * themselves at start-up through the loader.
 */
#include "plugins/registry.h"

#include <string.h>

static const struct {
	const char *name;
	bool admin_only;
} builtin[] = {
	{ "link", false },
	{ "exec", true },
	{ "mesh_smp", false },
};

bool dh_plugin_known(const char *name, bool *admin_only)
{
	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
		if (strcmp(name, builtin[i].name) == 0) {
			*admin_only = builtin[i].admin_only;
			return true;
		}
	}
	return false;
}
