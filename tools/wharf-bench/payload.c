/* The message header every payload carries, the padding after it and the
 * checksum that covers both. */
#include "config.h"
#include "wb.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define K1 0x9e3779b97f4a7c15ull
#define K2 0xc2b2ae3d27d4eb4full
#define K3 0x165667b19e3779f9ull

/* Padding source: (size + 256) pseudo-random bytes; a message's padding
 * starts at an offset that depends on its sequence number, so a broker that
 * swaps bodies or replays stale bytes changes the checksum. */
static uint8_t *pattern;

uint64_t wb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline void store64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static inline void store32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static inline uint32_t load32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* Two independent lanes, 16 bytes a round: not cryptographic, but every
 * input bit reaches the output, which is all corruption detection needs. */
uint64_t wb_hash(const void *data, size_t len, uint64_t seed)
{
	const uint8_t *p = data;
	uint64_t a = seed ^ K1, b = rotl(seed, 32) ^ K2 ^ len;
	while (len >= 16) {
		a = rotl(a ^ (load64(p) * K2), 31) * K1;
		b = rotl(b ^ (load64(p + 8) * K1), 29) * K3;
		p += 16;
		len -= 16;
	}
	if (len >= 8) {
		a = rotl(a ^ (load64(p) * K2), 31) * K1;
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t t = 0;
		memcpy(&t, p, len);
		b = rotl(b ^ (t * K1), 29) * K3;
	}
	uint64_t h = a ^ rotl(b, 17);
	h ^= h >> 33;
	h *= K2;
	h ^= h >> 29;
	h *= K3;
	h ^= h >> 32;
	return h;
}

int wb_payload_init(size_t size)
{
	free(pattern);
	pattern = malloc(size + 256);
	if (!pattern)
		return -1;
	uint64_t x = 0x243f6a8885a308d3ull;
	for (size_t i = 0; i < size + 256; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pattern[i] = (uint8_t)(x >> 24);
	}
	return 0;
}

static uint64_t checksum(const uint8_t *p, size_t len)
{
	return wb_hash(p + WB_HDR_SIZE, len - WB_HDR_SIZE, wb_hash(p, 24, len));
}

void wb_payload_build(uint8_t *dst, size_t size, uint32_t run, uint32_t pub, uint64_t seq,
		      uint64_t ts)
{
	store32(dst, run);
	store32(dst + 4, pub);
	store64(dst + 8, seq);
	store64(dst + 16, ts);
	memcpy(dst + WB_HDR_SIZE, pattern + ((seq * 7 + pub) & 255), size - WB_HDR_SIZE);
	store64(dst + 24, checksum(dst, size));
}

enum wb_check wb_payload_check(const uint8_t *p, size_t len, size_t want, uint32_t run,
			       struct wb_msginfo *out)
{
	if (len < WB_HDR_SIZE || load64(p + 24) != checksum(p, len))
		return WB_MSG_CORRUPT;
	out->run = load32(p);
	out->pub = load32(p + 4);
	out->seq = load64(p + 8);
	out->ts = load64(p + 16);
	if (out->run != run)
		return WB_MSG_FOREIGN;
	if (len != want)
		return WB_MSG_CORRUPT;
	return WB_MSG_OK;
}
