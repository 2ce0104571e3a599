/* The transaction runner: commit runs the after-commit hooks in order, a rollback drops
 * them, a lost race (DH_E_BUSY) is retried from the start with the failed attempt's hooks
 * dropped, a nested call joins the running transaction, and the retries are bounded. */
#include "dh_db.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static char trace[64];

static void note(void *cls)
{
	size_t n = strlen(trace);

	if (n + 1 < sizeof(trace)) {
		trace[n] = *(const char *)cls;
		trace[n + 1] = 0;
	}
}

static int released;

static void count_release(void *cls)
{
	(void)cls;
	released++;
}

struct plan {
	int calls;
	int busy_first; /* return DH_E_BUSY on this many calls first */
	enum dh_err result;
};

static enum dh_err work(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct plan *p = cls;

	(void)err;
	ck_assert(dh_db_in_tx(db));
	p->calls++;
	dh_db_after_commit(db, note, p->calls == 1 ? "a" : "b", count_release);
	dh_db_after_commit(db, note, "c", count_release);
	if (p->calls <= p->busy_first)
		return DH_E_BUSY;
	return p->result;
}

static struct dh_db *open_db(void)
{
	struct dh_error err = { 0 };
	struct dh_db *db = dh_db_open("sqlite::memory:", &err);

	ck_assert_ptr_nonnull(db);
	trace[0] = 0;
	released = 0;
	return db;
}

START_TEST(test_commit_runs_hooks_in_order)
{
	struct dh_db *db = open_db();
	struct plan p = { .result = DH_OK };

	ck_assert_int_eq(dh_db_tx_run(db, work, &p, NULL), DH_OK);
	ck_assert_str_eq(trace, "ac");
	ck_assert_int_eq(released, 2);
	ck_assert(!dh_db_in_tx(db));
	dh_db_close(db);
}
END_TEST

START_TEST(test_error_drops_hooks)
{
	struct dh_db *db = open_db();
	struct plan p = { .result = DH_E_CONFLICT };

	ck_assert_int_eq(dh_db_tx_run(db, work, &p, NULL), DH_E_CONFLICT);
	ck_assert_int_eq(p.calls, 1);
	ck_assert_str_eq(trace, "");
	ck_assert_int_eq(released, 2);
	dh_db_close(db);
}
END_TEST

START_TEST(test_busy_is_retried)
{
	struct dh_db *db = open_db();
	struct plan p = { .busy_first = 2, .result = DH_OK };

	ck_assert_int_eq(dh_db_tx_run(db, work, &p, NULL), DH_OK);
	ck_assert_int_eq(p.calls, 3);
	/* only the attempt that committed had its hooks run */
	ck_assert_str_eq(trace, "bc");
	ck_assert_int_eq(released, 6);
	dh_db_close(db);
}
END_TEST

START_TEST(test_busy_retries_are_bounded)
{
	struct dh_db *db = open_db();
	struct plan p = { .busy_first = 1000, .result = DH_OK };

	ck_assert_int_eq(dh_db_tx_run(db, work, &p, NULL), DH_E_BUSY);
	ck_assert_int_eq(p.calls, DH_DB_TX_TRIES);
	ck_assert_str_eq(trace, "");
	dh_db_close(db);
}
END_TEST

static enum dh_err outer(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct plan *p = cls;
	enum dh_err rc = dh_db_tx_run(db, work, p, err);

	dh_db_after_commit(db, note, "o", NULL);
	return rc == DH_OK ? p->result : rc;
}

START_TEST(test_nested_call_joins)
{
	struct dh_db *db = open_db();
	struct plan p = { .result = DH_OK };

	ck_assert_int_eq(dh_db_tx_run(db, outer, &p, NULL), DH_OK);
	ck_assert_str_eq(trace, "aco");
	/* the outer transaction's failure takes the inner work with it */
	trace[0] = 0;
	p = (struct plan){ .result = DH_E_STATE };
	ck_assert_int_eq(dh_db_tx_run(db, outer, &p, NULL), DH_E_STATE);
	ck_assert_str_eq(trace, "");
	dh_db_close(db);
}
END_TEST

START_TEST(test_hook_outside_tx_runs_now)
{
	struct dh_db *db = open_db();

	ck_assert(!dh_db_in_tx(db));
	ck_assert_int_eq(dh_db_after_commit(db, note, "n", count_release), DH_OK);
	ck_assert_str_eq(trace, "n");
	ck_assert_int_eq(released, 1);
	dh_db_close(db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("db_tx");
	TCase *tc = tcase_create("runner");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_commit_runs_hooks_in_order);
	tcase_add_test(tc, test_error_drops_hooks);
	tcase_add_test(tc, test_busy_is_retried);
	tcase_add_test(tc, test_busy_retries_are_bounded);
	tcase_add_test(tc, test_nested_call_joins);
	tcase_add_test(tc, test_hook_outside_tx_runs_now);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
