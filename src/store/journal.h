/* The durable journal: a segmented, append-only log of checksummed records
 * (format in store/record.h) made durable in batches by one writer thread,
 * replayed in order at open. It is the store's record stream and the unit of
 * replication: records are shipped as written.
 *
 * Threads: journal_open, journal_append, journal_release, journal_segment_of,
 * journal_stats and journal_close run on the event-loop thread that owns
 * `base`. The writer thread does every write, fsync and unlink after open and
 * reports back through a pipe watched by an event on `base`, so done
 * callbacks run on the loop thread, in append order, each exactly once, and
 * never inside journal_append.
 *
 * On disk, under the directory `dir`:
 *   journal/<SEQ>.wj               segments, SEQ = first sequence number
 *   journal/<FIRST>-<NEXT>.released  empty stand-ins for released segments
 *                                  that were not the oldest
 *   journal/lock                   flock()ed while a journal is open
 *   journal/reserve                256 KiB held back for a full disk
 *                                  (journal_full)
 *   quarantine/<SEQ>-<OFFSET>.bad  unreadable bytes copied aside at open
 *   quarantine/<SEQ>-<OFFSET>.torn a torn tail cut off at open, kept too
 *   quarantine/<SEQ>-missing.txt   a note on missing sequence numbers
 * A damaged segment is never modified: its damage is found (and copied
 * aside again if the copy is gone) at every open until the store releases
 * the segment; a torn tail of the last segment is cut off once. */
#ifndef WHARF_STORE_JOURNAL_H
#define WHARF_STORE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/hist.h"

struct event_base;
struct journal;

/* Most payload bytes one record may carry. */
#define JOURNAL_MAX_RECORD (256u << 20)
#define JOURNAL_DEFAULT_SEGMENT_SIZE (64u << 20)

enum journal_sync {
	JOURNAL_SYNC_ALWAYS, /* done after fdatasync; one fsync per batch, the
	                      * next batch starts as soon as the writer is free */
	JOURNAL_SYNC_BATCH,  /* done after fdatasync; at most one fsync per
	                      * batch_delay_us, records gather meanwhile */
	JOURNAL_SYNC_NEVER,  /* done after write(): survives a crash of the
	                      * broker, not of the machine; fsync at close */
};

enum journal_on_corruption {
	JOURNAL_QUARANTINE, /* copy the unreadable part aside, log it, go on */
	JOURNAL_REFUSE,     /* journal_open fails, naming segment and offset */
};

struct journal_options {
	const char *dir;            /* created if missing */
	size_t segment_size;        /* 0: JOURNAL_DEFAULT_SEGMENT_SIZE; a soft
	                             * limit: one record bigger than it gets a
	                             * segment of its own */
	enum journal_sync sync;
	unsigned batch_delay_us;    /* BATCH only: the longest a record waits
	                             * for others before the write and fsync */
	enum journal_on_corruption on_corruption;
};

struct journal_stats {
	uint64_t records;        /* written since open */
	uint64_t bytes;          /* written since open, framing included */
	uint64_t segments;       /* segment files now (stand-ins not counted) */
	uint64_t fsyncs;         /* fdatasync calls on segments since open */
	uint64_t batches;        /* write batches since open */
	uint64_t quarantined;    /* damaged regions and gaps found at open */
	uint64_t torn_tails;     /* torn tails cut at open (0 or 1) */
	uint64_t replayed;       /* records replayed at open */
	uint64_t replayed_bytes; /* bytes read at open */
	uint64_t last_seq;       /* last sequence number given out */
	uint64_t write_errors;   /* batches (or parts) that failed */
	uint64_t failed_records; /* records whose done got an error */
	uint64_t pending;        /* appended, done not called yet */
	uint64_t pending_bytes;  /* their payload bytes: for back-pressure */
	uint64_t released;       /* segment files deleted since open */
	struct hist fsync;       /* durations of fdatasync on segments */
};

/* Called for each good record, in order, during journal_open. `data` is
 * valid during the call only. A nonzero return stops the open, which then
 * fails. */
typedef int (*journal_replay_fn)(void *arg, uint64_t seq, uint8_t type, const uint8_t *data,
				 size_t len);
/* On the loop thread: err 0 when the record is as durable as the sync mode
 * promises; else an errno value (ENOSPC, EIO, ...) and the record is not in
 * the journal (it will not be replayed). */
typedef void (*journal_done_fn)(void *arg, int err);

/* Opens (creating if needed) the journal in o->dir, replays it through
 * `replay` (NULL to skip the calls but still check everything), cuts a torn
 * tail, handles damage per o->on_corruption, and starts the writer thread.
 * Logs progress once a second on stores over a few MB. On success *out is
 * the journal, to be freed with journal_close(). On failure returns -1 with
 * a message in err (errlen bytes, may be 0), and nothing is left running.
 * Must be called before the loop runs other users of the directory; two
 * journals cannot share a directory (the lock file refuses the second). */
int journal_open(struct event_base *base, const struct journal_options *o, journal_replay_fn replay,
		 void *arg, struct journal **out, char *err, size_t errlen);

/* Appends a record of `type` (1-255) with a copy of data[0..len). Sets
 * *seq_out (if not NULL) to its sequence number. done (may be NULL) gets the
 * outcome later, with arg. Returns -1 with errno set, and done is never
 * called, on ENOMEM, on EINVAL (type 0), on EMSGSIZE (len over
 * JOURNAL_MAX_RECORD) or once the journal is closing. */
int journal_append(struct journal *j, uint8_t type, const void *data, size_t len, journal_done_fn done,
		   void *arg, uint64_t *seq_out);

/* The first sequence number of the segment holding record `seq`: exact once
 * its done has fired with 0, a best guess before. 0 when no segment holds
 * it (released, or before the oldest). */
uint64_t journal_segment_of(const struct journal *j, uint64_t seq);

/* The store holds nothing live in `segment` (a first sequence number).
 * The writer thread deletes the file once it is not the segment being
 * written to (the oldest is unlinked; one in the middle becomes a
 * .released stand-in so that replay can tell it from a lost one).
 * Unknown numbers are ignored. */
void journal_release(struct journal *j, uint64_t segment);

/* Nothing the store holds is live below sequence number `seq`: releases
 * (as journal_release) every segment whose records all lie below it, and
 * the segment being written too when it is the only one left, all its
 * records lie below `seq` and it matters (the disk is full, or it is
 * half full): the next record then starts a new one. */
void journal_release_before(struct journal *j, uint64_t seq);

/* Whether a write found the disk full and no room has come back since:
 * the reserve is then given up to the records that free space (acks), and
 * the store refuses durable messages up front. Any thread. */
bool journal_full(const struct journal *j);

void journal_stats(const struct journal *j, struct journal_stats *out);
/* journal_stats' pending_bytes and last_seq + 1, without its lock. */
uint64_t journal_pending_bytes(const struct journal *j);
uint64_t journal_next_seq(const struct journal *j);

/* ---- replication hooks (src/ha/) ---------------------------------------
 * A standby mirrors the journal directory file for file; these let the
 * active side see what is durable, learn when more is, and hold
 * confirmations until the standby has the records too. Loop thread. */

/* One entry of journal_segments(): a segment file or a stand-in. */
struct journal_seginfo {
	uint64_t first;  /* its first sequence number (the file's name) */
	uint64_t next;   /* stubs: the number after them; else 0 */
	bool stub;       /* FIRST-NEXT.released, empty */
	bool open;       /* the segment being written to: only its first
	                  * `size` bytes are durable; any other segment file
	                  * is complete and durable as it is on disk */
	uint64_t size;
};

/* A snapshot of the segments, oldest first, in *out (a malloc()ed array the
 * caller frees; NULL when *n is 0), and the last sequence number that is
 * durable (fdatasync()ed, or written with sync = never). 0, or -1 on
 * ENOMEM. */
int journal_segments(struct journal *j, struct journal_seginfo **out, size_t *n,
		     uint64_t *durable_last);

/* The last durable sequence number (as journal_segments gives it). */
uint64_t journal_durable_last(struct journal *j);

/* fn(arg) runs on the loop after each pass that ran done callbacks (more is
 * durable) and after segments were released or deleted. NULL to stop. */
typedef void (*journal_tap_fn)(void *arg);
void journal_set_tap(struct journal *j, journal_tap_fn fn, void *arg);

/* The replica gate. While on, the done callbacks of records numbered above
 * the gate's number are held, in order, instead of run; advancing the
 * number runs those it now covers; turning the gate off runs them all
 * (journal_close does too). The number only goes up. Callbacks run from
 * inside these calls. */
void journal_gate(struct journal *j, bool on);
void journal_gate_advance(struct journal *j, uint64_t seq);
/* Done callbacks held by the gate now. */
size_t journal_gate_held(const struct journal *j);

/* Writes and syncs what is pending (whatever the sync mode), runs the
 * remaining done callbacks (from inside this call; they must not append or
 * close), stops the writer thread and frees j. NULL is a no-op. Call before
 * event_base_free(base). */
void journal_close(struct journal *j);

#ifdef WHARF_JOURNAL_FAULTS
/* Tests only: the writer's next `times` calls of kind `what` fail with
 * `err`. A failed write first writes half of what it was given. */
enum journal_fault { JOURNAL_FAULT_WRITE, JOURNAL_FAULT_SYNC, JOURNAL_FAULT_TRUNCATE,
		     JOURNAL_FAULT_CREATE, JOURNAL_FAULT_COUNT };
void journal_fault(enum journal_fault what, int err, unsigned times);
#endif

#endif
