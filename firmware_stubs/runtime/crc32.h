#ifndef EDGETK_CRC32_H
#define EDGETK_CRC32_H
#include <stddef.h>
#include <stdint.h>
/* CRC-32 (IEEE 802.3, zlib's crc32): crc32_update(0, ...) starts a new checksum. */
uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t n);
#endif
