/*
 * The audit log's writer (audit.h): JSON lines built in a fixed buffer,
 * appended with one write() under a mutex and made durable with fdatasync
 * before the caller continues.
 */
#include "server/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/mutex.h"
#include "server/log.h"

struct srv_audit {
  int fd;
  char *path;
  strata_mutex mu; /* one append at a time; also guards the rate limit below */
  int64_t window_s; /* the monotonic second the refusal count is for */
  unsigned in_window;
  uint64_t dropped;
  int torn; /* a failed append may have left part of a line: end it first */
  /* Test only: $STRATA_TEST_AUDIT_FAIL_AFTER=N makes every append after the first
   * N fail with EIO (server/README.md, "Test-only knobs"); -1 = off. */
  long fail_after, appends;
};

int srv_audit_open(const char *data_dir, srv_audit **out) {
  *out = NULL;
  srv_audit *a = calloc(1, sizeof *a);
  size_t n = strlen(data_dir) + sizeof SRV_AUDIT_FILE + 2;
  if (!a || !(a->path = malloc(n))) {
    free(a);
    return strata_err(STRATA_ENOMEM, "audit log: out of memory");
  }
  snprintf(a->path, n, "%s/%s", data_dir, SRV_AUDIT_FILE);
  a->fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (a->fd < 0) {
    int e = errno;
    free(a->path);
    free(a);
    return strata_err(e, "audit log %s/%s: cannot open: %s", data_dir, SRV_AUDIT_FILE,
                      strerror(e));
  }
  strata_mutex_init(&a->mu);
  const char *fa = getenv("STRATA_TEST_AUDIT_FAIL_AFTER");
  a->fail_after = fa && *fa ? strtol(fa, NULL, 10) : -1;
  if (a->fail_after >= 0)
    srv_log(SRV_LOG_WARN, "event=test_audit_fail_after appends=%ld", a->fail_after);
  /* A crash mid-append leaves a line without its newline: end it, so the
   * reader skips exactly that torn line and the next record stands alone. */
  struct stat st;
  char last = '\n';
  if (fstat(a->fd, &st) == 0 && st.st_size > 0) {
    int rfd = open(a->path, O_RDONLY | O_CLOEXEC);
    if (rfd >= 0) {
      if (pread(rfd, &last, 1, st.st_size - 1) != 1) last = '\n';
      close(rfd);
    }
  }
  if (last != '\n' && (write(a->fd, "\n", 1) != 1 || fdatasync(a->fd) != 0)) {
    int e = errno;
    strata_err(e, "audit log %s: cannot end a torn last line: %s", a->path, strerror(e));
    srv_audit_close(a);
    return e;
  }
  *out = a;
  return 0;
}

void srv_audit_close(srv_audit *a) {
  if (!a) return;
  if (a->fd >= 0) close(a->fd);
  strata_mutex_destroy(&a->mu);
  free(a->path);
  free(a);
}

const char *srv_audit_path(const srv_audit *a) { return a->path; }

/* --- building a line ---------------------------------------------------------- */

static void jb_raw(srv_jbuf *b, const char *s, size_t n) {
  /* Two bytes stay free for the closing "}\n". */
  if (b->n + n + 2 > sizeof b->p) {
    b->cut = 1;
    return;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
}

static void jb_lit(srv_jbuf *b, const char *s) { jb_raw(b, s, strlen(s)); }

/* A JSON string literal of s[0..n), control bytes and quotes escaped; bytes
 * >= 0x80 pass as they are (the server's strings are checked UTF-8). */
static void jb_quoted(srv_jbuf *b, const char *s, size_t n) {
  jb_lit(b, "\"");
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    char esc[8];
    if (ch == '"' || ch == '\\') {
      esc[0] = '\\';
      esc[1] = (char)ch;
      jb_raw(b, esc, 2);
    } else if (ch < 0x20 || ch == 0x7f) {
      snprintf(esc, sizeof esc, "\\u%04x", ch);
      jb_raw(b, esc, 6);
    } else {
      jb_raw(b, (const char *)&ch, 1);
    }
  }
  jb_lit(b, "\"");
}

static void jb_key(srv_jbuf *b, const char *key) {
  if (b->n > 1 && b->p[b->n - 1] != '{' && b->p[b->n - 1] != '[') jb_lit(b, ",");
  jb_quoted(b, key, strlen(key));
  jb_lit(b, ":");
}

void srv_jb_begin(srv_jbuf *b, const char *event) {
  b->n = 0;
  b->cut = 0;
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  char t[64];
  snprintf(t, sizeof t, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);
  jb_lit(b, "{");
  srv_jb_str(b, "time", t);
  srv_jb_u64(b, "time_ns", (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
  srv_jb_str(b, "event", event);
}

void srv_jb_strn(srv_jbuf *b, const char *key, const char *val, size_t n) {
  jb_key(b, key);
  jb_quoted(b, val, n);
}

void srv_jb_str(srv_jbuf *b, const char *key, const char *val) {
  srv_jb_strn(b, key, val ? val : "", val ? strlen(val) : 0);
}

void srv_jb_u64(srv_jbuf *b, const char *key, uint64_t v) {
  char t[32];
  jb_key(b, key);
  jb_raw(b, t, (size_t)snprintf(t, sizeof t, "%" PRIu64, v));
}

void srv_jb_bool(srv_jbuf *b, const char *key, int v) {
  jb_key(b, key);
  jb_lit(b, v ? "true" : "false");
}

/* --- a request's essentials --------------------------------------------------- */

#define JB_MAX_STRING 256
#define JB_MAX_BYTES 64
#define JB_MAX_REPEATED 16
#define JB_MAX_DEPTH 2

static void jb_message(srv_jbuf *b, const ProtobufCMessage *m, int depth);

/* One value of field f at p (the element, for a repeated field). */
static void jb_value(srv_jbuf *b, const ProtobufCFieldDescriptor *f, const void *p, int depth) {
  char t[40];
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    jb_raw(b, t, (size_t)snprintf(t, sizeof t, "%" PRId32, *(const int32_t *)p));
    break;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    jb_raw(b, t, (size_t)snprintf(t, sizeof t, "%" PRIu32, *(const uint32_t *)p));
    break;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    jb_raw(b, t, (size_t)snprintf(t, sizeof t, "%" PRId64, *(const int64_t *)p));
    break;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    jb_raw(b, t, (size_t)snprintf(t, sizeof t, "%" PRIu64, *(const uint64_t *)p));
    break;
  case PROTOBUF_C_TYPE_FLOAT: jb_raw(b, t, (size_t)snprintf(t, sizeof t, "%g", *(const float *)p)); break;
  case PROTOBUF_C_TYPE_DOUBLE: jb_raw(b, t, (size_t)snprintf(t, sizeof t, "%g", *(const double *)p)); break;
  case PROTOBUF_C_TYPE_BOOL: jb_lit(b, *(const protobuf_c_boolean *)p ? "true" : "false"); break;
  case PROTOBUF_C_TYPE_ENUM: {
    const ProtobufCEnumValue *ev =
        protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
    if (ev) jb_quoted(b, ev->name, strlen(ev->name));
    else jb_raw(b, t, (size_t)snprintf(t, sizeof t, "%d", *(const int *)p));
    break;
  }
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(char *const *)p;
    size_t n = s ? strlen(s) : 0;
    jb_quoted(b, s ? s : "", n > JB_MAX_STRING ? JB_MAX_STRING : n);
    break;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    const ProtobufCBinaryData *d = p;
    size_t n = d->len > JB_MAX_BYTES ? JB_MAX_BYTES : d->len;
    char hex[2 * JB_MAX_BYTES + 8];
    size_t k = 0;
    hex[k++] = '0';
    hex[k++] = 'x';
    for (size_t i = 0; i < n; i++) k += (size_t)snprintf(hex + k, 3, "%02x", d->data[i]);
    if (n < d->len) k += (size_t)snprintf(hex + k, 4, "...");
    jb_quoted(b, hex, k);
    break;
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;
    if (!sub) jb_lit(b, "null");
    else if (depth >= JB_MAX_DEPTH) jb_lit(b, "\"{...}\"");
    else jb_message(b, sub, depth + 1);
    break;
  }
  }
}

static size_t elem_size(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
    return 8;
  case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
  case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
  case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
  case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
  default: return 4;
  }
}

/* Whether a singular proto3 field holds its default (then it is left out). */
static int is_default(const ProtobufCFieldDescriptor *f, const void *p) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_STRING: return !*(char *const *)p || !**(char *const *)p;
  case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)p)->len == 0;
  case PROTOBUF_C_TYPE_MESSAGE: return *(void *const *)p == NULL;
  default: {
    static const unsigned char zero[16];
    return memcmp(p, zero, elem_size(f->type)) == 0;
  }
  }
}

static void jb_message(srv_jbuf *b, const ProtobufCMessage *m, int depth) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  jb_lit(b, "{");
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    const char *base = (const char *)m;
    const void *p = base + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) continue;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
               f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING) {
      if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset)) continue;
    } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(base + f->quantifier_offset);
      if (!n) continue;
      const char *arr = *(const char *const *)p;
      jb_key(b, f->name);
      jb_lit(b, "[");
      size_t show = n > JB_MAX_REPEATED ? JB_MAX_REPEATED : n;
      for (size_t k = 0; k < show; k++) {
        if (k) jb_lit(b, ",");
        jb_value(b, f, arr + k * elem_size(f->type), depth);
      }
      if (show < n) {
        char t[48];
        jb_raw(b, t, (size_t)snprintf(t, sizeof t, ",\"+%zu more\"", n - show));
      }
      jb_lit(b, "]");
      continue;
    } else if (is_default(f, p)) {
      continue;
    }
    jb_key(b, f->name);
    jb_value(b, f, p, depth);
  }
  jb_lit(b, "}");
}

void srv_jb_request(srv_jbuf *b, const char *key, const ProtobufCMessage *m) {
  if (!m) return;
  size_t mark = b->n;
  jb_key(b, key);
  jb_message(b, m, 0);
  if (b->cut) { /* a request too large to record whole: say so instead */
    b->n = mark;
    b->cut = 0;
    jb_key(b, key);
    jb_lit(b, "\"(too large to record)\"");
  }
}

/* --- appending ------------------------------------------------------------------ */

int srv_audit_append(srv_audit *a, srv_jbuf *b) {
  if (b->cut) srv_jb_bool(b, "truncated", 1);
  /* jb_raw always leaves room for these two bytes. */
  b->p[b->n++] = '}';
  b->p[b->n++] = '\n';
  strata_mutex_lock(&a->mu);
  size_t off = 0;
  int e = 0;
  if (a->fail_after >= 0 && a->appends >= a->fail_after) e = EIO; /* test only */
  a->appends++;
  if (!e && a->torn) {
    if (write(a->fd, "\n", 1) == 1) a->torn = 0;
    else e = errno ? errno : EIO;
  }
  while (!e && off < b->n) {
    ssize_t w = write(a->fd, b->p + off, b->n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      e = w < 0 ? errno : EIO;
      break;
    }
    off += (size_t)w;
  }
  if (!e && fdatasync(a->fd) != 0) e = errno;
  if (e && off) a->torn = 1;
  strata_mutex_unlock(&a->mu);
  if (e)
    return strata_err(e, "audit log %s: the record could not be made durable: %s", a->path,
                      strerror(e));
  return 0;
}

int srv_audit_refusal_slot(srv_audit *a, uint64_t *dropped) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  strata_mutex_lock(&a->mu);
  if (ts.tv_sec != a->window_s) {
    a->window_s = ts.tv_sec;
    a->in_window = 0;
  }
  int ok = a->in_window < SRV_AUDIT_REFUSALS_PER_SEC;
  if (ok) {
    a->in_window++;
    *dropped = a->dropped;
    a->dropped = 0;
  } else {
    a->dropped++;
  }
  strata_mutex_unlock(&a->mu);
  return ok;
}
