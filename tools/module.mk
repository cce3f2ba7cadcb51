# tools/: see tools/README.md. Appends to the variables the top-level Makefile defines.

# --- stratactl: the operator tool (issue 6, docs/stratactl.md) --------------------------
CTL_SRCS := tools/stratactl/main.c tools/stratactl/table.c tools/stratactl/args.c \
	tools/stratactl/fmt.c tools/stratactl/out.c tools/stratactl/cmd_lock.c \
	tools/stratactl/cmd_op.c tools/stratactl/cmd_kv.c tools/stratactl/cmd_server.c \
	tools/stratactl/cmd_auth.c tools/stratactl/cmd_coord.c tools/stratactl/cmd_replay.c \
	tools/stratactl/cmd_downsample.c tools/stratactl/cmd_retain.c
# Objects go to $(O)/tools/stratactl.obj/: $(O)/tools/stratactl is the binary.
CTL_OBJS := $(CTL_SRCS:tools/stratactl/%.c=$(O)/tools/stratactl.obj/%.o)
CTL_BIN := $(O)/tools/stratactl

BINS += $(CTL_BIN)

$(CTL_OBJS): | $(RPC_GEN_H)

$(O)/tools/stratactl.obj/%.o: tools/stratactl/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@


-include $(CTL_OBJS:.o=.d)

# The stratactl tier's fixture (creates ops, sets statuses) and the tier itself.
CTL_FIXTURE := $(O)/tests/stratactl/ctl_fixture
$(O)/tests/stratactl/ctl_fixture.o: | $(RPC_GEN_H)
$(CTL_FIXTURE): $(O)/tests/stratactl/ctl_fixture.o $(RPC_LIB) $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(RPC_LDLIBS) $(LDLIBS)
-include $(O)/tests/stratactl/ctl_fixture.d

# Every stratactl command as a subprocess against a real strata-server (tests/stratactl/);
# stratactl-asan: the same with stratactl, the fixture and the server under ASan + UBSan
# (leaks included: a leak changes an exit code, which the script asserts).
CTL_TIER_BINS := server/strata-server tools/stratactl tests/stratactl/ctl_fixture
# No shared server; servers of their own; one server shared in order; stratactl lock on a server
# of its own (helpers: ctl_common.py).
CTL_TIER_SCRIPTS := tests/stratactl/test_stratactl.py tests/stratactl/test_stratactl_servers.py \
  tests/stratactl/test_stratactl_shared.py tests/stratactl/test_stratactl_locks.py
CTL_TIER_ENV = STRATACTL_BIN=$(BUILD)/$(1)/tools/stratactl STRATA_SERVER_BIN=$(BUILD)/$(1)/server/strata-server \
  CTL_FIXTURE_BIN=$(BUILD)/$(1)/tests/stratactl/ctl_fixture
$(eval $(call tier,stratactl,$(CTL_TIER_BINS:%=$(BUILD)/release/%),,$(call CTL_TIER_ENV,release),\
  $(CTL_TIER_SCRIPTS)))
$(eval $(call tier,stratactl-asan,,$(CTL_TIER_BINS:%=$(BUILD)/asan/%),$$(SAN_ENV) $(call CTL_TIER_ENV,asan),\
  $(CTL_TIER_SCRIPTS)))

# make install and make run as a user runs them (tests/stratactl/test_install.py): install
# into a temporary DESTDIR, build tests/stratactl/install_client.c out of tree with
# pkg-config and run it against the installed server; make run PORT=... DATA_DIR=...
$(eval $(call tier,install,all,,STRATA_REPO=$(CURDIR) STRATA_BUILD=$(BUILD),tests/stratactl/test_install.py))

# --- strata-genvol and strata-populate: bulk populate (issue 12, tools/populate/README.md) --
POP_COMMON := $(O)/tools/populate.obj/precomputed.o
# The client helpers the edit workers share (tools/common/kvc.h).
TOOLS_KVC := $(O)/tools/common.obj/kvc.o
$(O)/tools/common.obj/kvc.o: | $(RPC_GEN_H)
$(O)/tools/common.obj/%.o: tools/common/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@
-include $(O)/tools/common.obj/kvc.d
GENVOL_BIN := $(O)/tools/strata-genvol
POPULATE_BIN := $(O)/tools/strata-populate
BINS += $(GENVOL_BIN) $(POPULATE_BIN)
POP_OBJS := $(POP_COMMON) $(O)/tools/populate.obj/genvol.o $(O)/tools/populate.obj/populate.o \
	$(O)/tools/populate.obj/pop_task.o
$(POP_OBJS): | $(RPC_GEN_H)

$(O)/tools/populate.obj/%.o: tools/populate/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(GENVOL_BIN): $(O)/tools/populate.obj/genvol.o $(POP_COMMON)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ -ljansson -lm

$(POPULATE_BIN): $(O)/tools/populate.obj/populate.o $(O)/tools/populate.obj/pop_task.o $(POP_COMMON) $(RPC_LIB) $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(RPC_LDLIBS) $(LDLIBS) -ljansson

-include $(POP_OBJS:.o=.d)

# make bench-populate (run by make bench): tools/bench/populate_bench.py; the volume's size
# is POPULATE_BENCH_MIB (default 2048), generated before any timing.
.PHONY: bench-populate
bench-populate:
	@$(MAKE) --no-print-directory VARIANT=release python $(BUILD)/release/server/strata-server \
	  $(BUILD)/release/tools/strata-populate $(BUILD)/release/tools/strata-genvol
	@mkdir -p $(BENCH_DIR)
	@STRATA_SERVER_BIN=$(BUILD)/release/server/strata-server \
	  POPULATE_BIN=$(BUILD)/release/tools/strata-populate GENVOL_BIN=$(BUILD)/release/tools/strata-genvol \
	  PYTHONPATH=$(CURDIR)/$(BUILD)/python $(PYTHON) tools/bench/populate_bench.py --dir $(BENCH_DIR)

# --- strata-split: the supervoxel split edit worker (issue 13, tools/split/README.md) -----
# split.o is the split itself (steps, locks, region growing, the fenced commit); stratactl
# links it too for `op replay`, so a replay computes exactly what the worker would have.
SPLIT_LIB_OBJS := $(addprefix $(O)/tools/split.obj/,split.o request.o grow.o commit.o replay.o) $(POP_COMMON) $(TOOLS_KVC)
SPLIT_BIN := $(O)/tools/strata-split
BINS += $(SPLIT_BIN)
$(SPLIT_LIB_OBJS) $(O)/tools/split.obj/main.o: | $(RPC_GEN_H)

$(O)/tools/split.obj/%.o: tools/split/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(SPLIT_BIN): $(O)/tools/split.obj/main.o $(SPLIT_LIB_OBJS) $(RPC_LIB) $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(RPC_LDLIBS) $(LDLIBS) -ljansson

-include $(O)/tools/split.obj/main.d $(SPLIT_LIB_OBJS:.o=.d)


# make bench-split (run by make bench): tools/bench/split_bench.py, split_op_ms against the
# multi-commit anchor and split_ops_per_s_disjoint (about a minute).
.PHONY: bench-split
bench-split:
	@$(MAKE) --no-print-directory VARIANT=release python $(BUILD)/release/server/strata-server \
	  $(BUILD)/release/tools/strata-populate $(BUILD)/release/tools/strata-genvol \
	  $(BUILD)/release/tools/strata-split
	@mkdir -p $(BENCH_DIR)
	@STRATA_SERVER_BIN=$(BUILD)/release/server/strata-server SPLIT_BIN=$(BUILD)/release/tools/strata-split \
	  POPULATE_BIN=$(BUILD)/release/tools/strata-populate GENVOL_BIN=$(BUILD)/release/tools/strata-genvol \
	  PYTHONPATH=$(CURDIR)/$(BUILD)/python $(PYTHON) tools/bench/split_bench.py --dir $(BENCH_DIR)

# tools/strata-bench: the gRPC load driver (issue 5), which starts servers in-process
# (libsrv.a). It is in BENCH_SRCS so the top-level `make bench` builds and runs it; it
# links gRPC, so it has its own rule instead of tools/bench/%'s.
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

# --- strata-downsample: keeps the mip pyramid in step with mip 0 (issue 14, tools/downsample/README.md)
# DS_OBJS are the worker and its status (one file per concern, tools/downsample/README.md);
# stratactl links them for `downsample status`.
DS_OBJS := $(patsubst %,$(O)/tools/downsample.obj/%.o,layout worker block feed status local)
DS_LIB_OBJS := $(DS_OBJS) $(POP_COMMON) $(TOOLS_KVC)
DS_BIN := $(O)/tools/strata-downsample
BINS += $(DS_BIN)
$(DS_OBJS) $(O)/tools/downsample.obj/main.o: | $(RPC_GEN_H)

$(O)/tools/downsample.obj/%.o: tools/downsample/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(DS_BIN): $(O)/tools/downsample.obj/main.o $(DS_LIB_OBJS) $(RPC_LIB) $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(RPC_LDLIBS) $(LDLIBS) -ljansson -lm

-include $(O)/tools/downsample.obj/main.d $(DS_OBJS:.o=.d)

# make bench-downsample (run by make bench): tools/bench/downsample_bench.py, downsample_MBps
# against the in-process anchor on a 1 GiB and a 128 MiB volume, and pyramid_lag_ms with a
# --follow worker (about 1.5 minutes).
.PHONY: bench-downsample
bench-downsample:
	@$(MAKE) --no-print-directory VARIANT=release python $(BUILD)/release/server/strata-server \
	  $(BUILD)/release/tools/strata-populate $(BUILD)/release/tools/strata-genvol \
	  $(BUILD)/release/tools/strata-split $(BUILD)/release/tools/strata-downsample
	@mkdir -p $(BENCH_DIR)
	@STRATA_SERVER_BIN=$(BUILD)/release/server/strata-server SPLIT_BIN=$(BUILD)/release/tools/strata-split \
	  POPULATE_BIN=$(BUILD)/release/tools/strata-populate GENVOL_BIN=$(BUILD)/release/tools/strata-genvol \
	  DOWNSAMPLE_BIN=$(BUILD)/release/tools/strata-downsample \
	  PYTHONPATH=$(CURDIR)/$(BUILD)/python $(PYTHON) tools/bench/downsample_bench.py --dir $(BENCH_DIR)

# stratactl links the split library (op replay) and the downsample worker's status
# (downsample status); after both are defined.
$(CTL_BIN): $(CTL_OBJS) $(SPLIT_LIB_OBJS) $(DS_OBJS) $(RPC_LIB) $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(RPC_LDLIBS) $(LDLIBS) -ljansson -lm
