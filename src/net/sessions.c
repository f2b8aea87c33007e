/* The protocols' client sessions, walked through the protocol table. */
#include "config.h"
#include "net/sessions.h"

#include "broker.h"
#include "net/protocol.h"

int sessions_each(struct broker *b, session_view_fn fn, void *arg)
{
	for (size_t i = 0; protocols[i]; i++)
		if (protocols[i]->sessions && b->proto_state[i] &&
		    protocols[i]->sessions->each(b->proto_state[i], fn, arg) < 0)
			return -1;
	return 0;
}

int sessions_find(struct broker *b, const char *id, session_view_fn fn, void *arg)
{
	for (size_t i = 0; protocols[i]; i++) {
		if (!protocols[i]->sessions || !b->proto_state[i])
			continue;
		int rc = protocols[i]->sessions->find(b->proto_state[i], id, fn, arg);
		if (rc)
			return rc;
	}
	return 0;
}

int sessions_remove(struct broker *b, const char *id)
{
	for (size_t i = 0; protocols[i]; i++) {
		if (!protocols[i]->sessions || !b->proto_state[i])
			continue;
		int rc = protocols[i]->sessions->remove(b->proto_state[i], id);
		if (rc != SESSION_NONE)
			return rc;
	}
	return SESSION_NONE;
}
