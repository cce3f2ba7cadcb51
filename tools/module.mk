# tools/: see tools/README.md. Appends to the variables the top-level Makefile defines.

# --- stratactl: the operator tool (issue 6, docs/stratactl.md) --------------------------
CTL_SRCS := tools/stratactl/main.c tools/stratactl/table.c tools/stratactl/args.c \
	tools/stratactl/fmt.c tools/stratactl/out.c tools/stratactl/cmd_lock.c \
	tools/stratactl/cmd_op.c tools/stratactl/cmd_kv.c tools/stratactl/cmd_server.c \
	tools/stratactl/cmd_auth.c tools/stratactl/cmd_coord.c tools/stratactl/cmd_replay.c \
	tools/stratactl/cmd_retain.c
# Objects go to $(O)/tools/stratactl.obj/: $(O)/tools/stratactl is the binary.
CTL_OBJS := $(CTL_SRCS:tools/stratactl/%.c=$(O)/tools/stratactl.obj/%.o)
CTL_BIN := $(O)/tools/stratactl

BINS += $(CTL_BIN)

$(CTL_OBJS): | $(RPC_GEN_H)

$(O)/tools/stratactl.obj/%.o: tools/stratactl/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

# stratactl op replay runs the split library (tools/split/split.c, defined below).
$(CTL_BIN): $(CTL_OBJS) $(O)/tools/split.obj/split.o $(O)/tools/populate.obj/precomputed.o $(RPC_LIB) $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(RPC_LDLIBS) $(LDLIBS) -ljansson

-include $(CTL_OBJS:.o=.d)

# The stratactl tier's fixture (creates ops, sets statuses) and the tier itself.
CTL_FIXTURE := $(O)/tests/stratactl/ctl_fixture
$(O)/tests/stratactl/ctl_fixture.o: | $(RPC_GEN_H)
$(CTL_FIXTURE): $(O)/tests/stratactl/ctl_fixture.o $(RPC_LIB) $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(RPC_LDLIBS) $(LDLIBS)
-include $(O)/tests/stratactl/ctl_fixture.d

TEST_TIERS += stratactl
.PHONY: test-stratactl
# Every stratactl command as a subprocess against a real strata-server (tests/stratactl/).
test-stratactl:
	@$(MAKE) --no-print-directory VARIANT=release $(BUILD)/release/server/strata-server \
	  $(BUILD)/release/tools/stratactl $(BUILD)/release/tests/stratactl/ctl_fixture
	@STRATACTL_BIN=$(BUILD)/release/tools/stratactl STRATA_SERVER_BIN=$(BUILD)/release/server/strata-server \
	  CTL_FIXTURE_BIN=$(BUILD)/release/tests/stratactl/ctl_fixture \
	  sh tests/run-tier.sh stratactl $(TEST_RESULTS) tests/stratactl/test_stratactl.py

# The same script with stratactl, the fixture and the server under ASan + UBSan (leaks
# included: a leak changes an exit code, which the script asserts).
TEST_TIERS += stratactl-asan
.PHONY: test-stratactl-asan
test-stratactl-asan:
	@$(MAKE) --no-print-directory VARIANT=asan $(BUILD)/asan/server/strata-server \
	  $(BUILD)/asan/tools/stratactl $(BUILD)/asan/tests/stratactl/ctl_fixture
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  STRATACTL_BIN=$(BUILD)/asan/tools/stratactl STRATA_SERVER_BIN=$(BUILD)/asan/server/strata-server \
	  CTL_FIXTURE_BIN=$(BUILD)/asan/tests/stratactl/ctl_fixture \
	  sh tests/run-tier.sh stratactl-asan $(TEST_RESULTS) tests/stratactl/test_stratactl.py

# make install and make run as a user runs them (tests/stratactl/test_install.py): install
# into a temporary DESTDIR, build tests/stratactl/install_client.c out of tree with
# pkg-config and run it against the installed server; make run PORT=... DATA_DIR=...
TEST_TIERS += install
.PHONY: test-install
test-install:
	@$(MAKE) --no-print-directory VARIANT=release all
	@STRATA_REPO=$(CURDIR) STRATA_BUILD=$(BUILD) \
	  sh tests/run-tier.sh install $(TEST_RESULTS) tests/stratactl/test_install.py

# --- strata-genvol and strata-populate: bulk populate (issue 12, tools/populate/README.md) --
POP_COMMON := $(O)/tools/populate.obj/precomputed.o
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
SPLIT_LIB_OBJS := $(O)/tools/split.obj/split.o $(POP_COMMON)
SPLIT_BIN := $(O)/tools/strata-split
BINS += $(SPLIT_BIN)
$(O)/tools/split.obj/split.o $(O)/tools/split.obj/main.o: | $(RPC_GEN_H)

$(O)/tools/split.obj/%.o: tools/split/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(SPLIT_BIN): $(O)/tools/split.obj/main.o $(SPLIT_LIB_OBJS) $(RPC_LIB) $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(RPC_LDLIBS) $(LDLIBS) -ljansson

-include $(O)/tools/split.obj/main.d $(O)/tools/split.obj/split.d

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
