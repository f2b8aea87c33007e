/* An alarm's rules and its state machine, CloudWatch-style: a metric read
 * once per period, compared with a threshold; N consecutive breaching
 * periods make ALARM. Pure functions, no broker: the config parser checks
 * with them and tests/unit/test_alarm_eval.c drives them. */
#ifndef WHARF_ADMIN_ALARM_EVAL_H
#define WHARF_ADMIN_ALARM_EVAL_H

#include <stdbool.h>
#include <stddef.h>

/* Also the values of wharf_alarm_state in /metrics. */
enum alarm_state { ALARM_OK, ALARM_ALARM, ALARM_INSUFFICIENT_DATA };
enum alarm_cmp { ALARM_GT, ALARM_GE, ALARM_LT, ALARM_LE };
/* What a period without a value counts as (treat_missing). */
enum alarm_missing { MISSING_INSUFFICIENT, MISSING_BREACHING, MISSING_NOT_BREACHING,
		     MISSING_IGNORE };

/* What an alarm watches: one family of /metrics, as named there. */
enum alarm_metric_id {
	METRIC_QUEUE_MESSAGES,
	METRIC_QUEUE_UNACKED,
	METRIC_QUEUE_CONSUMERS,
	METRIC_QUEUE_AGE,
	METRIC_CONNECTIONS,
	METRIC_STORE_MESSAGES,
	METRIC_DROPPED,
	METRIC_RSS,
};

struct alarm_metric_info {
	const char *name;     /* the /metrics family */
	bool per_queue;       /* needs {queue="NAME"} */
	bool counter;         /* an alarm sees its increase over each period */
};
const struct alarm_metric_info *alarm_metric_info(enum alarm_metric_id id);

struct alarm_rule {
	enum alarm_metric_id metric;
	char *queue;                 /* per-queue metrics' label; owned */
	enum alarm_cmp cmp;
	double threshold;
	unsigned evaluation_periods; /* consecutive breaching periods for ALARM */
	enum alarm_missing missing;
};

/* Parses `family` or `family{queue="NAME"}` into r->metric and r->queue
 * (malloc'd, the caller's to free). -1 with *why (static text) when it is
 * not one of the families above or its label is wrong. */
int alarm_metric_parse(const char *text, struct alarm_rule *r, const char **why);
/* ">", ">=", "<", "<=" into *cmp; -1 otherwise. */
int alarm_cmp_parse(const char *text, enum alarm_cmp *cmp);
const char *alarm_cmp_name(enum alarm_cmp cmp);
/* treat_missing's values by enum alarm_missing, then NULL. */
extern const char *const alarm_missing_names[];
/* "OK", "ALARM", "INSUFFICIENT_DATA". */
const char *alarm_state_name(enum alarm_state s);

/* Where an alarm stands between periods. Start with alarm_eval_init. */
struct alarm_eval {
	enum alarm_state state;
	unsigned breaching; /* consecutive breaching periods up to now */
	bool has_total;     /* counters: the total read at the last period */
	double total;
};
void alarm_eval_init(struct alarm_eval *e);
/* Whether `value` breaches the rule's threshold. */
bool alarm_breaches(const struct alarm_rule *r, double value);
/* A counter's total read at the end of a period (has false: none) into
 * the period's sample, what it added since the last period: false when
 * there is none (no total now or then, so the first period has none). */
bool alarm_counter_sample(struct alarm_eval *e, bool has, double total, double *v);
/* One period's sample in (has false: no value, the metric has no series),
 * the alarm's state after it out. */
enum alarm_state alarm_eval_step(const struct alarm_rule *r, struct alarm_eval *e, bool has,
				 double value);

#endif
