/*
 * Devices: the twin of each device, keyed by its own device_id within a model. Sessions
 * create and update twins; operators may also manage them here. A device's access-rights
 * scope is its model's product, the model, and its channel.
 */
#include "api/api.h"
#include "api/objects.h"

#include <stdio.h>

static enum dh_err device_scope(struct dh_req *req, json_t *row, struct dh_scope *s,
				char ids[3][DH_UUID_LEN])
{
	const char *model_id = json_string_value(json_object_get(row, "model_id"));
	const char *channel_id = json_string_value(json_object_get(row, "channel_id"));
	enum dh_err rc;

	if (!model_id)
		return DH_E_INTERNAL;
	rc = dh_api_model_product(req, model_id, ids[0]);
	if (rc != DH_OK)
		return rc == DH_E_NOT_FOUND ? DH_E_INTERNAL : rc;
	snprintf(ids[1], DH_UUID_LEN, "%s", model_id);
	snprintf(ids[2], DH_UUID_LEN, "%s", channel_id ? channel_id : "");
	s->product = ids[0];
	s->model = ids[1];
	s->channel = channel_id ? ids[2] : NULL;
	return DH_OK;
}

/*
 * Longest CoAP pre-shared key, in bytes: DTLS PSKs are commonly 16 to 32 bytes (RFC 4279
 * allows up to 64 KiB); 64 holds a 256-bit key written as hex.
 */
#define DH_COAP_PSK_MAX 64

static const char *const states[] = { "ready",      "up_to_date",  "queued",
				      "processing", "created",     "success",
				      "fail",       "unconfirmed", NULL };

static const struct dh_field device_fields[] = {
	{ .name = "device_id",
	  .column = "device_id",
	  .type = DH_F_TEXT,
	  .flags = DH_F_REQUIRED | DH_F_FILTER,
	  .min = 1,
	  .max = DH_DEVICE_ID_MAX },
	{ .name = "model",
	  .column = "model_id",
	  .type = DH_F_REF,
	  .flags = DH_F_REQUIRED | DH_F_FILTER,
	  .ref_table = "models",
	  .ref_has_tid = true },
	{ .name = "channel",
	  .column = "channel_id",
	  .type = DH_F_REF,
	  .flags = DH_F_FILTER | DH_F_NULLABLE,
	  .ref_table = "channels",
	  .ref_has_tid = true },
	{ .name = "current_firmware",
	  .column = "current_firmware_id",
	  .type = DH_F_REF,
	  .flags = DH_F_FILTER | DH_F_NULLABLE,
	  .ref_table = "firmware",
	  .ref_has_tid = true },
	{ .name = "current_firmware_version",
	  .column = "current_firmware_version",
	  .type = DH_F_SEMVER,
	  .flags = DH_F_NULLABLE },
	/* the device's key for CoAP over DTLS (docs/coap.md): written, never shown */
	{ .name = "coap_psk",
	  .column = "coap_psk",
	  .type = DH_F_TEXT,
	  .flags = DH_F_NULLABLE | DH_F_HIDDEN,
	  .min = 1,
	  .max = DH_COAP_PSK_MAX },
	{ .name = "last_seen", .column = "last_seen", .type = DH_F_TIME, .flags = DH_F_READONLY },
	{ .name = "last_session",
	  .column = "last_session_id",
	  .type = DH_F_TEXT,
	  .flags = DH_F_READONLY },
	{ .name = "last_state",
	  .column = "last_state",
	  .type = DH_F_ENUM,
	  .flags = DH_F_READONLY | DH_F_FILTER,
	  .enum_values = states },
};

static const struct dh_resource devices = {
	.name = "device",
	.table = "devices",
	.has_tid = false,
	.fields = device_fields,
	.nfields = sizeof(device_fields) / sizeof(device_fields[0]),
	.right = DH_ACT_MANAGE,
	.hooks = { .scope = device_scope },
	.event_kind = "device",
};

DH_CRUD_HANDLERS(devices, devices)
