/* CRC32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), the
 * checksum of the journal's records (iSCSI, ext4 and Kafka use the same).
 * Uses the SSE4.2 crc32 instruction where the CPU has it, else a
 * slicing-by-8 table. Pure functions, safe from any thread. */
#ifndef WHARF_STORE_CRC32C_H
#define WHARF_STORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends `crc` (0 to start) over `len` bytes: crc32c(crc32c(0, a), b) is
 * the CRC of a followed by b. crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* The table-driven implementation alone, for tests and benchmarks. */
uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len);
/* 1 when crc32c() uses the CPU's crc32 instruction. */
int crc32c_hw_available(void);

#endif
