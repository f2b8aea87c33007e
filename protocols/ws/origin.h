/* Which browser pages may open a WebSocket: the upgrade request's Origin
 * against the listener's list, or, without a list, against the request's
 * own Host. Pure functions, no I/O. */
#ifndef WHARF_WS_ORIGIN_H
#define WHARF_WS_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

/* Whether `origin` (an Origin header's value) names the same host and port
 * as `host` (the Host header's value). A missing port on either side is the
 * default of the origin's scheme (http 80, https 443); the scheme itself is
 * not compared: no other page can be served on the port the broker holds,
 * and paho-mqtt sends https:// even over plain ws. Host names compare
 * without case. An origin other than http(s)://, such as "null", is never
 * the same. */
bool ws_same_origin(const char *origin, const char *host);

/* Whether `origin` is in `list` (Origin values separated by spaces or
 * commas, compared exactly); a `*` in the list admits every origin. */
bool ws_origin_listed(const char *list, const char *origin);

/* The host of a Host header's "host[:port]" (an IPv6 "[addr]" without
 * its brackets): where it starts, its length in *len; NULL when the value
 * is malformed (no host, a bad port). */
const char *ws_authority_host(const char *a, size_t *len);

#endif
