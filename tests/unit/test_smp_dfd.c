/*
 * Tests of the mesh distributor driver (server/smp/dfd.c) end to end against the Python
 * distributor simulator of tests/sim/dfd_sim.py, started per case on an ephemeral UDP port:
 * a clean run, policy verify with a failing receiver (with and without allow_partial), an
 * unknown AppKey, too many receivers, a distributor without DFD model, an old release with
 * colour codes, log noise and a small capture buffer, lossy UDP, cancellation, and an
 * unreachable distributor. Skipped (exit 77) when python3 or its cbor2 module is missing.
 */
#include "smp/dfd.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef DH_SIM_PATH
#error "DH_SIM_PATH must name tests/sim/dfd_sim.py"
#endif

#define PYTHON "/usr/bin/python3"

struct sim {
	pid_t pid;
	int in_fd;
	unsigned port;
};

static bool sim_start(struct sim *s, const char *const *extra)
{
	const char *argv[32];
	int to_child[2], from_child[2];
	char line[512];
	size_t n = 0, k = 0;
	char *p;

	argv[n++] = PYTHON;
	argv[n++] = DH_SIM_PATH;
	argv[n++] = "--udp-port";
	argv[n++] = "0";
	argv[n++] = "--step-delay";
	argv[n++] = "0.02";
	argv[n++] = "--cancel-delay";
	argv[n++] = "0.05";
	while (extra && extra[k] && n < 31)
		argv[n++] = extra[k++];
	argv[n] = NULL;
	if (pipe(to_child) != 0 || pipe(from_child) != 0)
		return false;
	s->pid = fork();
	if (s->pid < 0)
		return false;
	if (s->pid == 0) {
		/* A test that fails half-way must not leave the simulator behind. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(to_child[0], 0);
		dup2(from_child[1], 1);
		close(to_child[1]);
		close(from_child[0]);
		execv(PYTHON, (char *const *)argv);
		_exit(127);
	}
	close(to_child[0]);
	close(from_child[1]);
	s->in_fd = to_child[1];
	/* The simulator prints one JSON line with its port once it serves. */
	n = 0;
	while (n + 1 < sizeof(line)) {
		ssize_t r = read(from_child[0], line + n, 1);

		if (r <= 0)
			break;
		if (line[n++] == '\n')
			break;
	}
	line[n] = '\0';
	close(from_child[0]);
	p = strstr(line, "\"udp_port\": ");
	if (!p)
		return false;
	s->port = (unsigned)strtoul(p + 12, NULL, 10);
	return s->port != 0;
}

static void sim_stop(struct sim *s)
{
	int st;

	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, &st, 0);
	}
	close(s->in_fd);
}

/* The 88-byte MCUboot image of SMP.md section 9. */
static const uint8_t test_image[88] = {
	0x3d, 0xb8, 0xf3, 0x96, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x44, 0x65, 0x76, 0x69, 0x63, 0x65, 0x20, 0x48, 0x75, 0x62, 0x20, 0x74, 0x65,
	0x73, 0x74, 0x0a, 0x07, 0x69, 0x28, 0x00, 0x10, 0x00, 0x20, 0x00, 0x8b, 0xf0, 0xd0, 0x14,
	0x77, 0x74, 0xba, 0x1f, 0x4f, 0xb2, 0x35, 0x8a, 0x8d, 0x6c, 0xe6, 0xf0, 0xa2, 0x56, 0x41,
	0xb8, 0x5b, 0x10, 0x70, 0x19, 0xf6, 0x5b, 0x1c, 0xcb, 0xfb, 0x69, 0x83, 0xf2,
};

static char image_path[64];
static char big_image_path[64];

/* A valid MCUboot image with a body of n bytes (SMP.md 6), large enough for several blocks. */
static bool write_big_image(size_t n)
{
	uint8_t *img = calloc(1, 32 + n + 40);
	bool ok = false;
	size_t i;
	int fd;

	if (!img)
		return false;
	memcpy(img, test_image, 32);
	img[12] = (uint8_t)n;
	img[13] = (uint8_t)(n >> 8);
	img[14] = (uint8_t)(n >> 16);
	for (i = 0; i < n; i++)
		img[32 + i] = (uint8_t)(i * 13);
	memcpy(img + 32 + n, "\x07\x69\x28\x00\x10\x00\x20\x00", 8);
	dh_smp_sha256(img, 32 + n, img + 32 + n + 8);
	snprintf(big_image_path, sizeof(big_image_path), "/tmp/test_smp_dfd_big_XXXXXX");
	fd = mkstemp(big_image_path);
	if (fd >= 0) {
		ok = write(fd, img, 32 + n + 40) == (ssize_t)(32 + n + 40);
		close(fd);
	}
	free(img);
	return ok;
}

static bool write_image(void)
{
	bool ok;
	int fd;

	snprintf(image_path, sizeof(image_path), "/tmp/test_smp_dfd_XXXXXX");
	fd = mkstemp(image_path);
	if (fd < 0)
		return false;
	ok = write(fd, test_image, sizeof(test_image)) == (ssize_t)sizeof(test_image);
	close(fd);
	return ok;
}

struct seen {
	bool probe, upload, distribute, finish;
	struct dh_dfd_report last;
	atomic_int *cancel_at_distribute;
};

static void on_report(void *ctx, const struct dh_dfd_report *r)
{
	struct seen *s = ctx;

	if (strcmp(r->stage, "probe") == 0)
		s->probe = true;
	if (strcmp(r->stage, "upload") == 0)
		s->upload = true;
	if (strcmp(r->stage, "distribute") == 0) {
		s->distribute = true;
		if (s->cancel_at_distribute)
			atomic_store(s->cancel_at_distribute, 1);
	}
	if (strcmp(r->stage, "finish") == 0)
		s->finish = true;
	ck_assert_uint_le(r->progress, 100);
	ck_assert_uint_le(r->upload_off, r->upload_len);
	s->last = *r;
}

static void params_for(struct dh_dfd_params *p, unsigned port, size_t nrecv)
{
	size_t i;

	dh_dfd_params_default(p);
	snprintf(p->host, sizeof(p->host), "127.0.0.1");
	p->port = port;
	p->poll_ms = 50;
	p->fast_poll_ms = 50;
	p->smp.timeout_ms = 1500;
	p->probe_tries = 2;
	snprintf(p->fwid_hex, sizeof(p->fwid_hex), "5900010203000000");
	for (i = 0; i < nrecv; i++) {
		p->receivers[i].addr = (uint16_t)(4 + i);
		p->receivers[i].img_idx = 0;
	}
	p->n_receivers = nrecv;
}

/* Runs one case: simulator arguments, parameter tweak, expected result. */
static enum dh_dfd_result run_case(const char *const *sim_args, bool big, size_t nrecv,
				   void (*tweak)(struct dh_dfd_params *), struct seen *seen,
				   struct dh_dfd_error *err, atomic_int *cancel)
{
	struct dh_dfd_params *p = malloc(sizeof(*p));
	struct sim s = { 0 };
	enum dh_dfd_result res;

	ck_assert_ptr_nonnull(p);
	ck_assert_msg(sim_start(&s, sim_args), "simulator did not start");
	params_for(p, s.port, nrecv);
	if (tweak)
		tweak(p);
	res = dh_dfd_run(p, big ? big_image_path : image_path, on_report, seen, cancel, err);
	sim_stop(&s);
	free(p);
	return res;
}

START_TEST(apply_success)
{
	struct seen seen = { 0 };
	struct dh_dfd_error err;
	size_t i;

	ck_assert_int_eq(run_case(NULL, false, 3, NULL, &seen, &err, NULL), DH_DFD_OK);
	ck_assert(seen.probe && seen.upload && seen.distribute && seen.finish);
	ck_assert_uint_eq(seen.last.upload_off, sizeof(test_image));
	ck_assert_uint_eq(seen.last.n_receivers, 3);
	ck_assert_int_eq(seen.last.slot_idx, 0);
	ck_assert_str_eq(seen.last.fwid, "5900010203000000");
	ck_assert_uint_eq(seen.last.progress, 100);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(seen.last.receivers[i].phase, 8);
		ck_assert_int_eq(seen.last.receivers[i].status, 0);
	}
}
END_TEST

static void verify_policy(struct dh_dfd_params *p)
{
	p->policy = DH_DFD_POLICY_VERIFY;
}

static void verify_partial(struct dh_dfd_params *p)
{
	p->policy = DH_DFD_POLICY_VERIFY;
	p->allow_partial = true;
}

START_TEST(verify_failed_receiver)
{
	static const char *const args[] = { "--fail-receiver", "5:40", NULL };
	struct seen seen = { 0 };
	struct dh_dfd_error err;

	ck_assert_int_eq(run_case(args, true, 3, verify_policy, &seen, &err, NULL),
			 DH_DFD_E_VERIFY);
	ck_assert_str_eq(err.code, "verify_failed");
	ck_assert_ptr_nonnull(strstr(err.detail, "0x0005"));

	memset(&seen, 0, sizeof(seen));
	ck_assert_int_eq(run_case(args, true, 3, verify_partial, &seen, &err, NULL), DH_DFD_OK);
	ck_assert_int_eq(seen.last.receivers[1].addr, 5);
	ck_assert_int_ne(seen.last.receivers[1].status, 0);
	ck_assert_int_eq(seen.last.receivers[0].phase, 8);
}
END_TEST

START_TEST(apply_partial_failure)
{
	static const char *const args[] = { "--fail-receiver", "4:20", NULL };
	struct seen seen = { 0 };
	struct dh_dfd_error err;

	ck_assert_int_eq(run_case(args, true, 2, NULL, &seen, &err, NULL), DH_DFD_E_PARTIAL);
	ck_assert_str_eq(err.code, "partial_failure");
	ck_assert_ptr_nonnull(strstr(err.detail, "0x0004"));
}
END_TEST

static void bad_app_key(struct dh_dfd_params *p)
{
	p->app_idx = 3;
}

START_TEST(start_errors)
{
	static const char *const few[] = { "--targets-max", "2", NULL };
	struct seen seen = { 0 };
	struct dh_dfd_error err;

	ck_assert_int_eq(run_case(NULL, false, 1, bad_app_key, &seen, &err, NULL),
			 DH_DFD_E_APP_KEY);
	ck_assert_ptr_nonnull(strstr(err.detail, "dfd start 3 0"));
	ck_assert_int_eq(run_case(few, false, 3, NULL, &seen, &err, NULL), DH_DFD_E_TOO_MANY);
	ck_assert_str_eq(err.code, "too_many_receivers");
}
END_TEST

START_TEST(no_dfd_model)
{
	static const char *const args[] = { "--no-dfd", NULL };
	struct seen seen = { 0 };
	struct dh_dfd_error err;

	ck_assert_int_ne(run_case(args, false, 1, NULL, &seen, &err, NULL), DH_DFD_OK);
	ck_assert_ptr_nonnull(strstr(err.detail, "mesh models dfd get"));
}
END_TEST

START_TEST(old_release_noisy_shell)
{
	static const char *const args[] = { "--old-release",  "--vt100", "--log-noise", "0.3",
					    "--capture-size", "200",     NULL };
	struct seen seen = { 0 };
	struct dh_dfd_error err;

	ck_assert_int_eq(run_case(args, false, 4, NULL, &seen, &err, NULL), DH_DFD_OK);
	ck_assert_uint_eq(seen.last.n_receivers, 4);
	ck_assert_int_eq(seen.last.receivers[3].phase, 8);
}
END_TEST

START_TEST(lossy_udp)
{
	static const char *const args[] = { "--drop", "0.05", "--duplicate", "0.05",
					    "--seed", "5",    NULL };
	struct seen seen = { 0 };
	struct dh_dfd_error err;

	ck_assert_msg(run_case(args, true, 2, NULL, &seen, &err, NULL) == DH_DFD_OK, "%s",
		      err.detail);
}
END_TEST

static void short_shell_timeout(struct dh_dfd_params *p)
{
	p->smp.shell_timeout_ms = 1000;
}

/* A lost "dfu slot add" request: fw-get finds no slot, so the driver sends it again. */
START_TEST(slot_add_request_lost)
{
	static const char *const args[] = { "--lose-command", "mesh models dfu slot add", NULL };
	struct seen seen = { 0 };
	struct dh_dfd_error err;

	ck_assert_msg(run_case(args, false, 2, short_shell_timeout, &seen, &err, NULL) == DH_DFD_OK,
		      "%s", err.detail);
	ck_assert(seen.finish);
	ck_assert_int_eq(seen.last.slot_idx, 0);
}
END_TEST

START_TEST(cancelled)
{
	static const char *const args[] = { "--speed", "10", NULL };
	struct seen seen = { 0 };
	struct dh_dfd_error err;
	atomic_int cancel = 0;

	seen.cancel_at_distribute = &cancel;
	ck_assert_int_eq(run_case(args, false, 1, NULL, &seen, &err, &cancel), DH_DFD_E_CANCELLED);
	ck_assert_str_eq(err.code, "cancelled");
	ck_assert(seen.distribute);
}
END_TEST

START_TEST(unreachable)
{
	struct dh_dfd_params *p = malloc(sizeof(*p));
	struct dh_dfd_error err;
	struct seen seen = { 0 };

	ck_assert_ptr_nonnull(p);
	/* Port 9 (discard) on loopback: nothing answers. */
	params_for(p, 9, 1);
	p->smp.timeout_ms = 200;
	ck_assert_int_eq(dh_dfd_run(p, image_path, on_report, &seen, NULL, &err),
			 DH_DFD_E_UNREACHABLE);
	ck_assert_str_eq(err.code, "distributor_unreachable");
	p->n_receivers = 0;
	ck_assert_int_eq(dh_dfd_run(p, image_path, NULL, NULL, NULL, &err), DH_DFD_E_NO_RECEIVERS);
	p->n_receivers = 1;
	snprintf(p->fwid_hex, sizeof(p->fwid_hex), "xyz");
	ck_assert_int_eq(dh_dfd_run(p, image_path, NULL, NULL, NULL, &err), DH_DFD_E_INVALID);
	free(p);
}
END_TEST

static bool have_simulator(void)
{
	int st;
	pid_t pid;

	if (access(PYTHON, X_OK) != 0 || access(DH_SIM_PATH, R_OK) != 0)
		return false;
	pid = fork();
	if (pid == 0) {
		execl(PYTHON, PYTHON, "-c", "import cbor2", (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return false;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static Suite *smp_dfd_suite(void)
{
	Suite *s = suite_create("smp_dfd");
	TCase *tc = tcase_create("sim");

	tcase_add_test(tc, apply_success);
	tcase_add_test(tc, verify_failed_receiver);
	tcase_add_test(tc, apply_partial_failure);
	tcase_add_test(tc, start_errors);
	tcase_add_test(tc, no_dfd_model);
	tcase_add_test(tc, old_release_noisy_shell);
	tcase_add_test(tc, lossy_udp);
	tcase_add_test(tc, slot_add_request_lost);
	tcase_add_test(tc, cancelled);
	tcase_add_test(tc, unreachable);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (!have_simulator()) {
		printf("skipped: %s with python3-cbor2 is needed\n", DH_SIM_PATH);
		return 77;
	}
	if (!write_image() || !write_big_image(40000)) {
		fprintf(stderr, "cannot write the test image\n");
		return EXIT_FAILURE;
	}
	sr = srunner_create(smp_dfd_suite());
	/* The simulator children must not be forked twice by check. */
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	unlink(image_path);
	unlink(big_image_path);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
