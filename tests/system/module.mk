# tests/system/: server-level system tiers (issue 9). Real strata-server processes,
# real client processes over gRPC: the lock-safety checker (lockcheck) and kill -9
# under mixed load (killload). `make soak` runs both at soak size (SOAK lines).
SYS_BINS := $(O)/tests/system/lockcheck $(O)/tests/system/killload
KILLLOAD_OBJS := $(O)/tests/system/killload_client.o $(O)/tests/system/killload_check.o
SYS_OBJS := $(O)/tests/system/lockcheck.o $(O)/tests/system/killload.o $(O)/tests/system/sys_common.o \
	$(KILLLOAD_OBJS)
$(SYS_OBJS): | $(RPC_GEN_H)
-include $(SYS_OBJS:.o=.d)

$(O)/tests/system/%: $(O)/tests/system/%.o $(O)/tests/system/sys_common.o $(O)/tests/rpc/srv_harness.o \
		$(O)/libsrv.a $(RPC_LIB) $(O)/libstrata.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $(filter %.o,$^) $(filter-out %.o,$^) -o $@ $(RPC_LDLIBS) $(LDLIBS)
# killload's client and checks live in files of their own.
$(O)/tests/system/killload: $(KILLLOAD_OBJS)

.PHONY: sys-bins soak
sys-bins: $(SYS_BINS) $(O)/server/strata-server

# Sizes: make test runs LOCKCHECK_TXNS transactions and KILLLOAD_CYCLES kill cycles;
# make soak ten times the transactions and 1,000 cycles.
LOCKCHECK_TXNS ?= 25000
KILLLOAD_CYCLES ?= 100
SOAK_LOCKCHECK_TXNS ?= 250000
SOAK_KILLLOAD_CYCLES ?= 1000

$(eval $(call tier,lockcheck,sys-bins,,STRATA_SERVER_BIN=$(BUILD)/release/server/strata-server \
  LOCKCHECK_TXNS=$$(LOCKCHECK_TXNS),$(BUILD)/release/tests/system/lockcheck))
$(eval $(call tier,killload,sys-bins,,STRATA_SERVER_BIN=$(BUILD)/release/server/strata-server \
  KILLLOAD_CYCLES=$$(KILLLOAD_CYCLES),$(BUILD)/release/tests/system/killload))

# Soak: the same binaries, bigger, output on the terminal; every figure is a SOAK line.
soak: deps
	@$(MAKE) --no-print-directory VARIANT=release sys-bins
	@STRATA_SERVER_BIN=$(BUILD)/release/server/strata-server LOCKCHECK_SOAK=1 \
	  LOCKCHECK_TXNS=$(SOAK_LOCKCHECK_TXNS) timeout -k 10 3600 $(BUILD)/release/tests/system/lockcheck
	@STRATA_SERVER_BIN=$(BUILD)/release/server/strata-server KILLLOAD_SOAK=1 \
	  KILLLOAD_CYCLES=$(SOAK_KILLLOAD_CYCLES) timeout -k 10 3600 $(BUILD)/release/tests/system/killload
