/* A plugin of the right ABI that claims the built-in `link` name: refused as taken. */
#include "plugins/dh_plugin.h"

#include <stddef.h>

static enum dh_step_result never_run(struct dh_step_ctx *ctx)
{
	(void)ctx;
	return DH_STEP_FAIL;
}

static const struct dh_plugin plugin = {
	.abi = DH_PLUGIN_ABI,
	.name = "link",
	.run = never_run,
};

const struct dh_plugin *dh_plugin_entry(void);

const struct dh_plugin *dh_plugin_entry(void)
{
	return &plugin;
}
