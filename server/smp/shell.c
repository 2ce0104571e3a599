/*
 * Line-based parser of mesh shell output (SMP.md 7.2). Picks out the lines it recognises —
 * objects, receivers-get blocks and target lines, slot messages — and ignores everything
 * else, since device logs can land between printed lines. Owns no memory beyond the caller's
 * struct dh_smp_shell_doc.
 */
#include "smp/shell.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Longest line considered; longer ones are cut (a target line is about 110 bytes). */
#define LINE_MAX_LEN 512

size_t dh_smp_shell_strip(const char *in, size_t n, char *out, size_t cap)
{
	size_t i = 0, o = 0;

	if (cap == 0)
		return 0;
	while (i < n && o + 1 < cap) {
		unsigned char ch = (unsigned char)in[i];

		if (ch == 0x1b) {
			i++;
			if (i < n && in[i] == '[') {
				i++;
				/* Parameters and intermediates, then one final byte 0x40..0x7e. */
				while (i < n &&
				       ((unsigned char)in[i] < 0x40 || (unsigned char)in[i] > 0x7e))
					i++;
				if (i < n)
					i++;
			}
			continue;
		}
		i++;
		if (ch == '\r' || ch == '\0')
			continue;
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	return o;
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Reads "text" at p into out (cut at cap - 1); returns the byte after the closing quote. */
static const char *read_quoted(const char *p, char *out, size_t cap)
{
	size_t o = 0;

	if (*p != '"')
		return NULL;
	p++;
	while (*p && *p != '"') {
		if (o + 1 < cap)
			out[o++] = *p;
		p++;
	}
	out[o] = '\0';
	if (*p != '"')
		return NULL;
	return p + 1;
}

static const char *read_value(const char *p, struct dh_smp_shell_kv *kv)
{
	bool neg = false;
	uint64_t v = 0;
	int base = 10, digits = 0;

	if (*p == '"') {
		kv->type = DH_SMP_SHELL_STR;
		return read_quoted(p, kv->str, sizeof(kv->str));
	}
	if (strncmp(p, "true", 4) == 0 || strncmp(p, "false", 5) == 0) {
		kv->type = DH_SMP_SHELL_BOOL;
		kv->num = p[0] == 't';
		return p + (p[0] == 't' ? 4 : 5);
	}
	if (*p == '-') {
		neg = true;
		p++;
	}
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	for (;; p++) {
		int d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (base == 16 && isxdigit((unsigned char)*p))
			d = tolower((unsigned char)*p) - 'a' + 10;
		else
			break;
		/* Shell numbers are at most 32 bits; refuse anything that would overflow. */
		if (v > (UINT64_C(1) << 40))
			return NULL;
		v = v * (uint64_t)base + (uint64_t)d;
		digits++;
	}
	if (digits == 0)
		return NULL;
	kv->type = DH_SMP_SHELL_INT;
	kv->num = neg ? -(int64_t)v : (int64_t)v;
	return p;
}

/*
 * Parses "key": value pairs separated by commas starting at p, until '}' or the end of the
 * line. Returns a pointer just past the '}' or NULL when the object is not closed.
 */
static const char *parse_pairs(const char *p, struct dh_smp_shell_obj *o)
{
	for (;;) {
		struct dh_smp_shell_kv kv;

		memset(&kv, 0, sizeof(kv));
		p = skip_ws(p);
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		if (*p == '}')
			return p + 1;
		if (*p != '"')
			return NULL;
		p = read_quoted(p, kv.key, sizeof(kv.key));
		if (!p)
			return NULL;
		p = skip_ws(p);
		if (*p != ':')
			return NULL;
		p = skip_ws(p + 1);
		if (*p == '{')
			return NULL; /* nested object: handled by the caller */
		p = read_value(p, &kv);
		if (!p)
			return NULL;
		if (o->n < DH_SMP_SHELL_KV_MAX)
			o->kv[o->n++] = kv;
	}
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
	}
	return true;
}

static void parse_slot_line(const char *line, struct dh_smp_shell_doc *doc)
{
	const char *p = strstr(line, "Slot added.");
	char *end = NULL;
	long v;

	if (p) {
		p += strlen("Slot added.");
		p = skip_ws(p);
		if (strncmp(p, "Index:", 6) == 0)
			p += 6;
		else if (strncmp(p, "ID:", 3) == 0)
			p += 3;
		else
			return;
		p = skip_ws(p);
		v = strtol(p, &end, 0);
		if (end != p && v >= 0) {
			doc->slot_added = true;
			doc->slot_idx = v;
		}
		return;
	}
	if (strncmp(line, "Failed to reserve slot", 22) == 0 ||
	    strncmp(line, "Failed to commit slot", 21) == 0 || strcmp(line, "Failed.") == 0) {
		size_t n = strlen(line);

		if (n >= sizeof(doc->slot_failure))
			n = sizeof(doc->slot_failure) - 1;
		doc->slot_failed = true;
		memcpy(doc->slot_failure, line, n);
		doc->slot_failure[n] = '\0';
	}
}

/* One line inside a multi-line block at depth >= 1. Returns the depth change. */
static int block_line(const char *p, int depth, struct dh_smp_shell_doc *doc)
{
	char key[DH_SMP_SHELL_KEY_MAX];
	const char *q;

	if (*p == '}')
		return -1;
	if (*p != '"')
		return 0;
	q = read_quoted(p, key, sizeof(key));
	if (!q)
		return 0;
	q = skip_ws(q);
	if (*q != ':')
		return 0;
	q = skip_ws(q + 1);
	if (*q == '{') {
		if (all_digits(key)) {
			struct dh_smp_shell_target t;

			memset(&t, 0, sizeof(t));
			t.index = strtol(key, NULL, 10);
			if (!parse_pairs(q + 1, &t.obj)) {
				doc->truncated = true; /* a target line cut in the middle */
				return 0;
			}
			if (doc->n_targets < DH_SMP_SHELL_TARGETS_MAX)
				doc->targets[doc->n_targets++] = t;
			return 0;
		}
		/* A nested object ("targets": {) that is not closed on this line. */
		return strchr(q, '}') ? 0 : 1;
	}
	if (depth == 1) {
		struct dh_smp_shell_obj one = { .n = 0 };
		char buf[LINE_MAX_LEN + 4];
		size_t n = strlen(p);

		/* Reuse the pair parser on a one-pair line by closing it. */
		if (n > LINE_MAX_LEN)
			n = LINE_MAX_LEN;
		memcpy(buf, p, n);
		buf[n] = '}';
		buf[n + 1] = '\0';
		if (parse_pairs(buf, &one) && one.n == 1 && doc->top.n < DH_SMP_SHELL_KV_MAX)
			doc->top.kv[doc->top.n++] = one.kv[0];
	}
	return 0;
}

void dh_smp_shell_parse(const char *out, size_t n, struct dh_smp_shell_doc *doc)
{
	char *clean = NULL;
	char line[LINE_MAX_LEN + 1];
	size_t len, i = 0;
	int depth = 0;

	memset(doc, 0, sizeof(*doc));
	clean = malloc(n + 1);
	if (!clean)
		return;
	len = dh_smp_shell_strip(out, n, clean, n + 1);
	while (i < len) {
		size_t j = i, ll;
		const char *p;

		while (j < len && clean[j] != '\n')
			j++;
		ll = j - i < LINE_MAX_LEN ? j - i : LINE_MAX_LEN;
		memcpy(line, clean + i, ll);
		line[ll] = '\0';
		i = j + 1;
		p = skip_ws(line);
		if (depth == 0) {
			parse_slot_line(p, doc);
			if (*p != '{')
				continue;
			if (doc->has_object)
				continue; /* the first object is the answer */
			doc->has_object = true;
			if (*skip_ws(p + 1) == '\0') {
				depth = 1; /* a multi-line block */
				continue;
			}
			if (!parse_pairs(p + 1, &doc->top))
				doc->truncated = true;
			continue;
		}
		depth += block_line(p, depth, doc);
	}
	if (depth > 0)
		doc->truncated = true;
	free(clean);
}

bool dh_smp_shell_get_int(const struct dh_smp_shell_obj *o, const char *key, int64_t *v)
{
	size_t i;

	for (i = 0; i < o->n; i++) {
		if (strcmp(o->kv[i].key, key) == 0 && o->kv[i].type != DH_SMP_SHELL_STR) {
			*v = o->kv[i].num;
			return true;
		}
	}
	return false;
}

const char *dh_smp_shell_get_str(const struct dh_smp_shell_obj *o, const char *key)
{
	size_t i;

	for (i = 0; i < o->n; i++) {
		if (strcmp(o->kv[i].key, key) == 0 && o->kv[i].type == DH_SMP_SHELL_STR)
			return o->kv[i].str;
	}
	return NULL;
}
