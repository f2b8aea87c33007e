/* Which journal records still hold something live, as a sliding window of
 * bits over sequence numbers: everything below `low` is dead, so the
 * journal may release every segment wholly below it. Records are marked
 * live in increasing order (append order); they die in any order. Memory is
 * one bit per record from the oldest live one to the newest. Event-loop
 * thread only. */
#ifndef WHARF_STORE_LIVESET_H
#define WHARF_STORE_LIVESET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct liveset {
	uint64_t base;    /* sequence number of bit 0 of words[head] */
	uint64_t *words;  /* a ring of cap words */
	size_t head, n, cap;
	uint64_t live;    /* bits set */
};

#define LIVESET_INIT { 0, NULL, 0, 0, 0, 0 }

/* Marks seq live. seq must be above every seq marked before. -1 on out of
 * memory (nothing changed). */
int liveset_add(struct liveset *s, uint64_t seq);
/* Marks seq dead; unknown or dead numbers are ignored. */
void liveset_del(struct liveset *s, uint64_t seq);
/* Whether seq is marked live. */
bool liveset_has(const struct liveset *s, uint64_t seq);
/* The lowest live seq, or `next` (the journal's next number) when none. */
uint64_t liveset_low(const struct liveset *s, uint64_t next);
void liveset_free(struct liveset *s);

#endif
