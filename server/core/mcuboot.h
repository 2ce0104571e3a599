/*
 * The MCUboot image header (bootutil/image.h, struct image_header): the first 32 bytes of an
 * image built for MCUboot, little endian. Pure functions over caller-owned bytes; the upload
 * (api/firmware.c) keeps an image's first bytes and reports these fields as image_info.
 */
#ifndef DH_CORE_MCUBOOT_H
#define DH_CORE_MCUBOOT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of the header; an image shorter than this has none. */
#define DH_MCUBOOT_HDR_LEN 32
/* ih_magic of an MCUboot image. */
#define DH_MCUBOOT_MAGIC 0x96f3b83du
/* Room for the version text "255.255.65535+4294967295" and its NUL. */
#define DH_MCUBOOT_VERSION_MAX 32

struct dh_mcuboot_hdr {
	uint32_t load_addr;
	uint16_t hdr_size;
	uint16_t protect_tlv_size;
	uint32_t img_size;
	uint32_t flags;
	uint8_t major, minor; /* ih_ver */
	uint16_t revision;
	uint32_t build_num;
};

/* Reads the header from the first n bytes of an image. False when n is too short or the
 * magic differs (not an MCUboot image); h is then untouched. Any 32 bytes with the magic
 * give a header: the fields are reported, not trusted. */
bool dh_mcuboot_parse(const uint8_t *buf, size_t n, struct dh_mcuboot_hdr *h);

/* The version as SemVer text, "major.minor.revision+build_num", into out. */
void dh_mcuboot_version(const struct dh_mcuboot_hdr *h, char out[DH_MCUBOOT_VERSION_MAX]);

/* {"mcuboot": true, "version", "header_size", "image_size", "load_addr", "flags"}, a new
 * reference (NULL when out of memory). */
json_t *dh_mcuboot_to_json(const struct dh_mcuboot_hdr *h);

#endif
