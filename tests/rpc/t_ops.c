/* Ops over the wire: id counters under concurrent clients, lookups, ListStuck. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "test_rpc_server.h"

#define NT 16
#define PER 50

static uint64_t firsts[NT][PER];

static void *alloc_many(void *arg) {
  long t = (long)arg;
  for (int i = 0; i < PER; i++) {
    Strata__V1__AllocateIdsRequest q = STRATA__V1__ALLOCATE_IDS_REQUEST__INIT;
    q.counter = "test/ids";
    q.count = 10;
    Strata__V1__AllocateIdsResponse *r;
    if (rpc_ops_allocate_ids(C, NULL, &q, &r) == 0) {
      firsts[t][i] = r->first;
      rpc_free(r);
    }
  }
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

void test_ops_allocate_ids_disjoint_under_concurrency(void **state) {
  (void)state;
  memset(firsts, 0, sizeof firsts);
  pthread_t t[NT];
  for (long i = 0; i < NT; i++) pthread_create(&t[i], NULL, alloc_many, (void *)i);
  for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
  uint64_t *all = &firsts[0][0];
  qsort(all, NT * PER, sizeof *all, cmp_u64);
  assert_true(all[0] >= 1);
  for (int i = 1; i < NT * PER; i++) assert_true(all[i] >= all[i - 1] + 10); /* disjoint ranges */
}

void test_ops_get_missing_and_list_stuck(void **state) {
  (void)state;
  Strata__V1__GetOpRequest q = STRATA__V1__GET_OP_REQUEST__INIT;
  q.op_id = 987654321;
  Strata__V1__GetOpResponse *r;
  t_expect_err(rpc_ops_get(C, NULL, &q, &r), STRATA_ENOTFOUND, "987654321");
  Strata__V1__SetStatusRequest sq = STRATA__V1__SET_STATUS_REQUEST__INIT;
  sq.op_id = 987654321;
  sq.status = STRATA__V1__OP_STATUS__OP_STATUS_SUCCESS;
  Strata__V1__SetStatusResponse *sr;
  t_expect_err(rpc_ops_set_status(C, NULL, &sq, &sr), STRATA_ENOTFOUND, "987654321");
  Strata__V1__ListStuckRequest lq = STRATA__V1__LIST_STUCK_REQUEST__INIT;
  rpc_cstream *st;
  assert_int_equal(rpc_ops_list_stuck(C, NULL, &lq, &st), 0);
  Strata__V1__ListStuckResponse *m;
  int rc;
  while ((rc = rpc_ops_list_stuck_next(st, &m)) == 1) rpc_free(m);
  assert_int_equal(rc, 0);
  rpc_cstream_close(st);
}
