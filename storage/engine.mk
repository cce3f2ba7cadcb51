# storage/ engine: base stores, copy-on-write B+tree, version tree writer, commit pipeline (issue 3).
LIB_SRCS += storage/base_file.c storage/base_mem.c storage/base_fault.c storage/cache.c \
	storage/btree.c storage/btree_write.c storage/versions.c storage/commit.c storage/db.c
UNIT_TESTS += tests/unit/test_store_basic.c tests/unit/test_store_model.c tests/unit/test_store_fault.c tests/unit/test_store_corrupt.c
