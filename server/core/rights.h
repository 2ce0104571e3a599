/*
 * Access rights: which action a principal (a token's user and grants) may take over which
 * scope. Pure evaluation over data the caller loaded; no I/O.
 *
 * Actions and what they imply (also in README and openapi.json):
 *   admin  -> everything, including users, access rights and `exec` steps;
 *   manage -> manage, upload, update, draft over its scope;
 *   upload -> upload firmware;
 *   draft  -> update, plus allow_draft_firmware in sessions;
 *   update -> run firmware-update sessions and download their images.
 * A grant's scope is everything, one product, one model, or one model+channel.
 */
#ifndef DH_CORE_RIGHTS_H
#define DH_CORE_RIGHTS_H

#include "core/util.h"

#include <stdbool.h>
#include <stddef.h>

enum dh_action {
	DH_ACT_NONE = 0, /* no right needed (public route) */
	DH_ACT_AUTH,     /* any valid token; the handler decides per object */
	DH_ACT_UPDATE,
	DH_ACT_DRAFT,
	DH_ACT_UPLOAD,
	DH_ACT_MANAGE,
	DH_ACT_ADMIN,
};

/* "update" etc. to the enum; DH_ACT_NONE for an unknown name. Only grantable actions. */
enum dh_action dh_action_parse(const char *name);
const char *dh_action_name(enum dh_action a);

/* One grant; empty strings mean "any". A model-scoped grant also names the model's product. */
struct dh_grant {
	enum dh_action action;
	char product[DH_UUID_LEN];
	char model[DH_UUID_LEN];
	char channel[DH_UUID_LEN];
};

/* Longest user name (bytes of UTF-8): what users accept, so that a principal and a session's
 * creator hold every name whole. */
#define DH_USER_NAME_MAX 200

/* Who is calling: filled by authentication, owned by the request. */
struct dh_principal {
	char user_id[DH_UUID_LEN];
	char user_name[DH_USER_NAME_MAX + 1];
	char token_id[DH_UUID_LEN];
	char token_hash[DH_SHA256_HEX]; /* of the secret: to check the token again later */
	int64_t token_expire_us;        /* 0: never */
	size_t ngrants;
	struct dh_grant *grants; /* malloc'd array, freed with dh_principal_release */
};

/* What an object belongs to; NULL or "" fields are "not applicable". */
struct dh_scope {
	const char *product;
	const char *model;
	const char *channel;
};

void dh_principal_release(struct dh_principal *p);
bool dh_principal_copy(struct dh_principal *dst, const struct dh_principal *src);

/* Does grant action g cover requested action a? */
bool dh_action_covers(enum dh_action g, enum dh_action a);

/* May p do act on an object in scope s (s NULL = an object outside products)? */
bool dh_rights_allow(const struct dh_principal *p, enum dh_action act, const struct dh_scope *s);

/* Does p hold act over some scope? The router uses it before the handler refines. */
bool dh_rights_any(const struct dh_principal *p, enum dh_action act);

/* May p see objects in scope s at all (any grant touches it)? 404 instead of 403 if not. */
bool dh_rights_sees(const struct dh_principal *p, const struct dh_scope *s);

bool dh_rights_is_admin(const struct dh_principal *p);

#endif
