/* ha.on_promote: a command run when this node becomes active after
 * start-up (a promotion), through /bin/sh -c, beside the event loop: the
 * child is reaped on SIGCHLD and its exit status logged. Its environment
 * is the broker's with WHARF_NODE_ID (ha.node_id) and WHARF_ROLE=active. */
#ifndef WHARF_HA_HOOK_H
#define WHARF_HA_HOOK_H

struct event_base;
struct ha_hook;

/* Starts `command`; *hook is made on first use (free it with
 * ha_hook_free). -1 with a logged reason. */
int ha_hook_run(struct event_base *base, struct ha_hook **hook, const char *command,
		const char *node_id);
/* Stops watching for the children (those still running are not waited for). */
void ha_hook_free(struct ha_hook *hook);

#endif
