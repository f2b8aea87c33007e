/* TLS for listeners, on OpenSSL: one server context per TLS listener,
 * reloadable (SIGHUP) without touching open connections, which keep the
 * context they were accepted with. */
#ifndef WHARF_NET_TLS_H
#define WHARF_NET_TLS_H

#include <stddef.h>

struct ssl_st;
struct tls_ctx;

enum tls_client_cert { TLS_CLIENT_NONE, TLS_CLIENT_OPTIONAL, TLS_CLIENT_REQUIRED };

struct tls_options {
	const char *cert;     /* PEM certificate chain */
	const char *key;      /* PEM private key */
	const char *ca;       /* PEM CA bundle for client certificates; may be NULL */
	enum tls_client_cert client_cert;
	int min_version;      /* 12 or 13 */
	const char *ciphers;  /* OpenSSL cipher list for TLS 1.2; NULL: OpenSSL's default */
};

/* Loads the files; NULL with a message in err on failure. The options'
 * strings are copied. */
struct tls_ctx *tls_ctx_new(const struct tls_options *o, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *t);
/* Loads the files again into a new context for new connections; on error
 * the old one stays and err says why. */
int tls_ctx_reload(struct tls_ctx *t, char *err, size_t errlen);
/* A new server-side SSL for an accepted connection; NULL on failure. */
struct ssl_st *tls_ctx_ssl_new(struct tls_ctx *t);
/* The verified client certificate's subject (RFC 2253), malloc'd, or NULL
 * when the client sent none. */
char *tls_peer_subject(struct ssl_st *ssl);
/* The last OpenSSL error as text, for logs. */
const char *tls_last_error(unsigned long err, char *buf, size_t len);

#endif
