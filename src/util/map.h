/* A string-keyed hash map of pointers. The map copies keys and owns the
 * copies; it never owns values: whoever puts a value in frees it. */
#ifndef WHARF_UTIL_MAP_H
#define WHARF_UTIL_MAP_H

#include <stddef.h>

struct map;

struct map *map_new(void);
/* Frees the map and its key copies; values are the caller's. */
void map_free(struct map *m);
void *map_get(const struct map *m, const char *key);
/* Insert or replace; -1 on out of memory (the map is unchanged). */
int map_put(struct map *m, const char *key, void *value);
/* Remove and return the value, or NULL. */
void *map_del(struct map *m, const char *key);
size_t map_count(const struct map *m);

/* Calls fn for each entry; fn must not change the map. */
void map_each(const struct map *m, void (*fn)(const char *key, void *value, void *arg), void *arg);

#endif
