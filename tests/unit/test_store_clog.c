/* The commit log (storage/clog.c) on its own: group payloads round-trip and
 * refuse damage; records come back exactly, across segments and trims; a torn
 * tail (every truncation length, zero-filled tails, a flipped byte in the
 * last record) is dropped, never an error; a damaged record followed by later
 * segments, or a log that starts past the manifest's generation + 1, is
 * STRATA_ECORRUPT naming the missing generations; a failed sync is voided so
 * it never comes back; a power cut after every single operation of a run
 * of appends, syncs, rotations and trims keeps every synced record, also
 * when segments are made ready ahead and written into their reserved room. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "storage/base.h"
#include "storage/clog.h"

/* The payload written for generation g at attempt a: its bytes say both. */
static size_t payload_of(uint64_t g, int a, uint8_t *buf) {
  size_t n = (size_t)(g * 37 + (uint64_t)a * 11) % 300;
  for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(g * 131 + i * 7 + (uint64_t)a);
  return n;
}

static void expect_payload(const clog_rec *r, int a) {
  uint8_t want[400];
  size_t n = payload_of(r->generation, a, want);
  if (r->len != n || (n && memcmp(r->payload, want, n)))
    fail_msg("generation %llu: payload differs from attempt %d", (unsigned long long)r->generation, a);
  assert_int_equal(r->commit_time, r->generation * 1000 + (uint64_t)a);
}

static void append_gen(clog_writer *w, uint64_t g, int a) {
  uint8_t buf[400];
  size_t n = payload_of(g, a, buf);
  assert_int_equal(clog_append(w, CLOG_GROUP, g, g * 1000 + (uint64_t)a, buf, n), 0);
}

static void test_ops_roundtrip_and_damage(void **state) {
  (void)state;
  static uint8_t big[70000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 13);
  clog_op ops[5] = {
    {CLOG_OP_DELETE, (const uint8_t *)"gone", 4, NULL, 0, NULL, 0, 0, 0},
    {CLOG_OP_VALUE, (const uint8_t *)"", 0, (const uint8_t *)"", 0, NULL, 0, 0, 0},
    {CLOG_OP_VALUE, (const uint8_t *)"k", 1, big, sizeof big, NULL, 0, 0, 0},
    {CLOG_OP_REF, (const uint8_t *)"r", 1, NULL, 0, "d/bulk-1", 8, 1ull << 40, 12345},
    {CLOG_OP_VALUE, (const uint8_t *)"small", 5, (const uint8_t *)"v", 1, NULL, 0, 0, 0},
  };
  strata_buf b = STRATA_BUF_INIT;
  assert_int_equal(clog_encode_ops(&b, ops, 5), 0);
  clog_op *got;
  size_t n;
  assert_int_equal(clog_decode_ops(b.p, b.len, &got, &n), 0);
  assert_int_equal(n, 5);
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(got[i].kind, ops[i].kind);
    assert_int_equal(got[i].klen, ops[i].klen);
    if (ops[i].klen) assert_memory_equal(got[i].key, ops[i].key, ops[i].klen);
    assert_int_equal(got[i].vlen, ops[i].vlen);
    if (ops[i].vlen) assert_memory_equal(got[i].value, ops[i].value, ops[i].vlen);
    assert_int_equal(got[i].plen, ops[i].plen);
    if (ops[i].plen) assert_memory_equal(got[i].path, ops[i].path, ops[i].plen);
    assert_int_equal(got[i].off, ops[i].off);
    assert_int_equal(got[i].len, ops[i].len);
  }
  free(got);
  /* every truncation and a trailing byte are refused, never misread */
  for (size_t cut = 0; cut < b.len; cut += cut < 200 ? 1 : 997) {
    got = NULL;
    assert_int_equal(clog_decode_ops(b.p, cut, &got, &n), STRATA_ECORRUPT);
    assert_null(got);
  }
  strata_buf_append(&b, "x", 1);
  assert_int_equal(clog_decode_ops(b.p, b.len, &got, &n), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "commit log record"));
  strata_buf_free(&b);
}

/* 30 generations, a new segment after each 7th, synced in ones and threes;
 * read back from 0 and from 10; trimmed to 14 (a segment goes only when all
 * of it is published); read from 14; from 0 the log now misses 1-12. */
static void test_records_segments_and_trim(void **state) {
  (void)state;
  bs_store *s;
  assert_int_equal(bs_mem_create(&s), 0);
  clog_writer *w;
  assert_int_equal(clog_writer_open(s, CLOG_DIR, 1, NULL, 0, &w), 0);
  int unknown;
  for (uint64_t g = 1; g <= 30; g++) {
    append_gen(w, g, 0);
    if (g % 3 == 0 || g < 10) assert_int_equal(clog_sync(w, &unknown), 0);
    if (g % 7 == 0) clog_rotate(w);
  }
  assert_int_equal(clog_sync(w, &unknown), 0);
  clog_contents c;
  assert_int_equal(clog_read(s, CLOG_DIR, 0, &c), 0);
  assert_int_equal(c.n, 30);
  assert_true(c.nsegs >= 4);
  assert_int_equal(c.torn_bytes, 0);
  for (size_t i = 0; i < c.n; i++) {
    assert_int_equal(c.recs[i].generation, i + 1);
    expect_payload(&c.recs[i], 0);
  }
  clog_contents_free(&c);
  assert_int_equal(clog_read(s, CLOG_DIR, 10, &c), 0);
  assert_int_equal(c.n, 20);
  assert_int_equal(c.recs[0].generation, 11);
  clog_contents_free(&c);

  size_t removed = clog_trim(w, 14);
  assert_int_equal(removed, 2); /* segments holding 1-7 and 8-12; 13-14 share one with 15 */
  assert_int_equal(clog_read(s, CLOG_DIR, 14, &c), 0);
  assert_int_equal(c.n, 16);
  assert_int_equal(c.recs[0].generation, 15);
  clog_contents_free(&c);
  assert_int_equal(clog_read(s, CLOG_DIR, 0, &c), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "holds generation 13 but generations 1..12 are in neither"));
  clog_contents_free(&c);
  /* the current segment is never trimmed, even when everything is published */
  clog_trim(w, 30);
  assert_int_equal(clog_read(s, CLOG_DIR, 28, &c), 0);
  assert_int_equal(c.n, 2);
  clog_contents_free(&c);
  clog_writer_close(w);
  bs_destroy(s);
}

static void test_log_starting_past_the_manifest_is_refused(void **state) {
  (void)state;
  bs_store *s;
  assert_int_equal(bs_mem_create(&s), 0);
  clog_writer *w;
  int unknown;
  assert_int_equal(clog_writer_open(s, CLOG_DIR, 1, NULL, 0, &w), 0);
  for (uint64_t g = 5; g <= 7; g++) append_gen(w, g, 0);
  assert_int_equal(clog_sync(w, &unknown), 0);
  clog_writer_close(w);
  clog_contents c;
  assert_int_equal(clog_read(s, CLOG_DIR, 4, &c), 0);
  assert_int_equal(c.n, 3);
  clog_contents_free(&c);
  /* manifest at 2: generations 3 and 4 are nowhere */
  assert_int_equal(clog_read(s, CLOG_DIR, 2, &c), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "holds generation 5 but generations 3..4"));
  clog_contents_free(&c);
  /* at 7 or later everything is published: an empty log */
  assert_int_equal(clog_read(s, CLOG_DIR, 9, &c), 0);
  assert_int_equal(c.n, 0);
  clog_contents_free(&c);
  bs_destroy(s);
}

/* Replaces the one segment of store s with bytes p[0..n). */
static void put_segment(bs_store *s, const char *name, const uint8_t *p, size_t n) {
  bs_remove(s, name);
  bs_file *f;
  assert_int_equal(bs_create(s, name, &f), 0);
  if (n) assert_int_equal(bs_append(f, p, n), 0);
  bs_close(f);
}

/* One segment of five records (generations 1..5) and where each ends. */
typedef struct torn {
  bs_store *s;
  const char *seg;
  uint8_t *full; /* the segment's bytes */
  size_t n;
  size_t ends[6]; /* ends[0]: the magic's end; ends[g]: record g's end */
} torn;

static void torn_write(torn *t) {
  clog_writer *w;
  int unknown;
  assert_int_equal(clog_writer_open(t->s, CLOG_DIR, 1, NULL, 0, &w), 0);
  t->ends[0] = CLOG_SEGMENT_MAGIC_LEN;
  for (uint64_t g = 1; g <= 5; g++) {
    uint8_t buf[400];
    append_gen(w, g, 0);
    t->ends[g] = t->ends[g - 1] + CLOG_HEADER_BYTES + payload_of(g, 0, buf);
    assert_int_equal(clog_sync(w, &unknown), 0);
  }
  clog_writer_close(w);
  t->seg = CLOG_DIR "/0000000000000001";
  assert_int_equal(bs_read_all(t->s, t->seg, &t->full, &t->n), 0);
  assert_int_equal(t->n, t->ends[5]);
}

/* Every length: the records wholly inside it, nothing else, no error. */
static void torn_every_length(const torn *t) {
  clog_contents c;
  for (size_t len = 0; len <= t->n; len++) {
    put_segment(t->s, t->seg, t->full, len);
    assert_int_equal(clog_read(t->s, CLOG_DIR, 0, &c), 0);
    size_t want = 0;
    while (want < 5 && t->ends[want + 1] <= len) want++;
    if (len < CLOG_SEGMENT_MAGIC_LEN) want = 0;
    if (c.n != want) fail_msg("length %zu: %zu records, want %zu", len, c.n, want);
    for (size_t i = 0; i < c.n; i++) expect_payload(&c.recs[i], 0);
    /* Zero bytes at the very end count as reserved room, not as torn. */
    size_t from = want ? t->ends[want] : len < CLOG_SEGMENT_MAGIC_LEN ? 0 : t->ends[0], end = len;
    if (len >= CLOG_SEGMENT_MAGIC_LEN)
      while (end > from && t->full[end - 1] == 0) end--;
    assert_int_equal(c.torn_bytes, end - from);
    clog_contents_free(&c);
  }
}

/* A size made durable before the bytes: zeros after record 3, or from the start
 * (header included). */
static void torn_zeros(const torn *t) {
  clog_contents c;
  uint8_t *z = calloc(1, t->n + 100);
  memcpy(z, t->full, t->ends[3]);
  put_segment(t->s, t->seg, z, t->ends[3] + 100);
  assert_int_equal(clog_read(t->s, CLOG_DIR, 0, &c), 0);
  assert_int_equal(c.n, 3);
  clog_contents_free(&c);
  memset(z, 0, t->n + 100);
  put_segment(t->s, t->seg, z, 64);
  assert_int_equal(clog_read(t->s, CLOG_DIR, 0, &c), 0);
  assert_int_equal(c.n, 0);
  clog_contents_free(&c);
  free(z);
}

/* Damage: every byte of the last record flipped drops that record; a damaged
 * header is not a torn tail; a damaged record followed by a later segment loses
 * generations, which the contiguity check reports. */
static void torn_damage(const torn *t) {
  clog_contents c;
  size_t n = t->n;
  uint8_t *m = malloc(n);
  for (size_t i = t->ends[4]; i < n; i++) {
    memcpy(m, t->full, n);
    m[i] ^= 0x20;
    put_segment(t->s, t->seg, m, n);
    assert_int_equal(clog_read(t->s, CLOG_DIR, 0, &c), 0);
    if (c.n != 4) fail_msg("flip at %zu: %zu records", i, c.n);
    clog_contents_free(&c);
  }
  memcpy(m, t->full, n);
  m[3] ^= 1;
  put_segment(t->s, t->seg, m, n);
  assert_int_equal(clog_read(t->s, CLOG_DIR, 0, &c), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "not a commit log segment"));
  clog_contents_free(&c);
  memcpy(m, t->full, n);
  m[t->ends[1] + 30] ^= 1; /* inside record 2 */
  put_segment(t->s, t->seg, m, n);
  clog_writer *w;
  int unknown;
  assert_int_equal(clog_writer_open(t->s, CLOG_DIR, 2, NULL, 0, &w), 0);
  append_gen(w, 6, 0);
  assert_int_equal(clog_sync(w, &unknown), 0);
  clog_writer_close(w);
  assert_int_equal(clog_read(t->s, CLOG_DIR, 0, &c), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "holds generation 6 but generations 2..5"));
  clog_contents_free(&c);
  free(m);
}

static void test_torn_tail_every_length(void **state) {
  (void)state;
  char dir[128];
  snprintf(dir, sizeof dir, "/tmp/strata-clog-%d", (int)getpid());
  torn t = {0};
  assert_int_equal(bs_file_open(dir, &t.s), 0);
  torn_write(&t);
  torn_every_length(&t);
  torn_zeros(&t);
  torn_damage(&t);
  free(t.full);
  bs_destroy(t.s);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

/* A failed fsync: the record reached the file (the store shows it) but the
 * caller was told it failed; the segment is cut back to before it (durably),
 * and the retry of the same generation is what the log holds, in the same
 * segment. When the cut fails too, a void in the next segment keeps it out. */
static void test_failed_sync_is_taken_back(void **state) {
  (void)state;
  bs_store *mem, *s;
  assert_int_equal(bs_mem_create(&mem), 0);
  assert_int_equal(bs_fault_wrap(mem, &s), 0);
  clog_writer *w;
  int unknown = 7;
  assert_int_equal(clog_writer_open(s, CLOG_DIR, 1, NULL, 0, &w), 0);
  append_gen(w, 1, 0);
  assert_int_equal(clog_sync(w, &unknown), 0);
  bs_fault_arm(s, BS_FAULT_FSYNC, 1, 5 /* EIO */);
  append_gen(w, 2, 0);
  assert_int_equal(clog_sync(w, &unknown), 5);
  assert_int_equal(unknown, 0);
  assert_non_null(strstr(strata_errmsg(), "injected fsync failure"));
  clog_contents c;
  assert_int_equal(clog_read(s, CLOG_DIR, 0, &c), 0);
  assert_int_equal(c.n, 1);
  assert_int_equal(c.nsegs, 1);
  assert_int_equal(c.nvoids, 0);
  assert_int_equal(c.torn_bytes, 0); /* cut exactly where it started */
  clog_contents_free(&c);
  append_gen(w, 2, 1);
  append_gen(w, 3, 1);
  assert_int_equal(clog_sync(w, &unknown), 0);
  assert_int_equal(clog_read(s, CLOG_DIR, 0, &c), 0);
  assert_int_equal(c.n, 3);
  assert_int_equal(c.nsegs, 1);
  expect_payload(&c.recs[1], 1);
  clog_contents_free(&c);
  /* a failed append (a full disk) counts the same */
  bs_fault_arm(s, BS_FAULT_WRITE, 1, 28 /* ENOSPC */);
  append_gen(w, 4, 0);
  assert_int_equal(clog_sync(w, &unknown), 28);
  assert_int_equal(unknown, 0);
  /* the fsync fails and so does the cut: the void goes into a new segment */
  bs_fault_arm(s, BS_FAULT_FSYNC, 1, 5);
  bs_fault_arm(s, BS_FAULT_TRUNCATE, 1, 5);
  append_gen(w, 4, 1);
  assert_int_equal(clog_sync(w, &unknown), 5);
  assert_int_equal(unknown, 0);
  assert_int_equal(clog_read(s, CLOG_DIR, 0, &c), 0);
  assert_int_equal(c.n, 3);
  assert_int_equal(c.nsegs, 2);
  assert_int_equal(c.nvoids, 1);
  clog_contents_free(&c);
  /* a record synced, then taken back on request (its group failed after) */
  append_gen(w, 4, 4);
  assert_int_equal(clog_sync(w, &unknown), 0);
  assert_int_equal(clog_cancel_last(w, 4, &unknown), 0);
  assert_int_equal(unknown, 0);
  assert_int_equal(clog_read(s, CLOG_DIR, 0, &c), 0);
  assert_int_equal(c.n, 3);
  clog_contents_free(&c);
  /* the power goes off after the record's append: neither its fsync nor the
   * cut nor the void can be made durable; the outcome is unknown and the
   * writer refuses */
  append_gen(w, 4, 2);
  bs_mem_cut_power_after(mem, 1);
  assert_int_not_equal(clog_sync(w, &unknown), 0);
  assert_int_equal(unknown, 1);
  append_gen(w, 4, 3);
  assert_int_not_equal(clog_sync(w, &unknown), 0);
  assert_int_equal(unknown, 1);
  assert_non_null(strstr(strata_errmsg(), "reopen the database"));
  clog_writer_close(w);
  assert_int_equal(bs_mem_power_on(mem), 0);
  assert_int_equal(clog_read(mem, CLOG_DIR, 0, &c), 0);
  assert_int_equal(c.n, 3); /* 4 was never acknowledged; 1-3 were */
  clog_contents_free(&c);
  bs_destroy(s);
  bs_destroy(mem);
}

/* The run cut by the power: generations 1..60, synced in runs of 1-3, a new
 * segment every 5 syncs, trimmed to 4 behind the last acknowledged one
 * (what a publisher would have published); with room > 0 the next segment
 * is made ready (clog_prepare, with that much reserved room) at the start
 * and after every trim, as the publisher does. Returns the operations it
 * did; *acked the last generation whose sync returned 0, *trimmed the last
 * trim. */
static long run(bs_store *s, uint64_t room, uint64_t *acked, uint64_t *trimmed, uint64_t *tried) {
  clog_writer *w = NULL;
  *acked = *trimmed = *tried = 0;
  int unknown, syncs = 0;
  if (clog_writer_open(s, CLOG_DIR, 1, NULL, 0, &w)) return bs_mem_ops(s);
  if (room) clog_prepare(w, room);
  uint64_t g = 1;
  while (g <= 60) {
    uint64_t k = 1 + g % 3;
    for (uint64_t i = 0; i < k && g <= 60; i++, g++) append_gen(w, g, 0);
    *tried = g - 1;
    if (clog_sync(w, &unknown)) break;
    *acked = g - 1;
    if (++syncs % 5 == 0) clog_rotate(w);
    if (*acked > 4 && syncs % 2 == 0) {
      clog_trim(w, *acked - 4);
      *trimmed = *acked - 4;
      if (room) clog_prepare(w, room);
    }
  }
  clog_writer_close(w);
  return bs_mem_ops(s);
}

static void power_cut_every_operation(uint64_t room) {
  bs_store *s;
  uint64_t acked, trimmed, tried;
  assert_int_equal(bs_mem_create(&s), 0);
  long total = run(s, room, &acked, &trimmed, &tried);
  assert_int_equal(acked, 60);
  bs_destroy(s);
  for (long cut = 0; cut <= total; cut++) {
    assert_int_equal(bs_mem_create(&s), 0);
    bs_mem_cut_power_after(s, cut);
    run(s, room, &acked, &trimmed, &tried);
    assert_int_equal(bs_mem_power_on(s), 0);
    clog_contents c;
    if (clog_read(s, CLOG_DIR, trimmed, &c))
      fail_msg("room %llu, cut after %ld ops: %s", (unsigned long long)room, cut, strata_errmsg());
    uint64_t last = c.n ? c.recs[c.n - 1].generation : trimmed;
    if (last < acked || last > tried)
      fail_msg("room %llu, cut after %ld ops: log ends at %llu; acknowledged %llu, tried %llu",
               (unsigned long long)room, cut, (unsigned long long)last, (unsigned long long)acked,
               (unsigned long long)tried);
    for (size_t i = 0; i < c.n; i++) expect_payload(&c.recs[i], 0);
    clog_contents_free(&c);
    bs_destroy(s);
  }
  fprintf(stderr, "power cut after each of %ld operations (room %llu): every synced record kept\n", total,
          (unsigned long long)room);
}

static void test_power_cut_at_every_operation(void **state) {
  (void)state;
  power_cut_every_operation(0);
  power_cut_every_operation(4096); /* segments made ready ahead, records written into their room */
}

/* Segments made ready ahead (clog_prepare): the writer moves into them, its
 * records land in the reserved room (the file keeps its size; the zeros
 * after the last record are not a torn tail); one never used is removed at
 * close; one left by a crash reads as empty and is trimmed. */
static void test_prepared_segments(void **state) {
  (void)state;
  bs_store *s;
  clog_writer *w;
  int unknown;
  assert_int_equal(bs_mem_create(&s), 0);
  assert_int_equal(clog_writer_open(s, CLOG_DIR, 1, NULL, 0, &w), 0);
  assert_int_equal(clog_prepare(w, 8192), 0); /* segment 1, before the first sync */
  assert_int_equal(clog_prepare(w, 8192), 0); /* one is ready: nothing more */
  for (uint64_t g = 1; g <= 6; g++) {
    append_gen(w, g, 0);
    assert_int_equal(clog_sync(w, &unknown), 0);
    if (g == 3) {
      assert_int_equal(clog_prepare(w, 8192), 0); /* segment 2, while 1 is current */
      clog_rotate(w);
    }
  }
  const char *segs[] = {CLOG_DIR "/0000000000000001", CLOG_DIR "/0000000000000002"};
  for (int i = 0; i < 2; i++) {
    uint8_t *p;
    size_t n;
    assert_int_equal(bs_read_all(s, segs[i], &p, &n), 0);
    assert_int_equal(n, 8192); /* the records went into the room */
    free(p);
  }
  clog_contents c;
  assert_int_equal(clog_read(s, CLOG_DIR, 0, &c), 0);
  assert_int_equal(c.n, 6);
  assert_int_equal(c.torn_bytes, 0);
  for (size_t i = 0; i < c.n; i++) expect_payload(&c.recs[i], 0);
  clog_contents_free(&c);
  assert_int_equal(clog_prepare(w, 8192), 0); /* segment 3: never used */
  clog_writer_close(w);
  bs_file *f = NULL;
  assert_int_equal(bs_open_read(s, CLOG_DIR "/0000000000000003", &f), STRATA_ENOTFOUND);

  /* A crash right after a preparation: the segment stays, empty. */
  assert_int_equal(clog_read(s, CLOG_DIR, 0, &c), 0);
  assert_int_equal(clog_writer_open(s, CLOG_DIR, clog_next_seq(&c), c.segs, c.nsegs, &w), 0);
  assert_int_equal(clog_prepare(w, 8192), 0);
  bs_mem_cut_power_after(s, 0);
  clog_writer_close(w);
  clog_contents_free(&c);
  assert_int_equal(bs_mem_power_on(s), 0);
  assert_int_equal(clog_read(s, CLOG_DIR, 0, &c), 0);
  assert_int_equal(c.nsegs, 3);
  assert_int_equal(c.segs[2].max_generation, 0);
  assert_int_equal(c.torn_bytes, 0);
  assert_int_equal(c.n, 6);
  assert_int_equal(clog_writer_open(s, CLOG_DIR, clog_next_seq(&c), c.segs, c.nsegs, &w), 0);
  assert_int_equal(clog_trim(w, 6), 3); /* everything published: all three go */
  clog_writer_close(w);
  clog_contents_free(&c);
  bs_destroy(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_ops_roundtrip_and_damage),
    cmocka_unit_test(test_records_segments_and_trim),
    cmocka_unit_test(test_log_starting_past_the_manifest_is_refused),
    cmocka_unit_test(test_torn_tail_every_length),
    cmocka_unit_test(test_failed_sync_is_taken_back),
    cmocka_unit_test(test_power_cut_at_every_operation),
    cmocka_unit_test(test_prepared_segments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
