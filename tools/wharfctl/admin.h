/* wharfctl's admin commands over a broker's admin HTTP API
 * (docs/operations.md, wharfctl): broker, queues, queue, browse, send,
 * connections, close, move, alarms. */
#ifndef WHARF_TOOLS_WHARFCTL_ADMIN_H
#define WHARF_TOOLS_WHARFCTL_ADMIN_H

#include <stdbool.h>
#include <stdio.h>

/* Whether word names an admin command. */
bool wharfctl_admin_command(const char *word);
/* argv as wharfctl's own: [--admin URL] [--json] COMMAND .... The exit
 * status. */
int wharfctl_admin(int argc, char **argv);
void wharfctl_admin_usage(FILE *f);

#endif
