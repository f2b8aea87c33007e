/* Latency histogram and the verification of what each receiver got. */
#include "config.h"
#include "wb.h"

#include <stdlib.h>
#include <string.h>

/* ---- histogram ----------------------------------------------------------- */

#define HALF (1u << (WB_HIST_SUB - 1))
#define EXACT (1u << WB_HIST_SUB)

int wb_hist_init(struct wb_hist *h)
{
	memset(h, 0, sizeof *h);
	h->nbuckets = EXACT + (size_t)(64 - WB_HIST_SUB) * HALF;
	h->counts = calloc(h->nbuckets, sizeof *h->counts);
	h->min = UINT64_MAX;
	return h->counts ? 0 : -1;
}

void wb_hist_free(struct wb_hist *h)
{
	free(h->counts);
	h->counts = NULL;
}

static size_t bucket_of(uint64_t v)
{
	if (v < EXACT)
		return (size_t)v;
	int msb = 63 - __builtin_clzll(v);
	int shift = msb - (WB_HIST_SUB - 1);
	uint64_t mant = v >> shift; /* in [HALF, EXACT) */
	return EXACT + (size_t)(msb - WB_HIST_SUB) * HALF + (size_t)(mant - HALF);
}

/* The middle of a bucket. */
static uint64_t bucket_value(size_t i)
{
	if (i < EXACT)
		return i;
	size_t k = i - EXACT;
	int shift = (int)(k / HALF) + 1;
	uint64_t low = (uint64_t)(k % HALF + HALF) << shift;
	return low + ((1ull << shift) >> 1);
}

void wb_hist_record(struct wb_hist *h, uint64_t v)
{
	h->counts[bucket_of(v)]++;
	h->n++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

uint64_t wb_hist_quantile(const struct wb_hist *h, double q)
{
	if (!h->n)
		return 0;
	if (q >= 1.0)
		return h->max;
	uint64_t rank = (uint64_t)(q * (double)h->n);
	if ((double)rank < q * (double)h->n)
		rank++;
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (size_t i = 0; i < h->nbuckets; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t v = bucket_value(i);
			if (v < h->min)
				v = h->min;
			if (v > h->max)
				v = h->max;
			return v;
		}
	}
	return h->max;
}

/* ---- sequence tracking --------------------------------------------------- */

#define SEQ_LIMIT (1ull << 36)

int wb_track_init(struct wb_track *t, unsigned npub, uint64_t hint)
{
	memset(t, 0, sizeof *t);
	t->npub = npub;
	t->pub = calloc(npub ? npub : 1, sizeof *t->pub);
	if (!t->pub)
		return -1;
	uint64_t words = hint ? (hint + 63) / 64 : 1024;
	for (unsigned i = 0; i < npub; i++) {
		t->pub[i].bits = calloc(words, 8);
		if (!t->pub[i].bits)
			return -1;
		t->pub[i].nwords = words;
	}
	return 0;
}

void wb_track_free(struct wb_track *t)
{
	if (!t->pub)
		return;
	for (unsigned i = 0; i < t->npub; i++)
		free(t->pub[i].bits);
	free(t->pub);
	t->pub = NULL;
}

static int grow(struct wb_seqset *s, uint64_t seq)
{
	uint64_t n = s->nwords ? s->nwords : 1;
	while (n * 64 <= seq)
		n *= 2;
	uint64_t *b = realloc(s->bits, n * 8);
	if (!b)
		return -1;
	memset(b + s->nwords, 0, (n - s->nwords) * 8);
	s->bits = b;
	s->nwords = n;
	return 0;
}

enum wb_seq wb_track_record(struct wb_track *t, uint32_t pub, uint64_t seq)
{
	if (pub >= t->npub || seq >= SEQ_LIMIT)
		return WB_SEQ_BAD;
	struct wb_seqset *s = &t->pub[pub];
	if (seq / 64 >= s->nwords && grow(s, seq) < 0)
		return WB_SEQ_BAD;
	uint64_t *w = &s->bits[seq / 64], bit = 1ull << (seq % 64);
	t->deliveries++;
	if (*w & bit) {
		t->dups++;
		return WB_SEQ_DUP;
	}
	*w |= bit;
	s->unique++;
	t->unique++;
	if (seq + 1 < s->next) {
		t->ooo++;
		return WB_SEQ_OOO;
	}
	s->next = seq + 1;
	return WB_SEQ_NEW;
}

uint64_t wb_track_missing(const struct wb_track *t, const uint64_t *sent)
{
	uint64_t missing = 0;
	for (unsigned p = 0; p < t->npub; p++) {
		const struct wb_seqset *s = &t->pub[p];
		uint64_t n = sent[p], full = n / 64, seen = 0;
		for (uint64_t i = 0; i < full && i < s->nwords; i++)
			seen += (uint64_t)__builtin_popcountll(s->bits[i]);
		if (n % 64 && full < s->nwords)
			seen += (uint64_t)__builtin_popcountll(s->bits[full] &
							       ((1ull << (n % 64)) - 1));
		missing += n - seen;
	}
	return missing;
}
