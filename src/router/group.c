#include "config.h"
#include "router/group.h"

#include <stdlib.h>
#include <string.h>

#include "util/map.h"

struct groups {
	struct map *by_name;
	TAILQ_HEAD(, group) all;
	TAILQ_HEAD(, group) idle;
	size_t nidle;
};

struct groups *groups_new(void)
{
	struct groups *gs = calloc(1, sizeof(*gs));
	if (!gs || !(gs->by_name = map_new())) {
		free(gs);
		return NULL;
	}
	TAILQ_INIT(&gs->all);
	TAILQ_INIT(&gs->idle);
	return gs;
}

void groups_free(struct groups *gs)
{
	if (!gs)
		return;
	struct group *g;
	while ((g = TAILQ_FIRST(&gs->all))) {
		TAILQ_REMOVE(&gs->all, g, link);
		free(g);
	}
	map_free(gs->by_name);
	free(gs);
}

static void forget(struct groups *gs, struct group *g)
{
	if (g->owner && !g->nmsgs) {
		TAILQ_REMOVE(&gs->idle, g, idle);
		gs->nidle--;
	}
	map_del(gs->by_name, g->name);
	TAILQ_REMOVE(&gs->all, g, link);
	free(g);
}

struct group *groups_ref(struct groups *gs, const char *name)
{
	struct group *g = map_get(gs->by_name, name);
	if (g) {
		if (g->owner && !g->nmsgs) {
			TAILQ_REMOVE(&gs->idle, g, idle);
			gs->nidle--;
		}
		g->nmsgs++;
		return g;
	}
	size_t len = strlen(name);
	g = calloc(1, sizeof(*g) + len + 1);
	if (!g)
		return NULL;
	memcpy(g->name, name, len + 1);
	if (map_put(gs->by_name, name, g) < 0) {
		free(g);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&gs->all, g, link);
	g->nmsgs = 1;
	return g;
}

void groups_unref(struct groups *gs, struct group *g)
{
	if (--g->nmsgs)
		return;
	if (!g->owner) {
		forget(gs, g);
		return;
	}
	TAILQ_INSERT_TAIL(&gs->idle, g, idle);
	if (++gs->nidle > GROUPS_MAX_IDLE)
		forget(gs, TAILQ_FIRST(&gs->idle));
}

void groups_unpin(struct groups *gs, const void *owner)
{
	struct group *g = TAILQ_FIRST(&gs->all);
	while (g) {
		struct group *next = TAILQ_NEXT(g, link);
		if (g->owner == owner) {
			if (!g->nmsgs) {
				forget(gs, g);
			} else {
				g->owner = NULL;
			}
		}
		g = next;
	}
}

size_t groups_count(const struct groups *gs)
{
	return map_count(gs->by_name);
}
