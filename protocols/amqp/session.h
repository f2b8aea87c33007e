/* The AMQP 1.0 adapter on qpid-proton's connection driver. docs/amqp.md
 * says what it supports. */
#ifndef WHARF_AMQP_SESSION_H
#define WHARF_AMQP_SESSION_H

#include "net/conn.h"

extern const struct proto_ops amqp_proto;

#endif
