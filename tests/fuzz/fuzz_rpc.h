/*
 * Shared by the per-service libFuzzer targets (fuzz_svc_*.c): every input is
 * one call, [method selector byte][request bytes], run through the server's
 * real path without a network (srv_call_local: size limit, text check,
 * protobuf decode, validation, handler, engines, status mapping). The server
 * is opened once per process on a memory store and a temp lock directory with
 * no fsyncs, and replaced by a fresh one every FUZZ_RPC_RESET inputs so state
 * (and memory) stays bounded; within that window inputs see each other's
 * effects, which is the point (a List after Commits, a Release after an
 * Acquire).
 *
 * What must hold for every input:
 *  - the call ends (libFuzzer's -timeout catches a hang);
 *  - a failure carries a message and the strata-error trailer, and is never
 *    INTERNAL, UNKNOWN or DATA_LOSS: garbage is the client's fault;
 *  - every response message decodes as the method's response type and its
 *    text fields are valid UTF-8 without NULs (what standard clients parse).
 */
#ifndef STRATA_TESTS_FUZZ_RPC_H
#define STRATA_TESTS_FUZZ_RPC_H

#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/status.h>

#include "common/err.h"
#include "rpc/methods.h"
#include "rpc/server.h"
#include "server/log.h"
#include "server/srv.h"
#include "storage/base.h"

#define FUZZ_RPC_RESET 5000 /* inputs per server instance */
#define FUZZ_RPC_MAX_MESSAGES 4 /* stream messages read per call, then it is cancelled */
#define FUZZ_RPC_TIMEOUT_MS 20 /* each call's deadline: bounds waiting acquires */

static srv *fr_srv;
static bs_store *fr_mem;
static char fr_dir[256];
static unsigned long fr_calls;

static int fr_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static void fr_close(void) {
  if (!fr_srv) return;
  srv_close(fr_srv);
  bs_destroy(fr_mem);
  nftw(fr_dir, fr_rm, 16, FTW_DEPTH | FTW_PHYS);
  fr_srv = NULL;
}

static void fr_open(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(fr_dir, sizeof fr_dir, "%s/strata-fuzz-rpc-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(fr_dir) || bs_mem_create(&fr_mem)) abort();
  static int log_set;
  if (!log_set) srv_log_init(-1); /* silent: a failed call is the expected outcome here */
  log_set = 1;
  srv_opts o = {.data_dir = fr_dir, .local = 1, .store_base = fr_mem, .lock_no_sync = 1,
                .max_message_bytes = 4u << 20, .grace_ms = 0};
  if (srv_open(&o, &fr_srv)) {
    fprintf(stderr, "fuzz: cannot open the server: %s\n", strata_errmsg());
    abort();
  }
}

static void fr_check_message(void *arg, rpc_method_id m, const uint8_t *p, size_t n) {
  (void)arg;
  const ProtobufCMessageDescriptor *d = rpc_methods[m].resp;
  ProtobufCMessage *msg = protobuf_c_message_unpack(d, NULL, n, p);
  if (!msg) {
    fprintf(stderr, "fuzz: %s answered %zu bytes that are not a %s\n", rpc_methods[m].path, n,
            d->name);
    abort();
  }
  protobuf_c_message_free_unpacked(msg, NULL);
  if (rpc_check_text(d, p, n)) {
    fprintf(stderr, "fuzz: %s answered bad text: %s\n", rpc_methods[m].path, strata_errmsg());
    abort();
  }
}

/* Runs one input against the methods of one service. */
static int fr_one(const rpc_method_id *methods, size_t nmethods, const uint8_t *data, size_t size) {
  if (!fr_srv) {
    fr_open();
    atexit(fr_close);
  } else if (fr_calls % FUZZ_RPC_RESET == 0) {
    fr_close();
    fr_open();
  }
  fr_calls++;
  if (size == 0) return 0;
  rpc_method_id m = methods[data[0] % nmethods];
  rpc_local_result r = {.on_message = fr_check_message, .max_messages = FUZZ_RPC_MAX_MESSAGES};
  srv_call_local(fr_srv, m, data + 1, size - 1, FUZZ_RPC_TIMEOUT_MS, &r);
  if (r.rc) {
    if (!r.trailer || !r.msg[0] || r.status == GRPC_STATUS_INTERNAL ||
        r.status == GRPC_STATUS_UNKNOWN || r.status == GRPC_STATUS_DATA_LOSS || r.status == 0) {
      fprintf(stderr, "fuzz: %s ended with status %d (%s), trailer %s: %s\n", rpc_methods[m].path,
              r.status, strata_errname(r.rc), r.trailer ? r.trailer : "(none)", r.msg);
      abort();
    }
  }
  return 0;
}

#define FUZZ_RPC_TARGET(...)                                                      \
  int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {                  \
    static const rpc_method_id methods[] = {__VA_ARGS__};                         \
    return fr_one(methods, sizeof methods / sizeof methods[0], data, size);       \
  }

#endif
