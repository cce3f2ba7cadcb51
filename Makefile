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
	python3-grpcio python3-protobuf

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
LDLIBS   += -lzstd -lb2 -lrocksdb -lpthread -lm
LDFLAGS  += $(LDOPT_$(VARIANT))

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
.PHONY: all deps run test bench fuzz install clean help unit-bins fuzz-bins bench-bins

all: $(LIB) $(BINS)

help:
	@echo "make run     install missing packages, build, start strata-server on ./strata-data, 127.0.0.1:7420"
	@echo "make test    install missing packages, build, run every test tier (unit, unit under ASan+UBSan, fuzz, ...)"
	@echo "make bench   build -O2 and print BENCH lines (databases under BENCH_DIR, default build/bench-data)"
	@echo "make fuzz    run every libFuzzer target for FUZZ_RUNS inputs (default 10^7) each"
	@echo "make install PREFIX=/usr/local DESTDIR="
	@echo "make clean"

# --- packages -----------------------------------------------------------------
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

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
run: deps
	$(MAKE) VARIANT=release all
	$(BUILD)/release/server/strata-server --data-dir ./strata-data --listen 127.0.0.1:7420

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

# make fuzz: every target until it has run FUZZ_RUNS inputs (default 10^7);
# make fuzz FUZZ_RUNS= FUZZ_SECONDS=300 runs each for a time instead.
fuzz: deps
	$(MAKE) --no-print-directory \
	  FUZZ_RUNS=$(if $(filter undefined,$(origin FUZZ_RUNS)),10000000,$(FUZZ_RUNS)) test-fuzz

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libstrata.a
	for b in $(BINS); do install -m 755 $$b $(DESTDIR)$(PREFIX)/bin/; done
	install -m 644 docs/stratactl.1 $(DESTDIR)$(PREFIX)/share/man/man1/stratactl.1

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJS:.o=.d) $(UNIT_BINS:=.d) $(FUZZ_BINS:=.d) $(BENCH_BINS:=.d) $(BIN_OBJS:.o=.d) $(O)/tests/fuzz/seeds.d
