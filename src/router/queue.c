#include "config.h"
#include "router/queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "router/group.h"
#include "util/clock.h"

#define NPRIO 10

struct delivery {
	TAILQ_ENTRY(delivery) link; /* in one of the queue's ready lists or a consumer's unacked list */
	struct message *msg;
	uint64_t seq;            /* position in the queue, for putting it back in order */
	int64_t expires;         /* ms since the epoch, 0 = never: the message's or the queue's */
	struct group *group;     /* counted in the queue's groups while d lives */
	uint8_t prio;            /* which ready list */
	uint32_t count;          /* deliveries so far */
	uint64_t last_consumer;  /* id of the consumer that had it last */
	uint64_t *refused_by;    /* ids of consumers it may never go to again */
	uint32_t nrefused;
	struct consumer *owner;  /* while out to a consumer */
	bool retained;           /* a retained message sent on subscribe */
	uint64_t rec;            /* the store's record of it, 0 if none */
	size_t cost;             /* msg_cost(msg), counted while it waits in memory */
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
	/* One FIFO per priority; bit p of `nonempty` is set while ready[p]
	 * holds messages, so finding the highest is one instruction. */
	struct delivery_list ready[NPRIO];
	unsigned nonempty;
	size_t nready;
	size_t ready_bytes;      /* their bodies: max_bytes */
	size_t ready_mem;        /* all they cost in memory: paging */
	struct mem_account *acct; /* shared with other queues, or NULL */
	const bool *hold;        /* shared with other queues, or NULL */
	struct queue_limits lim;
	struct groups *groups;   /* made on the first message with a group */
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
	bool (*alive)(void *arg, uint64_t rec);
	uint32_t (*count_of)(void *arg, uint64_t rec);
	void (*counted)(void *arg, uint64_t rec, uint32_t count);
	void *count_arg;
	void *alive_arg;
	const struct queue_page_ops *page_ops;
	void *pager;
	size_t page_limit;
	size_t npaged, paged_bytes;
	int (*dead)(void *arg, struct queue *q, struct message *m, enum queue_death why);
	void *dead_arg;
	void (*dropped)(void *arg, struct queue *q, enum queue_drop why, uint64_t n);
	void *dropped_arg;
	char *label;
	struct queue_stats stats;
	uint64_t drops[DROP_NCAUSES]; /* stats.dropped by cause */
};

const char *queue_drop_name(enum queue_drop why)
{
	static const char *const names[DROP_NCAUSES] = {
		[DROP_FULL] = "full",
		[DROP_HEAD] = "drop-head",
		[DROP_EXPIRED] = "expired",
		[DROP_DEAD] = "dead",
		[DROP_UNREADABLE] = "unreadable",
		[DROP_PURGED] = "purged",
	};
	return (unsigned)why < DROP_NCAUSES ? names[why] : "?";
}

static void count_drop(struct queue *q, enum queue_drop why, uint64_t n)
{
	q->stats.dropped += n;
	q->drops[why] += n;
	if (n && q->dropped)
		q->dropped(q->dropped_arg, q, why, n);
}

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
	q->lim.max_length = max_ready;
	q->lim.priorities = true;
	for (int p = 0; p < NPRIO; p++)
		TAILQ_INIT(&q->ready[p]);
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
	if (d->group)
		groups_unref(q->groups, d->group);
	delivery_free(d);
}

/* ---- the ready lists ------------------------------------------------------ */

/* What waiting in memory costs a message: itself and its delivery. */
static size_t msg_cost(const struct message *m)
{
	return message_mem_size(m) + mem_block(sizeof(struct delivery), true);
}

static bool over_shared(const struct queue *q, size_t more)
{
	return q->acct && q->acct->limit && q->acct->used + more > q->acct->limit;
}

/* d was put in its ready list. */
static void ready_added(struct queue *q, struct delivery *d)
{
	size_t cost = d->cost;
	q->nonempty |= 1u << d->prio;
	q->nready++;
	q->ready_bytes += d->msg->body_len;
	q->ready_mem += cost;
	if (q->acct) {
		q->acct->over |= over_shared(q, cost);
		q->acct->used += cost;
	}
}

static void ready_insert_tail(struct queue *q, struct delivery *d)
{
	TAILQ_INSERT_TAIL(&q->ready[d->prio], d, link);
	ready_added(q, d);
}

static void ready_remove(struct queue *q, struct delivery *d)
{
	TAILQ_REMOVE(&q->ready[d->prio], d, link);
	if (TAILQ_EMPTY(&q->ready[d->prio]))
		q->nonempty &= ~(1u << d->prio);
	q->nready--;
	q->ready_bytes -= d->msg->body_len;
	size_t cost = d->cost;
	q->ready_mem -= cost;
	struct mem_account *a = q->acct;
	if (a) {
		a->used -= cost;
		if (a->over && a->used <= a->limit / 2) {
			a->over = false;
			if (a->room)
				a->room(a->room_arg);
		}
	}
}

void queue_set_mem_account(struct queue *q, struct mem_account *a)
{
	q->acct = a;
}

void queue_set_hold(struct queue *q, const bool *hold)
{
	q->hold = hold;
}

static int highest(unsigned mask)
{
	return 31 - __builtin_clz(mask);
}

static struct delivery *ready_first(const struct queue *q)
{
	return q->nonempty ? TAILQ_FIRST(&q->ready[highest(q->nonempty)]) : NULL;
}

/* The next message to look at after d: behind it, else the first of the
 * next lower priority. */
static struct delivery *ready_next(const struct queue *q, const struct delivery *d)
{
	struct delivery *next = TAILQ_NEXT(d, link);
	if (next)
		return next;
	unsigned lower = q->nonempty & ((1u << d->prio) - 1);
	return lower ? TAILQ_FIRST(&q->ready[highest(lower)]) : NULL;
}

/* The oldest message of the lowest priority: what drop-head gives up. */
static struct delivery *ready_oldest(const struct queue *q)
{
	return q->nonempty ? TAILQ_FIRST(&q->ready[__builtin_ctz(q->nonempty)]) : NULL;
}

void queue_set_alive_cb(struct queue *q, bool (*alive)(void *arg, uint64_t rec), void *arg)
{
	q->alive = alive;
	q->alive_arg = arg;
}

static bool is_dead(const struct queue *q, uint64_t rec)
{
	return rec && q->alive && !q->alive(q->alive_arg, rec);
}

void queue_set_count_cbs(struct queue *q, uint32_t (*count_of)(void *arg, uint64_t rec),
			 void (*counted)(void *arg, uint64_t rec, uint32_t count), void *arg)
{
	q->count_of = count_of;
	q->counted = counted;
	q->count_arg = arg;
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

void queue_set_max_ready(struct queue *q, size_t max_ready)
{
	q->max_ready = max_ready;
}

void queue_set_limits(struct queue *q, const struct queue_limits *l)
{
	q->lim = *l;
	q->max_ready = l->max_length;
	q->overflow = l->overflow;
}

void queue_set_drop_cb(struct queue *q,
		       void (*dropped)(void *arg, struct queue *q, enum queue_drop why, uint64_t n),
		       void *arg)
{
	q->dropped = dropped;
	q->dropped_arg = arg;
}

int queue_set_label(struct queue *q, const char *label)
{
	char *copy = strdup(label);
	if (!copy)
		return -1;
	free(q->label);
	q->label = copy;
	return 0;
}

const char *queue_label(const struct queue *q)
{
	return q->name ? q->name : q->label;
}

void queue_set_dead_letter_cb(struct queue *q,
			      int (*dead)(void *arg, struct queue *q, struct message *m,
					  enum queue_death why),
			      void *arg)
{
	q->dead = dead;
	q->dead_arg = arg;
}

bool queue_full(const struct queue *q)
{
	return q->full;
}

/* Whether `len` more bytes in one more message would pass a bound. */
static bool over(const struct queue *q, size_t len)
{
	return (q->max_ready && q->nready + q->npaged >= q->max_ready) ||
	       (q->lim.max_bytes && q->ready_bytes + q->paged_bytes + len > q->lim.max_bytes);
}

bool queue_accepts(const struct queue *q, const struct message *m)
{
	return q->overflow != QUEUE_REJECT || !over(q, m->body_len);
}

void queue_set_room_cb(struct queue *q, void (*room)(void *arg), void *arg)
{
	q->room = room;
	q->room_arg = arg;
}

/* Full until half drained, so publishers resume in bursts, not per message. */
static void check_room(struct queue *q)
{
	if (q->full && q->nready <= q->max_ready / 2 &&
	    (!q->lim.max_bytes || q->ready_bytes <= q->lim.max_bytes / 2)) {
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
	while ((d = ready_first(q))) {
		ready_remove(q, d);
		delivery_free(d);
	}
	groups_free(q->groups);
	if (q->pager)
		q->page_ops->free(q->pager);
	free(q->name);
	free(q->label);
	free(q);
}

const char *queue_name(const struct queue *q) { return q->name; }
size_t queue_depth(const struct queue *q) { return q->nready + q->npaged; }
size_t queue_paged(const struct queue *q) { return q->npaged; }
size_t queue_unacked(const struct queue *q) { return q->nunacked; }
size_t queue_consumer_count(const struct queue *q) { return q->nconsumers; }
const struct queue_stats *queue_stats(const struct queue *q) { return &q->stats; }
unsigned queue_bindings(const struct queue *q) { return q->bindings; }
void queue_set_bindings(struct queue *q, unsigned n) { q->bindings = n; }
size_t queue_bytes(const struct queue *q) { return q->ready_bytes + q->paged_bytes; }
const uint64_t *queue_drops(const struct queue *q) { return q->drops; }

int64_t queue_oldest_ms(const struct queue *q)
{
	int64_t oldest = 0;
	for (unsigned mask = q->nonempty; mask; mask &= mask - 1) {
		const struct delivery *d = TAILQ_FIRST(&q->ready[__builtin_ctz(mask)]);
		if (!oldest || d->msg->timestamp_ms < oldest)
			oldest = d->msg->timestamp_ms;
	}
	return oldest;
}

size_t queue_browse(const struct queue *q, size_t limit,
		    void (*fn)(const struct message *m, uint32_t count, void *arg), void *arg)
{
	size_t n = 0;
	for (const struct delivery *d = ready_first(q); d && n < limit; d = ready_next(q, d), n++)
		fn(d->msg, d->count, arg);
	return n;
}

static void drop_ready(struct queue *q, struct delivery *d, enum queue_drop why)
{
	ready_remove(q, d);
	count_drop(q, why, 1);
	delivery_done(q, d);
	check_room(q);
}

size_t queue_take(struct queue *q, size_t limit, int (*fn)(const struct message *m, void *arg),
		  void *arg)
{
	size_t n = 0;
	struct delivery *d = ready_first(q);
	while (d && n < limit) {
		struct delivery *next = ready_next(q, d);
		int rc = fn(d->msg, arg);
		if (rc < 0)
			break;
		if (rc > 0) {
			ready_remove(q, d);
			delivery_done(q, d);
			n++;
		}
		d = next;
	}
	check_room(q);
	return n;
}

static struct message *page_get(struct queue *q, uint64_t *rec)
{
	struct message *m = q->page_ops->get(q->pager, rec);
	if (!m && errno == EAGAIN)
		return NULL; /* being read: page_ready follows */
	if (!m) {
		/* Unreadable: what the store keeps comes back at a restart. */
		count_drop(q, DROP_UNREADABLE, q->npaged);
		q->npaged = 0;
		q->paged_bytes = 0;
		return NULL;
	}
	q->npaged--;
	q->paged_bytes -= m->body_len;
	return m;
}

void queue_purge(struct queue *q)
{
	struct delivery *d;
	while ((d = ready_first(q)))
		drop_ready(q, d, DROP_PURGED);
	if (q->npaged) {
		/* What is only on disk is settled once read, off the loop; the
		 * queue may be gone by then. */
		count_drop(q, DROP_PURGED, q->npaged);
		q->page_ops->purge(q->pager, q->settled, q->settled_arg);
		q->npaged = 0;
		q->paged_bytes = 0;
	}
	check_room(q);
}

void queue_drop_dead(struct queue *q)
{
	for (int p = 0; p < NPRIO; p++) {
		struct delivery *d, *next;
		for (d = TAILQ_FIRST(&q->ready[p]); d; d = next) {
			next = TAILQ_NEXT(d, link);
			if (!is_dead(q, d->rec))
				continue;
			ready_remove(q, d);
			if (d->group)
				groups_unref(q->groups, d->group);
			delivery_free(d);
		}
	}
	check_room(q);
}

static void page_ready(void *arg)
{
	queue_dispatch(arg);
}

void queue_set_paging(struct queue *q, size_t limit, const struct queue_page_ops *ops, void *pager)
{
	if (q->pager)
		q->page_ops->free(q->pager);
	q->page_ops = ops;
	q->pager = pager;
	q->page_limit = limit;
	if (pager)
		ops->set_ready(pager, page_ready, q);
}

/* d, off every list, leaves for the dead-letter queue if it has one. */
static void dead_letter(struct queue *q, struct delivery *d, enum queue_death why)
{
	if (q->dead && q->dead(q->dead_arg, q, d->msg, why) == 0)
		q->stats.dead_lettered++;
	else
		count_drop(q, why == QUEUE_DEATH_EXPIRED ? DROP_EXPIRED : DROP_DEAD, 1);
	delivery_done(q, d);
}

static void expire(struct queue *q, struct delivery *d)
{
	ready_remove(q, d);
	q->stats.expired++;
	if (q->lim.dead_letter_expired) {
		dead_letter(q, d, QUEUE_DEATH_EXPIRED);
	} else {
		count_drop(q, DROP_EXPIRED, 1);
		delivery_done(q, d);
	}
	check_room(q);
}

void queue_expire(struct queue *q, int64_t now_ms)
{
	if (q->dispatching)
		return;
	for (int p = 0; p < NPRIO; p++) {
		struct delivery *d;
		while ((d = TAILQ_FIRST(&q->ready[p])) && d->expires && d->expires <= now_ms)
			expire(q, d);
	}
}

/* The earliest of the message's own expiry, the queue's ttl for one that
 * has none, and the queue's retention. */
static int64_t expiry_of(const struct queue *q, const struct message *m)
{
	int64_t expires = m->expiry_ms;
	if (!q->lim.ttl_ms && !q->lim.retention_ms)
		return expires;
	int64_t base = m->timestamp_ms ? m->timestamp_ms : clock_wall_ms();
	if (!expires && q->lim.ttl_ms)
		expires = base + q->lim.ttl_ms;
	if (q->lim.retention_ms && (!expires || base + q->lim.retention_ms < expires))
		expires = base + q->lim.retention_ms;
	return expires;
}

/* A delivery for m, which costs `cost` in memory (msg_cost), at the tail
 * of its ready list. */
static int add_ready(struct queue *q, struct message *m, size_t cost, bool retained, uint64_t rec)
{
	struct delivery *d = calloc(1, sizeof(*d));
	if (!d)
		return -1;
	const char *group = retained ? NULL : message_group(m);
	if (group) {
		if (!q->groups)
			q->groups = groups_new();
		if (!q->groups || !(d->group = groups_ref(q->groups, group))) {
			free(d);
			return -1;
		}
	}
	d->msg = message_ref(m);
	d->seq = q->next_seq++;
	d->retained = retained;
	d->rec = rec;
	d->cost = cost;
	d->expires = expiry_of(q, m);
	d->prio = q->lim.priorities ? (m->priority < NPRIO ? m->priority : NPRIO - 1) : 0;
	ready_insert_tail(q, d);
	return 0;
}

/* The head of a paging queue is in memory, its tail in the pager: brings
 * messages back while memory holds less than half the limit. */
static void page_in(struct queue *q)
{
	/* Under a shared limit too, as under the queue's own: back below half
	 * of it, or what keeps consumers busy. */
	while (q->npaged && q->ready_mem < q->page_limit / 2 &&
	       (!q->nready || !q->acct || q->acct->used < q->acct->limit / 2 || !q->acct->limit)) {
		uint64_t rec;
		struct message *m = page_get(q, &rec);
		if (!m)
			return;
		if (is_dead(q, rec)) {
			message_unref(m);
			continue;
		}
		int rc = add_ready(q, m, msg_cost(m), false, rec);
		message_unref(m);
		if (rc < 0)
			return;
	}
}

static int enqueue(struct queue *q, struct message *m, bool retained, uint64_t rec)
{
	if (!retained && over(q, m->body_len)) {
		if (q->overflow == QUEUE_DROP_HEAD) {
			while (q->nready && over(q, m->body_len))
				drop_ready(q, ready_oldest(q), DROP_HEAD);
		} else if (q->overflow == QUEUE_BLOCK && m->qos == 0) {
			count_drop(q, DROP_FULL, 1); /* at most once: the newest goes */
			return 0;
		}
	}
	/* Once paging, everything new goes behind what is paged: FIFO. */
	size_t cost = msg_cost(m);
	bool shared_full = over_shared(q, cost);
	if (shared_full)
		q->acct->over = true;
	if (q->pager && !retained && (q->npaged || q->ready_mem + cost > q->page_limit || shared_full) &&
	    q->page_ops->put(q->pager, m, rec) == 0) {
		q->npaged++;
		q->paged_bytes += m->body_len;
	} else if (add_ready(q, m, cost, retained, rec) < 0) {
		return -1;
	}
	q->stats.enqueued++;
	queue_dispatch(q);
	if (q->overflow == QUEUE_BLOCK && over(q, 0))
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
	/* A pinned group waits for its consumer, unless that one refused it. */
	if (d->group && d->group->owner && !refused(d, d->group->owner)) {
		struct consumer *owner = (struct consumer *)d->group->owner;
		return can_take(owner) ? owner : NULL;
	}
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

/* Puts d back among the waiting messages of its priority at its original
 * position. */
static void requeue(struct queue *q, struct delivery *d)
{
	struct delivery *at;
	TAILQ_FOREACH(at, &q->ready[d->prio], link)
		if (at->seq > d->seq)
			break;
	if (at) {
		TAILQ_INSERT_BEFORE(at, d, link);
		ready_added(q, d);
	} else {
		ready_insert_tail(q, d);
	}
}

/* d failed (or its consumer went): back to its place, or past
 * max_redeliveries to the dead-letter queue. */
static void give_back(struct queue *q, struct delivery *d)
{
	if (q->lim.max_redeliveries && d->count > q->lim.max_redeliveries) {
		dead_letter(q, d, QUEUE_DEATH_MAX_REDELIVERIES);
		return;
	}
	if (d->rec && q->counted)
		q->counted(q->count_arg, d->rec, d->count);
	requeue(q, d);
}

static void unlink_unacked(struct delivery *d)
{
	struct consumer *c = d->owner;
	TAILQ_REMOVE(&c->unacked, d, link);
	c->nunacked--;
	c->q->nunacked--;
	d->owner = NULL;
}

static bool any_can_take(const struct queue *q)
{
	const struct consumer *c;
	TAILQ_FOREACH(c, &q->consumers, link)
		if (can_take(c))
			return true;
	return false;
}

static bool dispatch_one(struct queue *q, int64_t now)
{
	struct delivery *d;
	struct consumer *c = NULL;
	unsigned skipped = 0;
	for (d = ready_first(q); d; d = ready_next(q, d)) {
		if (d->expires && d->expires <= now) {
			expire(q, d);
			return true;
		}
		if ((c = pick(q, d)))
			break;
		/* Nobody can take an ordinary message: nobody can take any. One
		 * that waits for a consumer of its own lets those behind it go. */
		bool waits = d->nrefused || (d->group && d->group->owner);
		if (!waits || ++skipped > QUEUE_LOOKAHEAD || (skipped == 1 && !any_can_take(q)))
			return false;
	}
	if (!c)
		return false;
	q->cursor = TAILQ_NEXT(c, link);
	ready_remove(q, d);
	check_room(q);
	if (!d->count && d->rec && q->count_of)
		d->count = q->count_of(q->count_arg, d->rec);
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
	if (d->group && !d->group->owner)
		d->group->owner = c;
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
	if (q->hold && *q->hold)
		return;
	if (q->dispatching) {
		q->again = true; /* a consumer's callback reached back in: finish in the outer loop */
		return;
	}
	q->dispatching = true;
	int64_t now = clock_wall_ms();
	do {
		q->again = false;
		while ((page_in(q), q->nonempty) && dispatch_one(q, now))
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
		give_back(q, d);
	}
	if (q->groups)
		groups_unpin(q->groups, c);
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
		dead_letter(q, d, QUEUE_DEATH_REJECTED);
	} else if (outcome == NACK_RELEASE) {
		d->count--;
		requeue(q, d);
	} else {
		give_back(q, d);
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
