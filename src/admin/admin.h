/* The admin HTTP server ([admin] listen): the JSON API under /api/v1,
 * /metrics in Prometheus text format, /healthz and /readyz
 * (docs/admin-api.md). libevent's evhttp on the broker's loop: it reads the
 * router, store and connections through their snapshot functions and
 * changes them only through their commands. Event-loop thread only. */
#ifndef WHARF_ADMIN_ADMIN_H
#define WHARF_ADMIN_ADMIN_H

struct broker;
struct admin;

/* Binds [admin] listen, logs "listening admin HOST:PORT" and sets
 * b->admin; nothing when listen is not set. -1 with a logged reason. */
int admin_open(struct broker *b);
/* https://: loads the certificate and key again for new connections
 * (SIGHUP); on failure the old ones stay, logged. NULL is fine. */
void admin_reload_tls(struct admin *a);
/* Stops serving and frees a (requests in flight are dropped). NULL is
 * fine. */
void admin_free(struct admin *a);

#endif
