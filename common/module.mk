# common/: the error table and other code every module shares.
LIB_SRCS += common/err.c common/buf.c common/version.c common/utf8.c common/keyshow.c common/mutex.c
UNIT_TESTS += tests/unit/test_err.c tests/unit/test_utf8.c tests/unit/test_mutex.c
