/*
 * Address classification for outbound requests (see netaddr.h): prefix tables for IPv4 and
 * IPv6, and the unwrapping of IPv6 forms that embed an IPv4 address. The tables follow the
 * IANA special-purpose registries; documentation ranges (192.0.2.0/24, 2001:db8::/32) are
 * left public because nothing routes them anyway.
 */
#include "core/netaddr.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

/* Longest host text examined: a DNS name is at most 253 characters. */
#define HOST_MAX 255

struct prefix {
	uint8_t bytes[16];
	unsigned bits;
	enum dh_addr_kind kind;
};

static const struct prefix v4_table[] = {
	{ { 0 }, 8, DH_ADDR_UNSPECIFIED },        { { 10 }, 8, DH_ADDR_PRIVATE },
	{ { 100, 64 }, 10, DH_ADDR_PRIVATE },     { { 127 }, 8, DH_ADDR_LOOPBACK },
	{ { 169, 254 }, 16, DH_ADDR_LINK_LOCAL }, { { 172, 16 }, 12, DH_ADDR_PRIVATE },
	{ { 192, 0, 0 }, 24, DH_ADDR_RESERVED },  { { 192, 168 }, 16, DH_ADDR_PRIVATE },
	{ { 198, 18 }, 15, DH_ADDR_RESERVED },    { { 224 }, 4, DH_ADDR_MULTICAST },
	{ { 240 }, 4, DH_ADDR_RESERVED },
};

static const struct prefix v6_table[] = {
	{ { 0 }, 128, DH_ADDR_UNSPECIFIED },
	{ { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, 128, DH_ADDR_LOOPBACK },
	{ { 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01 }, 48, DH_ADDR_PRIVATE }, /* local-use NAT64 */
	{ { 0x01, 0x00 }, 64, DH_ADDR_RESERVED },                        /* discard-only */
	{ { 0xfc }, 7, DH_ADDR_PRIVATE },
	{ { 0xfe, 0x80 }, 10, DH_ADDR_LINK_LOCAL },
	{ { 0xfe, 0xc0 }, 10, DH_ADDR_RESERVED }, /* deprecated site-local */
	{ { 0xff }, 8, DH_ADDR_MULTICAST },
};

static bool prefix_match(const uint8_t *a, const struct prefix *p)
{
	unsigned full = p->bits / 8, rest = p->bits % 8;

	if (memcmp(a, p->bytes, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[full] ^ p->bytes[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

const char *dh_addr_kind_name(enum dh_addr_kind k)
{
	static const char *const names[] = {
		[DH_ADDR_PUBLIC] = "public",         [DH_ADDR_UNSPECIFIED] = "unspecified",
		[DH_ADDR_LOOPBACK] = "loopback",     [DH_ADDR_PRIVATE] = "private",
		[DH_ADDR_LINK_LOCAL] = "link-local", [DH_ADDR_MULTICAST] = "multicast",
		[DH_ADDR_RESERVED] = "reserved",
	};

	if ((unsigned)k >= sizeof(names) / sizeof(names[0]))
		return "reserved";
	return names[k];
}

enum dh_addr_kind dh_addr_kind_v4(const uint8_t a[4])
{
	for (size_t i = 0; i < sizeof(v4_table) / sizeof(v4_table[0]); i++) {
		if (prefix_match(a, &v4_table[i]))
			return v4_table[i].kind;
	}
	return DH_ADDR_PUBLIC;
}

enum dh_addr_kind dh_addr_kind_v6(const uint8_t a[16])
{
	static const uint8_t zero[12] = { 0 };
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const uint8_t nat64[12] = { 0x00, 0x64, 0xff, 0x9b };
	uint8_t v4[4];

	for (size_t i = 0; i < sizeof(v6_table) / sizeof(v6_table[0]); i++) {
		if (prefix_match(a, &v6_table[i]))
			return v6_table[i].kind;
	}
	/* forms that carry an IPv4 address take that address's kind */
	if (memcmp(a, mapped, 12) == 0 || memcmp(a, zero, 12) == 0 || memcmp(a, nat64, 12) == 0)
		return dh_addr_kind_v4(a + 12);
	if (a[0] == 0x20 && a[1] == 0x02) /* 6to4: 2002:AABB:CCDD::/48 */
		return dh_addr_kind_v4(a + 2);
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) { /* Teredo: client inverted */
		for (int i = 0; i < 4; i++)
			v4[i] = (uint8_t)~a[12 + i];
		return dh_addr_kind_v4(v4);
	}
	return DH_ADDR_PUBLIC;
}

int dh_addr_parse_literal(const char *host, uint8_t out[16])
{
	char buf[HOST_MAX + 1];
	size_t n;
	struct in_addr a4;

	if (!host)
		return 0;
	n = strlen(host);
	if (n == 0 || n > HOST_MAX)
		return 0;
	if (host[0] == '[') {
		if (n < 3 || host[n - 1] != ']')
			return 0;
		memcpy(buf, host + 1, n - 2);
		buf[n - 2] = 0;
	} else {
		memcpy(buf, host, n + 1);
	}
	if (strchr(buf, ':')) {
		buf[strcspn(buf, "%")] = 0; /* a zone names an interface, not another address */
		return inet_pton(AF_INET6, buf, out) == 1 ? 6 : 0;
	}
	/* inet_aton takes the short and numeric forms the resolver also takes, but stops at
	 * white space and accepts what follows it: only digits, x and dots may be there */
	if (host[0] == '[' || strspn(buf, "0123456789abcdefABCDEFxX.") != strlen(buf))
		return 0;
	if (inet_aton(buf, &a4) == 0)
		return 0;
	memcpy(out, &a4.s_addr, 4);
	return 4;
}

bool dh_host_is_local_name(const char *host)
{
	static const char name[] = "localhost";
	size_t n = host ? strlen(host) : 0, k = sizeof(name) - 1;

	if (n > 0 && host[n - 1] == '.')
		n--;
	if (n < k || strncasecmp(host + n - k, name, k) != 0)
		return false;
	return n == k || host[n - k - 1] == '.';
}

enum dh_addr_kind dh_host_kind(const char *host)
{
	uint8_t a[16];

	switch (dh_addr_parse_literal(host, a)) {
	case 4:
		return dh_addr_kind_v4(a);
	case 6:
		return dh_addr_kind_v6(a);
	default:
		return dh_host_is_local_name(host) ? DH_ADDR_LOOPBACK : DH_ADDR_PUBLIC;
	}
}
