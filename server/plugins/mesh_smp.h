/*
 * The mesh_smp delivery step: pushes a session's image to a Bluetooth-mesh firmware
 * distributor over SMP and drives the distribution with the driver in smp/dfd.h, writing its
 * progress into payload.mesh. This header exposes the pure parts, so that the API can check a
 * procedure's params at configuration time and the unit tests can walk them with tables: the
 * params parser and the report-to-JSON conversion. The step itself is registered with the
 * plugin registry; it owns nothing beyond one run.
 *
 * Params (a JSON object; unknown keys are rejected so that a typo is caught when the procedure
 * is saved, not when a session runs):
 *
 *   transport, in one of three equivalent spellings (exactly one):
 *     {"transport": "udp", "host": "192.0.2.7", "port": 1337}      port default 1337
 *     {"transport": "serial", "device": "/dev/ttyACM0", "baud": 115200}  baud default 115200
 *     {"udp": "192.0.2.7:1337"}  {"udp": "[2001:db8::7]:1337"}  {"serial": "/dev/ttyACM0:115200"}
 *     {"udp": {"host": "192.0.2.7", "port": 1337}}  {"serial": {"device": "...", "baud": ...}}
 *   receivers     [{"addr": 2, "img_idx": 0}, ...] required, 1..DH_DFD_RECEIVERS_MAX entries,
 *                 addr a unicast address 1..0x7fff, img_idx 0..255 (default 0), no duplicates
 *   app_idx       0..4095 (default 0)
 *   group         0 (unicast to each target, default) or a group/virtual address 0x8000..0xffff
 *   ttl           0..255 (default 255, the node's default TTL)
 *   timeout_base  0..65535 (default 0)
 *   xfer_mode     1 push (default) or 2 pull
 *   policy        "apply" (default) or "verify"
 *   fwid          hex, 1..16 bytes (default: first 8 bytes of the image's SHA-256)
 *   metadata      hex, 0..32 bytes (default none)
 *   allow_partial, preempt   booleans (default false)
 *   timing knobs, integers in milliseconds unless named otherwise, each bounded (see the
 *   table in mesh_smp.c): poll_ms, fast_poll_ms, probe_tries, idle_deadline_ms,
 *   upload_deadline_ms, distribute_deadline_ms, stall_ms, verify_wait_ms, smp_timeout_ms,
 *   shell_timeout_ms, chunk_timeout_ms, rto_ms, retries, mtu, window; and "timeout", the
 *   pipeline's time limit of the step in seconds.
 */
#ifndef DH_PLUGINS_MESH_SMP_H
#define DH_PLUGINS_MESH_SMP_H

#include "core/err.h"
#include "plugins/dh_plugin.h"
#include "smp/dfd.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Room for the longest "why" sentence of the parser: key path plus the rule broken. */
#define DH_MESH_SMP_WHY_MAX 200

/*
 * Fills p from params (NULL is treated as {}), starting from dh_dfd_params_default. Returns
 * DH_OK, or DH_E_INVALID with why (cap bytes, may be NULL) set to one sentence that starts
 * with the offending key, e.g. "receivers[1].addr: must be a unicast address 1..0x7fff".
 * Pure: no I/O, does not keep params.
 */
enum dh_err dh_mesh_smp_params_from_json(const json_t *params, struct dh_dfd_params *p, char *why,
					 size_t cap);

/* The registry's validation hook: true when params are acceptable; otherwise why says not. */
bool dh_mesh_smp_validate(const json_t *params, char *why, size_t cap);

/*
 * payload.mesh for a driver snapshot: {"phase", "status", "progress", "stage", "slot_idx",
 * "fwid", "upload": {"off", "len"}, "receivers": [{"addr", "phase", "status", "progress",
 * "blob_status", "img_idx"}]}. Returns a new reference, NULL when out of memory.
 */
json_t *dh_mesh_smp_report_to_json(const struct dh_dfd_report *r);

/* Largest "timeout" (seconds) a step may ask the pipeline for: ten years, as procedures. */
#define DH_MESH_SMP_TIMEOUT_MAX 315360000
/* How often the run asks its step context whether to stop (ms). */
#define DH_MESH_SMP_WATCH_MS 100

/* Least time between two progress writes that only move percentages (ms). */
#define DH_MESH_SMP_WRITE_MS 250

/*
 * Receives payload.mesh (borrowed: incref to keep it) and the step's overall progress in
 * percent (the upload is the first 10 %, the mesh transfer the rest).
 */
typedef void (*dh_mesh_smp_publish_fn)(void *ctx, json_t *mesh, unsigned progress);

/*
 * Runs one distribution of image_path with params on the calling thread (minutes to hours):
 * parses params, calls dh_dfd_run with cancel as its cancellation flag, and hands snapshots
 * to publish (may be NULL) whenever they change, throttled to one per DH_MESH_SMP_WRITE_MS
 * except for phase, stage and receiver changes; the final snapshot is always handed over.
 * On failure err holds dh_dfd_code(result) and the driver's detail, which names the driver
 * stage (the session's error adds the step's name).
 */
enum dh_dfd_result dh_mesh_smp_execute(const json_t *params, const char *image_path,
				       atomic_int *cancel, dh_mesh_smp_publish_fn publish,
				       void *ctx, struct dh_dfd_error *err);

/* The step as a built-in plugin (listed in plugins/loader.c). */
extern const struct dh_plugin dh_plugin_mesh_smp;

#endif
