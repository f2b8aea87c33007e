#include "config.h"
#include "router/queue.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "util/clock.h"

struct delivery {
	TAILQ_ENTRY(delivery) link; /* in the queue's ready list or a consumer's unacked list */
	struct message *msg;
	uint64_t seq;            /* position in the queue, for putting it back in order */
	uint32_t count;          /* deliveries so far */
	uint64_t last_consumer;  /* id of the consumer that had it last */
	uint64_t *refused_by;    /* ids of consumers it may never go to again */
	uint32_t nrefused;
	struct consumer *owner;  /* while out to a consumer */
	bool retained;           /* a retained message sent on subscribe */
	uint64_t rec;            /* the store's record of it, 0 if none */
};
TAILQ_HEAD(delivery_list, delivery);

struct consumer {
	TAILQ_ENTRY(consumer) link;
	struct queue *q;
	uint64_t id;
	struct consumer_options opts;
	const struct consumer_ops *ops;
	void *ctx;
	bool paused;
	unsigned credit;
	struct delivery_list unacked;
	size_t nunacked;
};

struct queue {
	char *name;
	size_t max_ready;
	struct delivery_list ready;
	size_t nready;
	size_t nunacked;
	TAILQ_HEAD(, consumer) consumers;
	size_t nconsumers;
	struct consumer *cursor; /* round-robin: who is asked first next time */
	uint64_t next_seq;
	uint64_t next_consumer_id;
	bool dispatching, again;
	enum queue_overflow overflow;
	bool full;
	void (*room)(void *arg);
	void *room_arg;
	unsigned bindings;
	void (*settled)(void *arg, uint64_t rec);
	void *settled_arg;
	struct queue_stats stats;
};

struct queue *queue_new(const char *name, size_t max_ready)
{
	struct queue *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	if (name && !(q->name = strdup(name))) {
		free(q);
		return NULL;
	}
	q->max_ready = max_ready;
	TAILQ_INIT(&q->ready);
	TAILQ_INIT(&q->consumers);
	return q;
}

static void delivery_free(struct delivery *d)
{
	message_unref(d->msg);
	free(d->refused_by);
	free(d);
}

/* d is consumed or gone for good: the store may forget it. */
static void delivery_done(struct queue *q, struct delivery *d)
{
	if (d->rec && q->settled)
		q->settled(q->settled_arg, d->rec);
	delivery_free(d);
}

void queue_set_settle_cb(struct queue *q, void (*settled)(void *arg, uint64_t rec), void *arg)
{
	q->settled = settled;
	q->settled_arg = arg;
}

void queue_set_overflow(struct queue *q, enum queue_overflow overflow)
{
	q->overflow = overflow;
}

bool queue_full(const struct queue *q)
{
	return q->full;
}

void queue_set_room_cb(struct queue *q, void (*room)(void *arg), void *arg)
{
	q->room = room;
	q->room_arg = arg;
}

/* Full until half drained, so publishers resume in bursts, not per message. */
static void check_room(struct queue *q)
{
	if (q->full && q->nready <= q->max_ready / 2) {
		q->full = false;
		if (q->room)
			q->room(q->room_arg);
	}
}

void queue_free(struct queue *q)
{
	if (!q)
		return;
	if (q->full && q->room)
		q->room(q->room_arg); /* whoever waits for it waits no more */
	struct delivery *d;
	while ((d = TAILQ_FIRST(&q->ready))) {
		TAILQ_REMOVE(&q->ready, d, link);
		delivery_free(d);
	}
	free(q->name);
	free(q);
}

const char *queue_name(const struct queue *q) { return q->name; }
size_t queue_depth(const struct queue *q) { return q->nready; }
size_t queue_unacked(const struct queue *q) { return q->nunacked; }
size_t queue_consumer_count(const struct queue *q) { return q->nconsumers; }
const struct queue_stats *queue_stats(const struct queue *q) { return &q->stats; }
unsigned queue_bindings(const struct queue *q) { return q->bindings; }
void queue_set_bindings(struct queue *q, unsigned n) { q->bindings = n; }

static void drop_ready(struct queue *q, struct delivery *d)
{
	TAILQ_REMOVE(&q->ready, d, link);
	q->nready--;
	q->stats.dropped++;
	delivery_done(q, d);
	check_room(q);
}

void queue_purge(struct queue *q)
{
	while (!TAILQ_EMPTY(&q->ready))
		drop_ready(q, TAILQ_FIRST(&q->ready));
}

static int enqueue(struct queue *q, struct message *m, bool retained, uint64_t rec)
{
	if (!retained && q->max_ready && q->nready >= q->max_ready) {
		if (q->overflow == QUEUE_DROP_HEAD) {
			drop_ready(q, TAILQ_FIRST(&q->ready));
		} else if (m->qos == 0) {
			q->stats.dropped++; /* at most once: the newest goes */
			return 0;
		}
	}
	struct delivery *d = calloc(1, sizeof(*d));
	if (!d)
		return -1;
	d->msg = message_ref(m);
	d->seq = q->next_seq++;
	d->retained = retained;
	d->rec = rec;
	TAILQ_INSERT_TAIL(&q->ready, d, link);
	q->nready++;
	q->stats.enqueued++;
	queue_dispatch(q);
	if (q->overflow == QUEUE_BLOCK && q->max_ready && q->nready >= q->max_ready)
		q->full = true;
	return 0;
}

int queue_enqueue(struct queue *q, struct message *m)
{
	return enqueue(q, m, false, 0);
}

int queue_enqueue_stored(struct queue *q, struct message *m, uint64_t rec)
{
	return enqueue(q, m, false, rec);
}

int queue_enqueue_retained(struct queue *q, struct message *m)
{
	return enqueue(q, m, true, 0);
}

static bool can_take(const struct consumer *c)
{
	if (c->paused)
		return false;
	if (c->opts.credit_mode && c->credit == 0)
		return false;
	if (!c->opts.auto_ack && c->opts.window && c->nunacked >= c->opts.window)
		return false;
	return true;
}

static bool refused(const struct delivery *d, const struct consumer *c)
{
	for (uint32_t i = 0; i < d->nrefused; i++)
		if (d->refused_by[i] == c->id)
			return true;
	return false;
}

/* Round-robin from the cursor; a message that came back is offered to
 * another consumer before the one that had it, so one failing consumer does
 * not keep a message to itself. */
static struct consumer *pick(struct queue *q, const struct delivery *d)
{
	struct consumer *start = q->cursor ? q->cursor : TAILQ_FIRST(&q->consumers);
	struct consumer *fallback = NULL;
	struct consumer *c = start;
	if (!c)
		return NULL;
	do {
		if (can_take(c) && !refused(d, c)) {
			if (d->count == 0 || c->id != d->last_consumer)
				return c;
			fallback = c;
		}
		c = TAILQ_NEXT(c, link);
		if (!c)
			c = TAILQ_FIRST(&q->consumers);
	} while (c != start);
	return fallback;
}

/* Puts d back among the waiting messages at its original position. */
static void requeue(struct queue *q, struct delivery *d)
{
	struct delivery *at;
	TAILQ_FOREACH(at, &q->ready, link)
		if (at->seq > d->seq)
			break;
	if (at)
		TAILQ_INSERT_BEFORE(at, d, link);
	else
		TAILQ_INSERT_TAIL(&q->ready, d, link);
	q->nready++;
}

static void unlink_unacked(struct delivery *d)
{
	struct consumer *c = d->owner;
	TAILQ_REMOVE(&c->unacked, d, link);
	c->nunacked--;
	c->q->nunacked--;
	d->owner = NULL;
}

static bool dispatch_one(struct queue *q, int64_t now)
{
	struct delivery *d;
	struct consumer *c = NULL;
	/* A message that the consumers able to take it have refused waits for
	 * another consumer; the messages behind it go on meanwhile. */
	TAILQ_FOREACH(d, &q->ready, link) {
		if (d->msg->expiry_ms && d->msg->expiry_ms <= now) {
			drop_ready(q, d);
			return true;
		}
		if ((c = pick(q, d)) || !d->nrefused)
			break;
	}
	if (!c)
		return false;
	q->cursor = TAILQ_NEXT(c, link);
	TAILQ_REMOVE(&q->ready, d, link);
	q->nready--;
	check_room(q);
	d->count++;
	d->last_consumer = c->id;
	if (c->opts.credit_mode)
		c->credit--;
	if (!c->opts.auto_ack) {
		TAILQ_INSERT_TAIL(&c->unacked, d, link);
		c->nunacked++;
		q->nunacked++;
		d->owner = c;
	}
	int rc = c->ops->deliver(c->ctx, d, d->msg);
	if (rc < 0) {
		d->count--;
		if (c->opts.credit_mode)
			c->credit++;
		if (d->owner)
			unlink_unacked(d);
		requeue(q, d);
		c->paused = true;
		return true;
	}
	q->stats.delivered++;
	if (c->opts.auto_ack || rc > 0) {
		if (d->owner)
			unlink_unacked(d);
		q->stats.acked++;
		delivery_done(q, d);
	}
	return true;
}

void queue_dispatch(struct queue *q)
{
	if (q->dispatching) {
		q->again = true; /* a consumer's callback reached back in: finish in the outer loop */
		return;
	}
	q->dispatching = true;
	int64_t now = clock_wall_ms();
	do {
		q->again = false;
		while (!TAILQ_EMPTY(&q->ready) && dispatch_one(q, now))
			;
	} while (q->again);
	q->dispatching = false;
}

struct consumer *queue_consumer_add(struct queue *q, const struct consumer_options *opts,
				    const struct consumer_ops *ops, void *ctx)
{
	struct consumer *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->q = q;
	c->id = ++q->next_consumer_id;
	c->opts = *opts;
	c->ops = ops;
	c->ctx = ctx;
	TAILQ_INIT(&c->unacked);
	TAILQ_INSERT_TAIL(&q->consumers, c, link);
	q->nconsumers++;
	queue_dispatch(q);
	return c;
}

void queue_consumer_remove(struct consumer *c)
{
	struct queue *q = c->q;
	struct delivery *d;
	while ((d = TAILQ_FIRST(&c->unacked))) {
		unlink_unacked(d);
		requeue(q, d);
	}
	if (q->cursor == c)
		q->cursor = TAILQ_NEXT(c, link);
	TAILQ_REMOVE(&q->consumers, c, link);
	q->nconsumers--;
	free(c);
	queue_dispatch(q);
}

struct queue *consumer_queue(const struct consumer *c) { return c->q; }
unsigned consumer_credit(const struct consumer *c) { return c->credit; }
size_t consumer_unacked(const struct consumer *c) { return c->nunacked; }

void consumer_set_paused(struct consumer *c, bool paused)
{
	bool resumed = c->paused && !paused;
	c->paused = paused;
	if (resumed)
		queue_dispatch(c->q);
}

void consumer_add_credit(struct consumer *c, unsigned credit)
{
	c->credit = credit > ~0u - c->credit ? ~0u : c->credit + credit;
	queue_dispatch(c->q);
}

void consumer_set_credit(struct consumer *c, unsigned credit)
{
	c->credit = credit;
	queue_dispatch(c->q);
}

static void settle(struct queue *q, struct delivery *d)
{
	unlink_unacked(d);
	q->stats.acked++;
	delivery_done(q, d);
}

void delivery_ack(struct delivery *d, bool cumulative)
{
	struct consumer *c = d->owner;
	struct queue *q = c->q;
	if (cumulative) {
		struct delivery *first;
		while ((first = TAILQ_FIRST(&c->unacked)) != d)
			settle(q, first);
	}
	settle(q, d);
	queue_dispatch(q);
}

void delivery_nack(struct delivery *d, enum nack_outcome outcome)
{
	struct queue *q = d->owner->q;
	unlink_unacked(d);
	if (outcome == NACK_REJECT) {
		q->stats.rejected++;
		delivery_done(q, d);
	} else {
		if (outcome == NACK_RELEASE)
			d->count--;
		requeue(q, d);
	}
	queue_dispatch(q);
}

void delivery_nack_elsewhere(struct delivery *d, enum nack_outcome outcome)
{
	uint64_t *grown = realloc(d->refused_by, (d->nrefused + 1) * sizeof(*grown));
	/* Out of memory, it may come back here: better than losing it. */
	if (grown) {
		grown[d->nrefused++] = d->owner->id;
		d->refused_by = grown;
	}
	delivery_nack(d, outcome);
}

struct delivery *consumer_find_delivery(struct consumer *c, uint64_t msg_id)
{
	struct delivery *d;
	TAILQ_FOREACH(d, &c->unacked, link)
		if (d->msg->id == msg_id)
			return d;
	return NULL;
}

const struct message *delivery_message(const struct delivery *d) { return d->msg; }
uint32_t delivery_count(const struct delivery *d) { return d->count; }
struct consumer *delivery_consumer(const struct delivery *d) { return d->owner; }
bool delivery_retained(const struct delivery *d) { return d->retained; }
