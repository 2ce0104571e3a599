/*
 * The URL forms an operator gives at start-up: the bases of the links the server hands out
 * (--public-url, --coap-public-url) and the HOST[:PORT] values of --allowed-hosts. Says of
 * any text whether it is such a form and, if not, what is wrong with it, in a few words for
 * the start-up message. Pure: no I/O, no resolver; config.c prints and exits.
 */
#ifndef DH_CORE_URL_H
#define DH_CORE_URL_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Longest base URL, in bytes. A link is its base and a path of up to about 70 bytes, every
 * session stores its base (DH_BASE_URL_MAX, 512 with the NUL), and a device keeps the short
 * link; a host name alone is at most 253 (RFC 1035), so 256 leaves room for a port and a
 * short path prefix and none for a base that cannot be stored whole.
 */
#define DH_URL_BASE_MAX 256

/* Longest --allowed-hosts list, in bytes: dozens of names with their ports. */
#define DH_URL_HOSTS_MAX 4096

/* Room for the sentence the checks write (why). */
#define DH_URL_WHY_MAX 192

/*
 * Checks text as the base of links: SCHEME://HOST[:PORT][PATH][/], where SCHEME is one of
 * schemes (lower case, NULL-terminated; compared regardless of case); HOST a DNS name (labels
 * of 1..63 letters, digits and '-', not beginning or ending with '-'; at most 253 bytes), an
 * IPv4 address, or an IPv6 address in brackets; PORT 1..65535; PATH (only when path_ok) one
 * or more "/segment" of RFC 3986 path characters and %HH escapes, no segment empty, "." or
 * "..". One trailing '/' is allowed either way. No user information, query or fragment;
 * at most DH_URL_BASE_MAX bytes, printable ASCII only. Returns true when text is such a
 * URL; otherwise false, and why (size > 0) holds what is wrong, e.g. "has no host". The
 * sentence quotes text only once it is known to be printable ASCII, cut short.
 */
bool dh_url_base_check(const char *text, const char *const *schemes, bool path_ok, char *why,
		       size_t size);

/*
 * Checks text as a comma-separated list of HOST[:PORT] values (HOST and PORT as above),
 * with spaces allowed around each comma and no entry empty; at most DH_URL_HOSTS_MAX bytes.
 * Returns true or false with why, as dh_url_base_check.
 */
bool dh_url_hosts_check(const char *text, char *why, size_t size);

#endif
