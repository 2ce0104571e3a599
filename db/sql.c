/*
 * Run-time SQL text with numbered parameters (see sql.h), and the visibility condition that
 * turns a caller's grants into SQL, so that lists are filtered and paginated by the database
 * rather than loaded and filtered in memory.
 */
#include "sql.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Parameters one statement may have (DH_STMT_PARAMS_MAX: below both engines' limits). A grant
 * takes at most three, so a caller would need over 10 000 grants to reach it; the text is
 * refused (an error, not a wrong answer) if it ever does.
 */
#define DH_SQL_PARAMS_MAX DH_STMT_PARAMS_MAX

void dh_sql_init(struct dh_sql *q)
{
	memset(q, 0, sizeof(*q));
}

void dh_sql_release(struct dh_sql *q)
{
	free(q->text);
	free(q->params);
	memset(q, 0, sizeof(*q));
}

void dh_sql_add(struct dh_sql *q, const char *sql)
{
	dh_sql_addn(q, sql, strlen(sql));
}

void dh_sql_addn(struct dh_sql *q, const char *sql, size_t n)
{
	if (q->failed)
		return;
	if (q->len + n + 1 > q->cap) {
		size_t ncap = q->cap ? q->cap : 512;
		char *t;
		while (ncap < q->len + n + 1)
			ncap *= 2;
		t = realloc(q->text, ncap);
		if (!t) {
			q->failed = true;
			return;
		}
		q->text = t;
		q->cap = ncap;
	}
	memcpy(q->text + q->len, sql, n);
	q->len += n;
	q->text[q->len] = 0;
}

static void param(struct dh_sql *q, const char *text, json_t *json)
{
	char ph[16];

	if (q->failed)
		return;
	if (q->nparams == DH_SQL_PARAMS_MAX) {
		q->failed = true;
		return;
	}
	if (q->nparams == q->pcap) {
		size_t ncap = q->pcap ? q->pcap * 2 : 16;
		struct dh_sql_param *p = realloc(q->params, ncap * sizeof(*p));
		if (!p) {
			q->failed = true;
			return;
		}
		q->params = p;
		q->pcap = ncap;
	}
	q->params[q->nparams].text = text;
	q->params[q->nparams].json = json;
	q->nparams++;
	snprintf(ph, sizeof(ph), "?%zu", q->nparams);
	dh_sql_add(q, ph);
}

void dh_sql_text(struct dh_sql *q, const char *value)
{
	param(q, value, NULL);
}

void dh_sql_json(struct dh_sql *q, json_t *value)
{
	param(q, NULL, value);
}

/* "(grant 1 OR grant 2 ...)": each grant the AND of its non-empty fields' matches. */
static void grants_or(struct dh_sql *q, const struct dh_grant *g, size_t n,
		      const struct dh_db_scope_cols *cols)
{
	if (n == 0) {
		dh_sql_add(q, "1 = 0");
		return;
	}
	dh_sql_add(q, "(");
	for (size_t i = 0; i < n; i++) {
		const char *vals[3] = { g[i].product, g[i].model, g[i].channel };
		const char *exprs[3] = { cols->product, cols->model, cols->channel };
		bool any = false;

		dh_sql_add(q, i ? " OR (" : "(");
		for (int k = 0; k < 3; k++) {
			if (!vals[k][0])
				continue;
			dh_sql_add(q, any ? " AND " : "");
			any = true;
			if (!exprs[k]) {
				/* rows of this kind have no such scope: the grant misses them */
				dh_sql_add(q, "1 = 0");
				continue;
			}
			/* the value goes where the condition has its one '?' */
			size_t at = strcspn(exprs[k], "?");
			dh_sql_addn(q, exprs[k], at);
			dh_sql_text(q, vals[k]);
			dh_sql_add(q, exprs[k][at] ? exprs[k] + at + 1 : "");
		}
		dh_sql_add(q, any ? ")" : "1 = 1)");
	}
	dh_sql_add(q, ")");
}

void dh_sql_visibility(struct dh_sql *q, const struct dh_db_visibility *v,
		       const struct dh_db_scope_cols *cols)
{
	if (!v) {
		dh_sql_add(q, "1 = 1");
		return;
	}
	/* AND at the top, so that the planner can use an index for the grants' terms */
	dh_sql_add(q, "(");
	grants_or(q, v->any, v->nany, cols);
	if (cols->restricted) {
		dh_sql_add(q, " AND (NOT ");
		dh_sql_add(q, cols->restricted);
		dh_sql_add(q, " OR ");
		grants_or(q, v->restricted, v->nrestricted, cols);
		dh_sql_add(q, ")");
	}
	dh_sql_add(q, ")");
}

struct dh_stmt *dh_sql_prepare(struct dh_db *db, struct dh_sql *q)
{
	struct dh_stmt *st;

	if (q->failed || !q->text) {
		dh_error("db.prepare",
			 "detail=\"a list query could not be built (%zu parameters)\"", q->nparams);
		return NULL;
	}
	st = dh_db_prep_once(db, q->text);
	if (!st)
		return NULL;
	for (size_t i = 0; i < q->nparams; i++) {
		const struct dh_sql_param *p = &q->params[i];
		if (p->json)
			dh_stmt_json(st, (int)i + 1, p->json);
		else
			dh_stmt_text(st, (int)i + 1, p->text);
	}
	return st;
}
