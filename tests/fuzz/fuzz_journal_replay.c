/* libFuzzer target for journal replay. The first input byte holds flags;
 * the rest is split on "WHARFSEG" into up to 8 segment files, each named
 * after the first number in its header (or made up when the header is
 * bad), written into a fresh directory. Flag 1 recomputes the CRC of every
 * record whose length fits, so the fuzzer gets past the checksum to the
 * sequence, type and skip logic.
 *
 * Then the journal is opened with on_corruption = quarantine, which must
 * always succeed, and every replayed payload must be exactly a record's
 * (its CRC is checked again around the bytes handed out), numbers strictly
 * increasing, type never 0. One record is appended (it must be written),
 * and a second open must replay exactly one record more. */
#include "config.h"

#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store/crc32c.h"
#include "store/journal.h"
#include "store/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                         \
	do {                             \
		if (!(c))                \
			__builtin_trap(); \
	} while (0)

struct seen {
	uint64_t n, last;
	unsigned sum;
};

static int on_replay(void *arg, uint64_t seq, uint8_t type, const uint8_t *d, size_t len)
{
	struct seen *s = arg;
	CHECK(type != 0);
	CHECK(s->n == 0 || seq > s->last);
	/* The bytes around the payload are the record that carried it. */
	const uint8_t *rec = d - JREC_HEADER;
	CHECK(jget32(rec) == len + JREC_HEADER - JREC_PREFIX);
	CHECK(jget64(rec + 8) == seq && rec[16] == type);
	CHECK(crc32c(0, rec + JREC_PREFIX, len + JREC_HEADER - JREC_PREFIX) == jget32(rec + 4));
	for (size_t i = 0; i < len; i++)
		s->sum += d[i];
	s->n++;
	s->last = seq;
	return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static void fix_crcs(uint8_t *p, size_t n)
{
	size_t off = JSEG_HEADER;
	while (off + JREC_PREFIX <= n) {
		uint32_t len = jget32(p + off);
		if (!jrec_len_ok(len) || len > n - off - JREC_PREFIX)
			return;
		jrec_seal(p + off);
		off += JREC_PREFIX + len;
	}
}

static const uint8_t *find_sep(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 8 <= n; i++)
		if (memcmp(p + i, "WHARFSEG", 8) == 0)
			return p + i;
	return NULL;
}

static int written;
static void on_done(void *arg, int err)
{
	CHECK(err == 0);
	written++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct event_base *base;
	if (!base) {
		base = event_base_new();
		log_open("/dev/null");
	}
	if (size < 1)
		return 0;
	unsigned flags = data[0];
	data++;
	size--;

	char dir[] = "/tmp/wharf-fuzz-journal.XXXXXX";
	if (!mkdtemp(dir))
		return 0;
	char path[256];
	snprintf(path, sizeof(path), "%s/journal", dir);
	mkdir(path, 0755);

	uint64_t names[8];
	int nnames = 0;
	for (int k = 0; k < 8 && size; k++) {
		const uint8_t *sep = find_sep(data, size);
		size_t len = sep ? (size_t)(sep - data) : size;
		uint8_t *piece = malloc(len + 1);
		memcpy(piece, data, len);
		if (flags & 1)
			fix_crcs(piece, len);
		uint64_t first = 0;
		if (len < JSEG_HEADER || !jseg_header_parse(piece, &first) || first > 99999999999999999ull)
			first = (uint64_t)(k + 1) * 1000;
		bool dup = false;
		for (int i = 0; i < nnames; i++)
			dup |= names[i] == first;
		if (!dup) {
			names[nnames++] = first;
			snprintf(path, sizeof(path), "%s/journal/%020llu.wj", dir, (unsigned long long)first);
			FILE *f = fopen(path, "wb");
			if (f) {
				fwrite(piece, 1, len, f);
				fclose(f);
			}
		}
		free(piece);
		if (!sep)
			break;
		data = sep + 8;
		size -= len + 8;
	}

	struct journal_options o = { .dir = dir, .segment_size = 4096, .sync = JOURNAL_SYNC_NEVER,
				     .on_corruption = JOURNAL_QUARANTINE };
	struct journal *j = NULL;
	struct seen s1 = { 0 }, s2 = { 0 };
	char err[256];
	int rc = journal_open(base, &o, on_replay, &s1, &j, err, sizeof(err));
	CHECK(rc == 0);
	written = 0;
	CHECK(journal_append(j, 7, "after", 5, on_done, NULL, NULL) == 0);
	journal_close(j);
	CHECK(written == 1);

	rc = journal_open(base, &o, on_replay, &s2, &j, err, sizeof(err));
	CHECK(rc == 0);
	CHECK(s2.n == s1.n + 1);
	journal_close(j);

	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
