# rpc/: see rpc/README.md. Appends to the variables the top-level Makefile defines.
#
# gRPC code stays out of libstrata.a (storage and locks tests must not link gRPC):
# rpc/ builds its own archive $(O)/librpc.a from rpc/*.c and the protobuf-c code
# that protoc-c generates from rpc/proto into $(BUILD)/gen (never committed).

RPC_PROTOS := rpc/proto/strata/v1/common.proto rpc/proto/strata/v1/kv.proto \
	rpc/proto/strata/v1/locks.proto rpc/proto/strata/v1/ops.proto \
	rpc/proto/strata/v1/admin.proto rpc/proto/strata/v1/coordinator.proto \
	rpc/proto/grpc/health/v1/health.proto
RPC_GEN_C := $(RPC_PROTOS:rpc/proto/%.proto=$(BUILD)/gen/%.pb-c.c)
RPC_GEN_H := $(RPC_GEN_C:.c=.h)
RPC_GEN_OBJS := $(RPC_PROTOS:rpc/proto/%.proto=$(O)/gen/%.pb-c.o)
RPC_SRCS := rpc/methods.c rpc/status.c rpc/wire.c rpc/server.c rpc/server_life.c rpc/textcheck.c rpc/client.c rpc/tls.c
RPC_OBJS := $(RPC_SRCS:%.c=$(O)/%.o)
RPC_LIB := $(O)/librpc.a
# libcrypto: PEM checks and SHA-256 (rpc/tls.c).
RPC_LDLIBS := $(shell pkg-config --libs grpc gpr libprotobuf-c libcrypto 2>/dev/null || echo -lgrpc -lgpr -lprotobuf-c -lcrypto) -lpthread

# protoc-c writes every .pb-c.{c,h} of the set in one run.
$(RPC_GEN_C) $(RPC_GEN_H) &: $(RPC_PROTOS)
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -Irpc/proto $(RPC_PROTOS)

# Generated code is not ours to warn about beyond what protoc-c promises.
$(O)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CSTD) $(OPT_$(VARIANT)) $(CFLAGS) -c $< -o $@

# Anything that includes a generated header waits for protoc-c on a fresh tree
# (afterwards the .d files know the exact headers).
RPC_USERS_OBJS = $(RPC_OBJS)
$(RPC_OBJS): | $(RPC_GEN_H)

$(RPC_LIB): $(RPC_OBJS) $(RPC_GEN_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

-include $(RPC_OBJS:.o=.d) $(RPC_GEN_OBJS:.o=.d)

# --- tests (tiers rpc-integration, rpc-asan, rpc-python) ------------------------
RPC_TEST_BINS := $(O)/tests/rpc/test_rpc_core $(O)/tests/rpc/test_rpc_server \
	$(O)/tests/rpc/test_shutdown_load $(O)/tests/rpc/test_full_disk $(O)/tests/rpc/test_rollback \
	$(O)/tests/rpc/test_bad_input $(O)/tests/rpc/test_auth $(O)/tests/rpc/test_security $(O)/tests/rpc/test_coord \
	$(O)/tests/rpc/test_coord_gc
RPC_TEST_OBJS := $(O)/tests/rpc/test_rpc_core.o $(O)/tests/rpc/test_rpc_server.o \
	$(O)/tests/rpc/srv_harness.o $(O)/tests/rpc/t_validation.o $(O)/tests/rpc/t_locks.o \
	$(O)/tests/rpc/t_ops.o $(O)/tests/rpc/t_kv.o $(O)/tests/rpc/t_watch.o $(O)/tests/rpc/test_shutdown_load.o \
	$(O)/tests/rpc/test_full_disk.o $(O)/tests/rpc/test_rollback.o $(O)/tests/rpc/test_bad_input.o \
	$(O)/tests/rpc/test_auth.o $(O)/tests/rpc/test_security.o $(O)/tests/rpc/test_coord.o \
	$(O)/tests/rpc/test_coord_gc.o $(O)/tests/rpc/coord_fixture.o
$(RPC_TEST_OBJS): | $(RPC_GEN_H)
-include $(RPC_TEST_OBJS:.o=.d)

$(O)/tests/rpc/test_rpc_core: $(O)/tests/rpc/test_rpc_core.o $(RPC_LIB) $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ -lcmocka $(RPC_LDLIBS) $(LDLIBS)

$(O)/tests/rpc/test_rpc_server: $(O)/tests/rpc/test_rpc_server.o $(O)/tests/rpc/srv_harness.o \
		$(O)/tests/rpc/t_validation.o $(O)/tests/rpc/t_locks.o $(O)/tests/rpc/t_ops.o \
		$(O)/tests/rpc/t_kv.o $(O)/tests/rpc/t_watch.o $(O)/libsrv.a $(RPC_LIB) $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ -lcmocka $(RPC_LDLIBS) $(LDLIBS)

# The tests that drive a server through the harness (tests/rpc/srv_harness.h).
RPC_HARNESS_TESTS := $(O)/tests/rpc/test_shutdown_load $(O)/tests/rpc/test_full_disk \
	$(O)/tests/rpc/test_rollback $(O)/tests/rpc/test_bad_input $(O)/tests/rpc/test_security
$(RPC_HARNESS_TESTS): %: %.o $(O)/tests/rpc/srv_harness.o $(O)/libsrv.a $(RPC_LIB) $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ -lcmocka $(RPC_LDLIBS) $(LDLIBS)

# Coordinator mode: the harness plus their shared fixture (tests/rpc/coord_fixture.h).
RPC_COORD_TESTS := $(O)/tests/rpc/test_coord $(O)/tests/rpc/test_coord_gc
$(RPC_COORD_TESTS): %: %.o $(O)/tests/rpc/coord_fixture.o $(O)/tests/rpc/srv_harness.o $(O)/libsrv.a \
		$(RPC_LIB) $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ -lcmocka $(RPC_LDLIBS) $(LDLIBS)

# server/auth.c, audit.c, exposure.c without a network (tests/rpc/test_auth.c).
$(O)/tests/rpc/test_auth: $(O)/tests/rpc/test_auth.o $(O)/libsrv.a $(RPC_LIB) $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ -lcmocka $(RPC_LDLIBS) $(LDLIBS)

.PHONY: rpc-test-bins
rpc-test-bins: $(RPC_TEST_BINS) $(O)/server/strata-server

# Tiers. Each runs against the in-process server and a real strata-server.
RPC_TIER_TESTS := test_rpc_core test_rpc_server test_shutdown_load test_full_disk test_rollback \
	test_bad_input test_auth test_security test_coord test_coord_gc
$(eval $(call tier,rpc-integration,rpc-test-bins,,STRATA_SERVER_BIN=$(BUILD)/release/server/strata-server,\
  $(RPC_TIER_TESTS:%=$(BUILD)/release/tests/rpc/%)))

# The same binaries and the server under ASan + UBSan; leaks are reported too.
$(eval $(call tier,rpc-asan,,rpc-test-bins,$$(SAN_ENV) STRATA_SERVER_BIN=$(BUILD)/asan/server/strata-server,\
  $(RPC_TIER_TESTS:%=$(BUILD)/asan/tests/rpc/%)))

# Debian's python3-grpcio against strata-server; messages generated at test time.
$(eval $(call tier,rpc-python,$(BUILD)/release/server/strata-server,,\
  STRATA_SERVER_BIN=$(BUILD)/release/server/strata-server STRATA_WORK_DIR=$(BUILD)/interop,tests/rpc/interop.py))

# The Python client package and its test tier.
include rpc/python/module.mk
