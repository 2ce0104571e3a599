/*
 * Unit tests of the mesh shell output parser (server/smp/shell.c): the SMP.md section 9
 * samples, hex and decimal numbers, VT100 colour sequences, device log lines in between,
 * truncated output, and both forms of the "dfu slot add" messages.
 */
#include "smp/shell.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static struct dh_smp_shell_doc *parse(const char *text)
{
	struct dh_smp_shell_doc *d = malloc(sizeof(*d));

	ck_assert_ptr_nonnull(d);
	dh_smp_shell_parse(text, strlen(text), d);
	return d;
}

static int64_t get(const struct dh_smp_shell_obj *o, const char *key)
{
	int64_t v = -12345;

	ck_assert_msg(dh_smp_shell_get_int(o, key, &v), "missing key %s", key);
	return v;
}

/* One-line objects: text, then expected key/value pairs. */
static const struct {
	const char *text;
	const char *keys[10];
	int64_t vals[10];
} objects[] = {
	{ "{\"status\": 0, \"target_cnt\": 2}\r\n", { "status", "target_cnt" }, { 0, 2 } },
	{ "{ \"status\": 0, \"phase\": 1, \"group\": 0x0000, \"app_idx\": 0, \"ttl\": 255, "
	  "\"timeout_base\": 0, \"xfer_mode\": 1, \"apply\": 1, \"slot_idx\": 0 }\r\n",
	  { "status", "phase", "group", "app_idx", "ttl", "timeout_base", "xfer_mode", "apply",
	    "slot_idx" },
	  { 0, 1, 0, 0, 255, 0, 1, 1, 0 } },
	/* Older releases print the group in decimal. */
	{ "{ \"status\": 0, \"phase\": 1, \"group\": 49152 }\r\n",
	  { "status", "phase", "group" },
	  { 0, 1, 49152 } },
	{ "{ \"status\": 6, \"phase\": 0 }\r\n", { "status", "phase" }, { 6, 0 } },
	{ "{ \"status\": 4, \"slot_cnt\": 1, \"idx\": 65535 }\r\n",
	  { "status", "idx" },
	  { 4, 65535 } },
	{ "{ \"targets_max\": 8, \"slot_cnt\": 1, \"slot_max_size\": 1048576, \"slot_space\": 1048576, "
	  "\"remaining_space\": 1048576, \"oob_supported\": false }\r\n",
	  { "targets_max", "slot_max_size", "oob_supported" },
	  { 8, 1048576, 0 } },
	/* A colour-wrapped warning line before the object, and a log line after it. */
	{ "\x1b[1;33mwarning: something\x1b[0m\r\n{ \"status\": 7, \"phase\": 1 }\r\n"
	  "[00:00:01.100,000] <inf> bt_mesh_dfd: {x}\r\n",
	  { "status", "phase" },
	  { 7, 1 } },
	{ "\x1b[1;31m{ \"status\": 2, \"phase\": 5 }\x1b[0m\r\n", { "status", "phase" }, { 2, 5 } },
	{ "{ \"a\": -22, \"b\": 0XfF, \"c\": true }\r\n", { "a", "b", "c" }, { -22, 255, 1 } },
};

START_TEST(one_line_objects)
{
	size_t i, k;

	for (i = 0; i < sizeof(objects) / sizeof(objects[0]); i++) {
		struct dh_smp_shell_doc *d = parse(objects[i].text);

		ck_assert_msg(d->has_object, "case %zu", i);
		ck_assert_msg(!d->truncated, "case %zu", i);
		for (k = 0; k < 10 && objects[i].keys[k]; k++)
			ck_assert_int_eq(get(&d->top, objects[i].keys[k]), objects[i].vals[k]);
		free(d);
	}
}
END_TEST

START_TEST(fw_get_string)
{
	struct dh_smp_shell_doc *d = parse(
		"{ \"status\": 0, \"slot_cnt\": 1, \"idx\": 0, \"fwid\": \"5900010203000000\" }\r\n");

	ck_assert_int_eq(get(&d->top, "idx"), 0);
	ck_assert_str_eq(dh_smp_shell_get_str(&d->top, "fwid"), "5900010203000000");
	ck_assert_ptr_null(dh_smp_shell_get_str(&d->top, "idx"));
	free(d);
}
END_TEST

static const char receivers_sample[] =
	"{\r\n"
	"\t\"target_cnt\": 2,\r\n"
	"\t\"targets\": {\r\n"
	"\t\t\"0\": { \"blob_addr\": 0x0004, \"phase\": 2, \"status\": 0, \"blob_status\": 0, "
	"\"progress\": 25, \"img_idx\": 0 },\r\n"
	"\t\t\"1\": { \"blob_addr\": 0x0005, \"phase\": 10, \"status\": 3, \"blob_status\": 9, "
	"\"progress\": 25, \"img_idx\": 0 }\r\n"
	"\t}\r\n"
	"}\r\n";

START_TEST(receivers_block)
{
	struct dh_smp_shell_doc *d = parse(receivers_sample);

	ck_assert(d->has_object);
	ck_assert(!d->truncated);
	ck_assert_int_eq(get(&d->top, "target_cnt"), 2);
	ck_assert_uint_eq(d->n_targets, 2);
	ck_assert_int_eq(d->targets[0].index, 0);
	ck_assert_int_eq(get(&d->targets[0].obj, "blob_addr"), 4);
	ck_assert_int_eq(get(&d->targets[0].obj, "phase"), 2);
	ck_assert_int_eq(get(&d->targets[0].obj, "progress") * 2, 50);
	ck_assert_int_eq(d->targets[1].index, 1);
	ck_assert_int_eq(get(&d->targets[1].obj, "blob_addr"), 5);
	ck_assert_int_eq(get(&d->targets[1].obj, "phase"), 10);
	ck_assert_int_eq(get(&d->targets[1].obj, "status"), 3);
	ck_assert_int_eq(get(&d->targets[1].obj, "blob_status"), 9);
	free(d);
}
END_TEST

START_TEST(receivers_truncated)
{
	/* Cut in the middle of the second target line, as a small capture buffer does. */
	char cut[300];
	struct dh_smp_shell_doc *d;
	size_t n = sizeof(receivers_sample) - 1;

	ck_assert_uint_gt(n, 200);
	memcpy(cut, receivers_sample, 200);
	cut[200] = '\0';
	d = parse(cut);
	ck_assert(d->has_object);
	ck_assert(d->truncated);
	ck_assert_uint_eq(d->n_targets, 1);
	free(d);

	/* Only the closing line missing. */
	memcpy(cut, receivers_sample, n - 3);
	cut[n - 3] = '\0';
	d = parse(cut);
	ck_assert(d->truncated);
	ck_assert_uint_eq(d->n_targets, 2);
	free(d);

	/* A one-line object cut before its brace. */
	d = parse("{ \"status\": 0, \"pha");
	ck_assert(d->has_object);
	ck_assert(d->truncated);
	free(d);
}
END_TEST

START_TEST(receivers_decimal_and_noise)
{
	struct dh_smp_shell_doc *d = parse(
		"[00:00:02.000,000] <wrn> blob_cli: { not ours }\r\n"
		"{\r\n"
		"\t\"target_cnt\": 1,\r\n"
		"[00:00:02.001,000] <inf> dfd: target 4 progress\r\n"
		"\t\"targets\": {\r\n"
		"\t\t\"0\": { \"blob_addr\": 4, \"phase\": 8, \"status\": 0, \"blob_status\": 0, "
		"\"progress\": 50, \"img_idx\": 1 }\r\n"
		"\t}\r\n"
		"}\r\n");

	ck_assert(!d->truncated);
	ck_assert_int_eq(get(&d->top, "target_cnt"), 1);
	ck_assert_uint_eq(d->n_targets, 1);
	ck_assert_int_eq(get(&d->targets[0].obj, "blob_addr"), 4);
	ck_assert_int_eq(get(&d->targets[0].obj, "img_idx"), 1);
	free(d);
}
END_TEST

static const struct {
	const char *text;
	bool added;
	int64_t idx;
	bool failed;
} slots[] = {
	{ "Adding slot (size: 88)\r\nSlot added. Index: 0\r\n", true, 0, false },
	{ "Adding slot (size: 88)\r\nSlot added. ID: 3\r\n", true, 3, false },
	{ "Adding slot (size: 88)\r\nFailed to reserve slot.\r\n", false, 0, true },
	{ "Adding slot (size: 88)\r\n\x1b[1;31mFailed to commit slot: -17\x1b[0m\r\n", false, 0,
	  true },
	{ "Failed.\r\n", false, 0, true },
	{ "Adding slot (size: 88)\r\n", false, 0, false },
	{ "", false, 0, false },
};

START_TEST(slot_messages)
{
	size_t i;

	for (i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
		struct dh_smp_shell_doc *d = parse(slots[i].text);

		ck_assert_msg(d->slot_added == slots[i].added, "case %zu", i);
		ck_assert_msg(d->slot_failed == slots[i].failed, "case %zu", i);
		if (slots[i].added)
			ck_assert_int_eq(d->slot_idx, slots[i].idx);
		ck_assert(!d->has_object);
		free(d);
	}
}
END_TEST

START_TEST(strip_sequences)
{
	char out[64];

	ck_assert_uint_eq(dh_smp_shell_strip("\x1b[1;31mred\x1b[0m\r\n", 16, out, sizeof(out)), 4);
	ck_assert_str_eq(out, "red\n");
	/* An escape cut at the end of the buffer is dropped, not read past. */
	ck_assert_uint_eq(dh_smp_shell_strip("ab\x1b[12", 6, out, sizeof(out)), 2);
	ck_assert_str_eq(out, "ab");
	/* The destination bound holds. */
	ck_assert_uint_eq(dh_smp_shell_strip("abcdef", 6, out, 4), 3);
	ck_assert_str_eq(out, "abc");
}
END_TEST

START_TEST(garbage_is_harmless)
{
	static const char *const bad[] = {
		"{",
		"}",
		"{{{{",
		"\"0\": {",
		"{ \"a\": }",
		"{ \"a\": 0x }",
		"{ \"a\" 1 }",
		"{ \"a\": 99999999999999999999999 }",
		"{\r\n\"targets\": {\r\n\"0\": { \"a\": 1\r\n",
		"{ \"a\": \"unterminated }",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dh_smp_shell_doc *d = parse(bad[i]);
		int64_t v;

		ck_assert(!dh_smp_shell_get_int(&d->top, "a", &v) || v == 1);
		free(d);
	}
}
END_TEST

static Suite *smp_shell_suite(void)
{
	Suite *s = suite_create("smp_shell");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, one_line_objects);
	tcase_add_test(tc, fw_get_string);
	tcase_add_test(tc, receivers_block);
	tcase_add_test(tc, receivers_truncated);
	tcase_add_test(tc, receivers_decimal_and_noise);
	tcase_add_test(tc, slot_messages);
	tcase_add_test(tc, strip_sequences);
	tcase_add_test(tc, garbage_is_harmless);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(smp_shell_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
