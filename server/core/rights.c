/*
 * Evaluation of access rights over scopes. The implication table and the scope match are
 * the whole policy; API handlers only name the action and the object's scope.
 */
#include "core/rights.h"

#include <stdlib.h>
#include <string.h>

static const char *const action_names[] = {
	[DH_ACT_NONE] = "none",   [DH_ACT_AUTH] = "auth",     [DH_ACT_UPDATE] = "update",
	[DH_ACT_DRAFT] = "draft", [DH_ACT_UPLOAD] = "upload", [DH_ACT_MANAGE] = "manage",
	[DH_ACT_ADMIN] = "admin",
};

/* covers[g][a]: a grant of g allows a. */
static const bool covers[DH_ACT_ADMIN + 1][DH_ACT_ADMIN + 1] = {
	[DH_ACT_UPDATE] = { [DH_ACT_AUTH] = true, [DH_ACT_UPDATE] = true },
	[DH_ACT_DRAFT] = { [DH_ACT_AUTH] = true, [DH_ACT_UPDATE] = true, [DH_ACT_DRAFT] = true },
	[DH_ACT_UPLOAD] = { [DH_ACT_AUTH] = true, [DH_ACT_UPLOAD] = true },
	[DH_ACT_MANAGE] = { [DH_ACT_AUTH] = true,
			    [DH_ACT_UPDATE] = true,
			    [DH_ACT_DRAFT] = true,
			    [DH_ACT_UPLOAD] = true,
			    [DH_ACT_MANAGE] = true },
	[DH_ACT_ADMIN] = { [DH_ACT_AUTH] = true,
			   [DH_ACT_UPDATE] = true,
			   [DH_ACT_DRAFT] = true,
			   [DH_ACT_UPLOAD] = true,
			   [DH_ACT_MANAGE] = true,
			   [DH_ACT_ADMIN] = true },
};

enum dh_action dh_action_parse(const char *name)
{
	if (!name)
		return DH_ACT_NONE;
	for (int a = DH_ACT_UPDATE; a <= DH_ACT_ADMIN; a++) {
		if (strcmp(name, action_names[a]) == 0)
			return (enum dh_action)a;
	}
	return DH_ACT_NONE;
}

const char *dh_action_name(enum dh_action a)
{
	return (unsigned)a <= DH_ACT_ADMIN ? action_names[a] : "none";
}

void dh_principal_release(struct dh_principal *p)
{
	free(p->grants);
	memset(p, 0, sizeof(*p));
}

bool dh_principal_copy(struct dh_principal *dst, const struct dh_principal *src)
{
	*dst = *src;
	dst->grants = NULL;
	if (src->ngrants) {
		dst->grants = calloc(src->ngrants, sizeof(*src->grants));
		if (!dst->grants) {
			dst->ngrants = 0;
			return false;
		}
		memcpy(dst->grants, src->grants, src->ngrants * sizeof(*src->grants));
	}
	return true;
}

bool dh_action_covers(enum dh_action g, enum dh_action a)
{
	if (a == DH_ACT_NONE)
		return true;
	if ((unsigned)g > DH_ACT_ADMIN || (unsigned)a > DH_ACT_ADMIN)
		return false;
	return covers[g][a];
}

static bool field_match(const char *grant, const char *obj)
{
	return !grant[0] || (obj && strcmp(grant, obj) == 0);
}

static bool scope_match(const struct dh_grant *g, const struct dh_scope *s)
{
	static const struct dh_scope none = { 0 };

	if (g->action == DH_ACT_ADMIN)
		return true;
	if (!s)
		s = &none;
	return field_match(g->product, s->product) && field_match(g->model, s->model) &&
	       field_match(g->channel, s->channel);
}

bool dh_rights_allow(const struct dh_principal *p, enum dh_action act, const struct dh_scope *s)
{
	if (act == DH_ACT_NONE)
		return true;
	for (size_t i = 0; i < p->ngrants; i++) {
		if (dh_action_covers(p->grants[i].action, act) && scope_match(&p->grants[i], s))
			return true;
	}
	return false;
}

bool dh_rights_any(const struct dh_principal *p, enum dh_action act)
{
	if (act == DH_ACT_NONE)
		return true;
	for (size_t i = 0; i < p->ngrants; i++) {
		if (dh_action_covers(p->grants[i].action, act))
			return true;
	}
	return false;
}

bool dh_rights_sees(const struct dh_principal *p, const struct dh_scope *s)
{
	for (size_t i = 0; i < p->ngrants; i++) {
		const struct dh_grant *g = &p->grants[i];
		/* a channel-narrowed grant still lets its holder see the model's objects */
		if (g->action == DH_ACT_ADMIN || (field_match(g->product, s ? s->product : NULL) &&
						  field_match(g->model, s ? s->model : NULL)))
			return true;
	}
	return false;
}

bool dh_rights_is_admin(const struct dh_principal *p)
{
	return dh_rights_allow(p, DH_ACT_ADMIN, NULL);
}
