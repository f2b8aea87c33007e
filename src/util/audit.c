#include "config.h"
#include "util/audit.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util/logfile.h"

/* Bytes of one field at most: a client's user name or destination may be
 * as long as its protocol lets it be. */
#define FIELD_MAX 256

static struct logfile file;

int audit_open(const char *path)
{
	/* 0600: the audit log names who connected from where, for the
	 * broker's owner only. */
	return logfile_open(&file, path, 0600);
}

int audit_reopen(void)
{
	return logfile_reopen(&file);
}

void audit_close(void)
{
	logfile_close(&file);
}

bool audit_on(void)
{
	return file.f != NULL;
}

/* s as a JSON string: cut at FIELD_MAX bytes, and when that is not UTF-8
 * (a client's bytes, or a cut inside a character) every byte above 0x7f
 * becomes '?'. */
static json_t *text(const char *s)
{
	size_t len = strnlen(s, FIELD_MAX);
	json_t *j = json_stringn(s, len);
	if (j)
		return j;
	char buf[FIELD_MAX];
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)s[i] > 0x7f ? '?' : s[i];
	return json_stringn(buf, len);
}

static void put(json_t *o, const char *key, const char *value)
{
	if (value)
		json_object_set_new(o, key, text(value));
}

void audit_event(const struct audit_record *r)
{
	if (!file.f) {
		json_decref(r->detail);
		return;
	}
	char when[LOG_TIME_LEN];
	log_time(when);
	json_t *o = json_object();
	put(o, "time", when);
	put(o, "event", r->event);
	const struct audit_actor *a = r->actor;
	if (a) {
		put(o, "principal", a->principal);
		put(o, "mechanism", a->mechanism);
		put(o, "protocol", a->protocol);
		put(o, "listener", a->listener);
		put(o, "remote", a->remote);
		put(o, "client_id", a->client_id);
		if (a->conn)
			json_object_set_new(o, "conn", json_integer((json_int_t)a->conn));
	}
	put(o, "destination", r->destination);
	put(o, "kind", r->kind);
	put(o, "action", r->action);
	put(o, "reason", r->reason);
	if (o && r->detail)
		json_object_update(o, r->detail);
	json_decref(r->detail);
	char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!line) {
		log_error("audit: out of memory: a %s line is lost", r->event);
		return;
	}
	fprintf(file.f, "%s\n", line);
	fflush(file.f);
	free(line);
}
