#include "config.h"
#include "store/record.h"

#include <string.h>

#include "store/crc32c.h"

int jrec_len_ok(uint32_t len)
{
	return len >= JREC_HEADER - JREC_PREFIX && len <= JREC_HEADER - JREC_PREFIX + JREC_MAX_PAYLOAD;
}

enum jrec_status jrec_parse(const uint8_t *p, size_t n, struct jrec *out)
{
	if (n < JREC_PREFIX)
		return JREC_SHORT;
	uint32_t len = jget32(p);
	if (!jrec_len_ok(len))
		return JREC_BAD_LENGTH;
	if (n - JREC_PREFIX < len)
		return JREC_SHORT;
	if (crc32c(0, p + JREC_PREFIX, len) != jget32(p + 4))
		return JREC_BAD_CRC;
	out->seq = jget64(p + 8);
	out->type = p[16];
	out->data = p + JREC_HEADER;
	out->len = len - (JREC_HEADER - JREC_PREFIX);
	out->size = JREC_PREFIX + len;
	return JREC_OK;
}

void jrec_head(uint8_t *out, uint64_t seq, uint8_t type, size_t len)
{
	jput32(out, (uint32_t)(len + JREC_HEADER - JREC_PREFIX));
	jput32(out + 4, 0);
	jput64(out + 8, seq);
	out[16] = type;
}

void jrec_seal(uint8_t *rec)
{
	uint32_t len = jget32(rec);
	jput32(rec + 4, crc32c(0, rec + JREC_PREFIX, len));
}

void jrec_skip(uint8_t *out, uint64_t seq, uint64_t last)
{
	jrec_head(out, seq, JREC_TYPE_SKIP, 8);
	jput64(out + JREC_HEADER, last);
	jrec_seal(out);
}

void jseg_header(uint8_t *out, uint64_t first_seq)
{
	memcpy(out, JSEG_MAGIC, 8);
	jput64(out + 8, first_seq);
}

int jseg_header_parse(const uint8_t *p, uint64_t *first)
{
	if (memcmp(p, JSEG_MAGIC, 8) != 0)
		return 0;
	*first = jget64(p + 8);
	return *first != 0;
}
