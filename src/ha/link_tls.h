/* TLS on the replication link ([ha] tls_* keys, docs/ha.md): both nodes
 * present the same certificate, as the server of the connections they
 * accept and as the client of the one they make, and check the other's
 * against tls_ca. The secret's proof (auth.h) still runs inside it.
 * Loop thread; owned by struct ha. */
#ifndef WHARF_HA_LINK_TLS_H
#define WHARF_HA_LINK_TLS_H

#include <stddef.h>

struct ssl_st;
struct tls_config;
struct link_tls;

/* NULL with a reason in err. */
struct link_tls *link_tls_new(const struct tls_config *t, char *err, size_t errlen);
void link_tls_free(struct link_tls *lt);
/* A new SSL for an accepted connection, or for one to `host` (a name or
 * an address the peer's certificate must name). NULL on failure. */
struct ssl_st *link_tls_server(struct link_tls *lt);
struct ssl_st *link_tls_client(struct link_tls *lt, const char *host);

#endif
