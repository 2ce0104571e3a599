/*
 * The delivery-step plugin interface, version DH_PLUGIN_ABI. A step is a struct dh_plugin:
 * built-in steps (link, exec, mesh_smp) are compiled in and listed in plugins/loader.c;
 * others are shared objects in --plugin-dir that export
 *
 *     const struct dh_plugin *dh_plugin_entry(void);
 *
 * The loader refuses an object whose entry is missing, whose abi differs from DH_PLUGIN_ABI,
 * whose name is empty, longer than DH_PLUGIN_NAME_MAX or already taken, or whose init fails.
 * This header is self-contained: a plugin needs only it and jansson, and calls back into the
 * server only through the function pointers of its context, so it links against nothing of
 * devicehubd.
 *
 * How a step runs: a worker thread calls run(ctx) once per session that reaches the step,
 * with the session's facts, the target image and the step's params. Several workers may run
 * the same plugin at once, so run must be re-entrant (keep per-run state on the stack or in
 * ctx->step_state). run must not block past ctx->deadline_ms and should call
 * ctx->cancelled(ctx) at least every few hundred milliseconds while it waits; when that says
 * true, stop and return DH_STEP_CANCELLED. Results go into the session's payload with
 * ctx->merge (persisted and published at once, so the dashboard and the device see them),
 * progress with ctx->progress. On failure, return DH_STEP_FAIL and write one sentence into
 * ctx->error (what failed, not a stack trace): the session ends in `fail` with error
 * {"code": "step_failed", "detail": "Step N (name) failed: <sentence>"}; a step may name a more
 * precise code in ctx->error_code.
 *
 * Lifecycle: init() once after loading (may be NULL), fini() once at shutdown after every run
 * has returned (may be NULL). Neither is called concurrently with anything else.
 */
#ifndef DH_PLUGIN_H
#define DH_PLUGIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bumped on any incompatible change of struct dh_plugin or struct dh_step_ctx. */
#define DH_PLUGIN_ABI 1

/* Longest plugin name: the names appear in procedures' steps and in error sentences. */
#define DH_PLUGIN_NAME_MAX 64

/* Room for a step's error sentence, NUL included. */
#define DH_STEP_ERROR_MAX 400
/* Room for a step's machine error code, NUL included. */
#define DH_STEP_CODE_MAX 40

/* What run returns. */
enum dh_step_result {
	DH_STEP_OK = 0,        /* done; the next step runs */
	DH_STEP_FAIL = 1,      /* failed; ctx->error says why; the session fails */
	DH_STEP_CANCELLED = 2, /* ctx->cancelled() said stop (deadline, timeout, shutdown) */
};

/* The symbol a plugin shared object exports. */
#define DH_PLUGIN_ENTRY "dh_plugin_entry"

struct dh_step_ctx;

/* Entry point type of a plugin shared object. */
typedef const struct dh_plugin *(*dh_plugin_entry_fn)(void);

struct dh_plugin {
	uint32_t abi;     /* DH_PLUGIN_ABI the plugin was built with */
	const char *name; /* the step name used in procedures, [a-z0-9_]{1,64} */
	bool admin_only;  /* only an admin may configure the step (it runs programs, ...) */
	/* Once after loading; 0 on success, otherwise the plugin is refused. */
	int (*init)(void);
	/* Runs the step for one session; see above. */
	enum dh_step_result (*run)(struct dh_step_ctx *ctx);
	/* Once at shutdown. */
	void (*fini)(void);
};

/*
 * What a step sees. Everything is owned by the server and valid during run only; strings are
 * never NULL ("" when not applicable).
 */
struct dh_step_ctx {
	uint32_t abi; /* DH_PLUGIN_ABI of the server */

	/* the session */
	const char *session_id;
	const char *device_id;       /* the device's own name (device twin), "" when none */
	const char *model_id;        /* uuid */
	const char *current_version; /* what the device runs, "" when unknown */
	const char *target_version;
	const char *target_firmware_id;
	const char *base_url; /* absolute base of links, e.g. "https://hub.example:8443" */

	/* the target image: an immutable file; open it read-only */
	const char *image_path;
	uint64_t image_size;
	const char *image_sha256; /* 64 lower-case hex digits */

	/* the step */
	unsigned step_index;   /* 0-based position in the procedure */
	const char *step_name; /* the step's "name" in the procedure, else the plugin name */
	const json_t *params;  /* the step's params object (borrowed; {} when none) */
	const json_t *payload; /* the payload so far (borrowed, read-only; updated by merge) */
	int64_t deadline_ms;   /* CLOCK_MONOTONIC milliseconds by which run must return */

	/*
	 * Merges the keys of obj (a JSON object, borrowed) into the session's payload, as RFC 7396
	 * merge patch: keys replace, nested objects merge, null deletes a key. Persisted and
	 * published as a session.progress event before it returns. 0 on success, -1 when the
	 * session is no longer processing (timed out) or the database failed.
	 */
	int (*merge)(struct dh_step_ctx *ctx, json_t *obj);
	/*
	 * Reports progress without touching other keys: sets payload.progress to
	 * {"step": name, "fraction": 0..1, "what": what}. Throttle calls to a few per second.
	 */
	void (*progress)(struct dh_step_ctx *ctx, double fraction, const char *what);
	/* True when the step must stop now: deadline passed, session timed out, or shutdown.
	 * Safe to call from a thread of the plugin's own during run (mesh_smp watches with one);
	 * merge and progress are for the calling worker thread only. */
	bool (*cancelled)(struct dh_step_ctx *ctx);

	/* One sentence for DH_STEP_FAIL (snprintf into it). */
	char error[DH_STEP_ERROR_MAX];

	void *step_state; /* free for the plugin during one run */
	void *priv;       /* the server's; do not touch */

	/*
	 * Optional machine code for DH_STEP_FAIL, [a-z0-9_]{1,39} (e.g. "partial_failure"), that
	 * replaces "step_failed" in the session's error; left empty, "step_failed". Last in the
	 * struct so that plugins built before it keep working with ABI 1.
	 */
	char error_code[DH_STEP_CODE_MAX];
};

#endif
