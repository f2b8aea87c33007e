#include "config.h"

#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/acl.h"
#include "auth/users.h"
#include "broker.h"
#include "conf.h"
#include "log.h"
#include "net/listener.h"
#include "privs.h"

static void usage(FILE *f)
{
	char schemes[256];
	listener_schemes_text(schemes, sizeof(schemes));
	fprintf(f,
		"Usage: wharfd [-c FILE] [--data-dir DIR] [--listen URL]... [--log-level LEVEL]\n"
		"              [--tls-cert FILE --tls-key FILE [--tls-ca FILE]]\n"
		"              [--check-config] [--version] [--help]\n"
		"\n"
		"  -c, --config FILE   read FILE (see conf/wharf.conf and docs/configuration.md)\n"
		"  --data-dir DIR      keep the broker's data in DIR (default: ./data)\n"
		"  --listen URL        listen on SCHEME://HOST:PORT, SCHEME one of\n"
		"                      %s;\n"
		"                      port 0 picks a free port. Repeatable; replaces the\n"
		"                      file's listeners.\n"
		"  --tls-cert FILE     certificate chain (PEM) for TLS listeners\n"
		"  --tls-key FILE      private key (PEM) for TLS listeners\n"
		"  --tls-ca FILE       CA bundle (PEM) to verify client certificates\n"
		"  --log-level LEVEL   error, warn, info or debug\n"
		"  --check-config      validate the configuration and exit\n"
		"  --version           print the version and exit\n"
		"\n"
		"Each bound listener is logged as: listening SCHEME HOST:PORT\n",
		schemes);
}

enum { OPT_DATA_DIR = 256, OPT_LISTEN, OPT_CHECK, OPT_VERSION, OPT_LOG_LEVEL, OPT_TLS_CERT,
       OPT_TLS_KEY, OPT_TLS_CA };

/* Replaces *slot with a copy of value; -1 on out of memory. */
static int set_opt(char **slot, const char *value)
{
	if (!value)
		return 0;
	char *copy = strdup(value);
	if (!copy)
		return -1;
	free(*slot);
	*slot = copy;
	return 0;
}

/* Once the ports are bound and the files open: a broker that cannot
 * become its user must not serve anyone as root. */
static int become_user(const struct wharf_config *cfg)
{
	char err[512];
	if (!cfg->user) {
		if (geteuid() == 0)
			log_warn("running as root: set user = NAME to run as NAME once the ports are bound (docs/security.md, Process)");
		return 0;
	}
	if (privs_drop(cfg->user, cfg->group, err, sizeof(err)) < 0) {
		log_error("%s; stopping", err);
		return -1;
	}
	log_info("running as user %s (uid %u, gid %u)", cfg->user, (unsigned)getuid(),
		 (unsigned)getgid());
	return 0;
}

int main(int argc, char **argv)
{
	/* The journal, page files, lock, log: the broker's alone, whatever
	 * the shell or unit's umask. */
	umask(077);
	/* glibc raises its mmap threshold after big buffers are freed, and then
	 * serves the journal's batch buffers from the heap, which cannot shrink
	 * around the small allocations made meanwhile: RSS only grows. A fixed
	 * threshold keeps big buffers in mappings that go back when freed. */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "data-dir", required_argument, NULL, OPT_DATA_DIR },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
		{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
		{ "tls-ca", required_argument, NULL, OPT_TLS_CA },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL, *data_dir = NULL, *log_level = NULL;
	const char *tls_cert = NULL, *tls_key = NULL, *tls_ca = NULL;
	const char **listen = calloc((size_t)argc, sizeof(*listen));
	size_t nlisten = 0;
	bool check = false;
	int opt, rc = 1;
	struct wharf_config *cfg = NULL;

	if (!listen)
		return 1;
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case OPT_DATA_DIR: data_dir = optarg; break;
		case OPT_LISTEN: listen[nlisten++] = optarg; break;
		case OPT_LOG_LEVEL: log_level = optarg; break;
		case OPT_TLS_CERT: tls_cert = optarg; break;
		case OPT_TLS_KEY: tls_key = optarg; break;
		case OPT_TLS_CA: tls_ca = optarg; break;
		case OPT_CHECK: check = true; break;
		case OPT_VERSION:
			printf("wharfd %s\n", PACKAGE_VERSION);
			rc = 0;
			goto out;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default:
			usage(stderr);
			rc = 2;
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "wharfd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		rc = 2;
		goto out;
	}

	cfg = config_new();
	if (!cfg)
		goto out;
	char err[512];
	if (config_path && config_load(cfg, config_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "wharfd: %s\n", err);
		goto out;
	}
	if (set_opt(&cfg->data_dir, data_dir) < 0 || set_opt(&cfg->tls.cert, tls_cert) < 0 ||
	    set_opt(&cfg->tls.key, tls_key) < 0 || set_opt(&cfg->tls.ca, tls_ca) < 0)
		goto out;
	if (nlisten) {
		config_clear_listeners(cfg);
		for (size_t i = 0; i < nlisten; i++) {
			char name[32];
			snprintf(name, sizeof(name), "cli%zu", i + 1);
			if (config_add_listener(cfg, name, listen[i]) < 0)
				goto out;
		}
	}
	if (log_level) {
		int level = log_level_parse(log_level);
		if (level < 0) {
			fprintf(stderr, "wharfd: --log-level: '%s' is not one of error, warn, info, debug\n",
				log_level);
			goto out;
		}
		cfg->log_level = level;
	}
	for (const struct listener_config *l = cfg->listeners; l; l = l->next) {
		const char *why;
		if (listener_url_check(l->url, &why) < 0) {
			fprintf(stderr, "wharfd: listener %s: bad url '%s': %s\n", l->name, l->url, why);
			goto out;
		}
	}
	if (check && cfg->auth.users_file) {
		char uerr[512];
		struct users *u = users_load(cfg->auth.users_file, uerr, sizeof(uerr));
		if (!u) {
			fprintf(stderr, "wharfd: %s\n", uerr);
			goto out;
		}
		users_free(u);
	}
	if (check && cfg->auth.acl_file) {
		char aerr[512];
		struct acl *a = acl_load(cfg->auth.acl_file, aerr, sizeof(aerr));
		if (!a) {
			fprintf(stderr, "wharfd: %s\n", aerr);
			goto out;
		}
		acl_free(a);
	}
	if (cfg->user) {
		uid_t uid;
		gid_t gid;
		if (privs_lookup(cfg->user, cfg->group, &uid, &gid, err, sizeof(err)) < 0) {
			fprintf(stderr, "wharfd: %s\n", err);
			goto out;
		}
	}
	if (check) {
		printf("%s: configuration ok\n", config_path ? config_path : "(defaults)");
		rc = 0;
		goto out;
	}
	log_set_level(cfg->log_level);
	log_set_format(cfg->log_format);
	if (cfg->log_file && log_open(cfg->log_file) < 0) {
		fprintf(stderr, "wharfd: cannot open log file %s\n", cfg->log_file);
		goto out;
	}
	log_take_libevent();

	/* The data directory is the user's from the start, as is what the
	 * broker makes in it; only binding needs root. */
	if (privs_assume(cfg->user, cfg->group, err, sizeof(err)) < 0) {
		log_error("%s", err);
		log_close();
		goto out;
	}
	struct broker b;
	int init = broker_init(&b, cfg);
	cfg = NULL; /* the broker owns it now */
	if (privs_resume_root(err, sizeof(err)) < 0) {
		log_error("%s", err);
		init = -1;
	}
	b.argv = argv;
	if (init == 0 && broker_listen(&b) == 0 && become_user(b.cfg) == 0 && broker_run(&b) == 0) {
		log_info("stopped");
		rc = 0;
	}
	broker_free(&b);
	log_close();
out:
	config_free(cfg);
	free(listen);
	return rc;
}
