/*
 * Service endpoints without authentication: /healthz answers while the database is
 * reachable; /metrics gives request counters and stored sessions per state in the
 * Prometheus text format.
 */
#include "api/api.h"

#include "core/util.h"
#include "dh_db.h"
#include "http/server.h"
#include "webhooks/sender.h"

#include <stdio.h>

enum dh_err dh_api_healthz(struct dh_req *req)
{
	struct dh_error e = { 0 };

	if (dh_db_exec(req->db, "SELECT 1", &e) != DH_OK) {
		dh_error_release(&e);
		return dh_error_set(&req->err, DH_E_UNAVAILABLE, "The database is not reachable.");
	}
	return dh_http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

/* Appends the webhook lines: stored deliveries per status (the outbox backlog is "pending"),
 * the age of the oldest pending one, and this process's attempts and outcomes. */
static int webhook_metrics(struct dh_req *req, char *text, size_t cap)
{
	struct dh_webhook_stats ws;
	int64_t counts[3], oldest;

	if (dh_db_outbox_counts(req->db, counts, &oldest) != DH_OK)
		return -1;
	dh_webhook_sender_stats(&ws);
	return snprintf(
		text, cap,
		"# HELP devicehub_webhook_deliveries Stored webhook deliveries, by status"
		" (pending: the outbox backlog).\n"
		"# TYPE devicehub_webhook_deliveries gauge\n"
		"devicehub_webhook_deliveries{status=\"pending\"} %lld\n"
		"devicehub_webhook_deliveries{status=\"delivered\"} %lld\n"
		"devicehub_webhook_deliveries{status=\"failed\"} %lld\n"
		"# HELP devicehub_webhook_backlog_age_seconds Age of the oldest pending delivery.\n"
		"# TYPE devicehub_webhook_backlog_age_seconds gauge\n"
		"devicehub_webhook_backlog_age_seconds %.3f\n"
		"# HELP devicehub_webhook_attempts_total Delivery attempts of this process, by"
		" result.\n"
		"# TYPE devicehub_webhook_attempts_total counter\n"
		"devicehub_webhook_attempts_total{result=\"2xx\"} %llu\n"
		"devicehub_webhook_attempts_total{result=\"other_status\"} %llu\n"
		"devicehub_webhook_attempts_total{result=\"timeout\"} %llu\n"
		"devicehub_webhook_attempts_total{result=\"refused\"} %llu\n"
		"devicehub_webhook_attempts_total{result=\"error\"} %llu\n"
		"# HELP devicehub_webhook_outcomes_total Deliveries this process finished, by"
		" outcome.\n"
		"# TYPE devicehub_webhook_outcomes_total counter\n"
		"devicehub_webhook_outcomes_total{outcome=\"delivered\"} %llu\n"
		"devicehub_webhook_outcomes_total{outcome=\"failed\"} %llu\n"
		"# HELP devicehub_webhook_in_flight Webhook requests of this process in flight.\n"
		"# TYPE devicehub_webhook_in_flight gauge\n"
		"devicehub_webhook_in_flight %u\n",
		(long long)counts[0], (long long)counts[1], (long long)counts[2],
		oldest ? (double)(dh_now_us() - oldest) / 1e6 : 0.0,
		(unsigned long long)ws.attempts_ok, (unsigned long long)ws.attempts_status,
		(unsigned long long)ws.attempts_timeout, (unsigned long long)ws.attempts_refused,
		(unsigned long long)ws.attempts_error, (unsigned long long)ws.delivered,
		(unsigned long long)ws.failed, ws.in_flight);
}

enum dh_err dh_api_metrics(struct dh_req *req)
{
	struct dh_http_stats st;
	char text[8192];
	int64_t counts[DH_ST__COUNT];
	int n;
	size_t len;

	dh_http_stats_get(&st);
	if (dh_db_session_counts(req->db, counts) != DH_OK)
		return dh_error_set(&req->err, DH_E_UNAVAILABLE, "The database is not reachable.");
	n = snprintf(
		text, sizeof(text),
		"# HELP devicehub_http_requests_total HTTP requests answered, by status class.\n"
		"# TYPE devicehub_http_requests_total counter\n"
		"devicehub_http_requests_total{class=\"2xx\"} %llu\n"
		"devicehub_http_requests_total{class=\"3xx\"} %llu\n"
		"devicehub_http_requests_total{class=\"4xx\"} %llu\n"
		"devicehub_http_requests_total{class=\"5xx\"} %llu\n"
		"# HELP devicehub_http_upload_bytes_total Request body bytes received.\n"
		"# TYPE devicehub_http_upload_bytes_total counter\n"
		"devicehub_http_upload_bytes_total %llu\n"
		"# HELP devicehub_event_subscribers Open /api/v1/events streams.\n"
		"# TYPE devicehub_event_subscribers gauge\n"
		"devicehub_event_subscribers %u\n"
		"# HELP devicehub_http_connections Open HTTP connections.\n"
		"# TYPE devicehub_http_connections gauge\n"
		"devicehub_http_connections %llu\n"
		"# HELP devicehub_http_connections_max Connections served at once (--max-connections "
		"as fitted to the open-files limit).\n"
		"# TYPE devicehub_http_connections_max gauge\n"
		"devicehub_http_connections_max %u\n"
		"# HELP devicehub_http_connections_refused_total Connections refused, by reason.\n"
		"# TYPE devicehub_http_connections_refused_total counter\n"
		"devicehub_http_connections_refused_total{reason=\"max_connections\"} %llu\n"
		"devicehub_http_connections_refused_total{reason=\"per_address\"} %llu\n"
		"devicehub_http_connections_refused_total{reason=\"full\"} %llu\n"
		"# HELP devicehub_http_timeouts_total Connections cut because a request head did "
		"not arrive within --head-timeout, or its body came slower than --min-body-rate.\n"
		"# TYPE devicehub_http_timeouts_total counter\n"
		"devicehub_http_timeouts_total{phase=\"head\"} %llu\n"
		"devicehub_http_timeouts_total{phase=\"body\"} %llu\n"
		"# HELP devicehub_http_lingering Connections answered before their body was read, "
		"kept open a while to drop what the client still sends (lingering close).\n"
		"# TYPE devicehub_http_lingering gauge\n"
		"devicehub_http_lingering %llu\n"
		"# HELP devicehub_http_lingering_closes_total Lingering closes begun.\n"
		"# TYPE devicehub_http_lingering_closes_total counter\n"
		"devicehub_http_lingering_closes_total %llu\n"
		"# HELP devicehub_http_rate_limited_total Requests answered 429, by limit.\n"
		"# TYPE devicehub_http_rate_limited_total counter\n"
		"devicehub_http_rate_limited_total{limit=\"token\"} %llu\n"
		"devicehub_http_rate_limited_total{limit=\"auth_failures\"} %llu\n"
		"# HELP devicehub_auth_failures_total Requests with credentials that did not "
		"authenticate.\n"
		"# TYPE devicehub_auth_failures_total counter\n"
		"devicehub_auth_failures_total %llu\n"
		"# HELP devicehub_http_direct_requests_total Requests answered by the direct "
		"download path.\n"
		"# TYPE devicehub_http_direct_requests_total counter\n"
		"devicehub_http_direct_requests_total %llu\n"
		"# HELP devicehub_http_direct_handoffs_total Connections the direct download path "
		"handed to libmicrohttpd.\n"
		"# TYPE devicehub_http_direct_handoffs_total counter\n"
		"devicehub_http_direct_handoffs_total %llu\n"
		"# HELP devicehub_http_direct_body_bytes_total Answer body bytes the direct download "
		"path handed to the kernel.\n"
		"# TYPE devicehub_http_direct_body_bytes_total counter\n"
		"devicehub_http_direct_body_bytes_total %llu\n",
		st.status_2xx, st.status_3xx, st.status_4xx, st.status_5xx, st.bytes_uploaded,
		dh_api_events_subscribers(), st.conn_open, st.max_connections, st.conn_refused_cap,
		st.conn_refused_address, st.conn_refused_full, st.head_timeouts, st.body_timeouts,
		st.lingering, st.lingered, st.rate_limited_token, st.rate_limited_auth,
		st.auth_failed, st.direct_requests, st.direct_handoffs, st.direct_body_bytes);
	if (n < 0 || (size_t)n >= sizeof(text))
		return DH_E_INTERNAL;
	len = (size_t)n;
	n = snprintf(text + len, sizeof(text) - len,
		     "# HELP devicehub_sessions Stored firmware-update sessions, by state.\n"
		     "# TYPE devicehub_sessions gauge\n");
	for (int s = DH_ST_NONE + 1; n >= 0 && (size_t)n < sizeof(text) - len && s < DH_ST__COUNT;
	     s++) {
		len += (size_t)n;
		n = snprintf(text + len, sizeof(text) - len,
			     "devicehub_sessions{state=\"%s\"} %lld\n",
			     dh_state_name((enum dh_state)s), (long long)counts[s]);
	}
	if (n < 0 || (size_t)n >= sizeof(text) - len)
		return DH_E_INTERNAL;
	len += (size_t)n;
	n = webhook_metrics(req, text + len, sizeof(text) - len);
	if (n < 0 || (size_t)n >= sizeof(text) - len)
		return dh_error_set(&req->err, DH_E_UNAVAILABLE, "The database is not reachable.");
	len += (size_t)n;
	return dh_http_reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
