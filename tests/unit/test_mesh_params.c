/* mesh_smp step params: good spellings and what they set, bad ones and the key they name. */
#include "plugins/mesh_smp.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define RX "\"receivers\": [{\"addr\": 2, \"img_idx\": 0}]"

static json_t *load(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	ck_assert_msg(j != NULL, "test JSON does not parse: %s: %s", text, e.text);
	return j;
}

/* Good params and the fields they must set (others keep the defaults checked below). */
static const struct good {
	const char *json;
	int transport;
	const char *host, *device;
	unsigned port, baud;
	size_t n_receivers;
} goods[] = {
	{ "{\"transport\": \"udp\", \"host\": \"127.0.0.1\", \"port\": 4000, " RX "}",
	  DH_SMP_TR_UDP, "127.0.0.1", "", 4000, 115200, 1 },
	{ "{\"transport\": \"udp\", \"host\": \"dist.example\", " RX "}", DH_SMP_TR_UDP,
	  "dist.example", "", 1337, 115200, 1 },
	{ "{\"udp\": \"10.0.0.5:1400\", " RX "}", DH_SMP_TR_UDP, "10.0.0.5", "", 1400, 115200, 1 },
	{ "{\"udp\": \"10.0.0.5\", " RX "}", DH_SMP_TR_UDP, "10.0.0.5", "", 1337, 115200, 1 },
	{ "{\"udp\": \"[::1]:1500\", " RX "}", DH_SMP_TR_UDP, "::1", "", 1500, 115200, 1 },
	{ "{\"udp\": \"fe80::1\", " RX "}", DH_SMP_TR_UDP, "fe80::1", "", 1337, 115200, 1 },
	{ "{\"udp\": {\"host\": \"127.0.0.1\", \"port\": 1337}, " RX "}", DH_SMP_TR_UDP,
	  "127.0.0.1", "", 1337, 115200, 1 },
	{ "{\"transport\": \"serial\", \"device\": \"/dev/ttyACM0\", \"baud\": 921600, " RX "}",
	  DH_SMP_TR_SERIAL, "", "/dev/ttyACM0", 1337, 921600, 1 },
	{ "{\"serial\": \"/dev/ttyUSB1:57600\", " RX "}", DH_SMP_TR_SERIAL, "", "/dev/ttyUSB1",
	  1337, 57600, 1 },
	{ "{\"serial\": \"/dev/ttyUSB1\", " RX "}", DH_SMP_TR_SERIAL, "", "/dev/ttyUSB1", 1337,
	  115200, 1 },
	{ "{\"serial\": {\"device\": \"/dev/pts/7\"}, " RX "}", DH_SMP_TR_SERIAL, "", "/dev/pts/7",
	  1337, 115200, 1 },
	{ "{\"udp\": \"h\", \"receivers\": [{\"addr\": 1}, {\"addr\": 32767, \"img_idx\": 255}, "
	  "{\"addr\": 3, \"img_idx\": 1}]}",
	  DH_SMP_TR_UDP, "h", "", 1337, 115200, 3 },
};

START_TEST(test_good)
{
	const struct good *g = &goods[_i];
	struct dh_dfd_params p;
	char why[DH_MESH_SMP_WHY_MAX];
	json_t *j = load(g->json);
	enum dh_err rc = dh_mesh_smp_params_from_json(j, &p, why, sizeof(why));

	ck_assert_msg(rc == DH_OK, "%s: %s", g->json, why);
	ck_assert_int_eq(p.transport, g->transport);
	ck_assert_str_eq(p.host, g->host);
	ck_assert_str_eq(p.device, g->device);
	ck_assert_uint_eq(p.port, g->port);
	ck_assert_uint_eq(p.baud, g->baud);
	ck_assert_uint_eq(p.n_receivers, g->n_receivers);
	ck_assert(dh_mesh_smp_validate(j, why, sizeof(why)));
	json_decref(j);
}
END_TEST

START_TEST(test_defaults_and_knobs)
{
	struct dh_dfd_params p;
	char why[DH_MESH_SMP_WHY_MAX];
	json_t *j = load("{\"udp\": \"h\", " RX "}");

	ck_assert_int_eq(dh_mesh_smp_params_from_json(j, &p, why, sizeof(why)), DH_OK);
	ck_assert_uint_eq(p.ttl, 255);
	ck_assert_uint_eq(p.app_idx, 0);
	ck_assert_uint_eq(p.group, 0);
	ck_assert_uint_eq(p.xfer_mode, 1);
	ck_assert_int_eq(p.policy, DH_DFD_POLICY_APPLY);
	ck_assert_uint_eq(p.poll_ms, 5000);
	ck_assert_str_eq(p.fwid_hex, "");
	ck_assert(!p.allow_partial && !p.preempt);
	ck_assert_uint_eq(p.receivers[0].addr, 2);
	json_decref(j);

	j = load("{\"udp\": \"h\", \"receivers\": [{\"addr\": 5, \"img_idx\": 3}], "
		 "\"app_idx\": 4095, \"group\": 49152, \"ttl\": 0, \"timeout_base\": 65535, "
		 "\"xfer_mode\": 2, \"policy\": \"verify\", \"fwid\": \"0102ABcd\", "
		 "\"metadata\": \"\", \"allow_partial\": true, \"preempt\": true, \"poll_ms\": 50, "
		 "\"fast_poll_ms\": 20, \"probe_tries\": 1, \"smp_timeout_ms\": 300, "
		 "\"rto_ms\": 40, \"retries\": 0, \"mtu\": 512, \"window\": 0, "
		 "\"idle_deadline_ms\": 0, \"distribute_deadline_ms\": 604800000, "
		 "\"stall_ms\": 1000, \"verify_wait_ms\": 0, \"chunk_timeout_ms\": 800}");
	ck_assert_msg(dh_mesh_smp_params_from_json(j, &p, why, sizeof(why)) == DH_OK, "%s", why);
	ck_assert_uint_eq(p.receivers[0].addr, 5);
	ck_assert_uint_eq(p.receivers[0].img_idx, 3);
	ck_assert_uint_eq(p.app_idx, 4095);
	ck_assert_uint_eq(p.group, 0xc000);
	ck_assert_uint_eq(p.ttl, 0);
	ck_assert_uint_eq(p.timeout_base, 65535);
	ck_assert_uint_eq(p.xfer_mode, 2);
	ck_assert_int_eq(p.policy, DH_DFD_POLICY_VERIFY);
	ck_assert_str_eq(p.fwid_hex, "0102ABcd");
	ck_assert_str_eq(p.metadata_hex, "");
	ck_assert(p.allow_partial && p.preempt);
	ck_assert_uint_eq(p.poll_ms, 50);
	ck_assert_uint_eq(p.fast_poll_ms, 20);
	ck_assert_uint_eq(p.probe_tries, 1);
	ck_assert_uint_eq(p.smp.timeout_ms, 300);
	ck_assert_uint_eq(p.smp.rto_ms, 40);
	ck_assert_uint_eq(p.smp.retries, 0);
	ck_assert_uint_eq(p.smp.mtu, 512);
	ck_assert_uint_eq(p.smp.window, 0);
	ck_assert_uint_eq(p.smp.chunk_timeout_ms, 800);
	ck_assert_uint_eq(p.idle_deadline_ms, 0);
	ck_assert_uint_eq(p.distribute_deadline_ms, 604800000u);
	ck_assert_uint_eq(p.stall_ms, 1000);
	ck_assert_uint_eq(p.verify_wait_ms, 0);
	json_decref(j);
}
END_TEST

/* Bad params and the start of the sentence that must name the key. */
static const struct bad {
	const char *json;
	const char *why_prefix;
} bads[] = {
	{ "[]", "params:" },
	{ "{" RX "}", "transport:" },
	{ "{\"udp\": \"h\"}", "receivers:" },
	{ "{\"udp\": \"h\", \"serial\": \"/dev/x\", " RX "}", "transport:" },
	{ "{\"transport\": \"udp\", \"udp\": \"h\", " RX "}", "transport:" },
	{ "{\"transport\": \"tcp\", \"host\": \"h\", " RX "}", "transport:" },
	{ "{\"transport\": \"udp\", " RX "}", "host:" },
	{ "{\"transport\": \"udp\", \"host\": \"h\", \"port\": 0, " RX "}", "port:" },
	{ "{\"transport\": \"udp\", \"host\": \"h\", \"port\": 65536, " RX "}", "port:" },
	{ "{\"transport\": \"udp\", \"host\": \"h\", \"port\": \"1337\", " RX "}", "port:" },
	{ "{\"transport\": \"udp\", \"host\": \"h\", \"baud\": 9600, " RX "}", "baud:" },
	{ "{\"transport\": \"udp\", \"host\": \"a b\", " RX "}", "host:" },
	{ "{\"transport\": \"udp\", \"host\": \"\", " RX "}", "host:" },
	{ "{\"transport\": \"serial\", " RX "}", "device:" },
	{ "{\"transport\": \"serial\", \"device\": \"ttyACM0\", " RX "}", "device:" },
	{ "{\"transport\": \"serial\", \"device\": \"/dev/x\", \"baud\": 12345, " RX "}", "baud:" },
	{ "{\"transport\": \"serial\", \"device\": \"/dev/x\", \"port\": 1, " RX "}", "port:" },
	{ "{\"udp\": \"h\", \"host\": \"h\", " RX "}", "host:" },
	{ "{\"udp\": \"h:0\", " RX "}", "udp:" },
	{ "{\"udp\": \"h:99999\", " RX "}", "udp:" },
	{ "{\"udp\": \"h:x\", " RX "}", "udp:" },
	{ "{\"udp\": \"[::1\", " RX "}", "udp:" },
	{ "{\"udp\": \":1337\", " RX "}", "udp:" },
	{ "{\"udp\": 1337, " RX "}", "udp:" },
	{ "{\"udp\": {\"port\": 1337}, " RX "}", "udp.host:" },
	{ "{\"udp\": {\"host\": \"h\", \"prot\": 1}, " RX "}", "udp.prot:" },
	{ "{\"serial\": \"/dev/x:300\", " RX "}", "serial:" },
	{ "{\"serial\": \"COM3\", " RX "}", "serial:" },
	{ "{\"serial\": {\"device\": \"/dev/x\", \"baud\": \"fast\"}, " RX "}", "serial.baud:" },
	{ "{\"udp\": \"h\", \"receivers\": []}", "receivers:" },
	{ "{\"udp\": \"h\", \"receivers\": {\"addr\": 2}}", "receivers:" },
	{ "{\"udp\": \"h\", \"receivers\": [2]}", "receivers[0]:" },
	{ "{\"udp\": \"h\", \"receivers\": [{\"img_idx\": 0}]}", "receivers[0].addr:" },
	{ "{\"udp\": \"h\", \"receivers\": [{\"addr\": 0}]}", "receivers[0].addr:" },
	{ "{\"udp\": \"h\", \"receivers\": [{\"addr\": 32768}]}", "receivers[0].addr:" },
	{ "{\"udp\": \"h\", \"receivers\": [{\"addr\": -1}]}", "receivers[0].addr:" },
	{ "{\"udp\": \"h\", \"receivers\": [{\"addr\": \"0x0002\"}]}", "receivers[0].addr:" },
	{ "{\"udp\": \"h\", \"receivers\": [{\"addr\": 2.0}]}", "receivers[0].addr:" },
	{ "{\"udp\": \"h\", \"receivers\": [{\"addr\": 2, \"img_idx\": 256}]}",
	  "receivers[0].img_idx:" },
	{ "{\"udp\": \"h\", \"receivers\": [{\"addr\": 2, \"idx\": 0}]}", "receivers[0].idx:" },
	{ "{\"udp\": \"h\", \"receivers\": [{\"addr\": 2}, {\"addr\": 3}, {\"addr\": 2}]}",
	  "receivers[2].addr:" },
	{ "{\"udp\": \"h\", " RX ", \"app_idx\": 4096}", "app_idx:" },
	{ "{\"udp\": \"h\", " RX ", \"group\": 5}", "group:" },
	{ "{\"udp\": \"h\", " RX ", \"group\": 65536}", "group:" },
	{ "{\"udp\": \"h\", " RX ", \"ttl\": 256}", "ttl:" },
	{ "{\"udp\": \"h\", " RX ", \"ttl\": true}", "ttl:" },
	{ "{\"udp\": \"h\", " RX ", \"timeout_base\": 65536}", "timeout_base:" },
	{ "{\"udp\": \"h\", " RX ", \"xfer_mode\": 0}", "xfer_mode:" },
	{ "{\"udp\": \"h\", " RX ", \"xfer_mode\": 3}", "xfer_mode:" },
	{ "{\"udp\": \"h\", " RX ", \"policy\": \"now\"}", "policy:" },
	{ "{\"udp\": \"h\", " RX ", \"policy\": 1}", "policy:" },
	{ "{\"udp\": \"h\", " RX ", \"fwid\": \"\"}", "fwid:" },
	{ "{\"udp\": \"h\", " RX ", \"fwid\": \"abc\"}", "fwid:" },
	{ "{\"udp\": \"h\", " RX ", \"fwid\": \"zz\"}", "fwid:" },
	{ "{\"udp\": \"h\", " RX ", \"fwid\": \"000102030405060708090a0b0c0d0e0f10\"}", "fwid:" },
	{ "{\"udp\": \"h\", " RX ", \"metadata\": \"00010203040506070809000102030405060708090001"
	  "020304050607080900010203\"}",
	  "metadata:" },
	{ "{\"udp\": \"h\", " RX ", \"metadata\": 12}", "metadata:" },
	{ "{\"udp\": \"h\", " RX ", \"allow_partial\": \"yes\"}", "allow_partial:" },
	{ "{\"udp\": \"h\", " RX ", \"preempt\": 1}", "preempt:" },
	{ "{\"udp\": \"h\", " RX ", \"poll_ms\": 0}", "poll_ms:" },
	{ "{\"udp\": \"h\", " RX ", \"poll_ms\": 600001}", "poll_ms:" },
	{ "{\"udp\": \"h\", " RX ", \"probe_tries\": 0}", "probe_tries:" },
	{ "{\"udp\": \"h\", " RX ", \"stall_ms\": 0}", "stall_ms:" },
	{ "{\"udp\": \"h\", " RX ", \"idle_deadline_ms\": 5}", "idle_deadline_ms:" },
	{ "{\"udp\": \"h\", " RX ", \"mtu\": 64}", "mtu:" },
	{ "{\"udp\": \"h\", " RX ", \"window\": 9}", "window:" },
	{ "{\"udp\": \"h\", " RX ", \"smp_timeout_ms\": 1e3}", "smp_timeout_ms:" },
	{ "{\"udp\": \"h\", " RX ", \"receiver\": []}", "receiver:" },
};

START_TEST(test_bad)
{
	const struct bad *b = &bads[_i];
	struct dh_dfd_params p;
	char why[DH_MESH_SMP_WHY_MAX] = "";
	json_t *j = load(b->json);

	ck_assert_msg(dh_mesh_smp_params_from_json(j, &p, why, sizeof(why)) == DH_E_INVALID,
		      "accepted: %s", b->json);
	ck_assert_msg(strncmp(why, b->why_prefix, strlen(b->why_prefix)) == 0,
		      "%s: why '%s' does not start with '%s'", b->json, why, b->why_prefix);
	why[0] = '\0';
	ck_assert(!dh_mesh_smp_validate(j, why, sizeof(why)));
	ck_assert(why[0] != '\0');
	json_decref(j);
}
END_TEST

START_TEST(test_null_and_limits)
{
	struct dh_dfd_params p;
	char why[DH_MESH_SMP_WHY_MAX];
	char buf[8192];
	size_t o;
	json_t *j;

	ck_assert_int_eq(dh_mesh_smp_params_from_json(NULL, &p, why, sizeof(why)), DH_E_INVALID);
	ck_assert(strncmp(why, "transport:", 10) == 0);
	/* why may be NULL */
	ck_assert_int_eq(dh_mesh_smp_params_from_json(NULL, &p, NULL, 0), DH_E_INVALID);

	/* exactly DH_DFD_RECEIVERS_MAX receivers pass, one more fails */
	for (int n = DH_DFD_RECEIVERS_MAX; n <= DH_DFD_RECEIVERS_MAX + 1; n++) {
		o = (size_t)snprintf(buf, sizeof(buf), "{\"udp\": \"h\", \"receivers\": [");
		for (int i = 0; i < n; i++)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s{\"addr\": %d}",
					      i ? ", " : "", i + 1);
		snprintf(buf + o, sizeof(buf) - o, "]}");
		j = load(buf);
		if (n == DH_DFD_RECEIVERS_MAX) {
			ck_assert(dh_mesh_smp_params_from_json(j, &p, why, sizeof(why)) == DH_OK);
			ck_assert_uint_eq(p.n_receivers, DH_DFD_RECEIVERS_MAX);
		} else {
			ck_assert(dh_mesh_smp_params_from_json(j, &p, why, sizeof(why)) ==
				  DH_E_INVALID);
			ck_assert(strncmp(why, "receivers:", 10) == 0);
		}
		json_decref(j);
	}

	/* a host of 255 characters fits, 256 does not */
	for (size_t n = 255; n <= 256; n++) {
		char host[300];

		memset(host, 'a', n);
		host[n] = '\0';
		snprintf(buf, sizeof(buf), "{\"udp\": \"%s\", " RX "}", host);
		j = load(buf);
		ck_assert_int_eq(dh_mesh_smp_params_from_json(j, &p, why, sizeof(why)),
				 n == 255 ? DH_OK : DH_E_INVALID);
		json_decref(j);
	}
}
END_TEST

START_TEST(test_report_to_json)
{
	struct dh_dfd_report r;
	json_t *j, *rx;

	memset(&r, 0, sizeof(r));
	r.stage = "distribute";
	r.phase = 1;
	r.status = 0;
	r.progress = 42;
	r.slot_idx = 0;
	snprintf(r.fwid, sizeof(r.fwid), "0102030405060708");
	r.upload_off = 1024;
	r.upload_len = 4096;
	r.n_receivers = 2;
	r.receivers[0] = (struct dh_dfd_receiver_state){ .addr = 2, .phase = 2, .progress = 50 };
	r.receivers[1] = (struct dh_dfd_receiver_state){
		.addr = 0x7fff, .phase = 10, .status = 3, .blob_status = 9, .img_idx = 1
	};
	j = dh_mesh_smp_report_to_json(&r);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "phase")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "progress")), 42);
	ck_assert_str_eq(json_string_value(json_object_get(j, "stage")), "distribute");
	ck_assert_str_eq(json_string_value(json_object_get(j, "fwid")), "0102030405060708");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "slot_idx")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "upload"), "off")),
			 1024);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "upload"), "len")),
			 4096);
	rx = json_object_get(j, "receivers");
	ck_assert_uint_eq(json_array_size(rx), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(rx, 0), "progress")),
			 50);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(rx, 1), "addr")),
			 0x7fff);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(rx, 1), "blob_status")),
			 9);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(rx, 1), "img_idx")), 1);
	json_decref(j);

	/* before the first dfd get: phase -1, no stage yet, no receivers */
	memset(&r, 0, sizeof(r));
	r.phase = -1;
	r.slot_idx = -1;
	j = dh_mesh_smp_report_to_json(&r);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "phase")), -1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "stage")), "");
	ck_assert_uint_eq(json_array_size(json_object_get(j, "receivers")), 0);
	json_decref(j);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mesh_params");
	TCase *tc = tcase_create("params");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_good, 0, (int)(sizeof(goods) / sizeof(goods[0])));
	tcase_add_test(tc, test_defaults_and_knobs);
	tcase_add_loop_test(tc, test_bad, 0, (int)(sizeof(bads) / sizeof(bads[0])));
	tcase_add_test(tc, test_null_and_limits);
	tcase_add_test(tc, test_report_to_json);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
