/*
 * The `link` step: makes the target image downloadable for this session. It puts into the
 * payload download_link (absolute: the session's base URL + /api/v1/firmware-update/{id}/image,
 * used with the caller's token), short_link (the base URL + /d/<token>, its own credential,
 * valid while the session is processing or created; pipeline/session.c issues the token and
 * completes the stored prefix with it wherever the payload is shown), size and sha256; and for
 * a delivery method of kind "coap", coap_link (coap://host:port/d/<token>, the same token,
 * served by coap/server.c). Takes no
 * params. api/sessions.c and api/downloads.c serve the links. Built in: besides its context it
 * calls the server's session code for the token.
 */
#include "plugins/loader.h"

#include "coap/server.h"
#include "core/err.h"
#include "dh_db.h"
#include "pipeline/session.h"

#include <stdio.h>
#include <string.h>

/* Longest link text: the base URL (DH_BASE_URL_MAX) and the path behind it. */
#define LINK_URL_MAX 1024

static enum dh_step_result link_run(struct dh_step_ctx *ctx)
{
	char url[LINK_URL_MAX], short_url[LINK_URL_MAX], coap_url[LINK_URL_MAX], kind[64];
	struct dh_db *db = dh_db_thread();
	json_t *obj;
	enum dh_err rc;
	int n;

	/* the long link is the longer of the two: if it fits, the short one does */
	n = snprintf(url, sizeof(url), "%s/api/v1/firmware-update/%s/image", ctx->base_url,
		     ctx->session_id);
	if (n < 0 || (size_t)n >= sizeof(url)) {
		snprintf(ctx->error, sizeof(ctx->error), "the download link would be too long");
		return DH_STEP_FAIL;
	}
	snprintf(short_url, sizeof(short_url), "%s" DH_LINK_PREFIX_END, ctx->base_url);
	rc = db ? dh_session_link_issue(db, ctx->session_id, kind, sizeof(kind)) : DH_E_DB;
	if (rc != DH_OK) {
		snprintf(ctx->error, sizeof(ctx->error), "could not issue the short link: %s",
			 dh_err_name(rc));
		return DH_STEP_FAIL;
	}
	/* the short links go in as their prefixes: views add the token, which is never stored */
	obj = json_pack("{s:s, s:s, s:I, s:s}", "download_link", url, "short_link", short_url,
			"size", (json_int_t)ctx->image_size, "sha256", ctx->image_sha256);
	if (obj && strcmp(kind, "coap") == 0) {
		if (!dh_coap_link_prefix(ctx->base_url, coap_url, sizeof(coap_url))) {
			json_decref(obj);
			snprintf(ctx->error, sizeof(ctx->error),
				 "the delivery method is coap but the CoAP server is off (see"
				 " --coap-port)");
			return DH_STEP_FAIL;
		}
		json_object_set_new(obj, "coap_link", json_string(coap_url));
	}
	if (!obj) {
		snprintf(ctx->error, sizeof(ctx->error), "out of memory");
		return DH_STEP_FAIL;
	}
	n = ctx->merge(ctx, obj);
	json_decref(obj);
	if (n != 0) {
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
