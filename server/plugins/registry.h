/*
 * The names of the delivery steps this server can run: the built-in ones and those loaded
 * from --plugin-dir. The API checks procedures' steps against it.
 */
#ifndef DH_PLUGINS_REGISTRY_H
#define DH_PLUGINS_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* True when a step called name can run here; *admin_only tells whether only an admin may
 * configure it (exec runs programs on the server). */
bool dh_plugin_known(const char *name, bool *admin_only);

/* Room for a params checker's sentence: the key path and the rule it breaks. */
#define DH_PLUGIN_WHY_MAX 200

/* True when params (may be NULL) suit the step called name; otherwise why (cap bytes) says
 * which key is wrong. Steps without a checker accept any params here and check at run time. */
bool dh_plugin_validate(const char *name, const json_t *params, char *why, size_t cap);

#endif
