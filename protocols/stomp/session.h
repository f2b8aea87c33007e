/* The STOMP 1.0/1.1/1.2 session: turns frames into router calls and
 * deliveries into MESSAGE frames. docs/stomp.md says what it supports. */
#ifndef WHARF_STOMP_SESSION_H
#define WHARF_STOMP_SESSION_H

#include "net/conn.h"

extern const struct proto_ops stomp_proto;

#endif
