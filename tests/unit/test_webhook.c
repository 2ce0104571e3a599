/* Webhook rules: the Standard Webhooks example signature, secrets good and bad, and the retry
 * delays with their jitter and ceiling. */
#include "core/webhook.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_sign_matches_the_specification_example)
{
	uint8_t key[DH_WEBHOOK_KEY_MAX];
	size_t len = 0;
	char sig[DH_WEBHOOK_SIG_MAX];
	const char *body = "{\"test\": 2432232314}";

	ck_assert(dh_webhook_secret_parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, &len));
	ck_assert_uint_eq(len, 24);
	dh_webhook_sign(key, len, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body),
			sig);
	ck_assert_str_eq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* any change of id, time or body changes it */
	dh_webhook_sign(key, len, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, strlen(body),
			sig);
	ck_assert_str_ne(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}
END_TEST

struct secret_case {
	const char *text;
	bool ok;
	size_t len;
};

static const struct secret_case secrets[] = {
	{ "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", true, 24 },
	{ "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", true, 32 },
	{ "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", true, 32 }, /* unpadded */
	{ "whsec_"
	  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	  "AAAAAAAAAAAAAAAAAAAAAA==",
	  true, 64 },
	{ "whsec_"
	  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	  "AAAAAAAAAAAAAAAAAAAAAAAA",
	  false, 0 },                                           /* 66 bytes */
	{ "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", false, 0 }, /* 22 bytes */
	{ "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false, 0 },       /* no prefix */
	{ "whsec_", false, 0 },
	{ "whsec_MfKQ9r8GKYqrTwjUPD8I LPZIo2LaLaSw", false, 0 },
	{ "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", false, 0 },
	{ "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-_", false, 0 }, /* URL alphabet */
	{ "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS=", false, 0 },
	{ "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw===", false, 0 },
	{ "whsec_====MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false, 0 },
	{ "", false, 0 },
	{ NULL, false, 0 },
};

START_TEST(test_secret_table)
{
	const struct secret_case *c = &secrets[_i];
	uint8_t key[DH_WEBHOOK_KEY_MAX];
	size_t len = 0;

	ck_assert_msg(dh_webhook_secret_parse(c->text, key, &len) == c->ok, "'%s'",
		      c->text ? c->text : "(null)");
	if (c->ok)
		ck_assert_uint_eq(len, c->len);
}
END_TEST

START_TEST(test_new_secrets_parse_and_differ)
{
	char a[DH_WEBHOOK_SECRET_MAX], b[DH_WEBHOOK_SECRET_MAX];
	uint8_t key[DH_WEBHOOK_KEY_MAX];
	size_t len = 0;

	ck_assert(dh_webhook_secret_new(a));
	ck_assert(dh_webhook_secret_new(b));
	ck_assert_str_ne(a, b);
	ck_assert(strncmp(a, "whsec_", 6) == 0);
	ck_assert(dh_webhook_secret_parse(a, key, &len));
	ck_assert_uint_eq(len, DH_WEBHOOK_KEY_NEW);
}
END_TEST

struct retry_case {
	unsigned attempts, base;
	double r;
	int64_t ms;
};

static const struct retry_case retries[] = {
	{ 1, 5000, 0.5, 5000 },       { 2, 5000, 0.5, 10000 },
	{ 3, 5000, 0.5, 20000 },      { 1, 5000, 0.0, 4000 },
	{ 1, 5000, 0.9999999, 5999 }, { 7, 5000, 0.5, 320000 },
	{ 8, 5000, 0.5, 600000 }, /* 640 s capped */
	{ 8, 5000, 0.0, 480000 }, /* jitter applies below the cap */
	{ 9, 5000, 0.0, 480000 },     { 4000000000u, 5000, 0.5, 600000 },
	{ 1, 100, 0.5, 100 },         { 3, 100, 0.5, 400 },
	{ 1, 5000, -1.0, 5000 }, /* out-of-range r: no jitter */
	{ 0, 5000, 0.5, 5000 },       { 1, 0, 0.5, 1 },
};

START_TEST(test_retry_table)
{
	const struct retry_case *c = &retries[_i];
	int64_t ms = dh_webhook_retry_ms(c->attempts, c->base, c->r);

	ck_assert_msg(ms == c->ms, "attempts %u base %u r %f: %lld, want %lld", c->attempts,
		      c->base, c->r, (long long)ms, (long long)c->ms);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("webhook");
	TCase *tc = tcase_create("webhook");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_sign_matches_the_specification_example);
	tcase_add_loop_test(tc, test_secret_table, 0, sizeof(secrets) / sizeof(secrets[0]));
	tcase_add_test(tc, test_new_secrets_parse_and_differ);
	tcase_add_loop_test(tc, test_retry_table, 0, sizeof(retries) / sizeof(retries[0]));
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
