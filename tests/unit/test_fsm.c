/*
 * The session transition table against the transitions written in API.md: every row the
 * contract names exists with its target state, the table has no row the contract lacks, and
 * a sample of forbidden (state, event) pairs has no row. Also the names and timeouts.
 */
#include "core/fsm.h"

#include <check.h>
#include <stdlib.h>

/* API.md "Firmware-update sessions", one line per transition, plus recovery after a crash. */
static const struct dh_fsm_row contract[] = {
	{ DH_ST_READY, DH_EV_START, DH_ST_QUEUED, false },
	{ DH_ST_QUEUED, DH_EV_CLAIM, DH_ST_PROCESSING, false },
	{ DH_ST_PROCESSING, DH_EV_DONE_CONFIRM, DH_ST_CREATED, false },
	{ DH_ST_PROCESSING, DH_EV_DONE, DH_ST_SUCCESS, false },
	{ DH_ST_QUEUED, DH_EV_STEP_FAIL, DH_ST_FAIL, false },
	{ DH_ST_PROCESSING, DH_EV_STEP_FAIL, DH_ST_FAIL, false },
	{ DH_ST_CREATED, DH_EV_CONFIRM_OK, DH_ST_SUCCESS, false },
	{ DH_ST_CREATED, DH_EV_CONFIRM_FAIL, DH_ST_FAIL, false },
	{ DH_ST_CREATED, DH_EV_TIMEOUT, DH_ST_UNCONFIRMED, false },
	{ DH_ST_QUEUED, DH_EV_TIMEOUT, DH_ST_FAIL, false },
	{ DH_ST_PROCESSING, DH_EV_TIMEOUT, DH_ST_FAIL, false },
	{ DH_ST_PROCESSING, DH_EV_RECOVER, DH_ST_QUEUED, false },
	{ DH_ST_READY, DH_EV_TIMEOUT, DH_ST_READY, true },
	{ DH_ST_UP_TO_DATE, DH_EV_TIMEOUT, DH_ST_UP_TO_DATE, true },
	{ DH_ST_SUCCESS, DH_EV_TIMEOUT, DH_ST_SUCCESS, true },
	{ DH_ST_FAIL, DH_EV_TIMEOUT, DH_ST_FAIL, true },
	{ DH_ST_UNCONFIRMED, DH_EV_TIMEOUT, DH_ST_UNCONFIRMED, true },
};

#define NCONTRACT (sizeof(contract) / sizeof(contract[0]))

/* Calls the contract forbids (409): a sample over every state. */
static const struct {
	enum dh_state from;
	enum dh_fsm_event event;
} forbidden[] = {
	{ DH_ST_UP_TO_DATE, DH_EV_START },
	{ DH_ST_QUEUED, DH_EV_START },
	{ DH_ST_PROCESSING, DH_EV_START },
	{ DH_ST_CREATED, DH_EV_START },
	{ DH_ST_SUCCESS, DH_EV_START },
	{ DH_ST_FAIL, DH_EV_START },
	{ DH_ST_UNCONFIRMED, DH_EV_START },
	{ DH_ST_READY, DH_EV_CONFIRM_OK },
	{ DH_ST_READY, DH_EV_CONFIRM_FAIL },
	{ DH_ST_QUEUED, DH_EV_CONFIRM_OK },
	{ DH_ST_PROCESSING, DH_EV_CONFIRM_OK },
	{ DH_ST_SUCCESS, DH_EV_CONFIRM_OK },
	{ DH_ST_FAIL, DH_EV_CONFIRM_FAIL },
	{ DH_ST_UNCONFIRMED, DH_EV_CONFIRM_OK },
	{ DH_ST_UP_TO_DATE, DH_EV_CONFIRM_OK },
	{ DH_ST_READY, DH_EV_CLAIM },
	{ DH_ST_CREATED, DH_EV_CLAIM },
	{ DH_ST_READY, DH_EV_DONE },
	{ DH_ST_QUEUED, DH_EV_DONE },
	{ DH_ST_CREATED, DH_EV_STEP_FAIL },
	{ DH_ST_SUCCESS, DH_EV_STEP_FAIL },
	{ DH_ST_READY, DH_EV_RECOVER },
	{ DH_ST_QUEUED, DH_EV_RECOVER },
	{ DH_ST_CREATED, DH_EV_RECOVER },
	{ DH_ST_NONE, DH_EV_START },
	{ DH_ST_NONE, DH_EV_TIMEOUT },
};

START_TEST(test_contract_row)
{
	const struct dh_fsm_row *c = &contract[_i];
	const struct dh_fsm_row *r = dh_fsm_find(c->from, c->event);

	ck_assert_msg(r != NULL, "no row for %s --%s-->", dh_state_name(c->from),
		      dh_event_name(c->event));
	ck_assert_int_eq(r->to, c->to);
	ck_assert_int_eq(r->finishes, c->finishes);
}
END_TEST

START_TEST(test_table_has_only_contract_rows)
{
	ck_assert_uint_eq(dh_fsm_table_len, NCONTRACT);
	for (size_t i = 0; i < dh_fsm_table_len; i++) {
		bool found = false;
		for (size_t k = 0; k < NCONTRACT; k++) {
			if (contract[k].from == dh_fsm_table[i].from &&
			    contract[k].event == dh_fsm_table[i].event)
				found = true;
		}
		ck_assert_msg(found, "row %zu is not in API.md", i);
		/* one row per (from, event): the first found is the row itself */
		ck_assert_ptr_eq(dh_fsm_find(dh_fsm_table[i].from, dh_fsm_table[i].event),
				 &dh_fsm_table[i]);
		/* only timeouts finish, and a finishing row keeps the state */
		if (dh_fsm_table[i].finishes)
			ck_assert_int_eq(dh_fsm_table[i].from, dh_fsm_table[i].to);
	}
}
END_TEST

START_TEST(test_forbidden_pair)
{
	ck_assert_ptr_null(dh_fsm_find(forbidden[_i].from, forbidden[_i].event));
}
END_TEST

START_TEST(test_names_and_timeouts)
{
	for (int s = DH_ST_READY; s < DH_ST__COUNT; s++)
		ck_assert_int_eq(dh_state_parse(dh_state_name((enum dh_state)s)), s);
	ck_assert_int_eq(dh_state_parse("bogus"), DH_ST_NONE);
	ck_assert_int_eq(dh_state_parse(""), DH_ST_NONE);
	ck_assert_int_eq(dh_state_parse(NULL), DH_ST_NONE);
	ck_assert_str_eq(dh_state_name(DH_ST_UP_TO_DATE), "up_to_date");
	ck_assert_str_eq(dh_state_name((enum dh_state)99), "");
	ck_assert_int_eq(dh_fsm_timeout(DH_ST_READY), DH_TO_READY);
	ck_assert_int_eq(dh_fsm_timeout(DH_ST_QUEUED), DH_TO_PROCESSING);
	ck_assert_int_eq(dh_fsm_timeout(DH_ST_PROCESSING), DH_TO_PROCESSING);
	ck_assert_int_eq(dh_fsm_timeout(DH_ST_CREATED), DH_TO_CONFIRM);
	ck_assert_int_eq(dh_fsm_timeout(DH_ST_SUCCESS), DH_TO_RETENTION);
	ck_assert_int_eq(dh_fsm_timeout(DH_ST_UNCONFIRMED), DH_TO_RETENTION);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fsm");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_contract_row, 0, NCONTRACT);
	tcase_add_test(tc, test_table_has_only_contract_rows);
	tcase_add_loop_test(tc, test_forbidden_pair, 0, sizeof(forbidden) / sizeof(forbidden[0]));
	tcase_add_test(tc, test_names_and_timeouts);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
