#include "config.h"
#include "log.h"
#include "util/logfile.h"
#include "util/utf8.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum log_level current_level = LOG_INFO;
static struct logfile file;
static bool json_format;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_level_parse(const char *s)
{
	for (int i = 0; i <= LOG_DEBUG; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

void log_set_level(enum log_level level)
{
	current_level = level;
}

int log_format_parse(const char *s)
{
	if (strcmp(s, "text") == 0)
		return 0;
	if (strcmp(s, "json") == 0)
		return 1;
	return -1;
}

void log_set_format(int json)
{
	json_format = json;
}

int log_enabled(enum log_level level)
{
	return level <= current_level;
}

int log_open(const char *path)
{
	if (!path || !*path) {
		log_close();
		return 0;
	}
	return logfile_open(&file, path, 0666);
}

int log_reopen(void)
{
	return logfile_reopen(&file);
}

void log_close(void)
{
	logfile_close(&file);
}

/* Appends `s` to buf (of `size`, holding `len` bytes), as a JSON string
 * when `json`, else as text; returns the new length. A message may quote
 * a client's bytes: control bytes are escaped (\u00XX in JSON, \xXX in
 * text) so that no one writes a line of their own or a terminal sequence
 * into the log, and when the message is not UTF-8 every byte above 0x7e
 * is escaped too, so a JSON line stays JSON. */
static size_t put_escaped(char *buf, size_t size, size_t len, const char *s, bool json)
{
	unsigned char top = utf8_valid(s, strlen(s)) ? 0xff : 0x7e;
	if (json)
		buf[len++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p && len + 8 < size; p++) {
		if (json && (*p == '"' || *p == '\\'))
			len += (size_t)snprintf(buf + len, size - len, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f || *p > top)
			len += (size_t)snprintf(buf + len, size - len, json ? "\\u%04x" : "\\x%02x", *p);
		else
			buf[len++] = (char)*p;
	}
	if (json)
		buf[len++] = '"';
	buf[len] = 0;
	return len;
}

void log_time(char buf[LOG_TIME_LEN])
{
	struct timeval tv;
	struct tm tm;
	char stamp[32];
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, LOG_TIME_LEN, "%s.%03dZ", stamp, (int)(tv.tv_usec / 1000));
}

/* Writes one line; `conn` 0 means the line is about no connection. One
 * fprintf per line keeps lines whole when stderr is shared. */
static void emit(enum log_level level, unsigned long conn, const char *peer, const char *msg)
{
	FILE *f = file.f ? file.f : stderr;
	char when[LOG_TIME_LEN];
	log_time(when);
	/* Six bytes at most for each byte of a message, and room to spare. */
	char line[6 * 2048 + 256];
	size_t len;
	if (!json_format) {
		len = (size_t)snprintf(line, sizeof(line), "%s %s ", when, level_names[level]);
		if (conn) {
			len += (size_t)snprintf(line + len, sizeof(line) - len, "conn=%lu ", conn);
			len = put_escaped(line, sizeof(line) - 64, len, peer, false);
			len += (size_t)snprintf(line + len, sizeof(line) - len, ": ");
		}
		put_escaped(line, sizeof(line), len, msg, false);
		fprintf(f, "%s\n", line);
		fflush(f);
		return;
	}
	len = (size_t)snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":",
			       when, level_names[level]);
	len = put_escaped(line, sizeof(line) - 64, len, msg, true);
	if (conn) {
		len += (size_t)snprintf(line + len, sizeof(line) - len, ",\"conn\":%lu,\"remote\":", conn);
		len = put_escaped(line, sizeof(line) - 8, len, peer, true);
	}
	fprintf(f, "%s}\n", line);
	fflush(f);
}

static void vlog(enum log_level level, unsigned long conn, const char *peer, const char *fmt,
		 va_list ap)
{
	char line[2048];
	vsnprintf(line, sizeof(line), fmt, ap);
	emit(level, conn, peer ? peer : "-", line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(level, 0, NULL, fmt, ap);
	va_end(ap);
}

void log_conn(enum log_level level, unsigned long conn, const char *peer, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(level, conn, peer, fmt, ap);
	va_end(ap);
}

/* libevent writes its own messages (its resolver's "Nameserver ... has
 * failed", evhttp's) raw to stderr unless given a callback: then they miss
 * the log file and break a JSON log's lines. */
static void libevent_cb(int severity, const char *msg)
{
	enum log_level level = severity >= EVENT_LOG_ERR ? LOG_ERROR
			       : severity == EVENT_LOG_WARN ? LOG_WARN
			       : severity == EVENT_LOG_MSG ? LOG_INFO : LOG_DEBUG;
	log_msg(level, "libevent: %s", msg);
}

void log_take_libevent(void)
{
	event_set_log_callback(libevent_cb);
}
