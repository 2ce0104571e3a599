/*
 * Outbound HTTP with libcurl, shared by the webhook sender and the `http` delivery step: the
 * one way an easy handle is set up (http and https only, no proxy, no redirects, TLS
 * verification on with --webhook-ca, connect and total timeouts, the private-address guard
 * applied to the address actually connected to, the answer captured up to a bound), the URL
 * check made when a webhook or a procedure is saved, and one sentence per failure. Owns no
 * thread; a handle is used by one thread at a time.
 */
#ifndef DH_OUTBOUND_OUTBOUND_H
#define DH_OUTBOUND_OUTBOUND_H

#include "core/err.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

/* Longest URL accepted for a webhook or an http step: beyond this it is a mistake. */
#define DH_OUTBOUND_URL_MAX 2048
/* Room for a failure sentence of dh_outbound_describe. */
#define DH_OUTBOUND_WHY_MAX 300
/* Headers one request may carry besides the ones set here. */
#define DH_OUTBOUND_HEADERS_MAX 32

/* What to send. Strings are borrowed for the call of dh_outbound_init only. */
struct dh_outbound_req {
	const char *method; /* GET, POST, PUT, PATCH, DELETE */
	const char *url;
	const char *const *headers; /* "Name: value" lines, NULL-terminated; may be NULL */
	const char *body;           /* may be NULL */
	size_t body_len;
	long connect_timeout_ms;
	long timeout_ms;       /* the whole transfer, connect included */
	size_t answer_max;     /* answer bytes kept; more are read and dropped, or fail below */
	bool answer_max_fails; /* a longer answer ends the transfer with an error */
};

/* One request's handle and what came back. Caller-owned storage: _init, _release. */
struct dh_outbound {
	CURL *h;
	struct curl_slist *headers;
	char *answer; /* what was kept of the answer, NUL-terminated; NULL until some came */
	size_t answer_len, answer_cap, answer_max;
	bool answer_max_fails;
	bool answer_cut;    /* the answer was longer than answer_max */
	bool allow_private; /* --webhook-allow-private when the handle was made */
	char refused[96];   /* the address the guard refused ("" if none) */
	long timeout_ms;    /* for the sentence of a timeout */
	long connect_timeout_ms;
	char errbuf[CURL_ERROR_SIZE];
	void *user; /* free for the caller */
};

/* curl_global_init; once, from main, before any thread starts. */
enum dh_err dh_outbound_global_init(struct dh_error *err);
void dh_outbound_global_cleanup(void);

/*
 * Prepares o for r with the server's outbound settings (--webhook-allow-private,
 * --webhook-ca). On failure o is released and why (DH_OUTBOUND_WHY_MAX) says why.
 */
enum dh_err dh_outbound_init(struct dh_outbound *o, const struct dh_outbound_req *r, char *why,
			     size_t cap);
void dh_outbound_release(struct dh_outbound *o);

/* The answer's status after a transfer (0 when none came). */
long dh_outbound_status(const struct dh_outbound *o);

/*
 * One sentence for a transfer that ended with rc (CURLE_OK included: then it names the
 * status), e.g. "refused to connect to 127.0.0.1, a loopback address", "cannot connect
 * within 5000 ms", "no answer within 10000 ms", "HTTP 500".
 */
void dh_outbound_describe(const struct dh_outbound *o, CURLcode rc, char *why, size_t cap);

/*
 * The check of a destination URL when it is saved: absolute http or https with a host, at
 * most DH_OUTBOUND_URL_MAX long, and, unless allow_private, a host that is neither a literal
 * loopback, private or link-local address nor a local name. why says what is wrong.
 */
bool dh_outbound_url_check(const char *url, bool allow_private, char *why, size_t cap);

#endif
