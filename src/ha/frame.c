/* The replication link's codec (ha/frame.h). Every read goes through a
 * cursor that checks the bytes are there: a peer's lengths are never
 * trusted, not even once it has proved the secret. */
#include "config.h"
#include "ha/frame.h"

#include <string.h>

#include "store/record.h"

int repl_frame_parse(const uint8_t *p, size_t n, size_t max, struct repl_frame *out, size_t *used)
{
	if (n < 4)
		return 0;
	uint32_t len = jget32(p);
	if (len < 1 || len > max)
		return -1;
	if (n >= 5 && (p[4] < 1 || p[4] > REPL_TYPE_MAX))
		return -1;
	if (n - 4 < len)
		return 0;
	out->type = p[4];
	out->payload = p + 5;
	out->len = len - 1;
	*used = 4 + (size_t)len;
	return 1;
}

void repl_frame_head(uint8_t *out, uint8_t type, size_t len)
{
	jput32(out, (uint32_t)(len + 1));
	out[4] = type;
}

/* ---- reading ------------------------------------------------------------ */

struct rcur {
	const uint8_t *p;
	size_t n;
	bool bad;
};

static const uint8_t *take(struct rcur *c, size_t k)
{
	if (c->bad || c->n < k) {
		c->bad = true;
		return NULL;
	}
	const uint8_t *r = c->p;
	c->p += k;
	c->n -= k;
	return r;
}

static uint64_t get64(struct rcur *c)
{
	const uint8_t *p = take(c, 8);
	return p ? jget64(p) : 0;
}

static uint8_t get8(struct rcur *c)
{
	const uint8_t *p = take(c, 1);
	return p ? *p : 0;
}

static void getn(struct rcur *c, uint8_t *out, size_t k)
{
	const uint8_t *p = take(c, k);
	if (p)
		memcpy(out, p, k);
}

static void getstr(struct rcur *c, struct repl_str *s)
{
	const uint8_t *h = take(c, 2);
	size_t len = h ? (size_t)h[0] | (size_t)h[1] << 8 : 0;
	const uint8_t *p = len > REPL_STR_MAX ? (c->bad = true, NULL) : take(c, len);
	if (p && memchr(p, 0, len))
		c->bad = true;
	s->p = p ? (const char *)p : "";
	s->len = p ? len : 0;
}

/* A payload is good when every field was there and nothing is left. */
static int done(const struct rcur *c)
{
	return c->bad || c->n ? -1 : 0;
}

#define CUR(f) { (f)->payload, (f)->len, false }

int repl_challenge_decode(const struct repl_frame *f, struct repl_challenge *out)
{
	struct rcur c = CUR(f);
	getn(&c, out->nonce, REPL_NONCE);
	getstr(&c, &out->node_id);
	return f->type == REPL_CHALLENGE ? done(&c) : -1;
}

int repl_hello_decode(const struct repl_frame *f, struct repl_hello *out)
{
	struct rcur c = CUR(f);
	getn(&c, out->proof, REPL_MAC);
	getn(&c, out->nonce, REPL_NONCE);
	getstr(&c, &out->node_id);
	out->last_seq = get64(&c);
	out->oldest = get64(&c);
	out->role = get8(&c);
	out->epoch = get64(&c);
	if (out->role != REPL_ROLE_STANDBY && out->role != REPL_ROLE_CONTROL)
		return -1;
	return f->type == REPL_HELLO ? done(&c) : -1;
}

int repl_welcome_decode(const struct repl_frame *f, struct repl_welcome *out)
{
	struct rcur c = CUR(f);
	getn(&c, out->proof, REPL_MAC);
	getstr(&c, &out->node_id);
	getstr(&c, &out->advertise);
	out->mode = get8(&c);
	out->from = get64(&c);
	out->oldest = get64(&c);
	out->last_seq = get64(&c);
	out->epoch = get64(&c);
	out->epoch_start = get64(&c);
	if (out->mode < REPL_MODE_CATCHUP || out->mode > REPL_MODE_CONTROL)
		return -1;
	return f->type == REPL_WELCOME ? done(&c) : -1;
}

int repl_data_decode(const struct repl_frame *f, struct repl_data *out)
{
	struct rcur c = CUR(f);
	out->segment = get64(&c);
	out->offset = get64(&c);
	out->last_seq = get64(&c);
	if (c.bad || f->type != REPL_DATA || !c.n)
		return -1;
	out->bytes = c.p;
	out->len = c.n;
	/* an offset past any segment's possible size is a lie */
	return out->offset > (1ull << 40) ? -1 : 0;
}

int repl_u64s_decode(const struct repl_frame *f, uint64_t *v, size_t n)
{
	struct rcur c = CUR(f);
	for (size_t i = 0; i < n; i++)
		v[i] = get64(&c);
	return done(&c);
}

int repl_text_decode(const struct repl_frame *f, struct repl_str *out)
{
	struct rcur c = CUR(f);
	getstr(&c, out);
	return f->type == REPL_TEXT ? done(&c) : -1;
}

/* ---- writing ------------------------------------------------------------ */

struct wcur {
	uint8_t *p;
	size_t n, cap;
	bool bad;
};

static void put(struct wcur *w, const void *v, size_t k)
{
	if (w->bad || w->cap - w->n < k) {
		w->bad = true;
		return;
	}
	memcpy(w->p + w->n, v, k);
	w->n += k;
}

static void put64(struct wcur *w, uint64_t v)
{
	uint8_t b[8];
	jput64(b, v);
	put(w, b, 8);
}

static void putstr(struct wcur *w, const struct repl_str *s)
{
	if (s->len > REPL_STR_MAX) {
		w->bad = true;
		return;
	}
	uint8_t h[2] = { (uint8_t)s->len, (uint8_t)(s->len >> 8) };
	put(w, h, 2);
	put(w, s->p, s->len);
}

static struct wcur wstart(uint8_t *out, size_t cap)
{
	struct wcur w = { out, REPL_HEAD, cap, cap < REPL_HEAD };
	return w;
}

static size_t wend(struct wcur *w, uint8_t type)
{
	if (w->bad)
		return 0;
	repl_frame_head(w->p, type, w->n - REPL_HEAD);
	return w->n;
}

size_t repl_challenge_encode(uint8_t *out, size_t cap, const struct repl_challenge *c)
{
	struct wcur w = wstart(out, cap);
	put(&w, c->nonce, REPL_NONCE);
	putstr(&w, &c->node_id);
	return wend(&w, REPL_CHALLENGE);
}

size_t repl_hello_encode(uint8_t *out, size_t cap, const struct repl_hello *h)
{
	struct wcur w = wstart(out, cap);
	put(&w, h->proof, REPL_MAC);
	put(&w, h->nonce, REPL_NONCE);
	putstr(&w, &h->node_id);
	put64(&w, h->last_seq);
	put64(&w, h->oldest);
	put(&w, &h->role, 1);
	put64(&w, h->epoch);
	return wend(&w, REPL_HELLO);
}

size_t repl_welcome_encode(uint8_t *out, size_t cap, const struct repl_welcome *wl)
{
	struct wcur w = wstart(out, cap);
	put(&w, wl->proof, REPL_MAC);
	putstr(&w, &wl->node_id);
	putstr(&w, &wl->advertise);
	put(&w, &wl->mode, 1);
	put64(&w, wl->from);
	put64(&w, wl->oldest);
	put64(&w, wl->last_seq);
	put64(&w, wl->epoch);
	put64(&w, wl->epoch_start);
	return wend(&w, REPL_WELCOME);
}

void repl_data_head(uint8_t *out, uint64_t segment, uint64_t offset, uint64_t last_seq, size_t len)
{
	repl_frame_head(out, REPL_DATA, 24 + len);
	jput64(out + REPL_HEAD, segment);
	jput64(out + REPL_HEAD + 8, offset);
	jput64(out + REPL_HEAD + 16, last_seq);
}

size_t repl_u64s_encode(uint8_t *out, size_t cap, uint8_t type, const uint64_t *v, size_t n)
{
	struct wcur w = wstart(out, cap);
	for (size_t i = 0; i < n; i++)
		put64(&w, v[i]);
	return wend(&w, type);
}

size_t repl_text_encode(uint8_t *out, size_t cap, const char *text, size_t len)
{
	struct wcur w = wstart(out, cap);
	struct repl_str s = { text, len };
	putstr(&w, &s);
	return wend(&w, REPL_TEXT);
}
