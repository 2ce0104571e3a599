/*
 * The route table: every path of the API with its methods, handler and the right the
 * caller must hold somewhere (handlers refine it per object). 404, 405 with Allow, and
 * the right check come from this table, once. GET routes also answer HEAD.
 */
#include "http/router.h"

#include "api/api.h"
#include "http/static.h"

#define GH (DH_GET | DH_HEAD)

#define CRUD_ROUTES(path, name, right)                                                             \
	{ GH, "/api/v1/" path, dh_api_##name##_list, right, 0, NULL },                             \
		{ DH_POST, "/api/v1/" path, dh_api_##name##_create, right, 0, NULL },              \
		{ GH, "/api/v1/" path "/{id}", dh_api_##name##_get, right, 0, NULL },              \
		{ DH_PATCH, "/api/v1/" path "/{id}", dh_api_##name##_patch, right, 0, NULL },      \
	{                                                                                          \
		DH_DELETE, "/api/v1/" path "/{id}", dh_api_##name##_delete, right, 0, NULL         \
	}

/*
 * A pattern comes before every less literal one it overlaps ("/firmware-update/request"
 * before "/firmware-update/{id}"): the router stops at its first hit (test_router checks).
 */
const struct dh_route dh_routes[] = {
	{ GH, "/healthz", dh_api_healthz, DH_ACT_NONE, 0, NULL },
	{ GH, "/metrics", dh_api_metrics, DH_ACT_NONE, 0, NULL },
	{ GH, "/api/v1/openapi.json", dh_http_openapi, DH_ACT_NONE, 0, NULL },
	{ GH, "/api/v1/events", dh_api_events, DH_ACT_UPDATE, 0, NULL },
	CRUD_ROUTES("products", products, DH_ACT_MANAGE),
	CRUD_ROUTES("models", models, DH_ACT_MANAGE),
	CRUD_ROUTES("channels", channels, DH_ACT_MANAGE),
	CRUD_ROUTES("delivery-methods", delivery_methods, DH_ACT_MANAGE),
	CRUD_ROUTES("delivery-procedures", delivery_procedures, DH_ACT_MANAGE),
	CRUD_ROUTES("devices", devices, DH_ACT_MANAGE),
	CRUD_ROUTES("users", users, DH_ACT_ADMIN),
	CRUD_ROUTES("tokens", tokens, DH_ACT_AUTH),
	CRUD_ROUTES("access-rights", access_rights, DH_ACT_ADMIN),
	CRUD_ROUTES("webhooks", webhooks, DH_ACT_MANAGE),
	{ GH, "/api/v1/webhooks/{id}/deliveries", dh_api_webhook_deliveries, DH_ACT_MANAGE, 0,
	  NULL },
	{ DH_POST, "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
	  dh_api_webhook_redeliver, DH_ACT_MANAGE, 0, NULL },
	{ GH, "/api/v1/firmware", dh_api_firmware_list, DH_ACT_AUTH, 0, NULL },
	{ DH_POST, "/api/v1/firmware", dh_api_firmware_create, DH_ACT_UPLOAD, DH_ROUTE_STREAM_BODY,
	  dh_api_firmware_upload_chunk },
	{ GH, "/api/v1/firmware/{id}", dh_api_firmware_get, DH_ACT_AUTH, 0, NULL },
	{ DH_PATCH, "/api/v1/firmware/{id}", dh_api_firmware_patch, DH_ACT_UPLOAD, 0, NULL },
	{ DH_DELETE, "/api/v1/firmware/{id}", dh_api_firmware_delete, DH_ACT_UPLOAD, 0, NULL },
	{ GH, "/api/v1/firmware/{id}/image", dh_api_firmware_image, DH_ACT_AUTH, DH_ROUTE_DIRECT,
	  NULL },
	{ DH_POST, "/api/v1/firmware-update/request", dh_api_sessions_request, DH_ACT_UPDATE, 0,
	  NULL },
	{ GH, "/api/v1/firmware-update", dh_api_sessions_list, DH_ACT_UPDATE, 0, NULL },
	{ GH, "/api/v1/firmware-update/stats", dh_api_sessions_stats, DH_ACT_UPDATE, 0, NULL },
	{ GH, "/api/v1/firmware-update/{id}", dh_api_sessions_get, DH_ACT_UPDATE, 0, NULL },
	{ DH_POST, "/api/v1/firmware-update/{id}/start", dh_api_sessions_start, DH_ACT_UPDATE, 0,
	  NULL },
	{ DH_POST, "/api/v1/firmware-update/{id}/confirm", dh_api_sessions_confirm, DH_ACT_UPDATE,
	  0, NULL },
	{ GH, "/api/v1/firmware-update/{id}/image", dh_api_sessions_image, DH_ACT_UPDATE,
	  DH_ROUTE_DIRECT, NULL },
	{ GH, "/d/{token}", dh_api_short_link, DH_ACT_NONE, DH_ROUTE_SECRET_PATH | DH_ROUTE_DIRECT,
	  NULL },
};

const size_t dh_routes_count = sizeof(dh_routes) / sizeof(dh_routes[0]);

const struct dh_route dh_route_static = { GH, "/", dh_http_static, DH_ACT_NONE, 0, NULL };
