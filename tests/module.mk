# tests/: the tiers `make test` runs, in order. Each tier is a target
# test-NAME that runs its binaries through tests/run-tier.sh, which appends one
# result line to $(TEST_RESULTS). Folders add their own binaries to
# UNIT_TESTS / FUZZ_TARGETS; tiers that need more are added here.

# Tests that join two modules without a server live here.
UNIT_TESTS += tests/unit/test_fence.c

# Server-level system tiers (lock safety, kill -9 under load) and `make soak`.
include tests/system/module.mk

# The tiers that run Python scripts against real binaries come in pairs (the top
# Makefile's `tier`): NAME builds BINS (paths under $(BUILD)/release/) and the Python
# package, then runs SCRIPTS with $(call ENV,release) in the environment; NAME-asan does
# the same with every binary under ASan + UBSan ($(SAN_ENV), leaks fatal).
# $(call script_tiers,NAME,BINS,ENV,SCRIPTS)
define script_tiers
$(call tier,$(1),python $(addprefix $(BUILD)/release/,$(2)),,$(call $(3),release),$(4))
$(call tier,$(1)-asan,python,$(addprefix $(BUILD)/asan/,$(2)),$$(SAN_ENV) $(call $(3),asan),$(4))
endef

# What every script tier's environment names: the server, stratactl and the package.
BASE_TIER_ENV = STRATA_SERVER_BIN=$(BUILD)/$(1)/server/strata-server \
  STRATACTL_BIN=$(BUILD)/$(1)/tools/stratactl PYTHONPATH=$(CURDIR)/$(BUILD)/python

# Bulk populate (issue 12): strata-genvol and strata-populate as subprocesses against real
# strata-servers, read back through the Python client (tests/populate/).
POP_TIER_BINS = server/strata-server tools/strata-populate tools/strata-genvol tools/stratactl
POP_TIER_ENV = $(call BASE_TIER_ENV,$(1)) POPULATE_BIN=$(BUILD)/$(1)/tools/strata-populate \
  GENVOL_BIN=$(BUILD)/$(1)/tools/strata-genvol
$(eval $(call script_tiers,populate,$(POP_TIER_BINS),POP_TIER_ENV,tests/populate/test_genvol.py tests/populate/test_populate.py))

# The supervoxel split worker and op replay (issue 13): strata-split and stratactl as
# subprocesses against real strata-servers over a volume strata-genvol made and
# strata-populate loaded (tests/split/).
SPLIT_TIER_BINS = $(POP_TIER_BINS) tools/strata-split
SPLIT_TIER_ENV = $(call POP_TIER_ENV,$(1)) SPLIT_BIN=$(BUILD)/$(1)/tools/strata-split
$(eval $(call script_tiers,split,$(SPLIT_TIER_BINS),SPLIT_TIER_ENV,tests/split/test_split.py))

# The downsample worker (issue 14): strata-downsample, strata-split and stratactl as
# subprocesses against real strata-servers (tests/downsample/).
DS_TIER_BINS = $(SPLIT_TIER_BINS) tools/strata-downsample
DS_TIER_ENV = $(call SPLIT_TIER_ENV,$(1)) DOWNSAMPLE_BIN=$(BUILD)/$(1)/tools/strata-downsample
$(eval $(call script_tiers,downsample,$(DS_TIER_BINS),DS_TIER_ENV,tests/downsample/test_downsample.py))

# History retention and GC (issue 17): policies, holds, op and watcher pins, OUT_OF_RANGE
# for dropped versions, kill -9 of the server during GC, the metrics endpoint (tests/retain/).
$(eval $(call script_tiers,retain,server/strata-server tools/stratactl,BASE_TIER_ENV,tests/retain/test_retain.py tests/retain/test_metrics.py))

# OCDBT on S3 (issue 19): Ceph's radosgw from Debian, installed here when missing and started
# once on loopback by tests/s3/tier.sh (tests/s3/rgw.py), which runs the S3 base store's test
# binary (release and ASan) and tests/s3/test_s3_server.py against it, then stops Ceph. A tier
# of its own (not `tier`): the install comes first, and Ceph failing to start fails the tier.
CEPH_DEB_PACKAGES := ceph-mon ceph-osd radosgw ceph-common
S3_TIER_BINS = server/strata-server tools/stratactl
# The S3 base store's own test binary (storage/base_s3.c, tests/storage/).
S3_STORE_TEST = tests/storage/test_store_s3
TEST_TIERS += s3
.PHONY: test-s3
test-s3:
	$(call apt_install,$(CEPH_DEB_PACKAGES),test-s3)
	@$(MAKE) --no-print-directory VARIANT=release python $(addprefix $(BUILD)/release/,$(S3_TIER_BINS) $(S3_STORE_TEST))
	@$(MAKE) --no-print-directory VARIANT=asan $(BUILD)/asan/$(S3_STORE_TEST)
	@$(SAN_ENV) $(call BASE_TIER_ENV,release) sh tests/s3/tier.sh $(TEST_RESULTS) \
	  $(BUILD)/release/$(S3_STORE_TEST) $(BUILD)/asan/$(S3_STORE_TEST) tests/s3/test_s3_server.py

# GlusterFS (issue 19, part 1): Debian's GlusterFS 10.3 started on loopback by the tier itself
# (tests/gluster/README.md), one brick and then replica 2, each mounted twice with the FUSE
# client; the server's OCDBT directory on one mount, populate writers on the other, kill -9.
# Release only. `gluster-deps` installs the packages (the tier's first build target).
GLUSTER_DEB_PACKAGES := glusterfs-server glusterfs-client
.PHONY: gluster-deps
gluster-deps:
	$(call apt_install,$(GLUSTER_DEB_PACKAGES),gluster)
$(eval $(call tier,gluster,gluster-deps python $(addprefix $(BUILD)/release/,$(POP_TIER_BINS)),,$(call POP_TIER_ENV,release),tests/gluster/test_gluster.py))

# The unit tiers run first and fuzzing last; the other folders' tiers between.
OTHER_TIERS := $(TEST_TIERS)
TEST_TIERS :=
$(eval $(call tier,unit,unit-bins,,,$$(UNIT_TESTS:%.c=$$(BUILD)/release/%)))
$(eval $(call tier,unit-asan,,unit-bins,$$(SAN_ENV),$$(UNIT_TESTS:%.c=$$(BUILD)/asan/%)))
TEST_TIERS += $(OTHER_TIERS) fuzz

.PHONY: test-fuzz

# Each libFuzzer target runs FUZZ_SECONDS from its seed corpus (tests/fuzz/corpus/NAME,
# made by tests/fuzz/seeds at build time); any crash or sanitizer report fails the tier.
test-fuzz:
	@$(MAKE) --no-print-directory VARIANT=fuzz fuzz-bins
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_RUNS=$(FUZZ_RUNS) sh tests/fuzz/run.sh $(TEST_RESULTS) $(BUILD)/fuzz $(FUZZ_TARGETS:tests/fuzz/%.c=%)



