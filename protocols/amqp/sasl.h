/* Server-side SASL for AMQP connections: ANONYMOUS and PLAIN, plugged into
 * proton (whose built-in server side has no PLAIN). The PLAIN identity
 * becomes the connection's principal; the password is not checked until
 * users and ACLs arrive. */
#ifndef WHARF_AMQP_SASL_H
#define WHARF_AMQP_SASL_H

#include <proton/transport.h>

struct conn;

/* Installs the mechanisms on a server transport; `c` receives the
 * authenticated principal. */
void amqp_sasl_install(pn_transport_t *t, struct conn *c);

#endif
