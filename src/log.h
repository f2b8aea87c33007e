/* Logging with levels, to stderr or a file. Lines look like
 *   2026-11-28T21:10:00.123Z info listening stomp 127.0.0.1:40211
 * and scripts may rely on the message part staying as it is. A line about
 * a connection carries its id, the one /api/v1/connections shows:
 *   2026-11-28T21:10:00.123Z info conn=7 127.0.0.1:5321: closed
 * With log_format = json each line is one JSON object with time, level,
 * msg and, for a connection, conn and remote.
 * Runs on the event-loop thread only. */
#ifndef WHARF_LOG_H
#define WHARF_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Parses "error", "warn", "info", "debug"; -1 if none of them. */
int log_level_parse(const char *s);
void log_set_level(enum log_level level);
/* Parses "text" (0) or "json" (1); -1 if neither. */
int log_format_parse(const char *s);
void log_set_format(int json);
int log_enabled(enum log_level level);
/* From now on libevent's own messages go to this log, at its levels. */
void log_take_libevent(void);
/* Opens `path` for appending (NULL or "" means stderr); -1 with errno set
 * on failure, leaving the current destination in place. */
int log_open(const char *path);
/* Reopens the current log file, for log rotation on SIGHUP. */
int log_reopen(void);
void log_close(void);

/* Now as RFC 3339 UTC with milliseconds, "2026-11-28T21:10:00.123Z": the
 * time of every log (and audit) line. */
#define LOG_TIME_LEN 40
void log_time(char buf[LOG_TIME_LEN]);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A line about connection `conn` (its id) from `peer` (its address). */
void log_conn(enum log_level level, unsigned long conn, const char *peer, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                              \
	do {                                        \
		if (log_enabled(LOG_DEBUG))         \
			log_msg(LOG_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
