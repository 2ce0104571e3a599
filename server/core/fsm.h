/*
 * The firmware-update session state machine: the states, the events that move a session,
 * and the one transition table of API.md. Every state change of a session, whether an API
 * call, a worker or the reaper causes it, is looked up here first; a (state, event) pair
 * without a row is not allowed (409). Also says which procedure timeout runs in each state.
 * Pure rules: no I/O.
 */
#ifndef DH_CORE_FSM_H
#define DH_CORE_FSM_H

#include <stdbool.h>
#include <stddef.h>

enum dh_state {
	DH_ST_NONE = 0, /* not a state: parse failure */
	DH_ST_READY,
	DH_ST_UP_TO_DATE,
	DH_ST_QUEUED,
	DH_ST_PROCESSING,
	DH_ST_CREATED,
	DH_ST_SUCCESS,
	DH_ST_FAIL,
	DH_ST_UNCONFIRMED,
	DH_ST__COUNT
};

enum dh_fsm_event {
	DH_EV_START = 0,    /* POST /{id}/start */
	DH_EV_CLAIM,        /* a worker takes the queued session */
	DH_EV_DONE,         /* every step succeeded, the procedure needs no confirmation */
	DH_EV_DONE_CONFIRM, /* every step succeeded, the device must confirm */
	DH_EV_STEP_FAIL,    /* a step failed, or the session could not be run */
	DH_EV_CONFIRM_OK,   /* POST /{id}/confirm {"success": true} */
	DH_EV_CONFIRM_FAIL, /* POST /{id}/confirm {"success": false} */
	DH_EV_TIMEOUT,      /* the current state's timeout fired (the reaper) */
	DH_EV_RECOVER,      /* start-up: a processing session whose lease expired is queued again */
	DH_EV__COUNT
};

/* Which of the procedure's timeouts runs while a session is in a state. */
enum dh_timeout {
	DH_TO_READY,      /* ready_timeout */
	DH_TO_PROCESSING, /* processing_timeout (queued and processing) */
	DH_TO_CONFIRM,    /* confirm_timeout */
	DH_TO_RETENTION,  /* retention: how long an outcome stays open before it is finished */
};

/* One row of the table: from --event--> to; finishes sets finished:true (state unchanged). */
struct dh_fsm_row {
	enum dh_state from;
	enum dh_fsm_event event;
	enum dh_state to;
	bool finishes;
};

/* The table, for walking in tests and documentation. */
extern const struct dh_fsm_row dh_fsm_table[];
extern const size_t dh_fsm_table_len;

/* The row for (from, event), or NULL when the pair is not allowed. */
const struct dh_fsm_row *dh_fsm_find(enum dh_state from, enum dh_fsm_event event);

/* "ready" etc.; "" for DH_ST_NONE. */
const char *dh_state_name(enum dh_state s);
/* The state called name, or DH_ST_NONE. */
enum dh_state dh_state_parse(const char *name);
/* "start" etc., for logs. */
const char *dh_event_name(enum dh_fsm_event e);

/* The timeout that runs in state s (every state has one while the session is unfinished). */
enum dh_timeout dh_fsm_timeout(enum dh_state s);

#endif
