/*
 * dh-smp: a command-line tool over the SMP client library, for operators and for testing the
 * library against real distributors and the simulator. Parses the options, opens the UDP or
 * serial transport, runs one command, prints its result as JSON on stdout and progress on
 * stderr. Exit codes: 0 success, 1 failure, 2 usage error. Owns nothing beyond one run.
 * Every text that came from the device (or from a file name or the command line) is printed
 * through text_json or errorf: well-formed UTF-8, control characters escaped.
 */
#include "core/text.h"
#include "smp/client.h"
#include "smp/dfd.h"
#include "smp/transport.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 2

/* Longest line written on stderr: a sentence that quotes a device's answer (the driver's
 * detail is 640 bytes) with room for its escapes. */
#define ERR_LINE_MAX 2048

static const char usage_text[] =
	"usage: dh-smp (--udp HOST[:PORT] | --serial DEV[:BAUD]) [OPTIONS] COMMAND [ARGS]\n"
	"\n"
	"Talks SMP (mcumgr) to a device or mesh distributor and prints JSON on stdout.\n"
	"Text from the device is shown as it came, but each byte that is not UTF-8 and each\n"
	"byte of a control character is written \\xNN (shell output keeps its line feeds and\n"
	"tabs; its CRLF line ends become line feeds).\n"
	"\n"
	"transport:\n"
	"  --udp HOST[:PORT]      UDP, default port 1337; IPv6 as [::1]:1337\n"
	"  --serial DEV[:BAUD]    serial console framing on a tty, default 115200 baud\n"
	"options:\n"
	"  --timeout-ms N         timeout of simple commands (default 3000)\n"
	"  --rto-ms N             initial UDP retransmission timeout (default 250); it then\n"
	"                         follows the measured round trip\n"
	"  --rto-min-ms N         floor of the adaptive retransmission timeout (default 30)\n"
	"  --mtu N                cap on the SMP frame size in bytes\n"
	"  --window N             cap on upload requests in flight (default: buf_count - 1)\n"
	"  --help                 this text\n"
	"commands:\n"
	"  echo TEXT              echo TEXT and print the answer\n"
	"  params                 print the mcumgr buffer size and count\n"
	"  image-list             print the image state (slots, versions, hashes, flags)\n"
	"  upload FILE [--image N]\n"
	"                         upload FILE as image N (default 0), resuming a partial upload;\n"
	"                         progress on stderr\n"
	"  reset                  reboot the device\n"
	"  shell ARG...           run a shell command, print its output and return value\n"
	"  mesh-distribute FILE --receivers ADDR:IDX,... [--policy verify|apply]\n"
	"        [--app-idx N] [--group N] [--ttl N] [--timeout-base N] [--xfer-mode N]\n"
	"        [--fwid HEX] [--metadata HEX] [--poll-ms N] [--allow-partial] [--preempt]\n"
	"                         upload FILE to a mesh distributor and run the distribution\n"
	"                         (SMP.md section 8); progress on stderr. Defaults: policy apply,\n"
	"                         app-idx 0, group 0, ttl 255, timeout-base 0, xfer-mode 1,\n"
	"                         fwid = first 8 bytes of the file's SHA-256, poll 5000 ms\n"
	"exit status: 0 success, 1 failure, 2 usage error\n";

/* set by the signal handler: a lock-free atomic, safe there and seen by every wait */
static atomic_int g_cancel;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&g_cancel, 1);
}

static int usage_error(const char *what)
{
	fprintf(stderr, "dh-smp: %s\n%.*s\nTry 'dh-smp --help' for more.\n", what,
		(int)strcspn(usage_text, "\n"), usage_text);
	return EXIT_USAGE;
}

/*
 * Text from outside as a JSON string: well-formed UTF-8, each control character escaped as
 * \xNN (core/text.h). multiline keeps line feeds and tabs, and drops the carriage return of
 * each CRLF (the shell's line end). NULL when out of memory.
 */
static json_t *text_json(const char *s, size_t n, bool multiline)
{
	char *in = NULL, *out = NULL;
	size_t m = 0, len;
	json_t *j = NULL;

	if (n > (SIZE_MAX - 1) / 4)
		return NULL;
	in = malloc(n + 1);
	out = malloc(4 * n + 1);
	if (!in || !out)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (multiline && s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
			continue;
		in[m++] = s[i];
	}
	len = dh_text_escape(out, 4 * n + 1, in, m,
			     DH_TEXT_CONTROLS | (multiline ? DH_TEXT_KEEP_LINES : 0));
	j = json_stringn(out, len);
out:
	free(in);
	free(out);
	return j;
}

/* One line "dh-smp: ..." on stderr, escaped as text_json does (a terminal shows it). */
static void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void errorf(const char *fmt, ...)
{
	char stage[ERR_LINE_MAX], line[ERR_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(stage, sizeof(stage), fmt, ap);
	va_end(ap);
	n = n < 0 ? 0 : n < (int)sizeof(stage) ? n : (int)sizeof(stage) - 1;
	dh_text_escape(line, sizeof(line), stage, dh_utf8_trim_partial(stage, (size_t)n),
		       DH_TEXT_CONTROLS);
	fprintf(stderr, "dh-smp: %s\n", line);
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end = NULL;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return false;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0' || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_uint(const char *s, unsigned max, unsigned *out)
{
	uint64_t v;

	if (!parse_u64(s, max, &v))
		return false;
	*out = (unsigned)v;
	return true;
}

/* HOST, HOST:PORT, [V6], [V6]:PORT, or a bare IPv6 literal (more than one colon). */
static bool parse_hostport(const char *s, char *host, size_t cap, unsigned *port)
{
	const char *colon;
	size_t hl;

	*port = DH_SMP_UDP_PORT;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb)
			return false;
		hl = (size_t)(rb - s - 1);
		if (rb[1] == ':' && !parse_uint(rb + 2, 65535, port))
			return false;
		if (rb[1] != '\0' && rb[1] != ':')
			return false;
		s++;
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			colon = NULL; /* bare IPv6 */
		hl = colon ? (size_t)(colon - s) : strlen(s);
		if (colon && !parse_uint(colon + 1, 65535, port))
			return false;
	}
	if (hl == 0 || hl >= cap || *port == 0)
		return false;
	memcpy(host, s, hl);
	host[hl] = '\0';
	return true;
}

static bool parse_devbaud(const char *s, char *dev, size_t cap, unsigned *baud)
{
	const char *colon = strrchr(s, ':');
	size_t dl = strlen(s);

	*baud = DH_SMP_SERIAL_BAUD;
	if (colon && parse_uint(colon + 1, 4000000, baud))
		dl = (size_t)(colon - s);
	else
		*baud = DH_SMP_SERIAL_BAUD;
	if (dl == 0 || dl >= cap)
		return false;
	memcpy(dev, s, dl);
	dev[dl] = '\0';
	return true;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int print_json(json_t *j)
{
	int rc = 1;

	if (j && json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0) {
		fputc('\n', stdout);
		rc = 0;
	}
	json_decref(j);
	return rc;
}

static int fail(struct dh_smp_client *c, const char *cmd, enum dh_smp_status st)
{
	char name[192] = "";
	json_t *j;

	if (st == DH_SMP_E_REMOTE && c)
		dh_smp_err_name(&c->err, name, sizeof(name));
	errorf("%s failed: %s%s%s", cmd, dh_smp_strerror(st), name[0] ? ": " : "", name);
	j = json_pack("{s:b, s:s, s:s, s:o}", "ok", 0, "command", cmd, "error", dh_smp_strerror(st),
		      "detail", text_json(name, strlen(name), false));
	if (j && st == DH_SMP_E_REMOTE && c) {
		json_object_set_new(j, "rc", json_integer(c->err.rc));
		if (c->err.kind == DH_SMP_ERR_GROUP)
			json_object_set_new(j, "group", json_integer(c->err.group));
	}
	print_json(j);
	return 1;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct progress {
	uint64_t last_pct;
	bool tty;
};

static void upload_progress(void *ctx, uint64_t off, uint64_t len)
{
	struct progress *p = ctx;
	uint64_t pct = len ? off * 100 / len : 0;

	/* On a terminal every percent, in a log every tenth. */
	if ((pct == p->last_pct || (!p->tty && pct / 10 == p->last_pct / 10)) && off != len)
		return;
	p->last_pct = pct;
	fprintf(stderr, "upload %llu/%llu bytes (%llu%%)%s", (unsigned long long)off,
		(unsigned long long)len, (unsigned long long)pct,
		p->tty && off != len ? "\r" : "\n");
}

static int cmd_echo(struct dh_smp_client *c, int argc, char **argv)
{
	char out[DH_SMP_TEXT_MAX];
	enum dh_smp_status st;

	if (argc != 1)
		return usage_error("echo takes one TEXT argument");
	st = dh_smp_echo(c, argv[0], out, sizeof(out));
	if (st != DH_SMP_OK)
		return fail(c, "echo", st);
	return print_json(json_pack("{s:b, s:o, s:b}", "ok", 1, "r",
				    text_json(out, strlen(out), false), "smp_v1_peer", c->peer_v1));
}

static int cmd_params(struct dh_smp_client *c)
{
	struct dh_smp_params p;
	enum dh_smp_status st = dh_smp_read_params(c, &p);

	if (st != DH_SMP_OK)
		return fail(c, "params", st);
	return print_json(json_pack("{s:b, s:I, s:I, s:b}", "ok", 1, "buf_size",
				    (json_int_t)p.buf_size, "buf_count", (json_int_t)p.buf_count,
				    "fallback", c->params_fallback));
}

static int cmd_image_list(struct dh_smp_client *c)
{
	struct dh_smp_image_list l;
	enum dh_smp_status st = dh_smp_image_state(c, &l);
	json_t *arr, *j;
	size_t i;

	if (st != DH_SMP_OK)
		return fail(c, "image-list", st);
	arr = json_array();
	for (i = 0; arr && i < l.n; i++) {
		const struct dh_smp_image_slot *s = &l.slots[i];
		char h[2 * DH_SMP_SHA_LEN + 1];

		hex(s->hash, s->hash_len, h);
		json_array_append_new(
			arr,
			json_pack("{s:i, s:i, s:o, s:s, s:b, s:b, s:b, s:b, s:b}", "image",
				  (int)s->image, "slot", (int)s->slot, "version",
				  text_json(s->version, strlen(s->version), false), "hash", h,
				  "bootable", s->bootable, "pending", s->pending, "confirmed",
				  s->confirmed, "active", s->active, "permanent", s->permanent));
	}
	j = json_pack("{s:b, s:o}", "ok", 1, "images", arr);
	return print_json(j);
}

static int cmd_upload(struct dh_smp_client *c, int argc, char **argv)
{
	struct dh_smp_upload_result r;
	struct progress pr = { 0 };
	const char *path = NULL;
	unsigned image = 0;
	uint8_t *data = NULL, sha[DH_SMP_SHA_LEN];
	char shahex[2 * DH_SMP_SHA_LEN + 1], err[256];
	size_t len = 0;
	enum dh_smp_status st;
	double t0;
	int i, rc;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--image") == 0 && i + 1 < argc) {
			if (!parse_uint(argv[++i], 255, &image))
				return usage_error("--image needs a number 0..255");
		} else if (!path && argv[i][0] != '-') {
			path = argv[i];
		} else {
			return usage_error("upload FILE [--image N]");
		}
	}
	if (!path)
		return usage_error("upload needs a FILE");
	st = dh_smp_read_file(path, &data, &len, err, sizeof(err));
	if (st != DH_SMP_OK) {
		errorf("%s", err);
		print_json(json_pack("{s:b, s:s, s:s, s:o}", "ok", 0, "command", "upload", "error",
				     dh_smp_strerror(st), "detail",
				     text_json(err, strlen(err), false)));
		return 1;
	}
	dh_smp_sha256(data, len, sha);
	hex(sha, sizeof(sha), shahex);
	pr.tty = isatty(2);
	pr.last_pct = 101;
	t0 = mono_s();
	st = dh_smp_upload(c, data, len, image, upload_progress, &pr, &r);
	free(data);
	if (st != DH_SMP_OK)
		return fail(c, "upload", st);
	rc = print_json(json_pack("{s:b, s:I, s:s, s:o, s:I, s:i, s:I, s:I, s:I, s:i, s:f}", "ok",
				  1, "len", (json_int_t)len, "sha", shahex, "match",
				  r.has_match ? json_boolean(r.match) : json_null(), "resumed_from",
				  (json_int_t)r.resumed_from, "restarts", (int)r.restarts,
				  "retransmits", (json_int_t)r.retransmits, "chunk_first",
				  (json_int_t)r.chunk_first, "chunk_next", (json_int_t)r.chunk_next,
				  "window", (int)r.window, "seconds", mono_s() - t0));
	return rc;
}

static int cmd_reset(struct dh_smp_client *c)
{
	enum dh_smp_status st = dh_smp_reset(c, false);

	if (st != DH_SMP_OK)
		return fail(c, "reset", st);
	return print_json(json_pack("{s:b}", "ok", 1));
}

static int cmd_shell(struct dh_smp_client *c, int argc, char **argv)
{
	struct dh_smp_shell_rsp *r = NULL;
	enum dh_smp_status st;
	int rc;

	if (argc < 1 || argc > DH_SMP_ARGV_MAX)
		return usage_error("shell takes 1 to 20 arguments");
	r = malloc(sizeof(*r));
	if (!r)
		return fail(c, "shell", DH_SMP_E_NOMEM);
	st = dh_smp_shell_exec(c, (const char *const *)argv, (size_t)argc, false, r);
	if (st != DH_SMP_OK) {
		free(r);
		return fail(c, "shell", st);
	}
	rc = print_json(json_pack("{s:b, s:o, s:I, s:b}", "ok", 1, "o",
				  text_json(r->o, r->o_len, true), "ret", (json_int_t)r->ret,
				  "truncated", r->o_truncated));
	free(r);
	return rc;
}

static void dfd_report(void *ctx, const struct dh_dfd_report *rep)
{
	struct dh_dfd_report *last = ctx;

	*last = *rep;
	if (strcmp(rep->stage, "upload") == 0) {
		fprintf(stderr, "stage=upload off=%llu len=%llu\n",
			(unsigned long long)rep->upload_off, (unsigned long long)rep->upload_len);
		return;
	}
	fprintf(stderr, "stage=%s phase=%d status=%d progress=%u%% receivers=%zu\n", rep->stage,
		rep->phase, rep->status, rep->progress, rep->n_receivers);
}

static bool parse_receivers(const char *s, struct dh_dfd_params *p)
{
	const char *q = s;

	p->n_receivers = 0;
	while (*q) {
		char item[32];
		const char *comma = strchr(q, ',');
		size_t n = comma ? (size_t)(comma - q) : strlen(q);
		char *colon;
		unsigned addr, idx = 0;

		if (n == 0 || n >= sizeof(item) || p->n_receivers >= DH_DFD_RECEIVERS_MAX)
			return false;
		memcpy(item, q, n);
		item[n] = '\0';
		colon = strchr(item, ':');
		if (colon) {
			*colon = '\0';
			if (!parse_uint(colon + 1, 255, &idx))
				return false;
		}
		if (!parse_uint(item, 0xffff, &addr))
			return false;
		p->receivers[p->n_receivers].addr = (uint16_t)addr;
		p->receivers[p->n_receivers].img_idx = (uint8_t)idx;
		p->n_receivers++;
		q += n;
		if (*q == ',')
			q++;
	}
	return p->n_receivers > 0;
}

static int cmd_mesh(struct dh_dfd_params *p, int argc, char **argv)
{
	struct dh_dfd_error err = { 0 };
	struct dh_dfd_report rep;
	const char *path = NULL;
	json_t *j, *arr;
	unsigned v;
	size_t i;
	int k;
	enum dh_dfd_result res;

	for (k = 0; k < argc; k++) {
		const char *a = argv[k];
		const char *val = k + 1 < argc ? argv[k + 1] : NULL;

#define NUMOPT(flag, max, field)                                                                   \
	if (strcmp(a, flag) == 0) {                                                                \
		if (!val || !parse_uint(val, max, &v))                                             \
			return usage_error(flag " needs a number");                                \
		p->field = v;                                                                      \
		k++;                                                                               \
		continue;                                                                          \
	}
		NUMOPT("--app-idx", 0xfff, app_idx)
		NUMOPT("--group", 0xffff, group)
		NUMOPT("--ttl", 255, ttl)
		NUMOPT("--timeout-base", 0xffff, timeout_base)
		NUMOPT("--xfer-mode", 2, xfer_mode)
		NUMOPT("--poll-ms", 600000, poll_ms)
#undef NUMOPT
		if (strcmp(a, "--receivers") == 0) {
			if (!val || !parse_receivers(val, p))
				return usage_error("--receivers needs ADDR:IDX,... (at most 64)");
			k++;
		} else if (strcmp(a, "--policy") == 0) {
			if (val && strcmp(val, "apply") == 0)
				p->policy = DH_DFD_POLICY_APPLY;
			else if (val && strcmp(val, "verify") == 0)
				p->policy = DH_DFD_POLICY_VERIFY;
			else
				return usage_error("--policy is verify or apply");
			k++;
		} else if (strcmp(a, "--fwid") == 0 || strcmp(a, "--metadata") == 0) {
			char *dst = a[2] == 'f' ? p->fwid_hex : p->metadata_hex;
			size_t cap = a[2] == 'f' ? sizeof(p->fwid_hex) : sizeof(p->metadata_hex);

			if (!val || strlen(val) >= cap)
				return usage_error("--fwid/--metadata value too long");
			memcpy(dst, val, strlen(val) + 1);
			k++;
		} else if (strcmp(a, "--allow-partial") == 0) {
			p->allow_partial = true;
		} else if (strcmp(a, "--preempt") == 0) {
			p->preempt = true;
		} else if (!path && a[0] != '-') {
			path = a;
		} else {
			return usage_error("unknown mesh-distribute argument");
		}
	}
	if (!path || p->n_receivers == 0)
		return usage_error("mesh-distribute needs FILE and --receivers");
	if (p->xfer_mode == 0)
		return usage_error("--xfer-mode is 1 (push) or 2 (pull)");
	memset(&rep, 0, sizeof(rep));
	rep.slot_idx = -1;
	rep.phase = -1;
	res = dh_dfd_run(p, path, dfd_report, &rep, &g_cancel, &err);
	arr = json_array();
	for (i = 0; arr && i < rep.n_receivers; i++) {
		const struct dh_dfd_receiver_state *r = &rep.receivers[i];

		json_array_append_new(
			arr, json_pack("{s:i, s:i, s:i, s:i, s:i, s:i}", "addr", r->addr, "phase",
				       r->phase, "status", r->status, "progress", r->progress,
				       "blob_status", r->blob_status, "img_idx", r->img_idx));
	}
	/* the driver's detail is escaped already; the fwid may be --fwid as given */
	j = json_pack("{s:b, s:s, s:o, s:{s:i, s:i, s:i, s:o, s:i, s:o}}", "ok", res == DH_DFD_OK,
		      "code", res == DH_DFD_OK ? "ok" : err.code, "detail",
		      text_json(res == DH_DFD_OK ? "" : err.detail,
				res == DH_DFD_OK ? 0 : strlen(err.detail), false),
		      "mesh", "phase", rep.phase, "status", rep.status, "progress", rep.progress,
		      "receivers", arr, "slot_idx", rep.slot_idx, "fwid",
		      text_json(rep.fwid, strlen(rep.fwid), false));
	if (res != DH_DFD_OK)
		errorf("mesh-distribute failed: %s: %s", err.code, err.detail);
	print_json(j);
	return res == DH_DFD_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct dh_smp_client_opts o;
	struct dh_smp_transport *t = NULL;
	struct dh_smp_client *c = NULL;
	struct dh_dfd_params dp;
	char host[256] = "", dev[256] = "", err[256];
	unsigned port = DH_SMP_UDP_PORT, baud = DH_SMP_SERIAL_BAUD, v;
	bool udp = false, serial = false;
	const char *cmd;
	int i, rc = 1;
	struct sigaction sa = { 0 };

	dh_smp_client_opts_default(&o);
	dh_dfd_params_default(&dp);
	i = 1;
	while (i < argc && argv[i][0] == '-') {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(usage_text, stdout);
			return 0;
		}
		if (!val)
			return usage_error("option needs a value");
		if (strcmp(a, "--udp") == 0) {
			if (!parse_hostport(val, host, sizeof(host), &port))
				return usage_error("--udp needs HOST[:PORT]");
			udp = true;
		} else if (strcmp(a, "--serial") == 0) {
			if (!parse_devbaud(val, dev, sizeof(dev), &baud))
				return usage_error("--serial needs DEV[:BAUD]");
			serial = true;
		} else if (strcmp(a, "--timeout-ms") == 0) {
			if (!parse_uint(val, 3600000, &v) || v == 0)
				return usage_error("--timeout-ms needs a positive number");
			o.timeout_ms = v;
		} else if (strcmp(a, "--rto-ms") == 0) {
			if (!parse_uint(val, 60000, &v) || v == 0)
				return usage_error("--rto-ms needs a positive number");
			o.rto_ms = v;
		} else if (strcmp(a, "--rto-min-ms") == 0) {
			if (!parse_uint(val, 60000, &v) || v == 0)
				return usage_error("--rto-min-ms needs a positive number");
			o.rto_min_ms = v;
		} else if (strcmp(a, "--mtu") == 0) {
			if (!parse_uint(val, DH_SMP_FRAME_MAX, &v) || v < 128)
				return usage_error("--mtu needs a number 128..8192");
			o.mtu = v;
		} else if (strcmp(a, "--window") == 0) {
			if (!parse_uint(val, DH_SMP_WINDOW_MAX, &v) || v == 0)
				return usage_error("--window needs a number 1..8");
			o.window = v;
		} else {
			return usage_error("unknown option");
		}
		i += 2;
	}
	if (i >= argc)
		return usage_error("missing COMMAND");
	if (udp == serial)
		return usage_error("give exactly one of --udp and --serial");
	cmd = argv[i++];
	if (strcmp(cmd, "echo") != 0 && strcmp(cmd, "params") != 0 &&
	    strcmp(cmd, "image-list") != 0 && strcmp(cmd, "upload") != 0 &&
	    strcmp(cmd, "reset") != 0 && strcmp(cmd, "shell") != 0 &&
	    strcmp(cmd, "mesh-distribute") != 0)
		return usage_error("unknown COMMAND");

	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	o.cancel = &g_cancel;

	if (strcmp(cmd, "mesh-distribute") == 0) {
		dp.transport = udp ? DH_SMP_TR_UDP : DH_SMP_TR_SERIAL;
		snprintf(dp.host, sizeof(dp.host), "%s", host);
		dp.port = port;
		snprintf(dp.device, sizeof(dp.device), "%s", dev);
		dp.baud = baud;
		dp.smp = o;
		dp.smp.cancel = NULL;
		return cmd_mesh(&dp, argc - i, argv + i);
	}

	t = udp ? dh_smp_udp_open(host, port, err, sizeof(err))
		: dh_smp_serial_open(dev, baud, err, sizeof(err));
	if (!t) {
		errorf("%s", err);
		print_json(json_pack("{s:b, s:s, s:s, s:o}", "ok", 0, "command", cmd, "error",
				     "transport error", "detail",
				     text_json(err, strlen(err), false)));
		return 1;
	}
	c = malloc(sizeof(*c));
	if (!c) {
		dh_smp_transport_free(t);
		return 1;
	}
	dh_smp_client_init(c, t, &o);
	if (strcmp(cmd, "echo") == 0)
		rc = cmd_echo(c, argc - i, argv + i);
	else if (strcmp(cmd, "params") == 0)
		rc = argc - i == 0 ? cmd_params(c) : usage_error("params takes no argument");
	else if (strcmp(cmd, "image-list") == 0)
		rc = argc - i == 0 ? cmd_image_list(c)
				   : usage_error("image-list takes no argument");
	else if (strcmp(cmd, "upload") == 0)
		rc = cmd_upload(c, argc - i, argv + i);
	else if (strcmp(cmd, "reset") == 0)
		rc = argc - i == 0 ? cmd_reset(c) : usage_error("reset takes no argument");
	else
		rc = cmd_shell(c, argc - i, argv + i);
	free(c);
	dh_smp_transport_free(t);
	return rc;
}
