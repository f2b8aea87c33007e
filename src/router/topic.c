#include "config.h"
#include "router/topic.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/address.h"
#include "util/map.h"

struct topic_node {
	struct topic_node *parent;
	char *level;                 /* key in the parent; NULL for the root */
	struct map *children;        /* plain levels; NULL until needed */
	struct topic_node *star;     /* '*' */
	struct topic_node *gt;       /* '>' */
	struct topic_binding *bindings;
};

struct topic_binding {
	struct topic_binding *next, **prevp;
	struct topic_node *node;
	struct queue *q;
};

struct topic_tree {
	struct topic_node root;
	size_t count;
};

struct topic_tree *topic_tree_new(void)
{
	return calloc(1, sizeof(struct topic_tree));
}

static void free_child(const char *key, void *value, void *arg);

static void node_clear(struct topic_node *n)
{
	while (n->bindings) {
		struct topic_binding *b = n->bindings;
		n->bindings = b->next;
		free(b);
	}
	if (n->children) {
		map_each(n->children, free_child, NULL);
		map_free(n->children);
	}
	if (n->star)
		free_child(NULL, n->star, NULL);
	if (n->gt)
		free_child(NULL, n->gt, NULL);
	free(n->level);
}

static void free_child(const char *key, void *value, void *arg)
{
	node_clear(value);
	free(value);
}

void topic_tree_free(struct topic_tree *t)
{
	if (!t)
		return;
	node_clear(&t->root);
	free(t);
}

static struct topic_node *child_get(struct topic_node *n, const char *level, size_t len,
				    bool create)
{
	struct topic_node **slot = NULL;
	if (len == 1 && level[0] == '*')
		slot = &n->star;
	else if (len == 1 && level[0] == '>')
		slot = &n->gt;
	char key[len + 1];
	memcpy(key, level, len);
	key[len] = '\0';
	struct topic_node *c = slot ? *slot : (n->children ? map_get(n->children, key) : NULL);
	if (c || !create)
		return c;
	if (!slot && !n->children && !(n->children = map_new()))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c || !(c->level = strdup(key))) {
		free(c);
		return NULL;
	}
	c->parent = n;
	if (slot) {
		*slot = c;
	} else if (map_put(n->children, key, c) < 0) {
		free(c->level);
		free(c);
		return NULL;
	}
	return c;
}

static bool node_empty(const struct topic_node *n)
{
	return !n->bindings && !n->star && !n->gt && (!n->children || map_count(n->children) == 0);
}

/* Removes n and then each ancestor that holds nothing else. */
static void prune(struct topic_node *n)
{
	while (n->parent && node_empty(n)) {
		struct topic_node *p = n->parent;
		if (p->star == n)
			p->star = NULL;
		else if (p->gt == n)
			p->gt = NULL;
		else
			map_del(p->children, n->level);
		if (p->children && map_count(p->children) == 0) {
			map_free(p->children);
			p->children = NULL;
		}
		free(n->level);
		free(n);
		n = p;
	}
}

struct topic_binding *topic_tree_add(struct topic_tree *t, const char *pattern, struct queue *q)
{
	struct topic_node *n = &t->root;
	const char *s = pattern;
	for (;;) {
		const char *dot = strchr(s, '.');
		size_t len = dot ? (size_t)(dot - s) : strlen(s);
		struct topic_node *c = child_get(n, s, len, true);
		if (!c) {
			prune(n);
			return NULL;
		}
		n = c;
		if (!dot)
			break;
		s = dot + 1;
	}
	struct topic_binding *b = calloc(1, sizeof(*b));
	if (!b) {
		prune(n);
		return NULL;
	}
	b->node = n;
	b->q = q;
	b->next = n->bindings;
	if (b->next)
		b->next->prevp = &b->next;
	b->prevp = &n->bindings;
	n->bindings = b;
	t->count++;
	return b;
}

void topic_tree_remove(struct topic_tree *t, struct topic_binding *b)
{
	*b->prevp = b->next;
	if (b->next)
		b->next->prevp = b->prevp;
	struct topic_node *n = b->node;
	free(b);
	t->count--;
	prune(n);
}

struct topic_binding *topic_tree_find(const struct topic_tree *t, const char *pattern,
				      const struct queue *q)
{
	struct topic_node *n = (struct topic_node *)&t->root;
	const char *s = pattern;
	for (;;) {
		const char *dot = strchr(s, '.');
		size_t len = dot ? (size_t)(dot - s) : strlen(s);
		n = child_get(n, s, len, false);
		if (!n)
			return NULL;
		if (!dot)
			break;
		s = dot + 1;
	}
	for (struct topic_binding *b = n->bindings; b; b = b->next)
		if (b->q == q)
			return b;
	return NULL;
}

size_t topic_tree_count(const struct topic_tree *t)
{
	return t->count;
}

struct match_ctx {
	char **levels;
	size_t nlevels;
	void (*fn)(struct queue *q, void *arg);
	void *arg;
};

static void emit(const struct topic_node *n, struct match_ctx *m)
{
	for (const struct topic_binding *b = n->bindings; b; b = b->next)
		m->fn(b->q, m->arg);
}

static void match_node(const struct topic_node *n, size_t i, struct match_ctx *m)
{
	/* Names of the broker's own ($SYS...) are hidden from wildcards at level one. */
	bool hidden = i == 0 && m->levels[0][0] == '$';
	if (n->gt && !hidden)
		emit(n->gt, m); /* '>' matches zero or more remaining levels */
	if (i == m->nlevels) {
		emit(n, m);
		return;
	}
	if (n->children) {
		const struct topic_node *c = map_get(n->children, m->levels[i]);
		if (c)
			match_node(c, i + 1, m);
	}
	if (n->star && !hidden)
		match_node(n->star, i + 1, m);
}

int topic_tree_match(const struct topic_tree *t, const char *name,
		     void (*fn)(struct queue *q, void *arg), void *arg)
{
	size_t nlevels;
	char **levels = address_split(name, &nlevels);
	if (!levels)
		return -1;
	struct match_ctx m = { levels, nlevels, fn, arg };
	match_node(&t->root, 0, &m);
	free(levels);
	return 0;
}

struct walk {
	void (*fn)(const char *pattern, struct queue *q, void *arg);
	void *arg;
	char pattern[ADDRESS_MAX_LEN + 2];
};

static void walk_node(struct topic_node *n, struct walk *w, size_t len);

static void walk_child(const char *key, void *value, void *arg)
{
	struct walk *w = arg;
	walk_node(value, w, strlen(w->pattern));
}

static void walk_node(struct topic_node *n, struct walk *w, size_t len)
{
	size_t base = len;
	if (n->level) {
		size_t add = strlen(n->level) + (len > 0);
		if (len + add >= sizeof(w->pattern))
			return;
		snprintf(w->pattern + len, sizeof(w->pattern) - len, "%s%s", len ? "." : "",
			 n->level);
		len += add;
	}
	for (struct topic_binding *b = n->bindings; b; b = b->next)
		w->fn(w->pattern, b->q, w->arg);
	if (n->children)
		map_each(n->children, walk_child, w);
	if (n->star)
		walk_node(n->star, w, len);
	if (n->gt)
		walk_node(n->gt, w, len);
	/* Back to the parent's pattern for its next child. */
	w->pattern[base] = '\0';
}

void topic_tree_each(const struct topic_tree *t,
		     void (*fn)(const char *pattern, struct queue *q, void *arg), void *arg)
{
	struct walk w = { .fn = fn, .arg = arg };
	walk_node((struct topic_node *)&t->root, &w, 0);
}
