/*
 * The generic engine behind the configuration objects' CRUD: a resource is a table of
 * fields (API name, column, type, flags, references), and five handlers that validate
 * input against it, resolve references given as uuid or tid, check rights over the
 * object's scope, call the db object store and shape the JSON answer.
 */
#ifndef DH_API_OBJECTS_H
#define DH_API_OBJECTS_H

#include "core/rights.h"
#include "dh_db.h"
#include "http/req.h"

#include <jansson.h>

enum dh_ftype {
	DH_F_TEXT,   /* string, length in [min, max] */
	DH_F_TID,    /* [A-Za-z0-9._-]{1,64} */
	DH_F_INT,    /* integer in [min, max] */
	DH_F_BOOL,   /* true/false, stored 0/1 */
	DH_F_ARRAY,  /* JSON array, stored as JSON text */
	DH_F_OBJECT, /* JSON object, stored as JSON text */
	DH_F_REF,    /* uuid or tid of a row of ref_table, stored as its id */
	DH_F_ENUM,   /* one of enum_values */
	DH_F_TIME,   /* RFC 3339, stored normalised to UTC with microseconds */
	DH_F_SEMVER, /* SemVer 2.0 string */
};

#define DH_F_REQUIRED  0x01u /* must be present on create */
#define DH_F_READONLY  0x02u /* output only; input rejected */
#define DH_F_FILTER    0x04u /* usable as ?name= on lists */
#define DH_F_NULLABLE  0x08u /* accepts null */
#define DH_F_IMMUTABLE 0x10u /* set on create, rejected on patch */
#define DH_F_HIDDEN    0x20u /* never in output */
#define DH_F_VIRTUAL   0x40u /* input only, no column: the validate hook reads it (by name) */

struct dh_field {
	const char *name;
	const char *column;
	enum dh_ftype type;
	unsigned flags;
	const char *ref_table;
	bool ref_has_tid;
	long long min, max;
	const char *const *enum_values; /* NULL-terminated */
};

struct dh_resource;

/* Optional hooks; each returns DH_OK or an error with req->err filled. */
struct dh_resource_hooks {
	/* Extra validation of the merged row (column names) before insert/update; columns it
	 * changes or adds on a patch are written too. */
	enum dh_err (*validate)(struct dh_req *req, const struct dh_resource *res, json_t *row,
				bool creating);
	/* Fills scope of a row (column names); absent: the object is outside products. */
	enum dh_err (*scope)(struct dh_req *req, json_t *row, struct dh_scope *s,
			     char ids[3][DH_UUID_LEN]);
	/* Extra per-object access check after the rights check (e.g. own tokens only). */
	enum dh_err (*access)(struct dh_req *req, json_t *row);
	/* Adds computed keys to the output object (out: API names). */
	enum dh_err (*decorate)(struct dh_req *req, json_t *row, json_t *out);
	/* Called inside the write transaction before the write, so that a check against the
	 * stored row cannot race another write: cols are the columns a patch changes (NULL on
	 * create and delete), row the whole new row (NULL on delete). */
	enum dh_err (*before_write)(struct dh_req *req, const char *id, json_t *cols, json_t *row);
	/* Called after a successful write (insert, update, delete) inside its transaction
	 * (row NULL for a delete): more work written here commits or rolls back with it;
	 * what must wait for the commit goes through dh_db_after_commit. */
	enum dh_err (*after_write)(struct dh_req *req, const char *id, json_t *row);
	/* For lists: extra where-clauses from the caller (e.g. own tokens only); the values
	 * are new references the engine releases. */
	size_t (*list_filter)(struct dh_req *req, struct dh_db_where *w, size_t max);
};

struct dh_resource {
	const char *name; /* "product", for sentences */
	const char *table;
	bool has_tid;
	const struct dh_field *fields;
	size_t nfields;
	enum dh_action right; /* manage or admin over the object's scope */
	struct dh_resource_hooks hooks;
	/* Writes emit object.created/updated/deleted with {kind: event_kind, id, object}, in
	 * the write's transaction (webhooks, /api/v1/events); NULL: no events. */
	const char *event_kind;
};

enum dh_err dh_api_obj_list(struct dh_req *req, const struct dh_resource *res);
enum dh_err dh_api_obj_create(struct dh_req *req, const struct dh_resource *res);
enum dh_err dh_api_obj_get(struct dh_req *req, const struct dh_resource *res);
enum dh_err dh_api_obj_patch(struct dh_req *req, const struct dh_resource *res);
enum dh_err dh_api_obj_delete(struct dh_req *req, const struct dh_resource *res);

/* Shapes a db row (column names) as the API object (API names). New reference. */
json_t *dh_api_obj_to_json(struct dh_req *req, const struct dh_resource *res, json_t *row);

/* Loads the object named by key (uuid or tid) and checks that the caller may act on it:
 * 404 if it cannot see it, 403 if it lacks act. *row gets a new reference. */
enum dh_err dh_api_obj_load(struct dh_req *req, const struct dh_resource *res, const char *key,
			    enum dh_action act, json_t **row);

/*
 * What the caller may see of a list, for the db list calls (struct dh_db_visibility): the
 * caller's grants that imply one of the actions in any_acts see a row in their scope, those
 * that imply one of restricted_acts see restricted rows (drafts) too. Masks are sets of
 * 1u << enum dh_action.
 */
struct dh_api_visibility {
	struct dh_db_visibility v;
	bool sees_all;           /* one grant covers every row: no filter needed */
	struct dh_grant *grants; /* malloc'd storage of v's arrays */
};

/* Fills vis for the caller; DH_E_NOMEM. Release with dh_api_visibility_release. */
enum dh_err dh_api_visibility(struct dh_req *req, unsigned any_acts, unsigned restricted_acts,
			      struct dh_api_visibility *vis);
/* The visibility to hand to db: NULL when the caller sees every row. */
const struct dh_db_visibility *dh_api_visibility_db(const struct dh_api_visibility *vis);
void dh_api_visibility_release(struct dh_api_visibility *vis);

/* Reads ?limit= and ?offset= (defaults 50 and 0, limit at most 1000); 400 when bad. */
enum dh_err dh_api_page(struct dh_req *req, int64_t *limit, int64_t *offset);
/* Builds {"count","next","results"} (takes results). */
json_t *dh_api_list_envelope(struct dh_req *req, int64_t count, int64_t limit, int64_t offset,
			     json_t *results);

/* Resolves a reference given as uuid or tid; 400 with fields[name] when unknown. */
enum dh_err dh_api_resolve_ref(struct dh_req *req, const char *name, const char *table,
			       bool has_tid, json_t *value, char id[DH_UUID_LEN]);

/* The product of a model given by id, into product (DH_E_NOT_FOUND for an unknown model). */
enum dh_err dh_api_model_product(struct dh_req *req, const char *model_id,
				 char product[DH_UUID_LEN]);

/* An after_write hook for users, tokens and access rights: every change to them invalidates
 * the authentication cache once it is committed. */
enum dh_err dh_api_obj_auth_changed(struct dh_req *req, const char *id, json_t *row);

/* Does key name an object of res that the caller may see: one in a scope some grant of the
 * caller touches, and that the access hook does not hide (404)? An object outside products
 * is seen by every caller. Leaves req->err as it was. */
bool dh_api_obj_visible(struct dh_req *req, const struct dh_resource *res, const char *key);

/* Defines the five dh_api_<name>_* handlers of api.h over resource res, and
 * dh_api_<name>_visible. */
#define DH_CRUD_HANDLERS(name, res)                                                                \
	enum dh_err dh_api_##name##_list(struct dh_req *req)                                       \
	{                                                                                          \
		return dh_api_obj_list(req, &res);                                                 \
	}                                                                                          \
	enum dh_err dh_api_##name##_create(struct dh_req *req)                                     \
	{                                                                                          \
		return dh_api_obj_create(req, &res);                                               \
	}                                                                                          \
	enum dh_err dh_api_##name##_get(struct dh_req *req)                                        \
	{                                                                                          \
		return dh_api_obj_get(req, &res);                                                  \
	}                                                                                          \
	enum dh_err dh_api_##name##_patch(struct dh_req *req)                                      \
	{                                                                                          \
		return dh_api_obj_patch(req, &res);                                                \
	}                                                                                          \
	enum dh_err dh_api_##name##_delete(struct dh_req *req)                                     \
	{                                                                                          \
		return dh_api_obj_delete(req, &res);                                               \
	}                                                                                          \
	bool dh_api_##name##_visible(struct dh_req *req, const char *key)                          \
	{                                                                                          \
		return dh_api_obj_visible(req, &res, key);                                         \
	}

#endif
