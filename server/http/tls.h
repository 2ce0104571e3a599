/*
 * TLS set-up for the HTTP server: reads the certificate and key named by --tls-cert and
 * --tls-key, checks them and the --tls-priorities string with GnuTLS before the daemon
 * starts, so that a bad file or string is reported as GnuTLS saw it, and keeps the PEM
 * text that libmicrohttpd needs until the server stops.
 */
#ifndef DH_HTTP_TLS_H
#define DH_HTTP_TLS_H

#include "core/err.h"

/*
 * The default --tls-priorities: TLS 1.3 and 1.2 only, AEAD ciphers (AES-GCM,
 * ChaCha20-Poly1305) with forward-secret ECDHE key exchange, the server's order first.
 * This is Mozilla's "intermediate" profile without finite-field DHE.
 */
#define DH_TLS_PRIORITIES_DEFAULT                                                                  \
	"SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"     \
	"+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"

/*
 * Reads cert_path and key_path and checks with GnuTLS that each parses, that the key
 * belongs to the certificate, and that priorities is a valid priority string. On success
 * the PEM texts are kept (see dh_tls_cert_pem) until dh_tls_release. On failure err says
 * which flag is wrong and what GnuTLS reported; returns DH_E_INVALID (or DH_E_IO when a
 * file cannot be read).
 */
enum dh_err dh_tls_load(const char *cert_path, const char *key_path, const char *priorities,
			struct dh_error *err);

/* The PEM texts kept by dh_tls_load, NUL-terminated; NULL before a successful load. */
const char *dh_tls_cert_pem(void);
const char *dh_tls_key_pem(void);

/* Checks a priority string only (no files); err as for dh_tls_load. */
enum dh_err dh_tls_check_priorities(const char *priorities, struct dh_error *err);

/* Frees what dh_tls_load kept. */
void dh_tls_release(void);

#endif
