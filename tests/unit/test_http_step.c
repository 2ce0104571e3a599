/* The http step's templates: placeholders substituted (percent-encoded in URLs), braces
 * escaped, unknown and valueless placeholders refused with a reason; and the params check
 * the API runs when a procedure is saved, as a table of params and the key it must name. */
#include "plugins/http_step.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const struct dh_http_vars vars = {
	.session_id = "s-1",
	.device_id = "dev 1/a",
	.fw_version = "2.0.0",
	.fw_sha256 = "ab12",
	.fw_size = "4096",
	.link = "https://hub.example/api/v1/firmware-update/s-1/image",
	.short_link = NULL,
	.coap_link = NULL,
};

struct expand_case {
	const char *tmpl;
	bool url;
	const char *out; /* NULL: refused */
	const char *why; /* part of the reason when refused */
};

static const struct expand_case cases[] = {
	{ "plain", false, "plain", NULL },
	{ "", false, "", NULL },
	{ "{session.id}", false, "s-1", NULL },
	{ "id={session.id}&v={firmware.version}", false, "id=s-1&v=2.0.0", NULL },
	{ "{device.id}", false, "dev 1/a", NULL },
	{ "/c/{device.id}/5/0/1", true, "/c/dev%201%2Fa/5/0/1", NULL },
	{ "{link}", true, "https%3A%2F%2Fhub.example%2Fapi%2Fv1%2Ffirmware-update%2Fs-1%2Fimage",
	  NULL },
	{ "{link}", false, "https://hub.example/api/v1/firmware-update/s-1/image", NULL },
	{ "{{literal}} }} {", false, NULL, "unknown placeholder" },
	{ "{{literal}} }}", false, "{literal} }", NULL },
	{ "a}b", false, "a}b", NULL },
	{ "{firmware.sha256}:{firmware.size}", false, "ab12:4096", NULL },
	{ "{short_link}", false, NULL, "{short_link} has no value" },
	{ "{coap_link}", false, NULL, "{coap_link} has no value" },
	{ "{session}", false, NULL, "unknown placeholder" },
	{ "{}", false, NULL, "unknown placeholder" },
	{ "{session.id", false, NULL, "unknown placeholder" },
	{ "{SESSION.ID}", false, NULL, "unknown placeholder" },
};

START_TEST(test_expand_table)
{
	const struct expand_case *c = &cases[_i];
	char *out = NULL, why[200] = "";
	bool ok = dh_http_step_expand(c->tmpl, &vars, c->url, &out, why, sizeof(why));

	if (c->out) {
		ck_assert_msg(ok, "'%s': refused: %s", c->tmpl, why);
		ck_assert_str_eq(out, c->out);
	} else {
		ck_assert_msg(!ok && !out, "'%s': accepted as '%s'", c->tmpl, out ? out : "");
		ck_assert_msg(strstr(why, c->why), "'%s': reason '%s'", c->tmpl, why);
	}
	free(out);
}
END_TEST

START_TEST(test_check_only_needs_no_values)
{
	char *out = NULL, why[200];

	ck_assert(dh_http_step_expand("{short_link} {device.id}", NULL, false, &out, why,
				      sizeof(why)));
	free(out);
	ck_assert(!dh_http_step_expand("{nope}", NULL, false, &out, why, sizeof(why)));
}
END_TEST

START_TEST(test_expansion_is_bounded)
{
	size_t n = DH_HTTP_STEP_TEXT_MAX / 10 + 1;
	char *tmpl = malloc(n * 6 + 1), *out = NULL, why[200];

	ck_assert_ptr_nonnull(tmpl);
	for (size_t i = 0; i < n; i++)
		memcpy(tmpl + i * 6, "{link}", 6);
	tmpl[n * 6] = 0;
	ck_assert(!dh_http_step_expand(tmpl, &vars, false, &out, why, sizeof(why)));
	ck_assert_ptr_null(out);
	ck_assert_msg(strstr(why, "longer than"), "%s", why);
	free(tmpl);
}
END_TEST

struct params_case {
	const char *json;
	const char *key; /* NULL: accepted */
};

static const struct params_case params[] = {
	{ "{\"url\": \"https://example.com/x\"}", NULL },
	{ "{\"url\": \"https://example.com/c/{device.id}?t={session.id}\", \"method\": \"PUT\","
	  " \"headers\": {\"Authorization\": \"Bearer x\"}, \"body\": {\"v\": \"{link}\"},"
	  " \"expect\": [200, 204], \"timeout\": 30}",
	  NULL },
	{ "{}", "url" },
	{ "{\"url\": \"http://127.0.0.1/\"}", "url" },
	{ "{\"url\": \"https://{device.id}.example.com/\"}", "url" },
	{ "{\"url\": \"https://example.com:{firmware.size}/\"}", "url" },
	{ "{\"url\": \"https://example.com/\", \"method\": \"get\"}", "method" },
	{ "{\"url\": \"https://example.com/\", \"method\": \"GET\", \"body\": 1}", "body" },
	{ "{\"url\": \"https://example.com/\", \"body\": [\"{x}\"]}", "body" },
	{ "{\"url\": \"https://example.com/\", \"headers\": {\"A:B\": \"x\"}}", "headers" },
	{ "{\"url\": \"https://example.com/\", \"headers\": {\"A\": \"x\\ny\"}}", "headers" },
	{ "{\"url\": \"https://example.com/\", \"headers\": {\"A\": 1}}", "headers" },
	{ "{\"url\": \"https://example.com/\", \"expect\": [600]}", "expect" },
	{ "{\"url\": \"https://example.com/\", \"expect\": [true]}", "expect" },
	{ "{\"url\": \"https://example.com/\", \"timeout\": 86401}", "timeout" },
	{ "{\"url\": \"https://example.com/\", \"urls\": []}", "urls" },
};

START_TEST(test_params_table)
{
	const struct params_case *c = &params[_i];
	json_t *p = json_loads(c->json, 0, NULL);
	char why[200] = "";
	bool ok;

	ck_assert_ptr_nonnull(p);
	ok = dh_http_step_validate(p, why, sizeof(why));
	if (!c->key)
		ck_assert_msg(ok, "%s: %s", c->json, why);
	else
		ck_assert_msg(!ok && strncmp(why, c->key, strlen(c->key)) == 0, "%s: '%s'", c->json,
			      why);
	json_decref(p);
}
END_TEST

/* A value of dots only would be a dot segment of the URL's path (the receiver resolves
 * "/c/../5" to "/5"): its dots are encoded; dots among other characters stay. */
static const struct {
	const char *device_id;
	const char *out;
} dots[] = {
	{ "..", "/c/%2E%2E/5" },     { ".", "/c/%2E/5" },   { "...", "/c/%2E%2E%2E/5" },
	{ "a..b", "/c/a..b/5" },     { "..a", "/c/..a/5" }, { "v1.2", "/c/v1.2/5" },
	{ "../..", "/c/..%2F../5" },
};

START_TEST(test_dot_segments_are_encoded)
{
	struct dh_http_vars v = vars;
	char *out = NULL, why[200] = "";

	v.device_id = dots[_i].device_id;
	ck_assert_msg(dh_http_step_expand("/c/{device.id}/5", &v, true, &out, why, sizeof(why)),
		      "%s", why);
	ck_assert_str_eq(out, dots[_i].out);
	free(out);
	/* outside a URL the value is sent as it is */
	ck_assert(dh_http_step_expand("{device.id}", &v, false, &out, why, sizeof(why)));
	ck_assert_str_eq(out, dots[_i].device_id);
	free(out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("http_step");
	TCase *tc = tcase_create("http_step");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_expand_table, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_loop_test(tc, test_dot_segments_are_encoded, 0, sizeof(dots) / sizeof(dots[0]));
	tcase_add_test(tc, test_check_only_needs_no_values);
	tcase_add_test(tc, test_expansion_is_bounded);
	tcase_add_loop_test(tc, test_params_table, 0, sizeof(params) / sizeof(params[0]));
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
