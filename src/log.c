#include "config.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum log_level current_level = LOG_INFO;
static FILE *out;
static char *out_path;

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
	FILE *f = fopen(path, "a");
	if (!f)
		return -1;
	char *copy = strdup(path);
	if (!copy) {
		fclose(f);
		return -1;
	}
	log_close();
	setvbuf(f, NULL, _IOLBF, 0);
	out = f;
	out_path = copy;
	return 0;
}

int log_reopen(void)
{
	if (!out_path)
		return 0;
	FILE *f = fopen(out_path, "a");
	if (!f)
		return -1;
	setvbuf(f, NULL, _IOLBF, 0);
	fclose(out);
	out = f;
	return 0;
}

void log_close(void)
{
	if (out)
		fclose(out);
	out = NULL;
	free(out_path);
	out_path = NULL;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	FILE *f = out ? out : stderr;
	struct timeval tv;
	struct tm tm;
	char stamp[32];
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	/* One fprintf per line keeps lines whole when stderr is shared. */
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(f, "%s.%03dZ %s %s\n", stamp, (int)(tv.tv_usec / 1000), level_names[level], line);
	fflush(f);
}
