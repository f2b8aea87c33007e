/* wharfctl user add|passwd|del|list: edits the users file line by line,
 * keeping its comments, and checks the result with users_parse before it
 * replaces the file. */
#include "config.h"
#include "tools/wharfctl/user.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "auth/users.h"
#include "conf.h"

#define MAX_PASSWORD 1024

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wharfctl user add NAME [--groups a,b] [--cost N]\n"
		"       wharfctl user passwd NAME [--cost N]\n"
		"       wharfctl user del NAME\n"
		"       wharfctl user list\n"
		"  with --users-file PATH, or --config wharf.conf (its [auth] users_file).\n"
		"  The password is read from stdin, or asked for without echo on a terminal.\n"
		"  --cost: log2 of scrypt's N, %d to %d (default %d).\n",
		10, USERS_MAX_LOG2N, USERS_DEFAULT_LOG2N);
}

/* The whole file, or "" when it does not exist; NULL (reported) on error. */
static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return strdup("");
		fprintf(stderr, "wharfctl: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	char chunk[4096];
	size_t n;
	while (mem && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, mem);
	bool bad = ferror(f) || !mem;
	fclose(f);
	if (mem)
		fclose(mem);
	if (bad || strlen(text) != len) {
		fprintf(stderr, "wharfctl: %s: cannot read it as text\n", path);
		free(text);
		return NULL;
	}
	return text;
}

/* Replaces path with text: a temporary file beside it, mode 0600 and the
 * old file's owner, synced, renamed over it, and the directory synced. */
static int write_atomic(const char *path, const char *text)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 16), *dircopy = strdup(path);
	int fd = -1, rc = -1;
	if (!tmp || !dircopy)
		goto out;
	snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
	if ((fd = mkstemp(tmp)) < 0) {
		fprintf(stderr, "wharfctl: %s: %s\n", tmp, strerror(errno));
		goto out;
	}
	size_t len = strlen(text), off = 0;
	if (fchmod(fd, 0600) < 0)
		goto fail;
	/* root editing the file of a broker that runs as its own user: the
	 * new file stays that user's, or the broker's next reload could not
	 * read it. */
	struct stat old;
	if (geteuid() == 0 && stat(path, &old) == 0 && fchown(fd, old.st_uid, old.st_gid) < 0)
		goto fail;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		off += (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "wharfctl: cannot write %s: %s\n", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out:
	free(tmp);
	free(dircopy);
	return rc;
}

/* One line of input without its newline, echo off on a terminal. */
static int read_line(const char *prompt, char *buf, size_t cap)
{
	bool tty = isatty(STDIN_FILENO);
	struct termios old, quiet;
	if (tty) {
		fprintf(stderr, "%s", prompt);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
		} else {
			tty = false;
		}
	}
	char *got = fgets(buf, (int)cap, stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	if (!got)
		return -1;
	size_t n = strlen(buf);
	if (n == cap - 1 && buf[n - 1] != '\n')
		return -1; /* too long */
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return 0;
}

static int read_password(char *buf, size_t cap)
{
	if (read_line("Password: ", buf, cap) < 0) {
		fprintf(stderr, "wharfctl: no password given (one line on stdin, at most %d bytes)\n",
			MAX_PASSWORD - 2);
		return -1;
	}
	if (!*buf) {
		fprintf(stderr, "wharfctl: the password is empty\n");
		return -1;
	}
	if (isatty(STDIN_FILENO)) {
		char again[MAX_PASSWORD];
		int rc = read_line("Again: ", again, sizeof(again));
		bool same = rc == 0 && !strcmp(buf, again);
		memset(again, 0, sizeof(again));
		if (!same) {
			fprintf(stderr, "wharfctl: the passwords differ\n");
			return -1;
		}
	}
	return 0;
}

/* The name a line gives a user ("" for comments and blank lines). */
static void line_name(const char *line, size_t len, char *name, size_t cap)
{
	while (len && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	const char *colon = memchr(line, ':', len);
	size_t n = colon ? (size_t)(colon - line) : 0;
	if (!len || *line == '#' || n >= cap)
		n = 0;
	memcpy(name, line, n);
	name[n] = '\0';
}

/* text with user `name`'s line replaced by `repl` (NULL: removed), or
 * repl appended when there is none (append). *found says whether there
 * was one. NULL on out of memory. */
static char *edit_text(const char *text, const char *name, const char *repl, bool *found)
{
	size_t cap = strlen(text) + (repl ? strlen(repl) : 0) + 2;
	char *out = malloc(cap), lname[256];
	if (!out)
		return NULL;
	size_t len = 0;
	*found = false;
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		line_name(p, n, lname, sizeof(lname));
		if (!strcmp(lname, name)) {
			*found = true;
			if (repl)
				len += (size_t)sprintf(out + len, "%s\n", repl);
		} else {
			memcpy(out + len, p, n);
			len += n;
			out[len++] = '\n';
		}
		p += n + (nl ? 1 : 0);
	}
	if (!*found && repl)
		len += (size_t)sprintf(out + len, "%s\n", repl);
	out[len] = '\0';
	return out;
}

/* The groups of name's line ("" if none) into buf. */
static void line_groups(const char *text, const char *name, char *buf, size_t cap)
{
	char lname[256];
	buf[0] = '\0';
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		line_name(p, n, lname, sizeof(lname));
		if (*lname && (!name || !strcmp(lname, name))) {
			/* NAME:HASH[:GROUPS]: the hash holds no ':' (PHC's '$'). */
			const char *g = memchr(p, ':', n);
			g = g ? memchr(g + 1, ':', n - (size_t)(g + 1 - p)) : NULL;
			size_t gl = g ? n - (size_t)(g + 1 - p) : 0;
			snprintf(buf, cap, "%.*s", (int)gl, g ? g + 1 : "");
			if (name)
				return;
			printf("%s%s%s\n", lname, *buf ? "\t" : "", buf);
		}
		p += n + (nl ? 1 : 0);
	}
}

int wharfctl_user(int argc, char **argv)
{
	const char *file = NULL, *config = NULL, *groups = NULL, *args[3] = { 0 };
	unsigned cost = USERS_DEFAULT_LOG2N;
	int nargs = 0, rc = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--users-file") && v) {
			file = v;
			i++;
		} else if (!strcmp(a, "--config") && v) {
			config = v;
			i++;
		} else if (!strcmp(a, "--groups") && v) {
			groups = v;
			i++;
		} else if (!strcmp(a, "--cost") && v) {
			char *end;
			unsigned long n = strtoul(v, &end, 10);
			if (*end || n < 10 || n > USERS_MAX_LOG2N) {
				fprintf(stderr, "wharfctl: --cost: '%s' is not from 10 to %d\n", v,
					USERS_MAX_LOG2N);
				return 2;
			}
			cost = (unsigned)n;
			i++;
		} else if (a[0] == '-' || nargs == 2) {
			usage(stderr);
			return 2;
		} else {
			args[nargs++] = a;
		}
	}
	const char *cmd = args[0], *name = args[1];
	bool needs_name = cmd && strcmp(cmd, "list");
	if (!cmd || (needs_name != (name != NULL)) ||
	    (strcmp(cmd, "add") && strcmp(cmd, "passwd") && strcmp(cmd, "del") && strcmp(cmd, "list"))) {
		usage(stderr);
		return 2;
	}
	struct wharf_config *cfg = NULL;
	if (!file && config) {
		char err[512];
		cfg = config_new();
		if (!cfg || config_load(cfg, config, err, sizeof(err)) < 0) {
			fprintf(stderr, "wharfctl: %s\n", cfg ? err : "out of memory");
			goto out;
		}
		file = cfg->auth.users_file;
		if (!file) {
			fprintf(stderr, "wharfctl: %s has no [auth] users_file\n", config);
			goto out;
		}
	}
	if (!file) {
		fprintf(stderr, "wharfctl: give --users-file PATH or --config FILE\n");
		rc = 2;
		goto out;
	}
	if (name && !users_name_valid(name)) {
		fprintf(stderr, "wharfctl: '%s' cannot be a user name (1 to 128 printable characters, no ':', '#' or space)\n",
			name);
		goto out;
	}
	rc = 1;
	char *text = read_text(file), *edited = NULL, *hash = NULL, *line = NULL;
	char err[512], old_groups[1024], password[MAX_PASSWORD];
	if (!text)
		goto out;
	struct users *u = users_parse(file, text, err, sizeof(err));
	if (!u) {
		fprintf(stderr, "wharfctl: %s\n", err);
		goto done;
	}
	bool exists = name && users_exists(u, name);
	users_free(u);
	if (!strcmp(cmd, "list")) {
		line_groups(text, NULL, old_groups, sizeof(old_groups));
		rc = 0;
		goto done;
	}
	if (!strcmp(cmd, "add") && exists) {
		fprintf(stderr, "wharfctl: user '%s' exists (wharfctl user passwd to change the password)\n", name);
		goto done;
	}
	if (strcmp(cmd, "add") && !exists) {
		fprintf(stderr, "wharfctl: no user '%s' in %s\n", name, file);
		goto done;
	}
	bool found;
	if (!strcmp(cmd, "del")) {
		edited = edit_text(text, name, NULL, &found);
	} else {
		if (read_password(password, sizeof(password)) < 0)
			goto done;
		hash = users_hash(password, strlen(password), cost);
		memset(password, 0, sizeof(password));
		if (!hash) {
			fprintf(stderr, "wharfctl: cannot hash the password\n");
			goto done;
		}
		if (!strcmp(cmd, "passwd"))
			line_groups(text, name, old_groups, sizeof(old_groups));
		const char *g = !strcmp(cmd, "add") ? groups : old_groups;
		size_t n = strlen(name) + strlen(hash) + (g ? strlen(g) : 0) + 3;
		if ((line = malloc(n)))
			snprintf(line, n, "%s:%s%s%s", name, hash, g && *g ? ":" : "", g && *g ? g : "");
		edited = line ? edit_text(text, name, line, &found) : NULL;
	}
	if (!edited) {
		fprintf(stderr, "wharfctl: out of memory\n");
		goto done;
	}
	/* What is written must load: a mistake here would lock everyone out
	 * at the next SIGHUP or start. */
	if (!(u = users_parse(file, edited, err, sizeof(err)))) {
		fprintf(stderr, "wharfctl: %s\n", err);
		goto done;
	}
	users_free(u);
	if (write_atomic(file, edited) == 0) {
		rc = 0;
		fprintf(stderr, "wharfctl: user '%s' %s in %s (SIGHUP wharfd to apply)\n", name,
			!strcmp(cmd, "add") ? "added" : !strcmp(cmd, "del") ? "deleted" : "changed", file);
	}
done:
	free(text);
	free(edited);
	free(hash);
	free(line);
out:
	config_free(cfg);
	return rc;
}
