#include "config.h"
#include "router/retain.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/map.h"

struct retain_node {
	struct retain_node *parent;
	char *level;
	struct map *children; /* NULL until needed */
	struct message *msg;
};

struct retain_store {
	struct retain_node root;
	size_t count;
};

struct retain_store *retain_new(void)
{
	return calloc(1, sizeof(struct retain_store));
}

static void node_free_cb(const char *key, void *value, void *arg);

static void node_clear(struct retain_node *n)
{
	if (n->children) {
		map_each(n->children, node_free_cb, NULL);
		map_free(n->children);
	}
	message_unref(n->msg);
	free(n->level);
}

static void node_free_cb(const char *key, void *value, void *arg)
{
	node_clear(value);
	free(value);
}

void retain_free(struct retain_store *r)
{
	if (!r)
		return;
	node_clear(&r->root);
	free(r);
}

size_t retain_count(const struct retain_store *r)
{
	return r->count;
}

static struct retain_node *child(struct retain_node *n, const char *level, bool create)
{
	struct retain_node *c = n->children ? map_get(n->children, level) : NULL;
	if (c || !create)
		return c;
	if (!n->children && !(n->children = map_new()))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c || !(c->level = strdup(level)) || map_put(n->children, level, c) < 0) {
		if (c)
			free(c->level);
		free(c);
		return NULL;
	}
	c->parent = n;
	return c;
}

/* Drops nodes that hold neither a message nor children. */
static void prune(struct retain_node *n)
{
	while (n->parent && !n->msg && (!n->children || map_count(n->children) == 0)) {
		struct retain_node *p = n->parent;
		map_del(p->children, n->level);
		node_clear(n);
		free(n);
		n = p;
	}
}

int retain_set(struct retain_store *r, const char *name, struct message *m)
{
	bool clear = m->body_len == 0;
	char *copy = strdup(name);
	if (!copy)
		return -1;
	struct retain_node *n = &r->root;
	char *level = copy;
	for (;;) {
		char *dot = strchr(level, '.');
		if (dot)
			*dot = '\0';
		struct retain_node *c = child(n, level, !clear);
		if (!c) {
			free(copy);
			if (clear)
				return 0;
			prune(n);
			return -1;
		}
		n = c;
		if (!dot)
			break;
		level = dot + 1;
	}
	free(copy);
	if (n->msg)
		r->count--;
	message_unref(n->msg);
	n->msg = NULL;
	if (clear) {
		prune(n);
		return 0;
	}
	n->msg = message_ref(m);
	r->count++;
	return 0;
}

struct walk {
	void (*fn)(struct message *m, void *arg);
	void *arg;
	const char *const *levels;
	size_t nlevels;
};

static void emit_all(const struct retain_node *n, struct walk *w);

static void emit_all_cb(const char *key, void *value, void *arg)
{
	emit_all(value, arg);
}

static void emit_all(const struct retain_node *n, struct walk *w)
{
	if (n->msg)
		w->fn(n->msg, w->arg);
	if (n->children)
		map_each(n->children, emit_all_cb, w);
}

struct star_ctx {
	struct walk *w;
	size_t i;
	bool top;
};

static void walk(const struct retain_node *n, size_t i, struct walk *w);

static void star_cb(const char *key, void *value, void *arg)
{
	struct star_ctx *s = arg;
	if (s->top && key[0] == '$')
		return;
	walk(value, s->i, s->w);
}

static void gt_cb(const char *key, void *value, void *arg)
{
	struct star_ctx *s = arg;
	if (s->top && key[0] == '$')
		return;
	emit_all(value, s->w);
}

static void walk(const struct retain_node *n, size_t i, struct walk *w)
{
	if (i == w->nlevels) {
		if (n->msg)
			w->fn(n->msg, w->arg);
		return;
	}
	const char *level = w->levels[i];
	bool top = n->parent == NULL;
	if (!strcmp(level, ">")) {
		/* Zero levels (the parent itself) or any number more. */
		if (!top && n->msg)
			w->fn(n->msg, w->arg);
		struct star_ctx s = { w, i + 1, top };
		if (n->children)
			map_each(n->children, gt_cb, &s);
		return;
	}
	if (!strcmp(level, "*")) {
		struct star_ctx s = { w, i + 1, top };
		if (n->children)
			map_each(n->children, star_cb, &s);
		return;
	}
	const struct retain_node *c = n->children ? map_get(n->children, level) : NULL;
	if (c)
		walk(c, i + 1, w);
}

void retain_match(const struct retain_store *r, const char *pattern,
		  void (*fn)(struct message *m, void *arg), void *arg)
{
	size_t nlevels;
	char **levels = address_split(pattern, &nlevels);
	if (!levels)
		return;
	struct walk w = { fn, arg, (const char *const *)levels, nlevels };
	walk(&r->root, 0, &w);
	free(levels);
}
