/*
 * A delivery-step plugin built as a shared object for tests/api/test_plugins.py, written
 * against plugins/dh_plugin.h alone. Step "test_echo": merges what it saw into
 * payload.test_echo, reports progress, fails when params.fail is a string (that sentence),
 * and with params.sleep_ms waits that long while honouring cancellation.
 */
#include "plugins/dh_plugin.h"

#include <stdio.h>
#include <time.h>

static int inits;

static int echo_init(void)
{
	inits++;
	return 0;
}

static enum dh_step_result echo_run(struct dh_step_ctx *ctx)
{
	json_t *fail = json_object_get(ctx->params, "fail");
	json_t *sleep_ms = json_object_get(ctx->params, "sleep_ms");
	json_t *obj;
	FILE *f;
	long long n = 0;
	int rc;

	if (json_is_string(fail)) {
		snprintf(ctx->error, sizeof(ctx->error), "%s", json_string_value(fail));
		return DH_STEP_FAIL;
	}
	if (json_is_integer(sleep_ms)) {
		struct timespec ts = { 0, 20 * 1000000L };
		for (json_int_t waited = 0; waited < json_integer_value(sleep_ms); waited += 20) {
			if (ctx->cancelled(ctx))
				return DH_STEP_CANCELLED;
			nanosleep(&ts, NULL);
		}
	}
	/* read the image the server hands over, to prove the path and size */
	f = fopen(ctx->image_path, "rb");
	if (f) {
		while (fgetc(f) != EOF)
			n++;
		fclose(f);
	}
	ctx->progress(ctx, 0.5, "half way");
	obj = json_pack("{s:{s:s, s:s, s:s, s:I, s:I, s:s, s:O, s:i, s:i, s:b}}", "test_echo",
			"session", ctx->session_id, "device", ctx->device_id, "target",
			ctx->target_version, "image_size", (json_int_t)ctx->image_size,
			"bytes_read", (json_int_t)n, "sha256", ctx->image_sha256, "params",
			ctx->params, "step_index", (int)ctx->step_index, "inits", inits, "saw_link",
			json_object_get(ctx->payload, "download_link") != NULL);
	if (!obj) {
		snprintf(ctx->error, sizeof(ctx->error), "out of memory");
		return DH_STEP_FAIL;
	}
	rc = ctx->merge(ctx, obj);
	json_decref(obj);
	return rc == 0 ? DH_STEP_OK : DH_STEP_FAIL;
}

static const struct dh_plugin plugin = {
	.abi = DH_PLUGIN_ABI,
	.name = "test_echo",
	.admin_only = false,
	.init = echo_init,
	.run = echo_run,
};

const struct dh_plugin *dh_plugin_entry(void);

const struct dh_plugin *dh_plugin_entry(void)
{
	return &plugin;
}
