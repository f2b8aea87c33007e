#include "config.h"
#include "ha/failover.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "ha/arbiter.h"
#include "ha/ha.h"
#include "ha/ha_internal.h"
#include "log.h"

struct failover {
	struct ha *ha;
	struct arbiter *arb;
	bool named;  /* the sync key names our standby (as far as we asked) */
	bool named_ok; /* ... and etcd said so */
};

static void elected(void *arg, uint64_t epoch)
{
	struct failover *f = arg;
	if (f->ha->b->active)
		return;
	if (ha_promote(f->ha, epoch) < 0) {
		log_error("arbiter: elected, but this node could not become active; giving the lead "
			  "back");
		arbiter_resign(f->arb);
		arbiter_campaign(f->arb);
	}
}

/* The lead is gone: another node may be elected at any moment, so nothing
 * may be confirmed from here on. Starting again is the one way out that
 * leaves nothing of the active behind (connections, held confirmations,
 * queues in memory); the new process joins as a standby. */
static void lost(void *arg)
{
	struct failover *f = arg;
	if (!f->ha->b->active)
		return;
	log_error("arbiter: this node (%s) lost the lead of the pair: it stops serving now and "
		  "starts again as a standby",
		  f->ha->cfg->node_id);
	broker_restart(f->ha->b);
}

static void cleared(void *arg, bool ok)
{
	struct failover *f = arg;
	if (!ok)
		return; /* not leading any more: lost() restarts the node */
	f->named = false;
	ha_gate_release(f->ha);
}

struct failover *failover_new(struct ha *ha)
{
	struct failover *f = calloc(1, sizeof(*f));
	if (!f) {
		log_error("out of memory");
		return NULL;
	}
	f->ha = ha;
	const struct ha_config *c = ha->cfg;
	struct arbiter_cbs cbs = { .elected = elected, .lost = lost };
	if (!(f->arb = arbiter_new(ha->b->base, c->arbiter, c->pair, c->node_id, c->lease_ttl_ms,
				   &cbs, f))) {
		free(f);
		return NULL;
	}
	arbiter_campaign(f->arb);
	return f;
}

void failover_free(struct failover *f)
{
	if (!f)
		return;
	arbiter_free(f->arb);
	free(f);
}

static void named(void *arg, bool ok)
{
	struct failover *f = arg;
	f->named_ok = f->named && ok;
}

void failover_in_sync(struct failover *f, const char *standby)
{
	if (!f)
		return;
	f->named = true;
	f->named_ok = false;
	arbiter_set_sync(f->arb, standby, named, f);
}

bool failover_standby_named(const struct failover *f)
{
	return f && f->named && f->named_ok;
}

void failover_resign(struct failover *f)
{
	log_info("arbiter: this node (%s) gives up the lead of the pair (switch-over)",
		 f->ha->cfg->node_id);
	arbiter_resign(f->arb);
}

bool failover_idle(const struct failover *f)
{
	return arbiter_idle(f->arb);
}

bool failover_standby_gone(struct failover *f)
{
	if (!f || !f->named)
		return true;
	f->named_ok = false;
	if (f->ha->handover >= HANDOVER_RESIGNED)
		return false; /* resigned: nothing goes out alone; the node restarts */
	log_info("arbiter: clearing the standby in sync before confirming alone");
	arbiter_set_sync(f->arb, NULL, cleared, f);
	return false;
}
