#include "config.h"
#include "util/map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct map_node {
	struct map_node *next;
	uint64_t hash;
	void *value;
	char key[];
};

struct map {
	struct map_node **slots;
	size_t nslots; /* a power of two */
	size_t count;
};

static uint64_t hash_key(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

struct map *map_new(void)
{
	struct map *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->nslots = 16;
	m->slots = calloc(m->nslots, sizeof(*m->slots));
	if (!m->slots) {
		free(m);
		return NULL;
	}
	return m;
}

void map_free(struct map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nslots; i++) {
		struct map_node *n = m->slots[i];
		while (n) {
			struct map_node *next = n->next;
			free(n);
			n = next;
		}
	}
	free(m->slots);
	free(m);
}

static struct map_node **find(const struct map *m, const char *key, uint64_t h)
{
	struct map_node **pp = &m->slots[h & (m->nslots - 1)];
	while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
		pp = &(*pp)->next;
	return pp;
}

void *map_get(const struct map *m, const char *key)
{
	struct map_node *n = *find(m, key, hash_key(key));
	return n ? n->value : NULL;
}

static void grow(struct map *m)
{
	size_t nslots = m->nslots * 2;
	struct map_node **slots = calloc(nslots, sizeof(*slots));
	if (!slots)
		return; /* a fuller table is slower, not wrong */
	for (size_t i = 0; i < m->nslots; i++) {
		struct map_node *n = m->slots[i];
		while (n) {
			struct map_node *next = n->next;
			n->next = slots[n->hash & (nslots - 1)];
			slots[n->hash & (nslots - 1)] = n;
			n = next;
		}
	}
	free(m->slots);
	m->slots = slots;
	m->nslots = nslots;
}

int map_put(struct map *m, const char *key, void *value)
{
	uint64_t h = hash_key(key);
	struct map_node **pp = find(m, key, h);
	if (*pp) {
		(*pp)->value = value;
		return 0;
	}
	size_t klen = strlen(key);
	struct map_node *n = malloc(sizeof(*n) + klen + 1);
	if (!n)
		return -1;
	n->next = NULL;
	n->hash = h;
	n->value = value;
	memcpy(n->key, key, klen + 1);
	*pp = n;
	if (++m->count > m->nslots)
		grow(m);
	return 0;
}

void *map_del(struct map *m, const char *key)
{
	struct map_node **pp = find(m, key, hash_key(key));
	struct map_node *n = *pp;
	if (!n)
		return NULL;
	void *value = n->value;
	*pp = n->next;
	free(n);
	m->count--;
	return value;
}

size_t map_count(const struct map *m)
{
	return m->count;
}

void map_each(const struct map *m, void (*fn)(const char *key, void *value, void *arg), void *arg)
{
	for (size_t i = 0; i < m->nslots; i++)
		for (struct map_node *n = m->slots[i]; n; n = n->next)
			fn(n->key, n->value, arg);
}
