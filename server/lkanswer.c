/*
 * The lock answerer: one thread that answers Locks.Acquire, Renew and Release
 * calls once the lock table's group sync covers their change (README
 * "Threads"). A handler runs its lock call deferred (lk_defer_begin), holds the
 * packed answer in the call (rpc_call_hold_reply) and queues it here with the
 * batch it needs; the answerer waits for the newest batch of everything queued
 * (one sync, or a share of one) and ends all those calls. The pool thread that
 * ran the handler is free at once for the next call, instead of sleeping
 * through the fsync and waking for its own answer.
 */
#include <stdlib.h>

#include "common/err.h"
#include "common/mutex.h"
#include "server/srv_int.h"

typedef struct held {
  rpc_call *call;
  uint64_t need;
  struct held *next;
} held;

struct srv_lkans {
  lk_manager *lk;
  strata_mutex mu;
  pthread_cond_t cv;
  held *head, *tail;
  int stop;
  pthread_t t;
};

static void answer_all(srv_lkans *a, held *list) {
  uint64_t need = 0;
  for (held *h = list; h; h = h->next)
    if (h->need > need) need = h->need;
  int rc = lk_durable_wait(a->lk, need);
  strata_err_saved why;
  if (rc) strata_err_save(rc, &why);
  while (list) {
    held *h = list;
    list = h->next;
    if (rc) {
      strata_err_restore(&why);
      srv__fail(h->call, rc);
    } else {
      rpc_call_send_held(h->call);
    }
    free(h);
  }
}

static void *answerer(void *arg) {
  srv_lkans *a = arg;
  pthread_setname_np(pthread_self(), "srv-lkans");
  strata_mutex_lock(&a->mu);
  for (;;) {
    while (!a->head && !a->stop) strata_cond_wait(&a->cv, &a->mu);
    held *list = a->head;
    a->head = a->tail = NULL;
    if (!list) break; /* stopping, nothing left */
    strata_mutex_unlock(&a->mu);
    answer_all(a, list);
    strata_mutex_lock(&a->mu);
  }
  strata_mutex_unlock(&a->mu);
  return NULL;
}

int srv__lkans_start(lk_manager *lk, srv_lkans **out) {
  srv_lkans *a = calloc(1, sizeof *a);
  if (!a) return strata_err(STRATA_ENOMEM, "lock answerer: out of memory");
  a->lk = lk;
  strata_mutex_init(&a->mu);
  pthread_cond_init(&a->cv, NULL);
  if (pthread_create(&a->t, NULL, answerer, a)) {
    strata_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
    return strata_err(STRATA_ENOMEM, "lock answerer: cannot start its thread");
  }
  *out = a;
  return 0;
}

/* Answers whatever is queued, then ends the thread. */
void srv__lkans_stop(srv_lkans *a) {
  if (!a) return;
  strata_mutex_lock(&a->mu);
  a->stop = 1;
  pthread_cond_signal(&a->cv);
  strata_mutex_unlock(&a->mu);
  pthread_join(a->t, NULL);
  strata_mutex_destroy(&a->mu);
  pthread_cond_destroy(&a->cv);
  free(a);
}

void srv__lk_answer(srv *s, rpc_call *call, uint64_t need, const ProtobufCMessage *resp) {
  if (need == 0) {
    rpc_call_reply(call, resp);
    return;
  }
  int held_here = rpc_call_hold_reply(call, resp);
  if (held_here < 0) return; /* the call ended (an answer over the message limit) */
  held *h = held_here == 0 ? malloc(sizeof *h) : NULL;
  if (h) {
    srv_lkans *a = s->lkans;
    *h = (held){call, need, NULL};
    strata_mutex_lock(&a->mu);
    if (a->tail) a->tail->next = h;
    else a->head = h;
    a->tail = h;
    pthread_cond_signal(&a->cv);
    strata_mutex_unlock(&a->mu);
    return;
  }
  /* An in-process call (nothing held), or no memory for the queue entry
   * (the answer is held): wait on this thread. */
  int rc = lk_durable_wait(s->lk, need);
  if (rc) srv__fail(call, rc);
  else if (held_here == 0) rpc_call_send_held(call);
  else rpc_call_reply(call, resp);
}
