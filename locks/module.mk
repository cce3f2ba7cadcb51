# locks/: lock manager, op log and id counters (issue 4). See locks/README.md.
LIB_SRCS += locks/lockdb.c locks/table.c locks/lock.c locks/list.c locks/rowkey.c \
	locks/oplog.c locks/counter.c
UNIT_TESTS += tests/unit/test_lk_keys.c tests/unit/test_lk_lock.c tests/unit/test_lk_oplog.c \
	tests/unit/test_lk_scenarios.c
