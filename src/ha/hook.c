#include "config.h"
#include "ha/hook.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "log.h"

extern char **environ;

/* Hooks running at once, at most; more are not started. */
#define HOOK_MAX 4

struct ha_hook {
	struct event *sigchld;
	pid_t pid[HOOK_MAX]; /* 0: a free slot */
	char *command[HOOK_MAX];
};

static void reap_cb(evutil_socket_t sig, short what, void *arg)
{
	struct ha_hook *h = arg;
	for (int i = 0; i < HOOK_MAX; i++) {
		int status;
		if (!h->pid[i] || waitpid(h->pid[i], &status, WNOHANG) != h->pid[i])
			continue;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			log_info("on_promote '%s' (pid %ld) exited with status 0", h->command[i],
				 (long)h->pid[i]);
		else if (WIFEXITED(status))
			log_warn("on_promote '%s' (pid %ld) exited with status %d", h->command[i],
				 (long)h->pid[i], WEXITSTATUS(status));
		else
			log_warn("on_promote '%s' (pid %ld) killed by signal %d", h->command[i],
				 (long)h->pid[i], WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		h->pid[i] = 0;
		free(h->command[i]);
		h->command[i] = NULL;
	}
}

/* The broker's environment with name=value set (replaced if present). */
static char **hook_env(const char *node_id)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 3, sizeof(*env));
	char *id = malloc(strlen("WHARF_NODE_ID=") + strlen(node_id) + 1);
	if (!env || !id) {
		free(env);
		free(id);
		return NULL;
	}
	sprintf(id, "WHARF_NODE_ID=%s", node_id);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "WHARF_NODE_ID=", 14) && strncmp(environ[i], "WHARF_ROLE=", 11))
			env[k++] = environ[i];
	env[k++] = id;
	env[k++] = "WHARF_ROLE=active";
	return env;
}

static int spawn(const char *command, const char *node_id, pid_t *pid)
{
	char **env = hook_env(node_id ? node_id : "");
	if (!env)
		return ENOMEM;
	/* The child starts with default signal handling: the broker ignores
	 * SIGPIPE, and exec keeps what is ignored. */
	posix_spawnattr_t attr;
	sigset_t none, deflt;
	sigemptyset(&none);
	sigemptyset(&deflt);
	sigaddset(&deflt, SIGPIPE);
	sigaddset(&deflt, SIGCHLD);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &deflt);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	char *argv[] = { "sh", "-c", (char *)command, NULL };
	int rc = posix_spawn(pid, "/bin/sh", NULL, &attr, argv, env);
	posix_spawnattr_destroy(&attr);
	/* env's last two are ours; the rest are environ's. */
	size_t n = 0;
	while (env[n])
		n++;
	free(env[n - 2]);
	free(env);
	return rc;
}

int ha_hook_run(struct event_base *base, struct ha_hook **hook, const char *command,
		const char *node_id)
{
	struct ha_hook *h = *hook;
	if (!h) {
		h = calloc(1, sizeof(*h));
		if (!h || !(h->sigchld = evsignal_new(base, SIGCHLD, reap_cb, h)) ||
		    evsignal_add(h->sigchld, NULL) < 0) {
			ha_hook_free(h);
			log_error("on_promote: out of memory");
			return -1;
		}
		*hook = h;
	}
	int slot = 0;
	while (slot < HOOK_MAX && h->pid[slot])
		slot++;
	if (slot == HOOK_MAX) {
		log_error("on_promote '%s' not run: %d earlier ones still run", command, HOOK_MAX);
		return -1;
	}
	if (!(h->command[slot] = strdup(command))) {
		log_error("on_promote: out of memory");
		return -1;
	}
	int rc = spawn(command, node_id, &h->pid[slot]);
	if (rc) {
		log_error("on_promote '%s': cannot start /bin/sh: %s", command, strerror(rc));
		h->pid[slot] = 0;
		free(h->command[slot]);
		h->command[slot] = NULL;
		return -1;
	}
	log_info("on_promote '%s' started (pid %ld)", command, (long)h->pid[slot]);
	return 0;
}

void ha_hook_free(struct ha_hook *h)
{
	if (!h)
		return;
	if (h->sigchld)
		event_free(h->sigchld);
	for (int i = 0; i < HOOK_MAX; i++)
		free(h->command[i]);
	free(h);
}
