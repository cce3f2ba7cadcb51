/*
 * The text forms stratactl reads and prints: keys (text or 0x hex),
 * durations, UTC ISO-8601 times, version pins, and decoded PyChunkedGraph
 * row keys (through the lock manager's own key helpers, so the decoding can
 * never disagree with the keys the server's users build).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "locks/lock.h"
#include "tools/stratactl/ctl.h"

/* --- keys ------------------------------------------------------------------------ */

static int printable(const uint8_t *k, size_t len) {
  if (len == 0 || (len >= 2 && k[0] == '0' && (k[1] == 'x' || k[1] == 'X'))) return 0;
  for (size_t i = 0; i < len; i++)
    if (k[i] < 0x21 || k[i] > 0x7e) return 0;
  return 1;
}

char *ctl_hex_str(const uint8_t *k, size_t len) {
  static const char hexd[] = "0123456789abcdef";
  char *s = malloc(2 * len + 3);
  if (!s) return NULL;
  s[0] = '0';
  s[1] = 'x';
  for (size_t i = 0; i < len; i++) {
    s[2 + 2 * i] = hexd[k[i] >> 4];
    s[3 + 2 * i] = hexd[k[i] & 15];
  }
  s[2 + 2 * len] = 0;
  return s;
}

char *ctl_key_str(const uint8_t *k, size_t len) {
  if (!printable(k, len)) return ctl_hex_str(k, len);
  char *s = malloc(len + 1);
  if (!s) return NULL;
  memcpy(s, k, len);
  s[len] = 0;
  return s;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = tolower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int ctl_key_parse(const char *s, uint8_t **out, size_t *len, char *err, size_t errcap) {
  size_t n = strlen(s);
  *out = NULL;
  *len = 0;
  if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    size_t h = n - 2;
    if (h == 0 || h % 2) {
      snprintf(err, errcap, "\"%s\": hex key needs an even, non-zero number of digits after 0x", s);
      return -1;
    }
    uint8_t *b = malloc(h / 2);
    if (!b) {
      snprintf(err, errcap, "out of memory");
      return -2;
    }
    for (size_t i = 0; i < h / 2; i++) {
      int hi = hexval((unsigned char)s[2 + 2 * i]), lo = hexval((unsigned char)s[3 + 2 * i]);
      if (hi < 0 || lo < 0) {
        free(b);
        snprintf(err, errcap, "\"%s\": not a hex digit at position %zu", s,
                 2 + 2 * i + (hi >= 0));
        return -1;
      }
      b[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = b;
    *len = h / 2;
    return 0;
  }
  if (n == 0) {
    snprintf(err, errcap, "empty key (keys are 1 or more bytes)");
    return -1;
  }
  *out = malloc(n);
  if (!*out) {
    snprintf(err, errcap, "out of memory");
    return -2;
  }
  memcpy(*out, s, n);
  *len = n;
  return 0;
}

char *ctl_base64(const uint8_t *p, size_t len) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *s = malloc((len + 2) / 3 * 4 + 1), *o = s;
  if (!s) return NULL;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0) |
                 (i + 2 < len ? p[i + 2] : 0);
    *o++ = tab[v >> 18];
    *o++ = tab[v >> 12 & 63];
    *o++ = i + 1 < len ? tab[v >> 6 & 63] : '=';
    *o++ = i + 2 < len ? tab[v & 63] : '=';
  }
  *o = 0;
  return s;
}

/* --- numbers and durations ---------------------------------------------------------- */

int ctl_u64_parse(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  if (!s || !isdigit((unsigned char)*s)) return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (*end || errno || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int ctl_id_parse(const char *s, uint64_t *out) {
  if (!s || (s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))) return ctl_u64_parse(s, 0, UINT64_MAX, out);
  size_t n = strlen(s + 2);
  if (n == 0 || n > 16) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    int h = hexval((unsigned char)s[2 + i]);
    if (h < 0) return -1;
    v = v << 4 | (uint64_t)h;
  }
  *out = v;
  return 0;
}

int ctl_dur_parse(const char *s, int64_t *ms) {
  static const struct { const char *u; double ms; } units[] = {
      {"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}, {"d", 86400e3}};
  if (!s || !*s) return -1;
  if (strcmp(s, "0") == 0) {
    *ms = 0;
    return 0;
  }
  double total = 0;
  while (*s) {
    /* A number is digits with an optional decimal point ("30", "1.5", ".5"):
     * no sign, exponent, hex or inf/nan, which strtod would take. */
    double v = 0, scale = 1;
    int digits = 0, point = 0;
    for (; isdigit((unsigned char)*s) || (*s == '.' && !point); s++) {
      if (*s == '.') {
        point = 1;
        continue;
      }
      digits++;
      if (point) v += (*s - '0') * (scale /= 10);
      else v = v * 10 + (*s - '0');
    }
    if (!digits) return -1;
    size_t k, n = 0;
    for (k = 0; k < sizeof units / sizeof units[0]; k++) {
      n = strlen(units[k].u);
      /* "m" must not swallow the "m" of "ms". */
      if (strncmp(s, units[k].u, n) == 0 && !(n == 1 && s[0] == 'm' && s[1] == 's')) break;
    }
    if (k == sizeof units / sizeof units[0]) return -1;
    total += v * units[k].ms;
    s += n;
  }
  if (total > 9.2e15) return -1;
  *ms = (int64_t)(total + 0.5);
  return 0;
}

const char *ctl_dur_str(int64_t ms, char *buf, size_t cap) {
  const char *sign = ms < 0 ? "-" : "";
  if (ms < 0) ms = -ms;
  if (ms < 1000) snprintf(buf, cap, "%s%lldms", sign, (long long)ms);
  else if (ms < 60000) snprintf(buf, cap, "%s%.1fs", sign, ms / 1000.0);
  else if (ms < 3600000) snprintf(buf, cap, "%s%lldm%02llds", sign, (long long)(ms / 60000), (long long)(ms / 1000 % 60));
  else if (ms < 86400000) snprintf(buf, cap, "%s%lldh%02lldm", sign, (long long)(ms / 3600000), (long long)(ms / 60000 % 60));
  else snprintf(buf, cap, "%s%lldd%02lldh", sign, (long long)(ms / 86400000), (long long)(ms / 3600000 % 24));
  return buf;
}

/* --- times ------------------------------------------------------------------------------ */

int64_t ctl_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

const char *ctl_time_str(int64_t ns, int digits, char *buf, size_t cap) {
  if (ns == 0) {
    snprintf(buf, cap, "-");
    return buf;
  }
  int64_t sec = ns / 1000000000, frac = ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    sec--;
  }
  time_t t = (time_t)sec;
  struct tm tm;
  gmtime_r(&t, &tm);
  char base[32];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  if (digits == 9) snprintf(buf, cap, "%s.%09lldZ", base, (long long)frac);
  else if (digits == 3) snprintf(buf, cap, "%s.%03lldZ", base, (long long)(frac / 1000000));
  else snprintf(buf, cap, "%sZ", base);
  return buf;
}

/* Parses an RFC 3339 time "YYYY-MM-DDTHH:MM:SS[.fraction]" then "Z" or an
 * offset "+HH:MM" / "-HH:MM" ('T' and 'Z' in either case). Every field must be in range:
 * month 01..12, a day the month has, hour 00..23, minute and second 00..59 (no
 * leap second); timegm would otherwise normalize 2026-00-15 into December or
 * :60 into the next minute. Pins and audit --since share it. Returns 0 or -1. */
int ctl_time_parse(const char *s, int64_t *ns) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  /* Fixed layout YYYY-MM-DDTHH:MM:SS, checked character by character. */
  static const char layout[] = "dddd-dd-ddTdd:dd:dd";
  for (size_t i = 0; i < sizeof layout - 1; i++) {
    if (layout[i] == 'd' ? !isdigit((unsigned char)s[i])
                         : s[i] != layout[i] && !(layout[i] == 'T' && s[i] == 't'))
      return -1;
  }
  tm.tm_year = atoi(s) - 1900;
  tm.tm_mon = atoi(s + 5) - 1;
  tm.tm_mday = atoi(s + 8);
  tm.tm_hour = atoi(s + 11);
  tm.tm_min = atoi(s + 14);
  tm.tm_sec = atoi(s + 17);
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 59)
    return -1;
  const char *p = s + sizeof layout - 1;
  int64_t frac = 0;
  if (*p == '.') {
    int nd = 0;
    for (p++; isdigit((unsigned char)*p); p++, nd++) {
      if (nd < 9) frac = frac * 10 + (*p - '0');
    }
    if (nd == 0) return -1;
    for (; nd < 9; nd++) frac *= 10;
  }
  int64_t offset_s = 0;
  if (*p == '+' || *p == '-') {
    /* "+HH:MM": exactly that layout, hours 00..23, minutes 00..59. */
    if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]) || p[3] != ':' ||
        !isdigit((unsigned char)p[4]) || !isdigit((unsigned char)p[5]) || p[6])
      return -1;
    int hh = (p[1] - '0') * 10 + (p[2] - '0'), mm = (p[4] - '0') * 10 + (p[5] - '0');
    if (hh > 23 || mm > 59) return -1;
    offset_s = (int64_t)(hh * 3600 + mm * 60) * (*p == '-' ? -1 : 1);
  } else if (strcmp(p, "Z") != 0 && strcmp(p, "z") != 0) {
    return -1;
  }
  struct tm check = tm;
  time_t t = timegm(&tm);
  /* A field timegm had to carry into the next one (Feb 30) was out of range. */
  if (t == (time_t)-1 || tm.tm_year != check.tm_year || tm.tm_mon != check.tm_mon ||
      tm.tm_mday != check.tm_mday || tm.tm_hour != check.tm_hour || tm.tm_min != check.tm_min ||
      tm.tm_sec != check.tm_sec)
    return -1;
  /* Local time = UTC + offset. Nanoseconds since the epoch end in April 2262. */
  int64_t sec = (int64_t)t - offset_s;
  if (sec < 0 || sec > INT64_MAX / 1000000000 - 1) return -1;
  *ns = sec * 1000000000 + frac;
  return 0;
}

/* --- pins --------------------------------------------------------------------------------- */

int ctl_pin_parse(const char *s, ctl_pin *p) {
  memset(p, 0, sizeof *p);
  if (s[0] == 'v') {
    /* v0 is the empty store before the first commit (docs/protocol.md). */
    if (ctl_u64_parse(s + 1, 0, UINT64_MAX, &p->generation)) return -1;
    p->kind = 1;
    return 0;
  }
  if (ctl_time_parse(s, &p->time_ns)) return -1;
  p->kind = 2;
  return 0;
}

int ctl_split_pin(const char *s, size_t *key_end, ctl_pin *p) {
  memset(p, 0, sizeof *p);
  *key_end = strlen(s);
  const char *at = strrchr(s, '@');
  if (!at) return 0;
  *key_end = (size_t)(at - s);
  return ctl_pin_parse(at + 1, p);
}

Strata__V1__VersionPin *ctl_pin_msg(const ctl_pin *p, Strata__V1__VersionPin *m) {
  if (p->kind == 0) return NULL;
  strata__v1__version_pin__init(m);
  if (p->kind == 1) {
    m->pin_case = STRATA__V1__VERSION_PIN__PIN_GENERATION;
    m->generation = p->generation;
  } else {
    m->pin_case = STRATA__V1__VERSION_PIN__PIN_COMMIT_TIME_NS;
    m->commit_time_ns = p->time_ns;
  }
  return m;
}

/* --- row keys ------------------------------------------------------------------------------ */

static uint64_t get_be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

const char *ctl_row_decode(const uint8_t *k, size_t len, char *buf, size_t cap,
                           const char **type, uint64_t ids[3]) {
  if (len == LK_L2_KEY_LEN) {
    uint8_t want[LK_L2_KEY_LEN];
    ids[0] = get_be64(k + 2);
    lk_l2_chunk_key(ids[0], want);
    if (memcmp(want, k, len) != 0) return NULL;
    *type = "chunk";
    snprintf(buf, cap, "chunk %llu", (unsigned long long)ids[0]);
    return buf;
  }
  if (len == LK_BLOCK_KEY_LEN) {
    uint8_t want[LK_BLOCK_KEY_LEN];
    for (int i = 0; i < 3; i++) ids[i] = get_be64(k + 2 + 8 * i);
    lk_block_key(ids[0], ids[1], ids[2], want);
    if (memcmp(want, k, len) != 0) return NULL;
    *type = "block";
    snprintf(buf, cap, "block %llu,%llu,%llu", (unsigned long long)ids[0],
             (unsigned long long)ids[1], (unsigned long long)ids[2]);
    return buf;
  }
  return NULL;
}
