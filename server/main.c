/*
 * devicehubd: reads flags and environment, locks the data directory against a second
 * instance, prepares it and the database, creates the first admin on a fresh database,
 * starts the HTTP server and the delivery threads, and on SIGINT/SIGTERM stops them in
 * order: no new requests, finish running ones, then close the database.
 */
#include "api/api.h"
#include "backup.h"
#include "blob.h"
#include "coap/server.h"
#include "config.h"
#include "core/util.h"
#include "datadir.h"
#include "dh_db.h"
#include "http/router.h"
#include "http/server.h"
#include "http/tls.h"
#include "log.h"
#include "outbound/outbound.h"
#include "pipeline/pipeline.h"
#include "plugins/loader.h"
#include "webhooks/sender.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* Shortest admin token accepted from the environment: guessable tokens are refused. */
#define DH_ADMIN_TOKEN_MIN 16

static int bootstrap_admin(void)
{
	const char *env = getenv("DEVICEHUB_ADMIN_TOKEN");
	char secret[64], hash[DH_SHA256_HEX];
	uint8_t raw[24];
	struct dh_error err = { 0 };
	struct dh_db *db = dh_db_thread();
	bool created = false;

	if (!db)
		return -1;
	if (env && *env) {
		if (strlen(env) < DH_ADMIN_TOKEN_MIN || strlen(env) > 200) {
			fprintf(stderr,
				"devicehubd: DEVICEHUB_ADMIN_TOKEN must be 16 to 200 characters\n");
			return -1;
		}
		dh_sha256_hex(env, strlen(env), hash);
	} else {
		if (!dh_random(raw, sizeof(raw)))
			return -1;
		memcpy(secret, "dh_", 3);
		dh_hex(raw, sizeof(raw), secret + 3);
		dh_sha256_hex(secret, strlen(secret), hash);
	}
	if (dh_db_bootstrap_admin(db, hash, &created, &err) != DH_OK) {
		fprintf(stderr, "devicehubd: %s\n", dh_error_detail(&err));
		dh_error_release(&err);
		return -1;
	}
	if (created) {
		if (env && *env)
			printf("Admin user created with the token from DEVICEHUB_ADMIN_TOKEN.\n");
		else
			printf("Admin token (shown once, keep it safe): %s\n", secret);
		fflush(stdout);
		dh_info("auth.bootstrap", "user=admin from_env=%s", env && *env ? "yes" : "no");
	}
	return 0;
}

/*
 * The line a person reads to find the server: its URL as a browser on this host reaches it
 * (an any-address listener is reached on loopback) and the data directory.
 */
static void print_banner(unsigned port)
{
	const char *scheme = *dh_cfg.tls_cert ? "https" : "http";
	const char *host = dh_cfg.listen;
	bool v6 = strchr(host, ':') != NULL;

	if (strcmp(host, "0.0.0.0") == 0)
		host = "127.0.0.1";
	else if (strcmp(host, "::") == 0)
		host = "::1";
	printf("Device Hub on %s://%s%s%s:%u/ (data in %s)\n", scheme, v6 ? "[" : "", host,
	       v6 ? "]" : "", port, dh_cfg.data_dir);
	fflush(stdout);
}

/*
 * Raises the soft open-files limit to the hard one: every HTTP connection holds a socket,
 * and a download or upload also a file, so the usual soft limit of 1024 would cap a fleet
 * at a few hundred devices. Logs both limits; http/server.c fits --max-connections to them.
 */
static void raise_open_files(void)
{
	struct rlimit rl;
	rlim_t was;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	was = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			rl.rlim_cur = was;
	}
	dh_info("server.open_files", "soft=%llu hard=%llu soft_at_start=%llu",
		(unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
		(unsigned long long)was);
}

/* --list-routes: one line per route, "METHODS<TAB>PATTERN<TAB>RIGHT", for tests and docs. */
static void list_routes(void)
{
	char methods[96];

	for (size_t i = 0; i < dh_routes_count; i++) {
		dh_route_allow_string(dh_routes[i].methods, methods, sizeof(methods));
		printf("%s\t%s\t%s\n", methods, dh_routes[i].pattern,
		       dh_action_name(dh_routes[i].right));
	}
}

int main(int argc, char **argv)
{
	struct dh_error err = { 0 };
	enum dh_log_level lvl;
	sigset_t sigs;
	unsigned port = 0, coap_port = 0, coaps_port = 0;
	struct stat st;
	int rc, sig = 0;

	if (argc > 1 && dh_backup_is_command(argv[1]))
		return dh_backup_main(argc, argv);
	rc = dh_config_parse(argc, argv);
	if (rc != 0)
		return rc == 1 ? 0 : 2;
	if (dh_cfg.list_routes) {
		list_routes();
		return 0;
	}
	if (!dh_log_level_parse(dh_cfg.log_level, &lvl)) {
		fprintf(stderr, "devicehubd: --log-level must be debug, info, warn or error\n");
		return 2;
	}
	dh_log_set_level(lvl);
	/* a bad certificate, key or priority string is a usage error: say what GnuTLS said */
	if (*dh_cfg.tls_cert &&
	    dh_tls_load(dh_cfg.tls_cert, dh_cfg.tls_key, dh_cfg.tls_priorities, &err) != DH_OK) {
		fprintf(stderr, "devicehubd: %s\n", dh_error_detail(&err));
		return 2;
	}

	/* every thread started from here on inherits the blocked set; main waits for them */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_open_files();

	/* first of all: migrations, the blobs/tmp clean-up and session recovery below take
	 * whatever they find for the leftovers of a dead process */
	if (dh_datadir_lock(dh_cfg.data_dir, &err) != DH_OK) {
		fprintf(stderr, "devicehubd: %s\n", dh_error_detail(&err));
		rc = err.code == DH_E_BUSY ? 2 : 1;
		dh_error_release(&err);
		return rc;
	}
	/* before any thread: libcurl's global state is set up once */
	if (dh_outbound_global_init(&err) != DH_OK) {
		fprintf(stderr, "devicehubd: %s\n", dh_error_detail(&err));
		dh_error_release(&err);
		return 1;
	}
	if (dh_db_setup(dh_cfg.database, dh_cfg.data_dir, &err) != DH_OK) {
		/* a bad URL, an unreachable server, a schema newer than this build: exit 2 */
		fprintf(stderr, "devicehubd: %s\n", dh_error_detail(&err));
		dh_error_release(&err);
		return 2;
	}
	if (dh_blob_setup(dh_cfg.data_dir, &err) != DH_OK ||
	    (dh_db_is_shared() && dh_blob_filler_start(&err) != DH_OK)) {
		fprintf(stderr, "devicehubd: %s\n", dh_error_detail(&err));
		dh_error_release(&err);
		return 1;
	}
	if (bootstrap_admin() != 0) {
		dh_blob_filler_stop();
		return 1;
	}
	/* CoAP before the workers, whose link steps put its port into coap_link; it answers
	 * 5.03 until the pipeline has loaded the valid links */
	if (dh_plugins_load(dh_cfg.plugin_dir, &err) != DH_OK ||
	    dh_coap_start(&coap_port, &coaps_port, &err) != DH_OK) {
		fprintf(stderr, "devicehubd: %s\n", dh_error_detail(&err));
		dh_error_release(&err);
		dh_blob_filler_stop();
		return 1;
	}
	if (coap_port || coaps_port)
		dh_info("coap.listening", "address=%s port=%u dtls_port=%u",
			*dh_cfg.coap_listen ? dh_cfg.coap_listen : dh_cfg.listen, coap_port,
			coaps_port);
	if (dh_pipeline_start(dh_cfg.data_dir, dh_cfg.workers, dh_cfg.reaper_interval_ms,
			      dh_cfg.lease_ms, &err) != DH_OK) {
		fprintf(stderr, "devicehubd: %s\n", dh_error_detail(&err));
		dh_error_release(&err);
		dh_coap_stop();
		dh_blob_filler_stop();
		return 1;
	}
	if (dh_webhook_sender_start(&err) != DH_OK) {
		fprintf(stderr, "devicehubd: %s\n", dh_error_detail(&err));
		dh_error_release(&err);
		dh_pipeline_stop();
		dh_blob_filler_stop();
		return 1;
	}
	if (dh_http_start(&port, &err) != DH_OK) {
		fprintf(stderr, "devicehubd: %s\n", dh_error_detail(&err));
		dh_error_release(&err);
		dh_coap_stop();
		dh_pipeline_stop();
		dh_webhook_sender_stop();
		dh_blob_filler_stop();
		return 1;
	}
	dh_info("http.listening", "address=%s port=%u tls=%s data_dir=%s workers=%u database=%s",
		dh_cfg.listen, port, *dh_cfg.tls_cert ? "yes" : "no", dh_cfg.data_dir,
		dh_cfg.workers, dh_db_engine_name());
	print_banner(port);
	if (stat(dh_cfg.web_dir, &st) != 0 || !S_ISDIR(st.st_mode))
		dh_warn("web.missing",
			"dir=\"%s\" detail=\"no dashboard: --web-dir names no directory\"",
			dh_cfg.web_dir);
	else
		dh_info("web.dir", "dir=\"%s\"", dh_cfg.web_dir);

	while (sigwait(&sigs, &sig) != 0 && errno == EINTR)
		;
	dh_info("server.stopping", "signal=%d", sig);
	dh_api_events_stop();
	dh_http_stop();
	dh_coap_stop();
	dh_pipeline_stop();
	dh_webhook_sender_stop();
	dh_blob_filler_stop();
	dh_plugins_unload();
	dh_api_auth_cache_clear();
	dh_db_thread_close();
	dh_db_stop();
	dh_outbound_global_cleanup();
	dh_info("server.stopped", "%s", "");
	return 0;
}
