/*
 * Fuzz target for the destination rules of outbound requests (server/core/netaddr.c): a host
 * as a webhook URL or an http step names it. Every byte sequence gets one of the kinds, an
 * address literal parses to 4 or 16 bytes whose kind agrees with the host's, and a host that
 * parses as no literal is public unless it is a local name.
 */
#include "core/netaddr.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *host = malloc(size + 1);
	uint8_t addr[16];
	enum dh_addr_kind k;
	int family;

	if (!host)
		return 0;
	memcpy(host, data, size);
	host[size] = 0;
	k = dh_host_kind(host);
	if ((unsigned)k > DH_ADDR_RESERVED)
		abort();
	family = dh_addr_parse_literal(host, addr);
	if (family == 4 && dh_addr_kind_v4(addr) != k)
		abort();
	if (family == 6 && dh_addr_kind_v6(addr) != k)
		abort();
	if (family == 0 && k != (dh_host_is_local_name(host) ? DH_ADDR_LOOPBACK : DH_ADDR_PUBLIC))
		abort();
	if (family != 0 && family != 4 && family != 6)
		abort();
	free(host);
	return 0;
}
