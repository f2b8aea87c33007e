/* wharfctl's pair commands (docs/ha.md): status, promote and failover, over a
 * node's replication link, proved with the pair's secret or mutual TLS. */
#ifndef WHARF_TOOLS_WHARFCTL_PAIR_H
#define WHARF_TOOLS_WHARFCTL_PAIR_H

/* argv as wharfctl's own: [options] status|promote|failover. The exit status. */
int wharfctl_pair(int argc, char **argv);

#endif
