/*
 * The `link` step: makes the target image downloadable for this session by putting
 * download_link (absolute: the session's base URL + /api/v1/firmware-update/{id}/image),
 * size and sha256 into the payload. Takes no params. api/sessions.c serves the link.
 */
#include "plugins/loader.h"

#include <stdio.h>

static enum dh_step_result link_run(struct dh_step_ctx *ctx)
{
	char url[1024];
	json_t *obj;
	int n, rc;

	n = snprintf(url, sizeof(url), "%s/api/v1/firmware-update/%s/image", ctx->base_url,
		     ctx->session_id);
	if (n < 0 || (size_t)n >= sizeof(url)) {
		snprintf(ctx->error, sizeof(ctx->error), "the download link would be too long");
		return DH_STEP_FAIL;
	}
	obj = json_pack("{s:s, s:I, s:s}", "download_link", url, "size",
			(json_int_t)ctx->image_size, "sha256", ctx->image_sha256);
	if (!obj) {
		snprintf(ctx->error, sizeof(ctx->error), "out of memory");
		return DH_STEP_FAIL;
	}
	rc = ctx->merge(ctx, obj);
	json_decref(obj);
	if (rc != 0) {
		snprintf(ctx->error, sizeof(ctx->error), "could not store the download link");
		return DH_STEP_FAIL;
	}
	return DH_STEP_OK;
}

const struct dh_plugin dh_plugin_link = {
	.abi = DH_PLUGIN_ABI,
	.name = "link",
	.admin_only = false,
	.run = link_run,
};
