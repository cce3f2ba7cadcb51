# server/: see server/README.md. Appends to the variables the top-level Makefile defines.
SRV_SRCS := server/log.c server/srv.c server/embedded.c server/datadir.c server/h_health.c server/h_admin.c \
	server/h_kv.c server/h_locks.c server/h_ops.c server/validate.c server/pool.c server/h_watch.c \
	server/auth.c server/audit.c server/exposure.c server/h_coord.c server/gc.c server/retain.c \
	server/metrics.c server/lkanswer.c
SRV_OBJS := $(SRV_SRCS:%.c=$(O)/%.o)
SRV_LIB := $(O)/libsrv.a
SRV_MAIN_OBJ := $(O)/server/main.o
# The engines (store, locks) live in libstrata.a.
SRV_ENGINE := $(O)/libstrata.a
SRV_LINK = $(SRV_LIB) $(RPC_LIB) $(SRV_ENGINE)
SRV_LDLIBS = $(RPC_LDLIBS) $(LDLIBS)

BINS += $(O)/server/strata-server

$(SRV_OBJS) $(SRV_MAIN_OBJ): | $(RPC_GEN_H)

$(SRV_LIB): $(SRV_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(O)/server/strata-server: $(SRV_MAIN_OBJ) $(SRV_LINK)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(SRV_LDLIBS)

-include $(SRV_OBJS:.o=.d) $(SRV_MAIN_OBJ:.o=.d)
