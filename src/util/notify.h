/* systemd's readiness protocol (sd_notify(3)) without libsystemd: one
 * datagram of "KEY=VALUE" lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET, which systemd sets for a Type=notify service. A path
 * starting with '@' is in the abstract namespace. */
#ifndef WHARF_UTIL_NOTIFY_H
#define WHARF_UTIL_NOTIFY_H

/* Sends `state` (e.g. "READY=1") to $NOTIFY_SOCKET. 0 when sent or when
 * the variable is unset or empty (not under systemd: nothing to tell),
 * -1 with errno set when the socket cannot be reached. */
int notify_send(const char *state);

/* "RELOADING=1" with the MONOTONIC_USEC= systemd wants beside it. */
int notify_reloading(void);

#endif
