/*
 * libcurl easy handles for outbound requests (see outbound.h). The private-address guard is
 * an open-socket callback: libcurl resolves the name and asks for a socket for each address
 * it will try, so the check sees the very address connected to, whatever DNS answered.
 */
#include "outbound/outbound.h"

#include "config.h"
#include "core/netaddr.h"
#include "core/text.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* First allocation for an answer; it doubles up to answer_max. */
#define ANSWER_FIRST 1024

enum dh_err dh_outbound_global_init(struct dh_error *err)
{
	CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);

	if (rc != CURLE_OK)
		return dh_error_set(err, DH_E_INTERNAL, "Cannot initialise libcurl: %s",
				    curl_easy_strerror(rc));
	return DH_OK;
}

void dh_outbound_global_cleanup(void)
{
	curl_global_cleanup();
}

static curl_socket_t open_guarded(void *cls, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct dh_outbound *o = cls;
	enum dh_addr_kind k = DH_ADDR_RESERVED;
	char text[INET6_ADDRSTRLEN] = "?";

	(void)purpose;
	if (a->family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&a->addr;
		k = dh_addr_kind_v4((const uint8_t *)&in->sin_addr);
		inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
	} else if (a->family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->addr;
		k = dh_addr_kind_v6(in6->sin6_addr.s6_addr);
		inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
	}
	if (k != DH_ADDR_PUBLIC && !o->allow_private) {
		snprintf(o->refused, sizeof(o->refused), "%s, a%s %s address", text,
			 k == DH_ADDR_UNSPECIFIED ? "n" : "", dh_addr_kind_name(k));
		return CURL_SOCKET_BAD;
	}
	/* close-on-exec: an exec step's program must not inherit a webhook's connection */
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static size_t on_answer(char *data, size_t size, size_t n, void *cls)
{
	struct dh_outbound *o = cls;
	size_t len = size * n, keep = len;

	if (o->answer_len + keep > o->answer_max) {
		o->answer_cut = true;
		if (o->answer_max_fails)
			return 0; /* CURLE_WRITE_ERROR */
		keep = o->answer_max - o->answer_len;
	}
	if (keep && o->answer_len + keep + 1 > o->answer_cap) {
		size_t cap = o->answer_cap ? o->answer_cap : ANSWER_FIRST;
		char *nb;
		while (cap < o->answer_len + keep + 1)
			cap *= 2;
		if (cap > o->answer_max + 1)
			cap = o->answer_max + 1;
		nb = realloc(o->answer, cap);
		if (!nb)
			return 0;
		o->answer = nb;
		o->answer_cap = cap;
	}
	if (keep) {
		memcpy(o->answer + o->answer_len, data, keep);
		o->answer_len += keep;
		o->answer[o->answer_len] = 0;
	}
	return len;
}

static bool method_known(const char *m)
{
	static const char *const known[] = { "GET", "POST", "PUT", "PATCH", "DELETE" };

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (strcmp(m, known[i]) == 0)
			return true;
	}
	return false;
}

static bool add_header(struct dh_outbound *o, const char *line)
{
	struct curl_slist *l = curl_slist_append(o->headers, line);

	if (!l)
		return false;
	o->headers = l;
	return true;
}

enum dh_err dh_outbound_init(struct dh_outbound *o, const struct dh_outbound_req *r, char *why,
			     size_t cap)
{
	const char *m = r->method ? r->method : "GET";
	bool ok;

	memset(o, 0, sizeof(*o));
	if (!method_known(m)) {
		snprintf(why, cap, "unsupported method '%.*s'", DH_TEXT_CUT(m, 20));
		return DH_E_INVALID;
	}
	o->allow_private = dh_cfg.webhook_allow_private;
	o->answer_max = r->answer_max;
	o->answer_max_fails = r->answer_max_fails;
	o->connect_timeout_ms = r->connect_timeout_ms;
	o->timeout_ms = r->timeout_ms;
	o->h = curl_easy_init();
	if (!o->h) {
		snprintf(why, cap, "out of memory");
		return DH_E_NOMEM;
	}
	/* libcurl adds "Expect: 100-continue" to larger bodies and then waits a second for a
	 * 100 that many receivers never send */
	ok = add_header(o, "Expect:");
	for (size_t i = 0; ok && r->headers && r->headers[i]; i++)
		ok = add_header(o, r->headers[i]);
	ok = ok && curl_easy_setopt(o->h, CURLOPT_URL, r->url) == CURLE_OK &&
	     curl_easy_setopt(o->h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
	     curl_easy_setopt(o->h, CURLOPT_PROXY, "") == CURLE_OK &&
	     curl_easy_setopt(o->h, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
	     curl_easy_setopt(o->h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	     curl_easy_setopt(o->h, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
	     curl_easy_setopt(o->h, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
	     curl_easy_setopt(o->h, CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms) == CURLE_OK &&
	     curl_easy_setopt(o->h, CURLOPT_TIMEOUT_MS, r->timeout_ms) == CURLE_OK &&
	     curl_easy_setopt(o->h, CURLOPT_USERAGENT, "devicehub/" DH_VERSION) == CURLE_OK &&
	     curl_easy_setopt(o->h, CURLOPT_HTTPHEADER, o->headers) == CURLE_OK &&
	     curl_easy_setopt(o->h, CURLOPT_OPENSOCKETFUNCTION, open_guarded) == CURLE_OK &&
	     curl_easy_setopt(o->h, CURLOPT_OPENSOCKETDATA, o) == CURLE_OK &&
	     curl_easy_setopt(o->h, CURLOPT_WRITEFUNCTION, on_answer) == CURLE_OK &&
	     curl_easy_setopt(o->h, CURLOPT_WRITEDATA, o) == CURLE_OK &&
	     curl_easy_setopt(o->h, CURLOPT_ERRORBUFFER, o->errbuf) == CURLE_OK;
	if (ok && dh_cfg.webhook_ca && *dh_cfg.webhook_ca)
		ok = curl_easy_setopt(o->h, CURLOPT_CAINFO, dh_cfg.webhook_ca) == CURLE_OK;
	if (ok && strcmp(m, "GET") != 0)
		ok = curl_easy_setopt(o->h, CURLOPT_CUSTOMREQUEST, m) == CURLE_OK;
	if (ok && (r->body || strcmp(m, "POST") == 0))
		ok = curl_easy_setopt(o->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len) ==
			     CURLE_OK &&
		     curl_easy_setopt(o->h, CURLOPT_COPYPOSTFIELDS, r->body ? r->body : "") ==
			     CURLE_OK;
	if (!ok) {
		snprintf(why, cap, "cannot prepare the request (libcurl refused an option)");
		dh_outbound_release(o);
		return DH_E_INTERNAL;
	}
	return DH_OK;
}

void dh_outbound_release(struct dh_outbound *o)
{
	if (o->h)
		curl_easy_cleanup(o->h);
	curl_slist_free_all(o->headers);
	free(o->answer);
	memset(o, 0, sizeof(*o));
}

long dh_outbound_status(const struct dh_outbound *o)
{
	long status = 0;

	if (!o->h || curl_easy_getinfo(o->h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
		return 0;
	return status;
}

/* Was the connection made? (libcurl's connect time stays 0 until it is) */
static bool connected(const struct dh_outbound *o)
{
	curl_off_t us = 0;

	return o->h && curl_easy_getinfo(o->h, CURLINFO_CONNECT_TIME_T, &us) == CURLE_OK && us > 0;
}

void dh_outbound_describe(const struct dh_outbound *o, CURLcode rc, char *why, size_t cap)
{
	const char *detail = o->errbuf[0] ? o->errbuf : curl_easy_strerror(rc);

	if (*o->refused) {
		snprintf(why, cap,
			 "refused to connect to %s (start devicehubd with --webhook-allow-private"
			 " to allow it)",
			 o->refused);
		return;
	}
	switch (rc) {
	case CURLE_OK:
		snprintf(why, cap, "HTTP %ld", dh_outbound_status(o));
		return;
	case CURLE_OPERATION_TIMEDOUT:
		/* a receiver that never accepts ends at the connect timeout, not the total one */
		if (!connected(o)) {
			long ms = o->connect_timeout_ms && o->connect_timeout_ms < o->timeout_ms
					  ? o->connect_timeout_ms
					  : o->timeout_ms;
			snprintf(why, cap, "cannot connect within %ld ms", ms);
			return;
		}
		snprintf(why, cap, "no answer within %ld ms", o->timeout_ms);
		return;
	case CURLE_WRITE_ERROR:
		if (o->answer_cut) {
			snprintf(why, cap, "HTTP %ld with an answer larger than %zu bytes",
				 dh_outbound_status(o), o->answer_max);
			return;
		}
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
		snprintf(why, cap, "cannot resolve the host: %s", detail);
		return;
	case CURLE_COULDNT_CONNECT:
		snprintf(why, cap, "cannot connect: %s", detail);
		return;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		snprintf(why, cap, "TLS failed: %s", detail);
		return;
	default:
		break;
	}
	snprintf(why, cap, "%s", detail);
}

bool dh_outbound_url_check(const char *url, bool allow_private, char *why, size_t cap)
{
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL;
	enum dh_addr_kind k;
	bool ok = false;

	if (!url || !*url) {
		snprintf(why, cap, "must be an absolute http or https URL");
		return false;
	}
	if (strlen(url) > DH_OUTBOUND_URL_MAX) {
		snprintf(why, cap, "must be at most %d characters", DH_OUTBOUND_URL_MAX);
		return false;
	}
	/* libcurl takes "http:///x" as host x; a URL written so is a mistake */
	if ((strncasecmp(url, "http://", 7) != 0 || url[7] == '/') &&
	    (strncasecmp(url, "https://", 8) != 0 || url[8] == '/')) {
		snprintf(why, cap, "must be an absolute http or https URL");
		return false;
	}
	u = curl_url();
	if (!u) {
		snprintf(why, cap, "cannot be checked now (out of memory)");
		return false;
	}
	if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
		snprintf(why, cap, "must be an absolute http or https URL");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
		snprintf(why, cap, "must name a host");
		goto out;
	}
	k = dh_host_kind(host);
	if (k != DH_ADDR_PUBLIC && !allow_private) {
		snprintf(why, cap,
			 "%.*s is a%s %s address; start devicehubd with --webhook-allow-private"
			 " to allow it",
			 DH_TEXT_CUT(host, 100), k == DH_ADDR_UNSPECIFIED ? "n" : "",
			 dh_addr_kind_name(k));
		goto out;
	}
	ok = true;
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}
