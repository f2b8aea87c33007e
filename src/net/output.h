/* Sending a delivery: a protocol's frame head, then the message body
 * without a copy when it is large, then an optional trailer. */
#ifndef WHARF_NET_OUTPUT_H
#define WHARF_NET_OUTPUT_H

#include <stddef.h>

struct conn;
struct message;

/* Writes head, m's body and trailer to c's output. A large body is added
 * by reference (the output takes a message reference, dropped once sent).
 * -1 on out of memory: the caller closes the connection. */
int output_message(struct conn *c, const void *head, size_t head_len, struct message *m,
		   const void *trailer, size_t trailer_len);

#endif
