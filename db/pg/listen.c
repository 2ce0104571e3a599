/*
 * The change listener of a process on a shared PostgreSQL: one thread with its own
 * connection that LISTENs on "devicehub". Every commit that changed rows notifies ("w", or
 * "a" when users, tokens or rights changed); every event emitted in a transaction notifies
 * its row ("e <origin> <seq>"). The listener moves this process's write and auth
 * generations (so read caches drop what another process changed), copies other processes'
 * events into the local event bus, and wakes the workers. While it has no connection the
 * generations are not trusted (caches are bypassed) and it reconnects every second.
 */
#include "pg/pg.h"

#include "core/events.h"
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long one wait for a notification lasts: bounds how late the thread notices stop. */
#define LISTEN_POLL_MS 200
/* Pause between reconnection attempts after the connection was lost. */
#define LISTEN_RETRY_MS 1000
/* Events are kept this long for the other processes' listeners, then pruned. */
#define EVENTS_KEEP_US (600LL * 1000000)
/* How often the listener prunes old events. */
#define EVENTS_PRUNE_US (60LL * 1000000)

static struct {
	pthread_t th;
	bool started;
	atomic_bool stop;
	char *target;
} lst;

static void (*remote_hook)(const char *type, const char *session_id);

void dh_db_set_remote_hook(void (*fn)(const char *type, const char *session_id))
{
	remote_hook = fn;
}

/* Copies event seq of another process into the local bus. */
static void fetch_event(PGconn *c, const char *seq)
{
	const char *vals[1] = { seq };
	PGresult *res = PQexecParams(c,
				     "SELECT type, session_id, product_id, model_id, channel_id,"
				     " data, need FROM events WHERE seq = $1",
				     1, NULL, vals, NULL, NULL, 0);
	json_t *data = NULL;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		const char *ch = PQgetisnull(res, 0, 4) ? NULL : PQgetvalue(res, 0, 4);
		if (!PQgetisnull(res, 0, 5))
			data = json_loads(PQgetvalue(res, 0, 5), JSON_DECODE_ANY, NULL);
		dh_events_publish_for(dh_action_parse(PQgetvalue(res, 0, 6)), PQgetvalue(res, 0, 0),
				      PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
				      PQgetvalue(res, 0, 3), ch && *ch ? ch : NULL, data);
		json_decref(data);
		if (remote_hook)
			remote_hook(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
	}
	PQclear(res);
}

/* "k origin [seq]" */
static void handle(PGconn *c, const char *payload)
{
	char kind = payload[0], who[DH_UUID_LEN] = "";
	const char *rest = strchr(payload, ' ');
	size_t n;

	if (!rest)
		return;
	rest++;
	n = strcspn(rest, " ");
	if (n >= sizeof(who))
		return;
	memcpy(who, rest, n);
	who[n] = 0;
	if (strcmp(who, dh_pg_origin()) == 0)
		return; /* our own commit: already counted */
	switch (kind) {
	case 'a':
		dh_db_auth_bump();
		dh_db_write_bump();
		break;
	case 'w':
		dh_db_write_bump();
		break;
	case 'e':
		if (rest[n] == ' ')
			fetch_event(c, rest + n + 1);
		break;
	default:
		break;
	}
}

static void sleep_ms(int ms)
{
	poll(NULL, 0, ms);
}

static PGconn *listen_connect(void)
{
	struct dh_error err = { 0 };
	PGconn *c = dh_pg_connect(lst.target, &err);
	PGresult *res;

	if (!c) {
		dh_warn("db.listen", "detail=\"%s\"", dh_error_detail(&err));
		dh_error_release(&err);
		return NULL;
	}
	res = PQexec(c, "LISTEN devicehub");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		dh_warn("db.listen", "detail=\"%s\"", PQerrorMessage(c));
		PQclear(res);
		PQfinish(c);
		return NULL;
	}
	PQclear(res);
	/* what changed while nobody listened is unknown: everything cached is old now */
	dh_db_write_trust(true);
	dh_db_auth_trust(true);
	dh_info("db.listening", "channel=devicehub origin=%s", dh_pg_origin());
	return c;
}

static void prune(PGconn *c, int64_t now)
{
	char sql[128];
	int n = snprintf(sql, sizeof(sql), "DELETE FROM events WHERE create_us < %lld",
			 (long long)(now - EVENTS_KEEP_US));

	if (n > 0 && (size_t)n < sizeof(sql))
		PQclear(PQexec(c, sql));
}

static void *listen_main(void *arg)
{
	PGconn *c = NULL;
	int64_t next_prune = 0;

	(void)arg;
	while (!atomic_load(&lst.stop)) {
		struct pollfd pfd;
		PGnotify *note;
		int64_t now;

		if (!c) {
			c = listen_connect();
			if (!c) {
				sleep_ms(LISTEN_RETRY_MS);
				continue;
			}
		}
		pfd.fd = PQsocket(c);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, LISTEN_POLL_MS) < 0 && errno != EINTR)
			sleep_ms(LISTEN_POLL_MS);
		if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK) {
			dh_warn("db.listen", "what=lost detail=\"%s\"", PQerrorMessage(c));
			PQfinish(c);
			c = NULL;
			dh_db_write_trust(false);
			dh_db_auth_trust(false);
			continue;
		}
		while ((note = PQnotifies(c)) != NULL) {
			handle(c, note->extra);
			PQfreemem(note);
		}
		now = dh_now_us();
		if (now >= next_prune) {
			prune(c, now);
			next_prune = now + EVENTS_PRUNE_US;
		}
	}
	PQfinish(c);
	dh_db_thread_close(); /* the remote hook's connection, if it opened one */
	return NULL;
}

enum dh_err dh_pg_listen_start(const char *target, struct dh_error *err)
{
	if (lst.started)
		return DH_OK;
	lst.target = strdup(target);
	if (!lst.target)
		return dh_error_set(err, DH_E_NOMEM, NULL);
	atomic_store(&lst.stop, false);
	if (pthread_create(&lst.th, NULL, listen_main, NULL) != 0) {
		free(lst.target);
		lst.target = NULL;
		return dh_error_set(err, DH_E_INTERNAL, "Cannot start the change listener.");
	}
	lst.started = true;
	return DH_OK;
}

void dh_pg_listen_stop(void)
{
	if (!lst.started)
		return;
	atomic_store(&lst.stop, true);
	pthread_join(lst.th, NULL);
	lst.started = false;
	free(lst.target);
	lst.target = NULL;
}
