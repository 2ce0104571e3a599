/*
 * The worker pool, the reaper and start-up recovery. Workers sleep on one condition
 * variable, claim the oldest queued session with one atomic UPDATE ... RETURNING, and run
 * its steps in order with a deadline each and a cancellation flag; every state change goes
 * through dh_session_fire (the transition table). The reaper reads due sessions from the
 * expiration index every --reaper-interval-ms. No lock is held across a step or SQLite call.
 */
#include "pipeline/pipeline.h"

#include "blob.h"
#include "core/delivery.h"
#include "core/links.h"
#include "core/text.h"
#include "core/util.h"
#include "dh_db.h"
#include "log.h"
#include "pipeline/delivered.h"
#include "pipeline/session.h"
#include "plugins/loader.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Longest a worker sleeps before looking for queued sessions anyway (a missed kick). */
#define WORKER_IDLE_MS 1000
/* Most worker threads; more would only contend on the database. */
#define WORKERS_MAX 256

struct worker {
	pthread_t th;
	unsigned idx;
	atomic_bool cancel;        /* the running step must stop (its session timed out) */
	char session[DH_UUID_LEN]; /* what it runs, "" when idle; guarded by pool.lock */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* workers wait for kicks */
	pthread_cond_t reaper_cond; /* the reaper waits for its tick or stop */
	bool stop;                  /* guarded by lock */
	atomic_bool stopping;       /* the same, readable without the lock */
	unsigned long gen;          /* kick generation, guarded by lock */
	struct worker *workers;
	unsigned n;
	pthread_t reaper;
	bool reaper_started;
	unsigned interval_ms;
	int64_t lease_us;        /* how long a claim lasts unless renewed */
	int64_t renew_due_us;    /* when the reaper renews this process's leases next */
	char owner[DH_UUID_LEN]; /* this process's lease owner id */
	char data_dir[PATH_MAX];
} pool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
	.reaper_cond = PTHREAD_COND_INITIALIZER,
};

/* What a step's callbacks need; lives on the worker's stack during one step. */
struct run {
	struct dh_db *db;
	struct dh_session *s;
	struct worker *w;
	json_t *payload; /* the latest payload (owned), exposed to the step as ctx->payload */
};

static void deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

void dh_pipeline_kick(void)
{
	pthread_mutex_lock(&pool.lock);
	pool.gen++;
	pthread_cond_signal(&pool.cond);
	pthread_mutex_unlock(&pool.lock);
}

void dh_pipeline_cancel(const char *id)
{
	pthread_mutex_lock(&pool.lock);
	for (unsigned i = 0; i < pool.n; i++) {
		if (strcmp(pool.workers[i].session, id) == 0)
			atomic_store(&pool.workers[i].cancel, true);
	}
	pthread_mutex_unlock(&pool.lock);
}

/* ---- step callbacks (dh_plugin.h) ---- */

struct merge {
	struct run *r;
	json_t *obj;
	json_t **payload;
};

/* The payload merge and its progress event in one transaction. */
static enum dh_err merge_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct merge *m = cls;
	enum dh_err rc;

	(void)err;
	json_decref(*m->payload);
	*m->payload = NULL;
	rc = dh_db_session_merge(db, m->r->s->id, pool.owner, m->obj, m->payload);
	if (rc == DH_OK)
		rc = dh_session_emit_progress(db, m->r->s, *m->payload);
	return rc;
}

/* The short-link token of s's run ("" without a link key): steps see it in the payload. */
static void run_token(const struct dh_session *s, char token[DH_LINK_TOKEN_LEN])
{
	if (!dh_link_token(s->id, s->attempts, token))
		token[0] = 0;
}

/*
 * Hides token in every string of v (changed in place; keys stay as they are). A step that
 * sent the link out (the http step) may store what came back, and a service that echoes
 * the link would otherwise put a credential into the stored payload. False on allocation
 * failure.
 */
static bool mask_json(json_t *v, const char *token)
{
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_string(v)) {
		size_t n = json_string_length(v);
		char *t = malloc(n + 1);
		bool ok = t != NULL;
		if (ok) {
			memcpy(t, json_string_value(v), n + 1);
			if (dh_link_token_mask(t, n, token))
				ok = json_string_setn_nocheck(v, t, n) == 0;
		}
		free(t);
		return ok;
	}
	json_array_foreach(v, i, x)
	{
		if (!mask_json(x, token))
			return false;
	}
	json_object_foreach(v, k, x)
	{
		if (!mask_json(x, token))
			return false;
	}
	return true;
}

static int ctx_merge(struct dh_step_ctx *ctx, json_t *obj)
{
	struct run *r = ctx->priv;
	json_t *payload = NULL, *safe = NULL;
	struct merge m = { r, NULL, &payload };
	char token[DH_LINK_TOKEN_LEN];
	enum dh_err rc;

	if (!json_is_object(obj))
		return -1;
	run_token(r->s, token);
	safe = json_deep_copy(obj);
	if (!safe || !mask_json(safe, token)) {
		json_decref(safe);
		return -1;
	}
	m.obj = safe;
	rc = dh_db_tx_run(r->db, merge_tx, &m, NULL);
	json_decref(safe);
	if (rc != DH_OK) {
		json_decref(payload);
		return -1;
	}
	json_decref(r->payload);
	/* steps see the payload as it is shown: links complete (the http step sends them) */
	r->payload = dh_session_payload_view(r->s, payload, false);
	ctx->payload = r->payload;
	json_decref(payload);
	return r->payload ? 0 : -1;
}

static void ctx_progress(struct dh_step_ctx *ctx, double fraction, const char *what)
{
	json_t *obj;

	if (!(fraction >= 0.0))
		fraction = 0.0;
	if (fraction > 1.0)
		fraction = 1.0;
	obj = json_pack("{s:{s:s, s:f, s:s}}", "progress", "step", ctx->step_name, "fraction",
			fraction, "what", what ? what : "");
	if (obj)
		ctx_merge(ctx, obj);
	json_decref(obj);
}

static bool ctx_cancelled(struct dh_step_ctx *ctx)
{
	struct run *r = ctx->priv;

	return atomic_load(&pool.stopping) || atomic_load(&r->w->cancel) ||
	       dh_mono_ms() >= ctx->deadline_ms;
}

/* ---- workers ---- */

/* Fails s (taking error); only while this process's lease holds when is_worker. */
static void fail_session(struct dh_db *db, struct dh_session *s, json_t *error, bool is_worker)
{
	struct dh_session_fire_opts o = { .error = error,
					  .lease_owner = is_worker ? pool.owner : NULL };
	struct dh_error err = { 0 };

	if (dh_session_fire(db, s, DH_EV_STEP_FAIL, &o, &err) != DH_OK)
		dh_info("session.fail_lost", "id=%s state=%s detail=\"%s\"", s->id,
			dh_state_name(s->state), dh_error_detail(&err));
	dh_error_release(&err);
	json_decref(error);
}

static void blob_path(const char *sha, char *out, size_t size)
{
	if (!dh_blob_path(sha, out, size))
		out[0] = 0;
}

/* A step's own error code: [a-z0-9_], not empty (dh_plugin.h). */
static bool step_code_ok(const char *code)
{
	size_t n = strlen(code);

	return n > 0 && strspn(code, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* Runs step i of s; returns its result, with the failure sentence in *error (new ref). */
static enum dh_step_result run_step(struct run *r, unsigned i, json_t *step, const char *image,
				    json_t **error)
{
	struct dh_session *s = r->s;
	const char *name = json_string_value(json_object_get(step, "plugin"));
	const char *label = json_string_value(json_object_get(step, "name"));
	json_t *params = json_object_get(step, "params"), *empty = NULL;
	json_t *timeout = json_object_get(params, "timeout");
	const struct dh_plugin *p = dh_plugin_find(name);
	struct dh_step_ctx ctx = { 0 };
	int64_t now = dh_mono_ms();
	enum dh_step_result res;

	if (!p) {
		*error = dh_session_error("step_failed",
					  "Step %u (%s) failed: no such step is available in this"
					  " server.",
					  i + 1, name ? name : "?");
		return DH_STEP_FAIL;
	}
	if (!json_is_object(params))
		params = empty = json_object();
	ctx.abi = DH_PLUGIN_ABI;
	ctx.session_id = s->id;
	ctx.device_id = s->device_name;
	ctx.model_id = s->model;
	ctx.current_version = s->current_version;
	ctx.target_version = s->target_version;
	ctx.target_firmware_id = s->target_fw;
	ctx.base_url = s->base_url;
	ctx.image_path = image;
	ctx.image_size = (uint64_t)(s->target_size > 0 ? s->target_size : 0);
	ctx.image_sha256 = s->target_sha256;
	ctx.step_index = i;
	ctx.step_name = label && *label ? label : p->name;
	ctx.params = params;
	ctx.payload = r->payload;
	/* the step may take what remains of processing_timeout, or its own timeout if shorter */
	ctx.deadline_ms = now + (s->expire_us - dh_now_us()) / 1000;
	if (json_is_integer(timeout) && json_integer_value(timeout) > 0 &&
	    json_integer_value(timeout) < (ctx.deadline_ms - now) / 1000)
		ctx.deadline_ms = now + json_integer_value(timeout) * 1000;
	ctx.merge = ctx_merge;
	ctx.progress = ctx_progress;
	ctx.cancelled = ctx_cancelled;
	ctx.priv = r;
	dh_info("session.step", "id=%s step=%u plugin=%s name=%s worker=%u", s->id, i + 1, p->name,
		ctx.step_name, r->w->idx);
	res = p->run(&ctx);
	if (res == DH_STEP_CANCELLED && !atomic_load(&pool.stopping) &&
	    !atomic_load(&r->w->cancel) && dh_mono_ms() >= ctx.deadline_ms) {
		*error = dh_session_error("step_failed",
					  "Step %u (%s) failed: it did not finish within its time"
					  " limit of %lld s.",
					  i + 1, ctx.step_name,
					  (long long)((ctx.deadline_ms - now + 999) / 1000));
		res = DH_STEP_FAIL;
	} else if (res == DH_STEP_FAIL) {
		char token[DH_LINK_TOKEN_LEN];
		ctx.error[sizeof(ctx.error) - 1] = 0;
		/* a plugin's snprintf into its fixed buffer may have cut the last character */
		ctx.error[dh_utf8_trim_partial(ctx.error, strlen(ctx.error))] = 0;
		/* the error is stored: a service's answer in it may echo the link it was sent */
		run_token(s, token);
		dh_link_token_mask(ctx.error, strlen(ctx.error), token);
		ctx.error_code[sizeof(ctx.error_code) - 1] = 0;
		*error = dh_session_error(step_code_ok(ctx.error_code) ? ctx.error_code
								       : "step_failed",
					  "Step %u (%s) failed: %s", i + 1, ctx.step_name,
					  *ctx.error ? ctx.error : "no reason given");
	} else if (res != DH_STEP_OK && res != DH_STEP_CANCELLED) {
		*error = dh_session_error("step_failed", "Step %u (%s) failed: it returned %d.",
					  i + 1, ctx.step_name, (int)res);
		res = DH_STEP_FAIL;
	}
	json_decref(empty);
	return res;
}

static void run_session(struct worker *w, struct dh_db *db, struct dh_session *s)
{
	struct run r = { .db = db, .s = s, .w = w };
	json_t *steps = s->steps, *deflt = NULL, *step, *error = NULL;
	char image[PATH_MAX], id[DH_UUID_LEN];
	struct dh_error err = { 0 };
	size_t i;

	r.payload = json_incref(s->payload);
	blob_path(s->target_sha256, image, sizeof(image));
	/* steps read the image file: on a shared database it may not be here yet */
	if (*image && s->target_size >= 0)
		dh_blob_ensure(s->target_sha256, (uint64_t)s->target_size, NULL);
	if (!json_array_size(steps))
		steps = deflt = json_pack("[{s:s}]", "plugin", "link");
	json_array_foreach(steps, i, step)
	{
		enum dh_step_result res;
		if (atomic_load(&pool.stopping))
			goto out; /* left processing: the next start takes it up */
		res = run_step(&r, (unsigned)i, step, image, &error);
		if (res == DH_STEP_CANCELLED)
			goto out; /* shutdown (recoverable) or the reaper already failed it */
		if (res != DH_STEP_OK) {
			fail_session(db, s, error, true);
			goto out;
		}
	}
	/* reload: the steps' merges changed the payload */
	snprintf(id, sizeof(id), "%s", s->id);
	dh_db_session_release(s);
	if (dh_db_session_get(db, id, s) != DH_OK)
		goto out;
	if (dh_session_fire(db, s, s->needs_confirm ? DH_EV_DONE_CONFIRM : DH_EV_DONE,
			    &(struct dh_session_fire_opts){ .lease_owner = pool.owner },
			    &err) != DH_OK)
		dh_info("session.done_lost", "id=%s state=%s", s->id, dh_state_name(s->state));
out:
	dh_error_release(&err);
	json_decref(deflt);
	json_decref(r.payload);
}

static enum dh_err claim_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct dh_session *s = cls;
	enum dh_err rc;

	(void)err;
	/* the claim's own transaction joins this one, so that its session.state event (and the
	 * webhook outbox rows) commit with the move or not at all */
	rc = dh_db_session_claim(db, pool.owner, pool.lease_us, s);
	if (rc == DH_OK)
		rc = dh_session_emit_state(db, s);
	return rc;
}

/* Claims the oldest queued session into s; DH_E_NOT_FOUND when none is queued. */
static enum dh_err claim(struct dh_db *db, struct dh_session *s)
{
	enum dh_err rc = dh_db_tx_run(db, claim_tx, s, NULL);

	if (rc != DH_OK)
		dh_db_session_release(s);
	return rc;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct dh_db *db = dh_db_thread();
	unsigned long seen = 0;
	struct timespec ts;

	while (db) {
		pthread_mutex_lock(&pool.lock);
		if (!pool.stop && pool.gen == seen) {
			deadline_in(&ts, WORKER_IDLE_MS);
			pthread_cond_timedwait(&pool.cond, &pool.lock, &ts);
		}
		if (pool.stop) {
			pthread_mutex_unlock(&pool.lock);
			break;
		}
		seen = pool.gen;
		pthread_mutex_unlock(&pool.lock);
		while (!atomic_load(&pool.stopping)) {
			struct dh_session s = { 0 };
			char id[DH_UUID_LEN];
			if (claim(db, &s) != DH_OK)
				break;
			snprintf(id, sizeof(id), "%s", s.id);
			pthread_mutex_lock(&pool.lock);
			snprintf(w->session, sizeof(w->session), "%s", id);
			atomic_store(&w->cancel, false);
			pthread_mutex_unlock(&pool.lock);
			dh_info("session.state",
				"id=%s from=queued to=processing event=%s worker=%u", id,
				dh_event_name(DH_EV_CLAIM), w->idx);
			/* the claim is the table's queued --claim--> processing row */
			if (dh_fsm_find(DH_ST_QUEUED, DH_EV_CLAIM))
				run_session(w, db, &s);
			dh_db_session_release(&s);
			pthread_mutex_lock(&pool.lock);
			w->session[0] = 0;
			pthread_mutex_unlock(&pool.lock);
		}
	}
	dh_db_thread_close();
	return NULL;
}

/* ---- reaper and recovery ---- */

/*
 * Takes up a session whose lease (of a process that died) ended: queued again, or failed when
 * it ran out of attempts. Guarded by that lease, so that of several reapers one wins, and a
 * process that renewed its lease meanwhile keeps its session.
 */
static void recover(struct dh_db *db, const struct dh_session_due *d)
{
	struct dh_session s = { 0 };
	struct dh_error err = { 0 };
	struct dh_session_fire_opts o = { .lease_owner = d->owner, .lease_ended = true };

	if (dh_db_session_get(db, d->id, &s) != DH_OK)
		return;
	if (s.state != DH_ST_PROCESSING)
		goto out;
	if (s.attempts < DH_SESSION_MAX_ATTEMPTS) {
		if (dh_session_fire(db, &s, DH_EV_RECOVER, &o, &err) == DH_OK) {
			dh_warn("session.recovered", "id=%s attempts=%d", s.id, s.attempts);
			dh_pipeline_kick();
		}
	} else {
		json_t *e = dh_session_error(
			"interrupted",
			"The server stopped while this session was processing, %d times; it is not"
			" retried again.",
			s.attempts);
		o.error = e;
		if (dh_session_fire(db, &s, DH_EV_STEP_FAIL, &o, &err) != DH_OK)
			dh_info("session.fail_lost", "id=%s state=%s", s.id,
				dh_state_name(s.state));
		json_decref(e);
		dh_warn("session.abandoned", "id=%s attempts=%d", s.id, s.attempts);
	}
out:
	dh_error_release(&err);
	dh_db_session_release(&s);
}

static json_t *timeout_error(const struct dh_session *s)
{
	if (s->state == DH_ST_QUEUED)
		return dh_session_error("timeout",
					"The session waited in the queue longer than its"
					" processing_timeout of %lld s.",
					(long long)s->timeouts[DH_TO_PROCESSING]);
	return dh_session_error("timeout",
				"The session's steps ran longer than its processing_timeout of"
				" %lld s.",
				(long long)s->timeouts[DH_TO_PROCESSING]);
}

static void expire(struct dh_db *db, const struct dh_session_due *d, int64_t now)
{
	struct dh_session s = { 0 };
	struct dh_session_fire_opts o = { 0 };
	struct dh_error err = { 0 };
	bool was_processing;

	if (dh_db_session_get(db, d->id, &s) != DH_OK)
		return;
	if (s.finished || s.expire_us > now)
		goto out; /* moved on since the query */
	was_processing = s.state == DH_ST_PROCESSING;
	if (s.state == DH_ST_QUEUED || was_processing)
		o.error = timeout_error(&s);
	/* only if still due: of two reapers (two processes) exactly one applies it */
	o.due_by = now;
	if (dh_session_fire(db, &s, DH_EV_TIMEOUT, &o, &err) == DH_OK && was_processing)
		dh_pipeline_cancel(s.id);
out:
	json_decref(o.error);
	dh_error_release(&err);
	dh_db_session_release(&s);
}

/* Most sessions one process runs at once: its workers. */
#define RENEW_MAX WORKERS_MAX

/*
 * Extends this process's leases (every third of a lease) and stops the steps of sessions it
 * no longer holds: another process's reaper timed them out or took them over.
 */
static void renew_leases(struct dh_db *db, int64_t now)
{
	char held[RENEW_MAX][DH_UUID_LEN];
	size_t n = 0;

	if (now < pool.renew_due_us)
		return;
	pool.renew_due_us = now + pool.lease_us / 3;
	if (dh_db_session_renew(db, pool.owner, now + pool.lease_us, held, RENEW_MAX, &n) != DH_OK)
		return;
	pthread_mutex_lock(&pool.lock);
	for (unsigned i = 0; i < pool.n; i++) {
		struct worker *w = &pool.workers[i];
		bool holds = !*w->session;
		for (size_t k = 0; k < n && !holds; k++)
			holds = strcmp(held[k], w->session) == 0;
		if (!holds && !atomic_load(&w->cancel)) {
			/* a session claimed after the renewal started is not in held: check it */
			struct dh_session s = { 0 };
			char id[DH_UUID_LEN];
			snprintf(id, sizeof(id), "%s", w->session);
			pthread_mutex_unlock(&pool.lock);
			if (dh_db_session_get(db, id, &s) == DH_OK && s.state != DH_ST_PROCESSING) {
				dh_info("session.lease_lost", "id=%s state=%s", id,
					dh_state_name(s.state));
				dh_pipeline_cancel(id);
			}
			dh_db_session_release(&s);
			pthread_mutex_lock(&pool.lock);
		}
	}
	pthread_mutex_unlock(&pool.lock);
}

void dh_pipeline_reap(void)
{
	struct dh_db *db = dh_db_thread();
	struct dh_session_due *due;
	int64_t now = dh_now_us();
	size_t n;

	if (!db)
		return;
	due = calloc(DH_REAPER_BATCH, sizeof(*due));
	if (!due)
		return;
	n = dh_db_session_due(db, now, due, DH_REAPER_BATCH);
	for (size_t i = 0; i < n; i++)
		expire(db, &due[i], now);
	/* leases of other processes that ended: they died (scale-out) */
	n = dh_db_session_stale(db, pool.owner, now, due, DH_REAPER_BATCH);
	for (size_t i = 0; i < n; i++)
		recover(db, &due[i]);
	free(due);
}

/* The reaper thread also renews this process's leases and flushes delivered bytes: it wakes
 * for whichever comes first. */
static void *reaper_main(void *arg)
{
	unsigned tick =
		pool.interval_ms < DH_DELIVERY_FLUSH_MS ? pool.interval_ms : DH_DELIVERY_FLUSH_MS;

	/* often enough to renew leases well before they end */
	if (tick > pool.lease_us / 3000)
		tick = (unsigned)(pool.lease_us / 3000);
	int64_t next_reap = 0;
	struct timespec ts;
	struct dh_db *db;

	(void)arg;
	pthread_mutex_lock(&pool.lock);
	while (!pool.stop) {
		pthread_mutex_unlock(&pool.lock);
		if (dh_mono_ms() >= next_reap) {
			dh_pipeline_reap();
			next_reap = dh_mono_ms() + pool.interval_ms;
		}
		db = dh_db_thread();
		if (db) {
			renew_leases(db, dh_now_us());
			dh_delivered_flush(db, NULL);
		}
		pthread_mutex_lock(&pool.lock);
		if (pool.stop)
			break;
		deadline_in(&ts, tick);
		pthread_cond_timedwait(&pool.reaper_cond, &pool.lock, &ts);
	}
	pthread_mutex_unlock(&pool.lock);
	dh_db_thread_close();
	return NULL;
}

/*
 * At start-up on a database of its own (SQLite: one process per data dir) every lease not
 * ours is over; on a shared one only those that ended (the others belong to live
 * processes; the reaper takes the rest up as their leases end).
 */
static void recover_at_start(void)
{
	struct dh_db *db = dh_db_thread();
	struct dh_session_due *due = calloc(DH_REAPER_BATCH, sizeof(*due));
	int64_t until = dh_db_is_shared() ? dh_now_us() : INT64_MAX;
	size_t n;

	if (!db || !due) {
		free(due);
		return;
	}
	do {
		n = dh_db_session_stale(db, pool.owner, until, due, DH_REAPER_BATCH);
		for (size_t i = 0; i < n; i++)
			recover(db, &due[i]);
	} while (n == DH_REAPER_BATCH);
	free(due);
}

/* Another process sharing the database emitted an event (the change listener's thread). */
static void on_remote_event(const char *type, const char *session_id)
{
	struct dh_db *db;

	dh_pipeline_kick(); /* it may have queued a session */
	/* states move links; the link step's merge (a progress event) issues one */
	if (strcmp(type, "session.state") != 0 && strcmp(type, "session.progress") != 0)
		return;
	db = dh_db_thread();
	if (db)
		dh_session_link_recheck(db, session_id);
}

enum dh_err dh_pipeline_start(const char *data_dir, unsigned nworkers, unsigned interval_ms,
			      unsigned lease_ms, struct dh_error *err)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	enum dh_err rc;

	if (nworkers == 0)
		nworkers = cores > 0 ? (unsigned)cores : 2;
	if (nworkers > WORKERS_MAX)
		nworkers = WORKERS_MAX;
	snprintf(pool.data_dir, sizeof(pool.data_dir), "%s", data_dir);
	dh_uuid_new(pool.owner);
	pool.interval_ms = interval_ms ? interval_ms : 1000;
	pool.lease_us = (int64_t)(lease_ms ? lease_ms : 10000) * 1000;
	pool.renew_due_us = 0;
	dh_db_set_remote_hook(on_remote_event);
	pool.stop = false;
	atomic_store(&pool.stopping, false);
	rc = dh_session_link_key_setup(data_dir, err);
	if (rc != DH_OK)
		return rc;
	recover_at_start();
	/* after recovery: the sessions it queued again will issue new links when they run */
	if (dh_db_thread() && dh_session_links_load(dh_db_thread()) != DH_OK)
		return dh_error_set(err, DH_E_DB,
				    "Cannot load the short links of active sessions.");
	pool.workers = calloc(nworkers, sizeof(*pool.workers));
	if (!pool.workers)
		return dh_error_set(err, DH_E_NOMEM, NULL);
	for (unsigned i = 0; i < nworkers; i++) {
		pool.workers[i].idx = i;
		if (pthread_create(&pool.workers[i].th, NULL, worker_main, &pool.workers[i]) != 0) {
			dh_pipeline_stop();
			return dh_error_set(err, DH_E_INTERNAL, "Cannot start worker %u", i);
		}
		pool.n = i + 1;
	}
	if (pthread_create(&pool.reaper, NULL, reaper_main, NULL) != 0) {
		dh_pipeline_stop();
		return dh_error_set(err, DH_E_INTERNAL, "Cannot start the reaper thread");
	}
	pool.reaper_started = true;
	dh_info("pipeline.started", "workers=%u reaper_interval_ms=%u owner=%s", nworkers,
		pool.interval_ms, pool.owner);
	return DH_OK;
}

void dh_pipeline_stop(void)
{
	struct dh_db *db;

	pthread_mutex_lock(&pool.lock);
	pool.stop = true;
	atomic_store(&pool.stopping, true);
	for (unsigned i = 0; i < pool.n; i++)
		atomic_store(&pool.workers[i].cancel, true);
	pthread_cond_broadcast(&pool.cond);
	pthread_cond_broadcast(&pool.reaper_cond);
	pthread_mutex_unlock(&pool.lock);
	for (unsigned i = 0; i < pool.n; i++)
		pthread_join(pool.workers[i].th, NULL);
	if (pool.reaper_started)
		pthread_join(pool.reaper, NULL);
	pool.reaper_started = false;
	free(pool.workers);
	pool.workers = NULL;
	pool.n = 0;
	db = dh_db_thread();
	if (db) {
		/* the transports stopped before us: what they sent last is written now */
		dh_delivered_flush(db, NULL);
		dh_db_session_release_leases(db, pool.owner);
	}
	dh_delivery_clear();
	dh_links_set_ready(false);
	dh_links_clear();
	dh_info("pipeline.stopped", "owner=%s", pool.owner);
}
