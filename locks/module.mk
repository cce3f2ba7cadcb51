# locks/: lock manager, op log and id counters (issue 4). See locks/README.md.
LIB_SRCS += locks/lockdb.c locks/walsync.c locks/table.c locks/prep.c locks/lock.c locks/fence.c locks/selfcheck.c locks/list.c \
	locks/rowkey.c \
	locks/oplog.c locks/counter.c locks/writers.c locks/retention.c
BENCH_SRCS += tools/bench/bench_locks.c
UNIT_TESTS += tests/unit/test_lk_keys.c tests/unit/test_lk_lock.c tests/unit/test_lk_oplog.c \
	tests/unit/test_lk_scenarios.c tests/unit/test_wreg.c tests/unit/test_lk_walsync.c \
	tests/unit/test_lk_wait.c

# Tiers of their own: the randomized safety checker and the SIGKILL crash test.
LOCKS_TEST_BINS := tests/locks/lk_safety tests/locks/lk_crash
.PHONY: locks-test-bins

# $(LIB) is defined after the fragments are read, hence the spelled-out path.
$(O)/tests/locks/%: $(O)/tests/locks/%.o $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

locks-test-bins: $(LOCKS_TEST_BINS:%=$(O)/%)

$(eval $(call tier,locks-stress,$(BUILD)/release/tests/locks/lk_safety,,,$(BUILD)/release/tests/locks/lk_safety))
$(eval $(call tier,locks-crash,$(BUILD)/release/tests/locks/lk_crash,,,$(BUILD)/release/tests/locks/lk_crash))

-include $(LOCKS_TEST_BINS:%=$(O)/%.d)
