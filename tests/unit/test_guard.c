/*
 * The connection guard's bookkeeping without sockets: client keys, admission beyond the
 * cap, the per-address limit, and the per-address table against a plain array under many
 * opens and closes in random order (the table deletes by backward shift, which is easy to
 * get wrong), and admission by threads accepting at once. The deadlines are tried with real sockets
 * in tests/api/test_http_limits.py.
 */
#include "http/guard.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static struct sockaddr_in v4(const char *a)
{
	struct sockaddr_in s = { .sin_family = AF_INET };

	inet_pton(AF_INET, a, &s.sin_addr);
	return s;
}

static struct sockaddr_in6 v6(const char *a)
{
	struct sockaddr_in6 s = { .sin6_family = AF_INET6 };

	inet_pton(AF_INET6, a, &s.sin6_addr);
	return s;
}

static void start(unsigned max, unsigned reserve, unsigned per_address)
{
	struct dh_guard_limits l = { .max_connections = max,
				     .reserve = reserve,
				     .per_address = per_address,
				     .head_timeout_ms = 3600 * 1000 };
	struct dh_error err = { 0 };

	ck_assert_int_eq(dh_guard_start(&l, &err), DH_OK);
}

START_TEST(test_client_keys)
{
	uint8_t a[DH_CLIENT_KEY_LEN], b[DH_CLIENT_KEY_LEN];
	struct sockaddr_in x = v4("192.0.2.7"), y = v4("192.0.2.8");
	struct sockaddr_in6 m = v6("::ffff:192.0.2.7"), p = v6("2001:db8:1:2::1"),
			    q = v6("2001:db8:1:2:ffff::9"), r = v6("2001:db8:1:3::1");

	dh_client_key((struct sockaddr *)&x, a);
	dh_client_key((struct sockaddr *)&m, b);
	ck_assert_msg(memcmp(a, b, sizeof(a)) == 0, "IPv4 and its mapped IPv6 form differ");
	dh_client_key((struct sockaddr *)&y, b);
	ck_assert(memcmp(a, b, sizeof(a)) != 0);
	dh_client_key((struct sockaddr *)&p, a);
	dh_client_key((struct sockaddr *)&q, b);
	ck_assert_msg(memcmp(a, b, sizeof(a)) == 0, "one /64 is one client");
	dh_client_key((struct sockaddr *)&r, b);
	ck_assert(memcmp(a, b, sizeof(a)) != 0);
	dh_client_key(NULL, a);
	for (size_t i = 0; i < sizeof(a); i++)
		ck_assert_int_eq(a[i], 0);
}
END_TEST

START_TEST(test_beyond_cap_is_refused_until_a_place_frees)
{
	struct sockaddr_in a = v4("192.0.2.1");
	struct dh_guard_conn *c[4];
	struct dh_guard_stats st;
	bool refuse;

	start(2, 4, 0);
	for (int i = 0; i < 4; i++)
		c[i] = dh_guard_admit(-1, (struct sockaddr *)&a, false);
	ck_assert(dh_guard_head_done(c[0], &refuse) && !refuse);
	ck_assert(dh_guard_head_done(c[1], &refuse) && !refuse);
	ck_assert(dh_guard_head_done(c[2], &refuse) && refuse);
	dh_guard_close(c[0]);
	/* c[3] was accepted beyond the cap, but a place is free when its head arrives */
	ck_assert(dh_guard_head_done(c[3], &refuse) && !refuse);
	dh_guard_stats_get(&st);
	ck_assert_int_eq(st.open, 3);
	ck_assert_int_eq(st.refused_cap, 1);
	for (int i = 1; i < 4; i++)
		dh_guard_close(c[i]);
	dh_guard_stats_get(&st);
	ck_assert_int_eq(st.open, 0);
	dh_guard_stop();
}
END_TEST

START_TEST(test_per_address_limit)
{
	struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2");
	struct sockaddr_in6 a6 = v6("::ffff:192.0.2.1");
	struct dh_guard_conn *c[3];
	struct dh_guard_stats st;

	start(100, 10, 2);
	ck_assert(dh_guard_address_allowed((struct sockaddr *)&a));
	c[0] = dh_guard_admit(-1, (struct sockaddr *)&a, false);
	c[1] = dh_guard_admit(-1, (struct sockaddr *)&a6, false);
	ck_assert(!dh_guard_address_allowed((struct sockaddr *)&a));
	ck_assert(dh_guard_address_allowed((struct sockaddr *)&b));
	c[2] = dh_guard_admit(-1, (struct sockaddr *)&b, false);
	dh_guard_close(c[0]);
	ck_assert(dh_guard_address_allowed((struct sockaddr *)&a));
	dh_guard_stats_get(&st);
	ck_assert_int_eq(st.refused_address, 1);
	dh_guard_close(c[1]);
	dh_guard_close(c[2]);
	dh_guard_stop();
}
END_TEST

/* Opens and closes connections of 97 addresses in random order with a per-address limit
 * of 3; the table's answer must always match a plain count per address. */
START_TEST(test_address_table_against_reference)
{
	enum {
		ADDRS = 97,
		SLOTS = 200,
		ROUNDS = 20000
	};
	struct dh_guard_conn *open[SLOTS] = { 0 };
	int owner[SLOTS], count[ADDRS] = { 0 };
	unsigned seed = 12345;

	start(SLOTS, 8, 3);
	for (int r = 0; r < ROUNDS; r++) {
		int s = (int)(rand_r(&seed) % SLOTS);
		if (open[s]) {
			count[owner[s]]--;
			dh_guard_close(open[s]);
			open[s] = NULL;
		} else {
			int a = (int)(rand_r(&seed) % ADDRS);
			struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };
			/* addresses that differ only in the /64 part, so that many share hash bits
			 */
			sa.sin6_addr.s6_addr[0] = 0x20;
			sa.sin6_addr.s6_addr[7] = (uint8_t)a;
			sa.sin6_addr.s6_addr[15] = (uint8_t)r;
			ck_assert_msg(dh_guard_address_allowed((struct sockaddr *)&sa) ==
					      (count[a] < 3),
				      "round %d address %d count %d", r, a, count[a]);
			open[s] = dh_guard_admit(-1, (struct sockaddr *)&sa, false);
			ck_assert((open[s] != NULL) == (count[a] < 3));
			if (!open[s])
				continue;
			owner[s] = a;
			count[a]++;
		}
	}
	for (int s = 0; s < SLOTS; s++)
		dh_guard_close(open[s]);
	dh_guard_stop();
}
END_TEST

START_TEST(test_admit_refuses_when_full_or_the_address_is_full)
{
	struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2");
	struct dh_guard_conn *c[4];
	struct dh_guard_stats st;

	start(1, 2, 2);
	c[0] = dh_guard_admit(-1, (struct sockaddr *)&a, false);
	ck_assert(c[0]);
	c[1] = dh_guard_admit(-1, (struct sockaddr *)&a, false);
	ck_assert(c[1]);
	/* a third of a's: its address is full, though one place of the reserve is free */
	ck_assert(!dh_guard_admit(-1, (struct sockaddr *)&a, false));
	dh_guard_stats_get(&st);
	ck_assert_int_eq(st.refused_address, 1);
	ck_assert_int_eq(st.refused_full, 0);
	c[2] = dh_guard_admit(-1, (struct sockaddr *)&b, false);
	ck_assert(c[2]);
	/* 1 + 2 are open: full for everyone */
	ck_assert(!dh_guard_admit(-1, (struct sockaddr *)&b, false));
	dh_guard_stats_get(&st);
	ck_assert_int_eq(st.open, 3);
	ck_assert_int_eq(st.refused_address, 1);
	ck_assert_int_eq(st.refused_full, 1);
	dh_guard_close(c[0]);
	c[3] = dh_guard_admit(-1, (struct sockaddr *)&b, false);
	ck_assert(c[3]);
	for (int i = 1; i < 4; i++)
		dh_guard_close(c[i]);
	dh_guard_stop();
}
END_TEST

/* Threads that admit at once never hold more than max_connections and the reserve: each
 * reads the guard's own count of open connections while it holds one. */
enum {
	RACERS = 8,
	RACE_TRIES = 2000,
	RACE_MAX = 3,
	RACE_RESERVE = 2
};
static atomic_ullong race_peak;

static void *racer(void *arg)
{
	struct sockaddr_in a = v4("192.0.2.9");

	(void)arg;
	for (int i = 0; i < RACE_TRIES; i++) {
		struct dh_guard_conn *c = dh_guard_admit(-1, (struct sockaddr *)&a, false);
		struct dh_guard_stats st;
		unsigned long long peak;

		if (!c)
			continue;
		dh_guard_stats_get(&st);
		peak = atomic_load(&race_peak);
		while (st.open > peak && !atomic_compare_exchange_weak(&race_peak, &peak, st.open))
			;
		/* held a while, so that the count stays at its bound while others try */
		for (int y = 0; y < 3; y++)
			sched_yield();
		dh_guard_close(c);
	}
	return NULL;
}

START_TEST(test_admit_holds_its_bound_across_threads)
{
	pthread_t t[RACERS];
	struct dh_guard_stats st;
	unsigned long long peak;

	start(RACE_MAX, RACE_RESERVE, 0);
	for (int i = 0; i < RACERS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, racer, NULL), 0);
	for (int i = 0; i < RACERS; i++)
		pthread_join(t[i], NULL);
	peak = atomic_load(&race_peak);
	ck_assert_uint_le(peak, RACE_MAX + RACE_RESERVE);
	ck_assert_uint_gt(peak, 0);
	dh_guard_stats_get(&st);
	ck_assert_int_eq(st.open, 0);
	dh_guard_stop();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("guard");
	TCase *tc = tcase_create("guard");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_client_keys);
	tcase_add_test(tc, test_beyond_cap_is_refused_until_a_place_frees);
	tcase_add_test(tc, test_per_address_limit);
	tcase_add_test(tc, test_address_table_against_reference);
	tcase_add_test(tc, test_admit_refuses_when_full_or_the_address_is_full);
	tcase_add_test(tc, test_admit_holds_its_bound_across_threads);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
