/*
 * The `http` delivery step (see http_step.h): params check, placeholder templates, and the
 * run on a worker thread, one blocking libcurl transfer set up by outbound/outbound.h with
 * the step's deadline as its timeout and the step's cancellation flag polled from libcurl's
 * progress callback. Talks to the session only through its step context.
 */
#include "plugins/http_step.h"

#include "config.h"
#include "core/text.h"
#include "core/util.h"
#include "outbound/outbound.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Statuses one step may list in expect. */
#define EXPECT_MAX 32
/* Longest header name: real ones are short tokens. */
#define HEADER_NAME_MAX 64

static const struct {
	const char *name;
	size_t off;
	const char *missing; /* why the value can be absent */
} placeholders[] = {
	{ "session.id", offsetof(struct dh_http_vars, session_id), "" },
	{ "device.id", offsetof(struct dh_http_vars, device_id),
	  "the session was requested without a device_id" },
	{ "firmware.version", offsetof(struct dh_http_vars, fw_version),
	  "the session has no target firmware" },
	{ "firmware.sha256", offsetof(struct dh_http_vars, fw_sha256),
	  "the session has no target firmware" },
	{ "firmware.size", offsetof(struct dh_http_vars, fw_size),
	  "the session has no target firmware" },
	{ "link", offsetof(struct dh_http_vars, link),
	  "the payload has no download_link yet (put a link step before this one)" },
	{ "short_link", offsetof(struct dh_http_vars, short_link),
	  "the payload has no short_link yet (put a step that makes one before this one)" },
	{ "coap_link", offsetof(struct dh_http_vars, coap_link),
	  "the payload has no coap_link yet (put a step that makes one before this one)" },
};

static bool bad(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool bad(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (why && cap) {
		va_start(ap, fmt);
		vsnprintf(why, cap, fmt, ap);
		va_end(ap);
	}
	return false;
}

struct text {
	char *data;
	size_t len, cap;
};

static bool put(struct text *t, const char *s, size_t n)
{
	if (t->len + n + 1 > DH_HTTP_STEP_TEXT_MAX)
		return false;
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 256;
		char *nd;
		while (cap < t->len + n + 1)
			cap *= 2;
		nd = realloc(t->data, cap);
		if (!nd)
			return false;
		t->data = nd;
		t->cap = cap;
	}
	memcpy(t->data + t->len, s, n);
	t->len += n;
	t->data[t->len] = 0;
	return true;
}

/*
 * Appends s percent-encoded: RFC 3986 unreserved characters stay as they are, but for the
 * dots of a value made of dots only. A device_id of ".." would otherwise be a dot segment
 * ("/clients/{device.id}/5" -> "/clients/../5"), which libcurl and the receiver resolve to
 * another path of the receiver ("/5"): a device must not choose the path it is sent to.
 */
static bool put_encoded(struct text *t, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	bool only_dots = *s && strspn(s, ".") == strlen(s);

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char e[3] = { '%', hex[c >> 4], hex[c & 15] };
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '-' || (c == '.' && !only_dots) ||
			     c == '_' || c == '~';
		if (!(plain ? put(t, s, 1) : put(t, e, 3)))
			return false;
	}
	return true;
}

bool dh_http_step_expand(const char *tmpl, const struct dh_http_vars *vars, bool url_encode,
			 char **out, char *why, size_t cap)
{
	struct text t = { 0 };
	const char *p = tmpl;
	bool ok = true;

	*out = NULL;
	while (ok && *p) {
		const char *end, *value;
		size_t n, i;

		if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
			ok = put(&t, p, 1) || bad(why, cap, "longer than %d bytes once expanded",
						  DH_HTTP_STEP_TEXT_MAX);
			p += 2;
			continue;
		}
		if (p[0] != '{') {
			n = strcspn(p, "{}");
			if (n == 0)
				n = 1; /* a lone '}' */
			ok = put(&t, p, n) || bad(why, cap, "longer than %d bytes once expanded",
						  DH_HTTP_STEP_TEXT_MAX);
			p += n;
			continue;
		}
		end = strchr(p, '}');
		n = end ? (size_t)(end - p - 1) : 0;
		for (i = 0; end && i < sizeof(placeholders) / sizeof(placeholders[0]); i++) {
			if (strlen(placeholders[i].name) == n &&
			    strncmp(placeholders[i].name, p + 1, n) == 0)
				break;
		}
		if (!end || i == sizeof(placeholders) / sizeof(placeholders[0])) {
			ok = bad(why, cap,
				 "unknown placeholder '%.*s' (known: {session.id}, {device.id},"
				 " {firmware.version}, {firmware.sha256}, {firmware.size}, {link},"
				 " {short_link}, {coap_link}; write {{ for a brace)",
				 DH_TEXT_CUT(p, 40));
			break;
		}
		p = end + 1;
		if (!vars)
			continue;
		value = *(const char *const *)((const char *)vars + placeholders[i].off);
		if (!value || !*value) {
			ok = bad(why, cap, "{%s} has no value: %s", placeholders[i].name,
				 placeholders[i].missing);
			break;
		}
		ok = (url_encode ? put_encoded(&t, value) : put(&t, value, strlen(value))) ||
		     bad(why, cap, "longer than %d bytes once expanded", DH_HTTP_STEP_TEXT_MAX);
	}
	if (ok && !t.data)
		ok = put(&t, "", 0) || bad(why, cap, "out of memory");
	if (!ok) {
		free(t.data);
		return false;
	}
	*out = t.data;
	return true;
}

/* A copy of the JSON template v with its strings expanded (new reference), or NULL. */
static json_t *expand_json(const json_t *v, const struct dh_http_vars *vars, char *why, size_t cap)
{
	json_t *out = NULL, *item;
	const char *k;
	size_t i;
	char *s = NULL;

	switch (json_typeof(v)) {
	case JSON_STRING:
		if (!dh_http_step_expand(json_string_value(v), vars, false, &s, why, cap))
			return NULL;
		/* the one number among the values: alone in a string, it is sent as a number */
		if (vars && strcmp(json_string_value(v), "{firmware.size}") == 0)
			out = json_integer(strtoll(s, NULL, 10));
		else
			out = json_string(s);
		free(s);
		if (!out)
			bad(why, cap, "a value is not valid UTF-8 once expanded");
		return out;
	case JSON_OBJECT:
		out = json_object();
		json_object_foreach((json_t *)v, k, item)
		{
			json_t *e = out ? expand_json(item, vars, why, cap) : NULL;
			if (!e || json_object_set_new(out, k, e) != 0) {
				json_decref(out);
				return NULL;
			}
		}
		return out;
	case JSON_ARRAY:
		out = json_array();
		json_array_foreach(v, i, item)
		{
			json_t *e = out ? expand_json(item, vars, why, cap) : NULL;
			if (!e || json_array_append_new(out, e) != 0) {
				json_decref(out);
				return NULL;
			}
		}
		return out;
	default:
		return json_deep_copy(v);
	}
}

static bool header_name_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= HEADER_NAME_MAX &&
	       strspn(s, "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
			 "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == n;
}

static bool header_value_ok(const char *s, size_t len)
{
	if (len > DH_HTTP_STEP_HEADER_MAX || strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

static const char *const methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE" };

/* Every value a template can take, for checking a URL's shape when it is saved. */
static const struct dh_http_vars sample_vars = { "s",
						 "d",
						 "1.0.0",
						 "0",
						 "1",
						 "https://example.com/l",
						 "https://example.com/s",
						 "coap://example.com/c" };

/* The params of one step, borrowed from the params object. */
struct params {
	const char *method;
	const char *url;
	const json_t *headers;
	const json_t *body;
	const json_t *expect;
};

/* Reads params into p. saving: the private-address rule is applied to the URL too (at run
 * time the connect-time guard applies it to the address actually connected to). */
static bool parse_params(const json_t *params, struct params *p, bool saving, char *why, size_t cap)
{
	const char *k, *hk;
	json_t *v, *hv;
	char *text = NULL, sub[DH_OUTBOUND_WHY_MAX];
	size_t i;
	bool ok;

	memset(p, 0, sizeof(*p));
	p->method = "POST";
	if (!json_is_object(params))
		return bad(why, cap, "url: required");
	json_object_foreach((json_t *)params, k, v)
	{
		if (strcmp(k, "method") == 0) {
			p->method = json_string_value(v);
			for (i = 0; p->method && i < sizeof(methods) / sizeof(methods[0]); i++) {
				if (strcmp(p->method, methods[i]) == 0)
					break;
			}
			if (!p->method || i == sizeof(methods) / sizeof(methods[0]))
				return bad(why, cap,
					   "method: must be GET, POST, PUT, PATCH or DELETE");
		} else if (strcmp(k, "url") == 0) {
			p->url = json_string_value(v);
			if (!p->url)
				return bad(why, cap, "url: must be a string");
		} else if (strcmp(k, "headers") == 0) {
			if (!json_is_object(v) || json_object_size(v) > DH_HTTP_STEP_HEADERS)
				return bad(why, cap,
					   "headers: must be an object of at most %d strings",
					   DH_HTTP_STEP_HEADERS);
			json_object_foreach(v, hk, hv)
			{
				if (!header_name_ok(hk))
					return bad(why, cap, "headers: '%.*s' is not a header name",
						   DH_TEXT_CUT(hk, 64));
				if (!json_is_string(hv) ||
				    !header_value_ok(json_string_value(hv), json_string_length(hv)))
					return bad(why, cap,
						   "headers.%s: must be a string of at most %d"
						   " printable characters",
						   hk, DH_HTTP_STEP_HEADER_MAX);
				if (!dh_http_step_expand(json_string_value(hv), NULL, false, &text,
							 sub, sizeof(sub)))
					return bad(why, cap, "headers.%s: %s", hk, sub);
				free(text);
			}
			p->headers = v;
		} else if (strcmp(k, "body") == 0) {
			json_t *e = expand_json(v, NULL, sub, sizeof(sub));
			if (!e)
				return bad(why, cap, "body: %s", sub);
			json_decref(e);
			p->body = v;
		} else if (strcmp(k, "expect") == 0) {
			if (!json_is_array(v) || json_array_size(v) == 0 ||
			    json_array_size(v) > EXPECT_MAX)
				return bad(why, cap,
					   "expect: must be a list of 1 to %d status codes",
					   EXPECT_MAX);
			json_array_foreach(v, i, hv)
			{
				if (!json_is_integer(hv) || json_integer_value(hv) < 100 ||
				    json_integer_value(hv) > 599)
					return bad(why, cap,
						   "expect[%zu]: must be a status code 100..599",
						   i);
			}
			p->expect = v;
		} else if (strcmp(k, "timeout") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > DH_HTTP_STEP_TIMEOUT_MAX)
				return bad(why, cap, "timeout: must be an integer 1..%d (seconds)",
					   DH_HTTP_STEP_TIMEOUT_MAX);
		} else {
			return bad(why, cap,
				   "%.*s: unknown key (known: method, url, headers, body,"
				   " expect, timeout)",
				   DH_TEXT_CUT(k, 64));
		}
	}
	if (!p->url)
		return bad(why, cap, "url: required");
	if (p->body && strcmp(p->method, "GET") == 0)
		return bad(why, cap, "body: a GET request has no body");
	/* placeholders only after the host: they must not choose where the request goes */
	{
		const char *auth = strstr(p->url, "://");
		size_t n = auth ? strcspn(auth + 3, "/?#") : 0;
		if (auth && memchr(auth + 3, '{', n))
			return bad(why, cap,
				   "url: placeholders may not appear in the host or port");
	}
	if (!dh_http_step_expand(p->url, &sample_vars, true, &text, sub, sizeof(sub)))
		return bad(why, cap, "url: %s", sub);
	ok = dh_outbound_url_check(text, !saving || dh_cfg.webhook_allow_private, sub, sizeof(sub));
	free(text);
	if (!ok)
		return bad(why, cap, "url: %s", sub);
	return true;
}

bool dh_http_step_validate(const json_t *params, char *why, size_t cap)
{
	struct params p;

	return parse_params(params, &p, true, why, cap);
}

/* ---- the run ---- */

static int on_progress(void *cls, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct dh_step_ctx *ctx = cls;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return ctx->cancelled(ctx) ? 1 : 0;
}

static const char *payload_str(const struct dh_step_ctx *ctx, const char *key)
{
	return json_string_value(json_object_get(ctx->payload, key));
}

static bool status_expected(const json_t *expect, long status)
{
	size_t i;
	json_t *v;

	if (!expect)
		return status >= 200 && status <= 299;
	json_array_foreach(expect, i, v)
	{
		if (json_integer_value(v) == status)
			return true;
	}
	return false;
}

/* The request's header lines (malloc'd strings in a NULL-terminated array). */
static char **header_lines(const struct params *p, const struct dh_http_vars *vars, bool *has_type,
			   char *why, size_t cap)
{
	size_t n = 0;
	char **lines = calloc(DH_HTTP_STEP_HEADERS + 1, sizeof(*lines));
	const char *k;
	json_t *v;

	*has_type = false;
	if (!lines) {
		bad(why, cap, "out of memory");
		return NULL;
	}
	json_object_foreach((json_t *)p->headers, k, v)
	{
		char *value = NULL, *line;
		size_t len;
		if (n == DH_HTTP_STEP_HEADERS)
			break;
		if (!dh_http_step_expand(json_string_value(v), vars, false, &value, why, cap))
			goto fail;
		len = strlen(k) + strlen(value) + 3;
		line = malloc(len);
		if (!line || !header_value_ok(value, strlen(value))) {
			free(line);
			free(value);
			bad(why, cap, "headers.%s: not a valid header value once expanded", k);
			goto fail;
		}
		snprintf(line, len, "%s: %s", k, value);
		free(value);
		lines[n++] = line;
		if (strcasecmp(k, "Content-Type") == 0)
			*has_type = true;
	}
	return lines;
fail:
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	return NULL;
}

static void free_lines(char **lines)
{
	for (size_t i = 0; lines && lines[i]; i++)
		free(lines[i]);
	free(lines);
}

static enum dh_step_result http_run(struct dh_step_ctx *ctx)
{
	struct params p;
	struct dh_http_vars vars = { 0 };
	struct dh_outbound o = { 0 };
	struct dh_outbound_req r = { 0 };
	const char *lines[DH_HTTP_STEP_HEADERS + 3] = { 0 };
	char **own = NULL, *url = NULL, *body = NULL, size[24], why[DH_STEP_ERROR_MAX];
	char excerpt[DH_HTTP_STEP_EXCERPT + 4];
	json_t *b = NULL, *answer = NULL, *merge = NULL;
	enum dh_step_result res = DH_STEP_FAIL;
	bool has_type = false;
	int64_t left = ctx->deadline_ms - dh_mono_ms();
	long status;
	size_t n = 0;
	CURLcode rc;

	why[0] = 0;
	if (!parse_params(ctx->params, &p, false, why, sizeof(why)))
		goto out;
	snprintf(size, sizeof(size), "%llu", (unsigned long long)ctx->image_size);
	vars.session_id = ctx->session_id;
	vars.device_id = ctx->device_id;
	vars.fw_version = ctx->target_version;
	vars.fw_sha256 = ctx->image_sha256;
	vars.fw_size = *ctx->image_sha256 ? size : NULL;
	vars.link = payload_str(ctx, "download_link");
	vars.short_link = payload_str(ctx, "short_link");
	vars.coap_link = payload_str(ctx, "coap_link");
	if (!dh_http_step_expand(p.url, &vars, true, &url, why, sizeof(why)))
		goto out;
	if (p.headers && !(own = header_lines(&p, &vars, &has_type, why, sizeof(why))))
		goto out;
	for (size_t i = 0; own && own[i]; i++)
		lines[n++] = own[i];
	if (p.body) {
		b = expand_json(p.body, &vars, why, sizeof(why));
		if (!b)
			goto out;
		body = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!body) {
			snprintf(why, sizeof(why), "out of memory");
			goto out;
		}
		if (!has_type)
			lines[n++] = "Content-Type: application/json";
	}
	lines[n++] = "Accept: application/json";
	if (left <= 0) {
		res = DH_STEP_CANCELLED;
		goto out;
	}
	r.method = p.method;
	r.url = url;
	r.headers = lines;
	r.body = body;
	r.body_len = body ? strlen(body) : 0;
	r.timeout_ms = (long)left;
	r.connect_timeout_ms = (long)dh_cfg.webhook_connect_timeout * 1000;
	if (r.connect_timeout_ms <= 0 || r.connect_timeout_ms > r.timeout_ms)
		r.connect_timeout_ms = r.timeout_ms;
	r.answer_max = DH_HTTP_STEP_ANSWER_MAX;
	r.answer_max_fails = true;
	if (dh_outbound_init(&o, &r, why, sizeof(why)) != DH_OK)
		goto out;
	if (curl_easy_setopt(o.h, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK ||
	    curl_easy_setopt(o.h, CURLOPT_XFERINFODATA, ctx) != CURLE_OK ||
	    curl_easy_setopt(o.h, CURLOPT_NOPROGRESS, 0L) != CURLE_OK) {
		snprintf(why, sizeof(why), "cannot prepare the request");
		goto out;
	}
	rc = curl_easy_perform(o.h);
	if (rc == CURLE_ABORTED_BY_CALLBACK) {
		res = DH_STEP_CANCELLED;
		goto out;
	}
	if (rc != CURLE_OK) {
		dh_outbound_describe(&o, rc, why, sizeof(why));
		goto out;
	}
	status = dh_outbound_status(&o);
	if (!status_expected(p.expect, status)) {
		dh_text_clean(excerpt, sizeof(excerpt), o.answer ? o.answer : "", o.answer_len);
		snprintf(why, sizeof(why), "%s answered HTTP %ld, expected %s%s%s", p.method,
			 status, p.expect ? "another status" : "2xx", *excerpt ? ": " : "",
			 excerpt);
		goto out;
	}
	/* a JSON answer goes into the payload under the step's name; others are only checked
	 * for their status */
	answer = o.answer_len ? json_loadb(o.answer, o.answer_len,
					   JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL)
			      : NULL;
	if (answer) {
		merge = json_object();
		if (!merge || json_object_set(merge, ctx->step_name, answer) != 0 ||
		    ctx->merge(ctx, merge) != 0) {
			snprintf(why, sizeof(why), "could not store the answer in the payload");
			goto out;
		}
	}
	res = DH_STEP_OK;
out:
	if (res == DH_STEP_FAIL)
		snprintf(ctx->error, sizeof(ctx->error), "%s", *why ? why : "it failed");
	dh_outbound_release(&o);
	free_lines(own);
	free(url);
	free(body);
	json_decref(b);
	json_decref(answer);
	json_decref(merge);
	return res;
}

const struct dh_plugin dh_plugin_http = {
	.abi = DH_PLUGIN_ABI,
	.name = "http",
	.admin_only = false,
	.run = http_run,
};
