# rpc/: see rpc/README.md. Appends to the variables the top-level Makefile defines.
#
# gRPC code stays out of libstrata.a (storage and locks tests must not link gRPC):
# rpc/ builds its own archive $(O)/librpc.a from rpc/*.c and the protobuf-c code
# that protoc-c generates from rpc/proto into $(BUILD)/gen (never committed).

RPC_PROTOS := rpc/proto/strata/v1/common.proto rpc/proto/strata/v1/kv.proto \
	rpc/proto/strata/v1/locks.proto rpc/proto/strata/v1/ops.proto \
	rpc/proto/strata/v1/admin.proto rpc/proto/grpc/health/v1/health.proto
RPC_GEN_C := $(RPC_PROTOS:rpc/proto/%.proto=$(BUILD)/gen/%.pb-c.c)
RPC_GEN_H := $(RPC_GEN_C:.c=.h)
RPC_GEN_OBJS := $(RPC_PROTOS:rpc/proto/%.proto=$(O)/gen/%.pb-c.o)
RPC_SRCS := rpc/methods.c rpc/status.c rpc/server.c rpc/client.c
RPC_OBJS := $(RPC_SRCS:%.c=$(O)/%.o)
RPC_LIB := $(O)/librpc.a
RPC_LDLIBS := $(shell pkg-config --libs grpc gpr libprotobuf-c 2>/dev/null || echo -lgrpc -lgpr -lprotobuf-c) -lpthread

# protoc-c writes every .pb-c.{c,h} of the set in one run.
$(RPC_GEN_C) $(RPC_GEN_H) &: $(RPC_PROTOS)
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -Irpc/proto $(RPC_PROTOS)

# Generated code is not ours to warn about beyond what protoc-c promises.
$(O)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CSTD) $(OPT_$(VARIANT)) $(CFLAGS) -c $< -o $@

# Anything that includes a generated header waits for protoc-c on a fresh tree
# (afterwards the .d files know the exact headers).
RPC_USERS_OBJS = $(RPC_OBJS)
$(RPC_OBJS): | $(RPC_GEN_H)

$(RPC_LIB): $(RPC_OBJS) $(RPC_GEN_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

-include $(RPC_OBJS:.o=.d) $(RPC_GEN_OBJS:.o=.d)
