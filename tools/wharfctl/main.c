/* wharfctl: the operator's tool. Subcommands: user (tools/wharfctl/user.h);
 * the pair's status, promote, failover and link-drop (tools/wharfctl/pair.h);
 * the admin API's broker, queues, ... (tools/wharfctl/admin.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "tools/wharfctl/admin.h"
#include "tools/wharfctl/pair.h"
#include "tools/wharfctl/user.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: wharfctl user add|passwd|del|list ... (wharfctl user --help)\n"
		   "       wharfctl --peer repl://HOST:PORT [--secret-file FILE] ... status|promote|failover|\n"
		   "                link-drop (wharfctl --peer X --help)\n"
		   "\n");
	wharfctl_admin_usage(f);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "user"))
		return wharfctl_user(argc - 1, argv + 1);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (wharfctl_admin_command(argv[1]) || !strncmp(argv[1], "--admin", 7) ||
	    !strcmp(argv[1], "--json"))
		return wharfctl_admin(argc, argv);
	return wharfctl_pair(argc, argv);
}
