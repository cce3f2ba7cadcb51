# server/: see server/README.md. Appends to the variables the top-level Makefile defines.
SRV_SRCS := server/log.c server/srv.c server/embedded.c server/datadir.c server/h_health.c server/h_admin.c \
	server/h_kv.c server/h_locks.c server/h_ops.c server/validate.c server/pool.c server/h_watch.c \
	server/auth.c server/audit.c server/exposure.c server/h_coord.c server/gc.c server/retain.c \
	server/metrics.c
SRV_OBJS := $(SRV_SRCS:%.c=$(O)/%.o)
SRV_LIB := $(O)/libsrv.a
SRV_MAIN_OBJ := $(O)/server/main.o
# The engines (store, locks) live in libstrata.a.
SRV_ENGINE := $(O)/libstrata.a
SRV_LINK = $(SRV_LIB) $(RPC_LIB) $(SRV_ENGINE)
SRV_LDLIBS = $(RPC_LDLIBS) $(LDLIBS)

BINS += $(O)/server/strata-server

$(SRV_OBJS) $(SRV_MAIN_OBJ): | $(RPC_GEN_H)

$(SRV_LIB): $(SRV_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(O)/server/strata-server: $(SRV_MAIN_OBJ) $(SRV_LINK)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(SRV_LDLIBS)

-include $(SRV_OBJS:.o=.d) $(SRV_MAIN_OBJ:.o=.d)

# tools/strata-bench: the gRPC load driver (issue 5). Its rules live here, with the
# server it starts in-process, rather than in tools/module.mk. It is in BENCH_SRCS so the
# top-level `make bench` builds and runs it; it links gRPC, so it has its own
# rule instead of tools/bench/%'s.
BENCH_SRCS += tools/strata-bench.c
STRATA_BENCH_OBJ := $(O)/tools/strata-bench.o
$(STRATA_BENCH_OBJ): | $(RPC_GEN_H)
-include $(STRATA_BENCH_OBJ:.o=.d)

# Its --etcd target (tools/strata-bench-etcd.c) speaks etcd's protocol through the messages
# of rpc/proto/etcd/, generated like rpc/'s own but linked into strata-bench only.
BENCH_ETCD_PROTOS := rpc/proto/etcd/mvccpb/kv.proto rpc/proto/etcd/etcdserverpb/rpc.proto \
	rpc/proto/etcd/v3lockpb/v3lock.proto
BENCH_ETCD_GEN_C := $(BENCH_ETCD_PROTOS:rpc/proto/%.proto=$(BUILD)/gen/%.pb-c.c)
BENCH_ETCD_GEN_H := $(BENCH_ETCD_GEN_C:.c=.h)
BENCH_ETCD_OBJS := $(O)/tools/strata-bench-etcd.o \
	$(BENCH_ETCD_PROTOS:rpc/proto/%.proto=$(O)/gen/%.pb-c.o)
$(BENCH_ETCD_GEN_C) $(BENCH_ETCD_GEN_H) &: $(BENCH_ETCD_PROTOS)
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -Irpc/proto $(BENCH_ETCD_PROTOS)
$(STRATA_BENCH_OBJ) $(O)/tools/strata-bench-etcd.o: | $(RPC_GEN_H) $(BENCH_ETCD_GEN_H)
-include $(O)/tools/strata-bench-etcd.d

$(O)/tools/strata-bench: $(STRATA_BENCH_OBJ) $(BENCH_ETCD_OBJS) $(O)/libsrv.a $(O)/librpc.a \
		$(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(RPC_LDLIBS) $(LDLIBS)

# Only the gRPC figures: make bench-rpc [STRATA_BENCH_SECONDS=3]
.PHONY: bench-rpc
bench-rpc:
	@$(MAKE) --no-print-directory VARIANT=release $(BUILD)/release/tools/strata-bench
	@$(BUILD)/release/tools/strata-bench

# Per-service libFuzzer targets (tests/fuzz/fuzz_svc_*.c, tests/fuzz/fuzz_rpc.h): the
# whole server in-process without a network, so they link like the server does.
SRV_FUZZ := tests/fuzz/fuzz_svc_kv.c tests/fuzz/fuzz_svc_locks.c tests/fuzz/fuzz_svc_ops.c \
	tests/fuzz/fuzz_svc_admin.c tests/fuzz/fuzz_svc_health.c tests/fuzz/fuzz_svc_coord.c
FUZZ_TARGETS += $(SRV_FUZZ)
SRV_FUZZ_BINS := $(SRV_FUZZ:%.c=$(O)/%)
$(SRV_FUZZ:%.c=$(O)/%.o) $(O)/tests/fuzz/seeds.o: | $(RPC_GEN_H)
-include $(SRV_FUZZ:%.c=$(O)/%.d)
$(SRV_FUZZ_BINS): $(O)/tests/fuzz/%: $(O)/tests/fuzz/%.o $(SRV_LINK)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer $(LDFLAGS) $^ -o $@ $(SRV_LDLIBS)
# The seed generator writes their requests with the generated message code.
$(O)/tests/fuzz/seeds: $(RPC_GEN_OBJS)
$(O)/tests/fuzz/seeds: LDLIBS += -lprotobuf-c
