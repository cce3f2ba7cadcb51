/*
 * Text fields of a request, checked on the wire before decoding. protobuf-c
 * decodes a `string` into a NUL-terminated char * without looking at it, so
 * after decoding an embedded NUL is invisible (the text is cut short) and
 * invalid UTF-8 is passed on until a standard client fails to parse a reply
 * that echoes it. This walks the encoded message with its descriptor and runs
 * every `string` field, nested messages and repeated fields included, through
 * the one text check (common/utf8.h). Malformed encodings are left to the
 * decoder, which reports them.
 */

#include "rpc/server.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/utf8.h"

#define MAX_DEPTH 32

static int varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v) {
  *v = 0;
  for (int s = 0; s < 64 && *i < n; s += 7) {
    uint8_t b = p[(*i)++];
    *v |= (uint64_t)(b & 0x7f) << s;
    if (!(b & 0x80)) return 0;
  }
  return -1;
}

static int walk(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, char *path,
                size_t plen, size_t cap, int depth) {
  unsigned seen[256] = {0}; /* occurrences per field index, for "rows[3]" */
  size_t i = 0;
  while (i < n) {
    uint64_t tag, len;
    if (varint(p, n, &i, &tag)) return 0;
    switch (tag & 7) {
    case 0:
      if (varint(p, n, &i, &len)) return 0;
      continue;
    case 1:
      i += 8;
      continue;
    case 5:
      i += 4;
      continue;
    case 2: break;
    default: return 0; /* groups: not in our protocol; the decoder decides */
    }
    if (varint(p, n, &i, &len) || len > n - i) return 0;
    const uint8_t *v = p + i;
    i += (size_t)len;
    const ProtobufCFieldDescriptor *f =
        tag >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3))
                               : NULL;
    if (!f || (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)) continue;
    size_t fi = (size_t)(f - d->fields);
    unsigned k = fi < 256 ? seen[fi]++ : 0;
    int w;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
      w = snprintf(path + plen, cap - plen, "%s%s[%u]", plen ? "." : "", f->name, k);
    else
      w = snprintf(path + plen, cap - plen, "%s%s", plen ? "." : "", f->name);
    size_t np = w < 0 || (size_t)w >= cap - plen ? cap - 1 : plen + (size_t)w;
    if (f->type == PROTOBUF_C_TYPE_STRING) {
      size_t at;
      strata_text_fault t = strata_text_check(v, (size_t)len, &at);
      if (t)
        return strata_err(STRATA_EINVALID, "%s: %s (byte %zu of %llu)", path,
                          strata_text_fault_str(t), at, (unsigned long long)len);
    } else if (depth < MAX_DEPTH) {
      int rc = walk(f->descriptor, v, (size_t)len, path, np, cap, depth + 1);
      if (rc) return rc;
    }
    path[plen] = 0;
  }
  return 0;
}

int rpc_check_text(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n) {
  char path[512];
  path[0] = 0;
  return walk(d, p, n, path, 0, sizeof path, 0);
}
