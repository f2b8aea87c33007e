/* The topic index: a trie of name levels holding bindings from a pattern
 * (with '*' and '>') to a queue. Matching a published name walks only the
 * branches that can match it, so its cost does not grow with unrelated
 * subscriptions. A subscription and a configured topic -> queue binding are
 * both bindings. Event-loop thread only. */
#ifndef WHARF_ROUTER_TOPIC_H
#define WHARF_ROUTER_TOPIC_H

#include <stddef.h>

struct queue;
struct topic_tree;
struct topic_binding;

struct topic_tree *topic_tree_new(void);
/* Frees the tree and its bindings (not the queues they point to). */
void topic_tree_free(struct topic_tree *t);

/* Binds `pattern` (validated by the caller) to q. NULL on out of memory. */
struct topic_binding *topic_tree_add(struct topic_tree *t, const char *pattern, struct queue *q);
/* Removes and frees b, and any trie branch left empty. */
void topic_tree_remove(struct topic_tree *t, struct topic_binding *b);

/* The binding of exactly `pattern` to q, or NULL. */
struct topic_binding *topic_tree_find(const struct topic_tree *t, const char *pattern,
				      const struct queue *q);

/* Calls fn for every binding whose pattern matches the concrete `name`.
 * fn must not add or remove bindings. -1 on out of memory. */
int topic_tree_match(const struct topic_tree *t, const char *name,
		     void (*fn)(struct queue *q, void *arg), void *arg);
size_t topic_tree_count(const struct topic_tree *t);
/* Calls fn with each binding's pattern and queue, in no order. fn must
 * not change the tree. */
void topic_tree_each(const struct topic_tree *t,
		     void (*fn)(const char *pattern, struct queue *q, void *arg), void *arg);

#endif
