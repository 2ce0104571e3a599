/*
 * Block2 reading and planning (block.h). Offsets are computed in 64 bits from a 20-bit
 * number and an exponent of at most 6, so nothing a client sends can overflow them.
 */
#include "coap/block.h"

bool dh_block2_parse(const uint8_t *value, size_t len, struct dh_block2 *out)
{
	uint32_t v = 0;

	if (len > 3 || (len > 0 && !value))
		return false;
	for (size_t i = 0; i < len; i++)
		v = v << 8 | value[i];
	out->num = v >> 4;
	out->more = (v & 0x8) != 0;
	out->szx = v & 0x7;
	return true;
}

size_t dh_block2_format(uint32_t num, bool more, unsigned szx, uint8_t out[3])
{
	uint32_t v = (num & DH_COAP_BLOCK_NUM_MAX) << 4 | (more ? 0x8u : 0u) | (szx & 0x7u);
	size_t n = v > 0xFFFF ? 3 : v > 0xFF ? 2 : v > 0 ? 1 : 0;

	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	return n;
}

void dh_block2_plan(uint64_t size, const struct dh_block2 *req, unsigned max_szx,
		    struct dh_block2_plan *plan)
{
	unsigned szx = max_szx > DH_COAP_SZX_MAX ? DH_COAP_SZX_MAX : max_szx;
	uint64_t num = 0, off, bs;

	*plan = (struct dh_block2_plan){ .code = 205 };
	if (req) {
		if (req->szx > DH_COAP_SZX_MAX) {
			plan->code = 400;
			return;
		}
		num = req->num & DH_COAP_BLOCK_NUM_MAX;
		off = num << (req->szx + 4);
		/* a smaller block than asked: same offset, more and smaller blocks before it */
		if (req->szx < szx)
			szx = req->szx;
		num = off >> (szx + 4);
	}
	bs = (uint64_t)16 << szx;
	off = num << (szx + 4);
	if (off >= size && !(off == 0 && size == 0)) {
		plan->code = 402;
		return;
	}
	plan->off = off;
	plan->len = size - off < bs ? size - off : bs;
	plan->more = off + plan->len < size;
	plan->block = req || plan->more;
	/* a number past 20 bits cannot be written: such a block is past any image we serve */
	if (num > DH_COAP_BLOCK_NUM_MAX) {
		*plan = (struct dh_block2_plan){ .code = 402 };
		return;
	}
	plan->num = (uint32_t)num;
	plan->szx = szx;
}
