/*
 * How a key or lock row appears in a message: the one display form of every
 * error, log line and selfcheck report (stratactl's table and JSON forms are
 * its own, tools/stratactl/fmt.c).
 *
 *   "fence/row"        every byte printable ASCII (0x20..0x7e) and no '"' or '\'
 *   0x0a1bff02         anything else, as hex
 *
 * At most STRATA_KEY_SHOW_BYTES bytes of the key are shown; a longer key ends
 * in "... (N bytes)". buf needs STRATA_KEY_SHOW_BUF bytes.
 */
#ifndef STRATA_COMMON_KEYSHOW_H
#define STRATA_COMMON_KEYSHOW_H

#include <stddef.h>
#include <stdint.h>

#define STRATA_KEY_SHOW_BYTES 64
#define STRATA_KEY_SHOW_BUF (2 * STRATA_KEY_SHOW_BYTES + 32)

const char *strata_key_show(const void *key, size_t len, char *buf, size_t cap);

#endif
