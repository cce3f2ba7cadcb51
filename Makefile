# Strata: the only build entry point. `make help` lists the targets.
#
# Each source folder contributes a fragment (FOLDER/module.mk) that appends to
# the variables below; this file holds the rules. Objects and generated code go
# under $(BUILD)/$(VARIANT)/ and are never committed.
#
#   VARIANT=release  -O2, the binaries `make run` and `make bench` use
#   VARIANT=asan     ASan+UBSan, every sanitizer report is fatal (make test)
#   VARIANT=fuzz     clang + libFuzzer + ASan/UBSan for tests/fuzz targets

PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
VARIANT  ?= release
O        := $(BUILD)/$(VARIANT)

DEB_PACKAGES := build-essential pkg-config clang libclang-rt-14-dev \
	libgrpc-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler \
	librocksdb-dev libzstd-dev libb2-dev libcmocka-dev libjansson-dev \
	python3-grpcio python3-protobuf python3-grpc-tools python3-pytest python3-pip \
	libssl-dev openssl libmicrohttpd-dev libcurl4-openssl-dev

ifeq ($(VARIANT),fuzz)
CC       := clang
endif
CC       ?= cc
CSTD     := -std=c11 -D_GNU_SOURCE
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
OPT_release := -O2 -g
OPT_asan    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=all
OPT_fuzz    := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
               -fno-sanitize-recover=all -DSTRATA_FUZZING
LDOPT_asan  := -fsanitize=address,undefined
LDOPT_fuzz  := -fsanitize=address,undefined
CFLAGS   ?=
CPPFLAGS += -I. -I$(BUILD)/gen -MMD -MP
ALL_CFLAGS = $(CSTD) $(WARN) $(OPT_$(VARIANT)) $(CFLAGS)
LDLIBS   += -lzstd -lb2 -lrocksdb -lpthread -lm -lmicrohttpd -lcurl
LDFLAGS  += $(LDOPT_$(VARIANT))

# How every tier runs a sanitizer build: any report is fatal, leaks included. The one
# definition; the fragments write $(SAN_ENV) before tests/run-tier.sh.
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# The one way a fragment defines a test tier:
#   $(eval $(call tier,NAME,RELEASE,ASAN,ENV,RUN[,RUNNER]))
# appends NAME to TEST_TIERS and defines test-NAME, which builds RELEASE with
# VARIANT=release and ASAN with VARIANT=asan (either may be empty), then runs
# `ENV RUNNER RUN`. RUNNER defaults to `sh tests/run-tier.sh NAME $(TEST_RESULTS)`,
# which runs every binary or script in RUN under a timeout and appends the tier's
# result line. Write $$(VAR) in the arguments for what must expand when the tier runs
# (a shell variable in ENV needs a variable of its own), and $$(SAN_ENV) in ENV for a
# sanitized tier.
define tier
TEST_TIERS += $(1)
.PHONY: test-$(1)
test-$(1):
	$(if $(strip $(2)),@$$(MAKE) --no-print-directory VARIANT=release $(2))
	$(if $(strip $(3)),@$$(MAKE) --no-print-directory VARIANT=asan $(3))
	@$(4) $(if $(6),$(6),sh tests/run-tier.sh $(1) $$(TEST_RESULTS)) $(5)
endef

# Filled in by the fragments.
LIB_SRCS    :=
UNIT_TESTS  :=
FUZZ_TARGETS :=
BENCH_SRCS  :=
BINS        :=
TEST_TIERS  :=

include common/module.mk
include storage/module.mk
include locks/module.mk
include rpc/module.mk
include server/module.mk
include tools/module.mk
include tests/module.mk

LIB_OBJS := $(LIB_SRCS:%.c=$(O)/%.o)
LIB      := $(O)/libstrata.a
UNIT_BINS := $(UNIT_TESTS:%.c=$(O)/%)
FUZZ_BINS := $(FUZZ_TARGETS:%.c=$(O)/%)
BENCH_BINS := $(BENCH_SRCS:%.c=$(O)/%)

.DEFAULT_GOAL := all
# Keep objects of test and tool binaries between builds.
.SECONDARY:
.PHONY: all deps run test bench fuzz soak install clean help unit-bins fuzz-bins bench-bins

all: $(LIB) $(BINS)

help:
	@echo "make run     install missing packages, build, start strata-server on DATA_DIR (./strata-data), HOST:PORT (127.0.0.1:7420)"
	@echo "make test    install missing packages, build, run every test tier (unit, unit under ASan+UBSan, fuzz, ...)"
	@echo "make bench-etcd  Strata against etcd 3.4 (installed on demand) with the same load driver"
	@echo "make bench-s3    OCDBT files on S3 (Ceph radosgw, installed on demand) against local disk"
	@echo "make bench-gluster  OCDBT files on GlusterFS (installed on demand, loopback) against local disk"
	@echo "make bench   build -O2 and print BENCH lines (databases under BENCH_DIR, default build/bench-data)"
	@echo "make fuzz    run every libFuzzer target for FUZZ_RUNS inputs (default 10^7) each"
	@echo "make install PREFIX=/usr/local DESTDIR=   binaries, man pages, C client library + headers, strata.pc, Python package"
	@echo "make soak    lock-safety checker and kill -9 under load at soak size; prints SOAK lines"
	@echo "make clean"

# --- packages -----------------------------------------------------------------
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# $(call apt_install,PACKAGES,WHO): installs those of PACKAGES that are missing.
define apt_install
@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "$(2): installing$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef
deps:
	$(call apt_install,$(DEB_PACKAGES),deps)

# --- compile ------------------------------------------------------------------
$(O)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(O)/tests/unit/%: $(O)/tests/unit/%.o $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ -lcmocka $(LDLIBS)

$(O)/tests/fuzz/%: $(O)/tests/fuzz/%.o $(LIB)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(O)/tools/bench/%: $(O)/tools/bench/%.o $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

unit-bins: $(UNIT_BINS)
# The seed generator is a plain program built with the fuzz variant's flags.
$(O)/tests/fuzz/seeds: $(O)/tests/fuzz/seeds.o $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

fuzz-bins: $(FUZZ_BINS) $(O)/tests/fuzz/seeds
bench-bins: $(BENCH_BINS)

# --- run, test, bench ---------------------------------------------------------
# make run PORT=7500 DATA_DIR=/srv/strata [HOST=0.0.0.0]. The recipe's shell
# execs the server, so it runs as make's child and a signal to it (Ctrl-C,
# kill PID) drains and stops it; its pid is in the event=ready log line and in
# DATA_DIR/server.lock.
HOST     ?= 127.0.0.1
PORT     ?= 7420
DATA_DIR ?= ./strata-data
run: deps
	$(MAKE) VARIANT=release all
	exec $(BUILD)/release/server/strata-server --data-dir '$(DATA_DIR)' --listen '$(HOST):$(PORT)' $(RUN_FLAGS)

FUZZ_SECONDS ?= 20
TEST_RESULTS := $(BUILD)/test-results

# Every tier appends one "tier: N passed, N failed" line to $(TEST_RESULTS)/summary;
# a tier that fails before it can (a build error) is recorded as one failure.
# tests/summarize.sh prints the total and fails if any tier failed or ran nothing.
test: deps
	@rm -rf $(TEST_RESULTS) && mkdir -p $(TEST_RESULTS) && touch $(TEST_RESULTS)/summary
	@status=0; for t in $(TEST_TIERS); do \
	  before=$$(wc -l < $(TEST_RESULTS)/summary); \
	  $(MAKE) --no-print-directory test-$$t || status=1; \
	  if [ "$$(wc -l < $(TEST_RESULTS)/summary)" -eq "$$before" ]; then \
	    echo "$$t: 0 passed, 1 failed (the tier did not run: see the build output above)" | tee -a $(TEST_RESULTS)/summary; \
	    status=1; \
	  fi; \
	done; \
	sh tests/summarize.sh $(TEST_RESULTS) && exit $$status

# Benchmark databases live in their own directory (BENCH_DIR), like a real data
# directory, not in /tmp where every test tier creates and deletes files: on
# ext4 without a journal each file creation scans past recently freed inodes
# (see docs/benchmarks.md, figure fs_create_file).
BENCH_DIR ?= $(CURDIR)/$(BUILD)/bench-data
bench: deps
	$(MAKE) --no-print-directory VARIANT=release bench-bins
	@mkdir -p $(BENCH_DIR)
	@for b in $(BENCH_SRCS:%.c=$(BUILD)/release/%); do \
	  STRATA_BENCH_DIR=$(BENCH_DIR) TMPDIR=$(BENCH_DIR) $$b || exit 1; done
	@$(MAKE) --no-print-directory bench-python
	@$(MAKE) --no-print-directory bench-populate
	@$(MAKE) --no-print-directory bench-split
	@$(MAKE) --no-print-directory bench-downsample
	@$(MAKE) --no-print-directory bench-etcd
	@$(MAKE) --no-print-directory bench-s3
	@$(MAKE) --no-print-directory bench-gluster

# Strata against etcd 3.4 (Debian's etcd-server, installed here on first use) with the
# same load driver in one run: tools/bench-etcd.sh starts both servers on loopback on
# fresh data directories under BENCH_DIR and stops them by PID. BENCH_RUNS runs of
# BENCH_SECONDS each per figure, the median reported (docs/benchmarks.md "Against etcd").
ETCD_DEB_PACKAGES := etcd-server
BENCH_RUNS ?= 3
BENCH_SECONDS ?= 2
.PHONY: bench-etcd
bench-etcd: deps
	$(call apt_install,$(ETCD_DEB_PACKAGES),bench-etcd)
	@$(MAKE) --no-print-directory VARIANT=release $(BUILD)/release/tools/strata-bench \
	  $(BUILD)/release/server/strata-server
	@mkdir -p $(BENCH_DIR)
	@BENCH_RUNS=$(BENCH_RUNS) BENCH_SECONDS=$(BENCH_SECONDS) sh tools/bench-etcd.sh \
	  $(BUILD)/release/tools/strata-bench $(BUILD)/release/server/strata-server $(BENCH_DIR)/etcd-cmp

# OCDBT files on S3 against local disk in the same run (issue 19): tools/bench/s3_bench.py starts
# Ceph's radosgw on loopback (tests/s3/rgw.py; CEPH_DEB_PACKAGES, tests/module.mk, installed here
# on first use) and strata-servers on fresh data directories under BENCH_DIR: puts at 16 in
# flight, publication lag, populate --standalone (docs/benchmarks.md "OCDBT on S3"). A Ceph that
# cannot be installed or started gives one line and no figures, not a failure.
.PHONY: bench-s3
bench-s3: deps
	-$(call apt_install,$(CEPH_DEB_PACKAGES),bench-s3)
	@$(MAKE) --no-print-directory VARIANT=release python $(BUILD)/release/tools/strata-bench \
	  $(BUILD)/release/server/strata-server $(BUILD)/release/tools/strata-populate \
	  $(BUILD)/release/tools/strata-genvol
	@mkdir -p $(BENCH_DIR)
	@STRATA_SERVER_BIN=$(BUILD)/release/server/strata-server \
	  POPULATE_BIN=$(BUILD)/release/tools/strata-populate GENVOL_BIN=$(BUILD)/release/tools/strata-genvol \
	  PYTHONPATH=$(CURDIR)/$(BUILD)/python BENCH_RUNS=$(BENCH_RUNS) BENCH_SECONDS=$(BENCH_SECONDS) \
	  $(PYTHON) tools/bench/s3_bench.py --dir $(BENCH_DIR)/s3 --bench $(BUILD)/release/tools/strata-bench

# Strata with its OCDBT files on GlusterFS (Debian's 10.3, installed here on first use, started
# on loopback by tools/bench/gluster_bench.py with one brick and then replica 2, torn down at
# the end) against local disk in one run: puts at 16 in flight, populate MB/s, the commit log
# on the replicated volume (docs/benchmarks.md "GlusterFS"). Where GlusterFS cannot be
# installed or started it says so in one line and succeeds.
.PHONY: bench-gluster
bench-gluster: deps
	-$(call apt_install,$(GLUSTER_DEB_PACKAGES),bench-gluster)
	@$(MAKE) --no-print-directory VARIANT=release python \
	  $(addprefix $(BUILD)/release/,$(POP_TIER_BINS) tools/strata-bench)
	@mkdir -p $(BENCH_DIR)
	@$(call POP_TIER_ENV,release) STRATA_BENCH_BIN=$(BUILD)/release/tools/strata-bench \
	  BENCH_RUNS=$(BENCH_RUNS) BENCH_SECONDS=$(BENCH_SECONDS) \
	  $(PYTHON) tools/bench/gluster_bench.py --dir $(BENCH_DIR)

# make fuzz: every target until it has run FUZZ_RUNS inputs (default 10^7);
# make fuzz FUZZ_RUNS= FUZZ_SECONDS=300 runs each for a time instead.
fuzz: deps
	$(MAKE) --no-print-directory \
	  FUZZ_RUNS=$(if $(filter undefined,$(origin FUZZ_RUNS)),10000000,$(FUZZ_RUNS)) test-fuzz

# The C client library is two static archives: libstrata_rpc.a (the gRPC client
# and the generated messages, rpc/client.h) and libstrata.a (error codes, the
# engines). Headers go to $(PREFIX)/include/strata with the tree's layout, so a
# client includes "rpc/client.h" with `pkg-config --cflags strata`. strata.pc is
# written here with the PREFIX given; Libs.private lists what only a static link
# of the engines needs (`pkg-config --static --libs strata`).
LIBDIR      = $(PREFIX)/lib
INCLUDEDIR  = $(PREFIX)/include/strata
PUBLIC_HEADERS := common/err.h common/version.h rpc/client.h rpc/methods.h rpc/status.h
install: all install-python
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 $(LIB) $(DESTDIR)$(LIBDIR)/libstrata.a
	install -m 644 $(RPC_LIB) $(DESTDIR)$(LIBDIR)/libstrata_rpc.a
	for b in $(BINS); do install -m 755 $$b $(DESTDIR)$(PREFIX)/bin/; done
	install -m 644 docs/stratactl.1 docs/strata-server.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	for h in $(PUBLIC_HEADERS); do install -D -m 644 $$h $(DESTDIR)$(INCLUDEDIR)/$$h; done
	for h in $(RPC_GEN_H:$(BUILD)/gen/%=%); do install -D -m 644 $(BUILD)/gen/$$h $(DESTDIR)$(INCLUDEDIR)/$$h; done
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCLUDEDIR)' '' \
	  'Name: strata' 'Description: Strata C client library (gRPC) and engines' \
	  'Version: $(STRATA_VERSION)' 'Requires: grpc gpr libprotobuf-c libcrypto' \
	  'Requires.private: libzstd libb2' \
	  'Libs: -L$${libdir} -lstrata_rpc -lstrata' 'Libs.private: -lrocksdb -lpthread -lm' \
	  'Cflags: -I$${includedir}' > $(DESTDIR)$(LIBDIR)/pkgconfig/strata.pc

clean:
	rm -rf $(BUILD)

# --- version ------------------------------------------------------------------
# common/version.c is the one unit that knows the build's identity. The git
# commit is the tree's (`unknown` without .git); the stamp file holds the -D
# flags and changes only when they do, so a new commit recompiles version.o.
# The build date is when version.o was last compiled: with a new commit or
# any other object of libstrata.a.
STRATA_VERSION := 0.1.0
GIT_COMMIT := $(shell [ -e .git ] && git rev-parse --short HEAD 2>/dev/null || echo unknown)
VERSION_DEFS := -DSTRATA_VERSION='"$(STRATA_VERSION)"' -DSTRATA_GIT_COMMIT='"$(GIT_COMMIT)"'
VERSION_STAMP := $(O)/common/version.stamp
.PHONY: FORCE
FORCE:
$(VERSION_STAMP): FORCE
	@mkdir -p $(@D)
	@echo '$(VERSION_DEFS)' | cmp -s - $@ || echo '$(VERSION_DEFS)' > $@
$(O)/common/version.o: private CPPFLAGS += $(VERSION_DEFS) \
	-DSTRATA_BUILD_DATE='"$(shell date -u +%Y-%m-%dT%H:%M:%SZ)"'
$(O)/common/version.o: $(VERSION_STAMP) $(filter-out $(O)/common/version.o,$(LIB_OBJS))

-include $(LIB_OBJS:.o=.d) $(UNIT_BINS:=.d) $(FUZZ_BINS:=.d) $(BENCH_BINS:=.d) $(BIN_OBJS:.o=.d) $(O)/tests/fuzz/seeds.d
