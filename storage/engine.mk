# storage/ engine: base stores, copy-on-write B+tree, version tree writer, commit pipeline (issue 3).
LIB_SRCS += storage/base_file.c storage/base_url.c storage/base_mem.c storage/base_fault.c storage/base_s3.c storage/cache.c \
	storage/btree.c storage/btree_write.c storage/versions.c storage/txn.c storage/validate.c \
	storage/commit.c storage/db.c storage/datafile.c storage/clog.c storage/logcommit.c storage/publish.c \
	storage/recover.c storage/gc.c storage/retain.c
UNIT_TESTS += tests/unit/test_store_basic.c tests/unit/test_store_diff.c tests/unit/test_store_txn.c tests/unit/test_store_base.c tests/storage/test_store_model.c \
	tests/unit/test_store_bigkeys.c tests/unit/test_store_files.c \
	tests/unit/test_store_recovery.c tests/unit/test_store_clog.c \
	tests/unit/test_store_logmode.c tests/unit/test_store_retain.c
BENCH_SRCS += tools/bench/bench_store.c tools/bench/bench_retain.c

# Tiers of their own (release, and asan where cheap): the long model run on
# memory and on files plus a 1 GiB value; >= 200 SIGKILLs; every fault site
# and byte flips; a simulated power cut after every operation of a run of commits. Each tier runs through tests/run-tier.sh like the others.
STORE_TIER_TESTS := tests/storage/test_store_crash.c tests/storage/test_store_powercut.c \
	tests/storage/test_store_fault.c tests/storage/test_store_flips.c \
	tests/storage/test_store_corrupt.c tests/storage/test_store_bigvalue.c tests/storage/test_store_s3.c
STORE_R := $(BUILD)/release/tests/storage
STORE_A := $(BUILD)/asan/tests/storage

# The store's crash, power-cut, fault and model tests live in tests/storage/, next to the
# lock manager's (tests/locks/); they link like unit tests.
$(O)/tests/storage/%: $(O)/tests/storage/%.o $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ -lcmocka $(LDLIBS)

# Sizes, overridable from the environment.
STORE_MODEL_ENV = STRATA_MODEL_TXNS=$${STRATA_MODEL_TXNS:-30000} \
  STRATA_MODEL_FILES_TXNS=$${STRATA_MODEL_FILES_TXNS:-5000}
STORE_CRASH_ENV = STRATA_CRASH_KILLS=$${STRATA_CRASH_KILLS:-300} $(SAN_ENV)
STORE_FAULT_BINS := test_store_fault test_store_corrupt test_store_flips
$(eval $(call tier,store-model,$(STORE_R)/test_store_model $(STORE_R)/test_store_bigvalue,,\
  $$(STORE_MODEL_ENV),$(STORE_R)/test_store_model $(STORE_R)/test_store_bigvalue))
$(eval $(call tier,store-crash,$(STORE_R)/test_store_crash $(STORE_R)/test_store_powercut,\
  $(STORE_A)/test_store_powercut,$$(STORE_CRASH_ENV),\
  $(STORE_R)/test_store_crash $(STORE_R)/test_store_powercut $(STORE_A)/test_store_powercut))
$(eval $(call tier,store-fault,$(STORE_FAULT_BINS:%=$(STORE_R)/%),$(STORE_FAULT_BINS:%=$(STORE_A)/%),\
  $$(SAN_ENV),$(STORE_FAULT_BINS:%=$(STORE_R)/%) $(STORE_FAULT_BINS:%=$(STORE_A)/%)))

# The S3 store's test (test_store_s3, release and asan) needs a running S3 endpoint: the s3
# tier (tests/module.mk, tests/s3/tier.sh) starts Ceph's radosgw and runs it.

-include $(STORE_TIER_TESTS:%.c=$(O)/%.d)
