/*
 * strata.v1.Coordinator: the writer registry of coordinator mode over
 * locks/writers.h. Every call runs on the io pool (registrations and renewals
 * are synced RocksDB writes; RegisterFile stats the file). The commit side of
 * coordinator mode, references in Kv.Commit, is in h_kv.c; GC in h_admin.c.
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"
#include "server/srv_int.h"

/* --- checks: what the request alone decides ------------------------------------ */

static int need_writer(uint64_t id) {
  return id ? 0 : strata_err(STRATA_EINVALID, "writer_id: must be set");
}

static int check_renew(const ProtobufCMessage *m) {
  const Strata__V1__RenewWriterRequest *r = (const void *)m;
  return need_writer(r->writer_id);
}

static int check_unregister(const ProtobufCMessage *m) {
  const Strata__V1__UnregisterWriterRequest *r = (const void *)m;
  return need_writer(r->writer_id);
}

static int check_register_file(const ProtobufCMessage *m) {
  const Strata__V1__RegisterFileRequest *r = (const void *)m;
  int rc = need_writer(r->writer_id);
  return rc ? rc : wreg_check_path(r->writer_id, "path", r->path ? r->path : "");
}

/* --- handlers ------------------------------------------------------------------- */

static void register_writer(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__RegisterWriterRequest *r = (const void *)m;
  wreg_info i;
  int rc = wreg_register(s->wr, r->name ? r->name : "", r->lease_ttl_ms, &i);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  Strata__V1__RegisterWriterResponse resp = STRATA__V1__REGISTER_WRITER_RESPONSE__INIT;
  resp.writer_id = i.id;
  resp.lease_expires_ns = i.lease_expires_ns;
  resp.prefix = i.prefix;
  resp.store_dir = s->store_dir;
  rpc_call_reply(call, &resp.base);
}

static void renew_writer(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__RenewWriterRequest *r = (const void *)m;
  int64_t exp = 0;
  int rc = wreg_renew(s->wr, r->writer_id, r->lease_ttl_ms, &exp);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  Strata__V1__RenewWriterResponse resp = STRATA__V1__RENEW_WRITER_RESPONSE__INIT;
  resp.lease_expires_ns = exp;
  rpc_call_reply(call, &resp.base);
}

static void unregister_writer(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__UnregisterWriterRequest *r = (const void *)m;
  int rc = wreg_unregister(s->wr, r->writer_id);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  Strata__V1__UnregisterWriterResponse resp = STRATA__V1__UNREGISTER_WRITER_RESPONSE__INIT;
  rpc_call_reply(call, &resp.base);
}

static void register_file(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__RegisterFileRequest *r = (const void *)m;
  const char *path = r->path ? r->path : "";
  uint64_t size = 0;
  int rc = wreg_check_live(s->wr, r->writer_id);
  if (!rc && (rc = st_file_size(s->db, path, &size)) == STRATA_ENOTFOUND)
    rc = strata_err(rc, "path: %s does not exist in the store directory %s (write and fsync it "
                    "before registering)", path, s->store_dir);
  if (!rc) rc = wreg_register_file(s->wr, r->writer_id, path, size);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  Strata__V1__RegisterFileResponse resp = STRATA__V1__REGISTER_FILE_RESPONSE__INIT;
  resp.size = size;
  rpc_call_reply(call, &resp.base);
}

static void list_writers(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__ListWritersRequest *r = (const void *)m;
  wreg_info *ws = NULL;
  size_t n = 0;
  int rc = wreg_list(s->wr, r->include_expired, &ws, &n);
  Strata__V1__WriterInfo *wi = calloc(n ? n : 1, sizeof *wi);
  Strata__V1__WriterInfo **ptrs = calloc(n ? n : 1, sizeof *ptrs);
  if (!rc && (!wi || !ptrs)) rc = strata_err(STRATA_ENOMEM, "ListWriters: out of memory");
  if (rc) {
    srv__fail(call, rc);
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    strata__v1__writer_info__init(&wi[i]);
    wi[i].writer_id = ws[i].id;
    wi[i].name = ws[i].name;
    wi[i].registered_ns = ws[i].registered_ns;
    wi[i].lease_expires_ns = ws[i].lease_expires_ns;
    wi[i].live = ws[i].live;
    wi[i].files_registered = ws[i].files_registered;
    wi[i].bytes_committed = ws[i].bytes_committed;
    wi[i].last_commit_generation = ws[i].last_commit_generation;
    wi[i].prefix = ws[i].prefix;
    ptrs[i] = &wi[i];
  }
  Strata__V1__ListWritersResponse resp = STRATA__V1__LIST_WRITERS_RESPONSE__INIT;
  resp.n_writers = n;
  resp.writers = ptrs;
  rpc_call_reply(call, &resp.base);
out:
  free(ws);
  free(wi);
  free(ptrs);
}

void srv__coord_bind(srv *s, rpc_handler *h) {
  /* All on the io pool: synced RocksDB writes, and RegisterFile stats the file. */
  static const srv_route routes[] = {
      {RPC_M_coord_register_writer, NULL, register_writer, SRV_IO},
      {RPC_M_coord_renew_writer, check_renew, renew_writer, SRV_IO},
      {RPC_M_coord_unregister_writer, check_unregister, unregister_writer, SRV_IO},
      {RPC_M_coord_register_file, check_register_file, register_file, SRV_IO},
      {RPC_M_coord_list_writers, NULL, list_writers, SRV_IO},
  };
  srv__bind(s, h, routes, sizeof routes / sizeof routes[0]);
}
