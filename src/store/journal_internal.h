/* Shared by journal.c (the loop-side API), journal_writer.c (the writer
 * thread) and journal_replay.c (open-time scan). Not for other modules. */
#ifndef WHARF_STORE_JOURNAL_INTERNAL_H
#define WHARF_STORE_JOURNAL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store/journal.h"
#include "store/record.h"

struct event;
struct wakeup;

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

/* A done callback held by the replica gate (journal_gate). */
struct jheld {
	journal_done_fn done;
	void *arg;
	uint64_t seq;
	int err;
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
	struct wakeup *wake;        /* writer -> loop: "look at the done list" */
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
	journal_tap_fn tap;         /* replication: more is durable */
	void *tap_arg;
	bool gate_on;               /* replica gate (journal_gate) */
	bool gate_running;
	uint64_t gate_seq;
	struct jheld *held;         /* FIFO: held[held_head .. nheld) */
	size_t held_head, nheld, heldcap;

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
	/* What is durable, set by the writer after each fdatasync (or write
	 * with sync = never): the segment being written (0: none since open,
	 * every file is whole), its durable bytes, the last durable number. */
	uint64_t durable_seg, durable_off, durable_last;
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

/* Disk space held back in journal/reserve and given up when the disk is
 * full, so that acknowledgements (which free space) can still be written
 * while durable publishes are refused. */
#define JRESERVE_SIZE (256u << 10)

/* The size of record i of batch b, its header included. Either thread,
 * whichever owns b. */
static inline size_t jbatch_rec_size(const struct jbatch *b, size_t i)
{
	size_t end = i + 1 < b->n ? b->ents[i + 1].off : b->len;
	return end - b->ents[i].off;
}

/* journal_writer.c: the writer thread's body (pthread_create's start
 * routine; arg is the journal), started by journal_open. */
void *jwriter_main(void *arg);
/* journal_writer.c: claims the reserve if the disk has room for it and as
 * much again. The writer thread, or journal_open before it starts. */
bool jreserve_take(struct journal *j);
/* journal_writer.c: caller holds mu (either thread). The index of a
 * released segment that may go now (never the last entry: it is, or is
 * about to be followed by, the active one), or -1. */
long jrelease_candidate(struct journal *j);

/* journal_replay.c: lists and replays the segments of j->dirfd, fills
 * j->segs, j->next_seq and the replay stats. 0, or -1 with err set. */
int journal_replay(struct journal *j, const struct journal_options *o, journal_replay_fn fn, void *arg,
		   char *err, size_t errlen);

/* journal.c, small helpers for any thread: segment and stand-in file
 * names; room for `extra` more entries in j->segs (the caller holds mu, or
 * the writer is not running yet; 0 or -1); fsync retried on EINTR. */
void jseg_name(char *out, size_t n, uint64_t first);
void jstub_name(char *out, size_t n, uint64_t first, uint64_t next);
int jsegs_reserve(struct journal *j, size_t extra);
int jfsync(int fd);

#endif
