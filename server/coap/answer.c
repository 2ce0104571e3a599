/*
 * One answer of the CoAP image server (answer.h). Paths are read from the Uri-Path options
 * as libcoap parsed them; everything after that (which path, which method, which block) is
 * ours and has an answer for every input.
 */
#include "coap/answer.h"

#include "coap/block.h"

#include <string.h>

/*
 * Room the answer's own options take besides the payload: ETag (1 + 8), Content-Format
 * (1 + 1), Block2 (2 + 3: the delta from 12 to 23 needs an extended byte), Size2 (1 + 4) and
 * the payload marker (1): 22 bytes, rounded up.
 */
#define ANSWER_OPTIONS_ROOM 24
/* Uri-Path segments looked at; a longer path is no path of ours. */
#define PATH_SEGS_MAX 3

const char dh_coap_wellknown[] =
	"</d>;ct=42;title=\"Firmware images: GET /d/{token} of a session's coap_link, Block2\"";

struct seg {
	const uint8_t *p;
	size_t len;
};

static bool seg_is(const struct seg *s, const char *text)
{
	size_t n = strlen(text);

	return s->len == n && (n == 0 || memcmp(s->p, text, n) == 0);
}

/* The Uri-Path segments of request into segs; returns how many (PATH_SEGS_MAX + 1: more). */
static size_t path_of(const coap_pdu_t *request, struct seg segs[PATH_SEGS_MAX])
{
	coap_opt_iterator_t it;
	coap_opt_filter_t f;
	coap_opt_t *opt;
	size_t n = 0;

	coap_option_filter_clear(&f);
	coap_option_filter_set(&f, COAP_OPTION_URI_PATH);
	if (!coap_option_iterator_init(request, &it, &f))
		return 0;
	while ((opt = coap_option_next(&it)) != NULL) {
		if (n == PATH_SEGS_MAX)
			return PATH_SEGS_MAX + 1;
		segs[n].p = coap_opt_value(opt);
		segs[n].len = coap_opt_length(opt);
		n++;
	}
	return n;
}

static void finish(coap_pdu_t *response, unsigned code, uint64_t bytes, struct dh_coap_outcome *out)
{
	coap_pdu_set_code(response, COAP_RESPONSE_CODE(code));
	out->code = code;
	out->bytes = bytes;
}

static void add_uint(coap_pdu_t *pdu, coap_option_num_t num, uint64_t v)
{
	uint8_t buf[8];

	coap_add_option(pdu, num, coap_encode_var_safe8(buf, sizeof(buf), v), buf);
}

static void wellknown(const coap_pdu_t *request, coap_pdu_t *response, struct dh_coap_outcome *out)
{
	if (coap_pdu_get_code(request) != COAP_REQUEST_CODE_GET) {
		finish(response, 405, 0, out);
		return;
	}
	add_uint(response, COAP_OPTION_CONTENT_FORMAT, COAP_MEDIATYPE_APPLICATION_LINK_FORMAT);
	if (!coap_add_data(response, sizeof(dh_coap_wellknown) - 1,
			   (const uint8_t *)dh_coap_wellknown)) {
		finish(response, 500, 0, out);
		return;
	}
	finish(response, 205, 0, out);
}

static void image(const coap_pdu_t *request, coap_pdu_t *response, size_t max_payload,
		  const struct seg *token, const struct dh_coap_env *env,
		  struct dh_coap_outcome *out)
{
	struct dh_block2 b2, *b2p = NULL;
	struct dh_block2_plan plan;
	struct dh_coap_image img;
	coap_opt_iterator_t it;
	coap_opt_t *opt;
	uint8_t blk[3];
	unsigned max_szx = 0;
	size_t room;
	int found;

	if (coap_pdu_get_code(request) != COAP_REQUEST_CODE_GET) {
		finish(response, 405, 0, out);
		return;
	}
	opt = coap_check_option(request, COAP_OPTION_BLOCK2, &it);
	if (opt) {
		if (!dh_block2_parse(coap_opt_value(opt), coap_opt_length(opt), &b2)) {
			finish(response, 402, 0, out);
			return;
		}
		b2p = &b2;
	}
	if (max_payload < ANSWER_OPTIONS_ROOM + 16) {
		finish(response, 500, 0, out);
		return;
	}
	room = max_payload - ANSWER_OPTIONS_ROOM;
	while (max_szx < DH_COAP_SZX_MAX && ((size_t)32 << max_szx) <= room)
		max_szx++;
	/* the same look-up for every token, whatever it names (see links.h) */
	memset(&img, 0, sizeof(img));
	found = env->resolve(env->cls, token->p, token->len, &img);
	if (found == DH_COAP_NOT_YET) {
		add_uint(response, COAP_OPTION_MAXAGE, 1);
		finish(response, 503, 0, out);
		return;
	}
	if (found != DH_COAP_FOUND) {
		finish(response, 404, 0, out);
		return;
	}
	dh_block2_plan(img.size, b2p, max_szx, &plan);
	if (plan.code != 205) {
		env->release(env->cls, &img);
		finish(response, plan.code, 0, out);
		return;
	}
	coap_add_option(response, COAP_OPTION_ETAG, sizeof(img.etag), img.etag);
	add_uint(response, COAP_OPTION_CONTENT_FORMAT, COAP_MEDIATYPE_APPLICATION_OCTET_STREAM);
	if (plan.block)
		coap_add_option(response, COAP_OPTION_BLOCK2,
				dh_block2_format(plan.num, plan.more, plan.szx, blk), blk);
	/* Size2 is a 0-4 byte uint (RFC 7959 4): larger images go without it */
	if (img.size <= UINT32_MAX)
		add_uint(response, COAP_OPTION_SIZE2, img.size);
	if (plan.len > 0 && !coap_add_data(response, (size_t)plan.len, img.data + plan.off)) {
		env->release(env->cls, &img);
		finish(response, 500, 0, out);
		return;
	}
	env->sent(env->cls, &img, plan.off, plan.len);
	env->release(env->cls, &img);
	finish(response, 205, plan.len, out);
}

void dh_coap_answer(const coap_pdu_t *request, coap_pdu_t *response, size_t max_payload,
		    const struct dh_coap_env *env, struct dh_coap_outcome *out)
{
	struct seg segs[PATH_SEGS_MAX];
	size_t n = path_of(request, segs);

	if (n == 2 && seg_is(&segs[0], ".well-known") && seg_is(&segs[1], "core"))
		wellknown(request, response, out);
	else if (n == 2 && seg_is(&segs[0], "d") && segs[1].len > 0)
		image(request, response, max_payload, &segs[1], env, out);
	else
		finish(response, 404, 0, out);
}
