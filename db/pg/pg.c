/*
 * The PostgreSQL engine (driver.h) over libpq: connections from a URL or key=value string,
 * statements prepared per connection (?N rewritten to $N) and run with text parameters,
 * SQLSTATE mapped to enum dh_err, READ COMMITTED write transactions whose commit also
 * notifies the other processes on the channel "devicehub". The listener (pg_listen.c)
 * receives those notifications. The only files that include <libpq-fe.h>.
 */
#include "pg/pg.h"

#include "log.h"

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seconds libpq waits to connect unless the URL says otherwise: an unreachable server is an
 * error at start-up, not a hang. */
#define PG_CONNECT_TIMEOUT "10"
/* Longest error sentence kept from the server. */
#define PG_ERR_MAX 512

struct pg_db {
	struct dh_db base; /* first */
	PGconn *c;
	unsigned next_name; /* prepared statement names s1, s2, ... */
	bool dirty;         /* the running transaction changed a row */
	char state[6];      /* SQLSTATE of the last error ("" for none) */
	char msg[PG_ERR_MAX];
	char detail[PG_ERR_MAX];
};

struct pg_stmt {
	struct dh_stmt base; /* first */
	char name[16];       /* "" for a statement prepared once (the unnamed statement) */
	PGresult *res;
	int row, nrows;
	int64_t changes;
};

static char origin[DH_UUID_LEN]; /* this process, in notifications; set once */
static pthread_once_t origin_once = PTHREAD_ONCE_INIT;

static void make_origin(void)
{
	dh_uuid_new(origin);
}

const char *dh_pg_origin(void)
{
	pthread_once(&origin_once, make_origin);
	return origin;
}

static struct pg_db *P(struct dh_db *db)
{
	return (struct pg_db *)db;
}

static struct pg_stmt *PS(struct dh_stmt *st)
{
	return (struct pg_stmt *)st;
}

/* Notices (e.g. "relation already exists, skipping") are not errors: debug lines only. */
static void on_notice(void *cls, const char *message)
{
	(void)cls;
	dh_debug("db.notice", "engine=postgresql detail=\"%.200s\"", message);
}

/* What is wrong with a connection string libpq refused, in our own words. libpq's own
 * sentence quotes the offending part, which may be (part of) the password, so it is only
 * matched here, never shown. */
static const struct {
	const char *libpq; /* a phrase of libpq's message */
	const char *ours;
} parse_problems[] = {
	{ "forbidden value %00", "a %-escape encodes a zero byte" },
	{ "percent-encoded", "a % is not followed by two hexadecimal digits" },
	{ "IPv6", "an IPv6 host address in [ ] is not closed, or is followed by junk" },
	{ "invalid URI query parameter", "a parameter after ? is not a libpq connection option" },
	{ "key/value separator", "a parameter after ? is not written key=value" },
	{ "invalid connection option", "a key is not a libpq connection option" },
	{ "missing \"=\"", "a key is not followed by =" },
	{ "unterminated quoted string", "a quoted value has no closing quote" },
	{ "out of memory", "out of memory" },
};

static const char *parse_problem(const char *why)
{
	size_t i;

	for (i = 0; why && i < sizeof(parse_problems) / sizeof(parse_problems[0]); i++)
		if (strstr(why, parse_problems[i].libpq))
			return parse_problems[i].ours;
	return why ? "it is neither a postgresql:// URI nor key=value pairs that libpq accepts"
		   : "out of memory";
}

static const char *opt_value(const PQconninfoOption *opts, const char *key)
{
	for (; opts && opts->keyword; opts++)
		if (strcmp(opts->keyword, key) == 0)
			return opts->val;
	return NULL;
}

/* May a user or host name be shown? Only plain names: a string libpq split in the wrong
 * place (an unescaped '@' or '/' in a password) must not carry a piece of it out. */
static bool is_plain_name(const char *s)
{
	if (!s || !*s || strlen(s) > 255)
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || strchr("._-:/[],", *s)))
			return false;
	return true;
}

/* The raw password of a URI ("postgresql://user:PASSWORD@"), still %-escaped, as a span of
 * target; none when there is no '@' before the path. */
static void uri_password(const char *target, const char **p, size_t *n)
{
	const char *a, *end, *colon, *at;

	*p = NULL;
	*n = 0;
	a = strstr(target, "://");
	if (!a)
		return;
	a += 3;
	end = a + strcspn(a, "/?");
	at = memchr(a, '@', (size_t)(end - a));
	if (!at)
		return;
	colon = memchr(a, ':', (size_t)(at - a));
	if (colon && at > colon + 1) {
		*p = colon + 1;
		*n = (size_t)(at - colon - 1);
	}
}

static bool contains_span(const char *hay, const char *p, size_t n)
{
	const char *h;

	if (!p || !n)
		return false;
	for (h = hay; (h = strchr(h, *p)) != NULL; h++)
		if (strncmp(h, p, n) == 0)
			return true;
	return false;
}

/* libpq's reason for a failed connection, fit to print: its first line with every quoted
 * value replaced by "..." unless it is an option name or the user or host shown beside it
 * (libpq quotes e.g. a bad port, which for "postgresql://u:pw/db" is the password), and
 * withheld whole if it still contains the password. */
static void connect_reason(const char *msg, const PQconninfoOption *opts, const char *target,
			   const char *user, const char *host, char *out, size_t size)
{
	const char *pw = opt_value(opts, "password"), *raw;
	size_t len = 0, rawn, n;
	const char *q, *e;

	uri_password(target, &raw, &rawn);
	while (*msg && *msg != '\n' && len + 4 < size) {
		if (*msg != '"' || !(e = strchr(msg + 1, '"')) ||
		    memchr(msg, '\n', (size_t)(e - msg))) {
			out[len++] = *msg++;
			continue;
		}
		q = msg + 1;
		n = (size_t)(e - q);
		/* the user, the host, or a socket file in the host's directory */
		bool keep = (user && strlen(user) == n && strncmp(q, user, n) == 0) ||
			    (host && strlen(host) <= n && strncmp(q, host, strlen(host)) == 0 &&
			     (strlen(host) == n || (*host == '/' && q[strlen(host)] == '/')));
		for (const PQconninfoOption *o = opts; !keep && o && o->keyword; o++)
			keep = strlen(o->keyword) == n && strncmp(q, o->keyword, n) == 0;
		if (!keep) {
			q = "...";
			n = 3;
		}
		if (len + n + 2 >= size)
			break;
		out[len++] = '"';
		memcpy(out + len, q, n);
		len += n;
		out[len++] = '"';
		msg = e + 1;
	}
	out[len] = 0;
	if ((pw && *pw && strstr(out, pw)) || contains_span(out, raw, rawn))
		snprintf(out, size,
			 "libpq's message is not shown because it contains the password");
}

PGconn *dh_pg_connect(const char *target, struct dh_error *err)
{
	static const char *const keys[] = { "connect_timeout", "application_name", "dbname", NULL };
	const char *vals[] = { PG_CONNECT_TIMEOUT, "devicehubd", target, NULL };
	PQconninfoOption *opts;
	char *why = NULL;
	PGconn *c;

	/* a malformed string is its own error, before any connection attempt; neither the
	 * string nor libpq's sentence about it is shown: both may hold the password */
	opts = PQconninfoParse(target, &why);
	if (!opts) {
		dh_error_set(
			err, DH_E_INVALID,
			"The PostgreSQL connection string is not valid: %s (the string is not shown: it may hold a password).",
			parse_problem(why));
		PQfreemem(why);
		return NULL;
	}
	c = PQconnectdbParams(keys, vals, 1);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		const char *user = opt_value(opts, "user"), *host = opt_value(opts, "host");
		char msg[PG_ERR_MAX];

		if (!is_plain_name(user))
			user = NULL;
		if (!is_plain_name(host))
			host = NULL;
		connect_reason(c ? PQerrorMessage(c) : "out of memory", opts, target, user, host,
			       msg, sizeof(msg));
		dh_error_set(err, DH_E_UNAVAILABLE, "Cannot connect to PostgreSQL%s%s%s%s: %s",
			     user ? " as user " : "", user ? user : "", host ? " at " : "",
			     host ? host : "", msg);
		PQfinish(c);
		PQconninfoFree(opts);
		return NULL;
	}
	PQconninfoFree(opts);
	PQsetNoticeProcessor(c, on_notice, NULL);
	return c;
}

static void pg_close(struct dh_db *db)
{
	PQfinish(P(db)->c);
	free(db);
}

static struct dh_db *pg_open(const char *target, struct dh_error *err)
{
	struct pg_db *db = calloc(1, sizeof(*db));

	if (!db) {
		dh_error_set(err, DH_E_NOMEM, NULL);
		return NULL;
	}
	db->base.drv = &dh_db_pg_driver;
	db->c = dh_pg_connect(target, err);
	if (!db->c) {
		free(db);
		return NULL;
	}
	return &db->base;
}

static bool pg_alive(struct dh_db *db)
{
	return PQstatus(P(db)->c) == CONNECTION_OK;
}

/* Keeps what the server said about a failed result (or the connection's error). */
static void keep_error(struct pg_db *db, const PGresult *res)
{
	const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *d = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;

	snprintf(db->state, sizeof(db->state), "%s", s ? s : "");
	snprintf(db->msg, sizeof(db->msg), "%s", m ? m : PQerrorMessage(db->c));
	db->msg[strcspn(db->msg, "\n")] = 0;
	snprintf(db->detail, sizeof(db->detail), "%s", d ? d : "");
}

static struct dh_stmt *pg_prepare(struct dh_db *db, const char *sql, bool once)
{
	struct pg_db *p = P(db);
	struct pg_stmt *st = calloc(1, sizeof(*st));
	char *text = dh_db_sql_dollar(sql);
	PGresult *res;

	if (!st || !text) {
		free(st);
		free(text);
		return NULL;
	}
	/* once: the unnamed statement, replaced by the next one, nothing to deallocate */
	if (!once)
		snprintf(st->name, sizeof(st->name), "s%u", ++p->next_name);
	res = PQprepare(p->c, st->name, text, 0, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		keep_error(p, res);
		dh_error("db.prepare", "engine=postgresql state=%s detail=\"%s\"", p->state,
			 p->msg);
		PQclear(res);
		free(text);
		free(st);
		return NULL;
	}
	PQclear(res);
	free(text);
	dh_stmt_init(&st->base, db);
	return &st->base;
}

static void pg_reset(struct dh_stmt *st)
{
	PQclear(PS(st)->res);
	PS(st)->res = NULL;
	PS(st)->row = PS(st)->nrows = 0;
}

static void pg_finalize(struct dh_stmt *st)
{
	struct pg_db *p;
	char sql[48];

	if (!st)
		return;
	p = P(st->db);
	pg_reset(st);
	/* outside a failed transaction the name is freed on the server too */
	if (*PS(st)->name && PQstatus(p->c) == CONNECTION_OK &&
	    PQtransactionStatus(p->c) == PQTRANS_IDLE) {
		snprintf(sql, sizeof(sql), "DEALLOCATE %s", PS(st)->name);
		PQclear(PQexec(p->c, sql));
	}
	dh_stmt_params_free(st);
	free(st);
}

/* Does a command tag say rows were written? ("INSERT 0 3", "UPDATE 1", "DELETE 2") */
static bool wrote_rows(const PGresult *res)
{
	const char *tag = PQcmdStatus((PGresult *)res), *n = PQcmdTuples((PGresult *)res);

	return (strncmp(tag, "INSERT", 6) == 0 || strncmp(tag, "UPDATE", 6) == 0 ||
		strncmp(tag, "DELETE", 6) == 0) &&
	       n && *n && strcmp(n, "0") != 0;
}

static int pg_step(struct dh_stmt *st)
{
	struct pg_stmt *s = PS(st);
	struct pg_db *p = P(st->db);

	if (!st->started) {
		const char *small[DH_STMT_PARAMS], **vals = small;
		ExecStatusType status;
		if (st->nparams > DH_STMT_PARAMS) {
			vals = malloc((size_t)st->nparams * sizeof(*vals));
			if (!vals) {
				snprintf(p->state, sizeof(p->state), "53200");
				snprintf(p->msg, sizeof(p->msg), "out of memory");
				return -1;
			}
		}
		for (int i = 0; i < st->nparams; i++) {
			struct dh_param *q = &st->p[i];
			switch (q->type) {
			case DH_V_NULL:
				vals[i] = NULL;
				break;
			case DH_V_INT:
				snprintf(q->num, sizeof(q->num), "%" PRId64, q->i);
				vals[i] = q->num;
				break;
			case DH_V_REAL:
				snprintf(q->num, sizeof(q->num), "%.17g", q->d);
				vals[i] = q->num;
				break;
			case DH_V_TEXT:
				/* text parameters end at their NUL, as PostgreSQL text does */
				vals[i] = q->s;
				break;
			}
		}
		s->res = PQexecPrepared(p->c, s->name, st->nparams, vals, NULL, NULL, 0);
		if (vals != small)
			free(vals);
		status = PQresultStatus(s->res);
		if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
			keep_error(p, s->res);
			PQclear(s->res);
			s->res = NULL;
			return -1;
		}
		s->nrows = status == PGRES_TUPLES_OK ? PQntuples(s->res) : 0;
		s->row = -1;
		s->changes = strtoll(PQcmdTuples(s->res), NULL, 10);
		if (wrote_rows(s->res))
			p->dirty = true;
	}
	if (!s->res)
		return 0;
	return ++s->row < s->nrows ? 1 : 0;
}

static int pg_col_count(struct dh_stmt *st)
{
	return PS(st)->res ? PQnfields(PS(st)->res) : 0;
}

static const char *pg_col_name(struct dh_stmt *st, int i)
{
	return PQfname(PS(st)->res, i);
}

/* Type OIDs of pg_type.h, stable across releases. */
enum {
	OID_BOOL = 16,
	OID_INT8 = 20,
	OID_INT2 = 21,
	OID_INT4 = 23,
	OID_OID = 26,
	OID_FLOAT4 = 700,
	OID_FLOAT8 = 701,
	OID_NUMERIC = 1700,
};

static bool has_row(struct pg_stmt *s)
{
	return s->res && s->row >= 0 && s->row < s->nrows;
}

static enum dh_val pg_col_type(struct dh_stmt *st, int i)
{
	struct pg_stmt *s = PS(st);

	if (!has_row(s) || PQgetisnull(s->res, s->row, i))
		return DH_V_NULL;
	switch (PQftype(s->res, i)) {
	case OID_BOOL:
	case OID_INT8:
	case OID_INT2:
	case OID_INT4:
	case OID_OID:
		return DH_V_INT;
	case OID_FLOAT4:
	case OID_FLOAT8:
	case OID_NUMERIC:
		return DH_V_REAL;
	default:
		return DH_V_TEXT;
	}
}

static int64_t pg_col_int(struct dh_stmt *st, int i)
{
	struct pg_stmt *s = PS(st);
	const char *v;

	if (!has_row(s) || PQgetisnull(s->res, s->row, i))
		return 0;
	v = PQgetvalue(s->res, s->row, i);
	if (PQftype(s->res, i) == OID_BOOL)
		return *v == 't';
	return strtoll(v, NULL, 10);
}

static double pg_col_real(struct dh_stmt *st, int i)
{
	struct pg_stmt *s = PS(st);

	if (!has_row(s) || PQgetisnull(s->res, s->row, i))
		return 0;
	return strtod(PQgetvalue(s->res, s->row, i), NULL);
}

static const char *pg_col_text(struct dh_stmt *st, int i, size_t *len)
{
	struct pg_stmt *s = PS(st);

	*len = 0;
	if (!has_row(s) || PQgetisnull(s->res, s->row, i))
		return NULL;
	*len = (size_t)PQgetlength(s->res, s->row, i);
	if (PQftype(s->res, i) == OID_BOOL)
		return *PQgetvalue(s->res, s->row, i) == 't' ? "1" : "0";
	return PQgetvalue(s->res, s->row, i);
}

static int64_t pg_changes(struct dh_stmt *st)
{
	return PS(st)->changes;
}

/* The last column named in a unique violation's detail: "Key (model_id, version)=(...)". */
static void conflict_field(const char *detail, char *field, size_t size)
{
	const char *open = strstr(detail, "Key ("), *close;
	const char *start;

	snprintf(field, size, "id");
	if (!open)
		return;
	open += 5;
	close = strstr(open, ")=(");
	if (!close)
		return;
	start = close;
	while (start > open && start[-1] != ' ' && start[-1] != '(' && start[-1] != ',')
		start--;
	if ((size_t)(close - start) < size && close > start) {
		memcpy(field, start, (size_t)(close - start));
		field[close - start] = 0;
	}
}

static enum dh_err pg_error(struct dh_db *db, struct dh_error *err)
{
	struct pg_db *p = P(db);
	const char *s = p->state;

	if (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 || strcmp(s, "55P03") == 0)
		return dh_error_set(err, DH_E_BUSY, NULL);
	if (strcmp(s, "23505") == 0) {
		char field[64];
		conflict_field(p->detail, field, sizeof(field));
		dh_error_set(err, DH_E_CONFLICT, "The value of '%s' is already taken.", field);
		if (err) {
			if (!err->fields)
				err->fields = json_object();
			json_object_set_new(err->fields, field, json_string("already taken"));
		}
		return DH_E_CONFLICT;
	}
	if (strcmp(s, "23503") == 0)
		return dh_error_set(err, DH_E_REFERENCED, NULL);
	if (strncmp(s, "23", 2) == 0 || strncmp(s, "22", 2) == 0)
		return dh_error_set(err, DH_E_INVALID, "A value breaks a rule of the database: %s",
				    p->msg);
	dh_error("db.error", "engine=postgresql state=%s detail=\"%s\"", *s ? s : "-", p->msg);
	if (PQstatus(p->c) != CONNECTION_OK)
		return dh_error_set(err, DH_E_UNAVAILABLE, "The database is not reachable.");
	return dh_error_set(err, DH_E_DB, NULL);
}

/* Runs a command without parameters; DH_OK or the mapped error. */
static enum dh_err run(struct pg_db *p, const char *sql, struct dh_error *err)
{
	PGresult *res = PQexec(p->c, sql);
	ExecStatusType status = PQresultStatus(res);
	enum dh_err rc = DH_OK;

	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		keep_error(p, res);
		rc = pg_error(&p->base, err);
	} else if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0 && strstr(sql, "COMMIT")) {
		/* COMMIT of a transaction that had failed: nothing was committed */
		rc = dh_error_set(err, DH_E_DB,
				  "The transaction had failed; nothing was committed.");
	}
	PQclear(res);
	return rc;
}

static enum dh_err pg_script(struct dh_db *db, const char *sql, struct dh_error *err)
{
	struct pg_db *p = P(db);
	enum dh_err rc = run(p, sql, NULL);

	if (rc != DH_OK)
		dh_error_set(err, rc, "%s%s%s", p->msg, *p->detail ? ": " : "", p->detail);
	return rc;
}

static enum dh_err pg_begin(struct dh_db *db)
{
	P(db)->dirty = false;
	return run(P(db), "BEGIN", NULL);
}

static void pg_rollback(struct dh_db *db)
{
	struct pg_db *p = P(db);

	p->dirty = false;
	if (PQtransactionStatus(p->c) != PQTRANS_IDLE)
		PQclear(PQexec(p->c, "ROLLBACK"));
}

static enum dh_err pg_commit(struct dh_db *db)
{
	struct pg_db *p = P(db);
	char sql[128];
	enum dh_err rc;
	int n;

	if (!p->dirty)
		return run(p, "COMMIT", NULL);
	/*
	 * Tell the other processes in the same round trip: NOTIFY is delivered at the commit,
	 * and only if it commits. "a": users, tokens or rights changed; "w": anything else.
	 */
	n = snprintf(sql, sizeof(sql), "NOTIFY devicehub, '%c %s'; COMMIT",
		     dh_db_tx_auth_changed(db) ? 'a' : 'w', dh_pg_origin());
	if (n < 0 || (size_t)n >= sizeof(sql))
		return DH_E_INTERNAL;
	rc = run(p, sql, NULL);
	if (rc != DH_OK)
		pg_rollback(db);
	else
		dh_db_write_bump();
	p->dirty = false;
	return rc;
}

/* One lock id for schema migrations: processes starting together migrate one at a time. */
#define PG_SCHEMA_LOCK "7203316401"

static enum dh_err pg_lock_schema(struct dh_db *db, bool lock)
{
	return run(P(db),
		   lock ? "SELECT pg_advisory_lock(" PG_SCHEMA_LOCK ")"
			: "SELECT pg_advisory_unlock(" PG_SCHEMA_LOCK ")",
		   NULL);
}

PGconn *dh_pg_conn(struct dh_db *db)
{
	return P(db)->c;
}

extern const struct dh_migration dh_migrations_pg[];
extern const size_t dh_migrations_pg_count;

const struct dh_db_driver dh_db_pg_driver = {
	.engine = DH_DB_PG,
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.alive = pg_alive,
	.prepare = pg_prepare,
	.finalize = pg_finalize,
	.step = pg_step,
	.reset = pg_reset,
	.col_count = pg_col_count,
	.col_name = pg_col_name,
	.col_type = pg_col_type,
	.col_int = pg_col_int,
	.col_real = pg_col_real,
	.col_text = pg_col_text,
	.changes = pg_changes,
	.error = pg_error,
	.script = pg_script,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.lock_schema = pg_lock_schema,
	.migrations = dh_migrations_pg,
	.nmigrations = &dh_migrations_pg_count,
};
