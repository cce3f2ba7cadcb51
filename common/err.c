/*
 * The error table's functions and the per-thread detail message. See err.h.
 */
#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ERRMSG_MAX STRATA_ERRMSG_MAX

static _Thread_local char errmsg[ERRMSG_MAX];
static _Thread_local int errmsg_rc;

const char *strata_strerror(int rc) {
  switch (rc) {
  case STRATA_OK: return "success";
#define XX(name, val, msg) case STRATA_E##name: return msg;
  STRATA_ERRNO_MAP(XX)
#undef XX
  default: return rc > 0 ? strerror(rc) : "unknown error";
  }
}

const char *strata_errname(int rc) {
  switch (rc) {
  case STRATA_OK: return "STRATA_OK";
#define XX(name, val, msg) case STRATA_E##name: return "STRATA_E" #name;
  STRATA_ERRNO_MAP(XX)
#undef XX
  default:
    if (rc > 0) {
      const char *n = strerrorname_np(rc);
      if (n) return n;
    }
    return "STRATA_EUNKNOWN";
  }
}

int strata_err(int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errmsg, sizeof errmsg, fmt, ap);
  va_end(ap);
  errmsg_rc = rc;
  return rc;
}

int strata_err_wrap(int rc, const char *fmt, ...) {
  char prefix[ERRMSG_MAX];
  char old[ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  if (errmsg_rc == rc && errmsg[0])
    memcpy(old, errmsg, sizeof old);
  else
    snprintf(old, sizeof old, "%s", strata_strerror(rc));
  /* Truncation is acceptable: the message is for people, and bounded. */
  size_t n = strnlen(prefix, sizeof prefix - 1);
  memcpy(errmsg, prefix, n);
  if (n + 2 < sizeof errmsg) {
    errmsg[n++] = ':';
    errmsg[n++] = ' ';
  }
  size_t rest = strnlen(old, sizeof old - 1);
  if (rest > sizeof errmsg - 1 - n) rest = sizeof errmsg - 1 - n;
  memcpy(errmsg + n, old, rest);
  errmsg[n + rest] = 0;
  errmsg_rc = rc;
  return rc;
}

const char *strata_errmsg(void) {
  if (!errmsg[0]) return strata_strerror(errmsg_rc);
  return errmsg;
}

const char *strata_errmsg_for(int rc) {
  if (errmsg_rc == rc && errmsg[0]) return errmsg;
  return strata_strerror(rc);
}

void strata_err_clear(void) {
  errmsg[0] = 0;
  errmsg_rc = 0;
}

void strata_err_save(int rc, strata_err_saved *s) {
  s->rc = rc;
  snprintf(s->msg, sizeof s->msg, "%s", strata_errmsg());
}

int strata_err_restore(const strata_err_saved *s) {
  snprintf(errmsg, sizeof errmsg, "%s", s->msg);
  errmsg_rc = s->rc;
  return s->rc;
}
