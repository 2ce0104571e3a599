/*
 * Short links: opaque tokens that are their own credential (API.md, "Short links"), and the
 * in-memory table of the links that are valid now, keyed by the SHA-256 of the token. The
 * table holds a link exactly while its session is processing or created: the link step puts
 * it (pipeline/session.c, before the hash is stored, so that no state change can slip in
 * between), every state change that leaves those states drops it, and start-up loads it
 * from the database. Every transport (HTTP /d/<token>, CoAP) answers from it alone, so a
 * presented token costs one SHA-256 and one table probe whatever it names, and no
 * transport touches the database for it.
 *
 * Tokens are kept nowhere, neither in memory nor in the database: only their hash. A token
 * is the first DH_LINK_TOKEN_BYTES of HMAC-SHA256 under the link key (DH_LINK_KEY_LEN bytes
 * from getrandom, kept in the data directory, never in the database) of the session id and
 * the run (its attempts count), so the server can show a session's link again without
 * storing it, a database dump or backup holds no usable link, and every run of a session
 * gets a new one.
 *
 * Shared memory: the table, guarded by one read-write lock, held for a probe or an update,
 * never across I/O; the key, written once at start-up before any thread reads it.
 */
#ifndef DH_CORE_LINKS_H
#define DH_CORE_LINKS_H

#include "core/err.h"
#include "core/rights.h"
#include "core/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of a token: 128 bits (API.md asks for at least 96 random ones). */
#define DH_LINK_TOKEN_BYTES 16
/* Bytes of the link key: HMAC-SHA256's full strength. */
#define DH_LINK_KEY_LEN 32
/* The link key's file in the data directory (pipeline/session.c makes it; backups carry it,
 * and every server on one database needs the same). */
#define DH_LINK_KEY_FILE "link.key"
/* A token in text: 22 base64url characters (no padding) and NUL. */
#define DH_LINK_TOKEN_LEN 23
/* Bytes of a token's hash (SHA-256). */
#define DH_LINK_HASH_LEN 32
/* Bytes of the image's CoAP ETag: the first of its SHA-256 (RFC 7252 allows up to 8). */
#define DH_LINK_ETAG_LEN 8

/* One valid link: the session and the image it serves. */
struct dh_link {
	uint8_t hash[DH_LINK_HASH_LEN];
	char session[DH_UUID_LEN];
	char product[DH_UUID_LEN]; /* the session's rights scope, for the delivered events */
	char model[DH_UUID_LEN];
	char channel[DH_UUID_LEN];              /* "" when none */
	char device_name[DH_DEVICE_ID_MAX + 1]; /* the twin's device_id, "" when none */
	char sha256[DH_SHA256_HEX];             /* the image */
	uint64_t size;
	char image_time[DH_TIME_LEN];   /* the image's upload time (Last-Modified) */
	uint8_t etag[DH_LINK_ETAG_LEN]; /* set by dh_links_put from sha256 */
};

/* Sets the link key (copied). Call once at start-up, before any thread uses links. */
void dh_link_key_set(const uint8_t key[DH_LINK_KEY_LEN]);

/*
 * Writes the token of run `attempts` of session (base64url, no padding) into out. False
 * when no key was set.
 */
bool dh_link_token(const char *session, int attempts, char out[DH_LINK_TOKEN_LEN]);

/*
 * The shortest end of a token that dh_link_token_mask still hides when text ends in it (an
 * answer cut short): a shorter one leaves at least 110 of the token's 128 bits unknown, more
 * than the 96 API.md asks a link for.
 */
#define DH_LINK_MASK_MIN 4

/*
 * Overwrites with '*' every occurrence of token (NUL-terminated; nothing when empty) in the
 * len bytes of text, and a beginning of it of DH_LINK_MASK_MIN characters or more that ends
 * text: what an outside service answers may echo a link it was sent, and is stored. Returns
 * how many it hid.
 */
size_t dh_link_token_mask(char *text, size_t len, const char *token);

/* The hash under which a presented token (any bytes, len of them) is looked up. */
void dh_link_hash(const char *token, size_t len, uint8_t out[DH_LINK_HASH_LEN]);
/* The hash as 64 lower-case hex digits (the database's form) and back; parse is false
 * unless hex is exactly that. */
void dh_link_hash_hex(const uint8_t hash[DH_LINK_HASH_LEN], char out[DH_SHA256_HEX]);
bool dh_link_hash_parse(const char *hex, uint8_t out[DH_LINK_HASH_LEN]);

/*
 * The host of an absolute URL ("http://[::1]:8080/x" gives "[::1]", IPv6 literals keep
 * their brackets; user info and port are dropped) into out. False when url has no
 * "scheme://", an empty host, or the host does not fit.
 */
bool dh_url_host(const char *url, char *out, size_t size);

/*
 * Makes l valid (copied; a link with the same hash is replaced, and so is any other link of
 * l's session: a session's only valid link is its current run's). DH_E_INVALID when l's
 * image hash is not 64 hex digits, DH_E_NOMEM.
 */
enum dh_err dh_links_put(const struct dh_link *l);
/* Makes the link with this hash invalid; nothing when there is none. */
void dh_links_drop(const uint8_t hash[DH_LINK_HASH_LEN]);
/* Makes every link of this session invalid (there is at most one); nothing when none. */
void dh_links_drop_session(const char *session);
/* Copies the valid link with this hash into out; false when there is none. */
bool dh_links_find(const uint8_t hash[DH_LINK_HASH_LEN], struct dh_link *out);
/*
 * Whether the table holds every valid link yet: false until start-up loaded them
 * (dh_links_set_ready), so that a transport that starts earlier can say "not yet" rather
 * than "no such link".
 */
bool dh_links_ready(void);
void dh_links_set_ready(bool ready);

/* How many links are valid. */
size_t dh_links_count(void);
/* Drops every link (shutdown, tests). */
void dh_links_clear(void);

#endif
