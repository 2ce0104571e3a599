/*
 * libcoap glue of the CoAP image server (server.h): the context and its UDP endpoint, the
 * resources (/.well-known/core, and every other path through libcoap's "unknown resource",
 * which coap/answer.c sorts out), the duplicate cache, the thread, and the bridges from an
 * answer to the link table, the blob mappings (and the blob filler, for an image that is
 * not here yet) and the delivery tracker. The only file
 * besides coap/answer.c that includes libcoap.
 */
#include "coap/server.h"

#include "blob.h"
#include "coap/answer.h"
#include "config.h"
#include "core/delivery.h"
#include "core/links.h"
#include "dh_db.h"
#include "log.h"

#include <arpa/inet.h>
#include <coap3/coap.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* How long the loop waits for a datagram before it looks at the stop flag again. */
#define COAP_POLL_MS 200
/*
 * Peers (libcoap sessions) kept while idle, and for how long. Each holds a few hundred
 * bytes plus at most one cached answer (~1.1 KiB) per path: 4096 peers stay under 8 MiB.
 */
#define COAP_MAX_IDLE_PEERS 4096
#define COAP_PEER_IDLE_S    120
/* A device's pre-shared key with its NUL (api/devices.c takes at most 64 bytes). */
#define DH_COAP_PSK_BUF 65
/* The largest payload a cached answer holds: one 1024-byte block. */
#define COAP_CACHED_MAX 1024

static struct {
	coap_context_t *ctx; /* the CoAP thread's while it runs */
	pthread_t th;
	atomic_bool running; /* read by workers issuing coap links */
	atomic_uint port;    /* plain UDP; 0 when off */
	atomic_uint dtls_port;
	atomic_bool stop;
} srv;

/* ---- the answer's bridges to the link table, the blobs and the tracker ---- */

/* One request's view of the image it serves. */
struct served {
	struct dh_link link;
	struct dh_blob_map *map;
	const coap_bin_const_t *identity; /* the DTLS peer's PSK identity; NULL over plain UDP */
};

static int resolve(void *cls, const uint8_t *token, size_t len, struct dh_coap_image *img)
{
	struct served *sv = cls;
	uint8_t h[DH_LINK_HASH_LEN];
	struct dh_error err = { 0 };
	bool absent = false;

	if (!dh_links_ready())
		return DH_COAP_NOT_YET;
	dh_link_hash((const char *)token, len, h);
	if (!dh_links_find(h, &sv->link))
		return DH_COAP_UNKNOWN;
	/* over DTLS the link serves only the device the key belongs to; the same 4.04 else */
	if (sv->identity &&
	    (sv->identity->length != strlen(sv->link.device_name) ||
	     memcmp(sv->identity->s, sv->link.device_name, sv->identity->length) != 0))
		return DH_COAP_UNKNOWN;
	sv->map = dh_blob_map_get_local(sv->link.sha256, sv->link.size, &absent, &err);
	/* not copied to this server yet (another one took the upload): never from here, the
	 * filler thread copies it while the device hears 5.03 and asks again after Max-Age */
	if (!sv->map && absent && dh_blob_fill_later(sv->link.sha256, sv->link.size) != DH_E_IO) {
		dh_error_release(&err);
		return DH_COAP_NOT_YET;
	}
	if (!sv->map) {
		dh_error("coap.image", "session=%s sha256=%s detail=\"%s\"", sv->link.session,
			 sv->link.sha256, dh_error_detail(&err));
		dh_error_release(&err);
		return DH_COAP_UNKNOWN;
	}
	img->data = sv->map->data;
	img->size = sv->link.size;
	memcpy(img->etag, sv->link.etag, sizeof(img->etag));
	return DH_COAP_FOUND;
}

static void release(void *cls, struct dh_coap_image *img)
{
	struct served *sv = cls;

	(void)img;
	dh_blob_map_put(sv->map);
	sv->map = NULL;
}

static void sent(void *cls, const struct dh_coap_image *img, uint64_t off, uint64_t len)
{
	struct served *sv = cls;
	struct dh_delivery_who who = { sv->link.session, sv->link.product, sv->link.model,
				       sv->link.channel, img->size };

	dh_delivery_sent(&who, off, len);
}

/* ---- duplicates ---- */

/*
 * The last answer to one peer for one path (libcoap's cache key ignores Block2), kept as
 * the cache entry's app data: a duplicate of that request (same message id) gets it again.
 */
struct cached {
	coap_mid_t mid;
	coap_pdu_code_t code;
	struct {
		uint16_t num;
		uint8_t len;
		uint8_t value[8];
	} opts[4]; /* ETag, Content-Format, Block2, Size2: the options answers carry */
	size_t nopts;
	size_t len;
	uint8_t data[COAP_CACHED_MAX];
};

static void keep(struct cached *c, const coap_pdu_t *request, const coap_pdu_t *response)
{
	coap_opt_iterator_t it;
	coap_opt_t *opt;
	const uint8_t *data;
	size_t len = 0;

	c->mid = coap_pdu_get_mid(request);
	c->code = coap_pdu_get_code(response);
	c->nopts = 0;
	c->len = 0;
	if (!coap_option_iterator_init(response, &it, COAP_OPT_ALL))
		return;
	while ((opt = coap_option_next(&it)) != NULL) {
		if (c->nopts == sizeof(c->opts) / sizeof(c->opts[0]) ||
		    coap_opt_length(opt) > sizeof(c->opts[0].value)) {
			c->mid = -1; /* not an answer of ours: never replay it */
			return;
		}
		c->opts[c->nopts].num = it.number;
		c->opts[c->nopts].len = (uint8_t)coap_opt_length(opt);
		memcpy(c->opts[c->nopts].value, coap_opt_value(opt), coap_opt_length(opt));
		c->nopts++;
	}
	if (coap_get_data(response, &len, &data) && len > 0) {
		if (len > sizeof(c->data)) {
			c->mid = -1;
			return;
		}
		memcpy(c->data, data, len);
		c->len = len;
	}
}

static void replay(const struct cached *c, coap_pdu_t *response)
{
	coap_pdu_set_code(response, c->code);
	for (size_t i = 0; i < c->nopts; i++)
		coap_add_option(response, c->opts[i].num, c->opts[i].len, c->opts[i].value);
	if (c->len)
		coap_add_data(response, c->len, c->data);
}

/* ---- the handler ---- */

static void handle(coap_resource_t *resource, coap_session_t *session, const coap_pdu_t *request,
		   const coap_string_t *query, coap_pdu_t *response)
{
	struct served sv = { .map = NULL };
	bool dtls = coap_session_get_proto(session) == COAP_PROTO_DTLS;
	struct dh_coap_env env = { resolve, release, sent, &sv };
	struct dh_coap_outcome out = { 0 };
	coap_cache_entry_t *entry = NULL;
	struct cached *c = NULL;
	size_t max_pdu = coap_session_max_pdu_size(session);
	size_t token_len = coap_pdu_get_token(request).length;

	(void)resource;
	(void)query;
	if (dtls) {
		sv.identity = coap_session_get_psk_identity(session);
		if (!sv.identity) {
			coap_pdu_set_code(response, COAP_RESPONSE_CODE(401));
			return;
		}
	}
	if (coap_pdu_get_code(request) == COAP_REQUEST_CODE_GET) {
		entry = coap_cache_get_by_pdu(session, request, COAP_CACHE_IS_SESSION_BASED);
		c = entry ? coap_cache_get_app_data(entry) : NULL;
		if (c && c->mid == coap_pdu_get_mid(request)) {
			dh_debug("coap.duplicate", "mid=%d", (int)c->mid);
			replay(c, response);
			return;
		}
	}
	dh_coap_answer(request, response, max_pdu > token_len ? max_pdu - token_len : 0, &env,
		       &out);
	if (dh_log_enabled(DH_LOG_DEBUG))
		dh_debug("coap.request", "code=%d.%02d mid=%d answer=%u.%02u bytes=%llu",
			 (int)coap_pdu_get_code(request) >> 5, (int)coap_pdu_get_code(request) & 31,
			 (int)coap_pdu_get_mid(request), out.code / 100, out.code % 100,
			 (unsigned long long)out.bytes);
	if (coap_pdu_get_code(request) != COAP_REQUEST_CODE_GET)
		return;
	if (!entry) {
		entry = coap_new_cache_entry(session, request, COAP_CACHE_NOT_RECORD_PDU,
					     COAP_CACHE_IS_SESSION_BASED, DH_COAP_DEDUP_S);
		c = NULL;
	}
	if (!entry)
		return; /* no memory: duplicates are answered afresh, which is harmless */
	if (!c) {
		c = malloc(sizeof(*c));
		if (!c)
			return;
		coap_cache_set_app_data(entry, c, free);
	}
	keep(c, request, response);
}

/* ---- DTLS: the device's key for its identity ---- */

/*
 * libcoap asks for the key of the identity a client names in its handshake: the key of the
 * device with that device_id. This reads the database, on the CoAP thread, once per
 * handshake (never per block); libcoap copies the key, so one buffer serves.
 */
static const coap_bin_const_t *psk_for(coap_bin_const_t *identity, coap_session_t *session,
				       void *arg)
{
	static char key[DH_COAP_PSK_BUF];
	static coap_bin_const_t out;
	char id[DH_DEVICE_ID_MAX + 1];
	struct dh_db *db = dh_db_thread();
	enum dh_err rc;

	(void)session;
	(void)arg;
	if (!identity || identity->length == 0 || identity->length >= sizeof(id) || !db)
		return NULL;
	memcpy(id, identity->s, identity->length);
	id[identity->length] = 0;
	if (strlen(id) != identity->length)
		return NULL; /* a NUL inside: no device_id has one */
	rc = dh_db_device_psk(db, id, key, sizeof(key));
	if (rc != DH_OK) {
		dh_debug("coap.psk_refused", "identity=%s code=%s", id, dh_err_name(rc));
		return NULL;
	}
	out.s = (const uint8_t *)key;
	out.length = strlen(key);
	return &out;
}

static bool setup_dtls(struct dh_error *err)
{
	static const uint8_t hint[] = "devicehub";
	coap_dtls_spsk_t psk;

	if (!coap_dtls_is_supported()) {
		dh_error_set(err, DH_E_INVALID,
			     "--coaps-port: this libcoap was built without DTLS support.");
		return false;
	}
	memset(&psk, 0, sizeof(psk));
	psk.version = COAP_DTLS_SPSK_SETUP_VERSION;
	psk.validate_id_call_back = psk_for;
	psk.psk_info.hint.s = hint;
	psk.psk_info.hint.length = sizeof(hint) - 1;
	if (!coap_context_set_psk2(srv.ctx, &psk)) {
		dh_error_set(err, DH_E_INTERNAL, "Cannot set up DTLS with pre-shared keys.");
		return false;
	}
	return true;
}

/* ---- logging, start and stop ---- */

static void log_coap(coap_log_t level, const char *message)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "%s", message);
	msg[strcspn(msg, "\n")] = 0;
	/* libcoap warns about what clients do wrong (a failed handshake, a bad datagram): that
	 * is debug detail here; its errors stay visible */
	if (level <= LOG_CRIT)
		dh_error("coap.lib", "detail=\"%s\"", msg);
	else if (level <= LOG_ERR)
		dh_warn("coap.lib", "detail=\"%s\"", msg);
	else
		dh_debug("coap.lib", "detail=\"%s\"", msg);
}

static void *coap_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&srv.stop)) {
		if (coap_io_process(srv.ctx, COAP_POLL_MS) < 0) {
			dh_error("coap.loop", "%s", "detail=\"coap_io_process failed\"");
			break;
		}
	}
	dh_db_thread_close(); /* opened by DTLS handshakes' key look-ups, if any */
	return NULL;
}

/* The port of a libcoap endpoint, from its description ("addr:port UDP"). */
static unsigned endpoint_port(const coap_endpoint_t *ep)
{
	const char *s = coap_endpoint_str(ep), *sp = strchr(s, ' '), *colon = NULL;
	unsigned v = 0;

	for (const char *p = s; *p && p != sp; p++) {
		if (*p == ':')
			colon = p;
	}
	for (const char *p = colon ? colon + 1 : sp; p && *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (unsigned)(*p - '0');
	return v;
}

static bool listen_addr(const char *text, unsigned port, coap_address_t *a)
{
	coap_address_init(a);
	if (strchr(text, ':')) {
		a->size = sizeof(a->addr.sin6);
		a->addr.sin6.sin6_family = AF_INET6;
		a->addr.sin6.sin6_port = htons((uint16_t)port);
		return inet_pton(AF_INET6, text, &a->addr.sin6.sin6_addr) == 1;
	}
	a->size = sizeof(a->addr.sin);
	a->addr.sin.sin_family = AF_INET;
	a->addr.sin.sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, text, &a->addr.sin.sin_addr) == 1;
}

static const coap_request_t other_methods[] = {
	COAP_REQUEST_POST,  COAP_REQUEST_PUT,   COAP_REQUEST_DELETE,
	COAP_REQUEST_FETCH, COAP_REQUEST_PATCH, COAP_REQUEST_IPATCH,
};

/* Frees what start made so far. */
static void undo_start(void)
{
	coap_free_context(srv.ctx);
	srv.ctx = NULL;
	coap_cleanup();
	atomic_store(&srv.port, 0);
	atomic_store(&srv.dtls_port, 0);
}

/*
 * libcoap binds its UDP sockets with SO_REUSEADDR, and Linux then lets any other socket with
 * SO_REUSEADDR bind the same address and port, even one that asked for port 0, and hands it
 * the datagrams: a second devicehubd (or any libcoap server) would silently take our
 * devices' requests (seen as a 4.04 in the middle of a test's download when two test runs
 * shared a port). Cleared on our bound socket, every later bind of the port fails with
 * EADDRINUSE. libcoap does not show an endpoint's socket: it is the datagram socket of this
 * process bound to the port (a port is one socket's until then, so no other matches).
 */
static void own_port(unsigned port)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int zero = 0;

	if (!d) {
		dh_warn("coap.port", "port=%u detail=\"cannot read /proc/self/fd\"", port);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd, type = 0;
		socklen_t tlen = sizeof(type);
		unsigned bound = 0;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		fd = (int)strtol(e->d_name, NULL, 10);
		if (fd == dirfd(d) || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 ||
		    type != SOCK_DGRAM || getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
			continue;
		if (ss.ss_family == AF_INET)
			bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		if (bound == port &&
		    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &zero, sizeof(zero)) != 0)
			dh_warn("coap.port", "port=%u detail=\"cannot clear SO_REUSEADDR\"", port);
	}
	closedir(d);
}

/* A bound endpoint of proto on addr:port, its port no other socket may bind; the port into
 * *bound. */
static bool endpoint(const char *addr, unsigned port, coap_proto_t proto, atomic_uint *bound)
{
	coap_endpoint_t *ep;
	coap_address_t a;

	if (!listen_addr(addr, port, &a))
		return false;
	ep = coap_new_endpoint(srv.ctx, &a, proto);
	if (!ep)
		return false;
	atomic_store(bound, endpoint_port(ep));
	own_port(atomic_load(bound));
	return true;
}

enum dh_err dh_coap_start(unsigned *bound_port, unsigned *dtls_port, struct dh_error *err)
{
	static const uint16_t ignore[] = { COAP_OPTION_BLOCK2 };
	const char *addr = *dh_cfg.coap_listen ? dh_cfg.coap_listen : dh_cfg.listen;
	coap_resource_t *r;
	coap_address_t a;

	*bound_port = *dtls_port = 0;
	if ((!dh_cfg.coap_on && !dh_cfg.coaps_on) || atomic_load(&srv.running))
		return DH_OK;
	if (!listen_addr(addr, 0, &a))
		return dh_error_set(err, DH_E_INVALID, "--coap-listen %s is not an address", addr);
	coap_startup();
	coap_set_log_handler(log_coap);
	coap_set_log_level(LOG_WARNING);
	srv.ctx = coap_new_context(NULL);
	if (!srv.ctx) {
		coap_cleanup();
		return dh_error_set(err, DH_E_NOMEM, "Cannot make a CoAP context.");
	}
	coap_context_set_max_idle_sessions(srv.ctx, COAP_MAX_IDLE_PEERS);
	coap_context_set_session_timeout(srv.ctx, COAP_PEER_IDLE_S);
	/* one cached answer per peer and path, not per block */
	coap_cache_ignore_options(srv.ctx, ignore, sizeof(ignore) / sizeof(ignore[0]));
	if (dh_cfg.coap_on && !endpoint(addr, dh_cfg.coap_port_num, COAP_PROTO_UDP, &srv.port)) {
		undo_start();
		return dh_error_set(err, DH_E_IO, "Cannot listen for CoAP on %s UDP port %u", addr,
				    dh_cfg.coap_port_num);
	}
	if (dh_cfg.coaps_on && !setup_dtls(err)) {
		undo_start();
		return DH_E_INVALID;
	}
	if (dh_cfg.coaps_on &&
	    !endpoint(addr, dh_cfg.coaps_port_num, COAP_PROTO_DTLS, &srv.dtls_port)) {
		undo_start();
		return dh_error_set(err, DH_E_IO,
				    "Cannot listen for CoAP over DTLS on %s UDP port %u", addr,
				    dh_cfg.coaps_port_num);
	}
	r = coap_resource_init(coap_make_str_const(".well-known/core"), 0);
	coap_register_request_handler(r, COAP_REQUEST_GET, handle);
	coap_add_resource(srv.ctx, r);
	/* every other path: answer.c says 4.04, or 4.05 for a wrong method on /d/<token> */
	r = coap_resource_unknown_init(handle);
	coap_register_request_handler(r, COAP_REQUEST_GET, handle);
	for (size_t i = 0; i < sizeof(other_methods) / sizeof(other_methods[0]); i++)
		coap_register_request_handler(r, other_methods[i], handle);
	coap_add_resource(srv.ctx, r);
	atomic_store(&srv.stop, false);
	if (pthread_create(&srv.th, NULL, coap_main, NULL) != 0) {
		undo_start();
		return dh_error_set(err, DH_E_INTERNAL, "Cannot start the CoAP thread.");
	}
	atomic_store(&srv.running, true);
	*bound_port = atomic_load(&srv.port);
	*dtls_port = atomic_load(&srv.dtls_port);
	return DH_OK;
}

void dh_coap_stop(void)
{
	if (!atomic_load(&srv.running))
		return;
	atomic_store(&srv.running, false);
	atomic_store(&srv.stop, true);
	pthread_join(srv.th, NULL);
	coap_free_context(srv.ctx);
	srv.ctx = NULL;
	coap_cleanup();
	atomic_store(&srv.port, 0);
	atomic_store(&srv.dtls_port, 0);
}

unsigned dh_coap_port(void)
{
	return atomic_load(&srv.running) ? atomic_load(&srv.port) : 0;
}

unsigned dh_coap_dtls_port(void)
{
	return atomic_load(&srv.running) ? atomic_load(&srv.dtls_port) : 0;
}

bool dh_coap_link_prefix(const char *http_base, char *out, size_t size)
{
	char host[256];
	const char *from = *dh_cfg.public_url ? dh_cfg.public_url : http_base;
	size_t n;
	int k;

	unsigned port = dh_coap_port();
	const char *scheme = "coap";

	if (!port) {
		port = dh_coap_dtls_port();
		scheme = "coaps";
	}
	if (!port)
		return false;
	if (*dh_cfg.coap_public_url) {
		n = strlen(dh_cfg.coap_public_url);
		if (n > 0 && dh_cfg.coap_public_url[n - 1] == '/')
			n--;
		k = snprintf(out, size, "%.*s/d/", (int)n, dh_cfg.coap_public_url);
	} else {
		if (!dh_url_host(from, host, sizeof(host)))
			return false;
		k = snprintf(out, size, "%s://%s:%u/d/", scheme, host, port);
	}
	return k > 0 && (size_t)k < size;
}
