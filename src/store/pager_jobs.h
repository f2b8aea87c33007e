/* The page file's jobs at the I/O thread (store/pageio.h), and its entry
 * format, shared by pager.c (the loop side) and pager_jobs.c (what runs on
 * the thread). Not for other modules. */
#ifndef WHARF_STORE_PAGER_JOBS_H
#define WHARF_STORE_PAGER_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "store/pageio.h"
#include "store/record.h"

#define PJ_ENTRY_HEAD 12u  /* u32 length, u64 record */
#define PJ_READ_CHUNK (256u << 10)
#define PJ_MAX_ENTRY (JREC_MAX_PAYLOAD)

struct pager;

enum pjob_op { PJ_WRITE, PJ_READ, PJ_TRUNCATE, PJ_SCAN };

/* data belongs to the job. The thread sets only got and err (and a scan's
 * recs), which the loop reads once the job reports. */
struct pjob {
	struct pio_job io;
	struct pager *p;       /* NULL for a scan, which may outlive its pager */
	struct pjob *wnext;    /* the pager's writes in flight (loop side) */
	enum pjob_op op;
	int fd;                /* a scan's is its own copy */
	unsigned gen;
	uint64_t off;
	uint8_t *data;
	size_t len, cap;
	size_t got;
	int err;
	void (*each)(void *arg, uint64_t rec);
	void *arg;
	uint64_t *recs;
	size_t nrecs, reccap;
};

/* A job of p's for fd; io.done is the caller's to set. NULL on out of
 * memory. */
struct pjob *pjob_new(enum pjob_op op, int fd);
void pjob_free(struct pjob *j);
/* Reads [off, off + len) of fd (a copy of it: the pager may go first) and
 * reports each nonzero record of its entries to each(arg, rec) on the
 * loop. Owned by no pager. NULL on failure. */
struct pjob *pjob_scan_new(int fd, uint64_t off, uint64_t len, void (*each)(void *arg, uint64_t rec),
			   void *arg);
/* each(arg, rec) for every nonzero record in the whole entries at the
 * start of b[0..n) (each may be NULL); the bytes they take. */
size_t pjob_each_rec(const uint8_t *b, size_t n, void (*each)(void *arg, uint64_t rec), void *arg);

#endif
