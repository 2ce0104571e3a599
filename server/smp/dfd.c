/*
 * Mesh distributor driver (SMP.md section 8): drives a Zephyr DFD node through SMP echo,
 * params, image state, image upload and shell exec of the "mesh models dfd" and "dfu slot"
 * commands, from the probe to the final cancel back to idle. Owns its transport, client and
 * the image buffer for one run; reports snapshots through the caller's callback and maps every
 * failure to one of the section 8 codes with a sentence naming the command and the raw answer.
 */
#include "smp/dfd.h"

#include "core/text.h"
#include "smp/shell.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* receivers-add takes at most this many entries per call (the command line limit). */
#define ADD_BATCH 16
/* receivers-get page size with the default 300-byte capture buffer (SMP.md 7.2). */
#define PAGE_DEFAULT 2
/* Consecutive failed monitoring rounds tolerated before the distribution counts as lost. */
#define POLL_FAILURES_MAX 3
/* Upload attempts (the later ones resume with the same sha after reconnecting). */
#define UPLOAD_ATTEMPTS 3
/* "dfu slot add" sent again after its request was lost (fw-get finds no slot): on a link that
 * loses one datagram in twenty, three tries fail together once in 8000 runs. */
#define SLOT_ADD_ATTEMPTS 3
/* Room for one command line: the shell buffer is 256 characters. */
#define CMD_MAX 256

static const char *const codes[DH_DFD_E__COUNT] = {
	[DH_DFD_OK] = "ok",
	[DH_DFD_E_UNREACHABLE] = "distributor_unreachable",
	[DH_DFD_E_BUSY] = "distributor_busy",
	[DH_DFD_E_SLOT_LOCKED] = "distributor_slot_locked",
	[DH_DFD_E_UPLOAD_VERIFY] = "upload_verify_failed",
	[DH_DFD_E_TOO_MANY] = "too_many_receivers",
	[DH_DFD_E_APP_KEY] = "invalid_app_key",
	[DH_DFD_E_NO_RECEIVERS] = "no_receivers",
	[DH_DFD_E_SLOT_MISSING] = "slot_missing",
	[DH_DFD_E_START] = "start_failed",
	[DH_DFD_E_TIMEOUT] = "distribution_timeout",
	[DH_DFD_E_LOST] = "distribution_lost",
	[DH_DFD_E_VERIFY] = "verify_failed",
	[DH_DFD_E_PARTIAL] = "partial_failure",
	[DH_DFD_E_FAILED] = "distribution_failed",
	[DH_DFD_E_CANCELLED] = "cancelled",
	[DH_DFD_E_INVALID] = "invalid_params",
};

const char *dh_dfd_code(enum dh_dfd_result r)
{
	if ((unsigned)r >= DH_DFD_E__COUNT)
		return "internal";
	return codes[r];
}

void dh_dfd_params_default(struct dh_dfd_params *p)
{
	memset(p, 0, sizeof(*p));
	p->transport = DH_SMP_TR_UDP;
	p->port = DH_SMP_UDP_PORT;
	p->baud = DH_SMP_SERIAL_BAUD;
	p->app_idx = 0;
	p->group = 0;
	p->ttl = 255;
	p->timeout_base = 0;
	p->xfer_mode = 1;
	p->policy = DH_DFD_POLICY_APPLY;
	p->poll_ms = 5000;
	p->fast_poll_ms = 2000;
	p->probe_tries = 3;
	p->stall_ms = 15u * 60u * 1000u;
	p->verify_wait_ms = 60000;
	dh_smp_client_opts_default(&p->smp);
}

struct run {
	const struct dh_dfd_params *p;
	struct dh_smp_transport *t;
	struct dh_smp_client *c;
	atomic_int *cancel;
	dh_dfd_report_fn cb;
	void *cb_ctx;
	struct dh_dfd_report rep;
	struct dh_dfd_error *err;
	struct dh_smp_shell_rsp *rsp;
	struct dh_smp_shell_doc *doc;
	char cmd[CMD_MAX];
	bool started;
	uint8_t *img;
	size_t img_len;
	uint8_t img_hash[DH_SMP_SHA_LEN];
	size_t n_distinct;
	int64_t dfd_status;
};

static bool cancelled(const struct run *r)
{
	return r->cancel && atomic_load(r->cancel);
}

static void report(struct run *r, const char *stage)
{
	r->rep.stage = stage;
	if (r->cb)
		r->cb(r->cb_ctx, &r->rep);
}

/* The device's last answer on one line, for details: newlines become " | ". */
static void raw_answer(const struct run *r, char *out, size_t cap)
{
	size_t i, o = 0;

	if (cap == 0)
		return;
	for (i = 0; i < r->rsp->o_len && o + 4 < cap; i++) {
		char ch = r->rsp->o[i];

		if (ch == '\r')
			continue;
		if (ch == '\n') {
			if (i + 1 < r->rsp->o_len) {
				memcpy(out + o, " | ", 3);
				o += 3;
			}
			continue;
		}
		out[o++] = (ch == '\t' || (unsigned char)ch < 0x20) ? ' ' : ch;
	}
	out[o] = '\0';
}

/*
 * The detail quotes the distributor's answers and SMP error texts: any bytes. It is made
 * well-formed UTF-8 with control characters escaped (core/text.h), so that it can go into
 * JSON, a log or a terminal as it is, and cut between characters.
 */
static enum dh_dfd_result fail(struct run *r, enum dh_dfd_result res, const char *fmt, ...)
{
	char stage[sizeof(r->err->detail)];
	va_list ap;
	int n;

	if (r->err) {
		r->err->result = res;
		snprintf(r->err->code, sizeof(r->err->code), "%s", dh_dfd_code(res));
		va_start(ap, fmt);
		n = vsnprintf(stage, sizeof(stage), fmt, ap);
		va_end(ap);
		n = n < 0 ? 0 : n < (int)sizeof(stage) ? n : (int)sizeof(stage) - 1;
		dh_text_escape(r->err->detail, sizeof(r->err->detail), stage,
			       dh_utf8_trim_partial(stage, (size_t)n), DH_TEXT_CONTROLS);
	}
	return res;
}

/* Sentence for an SMP-level failure of the last command. */
static void smp_why(const struct run *r, enum dh_smp_status st, char *out, size_t cap)
{
	char name[160];

	if (st == DH_SMP_E_REMOTE)
		snprintf(out, cap, "%s", dh_smp_err_name(&r->c->err, name, sizeof(name)));
	else
		snprintf(out, cap, "%s", dh_smp_strerror(st));
}

/* Sleeps ms in short slices; false when the caller cancelled meanwhile. */
static bool nap(struct run *r, unsigned ms)
{
	int64_t end = dh_smp_now_ms() + ms;

	while (!cancelled(r)) {
		int64_t left = end - dh_smp_now_ms();
		struct timespec ts;

		if (left <= 0)
			return true;
		if (left > 50)
			left = 50;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left * 1000000L;
		nanosleep(&ts, NULL);
	}
	return false;
}

/*
 * Runs one shell command given as a printf format; the words are split on spaces. Parses the
 * output into r->doc. idempotent allows retransmission on UDP.
 */
static enum dh_smp_status shell(struct run *r, bool idempotent, const char *fmt, ...)
{
	char line[CMD_MAX], *argv[DH_SMP_ARGV_MAX], *p;
	size_t argc = 0;
	va_list ap;
	int n;
	enum dh_smp_status st;

	va_start(ap, fmt);
	n = vsnprintf(r->cmd, sizeof(r->cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(r->cmd))
		return DH_SMP_E_INVALID;
	memcpy(line, r->cmd, (size_t)n + 1);
	for (p = line; *p;) {
		while (*p == ' ')
			*p++ = '\0';
		if (!*p)
			break;
		if (argc == DH_SMP_ARGV_MAX)
			return DH_SMP_E_INVALID;
		argv[argc++] = p;
		while (*p && *p != ' ')
			p++;
	}
	r->rsp->o_len = 0;
	r->rsp->o[0] = '\0';
	st = dh_smp_shell_exec(r->c, (const char *const *)argv, argc, idempotent, r->rsp);
	if (st == DH_SMP_OK)
		dh_smp_shell_parse(r->rsp->o, r->rsp->o_len, r->doc);
	else
		memset(r->doc, 0, sizeof(*r->doc));
	return st;
}

/* Fails with res naming the stage, the command and either the SMP error or the answer. */
static enum dh_dfd_result cmd_fail(struct run *r, enum dh_dfd_result res, const char *stage,
				   enum dh_smp_status st, const char *why)
{
	char raw[360], smp[160];

	if (st != DH_SMP_OK) {
		smp_why(r, st, smp, sizeof(smp));
		return fail(r, res, "%s: `%s` failed: %s%s%s", stage, r->cmd, smp, why ? "; " : "",
			    why ? why : "");
	}
	raw_answer(r, raw, sizeof(raw));
	return fail(r, res, "%s: `%s` answered \"%s\" (ret %lld)%s%s", stage, r->cmd, raw,
		    (long long)r->rsp->ret, why ? ": " : "", why ? why : "");
}

/* "dfd get": phase and status from the answer; false when the answer has no object. */
static enum dh_smp_status dfd_get(struct run *r, int64_t *phase, int64_t *status)
{
	enum dh_smp_status st = shell(r, true, "mesh models dfd get");

	if (st != DH_SMP_OK)
		return st;
	if (!dh_smp_shell_get_int(&r->doc->top, "phase", phase) ||
	    !dh_smp_shell_get_int(&r->doc->top, "status", status))
		return DH_SMP_E_PROTO;
	r->rep.phase = (int)*phase;
	r->rep.status = (int)*status;
	r->dfd_status = *status;
	return DH_SMP_OK;
}

/* Sends "dfd cancel" even after the caller's flag was raised (it is the way out). */
static void send_cancel(struct run *r)
{
	atomic_int *saved = r->c->o.cancel;
	int64_t saved_deadline = r->c->deadline_ms;

	r->c->o.cancel = NULL;
	r->c->deadline_ms = 0;
	(void)shell(r, true, "mesh models dfd cancel");
	report(r, "cancel");
	r->c->o.cancel = saved;
	r->c->deadline_ms = saved_deadline;
}

static unsigned mesh_timeout_ms(const struct dh_dfd_params *p)
{
	return 20000u + 10000u * p->timeout_base + 100u * p->ttl;
}

static enum dh_dfd_result step_probe(struct run *r)
{
	char token[32], back[DH_SMP_TEXT_MAX];
	enum dh_smp_status st = DH_SMP_E_TIMEOUT;
	unsigned i;
	char why[160];

	report(r, "probe");
	for (i = 0; i < (r->p->probe_tries ? r->p->probe_tries : 1); i++) {
		uint32_t rnd = 0;

		/* A fresh random token per try, so a late echo of an earlier one cannot pass. */
		if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			rnd = (uint32_t)dh_smp_now_ms() ^ (uint32_t)(uintptr_t)r;
		snprintf(token, sizeof(token), "dh-%08x-%u", (unsigned)rnd, i);
		st = dh_smp_echo(r->c, token, back, sizeof(back));
		if (st == DH_SMP_E_CANCELLED)
			return fail(r, DH_DFD_E_CANCELLED, "probe: cancelled");
		if (st == DH_SMP_OK && strcmp(token, back) == 0)
			break;
		if (st == DH_SMP_OK)
			st = DH_SMP_E_PROTO;
	}
	if (st != DH_SMP_OK) {
		smp_why(r, st, why, sizeof(why));
		return fail(r, DH_DFD_E_UNREACHABLE, "probe: echo failed %u times: %s", i, why);
	}
	st = dh_smp_read_params(r->c, NULL);
	if (st != DH_SMP_OK) {
		smp_why(r, st, why, sizeof(why));
		return fail(r, DH_DFD_E_UNREACHABLE, "probe: mcumgr params failed: %s", why);
	}
	return DH_DFD_OK;
}

static enum dh_dfd_result step_idle(struct run *r)
{
	unsigned limit = r->p->idle_deadline_ms ? r->p->idle_deadline_ms
						: 120000u + 2u * mesh_timeout_ms(r->p);
	int64_t end = dh_smp_now_ms() + limit;
	int64_t phase = -1, status = 0;
	enum dh_smp_status st;

	report(r, "state");
	for (;;) {
		if (cancelled(r))
			return fail(r, DH_DFD_E_CANCELLED, "state: cancelled");
		st = dfd_get(r, &phase, &status);
		if (st == DH_SMP_E_CANCELLED)
			return fail(r, DH_DFD_E_CANCELLED, "state: cancelled");
		if (st != DH_SMP_OK)
			return cmd_fail(r, DH_DFD_E_UNREACHABLE, "state", st,
					st == DH_SMP_E_PROTO ? "no DFD state in the answer" : NULL);
		report(r, "state");
		if (phase == 0)
			return DH_DFD_OK;
		if (dh_smp_now_ms() >= end)
			return fail(
				r, DH_DFD_E_BUSY,
				"state: distributor did not return to idle within %u ms (phase %lld)",
				limit, (long long)phase);
		if (phase == 4 || phase == 5) {
			st = shell(r, true, "mesh models dfd cancel");
			if (st != DH_SMP_OK)
				return cmd_fail(r, DH_DFD_E_UNREACHABLE, "state", st, NULL);
			continue;
		}
		if (phase != 6) {
			if (!r->p->preempt)
				return fail(
					r, DH_DFD_E_BUSY,
					"state: `mesh models dfd get` reports phase %lld: another distribution is running",
					(long long)phase);
			st = shell(r, true, "mesh models dfd cancel");
			if (st != DH_SMP_OK)
				return cmd_fail(r, DH_DFD_E_UNREACHABLE, "state", st, NULL);
		}
		if (!nap(r, r->p->fast_poll_ms))
			return fail(r, DH_DFD_E_CANCELLED, "state: cancelled");
	}
}

/* Runs a command that must answer an object with "status": 0. */
static enum dh_dfd_result expect_status0(struct run *r, enum dh_dfd_result res, const char *stage,
					 const char *cmd)
{
	enum dh_smp_status st = shell(r, true, "%s", cmd);
	int64_t status;

	if (st == DH_SMP_E_CANCELLED)
		return fail(r, DH_DFD_E_CANCELLED, "%s: cancelled", stage);
	if (st != DH_SMP_OK)
		return cmd_fail(r, DH_DFD_E_UNREACHABLE, stage, st, NULL);
	if (!dh_smp_shell_get_int(&r->doc->top, "status", &status) || status != 0)
		return cmd_fail(r, res, stage, DH_SMP_OK, "expected status 0");
	return DH_DFD_OK;
}

static enum dh_dfd_result step_cleanup(struct run *r)
{
	enum dh_dfd_result res;

	report(r, "cleanup");
	res = expect_status0(r, DH_DFD_E_BUSY, "cleanup", "mesh models dfd receivers-delete-all");
	if (res != DH_DFD_OK)
		return res;
	return expect_status0(r, DH_DFD_E_BUSY, "cleanup", "mesh models dfd fw-delete-all");
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The MCUboot image hash (SMP.md 6): header, body and protected TLVs. */
static bool image_hash(const uint8_t *img, size_t n, uint8_t out[DH_SMP_SHA_LEN])
{
	uint64_t hdr, body, prot;

	if (n < 32 || le32(img) != 0x96f3b83du)
		return false;
	hdr = (uint64_t)img[8] | (uint64_t)img[9] << 8;
	prot = (uint64_t)img[10] | (uint64_t)img[11] << 8;
	body = le32(img + 12);
	if (hdr < 32 || hdr + body + prot > n)
		return false;
	dh_smp_sha256(img, (size_t)(hdr + body + prot), out);
	return true;
}

/* Reads image state; *have_image says slot 1 of image 0 already holds our image. */
static enum dh_dfd_result check_slot1(struct run *r, const char *stage, bool *have_image)
{
	struct dh_smp_image_list l;
	enum dh_smp_status st = dh_smp_image_state(r->c, &l);
	char why[160];
	size_t i;

	*have_image = false;
	if (st == DH_SMP_E_CANCELLED)
		return fail(r, DH_DFD_E_CANCELLED, "%s: cancelled", stage);
	if (st != DH_SMP_OK) {
		smp_why(r, st, why, sizeof(why));
		return fail(r, DH_DFD_E_UNREACHABLE, "%s: image state failed: %s", stage, why);
	}
	for (i = 0; i < l.n; i++) {
		const struct dh_smp_image_slot *s = &l.slots[i];

		if (s->image != 0 || s->slot != 1)
			continue;
		if (s->pending || s->active)
			return fail(
				r, DH_DFD_E_SLOT_LOCKED,
				"%s: image state shows slot 1 %s (version %s); it needs manual action",
				stage, s->pending ? "pending" : "active", s->version);
		if (s->hash_len == DH_SMP_SHA_LEN &&
		    memcmp(s->hash, r->img_hash, DH_SMP_SHA_LEN) == 0)
			*have_image = true;
	}
	return DH_DFD_OK;
}

static void upload_progress(void *ctx, uint64_t off, uint64_t len)
{
	struct run *r = ctx;

	r->rep.upload_off = off;
	r->rep.upload_len = len;
	report(r, "upload");
}

static enum dh_dfd_result step_upload(struct run *r)
{
	struct dh_smp_upload_result ur;
	unsigned limit = r->p->upload_deadline_ms
				 ? r->p->upload_deadline_ms
				 : (unsigned)(60000u + (uint64_t)r->img_len * 1000u / 2048u);
	enum dh_smp_status st = DH_SMP_OK;
	enum dh_dfd_result res;
	bool have = false;
	char why[160];
	int attempt;

	r->rep.upload_len = r->img_len;
	r->c->deadline_ms = dh_smp_now_ms() + limit;
	for (attempt = 0; attempt < UPLOAD_ATTEMPTS; attempt++) {
		if (attempt > 0 && r->t->ops->reconnect(r->t) != DH_SMP_OK)
			continue;
		st = dh_smp_upload(r->c, r->img, r->img_len, 0, upload_progress, r, &ur);
		if (st != DH_SMP_E_TIMEOUT && st != DH_SMP_E_IO)
			break;
		if (r->c->deadline_ms && dh_smp_now_ms() >= r->c->deadline_ms)
			break;
	}
	r->c->deadline_ms = 0;
	if (st == DH_SMP_E_CANCELLED)
		return fail(r, DH_DFD_E_CANCELLED, "upload: cancelled");
	if (st == DH_SMP_E_MISMATCH)
		return fail(
			r, DH_DFD_E_UPLOAD_VERIFY,
			"upload: the distributor answered \"match\": false for the uploaded image");
	if (st == DH_SMP_E_REMOTE &&
	    ((r->c->err.kind == DH_SMP_ERR_GROUP && r->c->err.group == DH_SMP_GROUP_IMAGE &&
	      (r->c->err.rc == 9 || r->c->err.rc == 28)) ||
	     (r->c->err.kind == DH_SMP_ERR_MGMT && r->c->err.rc == 6))) {
		smp_why(r, st, why, sizeof(why));
		return fail(r, DH_DFD_E_SLOT_LOCKED, "upload: image upload refused: %s", why);
	}
	if (st != DH_SMP_OK) {
		smp_why(r, st, why, sizeof(why));
		return fail(r,
			    st == DH_SMP_E_TIMEOUT || st == DH_SMP_E_IO ? DH_DFD_E_UNREACHABLE
									: DH_DFD_E_UPLOAD_VERIFY,
			    "upload: image upload of %zu bytes failed after %d attempt(s): %s",
			    r->img_len, attempt < UPLOAD_ATTEMPTS ? attempt + 1 : attempt, why);
	}
	res = check_slot1(r, "upload", &have);
	if (res != DH_DFD_OK)
		return res;
	if (!have)
		return fail(
			r, DH_DFD_E_UPLOAD_VERIFY,
			"upload: image state does not show slot 1 with the uploaded image hash");
	return DH_DFD_OK;
}

/* fw-get of the run's FWID: *idx is its slot, or -1 when the distributor has none. */
static enum dh_dfd_result slot_lookup(struct run *r, int64_t *idx)
{
	enum dh_smp_status st;
	int64_t status;

	*idx = -1;
	st = shell(r, true, "mesh models dfd fw-get %s", r->rep.fwid);
	if (st == DH_SMP_E_CANCELLED)
		return fail(r, DH_DFD_E_CANCELLED, "slot: cancelled");
	if (st != DH_SMP_OK)
		return cmd_fail(r, DH_DFD_E_UNREACHABLE, "slot", st, NULL);
	if (dh_smp_shell_get_int(&r->doc->top, "status", &status) && status == 0 &&
	    dh_smp_shell_get_int(&r->doc->top, "idx", idx) && *idx >= 0 && *idx < 65535)
		return DH_DFD_OK;
	*idx = -1;
	return DH_DFD_OK;
}

static enum dh_dfd_result step_slot(struct run *r)
{
	const char *meta = r->p->metadata_hex;
	enum dh_dfd_result res;
	enum dh_smp_status st;
	int64_t idx = -1;
	int attempt;
	bool deleted = false;

	report(r, "slot");
	for (attempt = 0; attempt < SLOT_ADD_ATTEMPTS; attempt++) {
		/* Not idempotent: sent once; after no answer, fw-get tells whether the request
		 * (send it again) or its answer (the slot is there) was lost. */
		st = shell(r, false, "mesh models dfu slot add %zu %s%s%s", r->img_len, r->rep.fwid,
			   meta[0] ? " " : "", meta);
		if (st == DH_SMP_E_CANCELLED)
			return fail(r, DH_DFD_E_CANCELLED, "slot: cancelled");
		if (st == DH_SMP_E_TIMEOUT) {
			res = slot_lookup(r, &idx);
			if (res != DH_DFD_OK)
				return res;
			if (idx >= 0)
				break;
			continue;
		}
		if (st != DH_SMP_OK)
			return cmd_fail(r, DH_DFD_E_UNREACHABLE, "slot", st, NULL);
		if (r->doc->slot_added)
			break;
		if (!deleted && r->doc->slot_failed) {
			st = shell(r, true, "mesh models dfd fw-delete %s", r->rep.fwid);
			if (st != DH_SMP_OK)
				return cmd_fail(r, DH_DFD_E_UNREACHABLE, "slot", st, NULL);
			deleted = true;
			continue;
		}
		return cmd_fail(r, DH_DFD_E_SLOT_MISSING, "slot", DH_SMP_OK,
				"no \"Slot added\" line");
	}
	if (idx < 0) {
		res = slot_lookup(r, &idx);
		if (res != DH_DFD_OK)
			return res;
	}
	if (idx < 0)
		return cmd_fail(r, DH_DFD_E_SLOT_MISSING, "slot", DH_SMP_OK,
				"the slot record for the FWID is missing");
	r->rep.slot_idx = (int)idx;
	return DH_DFD_OK;
}

static bool is_unicast(uint16_t a)
{
	return a >= 0x0001 && a <= 0x7fff;
}

static enum dh_dfd_result step_receivers(struct run *r)
{
	char list[CMD_MAX];
	int64_t tmax = 8, cnt = -1, status;
	enum dh_smp_status st;
	size_t i, in_batch = 0, len = 0;

	report(r, "receivers");
	st = shell(r, true, "mesh models dfd capabilities-get");
	if (st == DH_SMP_E_CANCELLED)
		return fail(r, DH_DFD_E_CANCELLED, "receivers: cancelled");
	if (st != DH_SMP_OK)
		return cmd_fail(r, DH_DFD_E_UNREACHABLE, "receivers", st, NULL);
	if (!dh_smp_shell_get_int(&r->doc->top, "targets_max", &tmax))
		tmax = 8;
	if ((int64_t)r->n_distinct > tmax)
		return fail(
			r, DH_DFD_E_TOO_MANY,
			"receivers: %zu receivers but `mesh models dfd capabilities-get` reports targets_max %lld",
			r->n_distinct, (long long)tmax);
	for (i = 0; i < r->rep.n_receivers; i++) {
		const struct dh_dfd_receiver_state *rs = &r->rep.receivers[i];
		int n = snprintf(list + len, sizeof(list) - len, "%s0x%04x,%d", in_batch ? ";" : "",
				 rs->addr, rs->img_idx);

		if (n < 0 || (size_t)n >= sizeof(list) - len)
			return fail(r, DH_DFD_E_INVALID, "receivers: receiver list too long");
		len += (size_t)n;
		in_batch++;
		if (in_batch < ADD_BATCH && i + 1 < r->rep.n_receivers)
			continue;
		st = shell(r, true, "mesh models dfd receivers-add %s", list);
		if (st == DH_SMP_E_CANCELLED)
			return fail(r, DH_DFD_E_CANCELLED, "receivers: cancelled");
		if (st != DH_SMP_OK)
			return cmd_fail(r, DH_DFD_E_UNREACHABLE, "receivers", st, NULL);
		if (!dh_smp_shell_get_int(&r->doc->top, "status", &status) || status != 0)
			return cmd_fail(r, status == 1 ? DH_DFD_E_TOO_MANY : DH_DFD_E_BUSY,
					"receivers", DH_SMP_OK, "expected status 0");
		if (!dh_smp_shell_get_int(&r->doc->top, "target_cnt", &cnt))
			cnt = -1;
		in_batch = 0;
		len = 0;
	}
	if (cnt != (int64_t)r->n_distinct)
		return cmd_fail(r, DH_DFD_E_NO_RECEIVERS, "receivers", DH_SMP_OK,
				"target_cnt differs from the number of unicast receivers");
	return DH_DFD_OK;
}

static enum dh_dfd_result step_start(struct run *r)
{
	const struct dh_dfd_params *p = r->p;
	enum dh_smp_status st;
	int64_t status = -1, phase = -1;
	enum dh_dfd_result res;

	report(r, "start");
	st = shell(r, true, "mesh models dfd start %u %d %u %s %u %u %u", p->app_idx,
		   r->rep.slot_idx, p->group, p->policy == DH_DFD_POLICY_APPLY ? "true" : "false",
		   p->ttl, p->timeout_base, p->xfer_mode);
	if (st == DH_SMP_E_CANCELLED)
		return fail(r, DH_DFD_E_CANCELLED, "start: cancelled");
	if (st != DH_SMP_OK)
		return cmd_fail(r, DH_DFD_E_UNREACHABLE, "start", st, NULL);
	dh_smp_shell_get_int(&r->doc->top, "status", &status);
	dh_smp_shell_get_int(&r->doc->top, "phase", &phase);
	r->rep.status = (int)status;
	r->rep.phase = (int)phase;
	if (status == 0 && phase == 1) {
		r->started = true;
		return DH_DFD_OK;
	}
	switch (status) {
	case 5:
		res = DH_DFD_E_APP_KEY;
		break;
	case 6:
		res = DH_DFD_E_NO_RECEIVERS;
		break;
	case 4:
		res = DH_DFD_E_SLOT_MISSING;
		break;
	default:
		res = DH_DFD_E_START;
		break;
	}
	return cmd_fail(r, res, "start", DH_SMP_OK, "expected status 0 and phase 1");
}

static struct dh_dfd_receiver_state *find_receiver(struct run *r, int64_t addr)
{
	size_t i;

	for (i = 0; i < r->rep.n_receivers; i++) {
		if (r->rep.receivers[i].addr == addr)
			return &r->rep.receivers[i];
	}
	return NULL;
}

/* Reads the receivers list page by page, halving the page after a truncated answer. */
static enum dh_smp_status poll_receivers(struct run *r)
{
	int64_t first = 0, total = -1, page = PAGE_DEFAULT;
	enum dh_smp_status st;
	size_t i;
	int guard = 0;

	while ((total < 0 || first < total) && guard++ < 4 * DH_DFD_RECEIVERS_MAX) {
		st = shell(r, true, "mesh models dfd receivers-get %lld %lld", (long long)first,
			   (long long)page);
		if (st != DH_SMP_OK)
			return st;
		if (!r->doc->has_object)
			break; /* ret -22 with no output: empty list or past its end */
		if (r->doc->truncated && page > 1) {
			page = 1;
			continue;
		}
		if (total < 0 && !dh_smp_shell_get_int(&r->doc->top, "target_cnt", &total))
			total = (int64_t)r->rep.n_receivers;
		for (i = 0; i < r->doc->n_targets; i++) {
			const struct dh_smp_shell_obj *o = &r->doc->targets[i].obj;
			struct dh_dfd_receiver_state *rs;
			int64_t v;

			if (!dh_smp_shell_get_int(o, "blob_addr", &v))
				continue;
			rs = find_receiver(r, v);
			if (!rs)
				continue;
			if (dh_smp_shell_get_int(o, "phase", &v))
				rs->phase = (int)v;
			if (dh_smp_shell_get_int(o, "status", &v))
				rs->status = (int)v;
			if (dh_smp_shell_get_int(o, "blob_status", &v))
				rs->blob_status = (int)v;
			if (dh_smp_shell_get_int(o, "img_idx", &v))
				rs->img_idx = (int)v;
			if (dh_smp_shell_get_int(o, "progress", &v) && v >= 0 && v <= 50) {
				rs->progress = (unsigned)(2 * v);
				r->rep.progress = (unsigned)(2 * v);
			}
		}
		/* A target line cut even at page 1 is skipped rather than retried forever. */
		first += page;
	}
	return DH_SMP_OK;
}

static void list_failed(struct run *r, char *out, size_t cap, bool want_applied)
{
	size_t i, o = 0;

	out[0] = '\0';
	for (i = 0; i < r->rep.n_receivers; i++) {
		const struct dh_dfd_receiver_state *rs = &r->rep.receivers[i];
		bool ok = rs->status == 0 && rs->phase == (want_applied ? 8 : 4);
		int n;

		if (ok)
			continue;
		n = snprintf(out + o, cap - o, "%s0x%04x (phase %d, status %d, blob_status %d)",
			     o ? ", " : "", rs->addr, rs->phase, rs->status, rs->blob_status);
		if (n < 0 || (size_t)n >= cap - o)
			break;
		o += (size_t)n;
	}
}

static size_t count_ok(const struct run *r, int phase)
{
	size_t i, n = 0;

	for (i = 0; i < r->rep.n_receivers; i++) {
		if (r->rep.receivers[i].status == 0 && r->rep.receivers[i].phase == phase)
			n++;
	}
	return n;
}

static enum dh_dfd_result step_monitor(struct run *r)
{
	const struct dh_dfd_params *p = r->p;
	unsigned limit = p->distribute_deadline_ms
				 ? p->distribute_deadline_ms
				 : (unsigned)(600000u + (uint64_t)r->img_len * 1000u / 50u);
	int64_t end = dh_smp_now_ms() + limit, last_change = dh_smp_now_ms(), verify_since = -1;
	unsigned last_progress = 0, fails = 0;
	bool applied = false;
	char failed[400];
	const char *stage = "distribute";

	for (;;) {
		int64_t phase = -1, status = -1;
		enum dh_smp_status st;
		size_t i, n_verified, n_verifying = 0;

		if (cancelled(r))
			return fail(r, DH_DFD_E_CANCELLED, "%s: cancelled", stage);
		st = dfd_get(r, &phase, &status);
		if (st == DH_SMP_OK)
			st = poll_receivers(r);
		if (st == DH_SMP_E_CANCELLED)
			return fail(r, DH_DFD_E_CANCELLED, "%s: cancelled", stage);
		if (st != DH_SMP_OK) {
			if (++fails >= POLL_FAILURES_MAX)
				return cmd_fail(r, DH_DFD_E_LOST, stage, st,
						"distributor stopped answering");
			if (!nap(r, p->fast_poll_ms))
				return fail(r, DH_DFD_E_CANCELLED, "%s: cancelled", stage);
			continue;
		}
		fails = 0;
		if (phase == 4 || phase == 5)
			r->rep.progress = 100;
		report(r, stage);
		if (r->rep.progress != last_progress) {
			last_progress = r->rep.progress;
			last_change = dh_smp_now_ms();
		}
		switch (phase) {
		case 0:
			return fail(
				r, DH_DFD_E_LOST,
				"%s: `mesh models dfd get` reads phase 0: the distributor rebooted or was cancelled elsewhere",
				stage);
		case 1:
			if (dh_smp_now_ms() - last_change >= (int64_t)p->stall_ms)
				return fail(r, DH_DFD_E_TIMEOUT,
					    "%s: no progress for %u ms (stuck at %u%%)", stage,
					    p->stall_ms, r->rep.progress);
			break;
		case 2:
			if (p->policy != DH_DFD_POLICY_VERIFY || applied)
				break;
			n_verified = count_ok(r, 4);
			for (i = 0; i < r->rep.n_receivers; i++) {
				if (r->rep.receivers[i].status == 0 &&
				    r->rep.receivers[i].phase == 3)
					n_verifying++;
			}
			if (verify_since < 0)
				verify_since = dh_smp_now_ms();
			if (n_verifying > 0 &&
			    dh_smp_now_ms() - verify_since < (int64_t)p->verify_wait_ms)
				break;
			if (n_verified < r->rep.n_receivers &&
			    (!p->allow_partial || n_verified == 0)) {
				list_failed(r, failed, sizeof(failed), false);
				return fail(r, DH_DFD_E_VERIFY,
					    "apply: receivers failed verification: %s", failed);
			}
			stage = "apply";
			if (expect_status0(r, DH_DFD_E_FAILED, "apply", "mesh models dfd apply") !=
			    DH_DFD_OK)
				return r->err ? r->err->result : DH_DFD_E_FAILED;
			applied = true;
			break;
		case 3:
			stage = "apply";
			break;
		case 4:
			report(r, "finish");
			if (count_ok(r, 8) == r->rep.n_receivers)
				return DH_DFD_OK;
			list_failed(r, failed, sizeof(failed), true);
			if (p->allow_partial && count_ok(r, 8) > 0)
				return DH_DFD_OK;
			return fail(r, DH_DFD_E_PARTIAL, "finish: receivers failed: %s", failed);
		case 5:
			report(r, "finish");
			list_failed(r, failed, sizeof(failed), true);
			return fail(
				r, DH_DFD_E_FAILED,
				"finish: `mesh models dfd get` reads phase 5 (failed), status %lld; receivers: %s",
				(long long)status, failed);
		default:
			break;
		}
		if (dh_smp_now_ms() >= end)
			return fail(r, DH_DFD_E_TIMEOUT,
				    "%s: not finished within %u ms (phase %lld, %u%%)", stage,
				    limit, (long long)phase, r->rep.progress);
		if (!nap(r, phase == 3 || phase == 6 || applied ? p->fast_poll_ms : p->poll_ms))
			return fail(r, DH_DFD_E_CANCELLED, "%s: cancelled", stage);
	}
}

static bool hex_ok(const char *s, size_t max_bytes, bool allow_empty)
{
	size_t n = strlen(s), i;

	if (n == 0)
		return allow_empty;
	if (n % 2 != 0 || n / 2 > max_bytes)
		return false;
	for (i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
		      (ch >= 'A' && ch <= 'F')))
			return false;
	}
	return true;
}

static enum dh_dfd_result prepare(struct run *r, const char *image_path)
{
	const struct dh_dfd_params *p = r->p;
	char errbuf[256];
	uint8_t sha[DH_SMP_SHA_LEN];
	size_t i, j;

	r->rep.phase = -1;
	r->rep.slot_idx = -1;
	if (p->n_receivers == 0)
		return fail(r, DH_DFD_E_NO_RECEIVERS, "params: no receivers given");
	if (p->n_receivers > DH_DFD_RECEIVERS_MAX || p->xfer_mode < 1 || p->xfer_mode > 2 ||
	    p->ttl > 255 || p->app_idx > 0xfff || p->group > 0xffff)
		return fail(
			r, DH_DFD_E_INVALID,
			"params: out of range (receivers, xfer_mode 1..2, ttl 0..255, app_idx, group)");
	if (!hex_ok(p->fwid_hex, 16, true) || !hex_ok(p->metadata_hex, 32, true))
		return fail(
			r, DH_DFD_E_INVALID,
			"params: fwid must be at most 16 bytes and metadata at most 32 bytes of hex");
	/* Distinct unicast receivers, in the caller's order; others are skipped (SMP.md 7.2). */
	for (i = 0; i < p->n_receivers; i++) {
		const struct dh_dfd_receiver *in = &p->receivers[i];

		if (!is_unicast(in->addr))
			continue;
		for (j = 0; j < r->rep.n_receivers; j++) {
			if (r->rep.receivers[j].addr == in->addr)
				break;
		}
		if (j < r->rep.n_receivers) {
			r->rep.receivers[j].img_idx = in->img_idx;
			continue;
		}
		r->rep.receivers[j].addr = in->addr;
		r->rep.receivers[j].img_idx = in->img_idx;
		r->rep.receivers[j].phase = 10;
		r->rep.n_receivers++;
	}
	r->n_distinct = r->rep.n_receivers;
	if (r->n_distinct == 0)
		return fail(r, DH_DFD_E_NO_RECEIVERS, "params: no unicast receiver address given");
	if (dh_smp_read_file(image_path, &r->img, &r->img_len, errbuf, sizeof(errbuf)) != DH_SMP_OK)
		return fail(r, DH_DFD_E_INVALID, "params: %s", errbuf);
	if (!image_hash(r->img, r->img_len, r->img_hash))
		return fail(r, DH_DFD_E_INVALID, "params: %s is not an MCUboot image", image_path);
	if (p->fwid_hex[0]) {
		snprintf(r->rep.fwid, sizeof(r->rep.fwid), "%s", p->fwid_hex);
	} else {
		dh_smp_sha256(r->img, r->img_len, sha);
		for (i = 0; i < 8; i++)
			snprintf(r->rep.fwid + 2 * i, 3, "%02x", sha[i]);
	}
	r->rsp = malloc(sizeof(*r->rsp));
	r->doc = malloc(sizeof(*r->doc));
	r->c = malloc(sizeof(*r->c));
	if (!r->rsp || !r->doc || !r->c)
		return fail(r, DH_DFD_E_INVALID, "params: out of memory");
	if (p->transport == DH_SMP_TR_SERIAL)
		r->t = dh_smp_serial_open(p->device, p->baud, errbuf, sizeof(errbuf));
	else
		r->t = dh_smp_udp_open(p->host, p->port, errbuf, sizeof(errbuf));
	if (!r->t)
		return fail(r, DH_DFD_E_UNREACHABLE, "probe: %s", errbuf);
	dh_smp_client_init(r->c, r->t, &p->smp);
	r->c->o.cancel = r->cancel;
	return DH_DFD_OK;
}

enum dh_dfd_result dh_dfd_run(const struct dh_dfd_params *p, const char *image_path,
			      dh_dfd_report_fn cb, void *cb_ctx, atomic_int *cancel,
			      struct dh_dfd_error *err)
{
	struct run *r = NULL;
	enum dh_dfd_result res;
	bool have = false;

	if (err)
		memset(err, 0, sizeof(*err));
	r = calloc(1, sizeof(*r));
	if (!r) {
		if (err) {
			err->result = DH_DFD_E_INVALID;
			snprintf(err->code, sizeof(err->code), "%s", dh_dfd_code(DH_DFD_E_INVALID));
			snprintf(err->detail, sizeof(err->detail), "out of memory");
		}
		return DH_DFD_E_INVALID;
	}
	r->p = p;
	r->cb = cb;
	r->cb_ctx = cb_ctx;
	r->cancel = cancel;
	r->err = err;
	res = prepare(r, image_path);
	if (res != DH_DFD_OK)
		goto out;
	res = step_probe(r);
	if (res != DH_DFD_OK)
		goto out;
	res = step_idle(r);
	if (res != DH_DFD_OK)
		goto out;
	res = step_cleanup(r);
	if (res != DH_DFD_OK)
		goto out;
	report(r, "slot-check");
	res = check_slot1(r, "slot-check", &have);
	if (res != DH_DFD_OK)
		goto out;
	if (have) {
		r->rep.upload_off = r->rep.upload_len = r->img_len;
		report(r, "upload");
	} else {
		res = step_upload(r);
		if (res != DH_DFD_OK)
			goto out;
	}
	res = step_slot(r);
	if (res != DH_DFD_OK)
		goto out;
	res = step_receivers(r);
	if (res != DH_DFD_OK)
		goto out;
	res = step_start(r);
	if (res != DH_DFD_OK)
		goto out;
	report(r, "distribute");
	res = step_monitor(r);
out:
	/* Back to idle after a started run, whatever happened; the slot record stays. */
	if (r->started && r->c) {
		send_cancel(r);
		(void)shell(r, true, "mesh models dfd receivers-delete-all");
	}
	if (res == DH_DFD_OK)
		report(r, "finish");
	dh_smp_transport_free(r->t);
	free(r->c);
	free(r->doc);
	free(r->rsp);
	free(r->img);
	free(r);
	return res;
}
