# rpc/python/: the `strata` Python package (see rpc/python/README.md). Included by
# rpc/module.mk.
#
# `make` assembles an importable package under $(BUILD)/python (never committed):
# the sources from rpc/python/strata/ copied, plus strata/v1/*_pb2{,_grpc}.py that
# Debian's grpc_tools generates from rpc/proto/strata/v1. PYTHONPATH=$(BUILD)/python
# imports it from the build tree; `make install` copies it into site-packages;
# `pip install rpc/python` generates the same modules itself (rpc/python/setup.py).

PYTHON      ?= /usr/bin/python3
PY_OUT      := $(BUILD)/python
PY_SRCS     := $(wildcard rpc/python/strata/*.py)
PY_COPIES   := $(PY_SRCS:rpc/python/%=$(PY_OUT)/%)
PY_PROTOS   := $(filter rpc/proto/strata/v1/%,$(RPC_PROTOS))
PY_GEN      := $(PY_PROTOS:rpc/proto/%.proto=$(PY_OUT)/%_pb2.py) \
	$(PY_PROTOS:rpc/proto/%.proto=$(PY_OUT)/%_pb2_grpc.py) $(PY_OUT)/strata/v1/__init__.py
# Where `make install` puts the package: the directory Debian's python3 searches
# under $(PREFIX) (/usr/local/lib/python3.X/dist-packages).
PY_SITE     ?= $(PREFIX)/lib/$(shell $(PYTHON) -c 'import sys; print("python%d.%d" % sys.version_info[:2])' 2>/dev/null)/dist-packages

.PHONY: python install-python
all: python
python: $(PY_COPIES) $(PY_GEN)

$(PY_OUT)/strata/%.py: rpc/python/strata/%.py
	@mkdir -p $(@D)
	cp $< $@

# One grpc_tools run writes every module of the set.
$(PY_GEN) &: $(PY_PROTOS)
	@mkdir -p $(PY_OUT)/strata/v1
	$(PYTHON) -m grpc_tools.protoc -Irpc/proto --python_out=$(PY_OUT) --grpc_python_out=$(PY_OUT) $(PY_PROTOS)
	echo '"""Generated from rpc/proto/strata/v1 by grpc_tools (make); do not edit."""' > $(PY_OUT)/strata/v1/__init__.py

install-python: python
	install -d $(DESTDIR)$(PY_SITE)/strata/v1
	install -m 644 $(PY_OUT)/strata/*.py $(DESTDIR)$(PY_SITE)/strata/
	install -m 644 $(PY_OUT)/strata/v1/*.py $(DESTDIR)$(PY_SITE)/strata/v1/

# --- tier python: pytest (tests/python/) against a real strata-server ----------------
# pytest counts its own cases: tests/python/run.sh is the tier's runner.
$(eval $(call tier,python,python $(BUILD)/release/server/strata-server,,\
  STRATA_SERVER_BIN=$(BUILD)/release/server/strata-server PYTHONPATH=$(CURDIR)/$(PY_OUT) PYTHON=$(PYTHON),,\
  sh tests/python/run.sh $$(TEST_RESULTS)))

# --- bench-python: the client's put/get rates at 16 threads vs the C driver ----------
.PHONY: bench-python
bench-python:
	@$(MAKE) --no-print-directory VARIANT=release python $(BUILD)/release/server/strata-server \
	  $(BUILD)/release/tools/strata-bench
	@PYTHONPATH=$(CURDIR)/$(PY_OUT) $(PYTHON) tools/bench/python_bench.py \
	  --server $(BUILD)/release/server/strata-server --c-driver $(BUILD)/release/tools/strata-bench \
	  --dir $(BENCH_DIR)
