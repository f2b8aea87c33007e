#include "config.h"
#include "store/liveset.h"

#include <stdlib.h>
#include <string.h>

static uint64_t *word(const struct liveset *s, size_t i)
{
	return &s->words[(s->head + i) % s->cap];
}

/* Drops leading dead words, so `base` follows the oldest live record. */
static void trim(struct liveset *s)
{
	while (s->n && *word(s, 0) == 0) {
		s->head = (s->head + 1) % s->cap;
		s->n--;
		s->base += 64;
	}
}

static int grow(struct liveset *s)
{
	size_t cap = s->cap ? s->cap * 2 : 16;
	uint64_t *w = malloc(cap * sizeof(*w));
	if (!w)
		return -1;
	for (size_t i = 0; i < s->n; i++)
		w[i] = *word(s, i);
	free(s->words);
	s->words = w;
	s->cap = cap;
	s->head = 0;
	return 0;
}

int liveset_add(struct liveset *s, uint64_t seq)
{
	if (!s->n)
		s->base = seq & ~(uint64_t)63;
	size_t i = (size_t)((seq - s->base) / 64);
	while (s->n <= i) {
		if (s->n == s->cap && grow(s) < 0)
			return -1;
		*word(s, s->n) = 0;
		s->n++;
	}
	*word(s, i) |= (uint64_t)1 << (seq % 64);
	s->live++;
	return 0;
}

void liveset_del(struct liveset *s, uint64_t seq)
{
	if (seq < s->base || (seq - s->base) / 64 >= s->n)
		return;
	uint64_t *w = word(s, (size_t)((seq - s->base) / 64));
	uint64_t bit = (uint64_t)1 << (seq % 64);
	if (!(*w & bit))
		return;
	*w &= ~bit;
	s->live--;
	trim(s);
}

bool liveset_has(const struct liveset *s, uint64_t seq)
{
	if (seq < s->base || (seq - s->base) / 64 >= s->n)
		return false;
	return (*word(s, (size_t)((seq - s->base) / 64)) >> (seq % 64)) & 1;
}

uint64_t liveset_low(const struct liveset *s, uint64_t next)
{
	if (!s->n)
		return next;
	return s->base + (uint64_t)__builtin_ctzll(*word(s, 0));
}

void liveset_free(struct liveset *s)
{
	free(s->words);
	memset(s, 0, sizeof(*s));
}
