/*
 * TLS set-up: the certificate, key and priority string are checked with GnuTLS itself
 * before libmicrohttpd sees them, because MHD only says that it could not start. Owns the
 * PEM texts handed to MHD; knows nothing of requests.
 */
#include "http/tls.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest PEM file read: a certificate chain of a dozen certificates is under 64 KiB. */
#define DH_TLS_FILE_MAX (1024 * 1024)

static char *cert_pem, *key_pem;

/* Reads a whole file of at most DH_TLS_FILE_MAX bytes, NUL-terminated; sets *len. */
static char *read_pem(const char *flag, const char *path, size_t *len, struct dh_error *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n;

	if (!f) {
		dh_error_set(err, DH_E_IO, "--%s %s: cannot open: %s", flag, path, strerror(errno));
		return NULL;
	}
	buf = malloc(DH_TLS_FILE_MAX + 1);
	if (!buf) {
		dh_error_set(err, DH_E_NOMEM, "--%s %s: out of memory", flag, path);
		goto out;
	}
	n = fread(buf, 1, DH_TLS_FILE_MAX + 1, f);
	if (ferror(f) || n > DH_TLS_FILE_MAX) {
		dh_error_set(err, DH_E_IO, "--%s %s: cannot read it, or larger than %d bytes", flag,
			     path, DH_TLS_FILE_MAX);
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = 0;
	*len = n;
out:
	fclose(f);
	return buf;
}

/* GnuTLS's sentence and name for rc, e.g. "Base64 decoding error (GNUTLS_E_BASE64...)". */
static enum dh_err gnutls_fail(struct dh_error *err, const char *what, int rc)
{
	const char *name = gnutls_strerror_name(rc);

	return dh_error_set(err, DH_E_INVALID, "%s: GnuTLS: %s (%s)", what, gnutls_strerror(rc),
			    name ? name : "?");
}

static enum dh_err check_cert(const char *path, const char *pem, size_t len, struct dh_error *err)
{
	gnutls_datum_t d = { .data = (unsigned char *)pem, .size = (unsigned)len };
	gnutls_x509_crt_t *crts = NULL;
	unsigned n = 0;
	char what[512];
	int rc;

	snprintf(what, sizeof(what), "--tls-cert %s", path);
	rc = gnutls_x509_crt_list_import2(&crts, &n, &d, GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0)
		return gnutls_fail(err, what, rc);
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);
	if (n == 0)
		return gnutls_fail(err, what, GNUTLS_E_NO_CERTIFICATE_FOUND);
	return DH_OK;
}

static enum dh_err check_key(const char *path, const char *pem, size_t len, struct dh_error *err)
{
	gnutls_datum_t d = { .data = (unsigned char *)pem, .size = (unsigned)len };
	gnutls_x509_privkey_t key = NULL;
	char what[512];
	int rc;

	snprintf(what, sizeof(what), "--tls-key %s", path);
	rc = gnutls_x509_privkey_init(&key);
	if (rc >= 0)
		rc = gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (key)
		gnutls_x509_privkey_deinit(key);
	if (rc >= 0)
		return DH_OK;
	/* GnuTLS only says "the requested data were not available": say what the file is */
	if (!strstr(pem, "PRIVATE KEY-----"))
		snprintf(what, sizeof(what), "--tls-key %s (%s)", path,
			 strstr(pem, "-----BEGIN CERTIFICATE-----")
				 ? "it holds a certificate, not a private key"
				 : "it holds no PEM private key block");
	return gnutls_fail(err, what, rc);
}

/* The pair as the server will use it: GnuTLS checks that the key matches the certificate. */
static enum dh_err check_pair(const char *cert_path, const char *key_path, size_t clen, size_t klen,
			      struct dh_error *err)
{
	gnutls_datum_t c = { .data = (unsigned char *)cert_pem, .size = (unsigned)clen };
	gnutls_datum_t k = { .data = (unsigned char *)key_pem, .size = (unsigned)klen };
	gnutls_certificate_credentials_t cred = NULL;
	char what[1024];
	int rc;

	snprintf(what, sizeof(what), "--tls-cert %s with --tls-key %s", cert_path, key_path);
	rc = gnutls_certificate_allocate_credentials(&cred);
	if (rc >= 0)
		rc = gnutls_certificate_set_x509_key_mem2(cred, &c, &k, GNUTLS_X509_FMT_PEM, NULL,
							  0);
	if (cred)
		gnutls_certificate_free_credentials(cred);
	return rc < 0 ? gnutls_fail(err, what, rc) : DH_OK;
}

enum dh_err dh_tls_check_priorities(const char *priorities, struct dh_error *err)
{
	gnutls_priority_t p = NULL;
	const char *at = NULL;
	int rc = gnutls_priority_init(&p, priorities, &at);

	if (rc < 0) {
		const char *name = gnutls_strerror_name(rc);
		return dh_error_set(err, DH_E_INVALID,
				    "--tls-priorities: GnuTLS: %s (%s) at \"%.80s\"",
				    gnutls_strerror(rc), name ? name : "?", at ? at : priorities);
	}
	gnutls_priority_deinit(p);
	return DH_OK;
}

enum dh_err dh_tls_load(const char *cert_path, const char *key_path, const char *priorities,
			struct dh_error *err)
{
	size_t clen = 0, klen = 0;
	enum dh_err rc;

	dh_tls_release();
	rc = dh_tls_check_priorities(priorities, err);
	if (rc != DH_OK)
		return rc;
	cert_pem = read_pem("tls-cert", cert_path, &clen, err);
	if (!cert_pem)
		return err->code;
	key_pem = read_pem("tls-key", key_path, &klen, err);
	if (!key_pem) {
		rc = err->code;
		goto fail;
	}
	rc = check_cert(cert_path, cert_pem, clen, err);
	if (rc == DH_OK)
		rc = check_key(key_path, key_pem, klen, err);
	if (rc == DH_OK)
		rc = check_pair(cert_path, key_path, clen, klen, err);
	if (rc == DH_OK)
		return DH_OK;
fail:
	dh_tls_release();
	return rc;
}

const char *dh_tls_cert_pem(void)
{
	return cert_pem;
}

const char *dh_tls_key_pem(void)
{
	return key_pem;
}

void dh_tls_release(void)
{
	free(cert_pem);
	if (key_pem) {
		/* the key is a secret: do not leave it in freed memory */
		explicit_bzero(key_pem, strlen(key_pem));
		free(key_pem);
	}
	cert_pem = key_pem = NULL;
}
