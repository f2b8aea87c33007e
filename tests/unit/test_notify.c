/* notify_send (src/util/notify.h) as systemd receives it: a datagram on a
 * socket of the test's own, named by NOTIFY_SOCKET as a path and in the
 * abstract namespace. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tap.h"
#include "util/notify.h"

/* A datagram socket bound to `name` ('@': abstract); -1 on failure. */
static int listen_at(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	if (bind(fd, (struct sockaddr *)&sa, salen) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The next datagram on fd, or "" when none is waiting. */
static const char *received(int fd)
{
	static char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

int main(void)
{
	unsetenv("NOTIFY_SOCKET");
	ok(notify_send("READY=1") == 0, "without NOTIFY_SOCKET there is no one to tell: 0");
	setenv("NOTIFY_SOCKET", "", 1);
	ok(notify_send("READY=1") == 0, "an empty NOTIFY_SOCKET is unset");

	char dir[] = "/tmp/wharf-notify-XXXXXX";
	ok(mkdtemp(dir) != NULL, "a directory for the socket");
	char path[sizeof(dir) + 16];
	snprintf(path, sizeof(path), "%s/notify", dir);
	int fd = listen_at(path);
	ok(fd >= 0, "a socket at %s", path);
	setenv("NOTIFY_SOCKET", path, 1);
	ok(notify_send("READY=1\nSTATUS=active") == 0, "sent to a path");
	is_str(received(fd), "READY=1\nSTATUS=active", "the datagram holds the state as given");
	ok(notify_reloading() == 0, "RELOADING sent");
	const char *r = received(fd);
	ok(strncmp(r, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0 && strtoull(r + 27, NULL, 10) > 0,
	   "RELOADING=1 with a MONOTONIC_USEC");
	close(fd);
	unlink(path);
	errno = 0;
	ok(notify_send("READY=1") == -1 && errno == ENOENT, "no socket at the path: -1, ENOENT");
	rmdir(dir);

	char abstract[64];
	snprintf(abstract, sizeof(abstract), "@wharf-notify-test-%ld", (long)getpid());
	fd = listen_at(abstract);
	ok(fd >= 0, "an abstract socket %s", abstract);
	setenv("NOTIFY_SOCKET", abstract, 1);
	ok(notify_send("STOPPING=1") == 0, "sent to an abstract name");
	is_str(received(fd), "STOPPING=1", "received there");
	close(fd);

	setenv("NOTIFY_SOCKET", "relative/notify", 1);
	errno = 0;
	ok(notify_send("READY=1") == -1 && errno == EINVAL, "a relative path is refused: EINVAL");
	return tap_done();
}
