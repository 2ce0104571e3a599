/*
 * Run-time configuration: one table of flag, environment twin, default and help text,
 * from which both parsing and --help are produced. The parsed values live in one struct
 * that is written once at start-up and only read afterwards.
 */
#ifndef DH_CONFIG_H
#define DH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dh_config {
	const char *listen;
	unsigned port;
	const char *data_dir;
	unsigned workers;
	unsigned http_threads;
	bool http_direct; /* downloads on devicehubd's own event loop (http/direct.c) */
	const char *tls_cert;
	const char *tls_key;
	const char *tls_priorities;
	const char *public_url;
	const char *allowed_hosts; /* Host values links may be built from (comma list) */
	uint64_t max_body;
	uint64_t max_upload;
	unsigned max_connections;
	unsigned max_connections_per_address;
	unsigned head_timeout;
	unsigned min_body_rate;
	unsigned rate_limit;
	unsigned rate_burst;
	unsigned auth_fail_limit;
	unsigned max_events;
	const char *plugin_dir;
	const char *log_level;
	const char *web_dir;
	unsigned reaper_interval_ms;
	bool webhook_allow_private;
	const char *webhook_ca;
	unsigned webhook_connect_timeout;
	unsigned webhook_timeout;
	uint64_t webhook_max_age;
	unsigned webhook_max_attempts;
	unsigned webhook_retry_base_ms;
	unsigned webhook_concurrency;
	unsigned webhook_endpoint_concurrency;
	uint64_t webhook_retention;
	const char *database;
	unsigned lease_ms;
	const char *coap_port;       /* "off", or a UDP port (0: a free one) */
	const char *coap_listen;     /* "": as --listen */
	const char *coap_public_url; /* "": coap://<host of the HTTP base>:<coap port> */
	const char *coaps_port;      /* "off", or a UDP port for CoAP over DTLS (0: a free one) */
	bool list_routes;            /* --list-routes: print the route table and exit */

	/* derived by dh_config_parse */
	bool coap_on;            /* --coap-port is not "off" */
	unsigned coap_port_num;  /* its number when on */
	bool coaps_on;           /* --coaps-port is not "off" */
	unsigned coaps_port_num; /* its number when on */
};

/* Characters a Host value may have: letters, digits, '.', '-' (names, IPv4), ':' and
 * brackets (ports, [IPv6]). --allowed-hosts and the Host header are held to them. */
#define DH_HOST_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]"

/* The one configuration, filled by dh_config_parse. */
extern struct dh_config dh_cfg;

/* Parses environment then argv (flags win). Returns 0 to go on, 1 when --help or --version
 * was printed (exit 0), 2 on a usage error (message printed, exit 2). */
int dh_config_parse(int argc, char **argv);

/* Prints the flag table to out (a FILE *). */
void dh_config_usage(void *out);

#endif
