/* AMQP 1.0 messages <-> the router's (DESIGN.md §4, docs/mapping.md), and
 * AMQP addresses <-> destinations (DESIGN.md §3). */
#ifndef WHARF_AMQP_MAPPING_H
#define WHARF_AMQP_MAPPING_H

#include <proton/message.h>
#include <proton/terminus.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "router/message.h"
#include "util/buf.h"

/* The destination a terminus names: "queue://x", "topic://x", or a bare
 * name with capability "queue" or "topic" (a bare name alone is a queue).
 * Returns a pointer into `address` for the name. */
const char *amqp_destination(const char *address, pn_terminus_t *remote, enum dest_kind *kind);

/* A new message from an AMQP encoding of `len` bytes (copied). NULL with
 * *why set when the bytes are no AMQP message, or on out of memory. With
 * `to` not NULL, *to is set to a copy of the message's to address (the
 * caller frees it), or NULL when it has none. */
struct message *amqp_message_decode(const char *bytes, size_t len, char **to, const char **why);

/* The AMQP encoding to send for m into out (reset first): what an AMQP
 * client sent goes as it came, and on a redelivery (delivery_count > 0)
 * with a header of ours in place of its own; a message from another
 * protocol is encoded anew. -1 on failure. */
int amqp_message_encode(const struct message *m, uint32_t delivery_count, struct buf *out);

#endif
