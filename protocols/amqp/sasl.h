/* Server-side SASL for AMQP connections: ANONYMOUS and PLAIN, plugged into
 * proton (whose built-in server side has no PLAIN), and EXTERNAL where the
 * TLS client certificate is the identity (conn_cert_identified). All go
 * to the broker's authenticator (conn_authenticate); the sasl-outcome
 * waits for its answer (reading nothing more meanwhile): ok, or auth
 * (code 1). On a standby SASL passes unchecked, so that the open hears
 * the redirect first. */
#ifndef WHARF_AMQP_SASL_H
#define WHARF_AMQP_SASL_H

#include <proton/transport.h>

struct amqp_conn;

/* Installs the mechanisms on ac's server transport; ac's connection
 * receives the authenticated principal (conn_authenticate). */
void amqp_sasl_install(pn_transport_t *t, struct amqp_conn *ac);

#endif
