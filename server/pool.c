/* The blocking-call pool (see pool.h): a mutex-protected FIFO and n threads. */
#include "server/pool.h"

#include <pthread.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/mutex.h"

typedef struct job {
  void (*fn)(void *);
  void *arg;
  struct job *next;
} job;

struct srv_pool {
  strata_mutex mu;
  pthread_cond_t cv;
  job *head, *tail;
  int stop;
  int n;
  pthread_t *threads;
};

static void *pool_main(void *a) {
  srv_pool *p = a;
  for (;;) {
    strata_mutex_lock(&p->mu);
    while (!p->head && !p->stop) strata_cond_wait(&p->cv, &p->mu);
    job *j = p->head;
    if (j) {
      p->head = j->next;
      if (!p->head) p->tail = NULL;
    }
    strata_mutex_unlock(&p->mu);
    if (!j) return NULL;
    j->fn(j->arg);
    free(j);
  }
}

int srv_pool_start(int n, srv_pool **out) {
  srv_pool *p = calloc(1, sizeof *p);
  if (!p || !(p->threads = calloc((size_t)n, sizeof *p->threads))) {
    free(p);
    return strata_err(STRATA_ENOMEM, "blocking pool: out of memory");
  }
  strata_mutex_init(&p->mu);
  pthread_cond_init(&p->cv, NULL);
  p->n = n;
  for (int i = 0; i < n; i++) pthread_create(&p->threads[i], NULL, pool_main, p);
  *out = p;
  return 0;
}

int srv_pool_run(srv_pool *p, void (*fn)(void *), void *arg) {
  job *j = malloc(sizeof *j);
  if (!j) return strata_err(STRATA_ENOMEM, "blocking pool: out of memory");
  j->fn = fn;
  j->arg = arg;
  j->next = NULL;
  strata_mutex_lock(&p->mu);
  if (p->stop) {
    strata_mutex_unlock(&p->mu);
    free(j);
    return strata_err(STRATA_ESHUTDOWN, "server is shutting down");
  }
  if (p->tail)
    p->tail->next = j;
  else
    p->head = j;
  p->tail = j;
  pthread_cond_signal(&p->cv);
  strata_mutex_unlock(&p->mu);
  return 0;
}

void srv_pool_stop(srv_pool *p) {
  if (!p) return;
  strata_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->cv);
  strata_mutex_unlock(&p->mu);
  for (int i = 0; i < p->n; i++) pthread_join(p->threads[i], NULL);
  strata_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p->threads);
  free(p);
}
