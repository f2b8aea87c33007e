/* Message groups of one queue: every message that names a group goes to the
 * consumer the group is pinned to, so one consumer at a time sees a group,
 * in order (as ActiveMQ does with JMSXGroupID). A pin is made on a group's
 * first delivery and lasts while its consumer does; pins of groups with no
 * message left are forgotten oldest first past GROUPS_MAX_IDLE, so the
 * table stays bounded however many group names go through. Event-loop
 * thread only. */
#ifndef WHARF_ROUTER_GROUP_H
#define WHARF_ROUTER_GROUP_H

#include <stddef.h>
#include <sys/queue.h>

#define GROUPS_MAX_IDLE 1024

struct group {
	TAILQ_ENTRY(group) link;  /* in the table's list of every group */
	TAILQ_ENTRY(group) idle;  /* while pinned with no message left */
	const void *owner;        /* the consumer it is pinned to, or NULL */
	size_t nmsgs;             /* its messages in the queue, waiting or out */
	char name[];
};

struct groups;

/* NULL on out of memory. groups_free frees every group. */
struct groups *groups_new(void);
void groups_free(struct groups *gs);
/* The group named `name`, created if new, with one more message counted;
 * NULL on out of memory. */
struct group *groups_ref(struct groups *gs, const char *name);
/* One message of g fewer: g may be freed. */
void groups_unref(struct groups *gs, struct group *g);
/* The consumer `owner` goes away: its groups go to whoever takes their
 * next message. */
void groups_unpin(struct groups *gs, const void *owner);
size_t groups_count(const struct groups *gs);

#endif
