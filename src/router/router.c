#include "config.h"
#include "router/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "log.h"
#include "router/policy.h"
#include "router/retain.h"
#include "router/topic.h"
#include "util/audit.h"
#include "util/clock.h"
#include "util/map.h"

struct auto_rule {
	struct auto_rule *next;
	enum dest_kind kind;
	bool allowed;
	char pattern[];
};

/* The queue a share group's members compete on, bound to its pattern. */
struct share {
	char *key;              /* "GROUP" NUL "pattern", as the map keys it */
	struct queue *q;
	struct topic_binding *binding;
	unsigned members;
};

struct subscription {
	char *pattern;          /* private topic subscriptions: for retained messages */
	struct queue *q;        /* the named queue, the private one of a topic
				   subscription, or a share group's */
	struct consumer *c;
	struct topic_binding *binding; /* private topic subscriptions only */
	struct share *share;           /* share group members only */
	bool durable;                  /* on a durable subscription's queue */
	char *checked;                 /* the name the ACLs allowed, NULL: not checked */
	enum dest_kind kind;           /* of checked */
};

struct router {
	struct router_options opts;
	struct map *queues;     /* name -> struct queue */
	struct map *topics;     /* names of topics known to exist -> (void *)1 */
	struct topic_tree *tree;
	struct retain_store *retained;
	struct map *shares;     /* "GROUP\x01pattern" -> struct share */
	struct auto_rule *rules;
	struct policy_rule *policies;
	struct router_waiter *waiters;
	struct router_persist persist;  /* all NULL without a store */
	struct map *drops;      /* label -> struct drop_tally, since router_take_drops */
	struct mem_account mem;         /* what every queue's waiting messages use */
	bool mem_alarm;                 /* logged as over broker_memory_limit */
	bool hold;                      /* named queues deliver nothing (router_hold_deliveries) */
	uint64_t next_msg_id;
	struct router_stats stats;
	const struct acl *acl;          /* NULL: everything allowed */
	const struct users *users;
	unsigned long acl_gen;          /* bumped by router_set_acl: voids cached decisions */
};

const char *router_strerror(enum router_err err)
{
	switch (err) {
	case ROUTER_OK: return "ok";
	case ROUTER_ENOMEM: return "out of memory";
	case ROUTER_EINVAL: return "invalid destination name";
	case ROUTER_ENOTFOUND: return "no such destination";
	case ROUTER_EFORBIDDEN: return "destination reserved for the broker";
	case ROUTER_ESTORE: return "the store could not keep the message";
	case ROUTER_EFULL: return "queue full";
	case ROUTER_PENDING: return "pending";
	case ROUTER_EDENIED: return "access refused";
	}
	return "unknown error";
}

static void mem_room_cb(void *arg);

struct router *router_new(const struct router_options *opts)
{
	struct router *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->opts = *opts;
	r->mem.limit = opts->broker_memory_limit;
	r->mem.room = mem_room_cb;
	r->mem.room_arg = r;
	r->queues = map_new();
	r->topics = map_new();
	r->tree = topic_tree_new();
	r->retained = retain_new();
	r->shares = map_new();
	r->drops = map_new();
	if (!r->queues || !r->topics || !r->tree || !r->retained || !r->shares || !r->drops) {
		router_free(r);
		return NULL;
	}
	return r;
}

static void free_queue(const char *key, void *value, void *arg)
{
	queue_free(value);
}

static void free_value(const char *key, void *value, void *arg)
{
	free(value);
}

/* ---- messages let go undelivered ------------------------------------------- */

/* Past this many destinations with drops in one report, the rest are
 * counted together: a report stays small whatever a client does. */
#define DROP_LABELS_MAX 1000
#define DROP_LABEL_OTHER "(other destinations)"

struct drop_tally {
	uint64_t n[DROP_NCAUSES];
};

static void drop_cb(void *arg, struct queue *q, enum queue_drop why, uint64_t n)
{
	struct router *r = arg;
	r->stats.dropped[why] += n;
	const char *label = queue_label(q);
	if (!label)
		label = "a private subscription";
	struct drop_tally *t = map_get(r->drops, label);
	if (!t && map_count(r->drops) >= DROP_LABELS_MAX)
		t = map_get(r->drops, label = DROP_LABEL_OTHER);
	if (!t) {
		if (!(t = calloc(1, sizeof(*t))))
			return;
		if (map_put(r->drops, label, t) < 0) {
			free(t);
			return;
		}
	}
	t->n[why] += n;
}

struct take_drops {
	void (*fn)(const char *label, const uint64_t n[DROP_NCAUSES], void *arg);
	void *arg;
};

static void take_one(const char *label, void *value, void *arg)
{
	struct take_drops *td = arg;
	const struct drop_tally *t = value;
	td->fn(label, t->n, td->arg);
	free(value);
}

void router_take_drops(struct router *r,
		       void (*fn)(const char *label, const uint64_t n[DROP_NCAUSES], void *arg),
		       void *arg)
{
	if (!map_count(r->drops))
		return;
	struct map *fresh = map_new();
	if (!fresh)
		return; /* the tally goes on, and is reported next time */
	struct take_drops td = { fn, arg };
	map_each(r->drops, take_one, &td);
	map_free(r->drops);
	r->drops = fresh;
}

void router_free(struct router *r)
{
	if (!r)
		return;
	/* Bindings go first: they point at queues. */
	topic_tree_free(r->tree);
	if (r->queues) {
		map_each(r->queues, free_queue, NULL);
		map_free(r->queues);
	}
	map_free(r->topics);
	retain_free(r->retained);
	/* Shares are gone with their last member; the router is freed after
	 * every subscription. */
	map_free(r->shares);
	if (r->drops) {
		map_each(r->drops, free_value, NULL);
		map_free(r->drops);
	}
	while (r->rules) {
		struct auto_rule *rule = r->rules;
		r->rules = rule->next;
		free(rule);
	}
	policy_free(r->policies);
	free(r);
}

void router_set_acl(struct router *r, const struct acl *acl, const struct users *users)
{
	r->acl = acl;
	r->users = users;
	r->acl_gen++;
}

/* The ACL check of every client's publish and subscription. */
static enum router_err acl_allows(struct router *r, struct acl_who *who, enum acl_action action,
				  enum dest_kind kind, const char *name, bool pattern)
{
	if (!r->acl || !who)
		return ROUTER_OK;
	if (acl_decide(r->acl, r->users, r->acl_gen, who, action, kind, name, pattern))
		return ROUTER_OK;
	acl_denied(who, action, kind, name);
	return ROUTER_EDENIED;
}

/* Publishing to or consuming from a queue that does not exist yet creates
 * it: that needs the create action too. */
static enum router_err acl_allows_create(struct router *r, struct acl_who *who, const char *queue)
{
	if (!r->acl || !who || map_get(r->queues, queue))
		return ROUTER_OK;
	return acl_allows(r, who, ACL_CREATE, DEST_QUEUE, queue, false);
}

enum router_err router_set_auto_create(struct router *r, enum dest_kind kind, const char *pattern,
				       bool allowed)
{
	if (address_validate(pattern, true) != 0)
		return ROUTER_EINVAL;
	size_t len = strlen(pattern);
	struct auto_rule *rule = malloc(sizeof(*rule) + len + 1);
	if (!rule)
		return ROUTER_ENOMEM;
	rule->next = NULL;
	rule->kind = kind;
	rule->allowed = allowed;
	memcpy(rule->pattern, pattern, len + 1);
	struct auto_rule **pp = &r->rules;
	while (*pp)
		pp = &(*pp)->next;
	*pp = rule;
	return ROUTER_OK;
}

static bool may_create(const struct router *r, enum dest_kind kind, const char *name)
{
	for (const struct auto_rule *rule = r->rules; rule; rule = rule->next)
		if (rule->kind == kind && address_match(rule->pattern, name))
			return rule->allowed;
	return true;
}

/* Prefixes of queues the broker names for one client: a durable
 * subscription's (held for its subscriber only) and a dynamic reply queue's
 * (anyone may send to it, only its maker consume). */
#define DURABLE_PREFIX "wharf.durable."
#define TEMP_PREFIX "wharf.temp."

static bool has_prefix(const char *name, const char *prefix)
{
	return strncmp(name, prefix, strlen(prefix)) == 0;
}

static enum router_err check_name(const char *name, bool pattern, bool broker_own)
{
	if (address_validate(name, pattern) != 0)
		return ROUTER_EINVAL;
	if ((name[0] == '$' || has_prefix(name, DURABLE_PREFIX)) && !broker_own)
		return ROUTER_EFORBIDDEN;
	return ROUTER_OK;
}

void router_wait_room(struct router *r, struct router_waiter *w)
{
	if (w->prevp)
		return;
	w->next = r->waiters;
	if (w->next)
		w->next->prevp = &w->next;
	w->prevp = &r->waiters;
	r->waiters = w;
}

void router_cancel_wait(struct router_waiter *w)
{
	if (!w->prevp)
		return;
	*w->prevp = w->next;
	if (w->next)
		w->next->prevp = w->prevp;
	w->next = NULL;
	w->prevp = NULL;
}

/* Some queue drained: every waiting publisher may go on (one still blocked
 * elsewhere finds out on its next publish). */
static void room_cb(void *arg)
{
	struct router *r = arg;
	/* The whole list goes at once: a waiter may wait again from its call. */
	struct router_waiter *list = r->waiters;
	r->waiters = NULL;
	while (list) {
		struct router_waiter *w = list;
		list = w->next;
		w->next = NULL;
		w->prevp = NULL;
		w->room(w);
	}
}

static void mem_room_cb(void *arg)
{
	struct router *r = arg;
	if (r->mem_alarm) {
		log_info("memory: waiting messages back under half of broker_memory_limit (%zu MiB): "
			 "publishers resume",
			 r->mem.limit >> 20);
		r->mem_alarm = false;
	}
	room_cb(r);
}

void router_room(struct router *r)
{
	room_cb(r);
}

static bool alive_cb(void *arg, uint64_t rec)
{
	struct router *r = arg;
	return !r->persist.alive || r->persist.alive(r->persist.arg, rec);
}

static void settled_cb(void *arg, uint64_t rec)
{
	struct router *r = arg;
	if (r->persist.settled)
		r->persist.settled(r->persist.arg, rec);
}

static uint32_t count_of_cb(void *arg, uint64_t rec)
{
	struct router *r = arg;
	return r->persist.count_of ? r->persist.count_of(r->persist.arg, rec) : 0;
}

static void counted_cb(void *arg, uint64_t rec, uint32_t count)
{
	struct router *r = arg;
	if (r->persist.counted)
		r->persist.counted(r->persist.arg, rec, count);
}

static int dead_letter_cb(void *arg, struct queue *q, struct message *m, enum queue_death why);
static void attach_pager(struct router *r, struct queue *q);

static void apply_policy(struct router *r, struct queue *q)
{
	struct queue_limits l;
	policy_limits(r->policies, queue_name(q), &l);
	queue_set_limits(q, &l);
}

/* Only named queues keep durable messages, have policies and dead-letter
 * queues: a private subscription queue dies with its subscriber. */
static struct queue *new_queue(struct router *r, const char *name, size_t max_ready)
{
	struct queue *q = queue_new(name, max_ready);
	if (!q)
		return NULL;
	queue_set_room_cb(q, room_cb, r);
	queue_set_drop_cb(q, drop_cb, r);
	queue_set_mem_account(q, &r->mem);
	if (name) {
		queue_set_settle_cb(q, settled_cb, r);
		queue_set_alive_cb(q, alive_cb, r);
		queue_set_count_cbs(q, count_of_cb, counted_cb, r);
		queue_set_dead_letter_cb(q, dead_letter_cb, r);
		queue_set_hold(q, &r->hold);
		apply_policy(r, q);
		attach_pager(r, q);
	}
	return q;
}

static void attach_pager(struct router *r, struct queue *q)
{
	if (!r->persist.pager_new || !r->opts.queue_memory_limit)
		return;
	void *pager = r->persist.pager_new(r->persist.arg, queue_name(q));
	if (pager)
		queue_set_paging(q, r->opts.queue_memory_limit, r->persist.page_ops, pager);
}

static void attach_pager_cb(const char *name, void *value, void *arg)
{
	(void)name;
	attach_pager(arg, value);
}

void router_set_persist(struct router *r, const struct router_persist *p)
{
	bool pagers = p && p->pager_new && !r->persist.pager_new;
	if (p)
		r->persist = *p;
	else
		memset(&r->persist, 0, sizeof(r->persist));
	if (pagers)
		map_each(r->queues, attach_pager_cb, r);
}

/* One publish as it goes: what it is to be confirmed through, and what
 * befell it on the way, queue by queue. */
struct publish {
	struct router_confirm *confirm; /* NULL: no one waits for the store */
	bool store_failed;              /* some copy could not be written */
	bool refused;                   /* some queue refused it (reject-publish) */
	bool blocked;                   /* it left some queue full */
	bool oom;
};

/* Enqueues m in q, through the store first when it is a durable message
 * for a named queue. */
static void enqueue_msg(struct router *r, struct publish *p, struct queue *q, struct message *m)
{
	uint64_t rec = 0;
	if (!queue_accepts(q, m))
		p->refused = true;
	else if (m->durable && r->persist.put && queue_name(q) &&
		 !(rec = r->persist.put(r->persist.arg, queue_name(q), m, p->confirm)))
		p->store_failed = true;
	else if (queue_enqueue_stored(q, m, rec) < 0)
		p->oom = true;
	p->blocked |= queue_full(q);
}

/* The named queue, created if allowed (or if `force`, for bindings);
 * one a client's publish or subscription creates (`who`: its
 * connection's; NULL: the broker's own doing) is audited. */
static struct queue *get_queue(struct router *r, const char *name, bool force,
			       struct acl_who *who, enum router_err *err)
{
	struct queue *q = map_get(r->queues, name);
	if (q)
		return q;
	if (!force && !may_create(r, DEST_QUEUE, name)) {
		*err = ROUTER_ENOTFOUND;
		return NULL;
	}
	q = new_queue(r, name, 0);
	if (!q || map_put(r->queues, name, q) < 0) {
		queue_free(q);
		*err = ROUTER_ENOMEM;
		return NULL;
	}
	r->stats.queues++;
	if (who && audit_on()) {
		struct audit_actor actor;
		acl_who_actor(who, &actor);
		audit_event(&(struct audit_record){ .event = "destination_created", .actor = &actor,
						    .destination = name, .kind = "queue" });
	}
	return q;
}

/* A topic exists once it has been used; auto-create rules decide whether
 * a new one may be. Wildcard subscriptions check nothing: they create no
 * topic of their own. */
static enum router_err touch_topic(struct router *r, const char *name)
{
	if (map_get(r->topics, name))
		return ROUTER_OK;
	if (!may_create(r, DEST_TOPIC, name))
		return ROUTER_ENOTFOUND;
	return map_put(r->topics, name, (void *)1) < 0 ? ROUTER_ENOMEM : ROUTER_OK;
}

enum router_err router_bind(struct router *r, const char *pattern, const char *queue)
{
	if (address_validate(pattern, true) != 0 || address_validate(queue, false) != 0)
		return ROUTER_EINVAL;
	enum router_err err = ROUTER_OK;
	struct queue *q = get_queue(r, queue, true, NULL, &err);
	if (!q)
		return err;
	if (topic_tree_find(r->tree, pattern, q))
		return ROUTER_OK; /* bound already */
	if (r->persist.bound && r->persist.bound(r->persist.arg, pattern, queue, true) < 0)
		return ROUTER_ESTORE;
	if (!topic_tree_add(r->tree, pattern, q))
		return ROUTER_ENOMEM;
	queue_set_bindings(q, queue_bindings(q) + 1);
	return ROUTER_OK;
}

enum router_err router_unbind(struct router *r, const char *pattern, const char *queue)
{
	struct queue *q = map_get(r->queues, queue);
	struct topic_binding *b = q ? topic_tree_find(r->tree, pattern, q) : NULL;
	if (!b)
		return ROUTER_ENOTFOUND;
	if (r->persist.bound && r->persist.bound(r->persist.arg, pattern, queue, false) < 0)
		return ROUTER_ESTORE;
	topic_tree_remove(r->tree, b);
	queue_set_bindings(q, queue_bindings(q) - 1);
	return ROUTER_OK;
}

enum router_err router_delete_queue(struct router *r, const char *queue)
{
	struct queue *q = map_get(r->queues, queue);
	if (!q)
		return ROUTER_ENOTFOUND;
	if (queue_consumer_count(q) || queue_bindings(q))
		return ROUTER_EINVAL;
	map_del(r->queues, queue);
	queue_purge(q);
	queue_free(q);
	r->stats.queues--;
	return ROUTER_OK;
}

bool router_has_queue(const struct router *r, const char *queue)
{
	return map_get(r->queues, queue) != NULL;
}

enum router_err router_may_publish(struct router *r, enum dest_kind kind, const char *name,
				   struct acl_who *who)
{
	enum router_err err = check_name(name, false, false);
	if (err == ROUTER_OK)
		err = acl_allows(r, who, ACL_PUBLISH, kind, name, false);
	if (err == ROUTER_OK && kind == DEST_QUEUE)
		err = acl_allows_create(r, who, name);
	if (err != ROUTER_OK)
		return err;
	if (kind == DEST_QUEUE)
		return map_get(r->queues, name) || may_create(r, DEST_QUEUE, name) ? ROUTER_OK
										    : ROUTER_ENOTFOUND;
	return map_get(r->topics, name) || may_create(r, DEST_TOPIC, name) ? ROUTER_OK
									    : ROUTER_ENOTFOUND;
}

struct fanout {
	struct router *r;
	struct publish *p;
	struct message *m;
	struct queue **seen; /* queues already given this message */
	size_t nseen, cap;
};

/* Several bindings may lead to one queue (two patterns, one bound queue);
 * each queue gets the message once. */
static void fanout_one(struct queue *q, void *arg)
{
	struct fanout *f = arg;
	for (size_t i = 0; i < f->nseen; i++)
		if (f->seen[i] == q)
			return;
	if (f->nseen == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct queue **seen = realloc(f->seen, cap * sizeof(*seen));
		if (!seen) {
			f->p->oom = true;
			return;
		}
		f->seen = seen;
		f->cap = cap;
	}
	f->seen[f->nseen++] = q;
	enqueue_msg(f->r, f->p, q, f->m);
}

enum router_err router_publish(struct router *r, enum dest_kind kind, const char *name,
			       struct message **mp, struct publish_ctx *ctx)
{
	struct message *m = *mp;
	*mp = NULL;
	struct router_confirm *c = ctx ? ctx->confirm : NULL;
	struct publish p = { .confirm = c };
	enum router_err err = check_name(name, false, ctx && ctx->broker_own);
	if (err == ROUTER_OK && ctx && !ctx->broker_own)
		err = acl_allows(r, ctx->who, ACL_PUBLISH, kind, name, false);
	if (err == ROUTER_OK && ctx && !ctx->broker_own && kind == DEST_QUEUE)
		err = acl_allows_create(r, ctx->who, name);
	if (err != ROUTER_OK)
		goto out;
	if (ctx && ctx->principal && !strcmp(ctx->principal, "anonymous"))
		message_del_prop(m, MESSAGE_USER_PROP);
	else if (ctx && ctx->principal && message_set_prop(m, MESSAGE_USER_PROP, ctx->principal) < 0) {
		err = ROUTER_ENOMEM;
		goto out;
	}
	if (message_set(&m->dest, name) < 0) {
		err = ROUTER_ENOMEM;
		goto out;
	}
	m->id = ++r->next_msg_id;
	m->timestamp_ms = clock_wall_ms();
	m->dest_kind = kind;
	if (kind == DEST_QUEUE) {
		struct queue *q = get_queue(r, name, false, ctx ? ctx->who : NULL, &err);
		if (q)
			enqueue_msg(r, &p, q, m);
	} else if ((err = touch_topic(r, name)) == ROUTER_OK) {
		if (m->retain && retain_set(r->retained, name, m) < 0) {
			err = ROUTER_ENOMEM;
			goto out;
		}
		if (m->retain && r->persist.retained &&
		    r->persist.retained(r->persist.arg, name, m->body_len ? m : NULL, c) < 0) {
			if (c)
				p.store_failed = true;
			else
				log_warn("store: cannot keep the retained message of %s", name);
		}
		r->stats.retained = retain_count(r->retained);
		struct fanout f = { .r = r, .p = &p, .m = m };
		if (topic_tree_match(r->tree, name, fanout_one, &f) < 0)
			err = ROUTER_ENOMEM;
		free(f.seen);
	}
	if (err == ROUTER_OK && p.oom)
		err = ROUTER_ENOMEM;
	if (err == ROUTER_OK && p.store_failed)
		err = ROUTER_ESTORE;
	if (err == ROUTER_OK && p.refused)
		err = ROUTER_EFULL;
	if (err == ROUTER_OK)
		r->stats.published++;
	if (r->persist.busy && r->persist.busy(r->persist.arg))
		p.blocked = true;
	if (r->mem.over && !m->durable) {
		/* Durable messages page; what does not is slowed at the source. */
		p.blocked = true;
		if (!r->mem_alarm) {
			log_warn("memory: waiting messages over broker_memory_limit (%zu MiB): every "
				 "queue pages, publishers of non-durable messages are slowed",
				 r->mem.limit >> 20);
			r->mem_alarm = true;
		}
	}
out:
	if (ctx)
		ctx->blocked = p.blocked;
	if (c && c->pending) {
		if (err == ROUTER_OK)
			err = ROUTER_PENDING;
		else
			router_confirm_cancel(r, c);
	}
	message_unref(m);
	return err;
}

enum router_err router_publish_status(struct router *r, const char *topic, const char *text,
				      const char *content_type)
{
	size_t n = strlen(text);
	struct message *m = message_new();
	uint8_t *body = malloc(n + 1);
	if (!m || !body || (content_type && message_set(&m->content_type, content_type) < 0)) {
		free(body);
		message_unref(m);
		return ROUTER_ENOMEM;
	}
	memcpy(body, text, n + 1);
	message_take_body(m, &body, n);
	m->retain = true;
	m->payload_format = 1;
	struct publish_ctx own = { .broker_own = true };
	return router_publish(r, DEST_TOPIC, topic, &m, &own);
}

enum router_err router_sync(struct router *r, struct router_confirm *c)
{
	c->pending = NULL;
	if (!r->persist.sync)
		return ROUTER_OK;
	return r->persist.sync(r->persist.arg, c) < 0 ? ROUTER_ESTORE : ROUTER_PENDING;
}

void router_confirm_cancel(struct router *r, struct router_confirm *c)
{
	if (c->pending && r->persist.cancel)
		r->persist.cancel(r->persist.arg, c);
	c->pending = NULL;
}

static void drop_dead_cb(const char *name, void *value, void *arg)
{
	(void)name;
	(void)arg;
	queue_drop_dead(value);
}

void router_drop_dead(struct router *r)
{
	map_each(r->queues, drop_dead_cb, NULL);
}

enum router_err router_restore_retained(struct router *r, const char *topic, struct message **mp)
{
	struct message *m = *mp;
	*mp = NULL;
	m->id = ++r->next_msg_id;
	enum router_err err = ROUTER_OK;
	if (map_put(r->topics, topic, (void *)1) < 0 || retain_set(r->retained, topic, m) < 0)
		err = ROUTER_ENOMEM;
	r->stats.retained = retain_count(r->retained);
	message_unref(m);
	return err;
}

enum router_err router_restore(struct router *r, const char *name, struct message **mp,
			       uint64_t rec)
{
	struct message *m = *mp;
	*mp = NULL;
	enum router_err err = ROUTER_OK;
	struct queue *q = get_queue(r, name, true, NULL, &err);
	if (q) {
		m->id = ++r->next_msg_id;
		if (queue_enqueue_stored(q, m, rec) < 0)
			err = ROUTER_ENOMEM;
	}
	message_unref(m);
	return err;
}

static void set_policy(const char *name, void *value, void *arg)
{
	apply_policy(arg, value);
}

enum router_err router_set_queue_policy(struct router *r, const char *pattern,
					const struct queue_policy *p)
{
	if (address_validate(pattern, true) != 0 ||
	    ((p->set & POLICY_DEAD_LETTER_QUEUE) &&
	     (!p->dead_letter_queue || address_validate(p->dead_letter_queue, false) != 0)))
		return ROUTER_EINVAL;
	if (policy_add(&r->policies, pattern, p) < 0)
		return ROUTER_ENOMEM;
	map_each(r->queues, set_policy, r);
	return ROUTER_OK;
}

static const char *const death_reasons[] = {
	[QUEUE_DEATH_EXPIRED] = "expired",
	[QUEUE_DEATH_REJECTED] = "rejected",
	[QUEUE_DEATH_MAX_REDELIVERIES] = "max-redeliveries",
};

/* A copy of m, saying why and from where, goes into the dead-letter queue
 * as a new message (stored anew when durable); the queue settles m after.
 * Its expiry is cleared and its timestamp is now, so the dead-letter
 * queue's own retention counts from its arrival there. */
static int dead_letter_cb(void *arg, struct queue *q, struct message *m, enum queue_death why)
{
	struct router *r = arg;
	char *name = policy_dead_letter_queue(r->policies, queue_name(q));
	struct message *copy = name ? message_copy(m) : NULL;
	enum router_err err = ROUTER_ENOMEM;
	struct queue *dlq = copy ? get_queue(r, name, true, NULL, &err) : NULL;
	int rc = -1;
	if (dlq && dlq != q && message_set(&copy->dest, name) == 0 &&
	    message_set_prop(copy, "x-death-reason", death_reasons[why]) == 0 &&
	    message_set_prop(copy, "x-original-destination", queue_name(q)) == 0) {
		copy->id = ++r->next_msg_id;
		copy->timestamp_ms = clock_wall_ms();
		copy->expiry_ms = 0;
		copy->dest_kind = DEST_QUEUE;
		/* A publish of its own, apart from any under way. */
		struct publish p = { 0 };
		enqueue_msg(r, &p, dlq, copy);
		if (!p.oom && !p.store_failed && !p.refused)
			rc = 0;
	}
	message_unref(copy);
	free(name);
	return rc;
}

struct sweep {
	struct queue **qs;
	size_t n;
};

static void collect_queue(const char *name, void *value, void *arg)
{
	struct sweep *s = arg;
	s->qs[s->n++] = value;
}

void router_expire(struct router *r)
{
	/* Collected first: dead-lettering may create a queue. */
	struct sweep s = { .qs = malloc((map_count(r->queues) + 1) * sizeof(*s.qs)) };
	if (!s.qs)
		return;
	map_each(r->queues, collect_queue, &s);
	int64_t now = clock_wall_ms();
	for (size_t i = 0; i < s.n; i++)
		queue_expire(s.qs[i], now);
	free(s.qs);
}

static void enqueue_retained(struct message *m, void *arg)
{
	queue_enqueue_retained(arg, m);
}

/* Names a private queue for the drop reports: "WHAT GROUP PATTERN". */
static int label_queue(struct queue *q, const char *what, const char *group, const char *pattern)
{
	char label[512];
	snprintf(label, sizeof(label), "%s%s %s", what, group, pattern);
	return queue_set_label(q, label);
}

/* The share group's queue for `pattern`, created with its binding on the
 * first member. */
static struct share *get_share(struct router *r, const char *group, const char *pattern)
{
	size_t glen = strlen(group), plen = strlen(pattern);
	char *key = malloc(glen + plen + 2);
	if (!key)
		return NULL;
	memcpy(key, group, glen);
	key[glen] = '\x01'; /* not a character names may hold */
	memcpy(key + glen + 1, pattern, plen + 1);
	struct share *sh = map_get(r->shares, key);
	if (sh) {
		free(key);
		return sh;
	}
	sh = calloc(1, sizeof(*sh));
	if (!sh)
		goto fail;
	sh->key = key;
	sh->q = new_queue(r, NULL, r->opts.topic_max_pending);
	if (!sh->q || !(sh->binding = topic_tree_add(r->tree, pattern, sh->q)) ||
	    label_queue(sh->q, "share group ", group, pattern) < 0)
		goto fail;
	if (map_put(r->shares, key, sh) < 0)
		goto fail;
	return sh;
fail:
	if (sh && sh->binding)
		topic_tree_remove(r->tree, sh->binding);
	if (sh)
		queue_free(sh->q);
	free(sh);
	free(key);
	return NULL;
}

static void put_share(struct router *r, struct share *sh)
{
	if (--sh->members > 0)
		return;
	map_del(r->shares, sh->key);
	topic_tree_remove(r->tree, sh->binding);
	queue_free(sh->q);
	free(sh->key);
	free(sh);
}

struct subscription *router_subscribe(struct router *r, enum dest_kind kind, const char *name,
				      const struct subscribe_options *opts,
				      const struct consumer_ops *ops, void *ctx,
				      enum router_err *err)
{
	/* Topics may be the broker's ($SYS); queues named $... are its own
	 * (durable subscriptions' and sessions' queues) and reached only
	 * through subscribe_options.durable_queue. */
	*err = check_name(name, kind == DEST_TOPIC, kind == DEST_TOPIC);
	if (*err == ROUTER_OK && kind == DEST_QUEUE && has_prefix(name, TEMP_PREFIX) && !opts->owner)
		*err = ROUTER_EFORBIDDEN;
	/* A dynamic reply queue (owner) is its maker's by construction. */
	if (*err == ROUTER_OK && !opts->owner)
		*err = acl_allows(r, opts->who, ACL_SUBSCRIBE, kind, name,
				  kind == DEST_TOPIC && address_is_pattern(name));
	if (*err == ROUTER_OK && kind == DEST_QUEUE && !opts->owner)
		*err = acl_allows_create(r, opts->who, name);
	if (*err != ROUTER_OK)
		return NULL;
	struct subscription *s = calloc(1, sizeof(*s));
	if (!s) {
		*err = ROUTER_ENOMEM;
		return NULL;
	}
	if (kind == DEST_QUEUE) {
		s->q = get_queue(r, name, false, opts->owner ? NULL : opts->who, err);
		if (!s->q)
			goto fail;
	} else {
		if (!address_is_pattern(name) && (*err = touch_topic(r, name)) != ROUTER_OK)
			goto fail;
		*err = ROUTER_ENOMEM;
		if (opts->durable_queue) {
			if ((*err = router_bind(r, name, opts->durable_queue)) != ROUTER_OK)
				goto fail;
			s->q = map_get(r->queues, opts->durable_queue);
			s->durable = true;
			queue_set_max_ready(s->q, opts->max_pending ? opts->max_pending
								    : r->opts.topic_max_pending);
		} else if (opts->share_group) {
			if (!(s->share = get_share(r, opts->share_group, name)))
				goto fail;
			s->share->members++;
			s->q = s->share->q;
		} else {
			s->q = new_queue(r, NULL, opts->max_pending ? opts->max_pending
								  : r->opts.topic_max_pending);
			if (!s->q || !(s->binding = topic_tree_add(r->tree, name, s->q)) ||
			    label_queue(s->q, "subscription", "", name) < 0)
				goto fail;
		}
	}
	s->c = queue_consumer_add(s->q, &opts->consumer, ops, ctx);
	if (!s->c) {
		*err = ROUTER_ENOMEM;
		goto fail;
	}
	/* Shared subscriptions get no retained messages, as MQTT 5 says. */
	bool own = s->binding || s->durable;
	if (own && !(s->pattern = strdup(name))) {
		queue_consumer_remove(s->c);
		*err = ROUTER_ENOMEM;
		goto fail;
	}
	if (opts->who && !opts->owner && !(s->checked = strdup(name))) {
		queue_consumer_remove(s->c);
		free(s->pattern);
		*err = ROUTER_ENOMEM;
		goto fail;
	}
	s->kind = kind;
	if (own && opts->retained)
		retain_match(r->retained, name, enqueue_retained, s->q);
	r->stats.subscriptions++;
	*err = ROUTER_OK;
	return s;
fail:
	if (s->share)
		put_share(r, s->share);
	else if (s->binding)
		topic_tree_remove(r->tree, s->binding);
	if (kind == DEST_TOPIC && !s->share && !s->durable)
		queue_free(s->q);
	free(s);
	return NULL;
}

enum router_err router_drop_durable(struct router *r, const char *pattern, const char *queue)
{
	enum router_err err = router_unbind(r, pattern, queue);
	if (err != ROUTER_OK && err != ROUTER_ENOTFOUND)
		return err;
	return router_delete_queue(r, queue);
}

void router_unsubscribe(struct router *r, struct subscription *s)
{
	queue_consumer_remove(s->c);
	if (s->share) {
		put_share(r, s->share);
	} else if (s->binding) {
		/* A private queue leaves nothing behind: no one else would ever
		 * read what its consumer returned. */
		topic_tree_remove(r->tree, s->binding);
		queue_free(s->q);
	}
	r->stats.subscriptions--;
	free(s->pattern);
	free(s->checked);
	free(s);
}

bool router_recheck(struct router *r, struct subscription *s, struct acl_who *who)
{
	return !s->checked ||
	       acl_allows(r, who, ACL_SUBSCRIBE, s->kind, s->checked,
			  s->kind == DEST_TOPIC && address_is_pattern(s->checked)) == ROUTER_OK;
}

void router_send_retained(struct router *r, struct subscription *s)
{
	if (s->pattern)
		retain_match(r->retained, s->pattern, enqueue_retained, s->q);
}

struct consumer *subscription_consumer(const struct subscription *s)
{
	return s->c;
}

void router_each_binding(const struct router *r,
			 void (*fn)(const char *pattern, struct queue *q, void *arg), void *arg)
{
	topic_tree_each(r->tree, fn, arg);
}

void router_confirmed(struct router *r, double seconds)
{
	hist_observe(&r->stats.confirm_latency, seconds);
}

const struct router_stats *router_stats(const struct router *r)
{
	return &r->stats;
}

struct queue *router_find_queue(const struct router *r, const char *name)
{
	return map_get(r->queues, name);
}

/* ---- snapshots and commands for the admin API -------------------------------- */

struct each_queue {
	void (*fn)(struct queue *q, void *arg);
	void *arg;
};

static void each_queue_cb(const char *name, void *value, void *arg)
{
	struct each_queue *eq = arg;
	(void)name;
	eq->fn(value, eq->arg);
}

void router_each_queue(const struct router *r, void (*fn)(struct queue *q, void *arg), void *arg)
{
	struct each_queue eq = { fn, arg };
	map_each(r->queues, each_queue_cb, &eq);
}

struct each_topic {
	const struct router *r;
	void (*fn)(const char *name, size_t subscribers, bool retained, void *arg);
	void *arg;
};

static void count_binding(struct queue *q, void *arg)
{
	(void)q;
	++*(size_t *)arg;
}

static void has_retained(struct message *m, void *arg)
{
	(void)m;
	*(bool *)arg = true;
}

static void each_topic_cb(const char *name, void *value, void *arg)
{
	struct each_topic *et = arg;
	size_t subscribers = 0;
	bool retained = false;
	(void)value;
	topic_tree_match(et->r->tree, name, count_binding, &subscribers);
	retain_match(et->r->retained, name, has_retained, &retained);
	et->fn(name, subscribers, retained, et->arg);
}

void router_each_topic(const struct router *r,
		       void (*fn)(const char *name, size_t subscribers, bool retained, void *arg),
		       void *arg)
{
	struct each_topic et = { r, fn, arg };
	map_each(r->topics, each_topic_cb, &et);
}

static void dispatch_cb(struct queue *q, void *arg)
{
	(void)arg;
	queue_dispatch(q);
}

void router_hold_deliveries(struct router *r, bool on)
{
	r->hold = on;
	if (!on)
		router_each_queue(r, dispatch_cb, NULL);
}

static void add_unacked(struct queue *q, void *arg)
{
	*(size_t *)arg += queue_unacked(q);
}

size_t router_unacked(const struct router *r)
{
	size_t n = 0;
	router_each_queue(r, add_unacked, &n);
	return n;
}

size_t router_topic_count(const struct router *r)
{
	return map_count(r->topics);
}

enum router_err router_create_queue(struct router *r, const char *name, bool *created)
{
	enum router_err err = check_name(name, false, false);
	if (err == ROUTER_OK && has_prefix(name, TEMP_PREFIX))
		err = ROUTER_EFORBIDDEN;
	if (err != ROUTER_OK)
		return err;
	*created = !map_get(r->queues, name);
	return get_queue(r, name, true, NULL, &err) ? ROUTER_OK : err;
}

enum router_err router_purge_queue(struct router *r, const char *name, size_t *purged)
{
	struct queue *q = map_get(r->queues, name);
	if (!q)
		return ROUTER_ENOTFOUND;
	*purged = queue_depth(q);
	queue_purge(q);
	return ROUTER_OK;
}

struct move {
	struct router *r;
	struct queue *src, *dst; /* dst NULL: each message's origin */
	enum router_err err;
	size_t skipped;
};

static const char *origin_of(const struct message *m)
{
	for (size_t i = 0; i < m->nprops; i++)
		if (!strcmp(m->props[i].name, "x-original-destination"))
			return m->props[i].value;
	return NULL;
}

/* One message of a move: a copy goes into its new queue (through the
 * store first when durable) before the source settles the original, as
 * dead-lettering does. */
static int move_one(const struct message *m, void *arg)
{
	struct move *mv = arg;
	struct queue *to = mv->dst;
	if (!to) {
		const char *origin = origin_of(m);
		to = origin && check_name(origin, false, false) == ROUTER_OK ?
			     map_get(mv->r->queues, origin) : NULL;
		if (!to || to == mv->src) {
			mv->skipped++;
			return 0;
		}
	}
	struct message *copy = message_copy(m);
	if (!copy || message_set(&copy->dest, queue_name(to)) < 0) {
		message_unref(copy);
		mv->err = ROUTER_ENOMEM;
		return -1;
	}
	if (!mv->dst) {
		/* Back where it came from, as it was before it died. */
		message_del_prop(copy, "x-death-reason");
		message_del_prop(copy, "x-original-destination");
	}
	copy->id = ++mv->r->next_msg_id;
	copy->timestamp_ms = clock_wall_ms();
	copy->dest_kind = DEST_QUEUE;
	struct publish p = { 0 };
	enqueue_msg(mv->r, &p, to, copy);
	message_unref(copy);
	if (p.refused || p.store_failed || p.oom) {
		mv->err = p.refused ? ROUTER_EFULL : p.store_failed ? ROUTER_ESTORE : ROUTER_ENOMEM;
		return -1;
	}
	return 1;
}

enum router_err router_move(struct router *r, const char *src, const char *dst, size_t limit,
			    size_t *moved, size_t *skipped)
{
	*moved = *skipped = 0;
	struct queue *from = map_get(r->queues, src);
	if (!from)
		return ROUTER_ENOTFOUND;
	struct move mv = { .r = r, .src = from, .err = ROUTER_OK };
	if (dst) {
		enum router_err err = check_name(dst, false, false);
		if (err == ROUTER_OK && has_prefix(dst, TEMP_PREFIX))
			err = ROUTER_EFORBIDDEN;
		if (err == ROUTER_OK && !strcmp(dst, src))
			err = ROUTER_EINVAL;
		if (err != ROUTER_OK)
			return err;
		if (!(mv.dst = get_queue(r, dst, false, NULL, &err)))
			return err;
	}
	*moved = queue_take(from, limit ? limit : SIZE_MAX, move_one, &mv);
	*skipped = mv.skipped;
	return mv.err;
}
