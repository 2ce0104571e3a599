/*
 * The delivery pipeline: --workers threads that claim queued sessions and run their steps,
 * and one reaper thread that applies every session timeout and takes up sessions whose
 * lease expired. HTTP threads only change a session's state and call dh_pipeline_kick; they
 * never wait on a step.
 *
 * Shared memory (all in pipeline.c): the stop flag and the kick generation, guarded by
 * the pool mutex; each worker's current session id (guarded by the pool mutex) and its
 * cancellation flag (atomic).
 */
#ifndef DH_PIPELINE_PIPELINE_H
#define DH_PIPELINE_PIPELINE_H

#include "core/err.h"

/* Sessions one reaper pass handles per query; the rest wait for the next pass. */
#define DH_REAPER_BATCH 256
/* Runs a session may get: the first, and one more after the server died while it ran. */
#define DH_SESSION_MAX_ATTEMPTS 2

/*
 * Start-up recovery, then starts nworkers workers (0: the number of cores) and the reaper
 * ticking every interval_ms. A worker's claim is a lease of lease_ms, renewed by the reaper
 * while the step runs; a process that dies loses its sessions to the others once its leases
 * end. data_dir locates the blob store. Call after the database is ready and plugins are
 * loaded.
 */
enum dh_err dh_pipeline_start(const char *data_dir, unsigned nworkers, unsigned interval_ms,
			      unsigned lease_ms, struct dh_error *err);

/*
 * Orderly stop: cancels running steps, joins every thread, and leaves the sessions that were
 * processing recoverable (their leases end now; the next start queues them again without
 * counting the interrupted run). Call after the HTTP server stopped.
 */
void dh_pipeline_stop(void);

/* Wakes a worker: a session was queued. Never blocks. */
void dh_pipeline_kick(void);

/* Asks the worker running session id (if any) to stop its step (the session timed out). */
void dh_pipeline_cancel(const char *id);

/* Runs one reaper pass now on the calling thread's connection (tests, start-up). */
void dh_pipeline_reap(void);

#endif
