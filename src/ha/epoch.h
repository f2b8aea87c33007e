/* A node's activation epoch, kept in DATA_DIR/ha-epoch: the epoch of the
 * history its journal holds (the epoch it was active in, or that of the
 * active it last mirrored from) and the first record written in that
 * epoch. Two nodes with the same epoch hold the same history (one a
 * prefix of the other); a node with an older one may hold records the
 * active never had, from `start` on, and those are discarded when it
 * joins (docs/ha.md, "Epochs").
 *
 * The file: one line "EPOCH START\n", replaced atomically (a temporary
 * file, fsync, rename, fsync of the directory). Loop thread; blocking
 * file I/O, once per promotion or attach. */
#ifndef WHARF_HA_EPOCH_H
#define WHARF_HA_EPOCH_H

#include <stdint.h>

struct ha_epoch {
	uint64_t epoch;  /* 0: none yet (a new node or a pair without epochs) */
	uint64_t start;  /* the first record of the epoch; 0 when unknown */
};

/* Reads dir's file; a missing file is epoch 0. -1 with a logged reason
 * when it is damaged. */
int ha_epoch_load(const char *dir, struct ha_epoch *out);
/* Writes it; -1 with a logged reason. */
int ha_epoch_save(const char *dir, const struct ha_epoch *e);
/* What of a joining standby's journal the active (epoch `mine`) can keep:
 * its records up to the returned number (0: none). `last` is the
 * standby's last record, `theirs` its epoch. The same epoch: all of it. The
 * epoch just before ours: up to our epoch's start (its old active may
 * have written past it what we never had). Older, or newer than ours (we
 * are the stale one: the caller refuses it): nothing. */
uint64_t ha_epoch_keep(const struct ha_epoch *mine, uint64_t theirs, uint64_t last);

#endif
