/*
 * writers, gc and check: coordinator mode's registry (Coordinator.ListWriters),
 * GC (Admin.Gc) and the store check (Admin.Check). docs/stratactl.md.
 */
#include <stdio.h>
#include <string.h>

#include "tools/stratactl/ctl.h"

/* GC and the check walk every version: they get an hour on top of --timeout. */
#define WALK_EXTRA_MS (3600 * 1000)

static json_t *str_array(char **v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(v[i] ? v[i] : ""));
  return a;
}

int ctl_writers(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__ListWritersRequest q = STRATA__V1__LIST_WRITERS_REQUEST__INIT;
  q.include_expired = ctl_has(a, "all");
  rpc_callopts co = ctl_callopts(x, 0);
  Strata__V1__ListWritersResponse *r = NULL;
  int rc = rpc_coord_list_writers(ctl_client(x), &co, &q, &r);
  if (rc) return ctl_rpc_fail(x, rc, "Coordinator.ListWriters");
  int64_t now = ctl_now_ns();
  if (x->json) {
    json_t *ws = json_array();
    for (size_t i = 0; i < r->n_writers; i++) {
      const Strata__V1__WriterInfo *w = r->writers[i];
      json_t *o = json_object();
      json_object_set_new(o, "writer_id", ctl_json_u64(w->writer_id));
      json_object_set_new(o, "name", json_string(w->name ? w->name : ""));
      json_object_set_new(o, "live", json_boolean(w->live));
      ctl_json_set_time(o, "registered_at", w->registered_ns);
      ctl_json_set_time(o, "lease_expires_at", w->lease_expires_ns);
      json_object_set_new(o, "files_registered", ctl_json_u64(w->files_registered));
      json_object_set_new(o, "bytes_committed", ctl_json_u64(w->bytes_committed));
      json_object_set_new(o, "last_commit_generation", ctl_json_u64(w->last_commit_generation));
      json_object_set_new(o, "prefix", json_string(w->prefix ? w->prefix : ""));
      json_array_append_new(ws, o);
    }
    ctl_json_print(json_pack("{s:o}", "writers", ws));
    rpc_free(r);
    return CTL_OK;
  }
  static const char *const head[] = {"ID", "NAME", "STATE", "REGISTERED", "LEASE LEFT",
                                     "FILES", "BYTES", "LAST GEN", "PREFIX"};
  ctl_table t;
  ctl_table_init(&t, 9, head);
  for (size_t i = 0; i < r->n_writers; i++) {
    const Strata__V1__WriterInfo *w = r->writers[i];
    char id[24], reg[48], left[32], files[24], bytes[24], gen[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)w->writer_id);
    ctl_time_str(w->registered_ns, 0, reg, sizeof reg);
    if (w->live) ctl_dur_str((w->lease_expires_ns - now) / 1000000, left, sizeof left);
    else snprintf(left, sizeof left, "-");
    snprintf(files, sizeof files, "%llu", (unsigned long long)w->files_registered);
    snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)w->bytes_committed);
    snprintf(gen, sizeof gen, "%llu", (unsigned long long)w->last_commit_generation);
    const char *cells[] = {id, w->name, w->live ? "live" : "ended", reg, left, files, bytes,
                           gen, w->prefix};
    ctl_table_add(&t, cells);
  }
  ctl_table_print(&t, stdout);
  ctl_table_free(&t);
  printf("%zu writer%s\n", r->n_writers, r->n_writers == 1 ? "" : "s");
  rpc_free(r);
  return CTL_OK;
}

int ctl_gc(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__GcRequest q = STRATA__V1__GC_REQUEST__INIT;
  if (ctl_has(a, "status")) return ctl_gc_status(x);
  q.dry_run = ctl_has(a, "dry-run");
  rpc_callopts co = ctl_callopts(x, WALK_EXTRA_MS);
  Strata__V1__GcResponse *r = NULL;
  int rc = rpc_admin_gc(ctl_client(x), &co, &q, &r);
  if (rc) return ctl_rpc_fail(x, rc, "Admin.Gc");
  if (x->json) {
    json_t *o = json_object();
    json_object_set_new(o, "dry_run", json_boolean(q.dry_run));
    json_object_set_new(o, "files_removed", ctl_json_u64(r->files_removed));
    json_object_set_new(o, "bytes_removed", ctl_json_u64(r->bytes_removed));
    json_object_set_new(o, "paths", str_array(r->paths, r->n_paths));
    json_object_set_new(o, "files_kept", ctl_json_u64(r->files_kept));
    json_object_set_new(o, "writers_collected", ctl_json_u64(r->writers_collected));
    json_object_set_new(o, "writers_deferred", ctl_json_u64(r->writers_deferred));
    json_object_set_new(o, "versions_walked", ctl_json_u64(r->versions_walked));
    json_object_set_new(o, "own_files_removed", ctl_json_u64(r->own_files_removed));
    json_object_set_new(o, "own_bytes_removed", ctl_json_u64(r->own_bytes_removed));
    json_object_set_new(o, "own_files_waiting", ctl_json_u64(r->own_files_waiting));
    ctl_json_print(o);
  } else {
    for (size_t i = 0; i < r->n_paths; i++) printf("%s %s\n", q.dry_run ? "would remove" : "removed", r->paths[i]);
    if (r->n_paths < r->files_removed)
      printf("... and %llu more\n", (unsigned long long)(r->files_removed - r->n_paths));
    printf("%s %llu files, %llu bytes; kept %llu referenced files of ended writers; "
           "%llu writers collected, %llu deferred (a commit in flight)\n",
           q.dry_run ? "would remove" : "removed", (unsigned long long)r->files_removed,
           (unsigned long long)r->bytes_removed, (unsigned long long)r->files_kept,
           (unsigned long long)r->writers_collected, (unsigned long long)r->writers_deferred);
    printf("Strata's own files: %s %llu, %llu bytes; %llu unreferenced inside the grace period\n",
           q.dry_run ? "would remove" : "removed", (unsigned long long)r->own_files_removed,
           (unsigned long long)r->own_bytes_removed, (unsigned long long)r->own_files_waiting);
  }
  rpc_free(r);
  return CTL_OK;
}

int ctl_check(ctl_ctx *x, const ctl_args *a) {
  (void)a;
  Strata__V1__CheckStoreRequest q = STRATA__V1__CHECK_STORE_REQUEST__INIT;
  rpc_callopts co = ctl_callopts(x, WALK_EXTRA_MS);
  Strata__V1__CheckStoreResponse *r = NULL;
  int rc = rpc_admin_check(ctl_client(x), &co, &q, &r);
  if (rc) return ctl_rpc_fail(x, rc, "Admin.Check");
  /* Orphans: unreferenced files no live writer may still commit. */
  uint64_t orphans = r->unreferenced_files - r->unreferenced_live_writer_files;
  int bad = r->errors_total || r->missing_files || orphans;
  if (x->json) {
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_boolean(!bad));
    json_object_set_new(o, "versions_checked", ctl_json_u64(r->versions_checked));
    json_object_set_new(o, "nodes_checked", ctl_json_u64(r->nodes_checked));
    json_object_set_new(o, "values_checked", ctl_json_u64(r->values_checked));
    json_object_set_new(o, "bytes_checked", ctl_json_u64(r->bytes_checked));
    json_object_set_new(o, "errors_total", ctl_json_u64(r->errors_total));
    json_object_set_new(o, "errors", str_array(r->errors, r->n_errors));
    json_object_set_new(o, "unreferenced_files", ctl_json_u64(r->unreferenced_files));
    json_object_set_new(o, "unreferenced_bytes", ctl_json_u64(r->unreferenced_bytes));
    json_object_set_new(o, "unreferenced_live_writer_files",
                        ctl_json_u64(r->unreferenced_live_writer_files));
    json_object_set_new(o, "orphans", ctl_json_u64(orphans));
    json_object_set_new(o, "unreferenced_paths",
                        str_array(r->unreferenced_paths, r->n_unreferenced_paths));
    json_object_set_new(o, "missing_files", ctl_json_u64(r->missing_files));
    json_object_set_new(o, "missing_paths", str_array(r->missing_paths, r->n_missing_paths));
    ctl_json_print(o);
  } else {
    for (size_t i = 0; i < r->n_errors; i++) printf("error: %s\n", r->errors[i]);
    if (r->n_errors < r->errors_total)
      printf("... and %llu more errors\n", (unsigned long long)(r->errors_total - r->n_errors));
    for (size_t i = 0; i < r->n_missing_paths; i++) printf("missing: %s\n", r->missing_paths[i]);
    for (size_t i = 0; i < r->n_unreferenced_paths; i++)
      printf("unreferenced: %s\n", r->unreferenced_paths[i]);
    printf("checked %llu versions, %llu nodes, %llu values (%llu bytes): %llu errors, %llu "
           "missing files, %llu unreferenced files (%llu bytes; %llu of live writers), "
           "%llu orphans\n",
           (unsigned long long)r->versions_checked, (unsigned long long)r->nodes_checked,
           (unsigned long long)r->values_checked, (unsigned long long)r->bytes_checked,
           (unsigned long long)r->errors_total, (unsigned long long)r->missing_files,
           (unsigned long long)r->unreferenced_files, (unsigned long long)r->unreferenced_bytes,
           (unsigned long long)r->unreferenced_live_writer_files, (unsigned long long)orphans);
  }
  if (bad)
    fprintf(stderr, "stratactl: check: %llu errors, %llu missing files, %llu orphans\n",
            (unsigned long long)r->errors_total, (unsigned long long)r->missing_files,
            (unsigned long long)orphans);
  rpc_free(r);
  return bad ? CTL_REFUSED : CTL_OK;
}
