/*
 * The CRUD engine for configuration objects (see objects.h). Input is checked field by
 * field and every problem is reported in "fields" at once; nothing is written unless the
 * whole input is valid, and each write runs in one short transaction.
 */
#include "api/objects.h"

#include "api/api.h"
#include "core/semver.h"
#include "core/util.h"
#include "dh_db.h"
#include "http/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lists never return more than this many objects per page (API.md). */
#define DH_PAGE_MAX     1000
#define DH_PAGE_DEFAULT 50

static const struct dh_field *find_field(const struct dh_resource *res, const char *name)
{
	for (size_t i = 0; i < res->nfields; i++) {
		if (strcmp(res->fields[i].name, name) == 0)
			return &res->fields[i];
	}
	return NULL;
}

/* Does the caller see the object id of table (products, models and firmware have a scope;
 * every other table's objects are seen by all)? */
static bool ref_visible(struct dh_req *req, const char *table, const char *id)
{
	if (strcmp(table, "products") == 0)
		return dh_api_products_visible(req, id);
	if (strcmp(table, "models") == 0)
		return dh_api_models_visible(req, id);
	if (strcmp(table, "firmware") == 0)
		return dh_api_firmware_visible(req, id);
	return true;
}

enum dh_err dh_api_resolve_ref(struct dh_req *req, const char *name, const char *table,
			       bool has_tid, json_t *value, char id[DH_UUID_LEN])
{
	const char *key = json_string_value(value);
	enum dh_err rc;
	char what[160];

	if (!key || !*key || strlen(key) > 64)
		return dh_error_field(&req->err, name, "must be a uuid or tid");
	rc = dh_db_obj_resolve(req->db, table, key, has_tid, id);
	/* an object beyond the caller's every grant reads as one that does not exist, so that
	 * no reference tells what exists outside its scope */
	if (rc == DH_OK && !ref_visible(req, table, id))
		rc = DH_E_NOT_FOUND;
	if (rc == DH_E_NOT_FOUND) {
		snprintf(what, sizeof(what), "no such object: '%s'", key);
		return dh_error_field(&req->err, name, what);
	}
	return rc;
}

/* Checks one input value and converts it to its column value (new reference in *out). */
static enum dh_err convert(struct dh_req *req, const struct dh_field *f, json_t *v, json_t **out)
{
	char what[160], id[DH_UUID_LEN];
	const char *s;
	size_t len;
	long long n;
	int64_t t;
	struct dh_semver sv;

	*out = NULL;
	if (json_is_null(v)) {
		if (!(f->flags & DH_F_NULLABLE))
			return dh_error_field(&req->err, f->name, "may not be null");
		*out = json_null();
		return DH_OK;
	}
	switch (f->type) {
	case DH_F_TEXT:
		if (!json_is_string(v))
			return dh_error_field(&req->err, f->name, "must be a string");
		len = json_string_length(v);
		if ((long long)len < f->min || (f->max && (long long)len > f->max)) {
			snprintf(what, sizeof(what), "must be %lld to %lld bytes long", f->min,
				 f->max);
			return dh_error_field(&req->err, f->name, what);
		}
		if (strlen(json_string_value(v)) != len)
			return dh_error_field(&req->err, f->name, "may not contain NUL characters");
		*out = json_incref(v);
		return DH_OK;
	case DH_F_TID:
		if (!json_is_string(v) || !dh_tid_valid(json_string_value(v)))
			return dh_error_field(&req->err, f->name,
					      "must match [A-Za-z0-9._-]{1,64}");
		/* lookups match id or tid: a uuid-shaped tid could name another object */
		if (dh_uuid_valid(json_string_value(v)))
			return dh_error_field(&req->err, f->name, "may not look like a uuid");
		*out = json_incref(v);
		return DH_OK;
	case DH_F_INT:
		if (!json_is_integer(v))
			return dh_error_field(&req->err, f->name, "must be an integer");
		n = json_integer_value(v);
		if (n < f->min || n > f->max) {
			snprintf(what, sizeof(what), "must be between %lld and %lld", f->min,
				 f->max);
			return dh_error_field(&req->err, f->name, what);
		}
		*out = json_incref(v);
		return DH_OK;
	case DH_F_BOOL:
		if (!json_is_boolean(v))
			return dh_error_field(&req->err, f->name, "must be true or false");
		*out = json_integer(json_is_true(v));
		return DH_OK;
	case DH_F_ARRAY:
		if (!json_is_array(v))
			return dh_error_field(&req->err, f->name, "must be a list");
		*out = json_incref(v);
		return DH_OK;
	case DH_F_OBJECT:
		if (!json_is_object(v))
			return dh_error_field(&req->err, f->name, "must be an object");
		*out = json_incref(v);
		return DH_OK;
	case DH_F_REF:
		if (!json_is_string(v))
			return dh_error_field(&req->err, f->name, "must be a uuid or tid string");
		if (dh_api_resolve_ref(req, f->name, f->ref_table, f->ref_has_tid, v, id) != DH_OK)
			return req->err.code;
		*out = json_string(id);
		return DH_OK;
	case DH_F_ENUM:
		s = json_string_value(v);
		for (size_t i = 0; s && f->enum_values[i]; i++) {
			if (strcmp(s, f->enum_values[i]) == 0) {
				*out = json_incref(v);
				return DH_OK;
			}
		}
		len = 0;
		what[0] = 0;
		for (size_t i = 0; f->enum_values[i]; i++) {
			int k = snprintf(what + len, sizeof(what) - len, "%s%s",
					 i ? ", " : "one of ", f->enum_values[i]);
			if (k < 0 || (size_t)k >= sizeof(what) - len)
				break;
			len += (size_t)k;
		}
		return dh_error_field(&req->err, f->name, what);
	case DH_F_TIME:
		if (!json_is_string(v) || !dh_time_parse(json_string_value(v), &t))
			return dh_error_field(&req->err, f->name,
					      "must be an RFC 3339 time with offset");
		dh_time_format(t, what);
		*out = json_string(what);
		return DH_OK;
	case DH_F_SEMVER:
		if (!json_is_string(v) || !dh_semver_parse(json_string_value(v), &sv))
			return dh_error_field(&req->err, f->name, "must be a SemVer 2.0 version");
		*out = json_incref(v);
		return DH_OK;
	}
	return DH_E_INTERNAL;
}

/* Builds the column row from the request body. creating: required fields enforced. */
static enum dh_err body_to_row(struct dh_req *req, const struct dh_resource *res, bool creating,
			       json_t **row_out)
{
	json_t *row = NULL, *v, *cv;
	const char *k;
	enum dh_err rc = DH_OK;

	*row_out = NULL;
	if (!req->json)
		return dh_error_set(
			&req->err, DH_E_INVALID,
			"A JSON object body is required (Content-Type: application/json).");
	if (!json_is_object(req->json))
		return dh_error_set(&req->err, DH_E_INVALID, "The body must be a JSON object.");
	row = json_object();
	if (!row)
		return DH_E_NOMEM;
	json_object_foreach(req->json, k, v)
	{
		const struct dh_field *f = find_field(res, k);
		if (!f) {
			if (strcmp(k, "id") == 0 || strcmp(k, "create_time") == 0)
				continue; /* echoing an object back is harmless */
			dh_error_field(&req->err, k, "unknown field");
			continue;
		}
		if (f->flags & DH_F_READONLY)
			continue;
		if (!creating && (f->flags & DH_F_IMMUTABLE)) {
			dh_error_field(&req->err, k, "cannot be changed after creation");
			continue;
		}
		if (convert(req, f, v, &cv) != DH_OK) {
			if (req->err.code != DH_E_INVALID) {
				rc = req->err.code;
				goto out;
			}
			continue;
		}
		json_object_set_new(row, f->column, cv);
	}
	if (creating) {
		for (size_t i = 0; i < res->nfields; i++) {
			const struct dh_field *f = &res->fields[i];
			if ((f->flags & DH_F_REQUIRED) && !json_object_get(req->json, f->name))
				dh_error_field(&req->err, f->name, "required");
		}
	}
	if (req->err.code != DH_OK)
		rc = req->err.code;
out:
	if (rc == DH_OK)
		*row_out = row;
	else
		json_decref(row);
	return rc;
}

/* Takes the virtual fields (input for the validate hook only) out of row. */
static void drop_virtual(const struct dh_resource *res, json_t *row)
{
	for (size_t i = 0; i < res->nfields; i++) {
		if (res->fields[i].flags & DH_F_VIRTUAL)
			json_object_del(row, res->fields[i].column);
	}
}

json_t *dh_api_obj_to_json(struct dh_req *req, const struct dh_resource *res, json_t *row)
{
	json_t *out = json_object();

	if (!out)
		return NULL;
	json_object_set(out, "id", json_object_get(row, "id"));
	for (size_t i = 0; i < res->nfields; i++) {
		const struct dh_field *f = &res->fields[i];
		json_t *v = json_object_get(row, f->column), *o;
		if (f->flags & (DH_F_HIDDEN | DH_F_VIRTUAL))
			continue;
		if (!v || json_is_null(v)) {
			o = json_null();
		} else if (f->type == DH_F_BOOL) {
			o = json_boolean(json_integer_value(v) != 0);
		} else if (f->type == DH_F_ARRAY || f->type == DH_F_OBJECT) {
			o = json_loads(json_string_value(v), 0, NULL);
			if (!o)
				o = f->type == DH_F_ARRAY ? json_array() : json_object();
		} else {
			o = json_incref(v);
		}
		json_object_set_new(out, f->name, o);
	}
	json_object_set(out, "create_time", json_object_get(row, "create_time"));
	if (res->hooks.decorate && res->hooks.decorate(req, row, out) != DH_OK) {
		json_decref(out);
		return NULL;
	}
	return out;
}

static enum dh_err check_scope(struct dh_req *req, const struct dh_resource *res, json_t *row,
			       enum dh_action act, bool hide)
{
	struct dh_scope s = { 0 };
	char ids[3][DH_UUID_LEN] = { { 0 } };
	enum dh_err rc;

	if (!res->hooks.scope) {
		/* DH_ACT_AUTH (tokens): any grant will do, whatever its scope; the access hook
		 * decides per object. Other actions on objects outside products: unscoped. */
		bool ok = act == DH_ACT_AUTH ? dh_rights_any(&req->who, act)
					     : dh_rights_allow(&req->who, act, NULL);
		if (!ok)
			return dh_error_set(&req->err, DH_E_FORBIDDEN,
					    "Your access rights do not cover %ss.", res->name);
		return res->hooks.access ? res->hooks.access(req, row) : DH_OK;
	}
	rc = res->hooks.scope(req, row, &s, ids);
	if (rc != DH_OK)
		return rc;
	if (hide && !dh_rights_sees(&req->who, &s))
		return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such %s.", res->name);
	if (!dh_rights_allow(&req->who, act, &s))
		return dh_error_set(&req->err, DH_E_FORBIDDEN,
				    "Your access rights do not cover this %s.", res->name);
	return res->hooks.access ? res->hooks.access(req, row) : DH_OK;
}

enum dh_err dh_api_obj_load(struct dh_req *req, const struct dh_resource *res, const char *key,
			    enum dh_action act, json_t **row)
{
	enum dh_err rc;

	*row = NULL;
	if (!key || strlen(key) > 64)
		return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such %s.", res->name);
	rc = dh_db_obj_get(req->db, res->table, key, res->has_tid, row);
	if (rc == DH_E_NOT_FOUND)
		return dh_error_set(&req->err, DH_E_NOT_FOUND, "No such %s: '%s'.", res->name, key);
	if (rc != DH_OK)
		return rc;
	rc = check_scope(req, res, *row, act, true);
	if (rc != DH_OK) {
		json_decref(*row);
		*row = NULL;
	}
	return rc;
}

bool dh_api_obj_visible(struct dh_req *req, const struct dh_resource *res, const char *key)
{
	struct dh_scope s = { 0 };
	char ids[3][DH_UUID_LEN] = { { 0 } };
	struct dh_error kept = req->err; /* what the request found so far stays */
	json_t *row = NULL;
	bool seen = false;

	memset(&req->err, 0, sizeof(req->err));
	if (!key || strlen(key) > 64 ||
	    dh_db_obj_get(req->db, res->table, key, res->has_tid, &row) != DH_OK)
		goto out;
	if (res->hooks.scope &&
	    (res->hooks.scope(req, row, &s, ids) != DH_OK || !dh_rights_sees(&req->who, &s)))
		goto out;
	seen = !res->hooks.access || res->hooks.access(req, row) != DH_E_NOT_FOUND;
out:
	json_decref(row);
	dh_error_release(&req->err);
	req->err = kept;
	return seen;
}

/* Does grant g imply one of the actions of mask? */
static bool implies_any(const struct dh_grant *g, unsigned mask)
{
	for (int a = DH_ACT_UPDATE; a <= DH_ACT_ADMIN; a++) {
		if ((mask & (1u << a)) && dh_action_covers(g->action, (enum dh_action)a))
			return true;
	}
	return false;
}

static bool unscoped(const struct dh_grant *g)
{
	return g->action == DH_ACT_ADMIN || (!g->product[0] && !g->model[0] && !g->channel[0]);
}

enum dh_err dh_api_visibility(struct dh_req *req, unsigned any_acts, unsigned restricted_acts,
			      struct dh_api_visibility *vis)
{
	const struct dh_principal *p = &req->who;
	size_t n = p->ngrants, na = 0, nr = 0;
	bool all_any = false, all_restricted = !restricted_acts;

	memset(vis, 0, sizeof(*vis));
	vis->grants = calloc(n ? 2 * n : 1, sizeof(*vis->grants));
	if (!vis->grants)
		return DH_E_NOMEM;
	/* any grants first, restricted ones after them in the same buffer */
	for (size_t i = 0; i < n; i++) {
		struct dh_grant g = p->grants[i];
		if (g.action == DH_ACT_ADMIN)
			g.product[0] = g.model[0] = g.channel[0] = 0; /* admin is over everything */
		if (implies_any(&g, any_acts)) {
			vis->grants[na++] = g;
			all_any = all_any || unscoped(&g);
		}
		if (restricted_acts && implies_any(&g, restricted_acts)) {
			vis->grants[n + nr++] = g;
			all_restricted = all_restricted || unscoped(&g);
		}
	}
	vis->v.any = vis->grants;
	vis->v.nany = na;
	vis->v.restricted = vis->grants + n;
	vis->v.nrestricted = nr;
	vis->sees_all = all_any && all_restricted;
	return DH_OK;
}

const struct dh_db_visibility *dh_api_visibility_db(const struct dh_api_visibility *vis)
{
	return vis->sees_all ? NULL : &vis->v;
}

void dh_api_visibility_release(struct dh_api_visibility *vis)
{
	free(vis->grants);
	memset(vis, 0, sizeof(*vis));
}

enum dh_err dh_api_page(struct dh_req *req, int64_t *limit, int64_t *offset)
{
	const char *l = dh_req_query(req, "limit"), *o = dh_req_query(req, "offset");
	uint64_t v;

	*limit = DH_PAGE_DEFAULT;
	*offset = 0;
	if (l) {
		if (!dh_parse_u64(l, &v) || v < 1 || v > DH_PAGE_MAX)
			return dh_error_field(&req->err, "limit",
					      "must be an integer from 1 to 1000");
		*limit = (int64_t)v;
	}
	if (o) {
		if (!dh_parse_u64(o, &v) || v > INT64_MAX / 2)
			return dh_error_field(&req->err, "offset",
					      "must be a non-negative integer");
		*offset = (int64_t)v;
	}
	return DH_OK;
}

json_t *dh_api_list_envelope(struct dh_req *req, int64_t count, int64_t limit, int64_t offset,
			     json_t *results)
{
	json_t *out;
	char *next;

	if (!results)
		return NULL;
	if (offset + limit < count) {
		next = dh_req_page_url(req, limit, offset + limit);
		if (!next) {
			json_decref(results);
			return NULL;
		}
		out = json_pack("{s:I, s:s, s:o}", "count", (json_int_t)count, "next", next,
				"results", results);
		free(next);
	} else {
		out = json_pack("{s:I, s:n, s:o}", "count", (json_int_t)count, "next", "results",
				results);
	}
	return out;
}

enum dh_err dh_api_obj_list(struct dh_req *req, const struct dh_resource *res)
{
	struct dh_db_where w[16];
	struct dh_api_visibility vis = { 0 };
	size_t nw = 0;
	int64_t limit, offset, count = 0;
	json_t *rows = NULL, *results = NULL, *row;
	enum dh_err rc;
	bool empty = false;
	size_t i;

	/*
	 * Objects outside products (channels, delivery methods and procedures, users) are read
	 * one by one only with the right over everything (check_scope); a list shows the same
	 * objects, so it needs the same right. Those with a list filter (tokens: one's own)
	 * decide per row.
	 */
	if (!res->hooks.scope && !res->hooks.list_filter &&
	    !dh_rights_allow(&req->who, res->right, NULL))
		return dh_error_set(&req->err, DH_E_FORBIDDEN,
				    "Your access rights do not cover %ss.", res->name);
	rc = dh_api_page(req, &limit, &offset);
	if (rc != DH_OK)
		return rc;
	for (i = 0; i < res->nfields && nw < 12; i++) {
		const struct dh_field *f = &res->fields[i];
		const char *q;
		json_t *v = NULL;
		char id[DH_UUID_LEN];
		if (!(f->flags & DH_F_FILTER) || !(q = dh_req_query(req, f->name)))
			continue;
		if (f->type == DH_F_BOOL) {
			if (strcmp(q, "true") && strcmp(q, "false")) {
				rc = dh_error_field(&req->err, f->name, "must be true or false");
				goto out;
			}
			v = json_integer(strcmp(q, "true") == 0);
		} else if (f->type == DH_F_REF) {
			if (strcmp(q, "null") == 0) {
				v = json_null();
			} else if (dh_db_obj_resolve(req->db, f->ref_table, q, f->ref_has_tid,
						     id) == DH_OK) {
				v = json_string(id);
			} else {
				empty = true;
				continue;
			}
		} else {
			v = json_string(q);
		}
		w[nw].column = f->column;
		w[nw].value = v;
		nw++;
	}
	if (res->hooks.list_filter)
		nw += res->hooks.list_filter(req, w + nw, sizeof(w) / sizeof(w[0]) - nw);
	results = json_array();
	if (!results) {
		rc = DH_E_NOMEM;
		goto out;
	}
	if (empty)
		goto reply;
	/* objects outside products (channels, users, tokens...) need the right unscoped, which
	 * the router and check_scope ask for; the others are filtered by scope in SQL */
	rc = dh_api_visibility(req, 1u << res->right, 0, &vis);
	if (rc != DH_OK)
		goto out;
	rc = dh_db_obj_list(req->db, res->table, w, nw,
			    res->hooks.scope ? dh_api_visibility_db(&vis) : NULL, limit, offset,
			    &rows, &count);
	if (rc != DH_OK)
		goto out;
	json_array_foreach(rows, i, row)
	{
		if (json_array_append_new(results, dh_api_obj_to_json(req, res, row)) != 0) {
			rc = DH_E_NOMEM;
			goto out;
		}
	}
reply:
	rc = dh_http_reply_json(req, 200, dh_api_list_envelope(req, count, limit, offset, results));
	results = NULL;
out:
	for (i = 0; i < nw; i++)
		json_decref(w[i].value);
	dh_api_visibility_release(&vis);
	json_decref(rows);
	json_decref(results);
	return rc;
}

enum write_op {
	WRITE_INSERT,
	WRITE_UPDATE,
	WRITE_DELETE,
};

/* One create, patch or delete with the resource's after_write hook, in one transaction. */
struct write {
	struct dh_req *req;
	const struct dh_resource *res;
	enum write_op op;
	const char *id;
	json_t *row;  /* insert: the row; update: the merged row (for the hook) */
	json_t *cols; /* update: the columns that change */
};

/* object.created/updated/deleted of w's object, as stored now (as it was, for a delete), in
 * the running transaction: the outbox row commits with the change or not at all. */
static enum dh_err emit_object(struct dh_db *db, struct write *w)
{
	static const char *const types[] = { [WRITE_INSERT] = "object.created",
					     [WRITE_UPDATE] = "object.updated",
					     [WRITE_DELETE] = "object.deleted" };
	struct dh_scope s = { 0 };
	char ids[3][DH_UUID_LEN] = { { 0 } };
	json_t *row = NULL, *data = NULL;
	enum dh_err rc = DH_OK;

	if (w->op == WRITE_DELETE)
		row = json_incref(w->row);
	else
		rc = dh_db_obj_get(db, w->res->table, w->id, false, &row);
	if (rc == DH_OK && w->res->hooks.scope)
		rc = w->res->hooks.scope(w->req, row, &s, ids);
	if (rc == DH_OK) {
		data = json_pack("{s:s, s:s, s:o}", "kind", w->res->event_kind, "id", w->id,
				 "object", dh_api_obj_to_json(w->req, w->res, row));
		/* the event shows the object: only to those who may read it (res->right) */
		rc = data ? dh_db_event_emit(db, w->res->right, types[w->op], NULL, s.product,
					     s.model, s.channel, data)
			  : DH_E_NOMEM;
	}
	json_decref(row);
	json_decref(data);
	return rc;
}

static enum dh_err write_tx(struct dh_db *db, void *cls, struct dh_error *err)
{
	struct write *w = cls;
	enum dh_err rc = DH_E_INTERNAL;

	/* the resource's check against what is stored now: inside the transaction, so that
	 * no other write can come between the check and this one */
	if (w->res->hooks.before_write) {
		rc = w->res->hooks.before_write(w->req, w->id,
						w->op == WRITE_UPDATE ? w->cols : NULL,
						w->op == WRITE_DELETE ? NULL : w->row);
		if (rc != DH_OK)
			return rc;
	}
	switch (w->op) {
	case WRITE_INSERT:
		rc = dh_db_obj_insert(db, w->res->table, w->row, err);
		break;
	case WRITE_UPDATE:
		rc = dh_db_obj_update(db, w->res->table, w->id, w->cols, err);
		break;
	case WRITE_DELETE:
		rc = dh_db_obj_delete(db, w->res->table, w->id, err);
		break;
	}
	if (rc == DH_OK && w->res->hooks.after_write)
		rc = w->res->hooks.after_write(w->req, w->id,
					       w->op == WRITE_DELETE ? NULL : w->row);
	if (rc == DH_OK && w->res->event_kind)
		rc = emit_object(db, w);
	return rc;
}

static enum dh_err run_write(struct dh_req *req, struct write *w)
{
	w->req = req;
	return dh_db_tx_run(req->db, write_tx, w, &req->err);
}

enum dh_err dh_api_obj_create(struct dh_req *req, const struct dh_resource *res)
{
	json_t *row = NULL, *stored = NULL, *out;
	char id[DH_UUID_LEN], now[DH_TIME_LEN];
	enum dh_err rc;

	rc = body_to_row(req, res, true, &row);
	if (rc != DH_OK)
		goto out;
	dh_uuid_new(id);
	dh_time_format(dh_now_us(), now);
	json_object_set_new(row, "id", json_string(id));
	json_object_set_new(row, "create_time", json_string(now));
	if (res->hooks.validate && (rc = res->hooks.validate(req, res, row, true)) != DH_OK)
		goto out;
	drop_virtual(res, row);
	rc = check_scope(req, res, row, res->right, false);
	if (rc != DH_OK)
		goto out;
	rc = run_write(req,
		       &(struct write){ .res = res, .op = WRITE_INSERT, .id = id, .row = row });
	if (rc != DH_OK)
		goto out;
	rc = dh_db_obj_get(req->db, res->table, id, false, &stored);
	if (rc != DH_OK)
		goto out;
	out = dh_api_obj_to_json(req, res, stored);
	rc = dh_http_reply_json(req, 201, out);
out:
	json_decref(row);
	json_decref(stored);
	return rc;
}

enum dh_err dh_api_obj_get(struct dh_req *req, const struct dh_resource *res)
{
	json_t *row = NULL;
	enum dh_err rc;

	rc = dh_api_obj_load(req, res, req->args[0], res->right, &row);
	if (rc == DH_OK)
		rc = dh_http_reply_json(req, 200, dh_api_obj_to_json(req, res, row));
	json_decref(row);
	return rc;
}

enum dh_err dh_api_obj_patch(struct dh_req *req, const struct dh_resource *res)
{
	json_t *row = NULL, *cols = NULL, *merged = NULL, *stored = NULL, *v;
	const char *id, *k;
	enum dh_err rc;

	rc = dh_api_obj_load(req, res, req->args[0], res->right, &row);
	if (rc != DH_OK)
		goto out;
	rc = body_to_row(req, res, false, &cols);
	if (rc != DH_OK)
		goto out;
	merged = json_deep_copy(row);
	if (!merged || json_object_update(merged, cols) != 0) {
		rc = DH_E_NOMEM;
		goto out;
	}
	if (res->hooks.validate && (rc = res->hooks.validate(req, res, merged, false)) != DH_OK)
		goto out;
	drop_virtual(res, merged);
	drop_virtual(res, cols);
	/* columns the hook derived (e.g. a grant's product from its model) or rewrote (a
	 * webhook's secret, stored in another form than given) are written as it left them */
	json_object_foreach(merged, k, v)
	{
		if (!json_equal(v, json_object_get(row, k)))
			json_object_set(cols, k, v);
	}
	/* a change of scope (e.g. moving a model) needs the right over the new scope too */
	rc = check_scope(req, res, merged, res->right, false);
	if (rc != DH_OK)
		goto out;
	id = json_string_value(json_object_get(row, "id"));
	rc = run_write(
		req,
		&(struct write){
			.res = res, .op = WRITE_UPDATE, .id = id, .row = merged, .cols = cols });
	if (rc != DH_OK)
		goto out;
	rc = dh_db_obj_get(req->db, res->table, id, false, &stored);
	if (rc == DH_OK)
		rc = dh_http_reply_json(req, 200, dh_api_obj_to_json(req, res, stored));
out:
	json_decref(row);
	json_decref(cols);
	json_decref(merged);
	json_decref(stored);
	return rc;
}

enum dh_err dh_api_obj_delete(struct dh_req *req, const struct dh_resource *res)
{
	json_t *row = NULL;
	const char *id;
	enum dh_err rc;

	rc = dh_api_obj_load(req, res, req->args[0], res->right, &row);
	if (rc != DH_OK)
		goto out;
	id = json_string_value(json_object_get(row, "id"));
	rc = run_write(req,
		       &(struct write){ .res = res, .op = WRITE_DELETE, .id = id, .row = row });
	if (rc == DH_E_REFERENCED && !req->err.detail[0])
		dh_error_set(&req->err, DH_E_REFERENCED,
			     "This %s is still referenced by other objects; delete or change those"
			     " first.",
			     res->name);
	if (rc == DH_OK)
		rc = dh_http_reply_empty(req, 204);
out:
	json_decref(row);
	return rc;
}

enum dh_err dh_api_obj_auth_changed(struct dh_req *req, const char *id, json_t *row)
{
	(void)id;
	(void)row;
	/* the caches move on only once the change is committed (issue #12) */
	dh_db_auth_changed(req->db);
	return DH_OK;
}

/* Whether the caller sees the object a /api/v1/<kind>/{id} names, per kind. */
static const struct {
	const char *kind;
	bool (*visible)(struct dh_req *req, const char *key);
} id_kinds[] = {
	{ "products", dh_api_products_visible },
	{ "models", dh_api_models_visible },
	{ "channels", dh_api_channels_visible },
	{ "delivery-methods", dh_api_delivery_methods_visible },
	{ "delivery-procedures", dh_api_delivery_procedures_visible },
	{ "devices", dh_api_devices_visible },
	{ "users", dh_api_users_visible },
	{ "tokens", dh_api_tokens_visible },
	{ "access-rights", dh_api_access_rights_visible },
	{ "firmware", dh_api_firmware_visible },
	{ "firmware-update", dh_api_sessions_visible },
	{ "webhooks", dh_api_webhooks_visible },
};

bool dh_api_route_id_visible(struct dh_req *req)
{
	static const char prefix[] = "/api/v1/";
	const char *kind, *key = req->nargs ? req->args[0] : NULL;
	size_t n;

	if (!req->route || !key || strncmp(req->route->pattern, prefix, sizeof(prefix) - 1) != 0)
		return true;
	kind = req->route->pattern + sizeof(prefix) - 1;
	n = strcspn(kind, "/");
	if (strncmp(kind + n, "/{", 2) != 0)
		return true; /* the id is not the segment after the kind */
	for (size_t i = 0; i < sizeof(id_kinds) / sizeof(id_kinds[0]); i++) {
		if (strlen(id_kinds[i].kind) == n && strncmp(id_kinds[i].kind, kind, n) == 0)
			return id_kinds[i].visible(req, key);
	}
	return true;
}

enum dh_err dh_api_model_product(struct dh_req *req, const char *model_id,
				 char product[DH_UUID_LEN])
{
	json_t *model = NULL;
	enum dh_err rc;

	if (!model_id)
		return DH_E_NOT_FOUND;
	rc = dh_db_obj_get(req->db, "models", model_id, false, &model);
	if (rc == DH_OK)
		snprintf(product, DH_UUID_LEN, "%s",
			 json_string_value(json_object_get(model, "product_id")));
	json_decref(model);
	return rc;
}
