/* The standby's mirror (src/ha/mirror.c) and the link's proof
 * (src/ha/auth.c): what a DATA chunk must be to be written, stand-ins and
 * drops, where a catch-up or a full copy leaves the directory, a torn tail
 * cut at open, and the journal's lock held while mirroring. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ha/auth.h"
#include "ha/frame.h"
#include "ha/mirror.h"
#include "log.h"
#include "store/journal.h"
#include "store/record.h"
#include "tap.h"
#include "loop.h"

static char dir[256];
static char err[256];

static char *path(const char *name)
{
	static char p[512];
	snprintf(p, sizeof(p), "%s/journal/%s", dir, name);
	return p;
}

static long long size_of(const char *name)
{
	struct stat sb;
	return stat(path(name), &sb) == 0 ? (long long)sb.st_size : -1;
}

/* A chunk: the segment header when first != 0, then records from..to. */
static size_t chunk(uint8_t *out, uint64_t first, uint64_t from, uint64_t to)
{
	size_t n = 0;
	if (first) {
		jseg_header(out, first);
		n = JSEG_HEADER;
	}
	for (uint64_t s = from; s <= to; s++) {
		jrec_head(out + n, s, 7, 3);
		memcpy(out + n + JREC_HEADER, "abc", 3);
		jrec_seal(out + n);
		n += JREC_HEADER + 3;
	}
	return n;
}

static int data(struct mirror *m, uint64_t seg, uint64_t off, uint64_t last, const uint8_t *b,
		size_t n)
{
	struct repl_data d = { seg, off, last, b, n };
	return mirror_data(m, &d, err, sizeof(err));
}

static void test_mirror(void)
{
	uint8_t b[4096];
	struct mirror *m = mirror_open(dir, err, sizeof(err));
	ok(m && mirror_last_seq(m) == 0 && mirror_oldest(m) == 0, "an empty mirror holds nothing");
	ok(mirror_seg_begin(m, 1, err, sizeof(err)) == 0, "SEG_BEGIN 1");
	size_t n = chunk(b, 1, 1, 3);
	ok(data(m, 1, 0, 3, b, n) == 0 && mirror_last_seq(m) == 3, "header and records 1..3");
	size_t n2 = chunk(b, 0, 4, 4);
	ok(data(m, 1, 10, 4, b, n2) < 0 && strstr(err, "offset"), "a chunk not at the end: %s", err);
	n2 = chunk(b, 0, 5, 5);
	ok(data(m, 1, n, 5, b, n2) < 0 && strstr(err, "numbered"), "a gap in the numbers: %s", err);
	n2 = chunk(b, 0, 4, 5);
	ok(data(m, 1, n, 4, b, n2) < 0, "a last_seq that is not the chunk's");
	ok(data(m, 1, n, 5, b, n2 - 1) < 0, "half a record");
	b[n2 - 1] ^= 1;
	ok(data(m, 1, n, 5, b, n2) < 0, "a bad crc");
	b[n2 - 1] ^= 1;
	ok(data(m, 2, n, 5, b, n2) < 0, "data for a segment not begun");
	ok(mirror_last_seq(m) == 3 && size_of("00000000000000000001.wj") == (long long)n,
	   "nothing refused was written");
	ok(data(m, 1, n, 5, b, n2) == 0 && mirror_last_seq(m) == 5, "records 4..5 follow");
	ok(mirror_dirty(m) && mirror_sync(m, err, sizeof(err)) == 0 && !mirror_dirty(m),
	   "synced, clean");

	ok(mirror_seg_begin(m, 6, err, sizeof(err)) == 0 && data(m, 6, 0, 7, b, chunk(b, 6, 6, 7)) == 0,
	   "segment 6 with records 6..7");
	ok(mirror_stub(m, 1, 6, err, sizeof(err)) == 0 &&
	   size_of("00000000000000000001.wj") < 0 &&
	   size_of("00000000000000000001-00000000000000000006.released") == 0,
	   "STUB 1..6: the segment becomes an empty stand-in");
	ok(mirror_drop(m, 1, err, sizeof(err)) == 0 &&
	   size_of("00000000000000000001-00000000000000000006.released") < 0, "DROP 1: the stand-in goes");
	ok(mirror_seg_begin(m, 3, err, sizeof(err)) < 0, "a segment below the last one begun is refused");

	/* a journal cannot open the directory while the mirror holds it */
	struct event_base *base = new_base();
	struct journal_options o = { .dir = dir };
	struct journal *j = NULL;
	char jerr[512];
	ok(journal_open(base, &o, NULL, NULL, &j, jerr, sizeof(jerr)) < 0, "journal_open refused: %s",
	   jerr);
	mirror_free(m);

	/* a torn tail is cut at open */
	int fd = open(path("00000000000000000006.wj"), O_WRONLY | O_APPEND);
	ok(fd >= 0 && write(fd, "torn-bytes", 10) == 10, "ten bytes of a torn write appended");
	close(fd);
	long long before = size_of("00000000000000000006.wj");
	m = mirror_open(dir, err, sizeof(err));
	ok(m && mirror_last_seq(m) == 7 && size_of("00000000000000000006.wj") == before - 10,
	   "reopened: last 7, the torn bytes cut");
	ok(mirror_oldest(m) == 6, "oldest 6");
	ok(mirror_start(m, REPL_MODE_CATCHUP, 6, 6, err, sizeof(err)) == 1 &&
	   mirror_last_seq(m) == 5 && size_of("00000000000000000006.wj") < 0,
	   "catch-up from 6: segment 6 goes, last 5");
	ok(mirror_seg_begin(m, 6, err, sizeof(err)) == 0 && data(m, 6, 0, 6, b, chunk(b, 6, 6, 6)) == 0,
	   "and comes again");
	ok(mirror_stub(m, 2, 6, err, sizeof(err)) == 0, "a stand-in below");
	ok(mirror_start(m, REPL_MODE_FULL, 0, 0, err, sizeof(err)) == 2 && mirror_last_seq(m) == 0 &&
	   mirror_oldest(m) == 0, "a full copy starts from nothing");
	mirror_free(m);
	ok(journal_open(base, &o, NULL, NULL, &j, jerr, sizeof(jerr)) == 0, "the lock is let go");
	journal_close(j);
	free_base(base);
}

static void test_proof(void)
{
	uint8_t a[REPL_NONCE], b[REPL_NONCE], p[REPL_MAC];
	ok(repl_nonce(a) == 0 && repl_nonce(b) == 0 && memcmp(a, b, REPL_NONCE), "two nonces differ");
	ok(repl_proof("secret-0123456789", REPL_LABEL_HELLO, a, b, p) == 0, "a proof");
	ok(repl_proof_ok("secret-0123456789", REPL_LABEL_HELLO, a, b, p), "checks");
	ok(!repl_proof_ok("secret-0123456780", REPL_LABEL_HELLO, a, b, p), "not with another secret");
	ok(!repl_proof_ok("secret-0123456789", REPL_LABEL_WELCOME, a, b, p), "not as the other answer");
	ok(!repl_proof_ok("secret-0123456789", REPL_LABEL_HELLO, b, a, p), "not with the nonces swapped");
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/wharf-mirror-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	log_set_level(LOG_ERROR);
	test_mirror();
	test_proof();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	return tap_done();
}
