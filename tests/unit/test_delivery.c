/* The delivery tracker of core/delivery.c: sends add up per session, take moves them out (all
 * or one session), restore gives them back, bad sends are ignored, the table is bounded, and
 * threads may send at once. */
#include "core/delivery.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char A[] = "00000000-0000-4000-8000-00000000000a";
static const char B[] = "00000000-0000-4000-8000-00000000000b";

static struct dh_delivery_who who(const char *id, uint64_t size)
{
	struct dh_delivery_who w = { id, "p", "m", "", size };
	return w;
}

static void setup(void)
{
	dh_delivery_clear();
}

START_TEST(test_sends_add_up_per_session)
{
	struct dh_delivery_who a = who(A, 1000), b = who(B, 10);
	struct dh_delivery_item it[4];
	size_t n;

	dh_delivery_sent(&a, 0, 600);
	dh_delivery_sent(&a, 400, 600);
	dh_delivery_sent(&a, 900, 5000); /* clipped to the image: 100 bytes */
	dh_delivery_sent(&b, 0, 10);
	n = dh_delivery_take(NULL, it, 4);
	ck_assert_uint_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(it[i].session, A) == 0) {
			ck_assert_uint_eq(it[i].bytes, 1300);
			ck_assert_uint_eq(it[i].cov.covered, 1000);
			ck_assert_str_eq(it[i].product, "p");
			ck_assert_str_eq(it[i].model, "m");
			ck_assert_uint_eq(it[i].size, 1000);
		} else {
			ck_assert_str_eq(it[i].session, B);
			ck_assert_uint_eq(it[i].bytes, 10);
			ck_assert(dh_coverage_full(&it[i].cov));
		}
		dh_delivery_item_release(&it[i]);
	}
	/* taken means forgotten */
	ck_assert_uint_eq(dh_delivery_take(NULL, it, 4), 0);
}
END_TEST

START_TEST(test_take_one_session)
{
	struct dh_delivery_who a = who(A, 100), b = who(B, 100);
	struct dh_delivery_item it[2];

	dh_delivery_sent(&a, 0, 10);
	dh_delivery_sent(&b, 0, 20);
	ck_assert_uint_eq(dh_delivery_take(B, it, 2), 1);
	ck_assert_str_eq(it[0].session, B);
	ck_assert_uint_eq(it[0].bytes, 20);
	dh_delivery_item_release(&it[0]);
	ck_assert_uint_eq(dh_delivery_take(B, it, 2), 0);
	ck_assert_uint_eq(dh_delivery_take(NULL, it, 2), 1);
	ck_assert_str_eq(it[0].session, A);
	dh_delivery_item_release(&it[0]);
}
END_TEST

START_TEST(test_restore_merges_with_new_sends)
{
	struct dh_delivery_who a = who(A, 100);
	struct dh_delivery_item it[1];

	dh_delivery_sent(&a, 0, 10);
	ck_assert_uint_eq(dh_delivery_take(NULL, it, 1), 1);
	dh_delivery_sent(&a, 50, 10); /* arrives while the flush fails */
	dh_delivery_restore(it, 1);
	ck_assert_uint_eq(dh_delivery_take(NULL, it, 1), 1);
	ck_assert_uint_eq(it[0].bytes, 20);
	ck_assert_uint_eq(it[0].cov.covered, 20);
	ck_assert_uint_eq(it[0].cov.n, 2);
	dh_delivery_item_release(&it[0]);
}
END_TEST

START_TEST(test_bad_sends_are_ignored)
{
	struct dh_delivery_who a = who(A, 100), none = who("", 100);
	struct dh_delivery_item it[1];

	dh_delivery_sent(NULL, 0, 10);
	dh_delivery_sent(&none, 0, 10);
	dh_delivery_sent(&a, 0, 0);
	dh_delivery_sent(&a, 100, 10);
	dh_delivery_sent(&a, UINT64_MAX, UINT64_MAX);
	ck_assert_uint_eq(dh_delivery_take(NULL, it, 1), 0);
	dh_delivery_sent(&a, 99, UINT64_MAX);
	ck_assert_uint_eq(dh_delivery_take(NULL, it, 1), 1);
	ck_assert_uint_eq(it[0].bytes, 1);
	dh_delivery_item_release(&it[0]);
}
END_TEST

START_TEST(test_table_is_bounded)
{
	char id[DH_UUID_LEN];
	struct dh_delivery_item *it = calloc(DH_DELIVERY_MAX_SESSIONS + 1, sizeof(*it));
	uint64_t dropped = dh_delivery_dropped();
	size_t n;

	ck_assert_ptr_nonnull(it);
	for (unsigned i = 0; i <= DH_DELIVERY_MAX_SESSIONS; i++) {
		struct dh_delivery_who w;
		snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012x", i);
		w = who(id, 10);
		dh_delivery_sent(&w, 0, 1);
	}
	ck_assert_uint_eq(dh_delivery_dropped(), dropped + 1);
	n = dh_delivery_take(NULL, it, DH_DELIVERY_MAX_SESSIONS + 1);
	ck_assert_uint_eq(n, DH_DELIVERY_MAX_SESSIONS);
	for (size_t i = 0; i < n; i++)
		dh_delivery_item_release(&it[i]);
	free(it);
}
END_TEST

#define THREADS 4
#define SENDS   5000

static void *sender(void *arg)
{
	struct dh_delivery_who a = who(A, (uint64_t)THREADS * SENDS);
	uintptr_t t = (uintptr_t)arg;

	for (uint64_t i = 0; i < SENDS; i++)
		dh_delivery_sent(&a, (t * SENDS + i), 1);
	return NULL;
}

START_TEST(test_threads_send_at_once)
{
	pthread_t th[THREADS];
	struct dh_delivery_item it[1];
	uint64_t bytes = 0, covered = 0;
	struct dh_coverage all;

	dh_coverage_init(&all, (uint64_t)THREADS * SENDS);
	for (uintptr_t i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, sender, (void *)i), 0);
	/* take while they send: nothing may be lost or counted twice */
	for (int round = 0; round < 1000; round++) {
		if (dh_delivery_take(NULL, it, 1)) {
			bytes += it[0].bytes;
			dh_coverage_merge(&all, &it[0].cov);
			dh_delivery_item_release(&it[0]);
		}
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	while (dh_delivery_take(NULL, it, 1)) {
		bytes += it[0].bytes;
		dh_coverage_merge(&all, &it[0].cov);
		dh_delivery_item_release(&it[0]);
	}
	covered = all.covered;
	ck_assert_uint_eq(bytes, (uint64_t)THREADS * SENDS);
	ck_assert_uint_eq(covered, (uint64_t)THREADS * SENDS);
	dh_coverage_release(&all);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("delivery");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_sends_add_up_per_session);
	tcase_add_test(tc, test_take_one_session);
	tcase_add_test(tc, test_restore_merges_with_new_sends);
	tcase_add_test(tc, test_bad_sends_are_ignored);
	tcase_add_test(tc, test_table_is_bounded);
	tcase_add_test(tc, test_threads_send_at_once);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
