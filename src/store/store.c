#include "config.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "router/router.h"
#include "store/liveset.h"
#include "store/msgcodec.h"
#include "store/pageio.h"
#include "store/pager.h"
#include "store/record.h"
#include "util/buf.h"
#include "util/map.h"

#define MSG_HEAD 14u  /* supersedes, delivery count, queue length */
#define ACK_BATCH 512u

/* One key's value; the list keeps them in the order of their records, so
 * the head holds the oldest. A key's last record known durable stays live
 * until a newer one is durable too: its segment is not released before the
 * record that replaces it is on disk. */
struct kv {
	TAILQ_ENTRY(kv) link;
	uint64_t rec;      /* the newest record, maybe not written yet */
	uint64_t durable;  /* the newest record on disk, 0 if none */
	uint64_t born;     /* the first record of this entry: older ones are of
			    * a deleted namesake */
	bool rewrite;      /* rec's write failed: write the value again */
	char *key;   /* also the map's key */
	uint8_t *val;
	size_t len;
};
TAILQ_HEAD(kv_list, kv);

/* A key record the journal has not reported on yet; reports come in
 * append order, so these form a queue. */
struct kwrite {
	struct kwrite *next;
	uint64_t seq;
	struct ticket *t;  /* the confirmation waiting for it, or NULL */
	char key[];
};

#define BIND_PREFIX "bind/"
#define RETAIN_PREFIX "retain/"

/* One publish waiting for its records: the router_confirm's `pending`. */
struct ticket {
	struct store *s;
	struct router_confirm *c;  /* NULL once the publisher went away */
	unsigned waiting;
	int err;
};

struct store {
	struct journal *j;
	struct router *r;
	struct liveset live;
	struct buf scratch;
	uint64_t *acks;            /* consumed records not written yet */
	size_t nacks, ackcap;
	struct event *flush_ev;
	bool flush_scheduled;
	struct map *kv;            /* key -> struct kv */
	struct kv_list kvs;
	struct kwrite *kw_head, **kw_tail;  /* key records not reported on yet */
	size_t nrewrite;           /* keys with `rewrite` set */
	struct map *counts;        /* from replay: record number -> delivery count,
				    * until first delivered; NULL once empty */
	size_t max_pending;
	char *page_dir;            /* DIR/paging: queues' page files */
	struct pageio *pio;        /* their I/O thread; pagers hold it too */
	uint64_t next_pager;
	bool busy;
	bool closing;
	struct store_stats st;
};

/* ---- record encoding ----------------------------------------------------- */

/* A u16-length name at *p (n bytes left) as a new C string; NULL if it does
 * not fit, is empty or holds a NUL. */
static char *get16str(const uint8_t **p, size_t *n)
{
	if (*n < 2)
		return NULL;
	size_t len = (size_t)(*p)[0] | (size_t)(*p)[1] << 8;
	if (!len || len > *n - 2 || memchr(*p + 2, 0, len))
		return NULL;
	char *s = strndup((const char *)*p + 2, len);
	if (s) {
		*p += 2 + len;
		*n -= 2 + len;
	}
	return s;
}

/* ---- keys and values ------------------------------------------------------ */

static void kv_free(struct kv *e)
{
	free(e->key);
	free(e->val);
	free(e);
}

static bool is_binding(const char *key)
{
	return !strncmp(key, BIND_PREFIX, strlen(BIND_PREFIX));
}

/* A new entry for key, at the tail, with no record yet; NULL on out of
 * memory. */
static struct kv *kv_new(struct store *s, const char *key)
{
	struct kv *e = calloc(1, sizeof(*e));
	if (!e || !(e->key = strdup(key)) || map_put(s->kv, key, e) < 0) {
		if (e)
			free(e->key);
		free(e);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&s->kvs, e, link);
	s->st.keys++;
	s->st.bindings += is_binding(key);
	return e;
}

/* Record `rec` (appended last) now holds e's value: e moves to the tail. */
static void kv_moved(struct store *s, struct kv *e, uint64_t rec)
{
	if (!e->rec)
		e->born = rec;
	e->rec = rec;
	if (e->rewrite) {
		e->rewrite = false;
		s->nrewrite--;
	}
	TAILQ_REMOVE(&s->kvs, e, link);
	TAILQ_INSERT_TAIL(&s->kvs, e, link);
}

/* Replay: record `rec`, on disk, holds key = val[0..len) (copied). */
static int kv_replayed(struct store *s, const char *key, const void *val, size_t len, uint64_t rec)
{
	struct kv *e = map_get(s->kv, key);
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy || liveset_add(&s->live, rec) < 0)
		goto oom;
	if (!e && !(e = kv_new(s, key))) {
		liveset_del(&s->live, rec);
		goto oom;
	}
	if (len)
		memcpy(copy, val, len);
	if (e->rec)
		liveset_del(&s->live, e->rec);
	free(e->val);
	e->val = copy;
	e->len = len;
	kv_moved(s, e, rec);
	e->durable = rec;
	return 0;
oom:
	free(copy);
	return -1;
}

static void kv_drop(struct store *s, const char *key)
{
	struct kv *e = map_del(s->kv, key);
	if (!e)
		return;
	TAILQ_REMOVE(&s->kvs, e, link);
	liveset_del(&s->live, e->rec);
	if (e->durable)
		liveset_del(&s->live, e->durable);
	if (e->rewrite)
		s->nrewrite--;
	s->st.keys--;
	s->st.bindings -= is_binding(key);
	kv_free(e);
}

/* PUT: u16 key length, key, value; DEL: u16 key length, key. */
static int encode_kv(struct buf *b, const char *key, const void *val, size_t len)
{
	buf_reset(b);
	return buf_append_str16(b, key) < 0 || buf_append(b, val, len) < 0 ? -1 : 0;
}

static char *binding_key(const char *pattern, const char *queue)
{
	size_t pl = strlen(pattern), ql = strlen(queue), bl = strlen(BIND_PREFIX);
	char *k = malloc(bl + pl + ql + 2);
	if (!k)
		return NULL;
	memcpy(k, BIND_PREFIX, bl);
	memcpy(k + bl, pattern, pl);
	k[bl + pl] = '\x01'; /* names never hold it */
	memcpy(k + bl + pl + 1, queue, ql + 1);
	return k;
}

/* The map key for record number rec. */
static void rec_key(char *out, size_t n, uint64_t rec)
{
	snprintf(out, n, "%llu", (unsigned long long)rec);
}

/* ---- replay -------------------------------------------------------------- */

struct replay {
	struct store *s;
	enum journal_on_corruption on_corruption;
	int failed;         /* an errno value: replay cannot go on */
};

/* A message goes back to its queue as soon as its record is read, so that
 * a deep queue pages during replay as it did while it ran: replay never
 * holds the journal in memory. An ack read later makes it dead
 * (router_persist.alive), and dead ones are dropped before the broker
 * serves. */
static int replay_msg(struct replay *rp, uint64_t seq, const uint8_t *p, size_t n,
		      const char **why)
{
	if (n < MSG_HEAD) {
		*why = "short message record";
		return 1;
	}
	uint64_t supersedes = jget64(p);
	p += 12;
	n -= 12;
	char *queue = get16str(&p, &n);
	if (!queue) {
		*why = "bad queue name";
		return 1;
	}
	struct message *m = msgcodec_read(p, n, why);
	if (!m) {
		free(queue);
		return 1;
	}
	int rc = -1;
	if (liveset_add(&rp->s->live, seq) == 0) {
		rc = router_restore(rp->s->r, queue, &m, seq) == ROUTER_OK ? 0 : -1;
		if (supersedes)
			liveset_del(&rp->s->live, supersedes);
	}
	message_unref(m);
	free(queue);
	return rc;
}

static int replay_kv(struct replay *rp, uint64_t seq, bool put, const uint8_t *p, size_t n,
		     const char **why)
{
	char *key = get16str(&p, &n);
	if (!key || (!put && n)) {
		free(key);
		*why = put ? "bad key record" : "bad delete record";
		return 1;
	}
	int rc = 0;
	if (put)
		rc = kv_replayed(rp->s, key, p, n, seq);
	else
		kv_drop(rp->s, key);
	free(key);
	return rc;
}

static int replay_count(struct store *s, const uint8_t *p, size_t n, const char **why)
{
	if (n != 12) {
		*why = "bad delivery count record";
		return 1;
	}
	uint64_t rec = jget64(p);
	if (!liveset_has(&s->live, rec))
		return 0;
	char key[24];
	rec_key(key, sizeof(key), rec);
	if (!s->counts && !(s->counts = map_new()))
		return -1;
	return map_put(s->counts, key, (void *)(uintptr_t)jget32(p + 8));
}

/* 0 done, 1 a record that makes no sense (why set), -1 out of memory. */
static int replay_record(struct replay *rp, uint64_t seq, uint8_t type, const uint8_t *p, size_t n,
			 const char **why)
{
	switch (type) {
	case STORE_REC_MSG:
		return replay_msg(rp, seq, p, n, why);
	case STORE_REC_ACK:
		if (n % 8) {
			*why = "bad ack record";
			return 1;
		}
		for (size_t i = 0; i < n; i += 8)
			liveset_del(&rp->s->live, jget64(p + i));
		return 0;
	case STORE_REC_PUT:
	case STORE_REC_DEL:
		return replay_kv(rp, seq, type == STORE_REC_PUT, p, n, why);
	case STORE_REC_COUNT:
		return replay_count(rp->s, p, n, why);
	}
	*why = "unknown record type";
	return 1;
}

static int replay_cb(void *arg, uint64_t seq, uint8_t type, const uint8_t *data, size_t len)
{
	struct replay *rp = arg;
	const char *why = NULL;
	int rc = replay_record(rp, seq, type, data, len, &why);
	if (rc < 0) {
		rp->failed = ENOMEM;
		return -1;
	}
	if (rc > 0) {
		rp->s->st.bad_records++;
		log_error("store: record %llu (type %u) unreadable: %s%s", (unsigned long long)seq,
			  type, why, rp->on_corruption == JOURNAL_REFUSE ? "" : "; skipped");
		if (rp->on_corruption == JOURNAL_REFUSE) {
			rp->failed = EINVAL;
			return -1;
		}
	}
	return 0;
}

/* Hands the router the keys replay kept, and has it forget the messages
 * acknowledged after they were restored. */
static int restore(struct store *s)
{
	struct kv *k;
	TAILQ_FOREACH(k, &s->kvs, link) {
		if (is_binding(k->key)) {
			char *pattern = k->key + strlen(BIND_PREFIX);
			char *sep = strchr(pattern, '\x01');
			if (!sep)
				continue;
			*sep = '\0';
			enum router_err err = router_bind(s->r, pattern, sep + 1);
			*sep = '\x01';
			if (err == ROUTER_ENOMEM)
				return -1;
		} else if (!strncmp(k->key, RETAIN_PREFIX, strlen(RETAIN_PREFIX))) {
			const char *why;
			struct message *m = msgcodec_read(k->val, k->len, &why);
			if (!m) {
				s->st.bad_records++;
				log_error("store: retained message of %s unreadable: %s; skipped",
					  k->key + strlen(RETAIN_PREFIX), why);
				continue;
			}
			if (router_restore_retained(s->r, k->key + strlen(RETAIN_PREFIX), &m) == ROUTER_ENOMEM)
				return -1;
			s->st.retained++;
		}
	}
	router_drop_dead(s->r);
	s->st.messages = s->st.restored = s->live.live - s->st.keys;
	return 0;
}

/* ---- run time ------------------------------------------------------------ */

static void schedule_flush(struct store *s)
{
	if (!s->flush_scheduled && !s->closing) {
		s->flush_scheduled = true;
		event_active(s->flush_ev, EV_TIMEOUT, 0);
	}
}

static void check_room(struct store *s)
{
	if (s->busy && !s->closing && journal_pending_bytes(s->j) <= s->max_pending / 2) {
		s->busy = false;
		router_room(s->r);
	}
}

/* Has the journal release the segments nothing live is left in. */
static void release_dead(struct store *s)
{
	journal_release_before(s->j, liveset_low(&s->live, journal_next_seq(s->j)));
}

static void plain_done(void *arg, int err)
{
	struct store *s = arg;
	if (err)
		s->st.write_errors++;
	check_room(s);
}

static void ticket_done(void *arg, int err)
{
	struct ticket *t = arg;
	struct store *s = t->s;
	if (err) {
		t->err = err;
		s->st.write_errors++;
	}
	if (--t->waiting == 0) {
		struct router_confirm *c = t->c;
		enum router_err result = t->err ? ROUTER_ESTORE : ROUTER_OK;
		free(t);
		if (c) {
			c->pending = NULL;
			c->done(c, result);
		}
	}
	check_room(s);
}

/* The ticket c's confirmation waits on: its own already, or a new one.
 * NULL on out of memory. */
static struct ticket *ticket_of(struct store *s, struct router_confirm *c)
{
	struct ticket *t = c->pending;
	if (!t && (t = calloc(1, sizeof(*t)))) {
		t->s = s;
		t->c = c;
	}
	return t;
}

/* After the append of a record for t: t waits for it too, or, if the
 * append failed and t waits for nothing, goes. */
static void ticket_joined(struct router_confirm *c, struct ticket *t, bool appended)
{
	if (appended) {
		t->waiting++;
		c->pending = t;
	} else if (!c->pending) {
		free(t);
	}
}

/* The journal's report on the oldest key record not reported on yet. */
static void key_done(void *arg, int err)
{
	struct store *s = arg;
	struct kwrite *w = s->kw_head;
	if (!(s->kw_head = w->next))
		s->kw_tail = &s->kw_head;
	struct kv *e = map_get(s->kv, w->key);
	if (e && w->seq < e->born)
		e = NULL;
	if (err || !e) {
		liveset_del(&s->live, w->seq);
		if (err && e && e->rec == w->seq && !e->rewrite) {
			e->rewrite = true;
			s->nrewrite++;
		}
	} else {
		/* Newer than the key's last durable record (reports come in
		 * order): that one may go now, and with it maybe a segment. */
		if (e->durable) {
			liveset_del(&s->live, e->durable);
			release_dead(s);
		}
		e->durable = w->seq;
	}
	struct ticket *t = w->t;
	free(w);
	if (t)
		ticket_done(t, err);
	else
		plain_done(s, err);
}

/* Appends a PUT of key = val[0..len), reported to c (may be NULL) once
 * on disk, and tracks it as live. Sets *seq. 0, or -1 when nothing was
 * appended. */
static int key_append(struct store *s, const char *key, const void *val, size_t len,
		      struct router_confirm *c, uint64_t *seq)
{
	size_t kl = strlen(key);
	struct kwrite *w = malloc(sizeof(*w) + kl + 1);
	struct ticket *t = NULL;
	if (!w || (c && !(t = ticket_of(s, c))) || encode_kv(&s->scratch, key, val, len) < 0 ||
	    journal_append(s->j, STORE_REC_PUT, s->scratch.data, s->scratch.len, key_done, s, seq) < 0) {
		free(w);
		if (t)
			ticket_joined(c, t, false);
		return -1;
	}
	if (t)
		ticket_joined(c, t, true);
	memcpy(w->key, key, kl + 1);
	w->seq = *seq;
	w->t = t;
	w->next = NULL;
	*s->kw_tail = w;
	s->kw_tail = &w->next;
	/* Untracked, the record still holds the value until its segment goes:
	 * a later write of the key covers it. */
	if (liveset_add(&s->live, *seq) < 0)
		log_warn("store: out of memory tracking the record of %s", key);
	return 0;
}

/* Writes e's value again (at the head of the journal). */
static int key_rewrite(struct store *s, struct kv *e)
{
	uint64_t seq;
	if (key_append(s, e->key, e->val, e->len, NULL, &seq) < 0)
		return -1;
	kv_moved(s, e, seq);
	return 0;
}

/* Appends the acks gathered so far; the last record (an empty one when
 * there are none) reports to t when t is not NULL. -1 when t will not
 * hear back. */
static int write_acks(struct store *s, struct ticket *t)
{
	size_t i = 0;
	int rc = 0;
	do {
		size_t n = s->nacks - i < ACK_BATCH ? s->nacks - i : ACK_BATCH;
		uint8_t buf[ACK_BATCH * 8];
		for (size_t k = 0; k < n; k++)
			jput64(buf + 8 * k, s->acks[i + k]);
		i += n;
		bool last = i == s->nacks;
		if (!n && !t)
			break;
		if (journal_append(s->j, STORE_REC_ACK, buf, n * 8, last && t ? ticket_done : plain_done,
				   last && t ? (void *)t : (void *)s, NULL) < 0) {
			log_warn("store: cannot record %zu acks: %s", n, strerror(errno));
			rc = -1;
		} else if (last && t) {
			t->waiting++;
		}
	} while (i < s->nacks);
	s->nacks = 0;
	return t && !t->waiting ? -1 : rc;
}

static uint64_t hook_put(void *arg, const char *queue, const struct message *m,
			 struct router_confirm *c)
{
	struct store *s = arg;
	struct buf *b = &s->scratch;
	size_t qlen = strlen(queue);
	if (journal_full(s->j)) {
		/* What room is left is for the acks that free the disk. */
		s->st.write_errors++;
		return 0;
	}
	size_t len = MSG_HEAD + qlen + msgcodec_size(m);
	buf_reset(b);
	if (qlen > 0xffff || buf_reserve(b, len) < 0)
		return 0;
	uint8_t *p = (uint8_t *)b->data;
	jput64(p, 0);
	jput32(p + 8, 0);
	p[12] = (uint8_t)qlen;
	p[13] = (uint8_t)(qlen >> 8);
	memcpy(p + MSG_HEAD, queue, qlen);
	msgcodec_write(p + MSG_HEAD + qlen, m);
	struct ticket *t = NULL;
	if (c && !(t = ticket_of(s, c)))
		return 0;
	uint64_t seq = 0;
	int rc = t ? journal_append(s->j, STORE_REC_MSG, p, len, ticket_done, t, &seq)
		   : journal_append(s->j, STORE_REC_MSG, p, len, plain_done, s, &seq);
	if (t)
		ticket_joined(c, t, rc == 0);
	if (rc < 0)
		return 0;
	/* Untracked, the record would be replayed though the publish fails:
	 * a duplicate at worst, which at-least-once allows. */
	if (liveset_add(&s->live, seq) < 0)
		return 0;
	s->st.messages++;
	return seq;
}

static void hook_cancel(void *arg, struct router_confirm *c)
{
	struct ticket *t = c->pending;
	(void)arg;
	if (t)
		t->c = NULL;
}

/* The count replay found for rec, forgotten as it is handed over. */
static uint32_t take_count(struct store *s, uint64_t rec)
{
	if (!s->counts)
		return 0;
	char key[24];
	rec_key(key, sizeof(key), rec);
	uint32_t count = (uint32_t)(uintptr_t)map_del(s->counts, key);
	if (!map_count(s->counts)) {
		map_free(s->counts);
		s->counts = NULL;
	}
	return count;
}

static uint32_t hook_count_of(void *arg, uint64_t rec)
{
	return take_count(arg, rec);
}

static void hook_counted(void *arg, uint64_t rec, uint32_t count)
{
	struct store *s = arg;
	uint8_t p[12];
	jput64(p, rec);
	jput32(p + 8, count);
	/* Lost, the count starts again after a restart: what it did before. */
	if (journal_append(s->j, STORE_REC_COUNT, p, sizeof(p), plain_done, s, NULL) < 0)
		log_warn("store: cannot record a delivery count: %s", strerror(errno));
}

static void hook_settled(void *arg, uint64_t rec)
{
	struct store *s = arg;
	take_count(s, rec);
	liveset_del(&s->live, rec);
	s->st.messages--;
	if (s->nacks == s->ackcap) {
		size_t cap = s->ackcap ? s->ackcap * 2 : ACK_BATCH;
		uint64_t *a = realloc(s->acks, cap * sizeof(*a));
		if (!a) {
			/* Not written: the message comes back after a restart,
			 * which at-least-once allows. */
			log_warn("store: out of memory recording an ack");
			return;
		}
		s->acks = a;
		s->ackcap = cap;
	}
	s->acks[s->nacks++] = rec;
	schedule_flush(s);
}

int store_put_confirmed(struct store *s, const char *key, const void *val, size_t len,
			struct router_confirm *c)
{
	struct kv *e = map_get(s->kv, key);
	bool fresh = !e;
	uint8_t *copy = malloc(len ? len : 1);
	uint64_t seq;
	if (!copy || (fresh && !(e = kv_new(s, key))) || key_append(s, key, val, len, c, &seq) < 0) {
		free(copy);
		if (fresh && e)
			kv_drop(s, key);
		return -1;
	}
	if (len)
		memcpy(copy, val, len);
	free(e->val);
	e->val = copy;
	e->len = len;
	kv_moved(s, e, seq);
	return 0;
}

int store_put(struct store *s, const char *key, const void *val, size_t len)
{
	return store_put_confirmed(s, key, val, len, NULL);
}

int store_del_confirmed(struct store *s, const char *key, struct router_confirm *c)
{
	if (!map_get(s->kv, key))
		return 0;
	struct ticket *t = NULL;
	if (c && !(t = ticket_of(s, c)))
		return -1;
	int rc = encode_kv(&s->scratch, key, NULL, 0);
	if (rc == 0)
		rc = t ? journal_append(s->j, STORE_REC_DEL, s->scratch.data, s->scratch.len,
					ticket_done, t, NULL)
		       : journal_append(s->j, STORE_REC_DEL, s->scratch.data, s->scratch.len,
					plain_done, s, NULL);
	if (t)
		ticket_joined(c, t, rc == 0);
	if (rc < 0)
		return -1;
	kv_drop(s, key);
	return 0;
}

int store_del(struct store *s, const char *key)
{
	return store_del_confirmed(s, key, NULL);
}

const void *store_get(const struct store *s, const char *key, size_t *len)
{
	const struct kv *e = map_get(s->kv, key);
	if (!e)
		return NULL;
	*len = e->len;
	return e->val;
}

void store_each(const struct store *s, const char *prefix,
		void (*fn)(void *arg, const char *key, const void *val, size_t len), void *arg)
{
	size_t pl = strlen(prefix);
	/* A key put again moves to the tail: stop at the tail of now, so that
	 * none is seen twice. */
	struct kv *e, *next, *last = TAILQ_LAST(&s->kvs, kv_list);
	for (e = TAILQ_FIRST(&s->kvs); e; e = next) {
		bool final = e == last;
		next = TAILQ_NEXT(e, link);
		if (!strncmp(e->key, prefix, pl))
			fn(arg, e->key, e->val, e->len);
		if (final)
			break;
	}
}

static int hook_bound(void *arg, const char *pattern, const char *queue, bool bind)
{
	struct store *s = arg;
	char *key = binding_key(pattern, queue);
	if (!key)
		return -1;
	int rc = bind ? store_put(s, key, NULL, 0) : store_del(s, key);
	free(key);
	return rc;
}

static int hook_retained(void *arg, const char *topic, const struct message *m,
			 struct router_confirm *c)
{
	struct store *s = arg;
	size_t tl = strlen(topic), pl = strlen(RETAIN_PREFIX);
	char *key = malloc(pl + tl + 1);
	if (!key)
		return -1;
	memcpy(key, RETAIN_PREFIX, pl);
	memcpy(key + pl, topic, tl + 1);
	int rc;
	if (!m) {
		rc = store_del_confirmed(s, key, c);
	} else {
		size_t len = msgcodec_size(m);
		uint8_t *val = malloc(len);
		rc = -1;
		if (val) {
			msgcodec_write(val, m);
			rc = store_put_confirmed(s, key, val, len, c);
			free(val);
		}
	}
	free(key);
	return rc;
}

static int hook_sync(void *arg, struct router_confirm *c)
{
	struct store *s = arg;
	struct ticket *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	t->s = s;
	t->c = c;
	if (write_acks(s, t) < 0 && !t->waiting) {
		free(t);
		return -1;
	}
	c->pending = t;
	return 0;
}

static int page_put(void *p, const struct message *m, uint64_t rec)
{
	return pager_put(p, m, rec);
}

static struct message *page_get(void *p, uint64_t *rec)
{
	struct message *m = pager_get(p, rec);
	int err = errno;
	if (!m && err && err != EAGAIN)
		log_error("paging: cannot read back a queue's page file: %s; its messages come back "
			  "at the next start",
			  strerror(err));
	errno = err; /* the queue tells EAGAIN (wait) from damage by it */
	return m;
}

static void page_set_ready(void *p, void (*ready)(void *arg), void *arg)
{
	pager_set_ready_cb(p, ready, arg);
}

static void page_purge(void *p, void (*each)(void *arg, uint64_t rec), void *arg)
{
	pager_purge(p, each, arg);
}

static void page_free(void *p)
{
	pager_free(p);
}

static const struct queue_page_ops page_ops = { page_put, page_get, page_set_ready, page_purge, page_free };

static void *hook_pager_new(void *arg, const char *queue)
{
	struct store *s = arg;
	char name[32];
	(void)queue;
	snprintf(name, sizeof(name), "q%llu", (unsigned long long)++s->next_pager);
	return pager_new(s->pio, s->page_dir, name);
}

/* Page files are a cache of the journal: those of an earlier run go. */
static int open_page_dir(struct store *s, const char *dir)
{
	size_t n = strlen(dir) + sizeof("/paging");
	if (!(s->page_dir = malloc(n)))
		return -1;
	snprintf(s->page_dir, n, "%s/paging", dir);
	if ((mkdir(dir, 0750) < 0 && errno != EEXIST) || (mkdir(s->page_dir, 0750) < 0 && errno != EEXIST))
		return -1;
	DIR *d = opendir(s->page_dir);
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len > 5 && !strcmp(e->d_name + len - 5, ".page"))
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
	return 0;
}

static bool hook_alive(void *arg, uint64_t rec)
{
	struct store *s = arg;
	return liveset_has(&s->live, rec);
}

static bool hook_busy(void *arg)
{
	struct store *s = arg;
	if (!s->busy && journal_pending_bytes(s->j) > s->max_pending)
		s->busy = true;
	return s->busy;
}


/* A key whose record sits in a segment older than the newest is written
 * again, so that long-lived keys never keep old segments on disk; so is a
 * key whose last write failed. */
static void refresh_keys(struct store *s)
{
	uint64_t next = journal_next_seq(s->j);
	uint64_t newest = journal_segment_of(s->j, next - 1);
	struct kv *e, *following, *last = TAILQ_LAST(&s->kvs, kv_list);
	/* Each key at most once (rec < next): the writer thread may start a
	 * segment meanwhile, and the copies would then never look newest. */
	while ((e = TAILQ_FIRST(&s->kvs)) && e->rec < next && e->rec == e->durable &&
	       e->rec == liveset_low(&s->live, next) && journal_segment_of(s->j, e->rec) != newest) {
		if (key_rewrite(s, e) < 0)
			return;
	}
	for (e = TAILQ_FIRST(&s->kvs); s->nrewrite && e; e = following) {
		bool final = e == last;
		following = TAILQ_NEXT(e, link);
		if (e->rewrite && key_rewrite(s, e) < 0)
			return;
		if (final)
			break;
	}
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct store *s = arg;
	(void)fd;
	(void)what;
	s->flush_scheduled = false;
	write_acks(s, NULL);
	refresh_keys(s);
	release_dead(s);
}

/* ---- open and close ------------------------------------------------------ */

static void store_free(struct store *s)
{
	if (s->flush_ev)
		event_free(s->flush_ev);
	struct kv *e;
	while ((e = TAILQ_FIRST(&s->kvs))) {
		TAILQ_REMOVE(&s->kvs, e, link);
		kv_free(e);
	}
	struct kwrite *w;
	while ((w = s->kw_head)) {
		s->kw_head = w->next;
		free(w);
	}
	map_free(s->kv);
	map_free(s->counts);
	liveset_free(&s->live);
	buf_free(&s->scratch);
	free(s->page_dir);
	pageio_free(s->pio); /* after journal_close: its callbacks may page in */
	free(s->acks);
	free(s);
}

int store_open(struct event_base *base, const struct store_options *o, struct router *r,
	       struct store **out, char *err, size_t errlen)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s || !(s->flush_ev = event_new(base, -1, 0, flush_cb, s)) || !(s->kv = map_new())) {
		snprintf(err, errlen, "out of memory");
		if (s && s->flush_ev)
			event_free(s->flush_ev);
		free(s);
		return -1;
	}
	TAILQ_INIT(&s->kvs);
	s->kw_tail = &s->kw_head;
	s->r = r;
	s->max_pending = o->max_pending ? o->max_pending : STORE_DEFAULT_MAX_PENDING;
	struct journal_options jo = {
		.dir = o->dir,
		.segment_size = o->segment_size,
		.sync = o->sync,
		.batch_delay_us = o->batch_delay_us,
		.on_corruption = o->on_corruption,
	};
	/* Replay restores messages into queues that page: pagers (and the
	 * liveness of what is restored) first, the rest once replay is done. */
	struct router_persist p = {
		.alive = hook_alive,
		.pager_new = hook_pager_new,
		.page_ops = &page_ops,
		.arg = s,
	};
	if (open_page_dir(s, o->dir) < 0 || !(s->pio = pageio_new(base))) {
		log_warn("store: %s/paging: %s; queues will not page", o->dir, strerror(errno));
		p.pager_new = NULL;
	}
	router_set_persist(r, &p);
	struct replay rp = { .s = s, .on_corruption = o->on_corruption };
	if (journal_open(base, &jo, replay_cb, &rp, &s->j, err, errlen) < 0) {
		if (rp.failed == ENOMEM)
			snprintf(err, errlen, "out of memory replaying the journal");
		else if (rp.failed)
			snprintf(err, errlen, "unreadable record in the journal (on_corruption = refuse)");
		router_set_persist(r, NULL);
		store_free(s);
		return -1;
	}
	if (restore(s) < 0) {
		snprintf(err, errlen, "out of memory restoring the journal");
		router_set_persist(r, NULL);
		journal_close(s->j);
		store_free(s);
		return -1;
	}
	if (s->st.restored || s->st.keys)
		log_info("store: %llu messages, %llu retained messages and %llu bindings restored",
			 (unsigned long long)s->st.restored, (unsigned long long)s->st.retained,
			 (unsigned long long)s->st.bindings);
	p.put = hook_put;
	p.settled = hook_settled;
	p.cancel = hook_cancel;
	p.bound = hook_bound;
	p.retained = hook_retained;
	p.sync = hook_sync;
	p.counted = hook_counted;
	p.count_of = hook_count_of;
	p.busy = hook_busy;
	router_set_persist(r, &p);
	flush_cb(-1, 0, s); /* release what replay found dead */
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	router_set_persist(s->r, NULL);
	write_acks(s, NULL);
	s->closing = true; /* no flush, no room calls from journal_close's callbacks */
	journal_close(s->j);
	store_free(s);
}

void store_stats(const struct store *s, struct store_stats *out)
{
	*out = s->st;
}

struct journal *store_journal(const struct store *s)
{
	return s->j;
}
