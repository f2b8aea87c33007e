/* A watch on the bytes an AMQP client sends, ahead of qpid-proton's engine,
 * for the frames that would make the engine abort the whole process rather
 * than refuse them: proton 0.37 asserts (and Debian builds it with
 * assertions) on a transfer that starts a delivery in several frames without
 * a delivery-id. The guard follows, per link, what the engine makes of each
 * transfer, to tell a first frame from a continuation (which may leave the
 * delivery-id out). It also refuses a second sasl-init, which proton 0.37
 * accepts and leaks. Everything else the engine refuses on its own. Pure: no
 * I/O. */
#ifndef WHARF_AMQP_GUARD_H
#define WHARF_AMQP_GUARD_H

#include <proton/codec.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The start of a frame kept to read its performative: a transfer's fields
 * fit in far less for any client (a delivery-tag is at most 32 bytes); one
 * that needs more is refused. */
#define AMQP_GUARD_HEAD 1024

/* A link amid a delivery in several frames, as the engine sees it. */
struct amqp_guard_link {
	uint64_t key;        /* channel << 32 | handle */
	uint32_t more_id;    /* the delivery-id of its first frame */
	bool partial;        /* its last delivery awaits more frames */
};

struct amqp_guard {
	uint8_t head[AMQP_GUARD_HEAD];
	size_t have;         /* bytes of the current header or frame start in head */
	uint64_t skip;       /* bytes of the current frame still to pass unread */
	bool off;            /* the engine refuses what comes next on its own */
	bool sasl_init_seen;
	pn_data_t *data;     /* for decoding a transfer's fields */
	struct amqp_guard_link *links;
	size_t nlinks, caplinks;
};

/* A zeroed struct amqp_guard is ready; amqp_guard_free releases it. */
void amqp_guard_free(struct amqp_guard *g);

/* Whether the bytes looked at so far end amid a frame (or a protocol
 * header): for frame_timeout, since the engine takes partial frames in. */
bool amqp_guard_mid_frame(const struct amqp_guard *g);

/* Looks at the next n bytes the client sent. 0: they may go to the engine;
 * -1 with *why set: the connection must end before they reach it. */
int amqp_guard_scan(struct amqp_guard *g, const uint8_t *p, size_t n, const char **why);

#endif
