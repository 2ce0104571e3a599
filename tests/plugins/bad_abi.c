/*
 * A plugin built for another ABI version, and one that tries to take a built-in step's
 * name: the loader must refuse both (tests/api/test_plugins.py).
 */
#include "plugins/dh_plugin.h"

#include <stddef.h>

static enum dh_step_result never_run(struct dh_step_ctx *ctx)
{
	(void)ctx;
	return DH_STEP_FAIL;
}

static const struct dh_plugin plugin = {
	.abi = DH_PLUGIN_ABI + 1,
	.name = TEST_PLUGIN_NAME,
	.run = never_run,
};

const struct dh_plugin *dh_plugin_entry(void);

const struct dh_plugin *dh_plugin_entry(void)
{
	return &plugin;
}
