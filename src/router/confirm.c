#include "config.h"
#include "router/confirm.h"

#include <stddef.h>
#include <stdlib.h>

#include "util/hist.h"

void confirmq_init(struct confirm_queue *q, struct router *r,
		   void (*release)(void *ctx, struct confirm *e), void *ctx)
{
	q->r = r;
	q->head = NULL;
	q->tail = &q->head;
	q->n = 0;
	q->spare = NULL;
	q->release = release;
	q->ctx = ctx;
}

struct confirm *confirmq_push(struct confirm_queue *q)
{
	struct confirm *e = q->spare;
	if (e)
		q->spare = e->next;
	else if (!(e = malloc(sizeof(*e))))
		return NULL;
	*e = (struct confirm){ .q = q };
	*q->tail = e;
	q->tail = &e->next;
	q->n++;
	return e;
}

static void recycle(struct confirm_queue *q, struct confirm *e)
{
	free(e->text);
	e->text = NULL;
	e->next = q->spare;
	q->spare = e;
}

static void flush(struct confirm_queue *q)
{
	struct confirm *e;
	while ((e = q->head) && e->ready) {
		if (e->stored_us && e->err == ROUTER_OK) {
			router_confirmed(q->r, (double)(hist_now_us() - e->stored_us) / 1e6);
			e->stored_us = 0;
		}
		q->release(q->ctx, e);
		if (!e->ready)
			return; /* re-armed: it stays first (confirmq_rearm) */
		q->head = e->next;
		if (!q->head)
			q->tail = &q->head;
		q->n--;
		recycle(q, e);
	}
}

void confirmq_ready(struct confirm_queue *q, struct confirm *e, enum router_err err)
{
	/* Ready before the store answered (the adapter gave up on it): the
	 * store must not call back into a recycled entry. */
	router_confirm_cancel(q->r, &e->rc);
	e->ready = true;
	e->err = err;
	flush(q);
}

static void stored(struct router_confirm *rc, enum router_err err)
{
	struct confirm *e = (struct confirm *)((char *)rc - offsetof(struct confirm, rc));
	confirmq_ready(e->q, e, err);
}

enum router_err confirmq_publish(struct confirm_queue *q, struct confirm *e, enum dest_kind kind,
				 const char *name, struct message **m, struct publish_ctx *ctx)
{
	struct publish_ctx own = { 0 };
	if (!ctx)
		ctx = &own;
	e->rc.done = stored;
	ctx->confirm = &e->rc;
	int64_t t0 = hist_now_us();
	enum router_err err = router_publish(q->r, kind, name, m, ctx);
	e->blocked = ctx->blocked;
	if (err == ROUTER_PENDING)
		e->stored_us = t0;
	if (err != ROUTER_PENDING)
		confirmq_ready(q, e, err);
	return err;
}

void confirmq_sync(struct confirm_queue *q, struct confirm *e)
{
	e->rc.done = stored;
	enum router_err err = router_sync(q->r, &e->rc);
	if (err != ROUTER_PENDING)
		confirmq_ready(q, e, err);
}

void confirmq_await(struct confirm_queue *q, struct confirm *e)
{
	e->rc.done = stored;
	if (!e->rc.pending)
		confirmq_ready(q, e, ROUTER_OK);
}

bool confirmq_rearm(struct confirm_queue *q, struct confirm *e)
{
	(void)q;
	if (!e->rc.pending)
		return false;
	e->rc.done = stored;
	e->ready = false;
	return true;
}

void confirmq_clear(struct confirm_queue *q)
{
	struct confirm *e;
	while ((e = q->head)) {
		q->head = e->next;
		router_confirm_cancel(q->r, &e->rc);
		free(e->text);
		free(e);
	}
	q->tail = &q->head;
	q->n = 0;
	while ((e = q->spare)) {
		q->spare = e->next;
		free(e);
	}
}
