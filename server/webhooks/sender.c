/*
 * The webhook sender thread (see sender.h). One loop: refill (claim what is due, per webhook
 * in outbox order), drive the multi handle, record each finished attempt, sleep in
 * curl_multi_poll until a transfer, a kick, the next due retry or the poll interval. The
 * database is the only queue: nothing is kept in memory that a restart would lose.
 */
#include "webhooks/sender.h"

#include "config.h"
#include "core/links.h"
#include "core/text.h"
#include "core/util.h"
#include "core/webhook.h"
#include "dh_db.h"
#include "log.h"
#include "outbound/outbound.h"
#include "pipeline/session.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest sleep: rows of other processes and retries that fell due are seen this late. */
#define SENDER_POLL_MS 1000
/* How often delivered and failed deliveries older than --webhook-retention are removed, and
 * how many at once (one short transaction each). */
#define SENDER_PRUNE_MS   60000
#define SENDER_PRUNE_ROWS 1000
/* Webhooks examined per refill; more than that are served in later rounds. */
#define SENDER_WEBHOOKS_MAX 1000
/* Answer bytes read, and kept in the delivery log; receivers should answer briefly. */
#define SENDER_ANSWER_MAX 4096
#define SENDER_EXCERPT    256
/* Room for a header line with two signatures during a key rotation. */
#define SIG_LINE_MAX (32 + 2 * DH_WEBHOOK_SIG_MAX)

struct flight {
	struct flight *next;
	struct dh_outbound o;
	struct dh_outbox_row row;      /* body: as sent */
	char token[DH_LINK_TOKEN_LEN]; /* the link token the body carries, "" when none */
	int64_t started_ms;
	CURLcode rc; /* how the transfer ended, once it did */
};

static struct {
	pthread_mutex_t lock;
	CURLM *multi; /* guarded by lock for the kick; used by the thread */
	pthread_t thread;
	bool is_started;
	atomic_bool stop;
	atomic_bool kicked;
	char owner[DH_UUID_LEN];
	struct flight *flights; /* the thread's */
	unsigned nflight;
	atomic_uint_fast64_t ok, status, timeout, refused, error, delivered, failed;
	atomic_uint in_flight;
} snd = { .lock = PTHREAD_MUTEX_INITIALIZER };

void dh_webhook_sender_kick(void)
{
	atomic_store(&snd.kicked, true);
	pthread_mutex_lock(&snd.lock);
	if (snd.multi)
		curl_multi_wakeup(snd.multi);
	pthread_mutex_unlock(&snd.lock);
}

void dh_webhook_sender_stats(struct dh_webhook_stats *out)
{
	out->attempts_ok = atomic_load(&snd.ok);
	out->attempts_status = atomic_load(&snd.status);
	out->attempts_timeout = atomic_load(&snd.timeout);
	out->attempts_refused = atomic_load(&snd.refused);
	out->attempts_error = atomic_load(&snd.error);
	out->delivered = atomic_load(&snd.delivered);
	out->failed = atomic_load(&snd.failed);
	out->in_flight = atomic_load(&snd.in_flight);
}

static bool in_flight(const char *id, const char *webhook, unsigned *same_webhook)
{
	bool found = false;

	*same_webhook = 0;
	for (struct flight *f = snd.flights; f; f = f->next) {
		if (strcmp(f->row.webhook, webhook) == 0)
			(*same_webhook)++;
		if (id && strcmp(f->row.id, id) == 0)
			found = true;
	}
	return found;
}

/* The webhook-signature value: the current key, and the previous one while it still signs. */
static bool signatures(const struct dh_outbox_row *r, int64_t ts, int64_t now_us, char *out,
		       size_t cap)
{
	const char *keys[2] = { r->secret, r->previous_secret };
	size_t o = 0;

	for (int i = 0; i < 2; i++) {
		char text[DH_WEBHOOK_SECRET_MAX], sig[DH_WEBHOOK_SIG_MAX];
		uint8_t key[DH_WEBHOOK_KEY_MAX];
		size_t len;
		int n;

		if (i == 1 && (!*keys[1] || r->previous_until_us <= now_us))
			break;
		n = snprintf(text, sizeof(text), "whsec_%s", keys[i]);
		if (n < 0 || (size_t)n >= sizeof(text) || !dh_webhook_secret_parse(text, key, &len))
			return false;
		dh_webhook_sign(key, len, r->id, ts, r->body, strlen(r->body), sig);
		n = snprintf(out + o, cap - o, "%s%s", o ? " " : "", sig);
		if (n < 0 || (size_t)n >= cap - o)
			return false;
		o += (size_t)n;
	}
	return o > 0;
}

/* The outcome of one attempt, with room for the texts its record points at. */
struct outcome {
	char id[DH_UUID_LEN];
	struct dh_outbox_result res;
	char why[DH_OUTBOUND_WHY_MAX];
	char excerpt[SENDER_EXCERPT];
};

/* Decides what becomes of f's delivery after an attempt that ended with rc (or never started,
 * why_given), counts and logs it, and fills o. */
static void decide(struct flight *f, CURLcode rc, const char *why_given, struct outcome *o)
{
	struct dh_outbox_result *res = &o->res;
	int64_t now = dh_now_us(), deadline, elapsed = dh_mono_ms() - f->started_ms;
	long code = why_given ? 0 : dh_outbound_status(&f->o);
	unsigned attempts = (unsigned)f->row.attempts + 1;
	uint32_t r = 0;

	memset(o, 0, sizeof(*o));
	snprintf(o->id, sizeof(o->id), "%s", f->row.id);
	res->attempt_us = now;
	res->status_code = code;
	if (f->o.answer_len) {
		/* the delivery log is stored: a receiver that echoes the link it was sent must
		 * not put the token there (a cut token's end included) */
		dh_link_token_mask(f->o.answer, f->o.answer_len, f->token);
		/* what receivers answer goes into JSON: well-formed UTF-8, cut on a character */
		dh_text_clean(o->excerpt, sizeof(o->excerpt), f->o.answer, f->o.answer_len);
		res->response = o->excerpt;
	}
	if (!why_given && rc == CURLE_OK && code >= 200 && code <= 299) {
		res->status = "delivered";
		res->next_us = now;
		atomic_fetch_add(&snd.ok, 1);
		atomic_fetch_add(&snd.delivered, 1);
		dh_info("webhook.delivered",
			"id=%s webhook=%s event=%s status=%ld attempts=%u ms=%lld", f->row.id,
			f->row.webhook, f->row.event, code, attempts, (long long)elapsed);
		return;
	}
	if (why_given)
		snprintf(o->why, sizeof(o->why), "%s", why_given);
	else
		dh_outbound_describe(&f->o, rc, o->why, sizeof(o->why));
	res->error = o->why;
	if (why_given || *f->o.refused)
		atomic_fetch_add(*f->o.refused ? &snd.refused : &snd.error, 1);
	else if (rc == CURLE_OK)
		atomic_fetch_add(&snd.status, 1);
	else if (rc == CURLE_OPERATION_TIMEDOUT)
		atomic_fetch_add(&snd.timeout, 1);
	else
		atomic_fetch_add(&snd.error, 1);
	deadline = f->row.queue_us + (int64_t)dh_cfg.webhook_max_age * 1000000;
	if ((dh_cfg.webhook_max_attempts && attempts >= dh_cfg.webhook_max_attempts) ||
	    now >= deadline) {
		res->status = "failed";
		res->next_us = now;
		atomic_fetch_add(&snd.failed, 1);
		dh_warn("webhook.failed", "id=%s webhook=%s event=%s attempts=%u detail=\"%s\"",
			f->row.id, f->row.webhook, f->row.event, attempts, o->why);
		return;
	}
	dh_random(&r, sizeof(r));
	res->status = "pending";
	res->next_us = now + dh_webhook_retry_ms(attempts, dh_cfg.webhook_retry_base_ms,
						 (double)r / 4294967296.0) *
				     1000;
	/* one last attempt at the deadline rather than none */
	if (res->next_us > deadline)
		res->next_us = deadline;
	dh_info("webhook.retry", "id=%s webhook=%s event=%s attempts=%u in_ms=%lld detail=\"%s\"",
		f->row.id, f->row.webhook, f->row.event, attempts,
		(long long)((res->next_us - now) / 1000), o->why);
}

/* Stores n outcomes in one transaction: under load one write for many attempts. */
static void record(struct dh_db *db, const struct outcome *o, size_t n)
{
	const char **ids = calloc(n ? n : 1, sizeof(*ids));
	struct dh_outbox_result *res = calloc(n ? n : 1, sizeof(*res));

	for (size_t i = 0; ids && res && i < n; i++) {
		ids[i] = o[i].id;
		res[i] = o[i].res;
	}
	if (!ids || !res || dh_db_outbox_record(db, ids, res, n) != DH_OK)
		dh_warn("webhook.record",
			"deliveries=%zu detail=\"the outcomes could not be stored; the leases will"
			" run out and the deliveries be sent again\"",
			n);
	free(ids);
	free(res);
}

/* Records a delivery whose attempt could not even start, and frees its flight. */
static void fail_start(struct dh_db *db, struct flight *f, const char *why)
{
	struct outcome o;

	decide(f, CURLE_OK, why, &o);
	record(db, &o, 1);
	dh_outbound_release(&f->o);
	dh_db_outbox_row_release(&f->row);
	free(f);
}

static void flight_free(struct flight *f)
{
	dh_outbound_release(&f->o);
	dh_db_outbox_row_release(&f->row);
	free(f);
}

/* Sends row (taken) now; false when it could not even start (recorded as a failed attempt). */
static void start(struct dh_db *db, struct dh_outbox_row *row, int64_t now_us)
{
	struct flight *f = calloc(1, sizeof(*f));
	struct dh_outbound_req r = { 0 };
	char id_line[64], ts_line[64], sig_line[SIG_LINE_MAX], sigs[SIG_LINE_MAX - 32];
	char why[DH_OUTBOUND_WHY_MAX], *shown = NULL;
	const char *headers[5] = { "Content-Type: application/json", id_line, ts_line, sig_line,
				   NULL };
	int64_t ts = now_us / 1000000;

	if (!f) {
		dh_db_outbox_row_release(row);
		return;
	}
	f->row = *row;
	memset(row, 0, sizeof(*row));
	f->started_ms = dh_mono_ms();
	/* the outbox holds a session's links as prefixes: the token goes into the body sent
	 * (and signed) now, while the link serves; a later attempt sends null */
	if (dh_session_webhook_body(db, f->row.body, &shown, f->token) != DH_OK) {
		fail_start(db, f, "out of memory");
		return;
	}
	if (shown) {
		free(f->row.body);
		f->row.body = shown;
	}
	snprintf(id_line, sizeof(id_line), "webhook-id: %s", f->row.id);
	snprintf(ts_line, sizeof(ts_line), "webhook-timestamp: %" PRId64, ts);
	if (!signatures(&f->row, ts, now_us, sigs, sizeof(sigs))) {
		fail_start(db, f, "the webhook's secret cannot be read");
		return;
	}
	snprintf(sig_line, sizeof(sig_line), "webhook-signature: %s", sigs);
	r.method = "POST";
	r.url = f->row.url;
	r.headers = headers;
	r.body = f->row.body;
	r.body_len = strlen(f->row.body);
	r.connect_timeout_ms = (long)dh_cfg.webhook_connect_timeout * 1000;
	r.timeout_ms = (long)dh_cfg.webhook_timeout * 1000;
	r.answer_max = SENDER_ANSWER_MAX;
	if (dh_outbound_init(&f->o, &r, why, sizeof(why)) != DH_OK) {
		fail_start(db, f, why);
		return;
	}
	if (curl_easy_setopt(f->o.h, CURLOPT_PRIVATE, f) != CURLE_OK ||
	    curl_multi_add_handle(snd.multi, f->o.h) != CURLM_OK) {
		fail_start(db, f, "the request could not be started");
		return;
	}
	f->next = snd.flights;
	snd.flights = f;
	snd.nflight++;
	atomic_store(&snd.in_flight, snd.nflight);
}

/* A delivery chosen to go out in this round, and the index of its webhook's first one. */
struct candidate {
	struct dh_outbox_row row;
	size_t first;
};

/* Claims and starts what is due; returns when the earliest waiting delivery falls due
 * (µs, wall clock), at most SENDER_POLL_MS from now. */
static int64_t refill(struct dh_db *db, unsigned *rr)
{
	static char ids[SENDER_WEBHOOKS_MAX][DH_UUID_LEN];
	unsigned per =
		dh_cfg.webhook_endpoint_concurrency ? dh_cfg.webhook_endpoint_concurrency : 1;
	size_t room = dh_cfg.webhook_concurrency > snd.nflight
			      ? dh_cfg.webhook_concurrency - snd.nflight
			      : 0;
	struct dh_outbox_row *rows = calloc(2 * per, sizeof(*rows));
	struct candidate *cand = calloc(room ? room : 1, sizeof(*cand));
	const char **cand_ids = calloc(room ? room : 1, sizeof(*cand_ids));
	bool *won = calloc(room ? room : 1, sizeof(*won));
	int64_t now = dh_now_us(), due = now + SENDER_POLL_MS * 1000LL;
	/* a claim outlives the request's own time limit by --lease-ms, the time after which a
	 * server that died loses its sessions to the others too */
	int64_t lease = (int64_t)(dh_cfg.webhook_timeout * 1000ULL + dh_cfg.lease_ms) * 1000;
	size_t nw = 0, nc = 0;

	if (!rows || !cand || !cand_ids || !won || room == 0)
		goto out;
	nw = dh_db_outbox_webhooks(db, ids, SENDER_WEBHOOKS_MAX);
	for (size_t k = 0; k < nw && nc < room; k++) {
		/* start at a rotating webhook, so that none waits for the others every round */
		const char *w = ids[(k + *rr) % nw];
		unsigned busy, slots;
		size_t n, i, first = nc;

		in_flight(NULL, w, &busy);
		if (busy >= per)
			continue;
		slots = per - busy;
		n = dh_db_outbox_peek(db, w, rows, per + busy);
		for (i = 0; i < n; i++) {
			struct dh_outbox_row *r = &rows[i];
			unsigned same;

			if (in_flight(r->id, w, &same))
				continue; /* ours, on its way */
			if (*r->lease_owner && strcmp(r->lease_owner, snd.owner) != 0 &&
			    r->lease_until > now) {
				/* another process sends it: the next ones wait, in order */
				if (r->lease_until < due)
					due = r->lease_until;
				break;
			}
			if (r->next_us > now) {
				if (r->next_us < due)
					due = r->next_us;
				break;
			}
			if (slots == 0 || nc == room)
				break;
			cand[nc].row = *r;
			cand[nc].first = first;
			memset(r, 0, sizeof(*r));
			cand_ids[nc] = cand[nc].row.id;
			nc++;
			slots--;
		}
		for (i = 0; i < n; i++)
			dh_db_outbox_row_release(&rows[i]);
	}
	if (nw)
		*rr = (*rr + 1) % (unsigned)nw;
	/* one transaction claims the round; a webhook whose delivery another process won
	 * starts none after it, so that its order holds */
	if (nc && dh_db_outbox_claim(db, cand_ids, nc, snd.owner, now, now + lease, won) != DH_OK)
		memset(won, 0, nc * sizeof(*won));
	for (size_t i = 0; i < nc; i++) {
		bool lost_before = false;
		for (size_t j = cand[i].first; j < i; j++)
			lost_before = lost_before || !won[j];
		if (won[i] && !lost_before)
			start(db, &cand[i].row, now);
		dh_db_outbox_row_release(&cand[i].row);
	}
out:
	free(rows);
	free(cand);
	free(cand_ids);
	free(won);
	return due;
}

/* Records every finished transfer in one transaction and frees its flight. */
static void collect(struct dh_db *db, bool *finished)
{
	struct flight *done = NULL;
	struct outcome *o = NULL;
	size_t n = 0, i = 0;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(snd.multi, &left))) {
		struct flight *f = NULL, **pp;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
		curl_multi_remove_handle(snd.multi, m->easy_handle);
		if (!f)
			continue;
		f->rc = m->data.result;
		for (pp = &snd.flights; *pp && *pp != f; pp = &(*pp)->next)
			;
		if (*pp)
			*pp = f->next;
		f->next = done;
		done = f;
		snd.nflight--;
		n++;
	}
	atomic_store(&snd.in_flight, snd.nflight);
	if (!n)
		return;
	*finished = true;
	o = calloc(n, sizeof(*o));
	for (struct flight *f = done; f; f = f->next) {
		if (o)
			decide(f, f->rc, NULL, &o[i++]);
	}
	if (o)
		record(db, o, n);
	while (done) {
		struct flight *f = done;
		done = f->next;
		flight_free(f);
	}
	free(o);
}

static void *sender_main(void *arg)
{
	struct dh_db *db = dh_db_thread();
	int64_t next_refill = 0, next_prune = 0;
	unsigned rr = 0;

	(void)arg;
	if (!db)
		return NULL;
	/* the only process on this database: leases of any other owner belong to a dead one, and
	 * what it had in flight goes out again at once; on a shared database they run out */
	if (!dh_db_is_shared())
		dh_db_outbox_unlease(db, snd.owner, true);
	while (!atomic_load(&snd.stop)) {
		int64_t now = dh_mono_ms(), wait;
		bool finished = false;
		int running = 0;

		if (atomic_exchange(&snd.kicked, false) || now >= next_refill) {
			int64_t due = refill(db, &rr), in = (due - dh_now_us()) / 1000;
			next_refill = now + (in < 0 ? 0 : in);
		}
		curl_multi_perform(snd.multi, &running);
		collect(db, &finished);
		if (finished)
			next_refill = 0;
		if (now >= next_prune) {
			int64_t before = dh_now_us() - (int64_t)dh_cfg.webhook_retention * 1000000;
			size_t n = dh_db_outbox_prune(db, before, SENDER_PRUNE_ROWS);
			if (n)
				dh_info("webhook.pruned", "deliveries=%zu", n);
			next_prune = now + (n == SENDER_PRUNE_ROWS ? 0 : SENDER_PRUNE_MS);
		}
		now = dh_mono_ms();
		wait = finished ? 0 : next_refill - now;
		if (wait > SENDER_POLL_MS)
			wait = SENDER_POLL_MS;
		if (wait > 0)
			curl_multi_poll(snd.multi, NULL, 0, (int)wait, NULL);
	}
	/* abandoned attempts do not count: their deliveries go back to the queue as they were */
	while (snd.flights) {
		struct flight *f = snd.flights;
		snd.flights = f->next;
		curl_multi_remove_handle(snd.multi, f->o.h);
		flight_free(f);
	}
	snd.nflight = 0;
	atomic_store(&snd.in_flight, 0);
	dh_db_outbox_unlease(db, snd.owner, false);
	dh_db_thread_close();
	return NULL;
}

enum dh_err dh_webhook_sender_start(struct dh_error *err)
{
	CURLM *multi = curl_multi_init();

	if (!multi)
		return dh_error_set(err, DH_E_NOMEM, "Cannot create the webhook sender");
	dh_uuid_new(snd.owner);
	atomic_store(&snd.stop, false);
	/* commits that wrote deliveries wake the thread */
	dh_db_outbox_notify(dh_webhook_sender_kick);
	pthread_mutex_lock(&snd.lock);
	snd.multi = multi;
	pthread_mutex_unlock(&snd.lock);
	if (pthread_create(&snd.thread, NULL, sender_main, NULL) != 0) {
		pthread_mutex_lock(&snd.lock);
		snd.multi = NULL;
		pthread_mutex_unlock(&snd.lock);
		curl_multi_cleanup(multi);
		return dh_error_set(err, DH_E_INTERNAL, "Cannot start the webhook sender thread");
	}
	snd.is_started = true;
	dh_info("webhook.sender",
		"owner=%s concurrency=%u endpoint_concurrency=%u timeout_s=%u"
		" max_age_s=%" PRIu64,
		snd.owner, dh_cfg.webhook_concurrency, dh_cfg.webhook_endpoint_concurrency,
		dh_cfg.webhook_timeout, dh_cfg.webhook_max_age);
	return DH_OK;
}

void dh_webhook_sender_stop(void)
{
	CURLM *multi;

	if (!snd.is_started)
		return;
	atomic_store(&snd.stop, true);
	dh_webhook_sender_kick();
	pthread_join(snd.thread, NULL);
	pthread_mutex_lock(&snd.lock);
	multi = snd.multi;
	snd.multi = NULL;
	pthread_mutex_unlock(&snd.lock);
	curl_multi_cleanup(multi);
	snd.is_started = false;
}
