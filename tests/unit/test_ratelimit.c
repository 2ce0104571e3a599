/*
 * Token buckets of http/ratelimit.c with a made-up clock: bursts, refill, the wait it
 * announces, looks that take nothing, and a table that keeps its size and its indebted keys
 * while a peer makes up thousands of others.
 */
#include "http/ratelimit.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* R requests per second with a burst of B */
static struct dh_rate_table *per_second(uint64_t r, uint64_t b, size_t slots)
{
	struct dh_rate_config c = { .capacity = b * 1000, .refill_per_ms = r, .cost = 1000 };

	return dh_rate_table_new(&c, slots);
}

START_TEST(test_burst_then_wait)
{
	struct dh_rate_table *t = per_second(2, 3, 64);
	int64_t now = 1000000;

	ck_assert_ptr_nonnull(t);
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(dh_rate_take(t, "tok", 3, now), 0);
	/* empty: one request comes back every 500 ms */
	ck_assert_uint_eq(dh_rate_take(t, "tok", 3, now), 500);
	ck_assert_uint_eq(dh_rate_take(t, "tok", 3, now + 200), 300);
	ck_assert_uint_eq(dh_rate_take(t, "tok", 3, now + 500), 0);
	ck_assert_uint_eq(dh_rate_take(t, "tok", 3, now + 500), 500);
	/* other keys have their own buckets */
	ck_assert_uint_eq(dh_rate_take(t, "other", 5, now + 500), 0);
	/* after a long pause the bucket is full again, not more */
	now += 3600 * 1000;
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(dh_rate_take(t, "tok", 3, now), 0);
	ck_assert_uint_ne(dh_rate_take(t, "tok", 3, now), 0);
	dh_rate_table_free(t);
}
END_TEST

START_TEST(test_failures_per_minute)
{
	/* 20 failures a minute: cost 60000 units, 20 units a millisecond */
	struct dh_rate_config c = { .capacity = 20 * 60000, .refill_per_ms = 20, .cost = 60000 };
	struct dh_rate_table *t = dh_rate_table_new(&c, 64);
	uint8_t addr[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1 };
	int64_t now = 5000;

	for (int i = 0; i < 20; i++)
		ck_assert_uint_eq(dh_rate_take(t, addr, sizeof(addr), now), 0);
	ck_assert_uint_eq(dh_rate_peek(t, addr, sizeof(addr), now), 3000);
	ck_assert_uint_eq(dh_rate_take(t, addr, sizeof(addr), now), 3000);
	ck_assert_uint_eq(dh_rate_peek(t, addr, sizeof(addr), now + 3000), 0);
	dh_rate_table_free(t);
}
END_TEST

START_TEST(test_peek_takes_nothing)
{
	struct dh_rate_table *t = per_second(1, 1, 64);

	for (int i = 0; i < 10; i++)
		ck_assert_uint_eq(dh_rate_peek(t, "k", 1, 10), 0);
	ck_assert_uint_eq(dh_rate_take(t, "k", 1, 10), 0);
	ck_assert_uint_eq(dh_rate_peek(t, "k", 1, 10), 1000);
	ck_assert_uint_eq(dh_rate_peek(t, "unknown", 7, 10), 0);
	dh_rate_table_free(t);
}
END_TEST

START_TEST(test_bad_configs)
{
	struct dh_rate_config zero_refill = { .capacity = 1000, .refill_per_ms = 0, .cost = 1000 };
	struct dh_rate_config small = { .capacity = 999, .refill_per_ms = 1, .cost = 1000 };

	ck_assert_ptr_null(dh_rate_table_new(&zero_refill, 64));
	ck_assert_ptr_null(dh_rate_table_new(&small, 64));
	ck_assert_uint_eq(dh_rate_take(NULL, "k", 1, 0), 0);
}
END_TEST

START_TEST(test_long_keys_are_cut)
{
	struct dh_rate_table *t = per_second(1, 1, 64);
	char a[100], b[100];

	memset(a, 'x', sizeof(a));
	memset(b, 'x', sizeof(b));
	b[99] = 'y'; /* differs only after DH_RATE_KEY_MAX bytes: the same bucket */
	ck_assert_uint_eq(dh_rate_take(t, a, sizeof(a), 0), 0);
	ck_assert_uint_ne(dh_rate_take(t, b, sizeof(b), 0), 0);
	dh_rate_table_free(t);
}
END_TEST

/* A peer that makes up 100 000 keys cannot grow the table, and a key in debt that keeps
 * asking survives the churn (it is recently used, and full buckets are evicted first). */
START_TEST(test_churn_keeps_indebted_keys)
{
	/* one event a minute, a burst of two: in the 100 s below the guesser earns one more */
	struct dh_rate_config c = { .capacity = 2 * 60000, .refill_per_ms = 1, .cost = 60000 };
	struct dh_rate_table *t = dh_rate_table_new(&c, 256);
	unsigned granted = 0;
	char key[32];

	for (int64_t now = 0; now < 100000; now++) {
		int n = snprintf(key, sizeof(key), "made-up-%lld", (long long)now);
		if (now % 10 == 0 && dh_rate_take(t, "guesser", 7, now) == 0)
			granted++;
		dh_rate_take(t, key, (size_t)n, now);
	}
	/* two from the burst, one refilled; a forgotten bucket would have granted many more */
	ck_assert_uint_eq(granted, 3);
	dh_rate_table_free(t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ratelimit");
	TCase *tc = tcase_create("ratelimit");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_burst_then_wait);
	tcase_add_test(tc, test_failures_per_minute);
	tcase_add_test(tc, test_peek_takes_nothing);
	tcase_add_test(tc, test_bad_configs);
	tcase_add_test(tc, test_long_keys_are_cut);
	tcase_add_test(tc, test_churn_keeps_indebted_keys);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
