/*
 * MCUboot image header fields (see mcuboot.h). Reads exactly DH_MCUBOOT_HDR_LEN bytes and
 * nothing past them; the image's TLVs are not looked at.
 */
#include "core/mcuboot.h"

#include <stdio.h>

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

bool dh_mcuboot_parse(const uint8_t *buf, size_t n, struct dh_mcuboot_hdr *h)
{
	if (!buf || n < DH_MCUBOOT_HDR_LEN || le32(buf) != DH_MCUBOOT_MAGIC)
		return false;
	h->load_addr = le32(buf + 4);
	h->hdr_size = le16(buf + 8);
	h->protect_tlv_size = le16(buf + 10);
	h->img_size = le32(buf + 12);
	h->flags = le32(buf + 16);
	/* ih_ver at offset 20: major u8, minor u8, revision u16, build_num u32; 4 bytes pad */
	h->major = buf[20];
	h->minor = buf[21];
	h->revision = le16(buf + 22);
	h->build_num = le32(buf + 24);
	return true;
}

void dh_mcuboot_version(const struct dh_mcuboot_hdr *h, char out[DH_MCUBOOT_VERSION_MAX])
{
	snprintf(out, DH_MCUBOOT_VERSION_MAX, "%u.%u.%u+%lu", (unsigned)h->major,
		 (unsigned)h->minor, (unsigned)h->revision, (unsigned long)h->build_num);
}

json_t *dh_mcuboot_to_json(const struct dh_mcuboot_hdr *h)
{
	char version[DH_MCUBOOT_VERSION_MAX];

	dh_mcuboot_version(h, version);
	return json_pack("{s:b, s:s, s:i, s:I, s:I, s:I}", "mcuboot", 1, "version", version,
			 "header_size", (int)h->hdr_size, "image_size", (json_int_t)h->img_size,
			 "load_addr", (json_int_t)h->load_addr, "flags", (json_int_t)h->flags);
}
