/*
 * SQL text built at run time, inside db/ only: the text grows in a malloc'd buffer and every
 * value goes into a numbered parameter (?1, ?2, ... in order), never into the text. Used by
 * the lists whose WHERE depends on the request: filters given and the caller's grants (see
 * struct dh_db_visibility). An error (out of memory) is kept and reported once, at the end.
 */
#ifndef DH_DB_SQL_H
#define DH_DB_SQL_H

#include "driver.h"

/* One parameter: text (borrowed, NULL binds SQL NULL) or, when json is set, a JSON scalar. */
struct dh_sql_param {
	const char *text;
	json_t *json; /* borrowed */
};

struct dh_sql {
	char *text;
	size_t len, cap;
	struct dh_sql_param *params;
	size_t nparams, pcap;
	bool failed;
};

/* Starts an empty text (no allocation yet). */
void dh_sql_init(struct dh_sql *q);
void dh_sql_release(struct dh_sql *q);

/* Appends literal SQL (a constant of the caller, never a value); addn: its first n bytes. */
void dh_sql_add(struct dh_sql *q, const char *sql);
void dh_sql_addn(struct dh_sql *q, const char *sql, size_t n);
/* Appends the next parameter's placeholder and records its value (borrowed). */
void dh_sql_text(struct dh_sql *q, const char *value);
void dh_sql_json(struct dh_sql *q, json_t *value);

/*
 * How the rows of one list are matched against a grant: SQL conditions, each with one '?'
 * where the grant's product, model or channel goes (NULL: rows of this list have no scope of
 * that kind, so a grant naming one misses them), and the condition that makes a row
 * restricted (NULL: no row is). Constants of db/.
 */
struct dh_db_scope_cols {
	const char *product;
	const char *model;
	const char *channel;
	const char *restricted;
};

/*
 * Appends a condition that is true for the rows v lets the caller see (see dh_db.h), with
 * cols saying how a row is matched against one grant's product, model and channel. A NULL v
 * appends a condition true for every row.
 */
void dh_sql_visibility(struct dh_sql *q, const struct dh_db_visibility *v,
		       const struct dh_db_scope_cols *cols);

/* Prepares the text (not cached: each list builds its own) and binds the parameters.
 * NULL on failure (logged). The caller finalizes. */
struct dh_stmt *dh_sql_prepare(struct dh_db *db, struct dh_sql *q);

#endif
