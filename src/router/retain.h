/* Retained messages: the last message published with retain to each topic,
 * indexed by name level so a wildcard subscription finds the matching ones
 * by walking only the branches its pattern allows. Holds references, never
 * copies. Event-loop thread only. */
#ifndef WHARF_ROUTER_RETAIN_H
#define WHARF_ROUTER_RETAIN_H

#include <stddef.h>

#include "router/message.h"

struct retain_store;

struct retain_store *retain_new(void);
/* Frees the store and drops its references. */
void retain_free(struct retain_store *r);

/* Makes m (a new reference is taken) the retained message of `name`; a
 * message with an empty body clears it instead, as MQTT says. -1 on out of
 * memory. */
int retain_set(struct retain_store *r, const char *name, struct message *m);

/* Calls fn for each retained message whose name matches `pattern` (which
 * may hold '*' and '>'; '$' names are hidden from a first-level wildcard).
 * fn must not change the store. */
void retain_match(const struct retain_store *r, const char *pattern,
		  void (*fn)(struct message *m, void *arg), void *arg);
size_t retain_count(const struct retain_store *r);

#endif
