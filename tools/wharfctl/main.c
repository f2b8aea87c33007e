/* wharfctl: the operator's tool. Subcommands: user (tools/wharfctl/user.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "tools/wharfctl/user.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: wharfctl user add|passwd|del|list ... (wharfctl user --help)\n");
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
	fprintf(stderr, "wharfctl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
