/*
 * The table of event types (see event_types.h). Append new types; a name once published is
 * never reused for other data.
 */
#include "core/event_types.h"

#include <string.h>

const struct dh_event_type dh_event_types[] = {
	{ "session.created", false },    /* data: the session */
	{ "session.state", false },      /* id, state, finished, error, expiration_time, ... */
	{ "session.progress", true },    /* id, state, attempts, payload */
	{ "session.delivered", true },   /* id, state, delivered: each further tenth sent */
	{ "session.downloaded", false }, /* every byte of the image was sent at least once */
	{ "firmware.created", false },   /* data: the firmware */
	{ "firmware.updated", false },   /* data: the firmware */
	{ "firmware.deleted", false },   /* data: the firmware as it was */
	{ "object.created", false },     /* kind, id, object (configuration objects) */
	{ "object.updated", false },     /* kind, id, object */
	{ "object.deleted", false },     /* kind, id, object as it was */
};

const size_t dh_event_types_count = sizeof(dh_event_types) / sizeof(dh_event_types[0]);

const struct dh_event_type *dh_event_type_find(const char *name)
{
	for (size_t i = 0; name && i < dh_event_types_count; i++) {
		if (strcmp(dh_event_types[i].name, name) == 0)
			return &dh_event_types[i];
	}
	return NULL;
}
