# tests/: the tiers `make test` runs, in order. Each tier is a target
# test-NAME that runs its binaries through tests/run-tier.sh, which appends one
# result line to $(TEST_RESULTS). Folders add their own binaries to
# UNIT_TESTS / FUZZ_TARGETS; tiers that need more are added here.

# Tests that join two modules without a server live here.
UNIT_TESTS += tests/unit/test_fence.c

# Server-level system tiers (lock safety, kill -9 under load) and `make soak`.
include tests/system/module.mk

# Bulk populate (issue 12): strata-genvol and strata-populate as subprocesses against real
# strata-servers, read back through the Python client (tests/populate/).
TEST_TIERS += populate
.PHONY: test-populate
test-populate:
	@$(MAKE) --no-print-directory VARIANT=release python $(BUILD)/release/server/strata-server \
	  $(BUILD)/release/tools/strata-populate $(BUILD)/release/tools/strata-genvol \
	  $(BUILD)/release/tools/stratactl
	@STRATA_SERVER_BIN=$(BUILD)/release/server/strata-server STRATACTL_BIN=$(BUILD)/release/tools/stratactl \
	  POPULATE_BIN=$(BUILD)/release/tools/strata-populate GENVOL_BIN=$(BUILD)/release/tools/strata-genvol \
	  PYTHONPATH=$(CURDIR)/$(BUILD)/python \
	  sh tests/run-tier.sh populate $(TEST_RESULTS) tests/populate/test_genvol.py tests/populate/test_populate.py

# The same scripts with strata-populate, strata-genvol and the server under ASan + UBSan.
TEST_TIERS += populate-asan
.PHONY: test-populate-asan
test-populate-asan:
	@$(MAKE) --no-print-directory VARIANT=release python
	@$(MAKE) --no-print-directory VARIANT=asan $(BUILD)/asan/server/strata-server \
	  $(BUILD)/asan/tools/strata-populate $(BUILD)/asan/tools/strata-genvol $(BUILD)/asan/tools/stratactl
	@$(SAN_ENV) \
	  STRATA_SERVER_BIN=$(BUILD)/asan/server/strata-server STRATACTL_BIN=$(BUILD)/asan/tools/stratactl \
	  POPULATE_BIN=$(BUILD)/asan/tools/strata-populate GENVOL_BIN=$(BUILD)/asan/tools/strata-genvol \
	  PYTHONPATH=$(CURDIR)/$(BUILD)/python \
	  sh tests/run-tier.sh populate-asan $(TEST_RESULTS) tests/populate/test_genvol.py tests/populate/test_populate.py

# The supervoxel split worker and op replay (issue 13): strata-split and stratactl as
# subprocesses against real strata-servers over a volume strata-genvol made and
# strata-populate loaded (tests/split/).
SPLIT_TIER_BINS = server/strata-server tools/strata-split tools/stratactl tools/strata-populate \
  tools/strata-genvol
SPLIT_TIER_ENV = STRATA_SERVER_BIN=$(BUILD)/$(1)/server/strata-server \
  SPLIT_BIN=$(BUILD)/$(1)/tools/strata-split STRATACTL_BIN=$(BUILD)/$(1)/tools/stratactl \
  POPULATE_BIN=$(BUILD)/$(1)/tools/strata-populate GENVOL_BIN=$(BUILD)/$(1)/tools/strata-genvol \
  PYTHONPATH=$(CURDIR)/$(BUILD)/python
TEST_TIERS += split
.PHONY: test-split
test-split:
	@$(MAKE) --no-print-directory VARIANT=release python $(SPLIT_TIER_BINS:%=$(BUILD)/release/%)
	@$(call SPLIT_TIER_ENV,release) sh tests/run-tier.sh split $(TEST_RESULTS) tests/split/test_split.py

# The same script with every binary under ASan + UBSan (leaks included).
TEST_TIERS += split-asan
.PHONY: test-split-asan
test-split-asan:
	@$(MAKE) --no-print-directory VARIANT=release python
	@$(MAKE) --no-print-directory VARIANT=asan $(SPLIT_TIER_BINS:%=$(BUILD)/asan/%)
	@$(SAN_ENV) \
	  $(call SPLIT_TIER_ENV,asan) sh tests/run-tier.sh split-asan $(TEST_RESULTS) tests/split/test_split.py

# The downsample worker (issue 14): strata-downsample, strata-split and stratactl as
# subprocesses against real strata-servers (tests/downsample/).
DS_TIER_BINS = server/strata-server tools/strata-downsample tools/strata-split tools/stratactl \
  tools/strata-populate tools/strata-genvol
DS_TIER_ENV = $(call SPLIT_TIER_ENV,$(1)) DOWNSAMPLE_BIN=$(BUILD)/$(1)/tools/strata-downsample
TEST_TIERS += downsample
.PHONY: test-downsample
test-downsample:
	@$(MAKE) --no-print-directory VARIANT=release python $(DS_TIER_BINS:%=$(BUILD)/release/%)
	@$(call DS_TIER_ENV,release) sh tests/run-tier.sh downsample $(TEST_RESULTS) tests/downsample/test_downsample.py

# The same script with every binary under ASan + UBSan (leaks included).
TEST_TIERS += downsample-asan
.PHONY: test-downsample-asan
test-downsample-asan:
	@$(MAKE) --no-print-directory VARIANT=release python
	@$(MAKE) --no-print-directory VARIANT=asan $(DS_TIER_BINS:%=$(BUILD)/asan/%)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(call DS_TIER_ENV,asan) sh tests/run-tier.sh downsample-asan $(TEST_RESULTS) tests/downsample/test_downsample.py

# The unit tiers run first and fuzzing last; the other folders' tiers between.
TEST_TIERS := unit unit-asan $(TEST_TIERS) fuzz

.PHONY: test-unit test-unit-asan test-fuzz

test-unit:
	@$(MAKE) --no-print-directory VARIANT=release unit-bins
	@sh tests/run-tier.sh unit $(TEST_RESULTS) $(UNIT_TESTS:%.c=$(BUILD)/release/%)

test-unit-asan:
	@$(MAKE) --no-print-directory VARIANT=asan unit-bins
	@$(SAN_ENV) \
	  sh tests/run-tier.sh unit-asan $(TEST_RESULTS) $(UNIT_TESTS:%.c=$(BUILD)/asan/%)

# Each libFuzzer target runs FUZZ_SECONDS from its seed corpus (tests/fuzz/corpus/NAME,
# made by tests/fuzz/seeds at build time); any crash or sanitizer report fails the tier.
test-fuzz:
	@$(MAKE) --no-print-directory VARIANT=fuzz fuzz-bins
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_RUNS=$(FUZZ_RUNS) sh tests/fuzz/run.sh $(TEST_RESULTS) $(BUILD)/fuzz $(FUZZ_TARGETS:tests/fuzz/%.c=%)


# History retention and GC (issue 17): policies, holds, op and watcher pins, OUT_OF_RANGE
# for dropped versions, kill -9 of the server during GC, the metrics endpoint (tests/retain/).
TEST_TIERS += retain
.PHONY: test-retain
test-retain:
	@$(MAKE) --no-print-directory VARIANT=release python $(BUILD)/release/server/strata-server \
	  $(BUILD)/release/tools/stratactl
	@STRATA_SERVER_BIN=$(BUILD)/release/server/strata-server STRATACTL_BIN=$(BUILD)/release/tools/stratactl \
	  PYTHONPATH=$(CURDIR)/$(BUILD)/python \
	  sh tests/run-tier.sh retain $(TEST_RESULTS) tests/retain/test_retain.py tests/retain/test_metrics.py

# The same scripts with the server and stratactl under ASan + UBSan, leaks fatal.
TEST_TIERS += retain-asan
.PHONY: test-retain-asan
test-retain-asan:
	@$(MAKE) --no-print-directory VARIANT=release python
	@$(MAKE) --no-print-directory VARIANT=asan $(BUILD)/asan/server/strata-server $(BUILD)/asan/tools/stratactl
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  STRATA_SERVER_BIN=$(BUILD)/asan/server/strata-server STRATACTL_BIN=$(BUILD)/asan/tools/stratactl \
	  PYTHONPATH=$(CURDIR)/$(BUILD)/python \
	  sh tests/run-tier.sh retain-asan $(TEST_RESULTS) tests/retain/test_retain.py tests/retain/test_metrics.py
