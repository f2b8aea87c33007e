/* TLS on the replication link (ha/link_tls.h). The server side is the
 * listeners' context (net/tls.c); the client side is made here. */
#include "config.h"
#include "ha/link_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>

#include "conf.h"
#include "net/tls.h"

struct link_tls {
	struct tls_ctx *server;
	SSL_CTX *client;
};

void link_tls_free(struct link_tls *lt)
{
	if (!lt)
		return;
	tls_ctx_free(lt->server);
	SSL_CTX_free(lt->client);
	free(lt);
}

struct link_tls *link_tls_new(const struct tls_config *t, char *err, size_t errlen)
{
	struct link_tls *lt = calloc(1, sizeof(*lt));
	if (!lt) {
		snprintf(err, errlen, "replication: out of memory");
		return NULL;
	}
	/* With a CA, the peer must show a certificate it signed, both ways. */
	struct tls_options o = {
		.cert = t->cert, .key = t->key, .ca = t->ca, .ciphers = t->ciphers,
		.client_cert = t->client_cert >= 0 ? t->client_cert
			       : t->ca ? TLS_CLIENT_REQUIRED : TLS_CLIENT_NONE,
		.min_version = t->min_version ? t->min_version : 12,
	};
	char why[512];
	if (!(lt->server = tls_ctx_new(&o, why, sizeof(why)))) {
		snprintf(err, errlen, "replication: %s", why);
		goto fail;
	}
	lt->client = SSL_CTX_new(TLS_client_method());
	if (!lt->client)
		goto ssl_fail;
	SSL_CTX_set_min_proto_version(lt->client, o.min_version == 13 ? TLS1_3_VERSION
								   : TLS1_2_VERSION);
	if ((o.ciphers && SSL_CTX_set_cipher_list(lt->client, o.ciphers) != 1) ||
	    SSL_CTX_use_certificate_chain_file(lt->client, o.cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(lt->client, o.key, SSL_FILETYPE_PEM) != 1 ||
	    (o.ca ? SSL_CTX_load_verify_locations(lt->client, o.ca, NULL)
		  : SSL_CTX_set_default_verify_paths(lt->client)) != 1)
		goto ssl_fail;
	SSL_CTX_set_verify(lt->client, SSL_VERIFY_PEER, NULL);
	return lt;
ssl_fail:
	snprintf(err, errlen, "replication: TLS client context: %s",
		 tls_last_error(ERR_get_error(), why, sizeof(why)));
fail:
	link_tls_free(lt);
	return NULL;
}

struct ssl_st *link_tls_server(struct link_tls *lt)
{
	return tls_ctx_ssl_new(lt->server);
}

struct ssl_st *link_tls_client(struct link_tls *lt, const char *host)
{
	SSL *ssl = SSL_new(lt->client);
	if (!ssl)
		return NULL;
	/* The peer's certificate must name what [ha] peer names. */
	X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
	if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1) {
		X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (X509_VERIFY_PARAM_set1_host(vp, host, 0) != 1 ||
		    SSL_set_tlsext_host_name(ssl, host) != 1) {
			SSL_free(ssl);
			return NULL;
		}
	}
	return ssl;
}
