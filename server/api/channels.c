/*
 * Channels (stable, beta, ...): firmware is published to channels and devices follow one.
 * Channels stand outside products: managing them needs an unscoped manage right.
 */
#include "api/api.h"
#include "api/objects.h"

#include <stdio.h>

static const struct dh_field channel_fields[] = {
	{ .name = "tid", .column = "tid", .type = DH_F_TID, .flags = DH_F_REQUIRED | DH_F_FILTER },
	{ .name = "name",
	  .column = "name",
	  .type = DH_F_TEXT,
	  .flags = DH_F_REQUIRED,
	  .min = 1,
	  .max = 200 },
};

static const struct dh_resource channels = {
	.name = "channel",
	.table = "channels",
	.has_tid = true,
	.fields = channel_fields,
	.nfields = sizeof(channel_fields) / sizeof(channel_fields[0]),
	.right = DH_ACT_MANAGE,
	.event_kind = "channel",
};

DH_CRUD_HANDLERS(channels, channels)
