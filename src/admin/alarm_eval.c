/* The alarm state machine and the names it is configured with. */
#include "config.h"
#include "admin/alarm_eval.h"

#include <stdlib.h>
#include <string.h>

#include "router/address.h"
#include "util/utf8.h"

static const struct alarm_metric_info metrics[] = {
	[METRIC_QUEUE_MESSAGES] = { "wharf_queue_messages", true, false },
	[METRIC_QUEUE_UNACKED] = { "wharf_queue_unacked_messages", true, false },
	[METRIC_QUEUE_CONSUMERS] = { "wharf_queue_consumers", true, false },
	[METRIC_QUEUE_AGE] = { "wharf_queue_oldest_message_age_seconds", true, false },
	[METRIC_CONNECTIONS] = { "wharf_connections", false, false },
	[METRIC_STORE_MESSAGES] = { "wharf_store_messages", false, false },
	[METRIC_DROPPED] = { "wharf_messages_dropped_total", false, true },
	[METRIC_RSS] = { "process_resident_memory_bytes", false, false },
};
#define NMETRICS (sizeof(metrics) / sizeof(metrics[0]))

const struct alarm_metric_info *alarm_metric_info(enum alarm_metric_id id)
{
	return &metrics[id];
}

int alarm_metric_parse(const char *text, struct alarm_rule *r, const char **why)
{
	size_t len = strcspn(text, "{");
	size_t id = 0;
	while (id < NMETRICS && (strlen(metrics[id].name) != len ||
				 strncmp(metrics[id].name, text, len)))
		id++;
	if (id == NMETRICS) {
		*why = "not a metric alarms watch (docs/operations.md, Alarms)";
		return -1;
	}
	const char *label = text + len;
	if (!metrics[id].per_queue) {
		*why = "this metric takes no labels";
		if (*label)
			return -1;
		r->metric = (enum alarm_metric_id)id;
		return 0;
	}
	static const char prefix[] = "{queue=\"";
	size_t plen = sizeof(prefix) - 1, tlen = strlen(label);
	*why = "this metric needs {queue=\"NAME\"}";
	if (tlen < plen + 2 || strncmp(label, prefix, plen) || strcmp(label + tlen - 2, "\"}"))
		return -1;
	char *queue = strndup(label + plen, tlen - plen - 2);
	if (!queue) {
		*why = "out of memory";
		return -1;
	}
	/* UTF-8 too: the name goes into JSON (the API, $SYS messages). */
	if (address_validate(queue, false) != 0 || !utf8_valid(queue, strlen(queue))) {
		free(queue);
		*why = "the queue label is not a valid queue name";
		return -1;
	}
	free(r->queue);
	r->queue = queue;
	r->metric = (enum alarm_metric_id)id;
	return 0;
}

static const char *const cmp_names[] = { ">", ">=", "<", "<=" };

int alarm_cmp_parse(const char *text, enum alarm_cmp *cmp)
{
	for (int i = 0; i < 4; i++) {
		if (!strcmp(text, cmp_names[i])) {
			*cmp = (enum alarm_cmp)i;
			return 0;
		}
	}
	return -1;
}

const char *alarm_cmp_name(enum alarm_cmp cmp)
{
	return cmp_names[cmp];
}

const char *const alarm_missing_names[] = { "missing", "breaching", "not_breaching", "ignore",
					    NULL };

const char *alarm_state_name(enum alarm_state s)
{
	static const char *const names[] = { "OK", "ALARM", "INSUFFICIENT_DATA" };
	return names[s];
}

void alarm_eval_init(struct alarm_eval *e)
{
	e->state = ALARM_INSUFFICIENT_DATA;
	e->breaching = 0;
	e->has_total = false;
	e->total = 0;
}

bool alarm_counter_sample(struct alarm_eval *e, bool has, double total, double *v)
{
	bool had = e->has_total;
	*v = total - e->total;
	e->has_total = has;
	e->total = total;
	return has && had;
}

bool alarm_breaches(const struct alarm_rule *r, double value)
{
	switch (r->cmp) {
	case ALARM_GT:
		return value > r->threshold;
	case ALARM_GE:
		return value >= r->threshold;
	case ALARM_LT:
		return value < r->threshold;
	default:
		return value <= r->threshold;
	}
}

enum alarm_state alarm_eval_step(const struct alarm_rule *r, struct alarm_eval *e, bool has,
				 double value)
{
	bool breaching;
	if (has) {
		breaching = alarm_breaches(r, value);
	} else if (r->missing == MISSING_INSUFFICIENT) {
		e->breaching = 0;
		return e->state = ALARM_INSUFFICIENT_DATA;
	} else if (r->missing == MISSING_IGNORE) {
		return e->state;
	} else {
		breaching = r->missing == MISSING_BREACHING;
	}
	if (!breaching)
		e->breaching = 0;
	else if (e->breaching < r->evaluation_periods)
		e->breaching++;
	/* A value that breaches for fewer periods than asked is not yet an
	 * alarm: OK, as CloudWatch says until the evaluation range fills. */
	return e->state = e->breaching >= r->evaluation_periods ? ALARM_ALARM : ALARM_OK;
}
