/* The broker's durable store: keeps the router's durable messages and
 * run-time bindings in the journal (store/journal.h) and puts them back at
 * start-up. It plugs into the router through struct router_persist, so the
 * router knows nothing of records and the store nothing of protocols.
 *
 * Records (journal types; payload integers little endian):
 *   STORE_REC_MSG    u64 supersedes (a record this one replaces, or 0),
 *                    u32 delivery count, u16 queue length, queue name,
 *                    the message (store/msgcodec.h)
 *   STORE_REC_ACK    u64 record numbers of messages consumed or dropped
 *   STORE_REC_PUT    u16 key length, key, value (the rest): small named
 *                    state, the last value put under a key
 *   STORE_REC_DEL    u16 key length, key: removes it
 *   STORE_REC_COUNT  u64 record number of a message, u32 its deliveries so
 *                    far: written when it goes back to its queue (a NACK,
 *                    a consumer gone), not on the happy path; kept on disk
 *                    by the message itself (it is newer)
 * Keys the store itself uses: "bind/PATTERN\x01QUEUE" (a run-time binding,
 * empty value) and "retain/TOPIC" (a retained message, store/msgcodec.h);
 * adapters keep their own under their own prefix (e.g. "mqtt/").
 * A message record is live from its append to its ack; a key's record until
 * the key is deleted, or put again and that newer record is on disk (so a
 * failed write or a crash never finds the old one released). Segments are released once nothing live
 * is left at or below them (store/liveset.h), so a replayed ack never
 * outlives the message it removes. A key in an old segment is written
 * again, so keys never hold old segments; a message that is never consumed
 * still does.
 * Event-loop thread only. */
#ifndef WHARF_STORE_STORE_H
#define WHARF_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store/journal.h"

struct event_base;
struct router;
struct router_confirm;
struct store;

enum store_rec_type {
	STORE_REC_MSG = 1,
	STORE_REC_ACK = 2,
	STORE_REC_PUT = 3,
	STORE_REC_DEL = 4,
	STORE_REC_COUNT = 5,
};

#define STORE_DEFAULT_MAX_PENDING (64u << 20)

struct store_options {
	const char *dir;             /* the data directory: the journal goes in dir/journal */
	enum journal_sync sync;
	unsigned batch_delay_us;     /* sync BATCH: at most one fsync per this */
	enum journal_on_corruption on_corruption;
	size_t segment_size;         /* 0: the journal's default */
	size_t max_pending;          /* bytes waiting for the disk before publishers are
				      * slowed; 0: STORE_DEFAULT_MAX_PENDING */
};

struct store_stats {
	uint64_t messages;      /* stored messages not yet consumed */
	uint64_t bindings;      /* run-time bindings kept */
	uint64_t keys;          /* keys kept, bindings and retained messages included */
	uint64_t retained;      /* retained messages put back at start-up */
	uint64_t restored;      /* messages put back at start-up */
	uint64_t bad_records;   /* well-framed records that made no sense, skipped */
	uint64_t write_errors;  /* durable publishes refused for a disk error */
};

/* Opens the journal under o->dir, replays it into r (which must not have
 * persistence hooks yet), and installs the hooks. On failure returns -1 with
 * a message in err. Free with store_close(). */
int store_open(struct event_base *base, const struct store_options *o, struct router *r,
	       struct store **out, char *err, size_t errlen);
/* Removes the hooks from the router, writes what is pending, and frees s.
 * Publishers still waiting are told of the outcome first. NULL is a no-op. */
void store_close(struct store *s);
void store_stats(const struct store *s, struct store_stats *out);

/* Keeps val[0..len) (copied) under `key` across restarts, replacing what
 * was there. Durable once the journal has written it; no confirmation (a
 * crash just before loses the change, and the value before it comes back;
 * a write that fails is tried again with the store's next writes). 0, or
 * -1 when it cannot be written. */
int store_put(struct store *s, const char *key, const void *val, size_t len);
/* store_put, and c is confirmed (as by publish_ctx.confirm) once the
 * record is on disk, together with whatever else c waits for: c->pending
 * is the store's, NULL before the first record c waits for. A message
 * published with c afterwards joins the same confirmation. When this
 * returns -1, c does not wait for this record. */
int store_put_confirmed(struct store *s, const char *key, const void *val, size_t len,
			struct router_confirm *c);
/* Forgets key (nothing if it is not there). 0 or -1. Durable once the
 * journal has written it; until then a crash brings the value back. */
int store_del(struct store *s, const char *key);
/* store_del, and c is confirmed once the removal is on disk, together with
 * whatever else c waits for (as store_put_confirmed). When the key is not
 * there, or this returns -1, c does not wait for this removal. */
int store_del_confirmed(struct store *s, const char *key, struct router_confirm *c);
/* The value under key, valid until the key changes; NULL if none. */
const void *store_get(const struct store *s, const char *key, size_t *len);
/* Calls fn for each key starting with `prefix`, oldest record first. fn
 * may delete or put the key it is given, no other. */
void store_each(const struct store *s, const char *prefix,
		void (*fn)(void *arg, const char *key, const void *val, size_t len), void *arg);
struct journal *store_journal(const struct store *s);

#endif
