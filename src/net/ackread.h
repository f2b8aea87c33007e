/* Reading acknowledgement-only connections without waking up for them
 * (net/ackread.c), for net/conn.c and net/stream.c. Plain TCP only; event
 * loop thread only. */
#ifndef WHARF_NET_ACKREAD_H
#define WHARF_NET_ACKREAD_H

#include <stdbool.h>
#include <stddef.h>

struct broker;
struct conn;

/* c's socket gave `bytes` of input (net/stream.c read_ev_cb), before
 * they are handed to the adapter. */
void ackread_input(struct conn *c, size_t bytes);
/* What conn_input_acks_only says about c's last input. */
void ackread_acks_only(struct conn *c, bool only);
/* conn_acks_wanted: a lazy c is read in this pass and every busy pass
 * after it until it gives input. */
void ackread_wanted(struct conn *c);
/* c is going: out of the set, before its socket closes. */
void ackread_remove(struct conn *c);
/* Frees the broker's state, after every connection. */
void ackread_free(struct broker *b);

#endif
