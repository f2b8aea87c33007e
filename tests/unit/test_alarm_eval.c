/* The alarm state machine (src/admin/alarm_eval.h): samples in, state out. */
#include "config.h"
#include "admin/alarm_eval.h"

#include <stdlib.h>

#include "tap.h"
#include "util/utf8.h"

/* Feeds n samples (NaN: a period without a value) and returns the states. */
static void run(const struct alarm_rule *r, const double *v, size_t n, enum alarm_state *out)
{
	struct alarm_eval e;
	alarm_eval_init(&e);
	for (size_t i = 0; i < n; i++)
		out[i] = alarm_eval_step(r, &e, v[i] == v[i], v[i]);
}

#define NONE (0.0 / 0.0)
#define O ALARM_OK
#define A ALARM_ALARM
#define I ALARM_INSUFFICIENT_DATA

static bool same(const enum alarm_state *got, const enum alarm_state *want, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (got[i] != want[i]) {
			printf("#   period %zu: got %s, want %s\n", i, alarm_state_name(got[i]),
			       alarm_state_name(want[i]));
			return false;
		}
	return true;
}

static void test_consecutive(void)
{
	struct alarm_rule r = { .cmp = ALARM_GT, .threshold = 1000, .evaluation_periods = 3 };
	double v[] = { 5, 1200, 1300, 1400, 1500, 900, 1200, 1200, NONE, 1200, 1200, 1200 };
	enum alarm_state want[] = { O, O, O, A, A, O, O, O, I, O, O, A };
	enum alarm_state got[12];
	run(&r, v, 12, got);
	ok(same(got, want, 12), "> 1000 for 3 periods: ALARM on the third, OK at once below, "
				"a gap starts the count again");
}

static void test_starts_insufficient(void)
{
	struct alarm_eval e;
	alarm_eval_init(&e);
	ok(e.state == I, "a new alarm is INSUFFICIENT_DATA");
	struct alarm_rule r = { .cmp = ALARM_LT, .threshold = 1, .evaluation_periods = 1 };
	ok(alarm_eval_step(&r, &e, true, 0) == A, "< 1 with one period: 0 is ALARM at once");
	ok(alarm_eval_step(&r, &e, true, 1) == O, "1 is not < 1: OK");
}

static void test_comparisons(void)
{
	struct alarm_rule r = { .threshold = 10, .evaluation_periods = 1 };
	r.cmp = ALARM_GE;
	ok(alarm_breaches(&r, 10) && !alarm_breaches(&r, 9.5), ">= includes the threshold");
	r.cmp = ALARM_GT;
	ok(!alarm_breaches(&r, 10) && alarm_breaches(&r, 10.5), "> excludes it");
	r.cmp = ALARM_LE;
	ok(alarm_breaches(&r, 10) && !alarm_breaches(&r, 11), "<= includes it");
	r.cmp = ALARM_LT;
	ok(!alarm_breaches(&r, 10) && alarm_breaches(&r, -1), "< excludes it");
}

static void test_missing(void)
{
	struct alarm_rule r = { .cmp = ALARM_GT, .threshold = 0, .evaluation_periods = 2 };
	double v[] = { 1, NONE, 1, NONE };
	enum alarm_state got[4];

	r.missing = MISSING_BREACHING;
	run(&r, v, 4, got);
	ok(same(got, (enum alarm_state[]){ O, A, A, A }, 4), "treat_missing = breaching");

	r.missing = MISSING_NOT_BREACHING;
	run(&r, v, 4, got);
	ok(same(got, (enum alarm_state[]){ O, O, O, O }, 4), "treat_missing = not_breaching");

	r.missing = MISSING_IGNORE;
	double w[] = { NONE, 1, NONE, 1 };
	run(&r, w, 4, got);
	ok(same(got, (enum alarm_state[]){ I, O, O, A }, 4),
	   "treat_missing = ignore: the state and the count stay across a gap");

	r.missing = MISSING_INSUFFICIENT;
	run(&r, w, 4, got);
	ok(same(got, (enum alarm_state[]){ I, O, I, O }, 4),
	   "treat_missing = missing: INSUFFICIENT_DATA, the count starts again");
}

static void test_long_alarm(void)
{
	struct alarm_rule r = { .cmp = ALARM_GT, .threshold = 0, .evaluation_periods = 2 };
	struct alarm_eval e;
	alarm_eval_init(&e);
	for (int i = 0; i < 100000; i++)
		alarm_eval_step(&r, &e, true, 1);
	ok(e.state == A && e.breaching == 2, "a long alarm's count stays at evaluation_periods");
	ok(alarm_eval_step(&r, &e, true, 0) == O, "and one good period ends it");
}

static void test_counter(void)
{
	struct alarm_rule r = { .cmp = ALARM_GT, .threshold = 0, .evaluation_periods = 1 };
	struct alarm_eval e;
	alarm_eval_init(&e);
	double v, totals[] = { 100, 100, 103, 103 };
	enum alarm_state want[] = { I, O, A, O }, got[4];
	for (int i = 0; i < 4; i++) {
		bool has = alarm_counter_sample(&e, true, totals[i], &v);
		ok(has == (i > 0) && (!has || v == totals[i] - totals[i - 1]),
		   "period %d: the counter's increase, none for the first", i);
		got[i] = alarm_eval_step(&r, &e, has, v);
	}
	ok(same(got, want, 4), "drops > 0: ALARM in the period that dropped, OK after");
	ok(!alarm_counter_sample(&e, false, 0, &v) && !alarm_counter_sample(&e, true, 5, &v),
	   "a period without the counter: no sample then, nor the next");
	ok(alarm_counter_sample(&e, true, 7, &v) && v == 2, "then the increase again");
}

static void test_metric_names(void)
{
	struct alarm_rule r = { 0 };
	const char *why;
	ok(alarm_metric_parse("wharf_queue_messages{queue=\"orders\"}", &r, &why) == 0 &&
		   r.metric == METRIC_QUEUE_MESSAGES && r.queue && !strcmp(r.queue, "orders"),
	   "a queue's depth, by its /metrics name and label");
	ok(alarm_metric_parse("wharf_connections", &r, &why) == 0 &&
		   r.metric == METRIC_CONNECTIONS,
	   "connections, without a label");
	ok(alarm_metric_parse("wharf_queue_messages", &r, &why) < 0 && strstr(why, "queue="),
	   "a queue metric without its queue: refused (%s)", why);
	ok(alarm_metric_parse("wharf_connections{queue=\"x\"}", &r, &why) < 0,
	   "a label where none is taken: refused (%s)", why);
	ok(alarm_metric_parse("wharf_queue_depth{queue=\"x\"}", &r, &why) < 0,
	   "an unknown name: refused (%s)", why);
	ok(alarm_metric_parse("wharf_queue_consumers{queue=\"a.*\"}", &r, &why) < 0,
	   "a wildcard queue: refused (%s)", why);
	ok(alarm_metric_parse("wharf_queue_consumers{queue=\"x\"", &r, &why) < 0,
	   "an unclosed label: refused");
	free(r.queue);
	enum alarm_cmp c;
	ok(alarm_cmp_parse(">=", &c) == 0 && c == ALARM_GE && alarm_cmp_parse("=>", &c) < 0,
	   "comparisons");
	ok(alarm_metric_info(METRIC_DROPPED)->counter && !alarm_metric_info(METRIC_RSS)->counter,
	   "drops are a counter, RSS a gauge");
}

/* A reason (or a wharfctl cell) that snprintf cut is cut again between
 * characters (util/utf8.h). */
static void test_cut_text(void)
{
	const char *t = "ab\xc3\xa9\xe2\x82\xac";
	ok(utf8_whole(t, 7) == 7, "whole text: kept");
	ok(utf8_whole(t, 6) == 4, "cut inside a 3-byte character: before it");
	ok(utf8_whole(t, 5) == 4, "cut after its first byte: before it");
	ok(utf8_whole(t, 4) == 4 && utf8_whole(t, 3) == 2, "2-byte character: whole, or dropped");
	ok(utf8_whole(t, 0) == 0 && utf8_whole("\xf0\x9f\x98", 3) == 0,
	   "nothing left, or the one partial character dropped");
}

int main(void)
{
	test_consecutive();
	test_starts_insufficient();
	test_comparisons();
	test_missing();
	test_long_alarm();
	test_counter();
	test_metric_names();
	test_cut_text();
	return tap_done();
}
