/*
 * The step implementations a worker can run: the built-in ones compiled into devicehubd and
 * those loaded with dlopen from --plugin-dir at start-up. Loading happens once, before any
 * worker starts, and the set is read-only afterwards, so look-ups need no lock.
 */
#ifndef DH_PLUGINS_LOADER_H
#define DH_PLUGINS_LOADER_H

#include "core/err.h"
#include "plugins/dh_plugin.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The built-in steps (plugins/link.c, plugins/exec.c). */
extern const struct dh_plugin dh_plugin_link;
extern const struct dh_plugin dh_plugin_exec;

/*
 * The exec step's params check, run when a procedure is saved: program an absolute path,
 * args at most 64 strings, timeout a positive integer (seconds), nothing else. True when
 * params (NULL: {}) are acceptable; otherwise why (cap bytes) names the key.
 */
bool dh_exec_validate(const json_t *params, char *why, size_t cap);

/* Most shared objects loaded from --plugin-dir; a deployment has a handful. */
#define DH_PLUGINS_MAX 64

/*
 * Calls init of the built-in steps, then loads every *.so in dir (NULL or "": none), in name
 * order. An object that cannot be loaded, lacks dh_plugin_entry, has another abi, a bad or
 * taken name, or whose init fails is refused with an error log line naming the file and the
 * reason; the others stay loaded. Returns DH_E_IO only when dir cannot be read.
 */
enum dh_err dh_plugins_load(const char *dir, struct dh_error *err);

/* Calls fini of every step and unloads the shared objects (after the workers stopped). */
void dh_plugins_unload(void);

/* The implementation of step name, or NULL (e.g. mesh_smp before its step is built in). */
const struct dh_plugin *dh_plugin_find(const char *name);

/* True when a plugin called name was loaded from --plugin-dir; *admin_only from it. */
bool dh_plugin_loaded(const char *name, bool *admin_only);

#endif
