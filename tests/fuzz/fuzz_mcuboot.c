/*
 * Fuzz target for the MCUboot image header parser (server/core/mcuboot.c), which reads the
 * first bytes of every uploaded image. Any input with the magic must give a header whose
 * version is valid SemVer with the same numbers, and JSON; any other input, none.
 */
#include "core/mcuboot.h"
#include "core/semver.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t magic[4] = { 0x3d, 0xb8, 0xf3, 0x96 };
	struct dh_mcuboot_hdr h;
	char version[DH_MCUBOOT_VERSION_MAX];
	struct dh_semver *v;
	json_t *j;
	bool is_mcuboot = size >= DH_MCUBOOT_HDR_LEN && memcmp(data, magic, 4) == 0;

	if (dh_mcuboot_parse(data, size, &h) != is_mcuboot)
		abort();
	if (!is_mcuboot)
		return 0;
	dh_mcuboot_version(&h, version);
	v = malloc(sizeof(*v));
	if (!v)
		return 0;
	if (!dh_semver_parse(version, v) || v->major != h.major || v->minor != h.minor ||
	    v->patch != h.revision || v->pre[0])
		abort();
	j = dh_mcuboot_to_json(&h);
	if (j && (!json_is_true(json_object_get(j, "mcuboot")) ||
		  strcmp(json_string_value(json_object_get(j, "version")), version) != 0 ||
		  json_integer_value(json_object_get(j, "image_size")) != (json_int_t)h.img_size))
		abort();
	json_decref(j);
	free(v);
	return 0;
}
