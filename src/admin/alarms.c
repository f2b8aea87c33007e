/* Alarms at run time: a timer per alarm, its samples and its state
 * changes (admin/alarms.h). */
#include "config.h"
#include "admin/alarms.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/internal.h"
#include "broker.h"
#include "log.h"
#include "router/router.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/utf8.h"

struct alarm {
	struct alarms *all;
	const struct alarm_config *cfg; /* borrowed from the broker's config */
	struct alarm_eval eval;
	enum alarm_state previous;      /* before the last change */
	bool changed;                   /* since the start: previous is one */
	bool has_value;                 /* the last period had a value */
	double value;
	char reason[1024];
	int64_t changed_ms;             /* wall time of the last change */
	struct event *timer;
};

struct alarms {
	struct broker *b;
	struct alarm *a;
	size_t n;
};

/* The metric's value now; false when it has no series (no such queue, no
 * store). */
static bool read_metric(struct broker *b, const struct alarm_rule *r, double *v)
{
	const struct router_stats *rs;
	uint64_t u;
	switch (r->metric) {
	case METRIC_CONNECTIONS:
		*v = (double)b->nconns;
		return true;
	case METRIC_STORE_MESSAGES:
		if (!b->store)
			return false;
		struct store_stats ss;
		store_stats(b->store, &ss);
		*v = (double)ss.messages;
		return true;
	case METRIC_DROPPED:
		rs = router_stats(b->router);
		*v = 0;
		for (int why = 0; why < DROP_NCAUSES; why++)
			*v += (double)rs->dropped[why];
		return true;
	case METRIC_RSS:
		if (admin_rss_bytes(&u) < 0)
			return false;
		*v = (double)u;
		return true;
	default: {
		struct queue *q = router_find_queue(b->router, r->queue);
		return q && admin_queue_sample(alarm_metric_info(r->metric)->name, q,
					       clock_wall_ms(), v) == 0;
	}
	}
}

/* Whole numbers as JSON integers: a depth of 1200, not 1200.0. */
static json_t *number_json(double v)
{
	if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(json_int_t)v)
		return json_integer((json_int_t)v);
	return json_real(v);
}

static json_t *value_json(const struct alarm *a)
{
	return a->has_value ? number_json(a->value) : json_null();
}

static json_t *previous_json(const struct alarm *a)
{
	return a->changed ? json_string(alarm_state_name(a->previous)) : json_null();
}

/* What $SYS.alarms.NAME carries. */
static void publish(struct alarm *a)
{
	const struct alarm_config *c = a->cfg;
	json_t *j = json_pack("{s:s,s:s,s:o,s:o,s:o,s:s,s:o}", "name", c->name, "state",
			      alarm_state_name(a->eval.state), "previous", previous_json(a),
			      "value", value_json(a), "threshold", number_json(c->rule.threshold),
			      "reason", a->reason, "time", admin_iso_time(a->changed_ms));
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	char topic[96];
	snprintf(topic, sizeof(topic), "$SYS.alarms.%s", c->name);
	enum router_err err = text ? router_publish_status(a->all->b->router, topic, text,
							   "application/json")
				   : ROUTER_ENOMEM;
	if (err != ROUTER_OK)
		log_warn("alarm %s: cannot publish on %s: %s", c->name, topic,
			 router_strerror(err));
	free(text);
	json_decref(j);
}

static void set_reason(struct alarm *a)
{
	const struct alarm_rule *r = &a->cfg->rule;
	const char *metric = a->cfg->metric;
	double s = a->cfg->period_ms / 1000.0;
	unsigned n = r->evaluation_periods;
	const char *periods = n == 1 ? "period" : "consecutive periods";
	if (!a->has_value)
		snprintf(a->reason, sizeof(a->reason), "no data for %s in the last period of %gs",
			 metric, s);
	else
		snprintf(a->reason, sizeof(a->reason), "%s = %g, %s%s %g for %u %s of %gs", metric,
			 a->value, a->eval.state == ALARM_ALARM ? "" : "not ",
			 alarm_cmp_name(r->cmp), r->threshold, n, periods, s);
	/* A very long queue name is cut, but not inside a character: the
	 * text goes into JSON. */
	a->reason[utf8_whole(a->reason, strlen(a->reason))] = '\0';
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	struct alarm *a = arg;
	const struct alarm_rule *r = &a->cfg->rule;
	double v;
	bool has = read_metric(a->all->b, r, &v);
	if (alarm_metric_info(r->metric)->counter)
		has = alarm_counter_sample(&a->eval, has, v, &v);
	a->has_value = has;
	a->value = has ? v : 0;
	enum alarm_state before = a->eval.state;
	alarm_eval_step(r, &a->eval, has, v);
	set_reason(a);
	if (a->eval.state == before)
		return;
	a->previous = before;
	a->changed = true;
	a->changed_ms = clock_wall_ms();
	log_info("alarm %s: %s -> %s: %s", a->cfg->name, alarm_state_name(before),
		 alarm_state_name(a->eval.state), a->reason);
	publish(a);
}

struct alarms *alarms_new(struct broker *b)
{
	struct alarms *al = calloc(1, sizeof(*al));
	size_t n = 0;
	for (const struct alarm_config *c = b->cfg->alarms; c; c = c->next)
		n++;
	if (!al || !(al->a = calloc(n ? n : 1, sizeof(*al->a)))) {
		free(al);
		return NULL;
	}
	al->b = b;
	const struct alarm_config *c = b->cfg->alarms;
	for (; c; c = c->next, al->n++) {
		struct alarm *a = &al->a[al->n];
		a->all = al;
		a->cfg = c;
		alarm_eval_init(&a->eval);
		a->previous = a->eval.state;
		a->changed_ms = clock_wall_ms();
		snprintf(a->reason, sizeof(a->reason), "started: no period evaluated yet");
		struct timeval tv = { c->period_ms / 1000, c->period_ms % 1000 * 1000 };
		if (!(a->timer = event_new(b->base, -1, EV_PERSIST, tick, a)) ||
		    event_add(a->timer, &tv) < 0) {
			al->n++;
			alarms_free(al);
			return NULL;
		}
		publish(a);
	}
	return al;
}

void alarms_free(struct alarms *al)
{
	if (!al)
		return;
	for (size_t i = 0; i < al->n; i++)
		if (al->a[i].timer)
			event_free(al->a[i].timer);
	free(al->a);
	free(al);
}

void alarms_each(const struct alarms *al,
		 void (*fn)(const char *name, enum alarm_state state, void *arg), void *arg)
{
	for (size_t i = 0; i < al->n; i++)
		fn(al->a[i].cfg->name, al->a[i].eval.state, arg);
}

static json_t *alarm_json(const struct alarm *a)
{
	const struct alarm_config *c = a->cfg;
	return json_pack("{s:s,s:s,s:o,s:o,s:s,s:o,s:s,s:o,s:I,s:s,s:I,s:s,s:o}", "name", c->name,
			 "state", alarm_state_name(a->eval.state), "previous", previous_json(a),
			 "value", value_json(a), "comparison", alarm_cmp_name(c->rule.cmp),
			 "threshold", number_json(c->rule.threshold), "metric",
			 c->metric, "period_seconds", number_json(c->period_ms / 1000.0),
			 "evaluation_periods", (json_int_t)c->rule.evaluation_periods,
			 "treat_missing", alarm_missing_names[c->rule.missing], "breaching_periods",
			 (json_int_t)a->eval.breaching, "reason", a->reason, "since",
			 admin_iso_time(a->changed_ms));
}

json_t *alarms_json(const struct alarms *al, const char *name, bool *found)
{
	*found = true;
	if (name) {
		for (size_t i = 0; i < al->n; i++) {
			if (!strcmp(al->a[i].cfg->name, name))
				return alarm_json(&al->a[i]);
		}
		*found = false;
		return NULL;
	}
	json_t *list = json_array();
	for (size_t i = 0; list && i < al->n; i++) {
		json_t *j = alarm_json(&al->a[i]);
		if (!j || json_array_append_new(list, j) < 0) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}
