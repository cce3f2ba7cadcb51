/* The client's and the server's shared handling of gRPC core's types (wire.h). */
#include "rpc/wire.h"

#include <dlfcn.h>
#include <pthread.h>

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>

#include "rpc/client.h"

grpc_byte_buffer *rpc_pack(const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  grpc_slice sl = grpc_slice_malloc(n);
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(sl));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl); /* the buffer holds its own reference */
  return bb;
}

grpc_arg rpc_int_arg(const char *key, int value) {
  grpc_arg a;
  a.type = GRPC_ARG_INTEGER;
  a.key = (char *)key;
  a.value.integer = value;
  return a;
}

/* Debian builds abseil without NDEBUG, so every absl::Mutex lock in gRPC core
 * runs abseil's debug-only deadlock detector (a global graph under a global
 * lock, and a stack trace per new lock; docs/benchmarks.md has its cost).
 * Release builds of gRPC never run it; switching it
 * off here gives the same behaviour. abseil has no C API, so the C++ symbol
 * is looked up by its mangled name; a build of abseil that lacks it (another
 * inline namespace) is left as it is. */
static void absl_detector_off(void) {
  static const char *const names[] = {
      "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE",
      "_ZN4absl12lts_2022062329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE",
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    void *sym = dlsym(RTLD_DEFAULT, names[i]);
    if (!sym) continue;
    void (*set_mode)(int);
    *(void **)&set_mode = sym;
    set_mode(0); /* absl::OnDeadlockCycle::kIgnore */
    return;
  }
}

static pthread_once_t absl_once = PTHREAD_ONCE_INIT;

void rpc_grpc_init(void) {
  pthread_once(&absl_once, absl_detector_off);
  grpc_init();
}
