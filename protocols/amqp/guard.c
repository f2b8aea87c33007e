#include "config.h"
#include "protocols/amqp/guard.h"

#include <stdlib.h>
#include <string.h>

#define FRAME_HEADER 8
/* Performatives (AMQP 1.0 §2.7). */
#define PERF_BEGIN 0x11
#define PERF_ATTACH 0x12
#define PERF_TRANSFER 0x14
#define PERF_DETACH 0x16
#define PERF_END 0x17
#define SASL_INIT 0x41

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

void amqp_guard_free(struct amqp_guard *g)
{
	pn_data_free(g->data);
	free(g->links);
	memset(g, 0, sizeof(*g));
}

static struct amqp_guard_link *find(struct amqp_guard *g, uint64_t key)
{
	for (size_t i = 0; i < g->nlinks; i++)
		if (g->links[i].key == key)
			return &g->links[i];
	return NULL;
}

static void forget(struct amqp_guard *g, struct amqp_guard_link *l)
{
	*l = g->links[--g->nlinks];
}

/* A session or link begun or ended on the channel: its links start afresh.
 * All of them, to stay simple: at worst a continuation on another link is
 * then taken for a first frame, and refused if it lacks a delivery-id. */
static void forget_channel(struct amqp_guard *g, uint16_t channel)
{
	for (size_t i = 0; i < g->nlinks;) {
		if (g->links[i].key >> 32 == channel)
			forget(g, &g->links[i]);
		else
			i++;
	}
}

struct transfer {
	uint32_t handle, id;
	bool has_id, more, aborted;
};

/* The fields as the engine reads them: a field of another type than the
 * one it wants counts as absent. */
static bool read_transfer(struct amqp_guard *g, const uint8_t *b, size_t len, struct transfer *t)
{
	memset(t, 0, sizeof(*t));
	if (!g->data && !(g->data = pn_data(16)))
		return false;
	pn_data_t *d = g->data;
	pn_data_clear(d);
	if (pn_data_decode(d, (const char *)b, len) != (ssize_t)len)
		return false;
	pn_data_rewind(d);
	if (!pn_data_next(d) || pn_data_type(d) != PN_DESCRIBED || !pn_data_enter(d) ||
	    !pn_data_next(d) || !pn_data_next(d) || pn_data_type(d) != PN_LIST || !pn_data_enter(d))
		return false;
	for (int i = 0; i <= 9 && pn_data_next(d); i++) {
		pn_type_t type = pn_data_type(d);
		if (i == 0 && type == PN_UINT) {
			t->handle = pn_data_get_uint(d);
		} else if (i == 1 && type == PN_UINT) {
			t->has_id = true;
			t->id = pn_data_get_uint(d);
		} else if (i == 5 && type == PN_BOOL) {
			t->more = pn_data_get_bool(d);
		} else if (i == 9 && type == PN_BOOL) {
			t->aborted = pn_data_get_bool(d);
		}
	}
	return true;
}

/* What the engine (pn_do_transfer) makes of a transfer: a new delivery, a
 * continuation of a partial one, or, after a delivery in several frames
 * is whole, more of it unless a new delivery-id says otherwise. -1 for a
 * new delivery in several frames without a delivery-id, aborted at once
 * or not: the engine marks the link amid a delivery (and asserts on the
 * missing id) before it looks at `aborted`. */
static int follow(struct amqp_guard *g, uint16_t channel, const struct transfer *t, const char **why)
{
	uint64_t key = (uint64_t)channel << 32 | t->handle;
	struct amqp_guard_link *l = find(g, key);
	if (l && l->partial) {
		if (t->aborted)
			forget(g, l);
		else if (!t->more)
			l->partial = false;
		return 0;
	}
	if (l) {
		if (!t->has_id || t->id == l->more_id) {
			if (!t->more || t->aborted)
				forget(g, l);
			return 0;
		}
		forget(g, l);
	}
	if (!t->more)
		return 0;
	if (!t->has_id) {
		*why = "the first transfer of a delivery in several frames has no delivery-id";
		return -1;
	}
	if (t->aborted)
		return 0; /* begun and ended in one frame */
	if (g->nlinks == g->caplinks) {
		size_t cap = g->caplinks ? g->caplinks * 2 : 4;
		struct amqp_guard_link *grown = realloc(g->links, cap * sizeof(*grown));
		if (!grown) {
			*why = "out of memory";
			return -1;
		}
		g->links = grown;
		g->caplinks = cap;
	}
	g->links[g->nlinks++] = (struct amqp_guard_link){ .key = key, .more_id = t->id, .partial = true };
	return 0;
}

/* How long the performative at b is, descriptor and list header included:
 * > 0 once known, 0 when more bytes are needed to tell, -1 when it has no
 * numeric descriptor (the engine deals with that), -2 when its numeric
 * descriptor (*code) describes no list: the engine's decoder may still
 * read fields out of it, so a transfer like that is not let by. */
static int64_t perf_len(const uint8_t *b, size_t n, uint64_t *code)
{
	size_t pos;
	if (n < 2)
		return 0;
	if (b[0] != 0x00)
		return -1;
	switch (b[1]) {
	case 0x44: /* ulong 0 */
		*code = 0;
		pos = 2;
		break;
	case 0x53: /* smallulong */
		if (n < 3)
			return 0;
		*code = b[2];
		pos = 3;
		break;
	case 0x80: /* ulong */
		if (n < 10)
			return 0;
		*code = be64(b + 2);
		pos = 10;
		break;
	default:
		return -1;
	}
	if (n < pos + 1)
		return 0;
	switch (b[pos]) {
	case 0x45: /* list0 */
		return (int64_t)pos + 1;
	case 0xc0: /* list8: size, then count */
		return n < pos + 2 ? 0 : (int64_t)pos + 2 + b[pos + 1];
	case 0xd0: /* list32 */
		return n < pos + 5 ? 0 : (int64_t)pos + 5 + be32(b + pos + 1);
	default:
		return -2;
	}
}

/* The frame's start is read: the rest of it passes unread. */
static int pass_rest(struct amqp_guard *g, uint32_t size)
{
	g->skip = size - g->have;
	g->have = 0;
	return 1;
}

/* Looks at what head holds (a protocol header or a frame's start): 1 once
 * the unit is judged (have reset, skip set), 0 with *need the bytes head
 * must hold to judge it, -1 with *why for a frame the engine must not see. */
static int examine(struct amqp_guard *g, size_t *need, const char **why)
{
	const uint8_t *h = g->head;
	if (!memcmp(h, "AMQP", 4)) { /* a protocol header, after SASL too */
		g->have = 0;
		return 1;
	}
	uint32_t size = be32(h);
	size_t body = (size_t)h[4] * 4;
	uint16_t channel = (uint16_t)(h[6] << 8 | h[7]);
	if (size < FRAME_HEADER || body < FRAME_HEADER || body > size) {
		g->off = true; /* a framing error: the engine stops reading */
		return 1;
	}
	if (body == size) /* an empty frame */
		return pass_rest(g, size);
	if (g->have < body) {
		*need = body;
		return 0;
	}
	uint64_t code = 0;
	int64_t len = perf_len(h + body, g->have - body, &code);
	if (len == 0) {
		if (g->have >= size)
			return pass_rest(g, size);
		if (g->have == sizeof(g->head)) {
			*why = "a performative that starts past 1 KiB into its frame";
			return -1;
		}
		*need = g->have + 1;
		return 0;
	}
	if (len == -2 && code == PERF_TRANSFER) {
		*why = "a transfer whose fields are not a list";
		return -1;
	}
	if (len < 0 || (uint64_t)body + (uint64_t)len > size)
		return pass_rest(g, size);
	if (h[5] != 0) {
		/* SASL has one init per connection; proton 0.37 keeps a copy of
		 * each init's mechanism and loses all but the last, so repeated
		 * inits would grow the broker without bound. */
		if (code == SASL_INIT && g->sasl_init_seen) {
			*why = "a second sasl-init";
			return -1;
		}
		g->sasl_init_seen |= code == SASL_INIT;
		return pass_rest(g, size);
	}
	if (code == PERF_BEGIN || code == PERF_ATTACH || code == PERF_DETACH || code == PERF_END) {
		forget_channel(g, channel);
		return pass_rest(g, size);
	}
	if (code != PERF_TRANSFER)
		return pass_rest(g, size);
	if (body + (size_t)len > sizeof(g->head)) {
		*why = "a transfer whose fields take more than 1024 bytes";
		return -1;
	}
	if (g->have < body + (size_t)len) {
		*need = body + (size_t)len;
		return 0;
	}
	struct transfer t;
	if (!read_transfer(g, h + body, (size_t)len, &t)) {
		*why = "a transfer whose fields do not decode";
		return -1;
	}
	if (follow(g, channel, &t, why) < 0)
		return -1;
	return pass_rest(g, size);
}

bool amqp_guard_mid_frame(const struct amqp_guard *g)
{
	return !g->off && (g->have || g->skip);
}

int amqp_guard_scan(struct amqp_guard *g, const uint8_t *p, size_t n, const char **why)
{
	for (;;) {
		if (g->off)
			return 0;
		if (g->skip) {
			if (!n)
				return 0;
			size_t k = g->skip < n ? (size_t)g->skip : n;
			g->skip -= k;
			p += k;
			n -= k;
			continue;
		}
		size_t need = FRAME_HEADER;
		if (g->have >= FRAME_HEADER) {
			int rc = examine(g, &need, why);
			if (rc < 0)
				return -1;
			if (rc > 0)
				continue;
		}
		if (!n)
			return 0;
		size_t k = need - g->have < n ? need - g->have : n;
		memcpy(g->head + g->have, p, k);
		g->have += k;
		p += k;
		n -= k;
	}
}
