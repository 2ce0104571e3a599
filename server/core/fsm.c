/*
 * The transition table of firmware-update sessions, written as in API.md, and the name
 * tables of states and events. Lookups are a short linear walk: the table has a dozen rows.
 */
#include "core/fsm.h"

#include <string.h>

const struct dh_fsm_row dh_fsm_table[] = {
	{ DH_ST_READY, DH_EV_START, DH_ST_QUEUED, false },
	{ DH_ST_QUEUED, DH_EV_CLAIM, DH_ST_PROCESSING, false },
	{ DH_ST_PROCESSING, DH_EV_DONE_CONFIRM, DH_ST_CREATED, false },
	{ DH_ST_PROCESSING, DH_EV_DONE, DH_ST_SUCCESS, false },
	{ DH_ST_QUEUED, DH_EV_STEP_FAIL, DH_ST_FAIL, false },
	{ DH_ST_PROCESSING, DH_EV_STEP_FAIL, DH_ST_FAIL, false },
	{ DH_ST_CREATED, DH_EV_CONFIRM_OK, DH_ST_SUCCESS, false },
	{ DH_ST_CREATED, DH_EV_CONFIRM_FAIL, DH_ST_FAIL, false },
	{ DH_ST_CREATED, DH_EV_TIMEOUT, DH_ST_UNCONFIRMED, false },
	/* a session that waited longer than processing_timeout to run, or ran longer, fails */
	{ DH_ST_QUEUED, DH_EV_TIMEOUT, DH_ST_FAIL, false },
	{ DH_ST_PROCESSING, DH_EV_TIMEOUT, DH_ST_FAIL, false },
	{ DH_ST_PROCESSING, DH_EV_RECOVER, DH_ST_QUEUED, false },
	{ DH_ST_READY, DH_EV_TIMEOUT, DH_ST_READY, true },
	{ DH_ST_UP_TO_DATE, DH_EV_TIMEOUT, DH_ST_UP_TO_DATE, true },
	{ DH_ST_SUCCESS, DH_EV_TIMEOUT, DH_ST_SUCCESS, true },
	{ DH_ST_FAIL, DH_EV_TIMEOUT, DH_ST_FAIL, true },
	{ DH_ST_UNCONFIRMED, DH_EV_TIMEOUT, DH_ST_UNCONFIRMED, true },
};

const size_t dh_fsm_table_len = sizeof(dh_fsm_table) / sizeof(dh_fsm_table[0]);

static const char *const state_names[DH_ST__COUNT] = {
	[DH_ST_NONE] = "",
	[DH_ST_READY] = "ready",
	[DH_ST_UP_TO_DATE] = "up_to_date",
	[DH_ST_QUEUED] = "queued",
	[DH_ST_PROCESSING] = "processing",
	[DH_ST_CREATED] = "created",
	[DH_ST_SUCCESS] = "success",
	[DH_ST_FAIL] = "fail",
	[DH_ST_UNCONFIRMED] = "unconfirmed",
};

static const char *const event_names[DH_EV__COUNT] = {
	[DH_EV_START] = "start",
	[DH_EV_CLAIM] = "claim",
	[DH_EV_DONE] = "done",
	[DH_EV_DONE_CONFIRM] = "done_confirm",
	[DH_EV_STEP_FAIL] = "step_fail",
	[DH_EV_CONFIRM_OK] = "confirm_ok",
	[DH_EV_CONFIRM_FAIL] = "confirm_fail",
	[DH_EV_TIMEOUT] = "timeout",
	[DH_EV_RECOVER] = "recover",
};

static const enum dh_timeout state_timeouts[DH_ST__COUNT] = {
	[DH_ST_NONE] = DH_TO_RETENTION,        [DH_ST_READY] = DH_TO_READY,
	[DH_ST_UP_TO_DATE] = DH_TO_RETENTION,  [DH_ST_QUEUED] = DH_TO_PROCESSING,
	[DH_ST_PROCESSING] = DH_TO_PROCESSING, [DH_ST_CREATED] = DH_TO_CONFIRM,
	[DH_ST_SUCCESS] = DH_TO_RETENTION,     [DH_ST_FAIL] = DH_TO_RETENTION,
	[DH_ST_UNCONFIRMED] = DH_TO_RETENTION,
};

const struct dh_fsm_row *dh_fsm_find(enum dh_state from, enum dh_fsm_event event)
{
	for (size_t i = 0; i < dh_fsm_table_len; i++) {
		if (dh_fsm_table[i].from == from && dh_fsm_table[i].event == event)
			return &dh_fsm_table[i];
	}
	return NULL;
}

const char *dh_state_name(enum dh_state s)
{
	return (unsigned)s < DH_ST__COUNT ? state_names[s] : "";
}

enum dh_state dh_state_parse(const char *name)
{
	if (!name)
		return DH_ST_NONE;
	for (int s = DH_ST_READY; s < DH_ST__COUNT; s++) {
		if (strcmp(name, state_names[s]) == 0)
			return (enum dh_state)s;
	}
	return DH_ST_NONE;
}

const char *dh_event_name(enum dh_fsm_event e)
{
	return (unsigned)e < DH_EV__COUNT ? event_names[e] : "";
}

enum dh_timeout dh_fsm_timeout(enum dh_state s)
{
	return (unsigned)s < DH_ST__COUNT ? state_timeouts[s] : DH_TO_RETENTION;
}
