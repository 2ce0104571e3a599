/*
 * The mesh_smp delivery step: params parsing and validation, the conversion of the distributor
 * driver's snapshots into payload.mesh, and the run on a worker thread behind the plugin
 * interface of plugins/dh_plugin.h. Talks to the distributor only through smp/dfd.h and to the
 * session only through its step context; it never touches the database or HTTP.
 */
#include "plugins/mesh_smp.h"
#include "core/text.h"
#include "core/util.h"
#include "plugins/dh_plugin.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest serial device path accepted; struct dh_dfd_params holds 256 bytes with the NUL. */
#define DEVICE_MAX (sizeof(((struct dh_dfd_params *)0)->device) - 1)
#define HOST_MAX   (sizeof(((struct dh_dfd_params *)0)->host) - 1)

static enum dh_err bad(char *why, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum dh_err bad(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (why && cap) {
		va_start(ap, fmt);
		vsnprintf(why, cap, fmt, ap);
		va_end(ap);
	}
	return DH_E_INVALID;
}

/*
 * Unsigned knobs, set by offset into struct dh_dfd_params. zero_ok admits 0 below min
 * ("use the formula" for deadlines, "no cap" for mtu and window). The upper bounds keep a
 * typo from turning into a step that never ends: a day for a deadline, a week for the whole
 * distribution (a real mesh moves about 100 B/s), ten minutes for any single wait.
 */
static const struct knob {
	const char *key;
	size_t off;
	unsigned min, max;
	bool zero_ok;
} knobs[] = {
	{ "app_idx", offsetof(struct dh_dfd_params, app_idx), 0, 0xfff, false },
	{ "ttl", offsetof(struct dh_dfd_params, ttl), 0, 255, false },
	{ "timeout_base", offsetof(struct dh_dfd_params, timeout_base), 0, 0xffff, false },
	{ "xfer_mode", offsetof(struct dh_dfd_params, xfer_mode), 1, 2, false },
	{ "poll_ms", offsetof(struct dh_dfd_params, poll_ms), 20, 600000, false },
	{ "fast_poll_ms", offsetof(struct dh_dfd_params, fast_poll_ms), 20, 600000, false },
	{ "probe_tries", offsetof(struct dh_dfd_params, probe_tries), 1, 20, false },
	{ "idle_deadline_ms", offsetof(struct dh_dfd_params, idle_deadline_ms), 1000, 86400000,
	  true },
	{ "upload_deadline_ms", offsetof(struct dh_dfd_params, upload_deadline_ms), 1000, 86400000,
	  true },
	{ "distribute_deadline_ms", offsetof(struct dh_dfd_params, distribute_deadline_ms), 1000,
	  604800000, true },
	{ "stall_ms", offsetof(struct dh_dfd_params, stall_ms), 1000, 86400000, false },
	{ "verify_wait_ms", offsetof(struct dh_dfd_params, verify_wait_ms), 0, 3600000, false },
	{ "smp_timeout_ms", offsetof(struct dh_dfd_params, smp.timeout_ms), 50, 600000, false },
	{ "shell_timeout_ms", offsetof(struct dh_dfd_params, smp.shell_timeout_ms), 50, 600000,
	  false },
	{ "chunk_timeout_ms", offsetof(struct dh_dfd_params, smp.chunk_timeout_ms), 50, 600000,
	  false },
	{ "rto_ms", offsetof(struct dh_dfd_params, smp.rto_ms), 10, 60000, false },
	{ "retries", offsetof(struct dh_dfd_params, smp.retries), 0, 20, false },
	{ "mtu", offsetof(struct dh_dfd_params, smp.mtu), 128, DH_SMP_FRAME_MAX, true },
	{ "window", offsetof(struct dh_dfd_params, smp.window), 1, DH_SMP_WINDOW_MAX, true },
};

static const struct knob *find_knob(const char *key)
{
	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
		if (strcmp(knobs[i].key, key) == 0)
			return &knobs[i];
	}
	return NULL;
}

/* A JSON integer in [min, max] (or 0 when zero_ok); booleans and reals are not numbers here. */
static bool get_uint(const json_t *v, unsigned min, unsigned max, bool zero_ok, unsigned *out)
{
	json_int_t n;

	if (!json_is_integer(v))
		return false;
	n = json_integer_value(v);
	if (n == 0 && zero_ok) {
		*out = 0;
		return true;
	}
	if (n < (json_int_t)min || n > (json_int_t)max)
		return false;
	*out = (unsigned)n;
	return true;
}

static enum dh_err set_knob(const struct knob *k, const json_t *v, struct dh_dfd_params *p,
			    char *why, size_t cap)
{
	unsigned n;
	char *field = (char *)p + k->off;

	if (!get_uint(v, k->min, k->max, k->zero_ok, &n)) {
		if (k->zero_ok)
			return bad(why, cap, "%s: must be an integer, 0 or %u..%u", k->key, k->min,
				   k->max);
		return bad(why, cap, "%s: must be an integer %u..%u", k->key, k->min, k->max);
	}
	/* smp.mtu is a size_t; every other knob is an unsigned. */
	if (k->off == offsetof(struct dh_dfd_params, smp.mtu)) {
		size_t s = n;

		memcpy(field, &s, sizeof(s));
	} else {
		memcpy(field, &n, sizeof(n));
	}
	return DH_OK;
}

/* Printable, no spaces, no control bytes: a host name, address literal or device path. */
static bool plain_text(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch <= 0x20 || ch == 0x7f)
			return false;
	}
	return true;
}

static bool digits_u(const char *s, size_t n, unsigned max, unsigned *out)
{
	unsigned long v = 0;

	if (n == 0 || n > 10)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = (unsigned)v;
	return true;
}

static enum dh_err set_host(struct dh_dfd_params *p, const char *s, size_t n, const char *key,
			    char *why, size_t cap)
{
	char tmp[sizeof(p->host)];

	if (n == 0 || n > HOST_MAX)
		return bad(why, cap, "%s: host must be 1..%zu characters", key, HOST_MAX);
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (!plain_text(tmp, HOST_MAX))
		return bad(why, cap, "%s: host must not contain spaces or control characters", key);
	memcpy(p->host, tmp, n + 1);
	return DH_OK;
}

static enum dh_err set_device(struct dh_dfd_params *p, const char *s, size_t n, const char *key,
			      char *why, size_t cap)
{
	char tmp[sizeof(p->device)];

	if (n == 0 || n > DEVICE_MAX || s[0] != '/')
		return bad(why, cap,
			   "%s: device must be an absolute path of at most %zu characters", key,
			   DEVICE_MAX);
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (!plain_text(tmp, DEVICE_MAX))
		return bad(why, cap, "%s: device must not contain spaces or control characters",
			   key);
	memcpy(p->device, tmp, n + 1);
	return DH_OK;
}

/* The baud rates the serial transport can set (smp/serial.c). */
static const unsigned bauds[] = {
	9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000
};

static enum dh_err set_baud(struct dh_dfd_params *p, const json_t *v, const char *key, char *why,
			    size_t cap)
{
	unsigned b = 0;

	if (json_is_integer(v) && get_uint(v, 1, 1000000, false, &b)) {
		for (size_t i = 0; i < sizeof(bauds) / sizeof(bauds[0]); i++) {
			if (bauds[i] == b) {
				p->baud = b;
				return DH_OK;
			}
		}
	}
	return bad(why, cap,
		   "%s: must be one of 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, "
		   "1000000",
		   key);
}

/* "HOST", "HOST:PORT", "[V6]", "[V6]:PORT" or a bare IPv6 literal (more than one colon). */
static enum dh_err udp_from_string(struct dh_dfd_params *p, const char *s, char *why, size_t cap)
{
	const char *host = s, *colon, *port = NULL;
	size_t hl;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || (rb[1] != '\0' && rb[1] != ':'))
			return bad(why, cap, "udp: expected \"[ADDRESS]:PORT\"");
		host = s + 1;
		hl = (size_t)(rb - host);
		if (rb[1] == ':')
			port = rb + 2;
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			colon = NULL; /* a bare IPv6 literal */
		hl = colon ? (size_t)(colon - s) : strlen(s);
		if (colon)
			port = colon + 1;
	}
	if (port && !digits_u(port, strlen(port), 65535, &p->port))
		return bad(why, cap, "udp: port must be 1..65535");
	if (port && p->port == 0)
		return bad(why, cap, "udp: port must be 1..65535");
	return set_host(p, host, hl, "udp", why, cap);
}

/* "DEVICE" or "DEVICE:BAUD"; the last colon followed by digits only separates the rate. */
static enum dh_err serial_from_string(struct dh_dfd_params *p, const char *s, char *why, size_t cap)
{
	const char *colon = strrchr(s, ':');
	size_t dl = strlen(s);
	unsigned b;
	json_t *jb;
	enum dh_err rc;

	if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
		if (!digits_u(colon + 1, strlen(colon + 1), 4000000, &b))
			return bad(why, cap, "serial: baud rate out of range");
		jb = json_integer(b);
		if (!jb)
			return bad(why, cap, "serial: out of memory");
		rc = set_baud(p, jb, "serial", why, cap);
		json_decref(jb);
		if (rc != DH_OK)
			return rc;
		dl = (size_t)(colon - s);
	}
	return set_device(p, s, dl, "serial", why, cap);
}

/* {"host", "port"} or {"device", "baud"} under the key "udp" or "serial". */
static enum dh_err transport_from_object(struct dh_dfd_params *p, const json_t *o, bool udp,
					 char *why, size_t cap)
{
	const char *k, *top = udp ? "udp" : "serial";
	const json_t *v;
	char key[64];
	bool have = false;

	json_object_foreach((json_t *)o, k, v)
	{
		snprintf(key, sizeof(key), "%s.%.*s", top, DH_TEXT_CUT(k, 40));
		if (udp && strcmp(k, "host") == 0) {
			if (!json_is_string(v))
				return bad(why, cap, "%s: must be a string", key);
			if (set_host(p, json_string_value(v), strlen(json_string_value(v)), key,
				     why, cap) != DH_OK)
				return DH_E_INVALID;
			have = true;
		} else if (udp && strcmp(k, "port") == 0) {
			if (!get_uint(v, 1, 65535, false, &p->port))
				return bad(why, cap, "%s: must be an integer 1..65535", key);
		} else if (!udp && strcmp(k, "device") == 0) {
			if (!json_is_string(v))
				return bad(why, cap, "%s: must be a string", key);
			if (set_device(p, json_string_value(v), strlen(json_string_value(v)), key,
				       why, cap) != DH_OK)
				return DH_E_INVALID;
			have = true;
		} else if (!udp && strcmp(k, "baud") == 0) {
			if (set_baud(p, v, key, why, cap) != DH_OK)
				return DH_E_INVALID;
		} else {
			return bad(why, cap, "%s: unknown key", key);
		}
	}
	if (!have)
		return bad(why, cap, "%s.%s: required", top, udp ? "host" : "device");
	return DH_OK;
}

static enum dh_err receivers_from_json(struct dh_dfd_params *p, const json_t *arr, char *why,
				       size_t cap)
{
	const json_t *item, *v;
	const char *k;
	size_t i, j;
	unsigned addr, idx;
	bool have_addr;

	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return bad(why, cap,
			   "receivers: must be a non-empty list of {\"addr\", \"img_idx\"}");
	if (json_array_size(arr) > DH_DFD_RECEIVERS_MAX)
		return bad(why, cap, "receivers: at most %d receivers", DH_DFD_RECEIVERS_MAX);
	p->n_receivers = 0;
	json_array_foreach(arr, i, item)
	{
		if (!json_is_object(item))
			return bad(why, cap,
				   "receivers[%zu]: must be an object {\"addr\", \"img_idx\"}", i);
		have_addr = false;
		idx = 0;
		addr = 0;
		json_object_foreach((json_t *)item, k, v)
		{
			if (strcmp(k, "addr") == 0) {
				if (!get_uint(v, 1, 0x7fff, false, &addr))
					return bad(why, cap,
						   "receivers[%zu].addr: must be a unicast address "
						   "1..0x7fff",
						   i);
				have_addr = true;
			} else if (strcmp(k, "img_idx") == 0) {
				if (!get_uint(v, 0, 255, false, &idx))
					return bad(
						why, cap,
						"receivers[%zu].img_idx: must be an integer 0..255",
						i);
			} else {
				return bad(why, cap, "receivers[%zu].%.*s: unknown key", i,
					   DH_TEXT_CUT(k, 40));
			}
		}
		if (!have_addr)
			return bad(why, cap, "receivers[%zu].addr: required", i);
		for (j = 0; j < p->n_receivers; j++) {
			if (p->receivers[j].addr == addr)
				return bad(why, cap,
					   "receivers[%zu].addr: 0x%04x is already listed at "
					   "receivers[%zu]",
					   i, addr, j);
		}
		p->receivers[p->n_receivers].addr = (uint16_t)addr;
		p->receivers[p->n_receivers].img_idx = (uint8_t)idx;
		p->n_receivers++;
	}
	return DH_OK;
}

static enum dh_err hex_into(char *dst, size_t dst_cap, const json_t *v, const char *key,
			    size_t max_bytes, bool allow_empty, char *why, size_t cap)
{
	const char *s = json_string_value(v);
	size_t n;

	if (!s)
		return bad(why, cap, "%s: must be a hex string", key);
	n = strlen(s);
	if ((n == 0 && !allow_empty) || n % 2 != 0 || n / 2 > max_bytes || n >= dst_cap ||
	    strspn(s, "0123456789abcdefABCDEF") != n)
		return bad(why, cap, "%s: must be %s..%zu bytes as an even number of hex digits",
			   key, allow_empty ? "0" : "1", max_bytes);
	memcpy(dst, s, n + 1);
	return DH_OK;
}

enum dh_err dh_mesh_smp_params_from_json(const json_t *params, struct dh_dfd_params *p, char *why,
					 size_t cap)
{
	const json_t *v, *udp, *serial, *tr, *host, *port, *device, *baud;
	const struct knob *kn;
	const char *k;
	int forms;

	dh_dfd_params_default(p);
	if (why && cap)
		why[0] = '\0';
	if (params && !json_is_object(params))
		return bad(why, cap, "params: must be an object");

	udp = params ? json_object_get(params, "udp") : NULL;
	serial = params ? json_object_get(params, "serial") : NULL;
	tr = params ? json_object_get(params, "transport") : NULL;
	host = params ? json_object_get(params, "host") : NULL;
	port = params ? json_object_get(params, "port") : NULL;
	device = params ? json_object_get(params, "device") : NULL;
	baud = params ? json_object_get(params, "baud") : NULL;
	forms = (udp != NULL) + (serial != NULL) + (tr != NULL);
	if (forms == 0)
		return bad(why, cap,
			   "transport: required: \"udp\": \"HOST[:PORT]\", \"serial\": "
			   "\"DEVICE[:BAUD]\" or \"transport\" with host/port or device/baud");
	if (forms > 1)
		return bad(why, cap,
			   "transport: give only one of \"transport\", \"udp\" and "
			   "\"serial\"");

	if (tr) {
		const char *t = json_string_value(tr);

		if (!t || (strcmp(t, "udp") != 0 && strcmp(t, "serial") != 0))
			return bad(why, cap, "transport: must be \"udp\" or \"serial\"");
		p->transport = strcmp(t, "udp") == 0 ? DH_SMP_TR_UDP : DH_SMP_TR_SERIAL;
		if (p->transport == DH_SMP_TR_UDP) {
			if (device || baud)
				return bad(why, cap, "%s: only for \"transport\": \"serial\"",
					   device ? "device" : "baud");
			if (!json_is_string(host))
				return bad(why, cap,
					   "host: required string with \"transport\": "
					   "\"udp\"");
			if (set_host(p, json_string_value(host), strlen(json_string_value(host)),
				     "host", why, cap) != DH_OK)
				return DH_E_INVALID;
			if (port && !get_uint(port, 1, 65535, false, &p->port))
				return bad(why, cap, "port: must be an integer 1..65535");
		} else {
			if (host || port)
				return bad(why, cap, "%s: only for \"transport\": \"udp\"",
					   host ? "host" : "port");
			if (!json_is_string(device))
				return bad(why, cap,
					   "device: required string with \"transport\": "
					   "\"serial\"");
			if (set_device(p, json_string_value(device),
				       strlen(json_string_value(device)), "device", why,
				       cap) != DH_OK)
				return DH_E_INVALID;
			if (baud && set_baud(p, baud, "baud", why, cap) != DH_OK)
				return DH_E_INVALID;
		}
	} else {
		if (host || port || device || baud)
			return bad(why, cap, "%s: only with \"transport\"; use \"%s\" alone",
				   host     ? "host"
				   : port   ? "port"
				   : device ? "device"
					    : "baud",
				   udp ? "udp" : "serial");
		p->transport = udp ? DH_SMP_TR_UDP : DH_SMP_TR_SERIAL;
		v = udp ? udp : serial;
		if (json_is_string(v)) {
			if ((udp ? udp_from_string(p, json_string_value(v), why, cap)
				 : serial_from_string(p, json_string_value(v), why, cap)) != DH_OK)
				return DH_E_INVALID;
		} else if (json_is_object(v)) {
			if (transport_from_object(p, v, udp != NULL, why, cap) != DH_OK)
				return DH_E_INVALID;
		} else {
			return bad(why, cap, "%s: must be a string %s or an object",
				   udp ? "udp" : "serial",
				   udp ? "\"HOST[:PORT]\"" : "\"DEVICE[:BAUD]\"");
		}
	}

	json_object_foreach((json_t *)params, k, v)
	{
		if (!strcmp(k, "udp") || !strcmp(k, "serial") || !strcmp(k, "transport") ||
		    !strcmp(k, "host") || !strcmp(k, "port") || !strcmp(k, "device") ||
		    !strcmp(k, "baud"))
			continue;
		if (strcmp(k, "receivers") == 0) {
			if (receivers_from_json(p, v, why, cap) != DH_OK)
				return DH_E_INVALID;
		} else if (strcmp(k, "group") == 0) {
			if (!get_uint(v, 0, 0xffff, false, &p->group) ||
			    (p->group != 0 && p->group < 0x8000))
				return bad(
					why, cap,
					"group: must be 0 (unicast) or a group or virtual address "
					"0x8000..0xffff");
		} else if (strcmp(k, "policy") == 0) {
			const char *s = json_string_value(v);

			if (s && strcmp(s, "apply") == 0)
				p->policy = DH_DFD_POLICY_APPLY;
			else if (s && strcmp(s, "verify") == 0)
				p->policy = DH_DFD_POLICY_VERIFY;
			else
				return bad(why, cap, "policy: must be \"apply\" or \"verify\"");
		} else if (strcmp(k, "fwid") == 0) {
			if (hex_into(p->fwid_hex, sizeof(p->fwid_hex), v, "fwid", 16, false, why,
				     cap) != DH_OK)
				return DH_E_INVALID;
		} else if (strcmp(k, "metadata") == 0) {
			if (hex_into(p->metadata_hex, sizeof(p->metadata_hex), v, "metadata", 32,
				     true, why, cap) != DH_OK)
				return DH_E_INVALID;
		} else if (strcmp(k, "allow_partial") == 0 || strcmp(k, "preempt") == 0) {
			if (!json_is_boolean(v))
				return bad(why, cap, "%s: must be true or false", k);
			if (k[0] == 'a')
				p->allow_partial = json_is_true(v);
			else
				p->preempt = json_is_true(v);
		} else if (strcmp(k, "timeout") == 0) {
			/* The pipeline's step time limit in seconds (pipeline.c reads it). */
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > DH_MESH_SMP_TIMEOUT_MAX)
				return bad(why, cap, "timeout: must be an integer 1..%d (seconds)",
					   DH_MESH_SMP_TIMEOUT_MAX);
		} else if ((kn = find_knob(k)) != NULL) {
			if (set_knob(kn, v, p, why, cap) != DH_OK)
				return DH_E_INVALID;
		} else {
			return bad(why, cap, "%.*s: unknown key", DH_TEXT_CUT(k, 60));
		}
	}
	if (p->n_receivers == 0)
		return bad(why, cap, "receivers: required, e.g. [{\"addr\": 2, \"img_idx\": 0}]");
	return DH_OK;
}

bool dh_mesh_smp_validate(const json_t *params, char *why, size_t cap)
{
	struct dh_dfd_params *p = malloc(sizeof(*p));
	bool ok;

	if (!p) {
		bad(why, cap, "params: out of memory");
		return false;
	}
	ok = dh_mesh_smp_params_from_json(params, p, why, cap) == DH_OK;
	free(p);
	return ok;
}

json_t *dh_mesh_smp_report_to_json(const struct dh_dfd_report *r)
{
	json_t *out = NULL, *arr = NULL, *item;
	size_t i;

	arr = json_array();
	if (!arr)
		goto out;
	for (i = 0; i < r->n_receivers; i++) {
		const struct dh_dfd_receiver_state *s = &r->receivers[i];

		item = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i}", "addr", (int)s->addr, "phase",
				 s->phase, "status", s->status, "progress", (int)s->progress,
				 "blob_status", s->blob_status, "img_idx", s->img_idx);
		if (!item || json_array_append_new(arr, item) != 0)
			goto out;
	}
	out = json_pack("{s:i, s:i, s:i, s:s, s:i, s:s, s:{s:I, s:I}, s:O}", "phase", r->phase,
			"status", r->status, "progress", (int)r->progress, "stage",
			r->stage ? r->stage : "", "slot_idx", r->slot_idx, "fwid", r->fwid,
			"upload", "off", (json_int_t)r->upload_off, "len",
			(json_int_t)r->upload_len, "receivers", arr);
out:
	json_decref(arr);
	return out;
}

/*
 * Writes of payload.mesh are throttled to one per DH_MESH_SMP_WRITE_MS, except that a change
 * of DFD phase, stage or any receiver's phase or status is written at once: a reader polling
 * GET must see every phase, and a database write per upload chunk would cost more than the
 * upload itself.
 */
struct mesh_progress {
	dh_mesh_smp_publish_fn publish;
	void *ctx;
	json_t *written; /* last payload.mesh handed to publish */
	json_t *pending; /* newer snapshot held back by the throttle */
	unsigned pending_progress;
	int64_t written_ms;
};

/* Overall step progress: the upload is the first tenth, the mesh transfer the rest. */
static unsigned step_progress(const struct dh_dfd_report *r)
{
	if (r->phase < 0 || (r->phase == 0 && r->progress == 0)) {
		if (r->upload_len == 0)
			return 0;
		return (unsigned)(r->upload_off * 10u / r->upload_len);
	}
	return 10u + (r->progress > 100 ? 100u : r->progress) * 90u / 100u;
}

static bool receivers_moved(const json_t *a, const json_t *b)
{
	const json_t *ra = json_object_get(a, "receivers"), *rb = json_object_get(b, "receivers");
	size_t i;

	if (json_array_size(ra) != json_array_size(rb))
		return true;
	for (i = 0; i < json_array_size(ra); i++) {
		const json_t *x = json_array_get(ra, i), *y = json_array_get(rb, i);

		if (!json_equal(json_object_get(x, "phase"), json_object_get(y, "phase")) ||
		    !json_equal(json_object_get(x, "status"), json_object_get(y, "status")))
			return true;
	}
	return false;
}

static void flush(struct mesh_progress *m)
{
	if (!m->pending)
		return;
	m->publish(m->ctx, m->pending, m->pending_progress);
	json_decref(m->written);
	m->written = m->pending;
	m->pending = NULL;
	m->written_ms = dh_mono_ms();
}

static void on_report(void *ctx, const struct dh_dfd_report *r)
{
	struct mesh_progress *m = ctx;
	json_t *j = dh_mesh_smp_report_to_json(r);
	const json_t *w = m->written;

	if (!j)
		return; /* out of memory: skip this snapshot, the next one carries the state */
	if (w && json_equal(j, w)) {
		json_decref(j);
		json_decref(m->pending);
		m->pending = NULL;
		return;
	}
	json_decref(m->pending);
	m->pending = j;
	m->pending_progress = step_progress(r);
	if (!w || dh_mono_ms() - m->written_ms >= DH_MESH_SMP_WRITE_MS ||
	    !json_equal(json_object_get(j, "phase"), json_object_get(w, "phase")) ||
	    !json_equal(json_object_get(j, "stage"), json_object_get(w, "stage")) ||
	    receivers_moved(j, w))
		flush(m);
}

enum dh_dfd_result dh_mesh_smp_execute(const json_t *params, const char *image_path,
				       atomic_int *cancel, dh_mesh_smp_publish_fn publish,
				       void *ctx, struct dh_dfd_error *err)
{
	struct dh_dfd_params *p = NULL;
	struct mesh_progress m = { .publish = publish, .ctx = ctx };
	char why[DH_MESH_SMP_WHY_MAX];
	enum dh_dfd_result res;

	memset(err, 0, sizeof(*err));
	p = malloc(sizeof(*p));
	if (!p) {
		res = DH_DFD_E_INVALID;
		snprintf(err->detail, sizeof(err->detail), "out of memory");
		goto out;
	}
	/* Checked when the procedure was saved, but a row may predate the check. */
	if (dh_mesh_smp_params_from_json(params, p, why, sizeof(why)) != DH_OK) {
		res = DH_DFD_E_INVALID;
		snprintf(err->detail, sizeof(err->detail), "params: %s", why);
		goto out;
	}
	res = dh_dfd_run(p, image_path, publish ? on_report : NULL, &m, cancel, err);
	if (publish)
		flush(&m); /* the final state, whatever the throttle held back */
out:
	if (res != DH_DFD_OK) {
		err->result = res;
		snprintf(err->code, sizeof(err->code), "%s", dh_dfd_code(res));
	}
	json_decref(m.written);
	json_decref(m.pending);
	free(p);
	return res;
}

/*
 * The driver polls a flag; the step context answers a question. A watcher thread asks the
 * context every DH_MESH_SMP_WATCH_MS and raises the flag, so that a session timeout or a
 * shutdown stops the distribution (with "dfd cancel") within a fraction of a second even while
 * the driver sits in a long wait.
 */
struct watch {
	struct dh_step_ctx *ctx;
	atomic_int cancel; /* written by the watcher, read by the driver: atomic */
	bool done;         /* under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void *watch_main(void *arg)
{
	struct watch *w = arg;
	struct timespec ts;

	pthread_mutex_lock(&w->lock);
	while (!w->done) {
		if (w->ctx->cancelled(w->ctx)) {
			atomic_store(&w->cancel, 1);
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += DH_MESH_SMP_WATCH_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&w->cond, &w->lock, &ts);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void publish_ctx(void *arg, json_t *mesh, unsigned progress)
{
	struct dh_step_ctx *ctx = arg;
	json_t *obj = json_pack("{s:O}", "mesh", mesh);

	/* A failed merge means the session timed out or the database failed; the watcher
	 * notices the former, and the next snapshot retries the latter. */
	if (obj)
		ctx->merge(ctx, obj);
	json_decref(obj);
	ctx->progress(ctx, progress / 100.0, json_string_value(json_object_get(mesh, "stage")));
}

static enum dh_step_result mesh_run(struct dh_step_ctx *ctx)
{
	struct dh_dfd_error err;
	struct watch w = { .ctx = ctx };
	pthread_condattr_t ca;
	pthread_t th;
	bool watching = false;
	enum dh_dfd_result res;

	pthread_mutex_init(&w.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&th, NULL, watch_main, &w) != 0) {
		snprintf(ctx->error, sizeof(ctx->error),
			 "cannot start the cancellation watcher: %s", strerror(errno));
		res = DH_DFD_E_INVALID;
		goto out;
	}
	watching = true;
	res = dh_mesh_smp_execute(ctx->params, ctx->image_path, &w.cancel, publish_ctx, ctx, &err);
	if (res != DH_DFD_OK) {
		snprintf(ctx->error_code, sizeof(ctx->error_code), "%s", err.code);
		/* the driver's detail is well-formed and escaped; a cut keeps it so */
		snprintf(ctx->error, sizeof(ctx->error), "%.*s",
			 DH_TEXT_CUT(err.detail, sizeof(ctx->error) - 1));
	}
out:
	if (watching) {
		pthread_mutex_lock(&w.lock);
		w.done = true;
		pthread_cond_signal(&w.cond);
		pthread_mutex_unlock(&w.lock);
		pthread_join(th, NULL);
	}
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	if (res == DH_DFD_OK)
		return DH_STEP_OK;
	if (res == DH_DFD_E_CANCELLED && atomic_load(&w.cancel))
		return DH_STEP_CANCELLED;
	return DH_STEP_FAIL;
}

const struct dh_plugin dh_plugin_mesh_smp = {
	.abi = DH_PLUGIN_ABI,
	.name = "mesh_smp",
	.admin_only = false,
	.run = mesh_run,
};
