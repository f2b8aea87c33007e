/* The store's encoding of a struct message: what a durable message record
 * carries, and what a standby receives. Self-contained (no pointers, no
 * router state) and versioned. Pure functions, any thread.
 *
 *     u8  version (1)
 *     u8  flags         bit 0 durable, bit 1 retain, bit 2 the body is the
 *                       tail of the AMQP encoding (its field is then a u32
 *                       length alone: an AMQP message's body is written once)
 *     u8  qos, priority, payload_format, dest_kind
 *     i64 timestamp_ms, expiry_ms
 *     str dest, content_type, correlation_id, reply_to
 *     u32 nprops, then nprops times: str name, str value
 *     str body, amqp
 * A str is a u32 length then that many bytes; length 0xffffffff stands for
 * an absent (NULL) field. Integers are little endian. */
#ifndef WHARF_STORE_MSGCODEC_H
#define WHARF_STORE_MSGCODEC_H

#include <stddef.h>
#include <stdint.h>

struct message;

/* Bytes msgcodec_write() will write for m. */
size_t msgcodec_size(const struct message *m);
/* Writes m at p (msgcodec_size(m) bytes); returns the end. */
uint8_t *msgcodec_write(uint8_t *p, const struct message *m);
/* A new message (one reference, id 0) from exactly p[0..n), or NULL with
 * *why saying what was wrong (or "out of memory"). Every length is checked
 * against what is left. */
struct message *msgcodec_read(const uint8_t *p, size_t n, const char **why);

#endif
