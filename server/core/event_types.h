/*
 * The event types of Device Hub: one list for the /api/v1/events stream, webhook
 * subscriptions and web/openapi.json (tests/api/test_webhooks.py compares them). An event
 * type names what happened; its data is described in docs/webhooks.md.
 */
#ifndef DH_CORE_EVENT_TYPES_H
#define DH_CORE_EVENT_TYPES_H

#include <stdbool.h>
#include <stddef.h>

/* Longest event type name, NUL included (struct dh_event keeps the type in 32 bytes). */
#define DH_EVENT_TYPE_MAX 32

struct dh_event_type {
	const char *name;
	/* Sent to a webhook only when its events name it: "*" leaves it out (session.progress
	 * comes several times a second while a step runs). */
	bool is_opt_in;
};

extern const struct dh_event_type dh_event_types[];
extern const size_t dh_event_types_count;

/* The type called name, or NULL. */
const struct dh_event_type *dh_event_type_find(const char *name);

#endif
