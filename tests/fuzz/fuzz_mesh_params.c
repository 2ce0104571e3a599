/*
 * Fuzz target for the mesh_smp step's params (server/plugins/mesh_smp.c): the input is the
 * JSON text an admin sends as a procedure step's "params". Whatever it is, the parser either
 * fills parameters that the driver can use as they are (strings terminated, receivers in
 * range, hex of even length) or refuses with a sentence; the registry's validation hook
 * agrees with it.
 */
#include "plugins/mesh_smp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool hex_ok(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	if (n == cap || n % 2)
		return false;
	return strspn(s, "0123456789abcdefABCDEF") == n;
}

static void check_params(const struct dh_dfd_params *p)
{
	if (!memchr(p->host, 0, sizeof(p->host)) || !memchr(p->device, 0, sizeof(p->device)))
		abort();
	if (p->transport == DH_SMP_TR_UDP && (!p->host[0] || p->port < 1 || p->port > 65535))
		abort();
	if (p->transport == DH_SMP_TR_SERIAL && (!p->device[0] || p->baud == 0))
		abort();
	if (p->n_receivers < 1 || p->n_receivers > DH_DFD_RECEIVERS_MAX)
		abort();
	for (size_t i = 0; i < p->n_receivers; i++) {
		if (p->receivers[i].addr < 1 || p->receivers[i].addr > 0x7fff)
			abort();
	}
	if (!hex_ok(p->fwid_hex, sizeof(p->fwid_hex)) ||
	    !hex_ok(p->metadata_hex, sizeof(p->metadata_hex)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dh_dfd_params *p = malloc(sizeof(*p));
	char why[DH_MESH_SMP_WHY_MAX], why2[DH_MESH_SMP_WHY_MAX];
	json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	enum dh_err rc;

	if (!p || !j)
		goto out;
	memset(why, 'x', sizeof(why));
	rc = dh_mesh_smp_params_from_json(j, p, why, sizeof(why));
	if (rc == DH_OK) {
		check_params(p);
	} else if (rc != DH_E_INVALID || !why[0] || !memchr(why, 0, sizeof(why))) {
		abort();
	}
	if (dh_mesh_smp_validate(j, why2, sizeof(why2)) != (rc == DH_OK))
		abort();
out:
	json_decref(j);
	free(p);
	return 0;
}
