/*
 * Which network destinations an outbound request (webhooks, the `http` step) may reach: the
 * classification of IPv4 and IPv6 addresses into public and the kinds that are refused unless
 * --webhook-allow-private (loopback, private, link-local, ...), host literals in every form a
 * resolver accepts, and the names that are local by definition. Pure: no I/O, no resolver.
 */
#ifndef DH_CORE_NETADDR_H
#define DH_CORE_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dh_addr_kind {
	DH_ADDR_PUBLIC = 0,
	DH_ADDR_UNSPECIFIED, /* 0.0.0.0/8, :: */
	DH_ADDR_LOOPBACK,    /* 127.0.0.0/8, ::1 */
	DH_ADDR_PRIVATE,     /* 10/8, 172.16/12, 192.168/16, 100.64/10 (shared), fc00::/7 */
	DH_ADDR_LINK_LOCAL,  /* 169.254/16, fe80::/10 */
	DH_ADDR_MULTICAST,   /* 224/4, ff00::/8 */
	DH_ADDR_RESERVED,    /* 240/4 with broadcast, 192.0.0/24, 198.18/15, fec0::/10 */
};

/* "loopback", "private", ... ("public" for DH_ADDR_PUBLIC). */
const char *dh_addr_kind_name(enum dh_addr_kind k);

/* The kind of an IPv4 address in network byte order. */
enum dh_addr_kind dh_addr_kind_v4(const uint8_t a[4]);

/*
 * The kind of an IPv6 address. Addresses that carry an IPv4 address (mapped ::ffff:0:0/96,
 * compatible ::/96, NAT64 64:ff9b::/96, 6to4 2002::/16) take the kind of that address, so
 * that ::ffff:127.0.0.1 is loopback.
 */
enum dh_addr_kind dh_addr_kind_v6(const uint8_t a[16]);

/*
 * Parses host as an IP address literal in every form the C resolver takes for a host name:
 * dotted quad, the short and numeric forms (127.1, 2130706433, 0x7f000001, 0177.0.0.1), and
 * IPv6 with or without brackets and zone ("[fe80::1%eth0]"). Returns 4 or 6 with the address
 * in out (4 or 16 bytes), 0 when host is not an address literal.
 */
int dh_addr_parse_literal(const char *host, uint8_t out[16]);

/* Names that resolve to this machine by definition (RFC 6761): "localhost", "*.localhost",
 * with or without a trailing dot, in any case. */
bool dh_host_is_local_name(const char *host);

/*
 * The save-time check of a destination host (a name or a literal): DH_ADDR_PUBLIC when an
 * outbound request may go there as far as can be told without resolving it, otherwise the
 * kind that refuses it (local names count as loopback).
 */
enum dh_addr_kind dh_host_kind(const char *host);

#endif
