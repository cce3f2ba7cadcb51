/*
 * Strata's error codes: one table (STRATA_ERRNO_MAP) generates the enum,
 * strata_strerror() and strata_errname(), as libuv does with UV_ERRNO_MAP.
 * Functions return 0 on success, a negative STRATA_E* code, or a positive
 * errno value passed through from the OS (LMDB's convention).
 *
 * The code says what kind of failure; the detail (which object, field, offset,
 * key or file) is recorded per thread by strata_err() and read back with
 * strata_errmsg(), so a caller can show the user a precise message.
 */
#ifndef STRATA_COMMON_ERR_H
#define STRATA_COMMON_ERR_H

#include <stddef.h>

/* XX(NAME, value, "what it means") */
#define STRATA_ERRNO_MAP(XX)                                                       \
  XX(INVALID,     -30001, "invalid argument")                                      \
  XX(NOTFOUND,    -30002, "not found")                                             \
  XX(CORRUPT,     -30003, "data is corrupt (checksum or structure check failed)")  \
  XX(TOOBIG,      -30004, "too large")                                             \
  XX(RANGE,       -30005, "out of range")                                          \
  XX(EXISTS,      -30006, "already exists")                                        \
  XX(NOMEM,       -30007, "out of memory")                                         \
  XX(IO,          -30008, "I/O error")                                             \
  XX(NOSPC,       -30009, "no space left on device")                               \
  XX(BUSY,        -30010, "resource busy")                                         \
  XX(CONDITION,   -30011, "a commit condition was not met")                        \
  XX(FENCED,      -30012, "the operation no longer holds a fenced lock")           \
  XX(LOCKED,      -30013, "held by another operation")                             \
  XX(EXPIRED,     -30014, "lock expired")                                          \
  XX(UNSUPPORTED, -30015, "unsupported format or feature")                         \
  XX(MISMATCH,    -30016, "does not match the existing configuration")             \
  XX(SHUTDOWN,    -30017, "shutting down")                                         \
  XX(DEADLINE,    -30018, "deadline exceeded")                                     \
  XX(CANCELLED,   -30019, "cancelled")                                             \
  XX(INTERNAL,    -30020, "internal error")                                      \
  XX(UNAUTHENTICATED, -30031, "no valid credentials")                              \
  XX(DENIED,      -30032, "the caller's role does not allow this")

enum strata_errno {
  STRATA_OK = 0,
#define XX(name, val, msg) STRATA_E##name = (val),
  STRATA_ERRNO_MAP(XX)
#undef XX
};

/* Short description of rc ("data is corrupt ..."); errno values use strerror.
 * Returns a static string. */
const char *strata_strerror(int rc);

/* Symbolic name of rc ("STRATA_ECORRUPT", "EIO", "STRATA_OK"). Static string. */
const char *strata_errname(int rc);

/* Records a detail message for rc on this thread and returns rc, so a failure
 * site reads `return strata_err(STRATA_ECORRUPT, "btree node: ...", ...);`. */
int strata_err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes this thread's detail message with "context: " and returns rc;
 * used when an error passes up through a layer that knows more (a file name). */
int strata_err_wrap(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* This thread's last detail message, or strata_strerror of the last code when
 * none was given. Valid until the next strata_err* call on this thread. */
const char *strata_errmsg(void);

/* The detail message if the last one recorded on this thread was for rc,
 * otherwise strata_strerror(rc): safe after calling code that may or may not
 * have recorded a detail (a callback). Valid like strata_errmsg. */
const char *strata_errmsg_for(int rc);

/* Forgets this thread's detail message. */
void strata_err_clear(void);

/* A saved error: keeps the code and the whole detail message across calls
 * that may record their own (cleanup after a failure, a fallback attempt).
 * strata_err_restore records it on this thread again and returns its code. */
#define STRATA_ERRMSG_MAX 1024
typedef struct strata_err_saved {
  int rc;
  char msg[STRATA_ERRMSG_MAX];
} strata_err_saved;
void strata_err_save(int rc, strata_err_saved *s);
int strata_err_restore(const strata_err_saved *s);

#endif
