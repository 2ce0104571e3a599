/*
 * Finds step implementations: a table of the built-in ones, and the shared objects loaded
 * from --plugin-dir with dlopen, each checked against DH_PLUGIN_ABI before it is used. The
 * loaded set is written once at start-up (before the workers) and only read afterwards.
 * To build a step in (e.g. mesh_smp), add its struct dh_plugin to builtin[] below.
 */
#include "plugins/loader.h"
#include "plugins/http_step.h"
#include "plugins/mesh_smp.h"

#include "log.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct dh_plugin *const builtin[] = {
	&dh_plugin_link,
	&dh_plugin_exec,
	&dh_plugin_mesh_smp,
	&dh_plugin_http,
};

#define NBUILTIN (sizeof(builtin) / sizeof(builtin[0]))

struct loaded {
	void *handle;
	const struct dh_plugin *p;
};

static struct loaded loaded[DH_PLUGINS_MAX];
static size_t nloaded;

static bool name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > DH_PLUGIN_NAME_MAX)
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

const struct dh_plugin *dh_plugin_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < NBUILTIN; i++) {
		if (strcmp(builtin[i]->name, name) == 0)
			return builtin[i];
	}
	for (size_t i = 0; i < nloaded; i++) {
		if (strcmp(loaded[i].p->name, name) == 0)
			return loaded[i].p;
	}
	return NULL;
}

bool dh_plugin_loaded(const char *name, bool *admin_only)
{
	for (size_t i = 0; name && i < nloaded; i++) {
		if (strcmp(loaded[i].p->name, name) == 0) {
			*admin_only = loaded[i].p->admin_only;
			return true;
		}
	}
	return false;
}

/* Loads one object; returns a reason to refuse it, or NULL when it was taken. */
static const char *load_one(const char *path, char *why, size_t size)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	dh_plugin_entry_fn entry;
	const struct dh_plugin *p;

	if (!h) {
		snprintf(why, size, "dlopen failed: %s", dlerror());
		return why;
	}
	*(void **)&entry = dlsym(h, DH_PLUGIN_ENTRY);
	p = entry ? entry() : NULL;
	if (!entry || !p)
		snprintf(why, size, "no %s symbol or it returned NULL", DH_PLUGIN_ENTRY);
	else if (p->abi != DH_PLUGIN_ABI)
		snprintf(why, size, "plugin abi %u differs from the server's %u", (unsigned)p->abi,
			 (unsigned)DH_PLUGIN_ABI);
	else if (!name_ok(p->name) || !p->run)
		snprintf(why, size, "the name must match [a-z0-9_]{1,64} and run must be set");
	else if (dh_plugin_find(p->name))
		snprintf(why, size, "a step called '%s' already exists", p->name);
	else if (nloaded == DH_PLUGINS_MAX)
		snprintf(why, size, "more than %d plugins", DH_PLUGINS_MAX);
	else if (p->init && p->init() != 0)
		snprintf(why, size, "its init failed");
	else
		why = NULL;
	if (why) {
		dlclose(h);
		return why;
	}
	loaded[nloaded].handle = h;
	loaded[nloaded].p = p;
	nloaded++;
	dh_info("plugin.loaded", "name=%s path=%s", p->name, path);
	return NULL;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

enum dh_err dh_plugins_load(const char *dir, struct dh_error *err)
{
	char *names[DH_PLUGINS_MAX * 4];
	size_t n = 0;
	DIR *d = NULL;
	struct dirent *e;
	char path[PATH_MAX], why[300];

	for (size_t i = 0; i < NBUILTIN; i++) {
		if (builtin[i]->init && builtin[i]->init() != 0)
			dh_error("plugin.refused", "name=%s reason=\"init failed\"",
				 builtin[i]->name);
	}
	if (!dir || !*dir)
		return DH_OK;
	d = opendir(dir);
	if (!d)
		return dh_error_set(err, DH_E_IO, "Cannot read --plugin-dir %s: %s", dir,
				    strerror(errno));
	while ((e = readdir(d)) && n < sizeof(names) / sizeof(names[0])) {
		size_t len = strlen(e->d_name);
		if (len > 3 && strcmp(e->d_name + len - 3, ".so") == 0 && e->d_name[0] != '.')
			names[n++] = strdup(e->d_name);
		if (n && !names[n - 1])
			n--;
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_names);
	for (size_t i = 0; i < n; i++) {
		int k = snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		const char *reason = NULL;
		if (k < 0 || (size_t)k >= sizeof(path))
			reason = "path too long";
		else
			reason = load_one(path, why, sizeof(why));
		if (reason)
			dh_error("plugin.refused", "path=%s reason=%s", path, reason);
		free(names[i]);
	}
	return DH_OK;
}

void dh_plugins_unload(void)
{
	for (size_t i = nloaded; i > 0; i--) {
		if (loaded[i - 1].p->fini)
			loaded[i - 1].p->fini();
		dlclose(loaded[i - 1].handle);
	}
	nloaded = 0;
	for (size_t i = 0; i < NBUILTIN; i++) {
		if (builtin[i]->fini)
			builtin[i]->fini();
	}
}
