/* The [alarm NAME] sections at run time (docs/operations.md, Alarms): each
 * reads its metric from the same sources /metrics does on a timer of the
 * broker's loop, steps its state machine (admin/alarm_eval.h), and on
 * every change logs a line and publishes the state, retained, on the topic
 * $SYS.alarms.NAME (MQTT $SYS/alarms/NAME). The admin API and /metrics
 * show them. Event-loop thread only. */
#ifndef WHARF_ADMIN_ALARMS_H
#define WHARF_ADMIN_ALARMS_H

#include "admin/alarm_eval.h"

struct broker;
struct alarms;
struct json_t;

/* Starts b->cfg's alarms (none is fine) on an active node: each publishes
 * INSUFFICIENT_DATA at once, replacing what an earlier run left retained.
 * Borrows b and its config, which must outlive it. NULL on out of memory.
 * Free with alarms_free(). */
struct alarms *alarms_new(struct broker *b);
/* Stops the timers and frees al. NULL is fine. */
void alarms_free(struct alarms *al);
/* Calls fn for each alarm, in the config file's order. */
void alarms_each(const struct alarms *al,
		 void (*fn)(const char *name, enum alarm_state state, void *arg), void *arg);
/* The alarm `name` as a JSON object, or every alarm as an array (name
 * NULL): a new reference; NULL when there is no such alarm or out of
 * memory (*found says which). */
struct json_t *alarms_json(const struct alarms *al, const char *name, bool *found);

#endif
