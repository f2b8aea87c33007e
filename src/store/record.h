/* The journal's on-disk format. Replication ships these bytes to a standby
 * exactly as they are written, so a record is self-describing and checked
 * on its own.
 *
 * A segment file DIR/journal/<SEQ>.wj (SEQ: the sequence number of its first
 * record, 20 decimal digits) starts with a 16-byte header
 *     "WHARFJ1\0"          magic, 8 bytes
 *     u64 first_seq        equal to the name
 * followed by records, back to back, nothing between them:
 *     u32 len              bytes after the crc field: 9 + payload length
 *     u32 crc              CRC32C of those len bytes (seq, type, payload)
 *     u64 seq              1, 2, 3, ... across segments
 *     u8  type             the caller's (1-255); 0 is the journal's own
 *     payload
 * All integers are little endian. Sequence numbers go up by one from record
 * to record and from segment to segment, except across a skip record
 * (type 0, payload u64 last): it stands for the numbers seq..last, whose
 * records could not be written (a full disk) and were reported failed to
 * their appenders; the next record is last + 1. Segment files holding only
 * released records may be replaced by empty "FIRST-NEXT.released" stubs
 * (FIRST and NEXT 20 digits) that say the numbers FIRST..NEXT-1 are gone on
 * purpose. Pure functions, any thread. */
#ifndef WHARF_STORE_RECORD_H
#define WHARF_STORE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define JSEG_MAGIC "WHARFJ1"     /* with its NUL: 8 bytes */
#define JSEG_HEADER 16u
#define JREC_HEADER 17u          /* len, crc, seq, type */
#define JREC_PREFIX 8u           /* len, crc: not covered by the crc */
#define JREC_MAX_PAYLOAD (256u << 20)
#define JREC_TYPE_SKIP 0

enum jrec_status {
	JREC_OK,
	JREC_SHORT,       /* fewer bytes than the record needs */
	JREC_BAD_LENGTH,  /* a length no record can have */
	JREC_BAD_CRC,
};

struct jrec {
	uint64_t seq;
	uint8_t type;
	const uint8_t *data;  /* points into the parsed bytes */
	size_t len;           /* payload length */
	size_t size;          /* the whole record: JREC_HEADER + len */
};

static inline void jput32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void jput64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t jget32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t jget64(const uint8_t *p)
{
	return (uint64_t)jget32(p) | (uint64_t)jget32(p + 4) << 32;
}

/* Parses the record at p[0..n). JREC_SHORT when n is too small for it (with
 * a plausible length); on JREC_OK, *out describes it. */
enum jrec_status jrec_parse(const uint8_t *p, size_t n, struct jrec *out);
/* Length field check alone: 1 when `len` is one a record can have. */
int jrec_len_ok(uint32_t len);
/* Writes the 17-byte head for a record of `len` payload bytes, crc left 0;
 * jrec_seal() fills it in once the payload follows the head. */
void jrec_head(uint8_t *out, uint64_t seq, uint8_t type, size_t len);
void jrec_seal(uint8_t *rec);
/* A whole skip record (JREC_HEADER + 8 bytes) for seq..last. */
#define JREC_SKIP_SIZE (JREC_HEADER + 8u)
void jrec_skip(uint8_t *out, uint64_t seq, uint64_t last);
/* The 16-byte segment header. */
void jseg_header(uint8_t *out, uint64_t first_seq);
/* 1 and *first set when p[0..16) is a good header. */
int jseg_header_parse(const uint8_t *p, uint64_t *first);

#endif
