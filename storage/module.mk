# storage/: OCDBT codecs and (issue 3) the versioned B+tree store.
LIB_SRCS += storage/crc32c.c storage/codec.c storage/dft.c storage/btnode.c \
	storage/vtree.c storage/manifest.c
UNIT_TESTS += tests/unit/test_crc32c.c tests/unit/test_codec_roundtrip.c \
	tests/unit/test_codec_conformance.c tests/unit/test_codec_corruption.c
FUZZ_TARGETS += tests/fuzz/fuzz_manifest.c tests/fuzz/fuzz_btnode.c \
	tests/fuzz/fuzz_vtnode.c tests/fuzz/fuzz_dft.c
BENCH_SRCS += tools/bench/bench_codec.c

# The store engine (base stores, B+tree, commit pipeline) has its own fragment.
include storage/engine.mk
