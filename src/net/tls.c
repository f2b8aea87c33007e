#include "config.h"
#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_ctx {
	SSL_CTX *ctx;
	char *cert, *key, *ca, *ciphers;
	enum tls_client_cert client_cert;
	int min_version;
};

const char *tls_last_error(unsigned long err, char *buf, size_t len)
{
	if (!err)
		err = ERR_peek_last_error();
	if (!err) {
		snprintf(buf, len, "unknown error");
		return buf;
	}
	ERR_error_string_n(err, buf, len);
	return buf;
}

static int fail(char *err, size_t errlen, const char *what, const char *file)
{
	char ossl[256];
	snprintf(err, errlen, "%s%s%s: %s", what, file ? " " : "", file ? file : "",
		 tls_last_error(ERR_get_error(), ossl, sizeof(ossl)));
	ERR_clear_error();
	return -1;
}

static SSL_CTX *build(const struct tls_ctx *t, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		fail(err, errlen, "cannot create a TLS context", NULL);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, t->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* idle connections keep no TLS buffers */
	if (SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1) {
		fail(err, errlen, "cannot load certificate", t->cert);
		goto bad;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1) {
		fail(err, errlen, "cannot load key", t->key);
		goto bad;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		fail(err, errlen, "key does not match certificate", t->key);
		goto bad;
	}
	if (t->ciphers && SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1) {
		fail(err, errlen, "bad cipher list", t->ciphers);
		goto bad;
	}
	if (t->ca && SSL_CTX_load_verify_locations(ctx, t->ca, NULL) != 1) {
		fail(err, errlen, "cannot load CA file", t->ca);
		goto bad;
	}
	if (t->client_cert != TLS_CLIENT_NONE) {
		if (!t->ca) {
			snprintf(err, errlen, "client certificates need a CA file (tls_ca)");
			goto bad;
		}
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->ca);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		int mode = SSL_VERIFY_PEER;
		if (t->client_cert == TLS_CLIENT_REQUIRED)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
	}
	return ctx;
bad:
	SSL_CTX_free(ctx);
	return NULL;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct tls_ctx *tls_ctx_new(const struct tls_options *o, char *err, size_t errlen)
{
	if (!o->cert || !o->key) {
		snprintf(err, errlen, "a TLS listener needs tls_cert and tls_key (or --tls-cert and --tls-key)");
		return NULL;
	}
	struct tls_ctx *t = calloc(1, sizeof(*t));
	if (!t)
		goto oom;
	t->cert = strdup(o->cert);
	t->key = strdup(o->key);
	t->ca = dup_or_null(o->ca);
	t->ciphers = dup_or_null(o->ciphers);
	t->client_cert = o->client_cert;
	t->min_version = o->min_version;
	if (!t->cert || !t->key || (o->ca && !t->ca) || (o->ciphers && !t->ciphers))
		goto oom;
	if (!(t->ctx = build(t, err, errlen))) {
		tls_ctx_free(t);
		return NULL;
	}
	return t;
oom:
	tls_ctx_free(t);
	snprintf(err, errlen, "out of memory");
	return NULL;
}

void tls_ctx_free(struct tls_ctx *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t->cert);
	free(t->key);
	free(t->ca);
	free(t->ciphers);
	free(t);
}

int tls_ctx_reload(struct tls_ctx *t, char *err, size_t errlen)
{
	SSL_CTX *ctx = build(t, err, errlen);
	if (!ctx)
		return -1;
	/* Open connections hold references to the old context. */
	SSL_CTX_free(t->ctx);
	t->ctx = ctx;
	return 0;
}

struct ssl_st *tls_ctx_ssl_new(struct tls_ctx *t)
{
	return SSL_new(t->ctx);
}

char *tls_peer_subject(struct ssl_st *ssl)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	if (!cert)
		return NULL;
	char *out = NULL;
	BIO *bio = BIO_new(BIO_s_mem());
	if (bio && X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
		char *data;
		long len = BIO_get_mem_data(bio, &data);
		if (len >= 0 && (out = malloc((size_t)len + 1))) {
			memcpy(out, data, (size_t)len);
			out[len] = '\0';
		}
	}
	BIO_free(bio);
	X509_free(cert);
	return out;
}
