/* Shared by journal.c (API, writer thread) and journal_replay.c (open-time
 * scan). Not for other modules. */
#ifndef WHARF_STORE_JOURNAL_INTERNAL_H
#define WHARF_STORE_JOURNAL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "store/journal.h"
#include "store/record.h"

struct event;

/* One appended record awaiting its outcome. Its sequence number is the
 * batch's first_seq plus its index. */
struct jent {
	journal_done_fn done;
	void *arg;
	size_t off;  /* where the record starts in the batch's data */
};

/* Records appended during one turn of the event loop: encoded back to back
 * (crc filled in by the writer), handed to the writer whole. Owned by the
 * loop while filled, by the writer from hand-over until it puts it on the
 * done list, then by the loop again. */
struct jbatch {
	struct jbatch *next;
	uint8_t *data;
	size_t len, cap;
	struct jent *ents;
	size_t n, ncap;
	uint64_t first_seq;
	uint64_t payload_bytes;
	/* Outcome, set by the writer: ents[0..nok) are durable, the rest
	 * failed with err while writing segment err_seg at err_off. */
	size_t nok;
	int err;
	uint64_t err_seg, err_off;
};

#define JSEG_STUB 1u     /* a .released stand-in covering first..next-1 */
#define JSEG_RELEASE 2u  /* released by the store, not deleted yet */

struct jseg {
	uint64_t first;
	uint64_t next;   /* stubs: the first number after them */
	unsigned flags;
};

#define JMSG_MAX 8
struct jmsg {
	int level;       /* enum log_level */
	int err;         /* errno to append, 0 for none */
	char text[200];
};

struct journal {
	/* Fixed after open. */
	struct event_base *base;
	char *root;                 /* options.dir */
	int dirfd;                  /* root/journal */
	int lockfd;
	size_t segment_size;
	enum journal_sync sync;
	unsigned batch_delay_us;
	int pipefd[2];              /* writer -> loop: "look at the done list" */
	struct event *notify_ev;
	struct event *flush_ev;
	pthread_t thread;
	bool thread_started;

	/* Loop thread only. */
	struct jbatch *cur;         /* being filled */
	struct jbatch *spare;       /* recycled batches */
	size_t nspare;
	uint64_t next_seq;
	bool closing_loop;
	bool flush_scheduled;
	bool failing;               /* the last batch failed */
	uint64_t failed_run;        /* records failed since writes last worked */
	uint64_t pending, pending_bytes;
	uint64_t failed_records;

	/* Shared, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct jbatch *queued, **queued_tail;
	struct jbatch *done, **done_tail;
	bool closing;
	bool notified;
	struct jseg *segs;          /* sorted by first; the last may be active */
	size_t nsegs, segcap;
	uint64_t dead_below;        /* the store holds nothing live below it */
	size_t nrelease;            /* entries with JSEG_RELEASE */
	struct journal_stats st;
	struct jmsg msgs[JMSG_MAX];
	unsigned nmsgs, msgs_lost;

	/* Set by the writer, read by the loop: a write found the disk full and
	 * the reserve is given up to records that free space. */
	atomic_bool full;

	/* Writer thread only (and open, before the thread starts). */
	int reserve_fd;             /* journal/reserve, -1 if none */
	uint64_t written_next;      /* the number after the last record written */
	int fd;                     /* the active segment, -1 before the first write */
	uint64_t active_first;
	uint64_t off;               /* good bytes in it */
	bool need_repair;           /* a failed write may have left bytes past off */
	bool dirty;                 /* written since the last fdatasync */
	uint64_t skip_from, skip_to; /* failed numbers no skip record covers yet */
	uint8_t skipbuf[JREC_SKIP_SIZE];
	struct timespec last_sync;
	bool synced_once;
};

/* journal_replay.c: lists and replays the segments of j->dirfd, fills
 * j->segs, j->next_seq and the replay stats. 0, or -1 with err set. */
int journal_replay(struct journal *j, const struct journal_options *o, journal_replay_fn fn, void *arg,
		   char *err, size_t errlen);

void jseg_name(char *out, size_t n, uint64_t first);
void jstub_name(char *out, size_t n, uint64_t first, uint64_t next);
int jsegs_reserve(struct journal *j, size_t extra);
int jfsync(int fd);

#endif
