/*
 * Fuzz target for the destination rules of outbound requests (server/core/netaddr.c): a host
 * as a webhook URL or an http step names it. Every byte sequence gets one of the kinds, an
 * address literal parses to 4 or 16 bytes whose kind agrees with the host's, and a host that
 * parses as no literal is public unless it is a local name. Whatever the C resolver takes as
 * an address literal (getaddrinfo with AI_NUMERICHOST, no lookup) the parser must read as that
 * same address, so that no spelling slips past the check; and an IPv4 address has the kind of
 * its IPv4-mapped IPv6 form.
 */
#include "core/netaddr.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longest host given to the resolver: DNS names stop at 253 characters. */
#define FUZZ_HOST_MAX 300

/* What getaddrinfo reads host as without a lookup: 4 or 6 and the address, or 0. */
static int resolver_literal(const char *host, uint8_t out[16])
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST, .ai_family = AF_UNSPEC };
	struct addrinfo *res = NULL;
	char buf[FUZZ_HOST_MAX + 1];
	size_t n = strlen(host);
	int fam = 0;

	if (n > FUZZ_HOST_MAX)
		return 0;
	/* a URL brackets IPv6 literals; the resolver takes them bare */
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && memchr(host, ':', n)) {
		memcpy(buf, host + 1, n - 2);
		buf[n - 2] = 0;
	} else {
		memcpy(buf, host, n + 1);
	}
	if (getaddrinfo(buf, NULL, &hints, &res) != 0)
		return 0;
	if (res->ai_family == AF_INET) {
		memcpy(out, &((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr, 4);
		fam = 4;
	} else if (res->ai_family == AF_INET6) {
		memcpy(out, &((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr, 16);
		fam = 6;
	}
	freeaddrinfo(res);
	return fam;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *host = malloc(size + 1);
	uint8_t addr[16], theirs[16], mapped[16] = { 0 };
	enum dh_addr_kind k;
	int family, ref;

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
	/* zones name interfaces, which the resolver looks up: not compared */
	if (!strchr(host, '%')) {
		ref = resolver_literal(host, theirs);
		if (ref && (family != ref || memcmp(addr, theirs, ref == 4 ? 4 : 16) != 0))
			abort();
	}
	if (family == 4) {
		mapped[10] = mapped[11] = 0xff;
		memcpy(mapped + 12, addr, 4);
		if (dh_addr_kind_v6(mapped) != dh_addr_kind_v4(addr))
			abort();
	}
	free(host);
	return 0;
}
