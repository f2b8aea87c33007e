/* PLACEHOLDER, to be replaced at merge: the real broker_set_redirect (the
 * standby's client redirects) is another engineer's, in src/broker.c. The
 * link hands it the active's advertise text from WELCOME. */
#include "config.h"
#include "broker.h"

#include "log.h"

int broker_set_redirect(struct broker *b, const char *advertise)
{
	(void)b;
	log_debug("replication: the active advertises '%s'", advertise);
	return 0;
}
