/*
 * The names of the delivery steps this server can run: the built-in ones and those loaded
 * from --plugin-dir. The API checks procedures' steps against it.
 */
#ifndef DH_PLUGINS_REGISTRY_H
#define DH_PLUGINS_REGISTRY_H

#include <stdbool.h>

/* True when a step called name can run here; *admin_only tells whether only an admin may
 * configure it (exec runs programs on the server). */
bool dh_plugin_known(const char *name, bool *admin_only);

#endif
