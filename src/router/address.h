/* Destination names: levels separated by '.', wildcards '*' (one level) and
 * '>' (zero or more trailing levels), as ActiveMQ and Amazon MQ name them.
 * A level that is exactly "*" or ">" is a wildcard; anywhere else those
 * characters are plain. Empty levels are allowed, so MQTT's "/a//b" maps.
 * Control characters (below 0x20, and 0x7f) are not allowed anywhere. */
#ifndef WHARF_ROUTER_ADDRESS_H
#define WHARF_ROUTER_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

enum dest_kind { DEST_QUEUE, DEST_TOPIC };

#define ADDRESS_MAX_LEN 65535

/* 0 if `name` is a valid name (pattern=false) or pattern (pattern=true). */
int address_validate(const char *name, bool pattern);
/* True if some level of `name` is a wildcard. */
bool address_is_pattern(const char *name);
/* True if the concrete `name` matches `pattern`. Names whose first level
 * starts with '$' (the broker's own) match a wildcard only from level two. */
bool address_match(const char *pattern, const char *name);

/* Splits a name or pattern into its levels. Returns one allocation holding
 * the array and the strings (free() it), or NULL on out of memory. */
char **address_split(const char *name, size_t *nlevels);

const char *dest_kind_name(enum dest_kind kind);

#endif
