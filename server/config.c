/*
 * The flag table and its parser. Every flag has an environment twin (DEVICEHUB_<NAME>);
 * precedence is default < environment < flag. --help prints the table as it is.
 */
#include "config.h"

#include "core/text.h"
#include "core/url.h"
#include "core/util.h"
#include "dh_paths.h"
#include "http/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct dh_config dh_cfg;

enum opt_type {
	OPT_STR,
	OPT_UINT,
	OPT_U64,
	OPT_BOOL, /* a bare --flag means true; --flag=false, env 0/1/true/false/yes/no */
};

struct opt {
	const char *flag;
	const char *env;
	enum opt_type type;
	size_t offset;
	const char *def;
	uint64_t min, max;
	const char *help;
};

#define OFF(f) offsetof(struct dh_config, f)

static const struct opt opts[] = {
	{ "listen", "DEVICEHUB_LISTEN", OPT_STR, OFF(listen), "0.0.0.0", 0, 0,
	  "address to listen on (IPv4 or IPv6 literal)" },
	{ "port", "DEVICEHUB_PORT", OPT_UINT, OFF(port), "8080", 0, 65535,
	  "TCP port; 0 picks a free one (logged as http.listening)" },
	{ "data-dir", "DEVICEHUB_DATA_DIR", OPT_STR, OFF(data_dir), "./var", 0, 0,
	  "directory of the SQLite database and the blob store" },
	{ "workers", "DEVICEHUB_WORKERS", OPT_UINT, OFF(workers), "0", 0, 256,
	  "delivery worker threads; 0 means the number of cores" },
	{ "http-threads", "DEVICEHUB_HTTP_THREADS", OPT_UINT, OFF(http_threads), "0", 0, 256,
	  "HTTP thread pool size; 0 means the number of cores" },
	{ "http-direct", "DEVICEHUB_HTTP_DIRECT", OPT_BOOL, OFF(http_direct), "true", 0, 0,
	  "serve image downloads and short links (GET, HEAD) from devicehubd's own event loop with"
	  " sendfile, other requests through libmicrohttpd; false: all through libmicrohttpd;"
	  " off with TLS" },
	{ "tls-cert", "DEVICEHUB_TLS_CERT", OPT_STR, OFF(tls_cert), "", 0, 0,
	  "PEM certificate file; with --tls-key serves HTTPS" },
	{ "tls-key", "DEVICEHUB_TLS_KEY", OPT_STR, OFF(tls_key), "", 0, 0,
	  "PEM private key file for --tls-cert" },
	{ "tls-priorities", "DEVICEHUB_TLS_PRIORITIES", OPT_STR, OFF(tls_priorities),
	  DH_TLS_PRIORITIES_DEFAULT, 0, 0,
	  "GnuTLS priority string of the TLS versions and ciphers offered" },
	{ "allowed-hosts", "DEVICEHUB_ALLOWED_HOSTS", OPT_STR, OFF(allowed_hosts), "", 0, 0,
	  "Host header values that links may be built from when --public-url is unset:"
	  " comma-separated HOST or HOST:PORT (HOST a DNS name, an IPv4 address or an [IPv6]"
	  " address, PORT 1..65535), e.g. hub.example,hub.example:8443; default: none, links use"
	  " the address the client connected to" },
	{ "public-url", "DEVICEHUB_PUBLIC_URL", OPT_STR, OFF(public_url), "", 0, 0,
	  "base URL of the links the server hands out (downloads, short links, list pages):"
	  " http:// or https://, HOST[:PORT], then optionally a /PATH prefix (a reverse proxy's);"
	  " no user@, query or fragment, at most 256 bytes of ASCII, e.g."
	  " https://hub.example:8443; default: the address the client connected to (see"
	  " --allowed-hosts)" },
	{ "max-body", "DEVICEHUB_MAX_BODY", OPT_U64, OFF(max_body), "1048576", 64, UINT64_MAX,
	  "largest JSON request body in bytes (413 beyond)" },
	{ "max-upload", "DEVICEHUB_MAX_UPLOAD", OPT_U64, OFF(max_upload), "1073741824", 1024,
	  UINT64_MAX, "largest firmware upload in bytes (413 beyond)" },
	{ "max-connections", "DEVICEHUB_MAX_CONNECTIONS", OPT_UINT, OFF(max_connections), "16384",
	  1, 65535,
	  "HTTP connections served at once (lowered to fit the open-files limit); beyond, 503" },
	{ "max-connections-per-address", "DEVICEHUB_MAX_CONNECTIONS_PER_ADDRESS", OPT_UINT,
	  OFF(max_connections_per_address), "256", 0, 65535,
	  "open connections per client IPv4 address or IPv6 /64, beyond closed at once; 0: any" },
	{ "head-timeout", "DEVICEHUB_HEAD_TIMEOUT", OPT_UINT, OFF(head_timeout), "30", 1, 3600,
	  "seconds for a request head to arrive (also the keep-alive idle time); then 408" },
	{ "rate-limit", "DEVICEHUB_RATE_LIMIT", OPT_UINT, OFF(rate_limit), "5000", 0, 1000000,
	  "requests per second one user's tokens may make on average together (429 beyond); 0: no"
	  " limit" },
	{ "rate-burst", "DEVICEHUB_RATE_BURST", OPT_UINT, OFF(rate_burst), "10000", 1, 10000000,
	  "size of a user's bucket: requests its tokens may make at once before --rate-limit"
	  " applies" },
	{ "auth-fail-limit", "DEVICEHUB_AUTH_FAIL_LIMIT", OPT_UINT, OFF(auth_fail_limit), "20", 0,
	  100000, "failed authentications per minute per client address (429 beyond); 0: any" },
	{ "min-body-rate", "DEVICEHUB_MIN_BODY_RATE", OPT_UINT, OFF(min_body_rate), "1024", 0,
	  1073741824, "bytes/s a request body must average over each --head-timeout; 0: any" },
	{ "max-events", "DEVICEHUB_MAX_EVENTS", OPT_UINT, OFF(max_events), "64", 0, 4096,
	  "simultaneous /api/v1/events subscribers (503 beyond)" },
	{ "plugin-dir", "DEVICEHUB_PLUGIN_DIR", OPT_STR, OFF(plugin_dir), "", 0, 0,
	  "directory of delivery-step plugins (*.so) to load; empty: none" },
	{ "log-level", "DEVICEHUB_LOG_LEVEL", OPT_STR, OFF(log_level), "info", 0, 0,
	  "debug, info, warn or error" },
	{ "web-dir", "DEVICEHUB_WEB_DIR", OPT_STR, OFF(web_dir), "", 0, 0,
	  "directory of the dashboard files; default: " DH_WEB_DIR_INSTALLED
	  " (the source's web/ for a binary in its build tree)" },
	{ "reaper-interval-ms", "DEVICEHUB_REAPER_INTERVAL_MS", OPT_UINT, OFF(reaper_interval_ms),
	  "1000", 10, 3600000, "how often the reaper applies session timeouts" },
	{ "webhook-allow-private", "DEVICEHUB_WEBHOOK_ALLOW_PRIVATE", OPT_BOOL,
	  OFF(webhook_allow_private), "false", 0, 0,
	  "let webhooks and http steps reach loopback, private and link-local addresses" },
	{ "webhook-ca", "DEVICEHUB_WEBHOOK_CA", OPT_STR, OFF(webhook_ca), "", 0, 0,
	  "PEM file of the CAs that webhook and http-step servers are verified against;"
	  " empty: the system's" },
	{ "webhook-connect-timeout", "DEVICEHUB_WEBHOOK_CONNECT_TIMEOUT", OPT_UINT,
	  OFF(webhook_connect_timeout), "5", 1, 300, "seconds to connect to a webhook receiver" },
	{ "database", "DEVICEHUB_DATABASE", OPT_STR, OFF(database), "", 0, 0,
	  "empty or sqlite: for <data-dir>/devicehub.db; postgresql://user@host:port/db or a libpq"
	  " key=value string to share one PostgreSQL among several servers" },
	{ "lease-ms", "DEVICEHUB_LEASE_MS", OPT_UINT, OFF(lease_ms), "10000", 300, 3600000,
	  "how long a worker's claim on a session lasts unless renewed; a server that dies loses"
	  " its sessions to the others after this" },
	{ "coap-port", "DEVICEHUB_COAP_PORT", OPT_STR, OFF(coap_port), "off", 0, 0,
	  "UDP port of the CoAP image server (coap_link, Block2); 5683 is CoAP's, 0 picks a"
	  " free one (logged as coap.listening); off: no CoAP" },
	{ "coaps-port", "DEVICEHUB_COAPS_PORT", OPT_STR, OFF(coaps_port), "off", 0, 0,
	  "UDP port of CoAP over DTLS with a pre-shared key per device (identity: its device_id;"
	  " key: the device's coap_psk); 0 picks a free one; off: no DTLS" },
	{ "coap-listen", "DEVICEHUB_COAP_LISTEN", OPT_STR, OFF(coap_listen), "", 0, 0,
	  "address the CoAP server listens on (IPv4 or IPv6 literal); empty: as --listen" },
	{ "coap-public-url", "DEVICEHUB_COAP_PUBLIC_URL", OPT_STR, OFF(coap_public_url), "", 0, 0,
	  "base of coap_link: coap:// or coaps://, then HOST[:PORT] and nothing else (the link"
	  " adds /d/<token>), at most 256 bytes, e.g. coap://hub.example:5683; empty: the host"
	  " of --public-url (or of the request) and the CoAP port" },
	{ "webhook-timeout", "DEVICEHUB_WEBHOOK_TIMEOUT", OPT_UINT, OFF(webhook_timeout), "10", 1,
	  600, "seconds a webhook receiver has to answer one attempt (connect included)" },
	{ "webhook-max-age", "DEVICEHUB_WEBHOOK_MAX_AGE", OPT_U64, OFF(webhook_max_age), "86400", 1,
	  31536000, "seconds a delivery is retried before it is marked failed" },
	{ "webhook-max-attempts", "DEVICEHUB_WEBHOOK_MAX_ATTEMPTS", OPT_UINT,
	  OFF(webhook_max_attempts), "0", 0, 1000000,
	  "attempts after which a delivery is marked failed; 0: only --webhook-max-age counts" },
	{ "webhook-retry-base-ms", "DEVICEHUB_WEBHOOK_RETRY_BASE_MS", OPT_UINT,
	  OFF(webhook_retry_base_ms), "5000", 10, 600000,
	  "delay before the first retry, doubled for each next one (tests shorten it)" },
	{ "webhook-concurrency", "DEVICEHUB_WEBHOOK_CONCURRENCY", OPT_UINT,
	  OFF(webhook_concurrency), "16", 1, 1024, "webhook requests in flight at once, in all" },
	{ "webhook-endpoint-concurrency", "DEVICEHUB_WEBHOOK_ENDPOINT_CONCURRENCY", OPT_UINT,
	  OFF(webhook_endpoint_concurrency), "1", 1, 64,
	  "webhook requests in flight at once to one webhook; 1 keeps the event order strict" },
	{ "webhook-retention", "DEVICEHUB_WEBHOOK_RETENTION", OPT_U64, OFF(webhook_retention),
	  "604800", 60, 315360000, "seconds delivered and failed deliveries stay in the log" },
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* Where each option's value came from: "default", "flag" or its environment variable. */
static const char *value_from[NOPTS];

/* Bytes of a bad value a start-up message quotes: enough to recognise it. */
#define VALUE_QUOTE_MAX 80

static int set_opt(const struct opt *o, const char *val, const char *from)
{
	char *base = (char *)&dh_cfg;
	uint64_t v;

	if (o->type == OPT_STR) {
		*(const char **)(base + o->offset) = val;
		return 0;
	}
	if (o->type == OPT_BOOL) {
		bool yes = !strcmp(val, "true") || !strcmp(val, "1") || !strcmp(val, "yes");
		if (!yes && strcmp(val, "false") && strcmp(val, "0") && strcmp(val, "no")) {
			fprintf(stderr, "devicehubd: %s --%s: '%s' is not true or false\n", from,
				o->flag, val);
			return 2;
		}
		*(bool *)(base + o->offset) = yes;
		return 0;
	}
	if (!dh_parse_u64(val, &v) || v < o->min || v > o->max) {
		fprintf(stderr, "devicehubd: %s --%s: '%s' is not a number in %llu..%llu\n", from,
			o->flag, val, (unsigned long long)o->min, (unsigned long long)o->max);
		return 2;
	}
	if (o->type == OPT_UINT)
		*(unsigned *)(base + o->offset) = (unsigned)v;
	else
		*(uint64_t *)(base + o->offset) = v;
	return 0;
}

/*
 * The dashboard's directory when --web-dir is not given (see server/meson.build): the
 * source's web/ for a binary inside its build tree; else the installed one, looked up from
 * the binary's own directory first (an installed tree under DESTDIR, or moved), then at the
 * configured prefix.
 */
static const char *default_web_dir(void)
{
	static char found[PATH_MAX];
	char exe[PATH_MAX];
	size_t root = strlen(DH_BUILD_ROOT);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	struct stat st;
	char *slash;
	int m;

	if (n <= 0)
		return DH_WEB_DIR_INSTALLED;
	exe[n] = '\0';
	if (strncmp(exe, DH_BUILD_ROOT, root) == 0 && exe[root] == '/')
		return DH_WEB_DIR_SOURCE;
	slash = strrchr(exe, '/');
	if (!*DH_WEB_DIR_FROM_BIN || !slash)
		return DH_WEB_DIR_INSTALLED;
	*slash = '\0';
	m = snprintf(found, sizeof(found), "%s/%s", exe, DH_WEB_DIR_FROM_BIN);
	if (m > 0 && (size_t)m < sizeof(found) && stat(found, &st) == 0 && S_ISDIR(st.st_mode))
		return found;
	return DH_WEB_DIR_INSTALLED;
}

void dh_config_usage(void *out)
{
	FILE *f = out;

	/* the backup and restore commands and their flags: server/backup.c */
	fprintf(f, "Usage: devicehubd [FLAG VALUE]...\n"
		   "       devicehubd backup --to FILE [--data-dir DIR] [--database URL]\n"
		   "       devicehubd restore --from FILE [--data-dir DIR]\n\n"
		   "Device Hub firmware-update server. Each flag also reads its environment\n"
		   "variable; a flag on the command line wins over the environment.\n\n"
		   "flags:\n");
	for (size_t i = 0; i < NOPTS; i++) {
		/* a flag longer than its column keeps two spaces before its help (docs/man) */
		fprintf(f, "  --%-20s %s%s\n  %-22s env %s, default \"%s\"\n", opts[i].flag,
			strlen(opts[i].flag) >= 20 ? " " : "", opts[i].help, "", opts[i].env,
			opts[i].def);
	}
	fprintf(f, "  --%-20s %s\n  --%-20s %s\n", "help", "print this help and exit", "version",
		"print the version and exit");
	fprintf(f, "  --%-20s %s\n", "list-routes",
		"print every API route (methods, path, required right) and exit");
	fprintf(f,
		"commands:\n"
		"  backup                 copy the database and the images it refers to into one\n"
		"                         archive with SHA-256 sums, while the server runs\n"
		"  restore                unpack such an archive into an empty data dir\n");
	fprintf(f,
		"\nOn the first start of a fresh database an admin user is created and its\n"
		"token printed once; DEVICEHUB_ADMIN_TOKEN sets that token instead.\n"
		"'devicehubd backup --help' and 'devicehubd restore --help' describe the commands.\n"
		"\nexit status: 0 stopped by SIGINT or SIGTERM (or --help printed), 1 could not\n"
		"start, 2 usage error\n");
}

/* "off", or a port in 0..65535 (0: a free one), for --name; false after a message. */
static bool udp_port(const char *name, const char *text, bool *on, unsigned *port)
{
	uint64_t v;

	if (strcmp(text, "off") == 0)
		return true;
	if (!dh_parse_u64(text, &v) || v > 65535) {
		fprintf(stderr, "devicehubd: --%s '%s' is neither off nor a port in 0..65535\n",
			name, text);
		return false;
	}
	*on = true;
	*port = (unsigned)v;
	return true;
}

/*
 * One line on stderr for a bad value of the option named flag: the flag (and the environment
 * variable when the value came from there), the value escaped and cut (it may hold any
 * bytes: core/text.h), and why. Returns 2, the exit status.
 */
static int bad_value(const char *flag, const char *value, const char *why)
{
	char shown[4 * VALUE_QUOTE_MAX + 1];
	size_t cut = dh_utf8_cut(value, VALUE_QUOTE_MAX);
	const char *from = "flag";

	for (size_t i = 0; i < NOPTS; i++) {
		if (strcmp(opts[i].flag, flag) == 0)
			from = value_from[i];
	}
	dh_text_escape(shown, sizeof(shown), value, cut, DH_TEXT_CONTROLS);
	if (strncmp(from, "DEVICEHUB_", 10) == 0)
		fprintf(stderr, "devicehubd: %s (--%s) '%s%s': %s\n", from, flag, shown,
			value[cut] ? "..." : "", why);
	else
		fprintf(stderr, "devicehubd: --%s '%s%s': %s\n", flag, shown,
			value[cut] ? "..." : "", why);
	return 2;
}

/* --public-url, --coap-public-url and --allowed-hosts, when set: 0 or 2 after a message. */
static int check_urls(void)
{
	static const char *const http[] = { "http", "https", NULL };
	static const char *const coap[] = { "coap", "coaps", NULL };
	char why[DH_URL_WHY_MAX];

	if (*dh_cfg.public_url &&
	    !dh_url_base_check(dh_cfg.public_url, http, true, why, sizeof(why)))
		return bad_value("public-url", dh_cfg.public_url, why);
	if (*dh_cfg.coap_public_url &&
	    !dh_url_base_check(dh_cfg.coap_public_url, coap, false, why, sizeof(why)))
		return bad_value("coap-public-url", dh_cfg.coap_public_url, why);
	if (*dh_cfg.allowed_hosts && !dh_url_hosts_check(dh_cfg.allowed_hosts, why, sizeof(why)))
		return bad_value("allowed-hosts", dh_cfg.allowed_hosts, why);
	return 0;
}

int dh_config_parse(int argc, char **argv)
{
	unsigned char addr[sizeof(struct in6_addr)];
	int rc;

	for (size_t i = 0; i < NOPTS; i++) {
		const char *env = getenv(opts[i].env);
		if ((rc = set_opt(&opts[i], opts[i].def, "default")) != 0)
			return rc;
		value_from[i] = "default";
		if (env && *env && (rc = set_opt(&opts[i], env, opts[i].env)) != 0)
			return rc;
		if (env && *env)
			value_from[i] = opts[i].env;
	}
	for (int a = 1; a < argc; a++) {
		const char *arg = argv[a], *val = NULL, *eq;
		size_t nlen;
		const struct opt *o = NULL;

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			dh_config_usage(stdout);
			return 1;
		}
		if (strcmp(arg, "--list-routes") == 0) {
			dh_cfg.list_routes = true;
			continue;
		}
		if (strcmp(arg, "--version") == 0) {
			printf("devicehubd %s\n", DH_VERSION);
			return 1;
		}
		if (strncmp(arg, "--", 2) != 0) {
			fprintf(stderr, "devicehubd: unexpected argument '%s' (see --help)\n", arg);
			return 2;
		}
		arg += 2;
		eq = strchr(arg, '=');
		nlen = eq ? (size_t)(eq - arg) : strlen(arg);
		for (size_t i = 0; i < NOPTS; i++) {
			if (strlen(opts[i].flag) == nlen && strncmp(opts[i].flag, arg, nlen) == 0)
				o = &opts[i];
		}
		if (!o) {
			fprintf(stderr, "devicehubd: unknown flag '--%.*s' (see --help)\n",
				(int)nlen, arg);
			return 2;
		}
		if (eq) {
			val = eq + 1;
		} else if (o->type == OPT_BOOL) {
			val = "true";
		} else if (a + 1 < argc) {
			val = argv[++a];
		} else {
			fprintf(stderr, "devicehubd: flag --%s needs a value\n", o->flag);
			return 2;
		}
		if ((rc = set_opt(o, val, "flag")) != 0)
			return rc;
		value_from[o - opts] = "flag";
	}
	if (inet_pton(strchr(dh_cfg.listen, ':') ? AF_INET6 : AF_INET, dh_cfg.listen, addr) != 1) {
		fprintf(stderr, "devicehubd: --listen '%s' is not an IPv4 or IPv6 address\n",
			dh_cfg.listen);
		return 2;
	}
	if (*dh_cfg.webhook_ca && access(dh_cfg.webhook_ca, R_OK) != 0) {
		fprintf(stderr, "devicehubd: --webhook-ca %s: %s\n", dh_cfg.webhook_ca,
			strerror(errno));
		return 2;
	}
	if (!udp_port("coap-port", dh_cfg.coap_port, &dh_cfg.coap_on, &dh_cfg.coap_port_num) ||
	    !udp_port("coaps-port", dh_cfg.coaps_port, &dh_cfg.coaps_on, &dh_cfg.coaps_port_num))
		return 2;
	if (*dh_cfg.coap_listen && inet_pton(strchr(dh_cfg.coap_listen, ':') ? AF_INET6 : AF_INET,
					     dh_cfg.coap_listen, addr) != 1) {
		fprintf(stderr, "devicehubd: --coap-listen '%s' is not an IPv4 or IPv6 address\n",
			dh_cfg.coap_listen);
		return 2;
	}
	if ((rc = check_urls()) != 0)
		return rc;
	if (!!*dh_cfg.tls_cert != !!*dh_cfg.tls_key) {
		fprintf(stderr, "devicehubd: --tls-cert and --tls-key go together\n");
		return 2;
	}
	if (!*dh_cfg.web_dir)
		dh_cfg.web_dir = default_web_dir();
	if (dh_cfg.workers == 0 || dh_cfg.http_threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		if (n < 1)
			n = 1;
		if (dh_cfg.workers == 0)
			dh_cfg.workers = (unsigned)n;
		if (dh_cfg.http_threads == 0)
			dh_cfg.http_threads = (unsigned)n;
	}
	return 0;
}
