/*
 * The S3 base store: the engine's files as objects of an S3-compatible object
 * store (path-style URLs ENDPOINT/BUCKET/PREFIX/<path>), spoken through
 * libcurl with its own SigV4 signing. A file being written lives in memory
 * and becomes an object at its first fsync, a PUT with `If-None-Match: *`, so
 * that a name is created once, by one writer; reads are ranged GETs. S3 has
 * no rename: it is a conditional create of the new name and a DELETE of the
 * old, and never replaces. storage/README.md, "S3 store", maps every op.
 *
 * Lock order: s->mu (the live and recent lists, reference counts, the handle
 * pool) before a node's w->mu (its bytes). No lock is held across a request.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/mutex.h"
#include "storage/base.h"

#define S3_POOL_MAX 16             /* idle CURL handles kept (each keeps its connection) */
#define S3_RECENT_MAX 8            /* small closed files kept for a rename of them */
#define S3_RECENT_BYTES (1u << 20) /* the largest file kept so */
#define S3_ERRBODY_MAX (64u << 10) /* bytes of an error body kept for its Code and Message */
#define S3_DEFAULT_TIMEOUT_MS 30000
#define S3_DEFAULT_ATTEMPTS 4

/* A file this process created: its bytes in memory (the writer appends, any
 * thread may read them), an object once fsynced. */
typedef struct s3_node {
  char *path;
  strata_mutex mu;  /* guards the fields below it */
  strata_buf buf;
  uint64_t gen;     /* counts appends and cuts: buf differs from the object when != put_gen */
  uint64_t put_gen; /* gen of the last PUT */
  uint64_t put_len; /* the object's size after the last PUT */
  int put;          /* the object exists: the first PUT succeeded */
  int writing;      /* the writer's handle is open */
  int unlinked;     /* removed or renamed away: a later fsync PUTs nothing */
  int refs;         /* under the store's mu: handles, + 1 while on the live or recent list */
  struct s3_node *next;
} s3_node;

typedef struct s3store {
  bs_store base;
  char *endpoint, *region, *bucket, *prefix, *access, *secret, *token;
  char *lock_body; /* "owner OWNER\n" + owner_info; NULL: no writer lock */
  size_t lock_owner_len; /* the "owner OWNER\n" line's length: what identifies the owner */
  int take_over, locked;
  char sigv4[160];
  long connect_ms, stall_s;
  int attempts;
  strata_mutex mu;
  s3_node *live;   /* files created and not yet closed or removed */
  s3_node *recent; /* small files closed after their last PUT, newest first */
  int nrecent;
  CURL *pool[S3_POOL_MAX];
  int npool;
} s3store;

typedef struct s3file {
  bs_file base;
  s3_node *w;    /* the bytes in memory (NULL: read the object) */
  int writer;    /* this is the creating handle */
  char *path;    /* an object's path, and its size */
  uint64_t size;
} s3file;

/* --- requests ------------------------------------------------------------------ */

/* Where a response body goes: a window of it into dst (a ranged GET), all of it
 * into a buffer (a listing, a whole object) or, for an error status, its first
 * S3_ERRBODY_MAX bytes into err. */
typedef struct s3_sink {
  CURL *h;
  uint8_t *dst;
  size_t cap, got;
  uint64_t skip; /* bytes to drop first: a server that answered a ranged GET with 200 */
  uint64_t want_off;
  strata_buf *all;
  strata_buf err;
  int mode;     /* 0: undecided, 1: data, 2: error body */
  int failed;   /* out of memory */
} s3_sink;

/* An upload: len bytes from a node (read under its mutex, chunk by chunk, so
 * that readers never wait for a transfer) or from flat memory. */
typedef struct s3_src {
  s3_node *w;
  const uint8_t *mem;
  uint64_t len, pos;
  int changed; /* the node was cut below len during the upload */
} s3_src;

typedef struct s3_req {
  const char *method; /* "GET", "HEAD", "PUT", "DELETE" */
  const char *path;   /* the engine's path, or NULL for the bucket itself */
  const char *query;  /* canonical (sorted, encoded) query string, or NULL */
  uint64_t range_off, range_len; /* range_len > 0: a ranged GET */
  int if_none_match;
  s3_src *src;
  s3_sink sink;
  /* out */
  long status;
  curl_off_t length; /* Content-Length of a HEAD, -1 if none */
  int retried;       /* an earlier attempt failed in a way that may have taken effect */
} s3_req;

static pthread_once_t s3_once = PTHREAD_ONCE_INIT;
static CURLcode s3_global_rc;
static void s3_global_init(void) { s3_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static size_t sink_write(char *p, size_t size, size_t nmemb, void *arg) {
  s3_sink *k = arg;
  size_t n = size * nmemb;
  if (!k->mode) {
    long code = 0;
    curl_easy_getinfo(k->h, CURLINFO_RESPONSE_CODE, &code);
    k->mode = code >= 200 && code < 300 ? 1 : 2;
    if (code == 200 && k->dst) k->skip = k->want_off; /* the whole object, not the range */
  }
  if (k->mode == 2) {
    size_t room = S3_ERRBODY_MAX - k->err.len;
    if (room && strata_buf_append(&k->err, p, n < room ? n : room)) k->failed = 1;
    return k->failed ? 0 : n;
  }
  if (k->all) {
    if (strata_buf_append(k->all, p, n)) {
      k->failed = 1;
      return 0;
    }
    return n;
  }
  size_t take = n, at = 0;
  if (k->skip) {
    size_t s = k->skip < take ? (size_t)k->skip : take;
    k->skip -= s;
    at = s;
    take -= s;
  }
  if (take > k->cap - k->got) take = k->cap - k->got; /* past the window: dropped */
  if (take) memcpy(k->dst + k->got, p + at, take);
  k->got += take;
  return n;
}

static size_t src_read(char *p, size_t size, size_t nmemb, void *arg) {
  s3_src *r = arg;
  size_t n = size * nmemb;
  if (n > r->len - r->pos) n = (size_t)(r->len - r->pos);
  if (!n) return 0;
  if (r->mem) {
    memcpy(p, r->mem + r->pos, n);
  } else {
    strata_mutex_lock(&r->w->mu);
    int ok = r->w->buf.len >= r->len;
    if (ok) memcpy(p, r->w->buf.p + r->pos, n);
    strata_mutex_unlock(&r->w->mu);
    if (!ok) {
      r->changed = 1;
      return CURL_READFUNC_ABORT;
    }
  }
  r->pos += n;
  return n;
}

static int src_seek(void *arg, curl_off_t off, int origin) {
  s3_src *r = arg;
  if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->len) return CURL_SEEKFUNC_FAIL;
  r->pos = (uint64_t)off;
  return CURL_SEEKFUNC_OK;
}

/* Appends the URI encoding of s (RFC 3986 unreserved characters kept, and '/'
 * when keep_slash): the form SigV4 signs, which curl 7.88 signs as given. */
static int url_encode(strata_buf *b, const char *s, int keep_slash) {
  static const char hex[] = "0123456789ABCDEF";
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
               c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
    char e[3] = {'%', hex[c >> 4], hex[c & 15]};
    if (keep ? strata_buf_append(b, s, 1) : strata_buf_append(b, e, 3)) return STRATA_ENOMEM;
  }
  return 0;
}

/* The object key of an engine path: PREFIX/path, or path with no prefix. */
static int s3_key(const s3store *s, const char *path, strata_buf *b) {
  b->len = 0;
  int rc = 0;
  if (*s->prefix) rc = strata_buf_append(b, s->prefix, strlen(s->prefix));
  if (!rc && *s->prefix && *path) rc = strata_buf_append(b, "/", 1);
  if (!rc) rc = strata_buf_append(b, path, strlen(path));
  if (!rc) rc = strata_buf_append(b, "", 1);
  if (!rc) b->len--;
  return rc ? strata_err(STRATA_ENOMEM, "s3 key of %s", path) : 0;
}

static CURL *pool_take(s3store *s) {
  strata_mutex_lock(&s->mu);
  CURL *h = s->npool ? s->pool[--s->npool] : NULL;
  strata_mutex_unlock(&s->mu);
  if (h) curl_easy_reset(h); /* keeps its connection and DNS cache */
  else h = curl_easy_init();
  return h;
}

static void pool_give(s3store *s, CURL *h) {
  strata_mutex_lock(&s->mu);
  if (s->npool < S3_POOL_MAX) {
    s->pool[s->npool++] = h;
    h = NULL;
  }
  strata_mutex_unlock(&s->mu);
  if (h) curl_easy_cleanup(h);
}

/* Failures worth another attempt: the connection, a timeout, a server error. */
static int transient_curl(CURLcode c) {
  return c == CURLE_COULDNT_CONNECT || c == CURLE_OPERATION_TIMEDOUT || c == CURLE_SEND_ERROR ||
         c == CURLE_RECV_ERROR || c == CURLE_GOT_NOTHING || c == CURLE_PARTIAL_FILE ||
         c == CURLE_COULDNT_RESOLVE_HOST;
}
static int transient_status(long st) { return st == 500 || st == 502 || st == 503 || st == 504; }

static int curl_rc(CURLcode c) {
  switch (c) {
  case CURLE_COULDNT_CONNECT: return ECONNREFUSED;
  case CURLE_OPERATION_TIMEDOUT: return ETIMEDOUT;
  case CURLE_COULDNT_RESOLVE_HOST: return EHOSTUNREACH;
  case CURLE_OUT_OF_MEMORY: return STRATA_ENOMEM;
  default: return STRATA_EIO;
  }
}

static void backoff(int attempt) {
  long ms = 100L << (attempt < 6 ? attempt : 6); /* 100, 200, 400 ms ... */
  ms += rand() % (ms / 2 + 1);
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* One attempt of r on handle h. Returns the CURLcode; r->status is set. */
static CURLcode s3_attempt(s3store *s, CURL *h, s3_req *r, const char *url, struct curl_slist *hdrs,
                           char *errbuf) {
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->connect_ms);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s->stall_s);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  if (s->access) {
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, s->access);
    curl_easy_setopt(h, CURLOPT_PASSWORD, s->secret);
  }
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->sink);
  if (!strcmp(r->method, "HEAD")) {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (!strcmp(r->method, "PUT")) {
    r->src->pos = 0;
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, src_read);
    curl_easy_setopt(h, CURLOPT_READDATA, r->src);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, src_seek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, r->src);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->src->len);
  } else if (strcmp(r->method, "GET")) {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
  }
  r->sink.h = h;
  r->sink.mode = 0;
  r->sink.got = 0;
  r->sink.skip = 0;
  r->sink.err.len = 0;
  if (r->sink.all) r->sink.all->len = 0;
  errbuf[0] = 0;
  CURLcode c = curl_easy_perform(h);
  r->status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
  r->length = -1;
  curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &r->length);
  return c;
}

static const char *bucket_key(const s3store *s, const char *path, char *out, size_t n);
static void xml_error(const strata_buf *body, char *code, size_t ncode, char *msg, size_t nmsg);

/* Runs r with up to s->attempts attempts: transport failures and 5xx (SlowDown
 * included) are retried with backoff, nothing else. Returns 0 with r->status
 * set for a final HTTP answer (any status but a 5xx), or an error naming the
 * operation and the key. */
static int s3_do(s3store *s, s3_req *r, const char *op) {
  strata_buf key = STRATA_BUF_INIT, url = STRATA_BUF_INIT;
  struct curl_slist *hdrs = NULL, *t;
  char hb[96], errbuf[CURL_ERROR_SIZE], where[600];
  int rc = 0;
  bucket_key(s, r->path ? r->path : "", where, sizeof where);
  if (r->path && (rc = s3_key(s, r->path, &key))) goto out;
  if (strata_buf_append(&url, s->endpoint, strlen(s->endpoint)) || strata_buf_append(&url, "/", 1) ||
      url_encode(&url, s->bucket, 0) || (r->path && (strata_buf_append(&url, "/", 1) ||
                                                     strata_buf_append(&key, "", 1) ||
                                                     url_encode(&url, (char *)key.p, 1))) ||
      (r->query && (strata_buf_append(&url, "?", 1) || strata_buf_append(&url, r->query, strlen(r->query)))) ||
      strata_buf_append(&url, "", 1)) {
    rc = strata_err(STRATA_ENOMEM, "s3 %s %s", op, where);
    goto out;
  }
  /* Header names in lower case: curl 7.88 signs the headers as given. */
  hdrs = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
  if (hdrs && s->token) {
    strata_buf tok = STRATA_BUF_INIT;
    if (!strata_buf_append(&tok, "x-amz-security-token: ", 22) &&
        !strata_buf_append(&tok, s->token, strlen(s->token) + 1) && (t = curl_slist_append(hdrs, (char *)tok.p)))
      hdrs = t;
    else hdrs = (curl_slist_free_all(hdrs), NULL);
    strata_buf_free(&tok);
  }
  if (hdrs && r->range_len) {
    snprintf(hb, sizeof hb, "range: bytes=%llu-%llu", (unsigned long long)r->range_off,
             (unsigned long long)(r->range_off + r->range_len - 1));
    hdrs = (t = curl_slist_append(hdrs, hb)) ? t : (curl_slist_free_all(hdrs), NULL);
  }
  if (hdrs && r->if_none_match)
    hdrs = (t = curl_slist_append(hdrs, "if-none-match: *")) ? t : (curl_slist_free_all(hdrs), NULL);
  if (!hdrs) {
    rc = strata_err(STRATA_ENOMEM, "s3 %s %s", op, where);
    goto out;
  }
  r->retried = 0;
  for (int a = 0;; a++) {
    CURL *h = pool_take(s);
    if (!h) {
      rc = strata_err(STRATA_ENOMEM, "s3 %s %s: no curl handle", op, where);
      goto out;
    }
    CURLcode c = s3_attempt(s, h, r, (char *)url.p, hdrs, errbuf);
    if (c == CURLE_OK || transient_curl(c)) pool_give(s, h);
    else curl_easy_cleanup(h); /* its connection state is unknown */
    if (r->sink.failed) {
      rc = strata_err(STRATA_ENOMEM, "s3 %s %s: response body", op, where);
      goto out;
    }
    if (r->src && r->src->changed) {
      rc = strata_err(STRATA_EINVALID, "s3 %s %s: the file was cut during its upload", op, where);
      goto out;
    }
    char code[64] = "", msg[160] = "";
    if (c == CURLE_OK && transient_status(r->status)) xml_error(&r->sink.err, code, sizeof code, msg, sizeof msg);
    else if (c == CURLE_OK && r->sink.err.len) xml_error(&r->sink.err, code, sizeof code, msg, sizeof msg);
    int again = c != CURLE_OK ? transient_curl(c)
                              : transient_status(r->status) || !strcmp(code, "SlowDown");
    if (!again) {
      if (c != CURLE_OK)
        rc = strata_err(curl_rc(c), "s3 %s %s (%s): %s", op, where, s->endpoint,
                        errbuf[0] ? errbuf : curl_easy_strerror(c));
      goto out;
    }
    if (a + 1 >= s->attempts) {
      if (c != CURLE_OK)
        rc = strata_err(curl_rc(c), "s3 %s %s (%s): %s (%d attempts)", op, where, s->endpoint,
                        errbuf[0] ? errbuf : curl_easy_strerror(c), a + 1);
      else
        rc = strata_err(STRATA_EIO, "s3 %s %s (%s): HTTP %ld %s%s%s (%d attempts)", op, where, s->endpoint,
                        r->status, code, *msg ? ": " : "", msg, a + 1);
      goto out;
    }
    /* A request that reached the server may have taken effect. */
    if (c != CURLE_COULDNT_CONNECT && c != CURLE_COULDNT_RESOLVE_HOST) r->retried = 1;
    backoff(a);
  }
out:
  curl_slist_free_all(hdrs);
  strata_buf_free(&key);
  strata_buf_free(&url);
  return rc;
}

/* --- XML: error bodies and ListObjectsV2 ------------------------------------------ */

/* The text of the first <tag>...</tag> in [p, end): *vs, *vl; the position
 * after it, or NULL when there is none. */
static const char *xml_find(const char *p, const char *end, const char *tag, const char **vs, size_t *vl) {
  size_t tl = strlen(tag);
  for (const char *q = p; q + tl + 2 <= end; q++) {
    if (q[0] != '<' || memcmp(q + 1, tag, tl) || q[tl + 1] != '>') continue;
    const char *v = q + tl + 2;
    for (const char *e = v; e + tl + 3 <= end; e++) {
      if (e[0] == '<' && e[1] == '/' && !memcmp(e + 2, tag, tl) && e[tl + 2] == '>') {
        *vs = v;
        *vl = (size_t)(e - v);
        return e + tl + 3;
      }
    }
    return NULL;
  }
  return NULL;
}

/* Decodes XML text (the five predefined entities and numeric ones below 128)
 * into out (size n, NUL-terminated, cut to fit). Returns the decoded length. */
static size_t xml_text(const char *v, size_t vl, char *out, size_t n) {
  static const struct { const char *ent; char c; } ents[] = {
    {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
  size_t k = 0;
  for (size_t i = 0; i < vl && k + 1 < n;) {
    char c = v[i];
    size_t used = 1;
    if (c == '&') {
      for (size_t e = 0; e < sizeof ents / sizeof *ents; e++) {
        size_t el = strlen(ents[e].ent);
        if (vl - i >= el && !memcmp(v + i, ents[e].ent, el)) {
          c = ents[e].c;
          used = el;
          break;
        }
      }
      if (used == 1 && vl - i > 3 && v[i + 1] == '#') {
        const char *semi = memchr(v + i, ';', vl - i);
        char num[16];
        size_t nl = semi ? (size_t)(semi - (v + i + 2)) : 0;
        if (semi && nl && nl < sizeof num) {
          memcpy(num, v + i + 2, nl);
          num[nl] = 0;
          long x = num[0] == 'x' ? strtol(num + 1, NULL, 16) : strtol(num, NULL, 10);
          if (x > 0 && x < 128) {
            c = (char)x;
            used = nl + 3;
          }
        }
      }
    }
    out[k++] = c;
    i += used;
  }
  out[k] = 0;
  return k;
}

static void xml_error(const strata_buf *body, char *code, size_t ncode, char *msg, size_t nmsg) {
  const char *p = (const char *)body->p, *end = p + body->len, *v;
  size_t vl;
  code[0] = msg[0] = 0;
  if (!body->len) return;
  if (xml_find(p, end, "Code", &v, &vl)) xml_text(v, vl, code, ncode);
  if (xml_find(p, end, "Message", &v, &vl)) xml_text(v, vl, msg, nmsg);
}

/* "bucket/key" for messages. */
static const char *bucket_key(const s3store *s, const char *path, char *out, size_t n) {
  snprintf(out, n, "%s%s%s%s%s", s->bucket, *s->prefix || *path ? "/" : "", s->prefix,
           *s->prefix && *path ? "/" : "", path);
  return out;
}

/* The error for a final answer other than the one expected: 404 is
 * STRATA_ENOTFOUND, 412 STRATA_EEXISTS, 416 STRATA_ERANGE, 401/403 EACCES
 * naming the access key id (never the secret), anything else STRATA_EIO. */
static int s3_status_err(s3store *s, const s3_req *r, const char *op) {
  char where[600], code[64], msg[200];
  bucket_key(s, r->path ? r->path : "", where, sizeof where);
  xml_error(&r->sink.err, code, sizeof code, msg, sizeof msg);
  const char *sep = *msg ? ": " : "";
  switch (r->status) {
  case 404:
    return strata_err(STRATA_ENOTFOUND, "s3 %s %s: no such object (HTTP 404 %s)", op, where, code);
  case 412:
    return strata_err(STRATA_EEXISTS, "s3 %s %s: the object exists (HTTP 412 %s)", op, where, code);
  case 416:
    return strata_err(STRATA_ERANGE, "s3 %s %s: range not satisfiable (HTTP 416 %s)", op, where, code);
  case 401:
  case 403:
    return strata_err(EACCES,
                      "s3 %s %s: %s refused the credentials of access key id '%s' (HTTP %ld %s%s%s); check "
                      "the access key, the secret key, the session token and the bucket's policy",
                      op, where, s->endpoint, s->access ? s->access : "(anonymous)", r->status, code, sep, msg);
  default:
    return strata_err(STRATA_EIO, "s3 %s %s (%s): HTTP %ld %s%s%s", op, where, s->endpoint, r->status, code,
                      sep, msg);
  }
}

/* --- nodes: files written by this process ---------------------------------------- */

static s3_node **node_find(s3_node **head, const char *path) {
  while (*head && strcmp((*head)->path, path)) head = &(*head)->next;
  return head;
}

/* Drops one reference; frees at zero. Called with s->mu held. */
static void node_unref(s3store *s, s3_node *w) {
  strata_mutex_assert_held(&s->mu);
  if (--w->refs) return;
  strata_mutex_destroy(&w->mu);
  strata_buf_free(&w->buf);
  free(w->path);
  free(w);
}

/* Takes path off the recent list (it is renamed, removed or created anew).
 * Called with s->mu held. */
static void recent_drop(s3store *s, const char *path) {
  strata_mutex_assert_held(&s->mu);
  s3_node **pp = node_find(&s->recent, path), *w = *pp;
  if (!w) return;
  *pp = w->next;
  s->nrecent--;
  node_unref(s, w);
}

static int new_handle(s3store *s, s3_node *w, int writer, const char *path, uint64_t size, bs_file **out) {
  s3file *f = calloc(1, sizeof *f);
  if (!f || !(f->path = strdup(path))) {
    free(f);
    return strata_err(STRATA_ENOMEM, "s3 open %s", path);
  }
  f->base.store = &s->base;
  f->w = w;
  f->writer = writer;
  f->size = size;
  *out = &f->base;
  return 0;
}

/* --- the operations ------------------------------------------------------------- */

static int s3_head(s3store *s, const char *path, uint64_t *size, const char *op) {
  s3_req r = {.method = "HEAD", .path = path};
  int rc = s3_do(s, &r, op);
  if (!rc && r.status != 200) rc = s3_status_err(s, &r, op);
  if (!rc) *size = r.length > 0 ? (uint64_t)r.length : 0;
  strata_buf_free(&r.sink.err);
  return rc;
}

static int s3_open_read(bs_store *bs, const char *path, bs_file **out) {
  s3store *s = (s3store *)bs;
  strata_mutex_lock(&s->mu);
  s3_node *w = *node_find(&s->live, path);
  if (w) w->refs++;
  strata_mutex_unlock(&s->mu);
  if (w) { /* being written here: read what was appended (the engine reads a batch's nodes back) */
    int rc = new_handle(s, w, 0, path, 0, out);
    if (rc) {
      strata_mutex_lock(&s->mu);
      node_unref(s, w);
      strata_mutex_unlock(&s->mu);
    }
    return rc;
  }
  uint64_t size;
  int rc = s3_head(s, path, &size, "open");
  return rc ? rc : new_handle(s, NULL, 0, path, size, out);
}

/* The node a handle reads from memory, pinned (release with node_release),
 * or NULL with *size the object's: then the handle reads the object. A
 * reader of a node whose writer closed it after a PUT of everything moves to
 * the object here, so that the memory goes once no handle needs it. Several
 * threads may read through one handle at once (the engine's file table
 * shares a handle), hence the pin and s->mu around the move. */
static s3_node *node_pin(s3file *f, uint64_t *size) {
  s3store *s = (s3store *)f->base.store;
  strata_mutex_lock(&s->mu);
  s3_node *w = f->w;
  if (w) w->refs++;
  *size = f->size;
  strata_mutex_unlock(&s->mu);
  if (!w || f->writer) return w;
  strata_mutex_lock(&w->mu);
  int done = !w->writing && w->put && w->put_gen == w->gen;
  uint64_t len = w->put_len;
  strata_mutex_unlock(&w->mu);
  if (!done) return w;
  strata_mutex_lock(&s->mu);
  if (f->w == w) { /* not moved by another thread meanwhile */
    f->w = NULL;
    f->size = len;
    w->refs--; /* the handle's reference (the pin keeps it above zero) */
  }
  *size = f->size;
  node_unref(s, w); /* the pin */
  strata_mutex_unlock(&s->mu);
  return NULL;
}

static void node_release(s3file *f, s3_node *w) {
  s3store *s = (s3store *)f->base.store;
  strata_mutex_lock(&s->mu);
  node_unref(s, w);
  strata_mutex_unlock(&s->mu);
}

static int s3_pread(bs_file *bf, uint64_t off, void *dst, size_t n) {
  s3file *f = (s3file *)bf;
  s3store *s = (s3store *)bf->store;
  char where[600];
  uint64_t size;
  s3_node *w = node_pin(f, &size);
  if (w) {
    int rc = 0;
    strata_mutex_lock(&w->mu);
    if (off > w->buf.len || n > w->buf.len - off)
      rc = strata_err(STRATA_ERANGE, "s3 %s: file ends before offset %llu + %zu",
                      bucket_key(s, w->path, where, sizeof where), (unsigned long long)off, n);
    else if (n)
      memcpy(dst, w->buf.p + off, n);
    strata_mutex_unlock(&w->mu);
    node_release(f, w);
    return rc;
  }
  if (off > size || n > size - off)
    return strata_err(STRATA_ERANGE, "s3 %s: object ends (%llu bytes) before offset %llu + %zu",
                      bucket_key(s, f->path, where, sizeof where), (unsigned long long)size,
                      (unsigned long long)off, n);
  if (!n) return 0;
  s3_req r = {.method = "GET", .path = f->path, .range_off = off, .range_len = n};
  r.sink.dst = dst;
  r.sink.cap = n;
  r.sink.want_off = off;
  int rc = s3_do(s, &r, "read");
  if (!rc && r.status != 200 && r.status != 206) rc = s3_status_err(s, &r, "read");
  if (!rc && r.sink.got != n)
    rc = strata_err(STRATA_ERANGE, "s3 read %s: %zu of %zu bytes at offset %llu came back",
                    bucket_key(s, f->path, where, sizeof where), r.sink.got, n, (unsigned long long)off);
  strata_buf_free(&r.sink.err);
  return rc;
}

static int s3_size(bs_file *bf, uint64_t *out) {
  s3file *f = (s3file *)bf;
  s3_node *w = node_pin(f, out);
  if (w) {
    strata_mutex_lock(&w->mu);
    *out = w->buf.len;
    strata_mutex_unlock(&w->mu);
    node_release(f, w);
  }
  return 0;
}

static int s3_create(bs_store *bs, const char *path, bs_file **out) {
  s3store *s = (s3store *)bs;
  char where[600];
  strata_mutex_lock(&s->mu);
  int here = *node_find(&s->live, path) != NULL;
  strata_mutex_unlock(&s->mu);
  if (here)
    return strata_err(STRATA_EEXISTS, "s3 create %s: this process is writing it",
                      bucket_key(s, path, where, sizeof where));
  /* A name that exists fails here, except a data file's (d/...): those names are
   * random and made by the committer, which must not wait for the object store
   * (an outage would hold commits back); their PUT's If-None-Match: * still
   * refuses an existing object at fsync. */
  int rc = 0;
  if (strncmp(path, "d/", 2) != 0) {
    uint64_t size;
    rc = s3_head(s, path, &size, "create");
    if (!rc)
      return strata_err(STRATA_EEXISTS, "s3 create %s: the object exists", bucket_key(s, path, where, sizeof where));
    if (rc != STRATA_ENOTFOUND) return rc;
  }
  s3_node *w = calloc(1, sizeof *w);
  if (!w || !(w->path = strdup(path))) {
    free(w);
    return strata_err(STRATA_ENOMEM, "s3 create %s", path);
  }
  strata_mutex_init(&w->mu);
  w->writing = 1;
  w->refs = 2; /* the live list and the writer */
  strata_mutex_lock(&s->mu);
  if (*node_find(&s->live, path)) {
    strata_mutex_unlock(&s->mu);
    strata_mutex_destroy(&w->mu);
    free(w->path);
    free(w);
    return strata_err(STRATA_EEXISTS, "s3 create %s: this process is writing it",
                      bucket_key(s, path, where, sizeof where));
  }
  recent_drop(s, path);
  w->next = s->live;
  s->live = w;
  strata_mutex_unlock(&s->mu);
  rc = new_handle(s, w, 1, path, 0, out);
  if (rc) {
    strata_mutex_lock(&s->mu);
    *node_find(&s->live, path) = w->next;
    w->refs = 1; /* no handle was made */
    node_unref(s, w);
    strata_mutex_unlock(&s->mu);
  }
  return rc;
}

static int s3_append(bs_file *bf, const void *p, size_t n) {
  s3file *f = (s3file *)bf;
  if (!f->writer) return strata_err(STRATA_EINVALID, "s3 append: %s is open for reading", f->path);
  strata_mutex_lock(&f->w->mu);
  int rc = strata_buf_append(&f->w->buf, p, n);
  f->w->gen++;
  strata_mutex_unlock(&f->w->mu);
  return rc ? strata_err(STRATA_ENOMEM, "s3 append to %s (%zu bytes)", f->w->path, n) : 0;
}

static int s3_truncate(bs_file *bf, uint64_t len) {
  s3file *f = (s3file *)bf;
  if (!f->writer) return strata_err(STRATA_EINVALID, "s3 truncate: %s is open for reading", f->path);
  int rc = 0;
  strata_mutex_lock(&f->w->mu);
  if (len > f->w->buf.len)
    rc = strata_err(STRATA_EINVALID, "s3 truncate %s to %llu: longer than its %zu bytes", f->w->path,
                    (unsigned long long)len, f->w->buf.len);
  else
    f->w->buf.len = (size_t)len, f->w->gen++;
  strata_mutex_unlock(&f->w->mu);
  return rc;
}

/* After a conditional PUT answered 412 on an attempt after one whose outcome
 * is unknown: 1 when the object holds exactly len bytes equal to src's, i.e.
 * the earlier attempt created it. */
static int ours_after_retry(s3store *s, const char *path, s3_src *src) {
  strata_buf body = STRATA_BUF_INIT;
  s3_req r = {.method = "GET", .path = path};
  r.sink.all = &body;
  int same = 0;
  if (!s3_do(s, &r, "check") && r.status == 200 && body.len == src->len) {
    if (src->mem) {
      same = !memcmp(body.p, src->mem, body.len);
    } else {
      strata_mutex_lock(&src->w->mu);
      same = src->w->buf.len >= src->len && !memcmp(body.p, src->w->buf.p, body.len);
      strata_mutex_unlock(&src->w->mu);
    }
  }
  strata_buf_free(&r.sink.err);
  strata_buf_free(&body);
  return same;
}

/* PUT of src to path; `create`: only if no object has the name (412:
 * STRATA_EEXISTS naming `who` as the one that created it). */
static int s3_put(s3store *s, const char *path, s3_src *src, int create, const char *op, const char *who) {
  s3_req r = {.method = "PUT", .path = path, .if_none_match = create, .src = src};
  char where[600];
  int rc = s3_do(s, &r, op);
  if (!rc && r.status == 412 && create && r.retried && ours_after_retry(s, path, src)) r.status = 200;
  if (!rc && r.status == 412 && create)
    rc = strata_err(STRATA_EEXISTS, "s3 %s: %s exists: created first by %s (HTTP 412 to If-None-Match: *)", op,
                    bucket_key(s, path, where, sizeof where), who);
  else if (!rc && r.status != 200) rc = s3_status_err(s, &r, op);
  strata_buf_free(&r.sink.err);
  return rc;
}

static int s3_fsync(bs_file *bf) {
  s3file *f = (s3file *)bf;
  s3store *s = (s3store *)bf->store;
  if (!f->writer) return 0; /* objects are durable; a reader has nothing to sync */
  s3_node *w = f->w;
  strata_mutex_lock(&w->mu);
  int first = !w->put, clean = w->unlinked || (w->put && w->put_gen == w->gen);
  uint64_t gen = w->gen, len = w->buf.len;
  strata_mutex_unlock(&w->mu);
  if (clean) return 0;
  s3_src src = {.w = w, .len = len};
  int rc = s3_put(s, w->path, &src, first, "fsync", "another writer (a second server on this store?)");
  if (rc) return rc;
  strata_mutex_lock(&w->mu);
  w->put = 1;
  w->put_gen = gen;
  w->put_len = len;
  strata_mutex_unlock(&w->mu);
  return 0;
}

/* Bytes appended since the last fsync are dropped: S3 keeps only what was
 * PUT (the engine fsyncs every file it publishes before closing it). A small
 * file stays on the recent list for a rename of it (a temp manifest). */
static void s3_close(bs_file *bf) {
  s3file *f = (s3file *)bf;
  s3store *s = (s3store *)bf->store;
  s3_node *w = f->w;
  if (w) {
    int keep = 0;
    if (f->writer) {
      strata_mutex_lock(&w->mu);
      w->writing = 0;
      keep = w->put && w->put_gen == w->gen && w->buf.len <= S3_RECENT_BYTES;
      strata_mutex_unlock(&w->mu);
    }
    strata_mutex_lock(&s->mu);
    if (f->writer) {
      s3_node **pp = node_find(&s->live, w->path);
      if (*pp == w) { /* not removed meanwhile */
        *pp = w->next;
        if (keep) {
          recent_drop(s, w->path);
          w->next = s->recent;
          s->recent = w;
          if (++s->nrecent > S3_RECENT_MAX) {
            s3_node *o = s->recent;
            while (o->next->next) o = o->next;
            s3_node *last = o->next;
            o->next = NULL;
            s->nrecent--;
            node_unref(s, last);
          }
        } else {
          w->refs--; /* the live list's; the handle's goes below */
        }
      }
    }
    node_unref(s, w);
    strata_mutex_unlock(&s->mu);
  }
  free(f->path);
  free(f);
}

static int s3_delete(s3store *s, const char *path, const char *op) {
  s3_req r = {.method = "DELETE", .path = path};
  int rc = s3_do(s, &r, op);
  if (!rc && r.status != 204 && r.status != 200 && !(r.status == 404 && r.retried)) rc = s3_status_err(s, &r, op);
  strata_buf_free(&r.sink.err);
  return rc;
}

/* S3 answers a DELETE of a missing key with 204, so a HEAD first tells
 * STRATA_ENOTFOUND apart. A file being written here is taken off the live
 * list (its writer may still close it) and its object, if any, deleted. */
static int s3_remove(bs_store *bs, const char *path) {
  s3store *s = (s3store *)bs;
  strata_mutex_lock(&s->mu);
  recent_drop(s, path);
  s3_node **pp = node_find(&s->live, path), *w = *pp;
  int put = 0;
  if (w) {
    *pp = w->next;
    strata_mutex_lock(&w->mu);
    put = w->put;
    w->unlinked = 1;
    strata_mutex_unlock(&w->mu);
    node_unref(s, w);
  }
  strata_mutex_unlock(&s->mu);
  if (w && !put) return 0;
  if (!w) {
    uint64_t size;
    int rc = s3_head(s, path, &size, "remove");
    if (rc) return rc;
  }
  return s3_delete(s, path, "remove");
}

/* S3 has no rename: `to` is created with from's bytes only if no object has
 * that name (STRATA_EEXISTS otherwise: it never replaces), then `from` is
 * deleted. from's bytes come from the recent list or a GET. A failed DELETE
 * of `from` leaves a copy behind, which is no error: `to` is complete. */
static int s3_rename(bs_store *bs, const char *from, const char *to) {
  s3store *s = (s3store *)bs;
  strata_mutex_lock(&s->mu);
  s3_node *w = *node_find(&s->recent, from);
  if (!w) w = *node_find(&s->live, from);
  if (w) w->refs++;
  strata_mutex_unlock(&s->mu);
  strata_buf body = STRATA_BUF_INIT;
  s3_src src = {0};
  int rc = 0;
  if (w) {
    strata_mutex_lock(&w->mu);
    int ok = w->put && w->put_gen == w->gen; /* what the object holds */
    if (ok) src = (s3_src){.w = w, .len = w->put_len};
    strata_mutex_unlock(&w->mu);
    if (!ok) rc = strata_err(STRATA_EINVALID, "s3 rename %s -> %s: %s has bytes not yet fsynced", from, to, from);
  } else {
    s3_req r = {.method = "GET", .path = from};
    r.sink.all = &body;
    rc = s3_do(s, &r, "rename");
    if (!rc && r.status != 200) rc = s3_status_err(s, &r, "rename");
    strata_buf_free(&r.sink.err);
    src = (s3_src){.mem = body.p, .len = body.len};
  }
  int put_rc = rc ? 0 : (rc = s3_put(s, to, &src, 1, "rename",
                                     "another writer (a second server on this store?); S3's rename never replaces"));
  if (w) {
    strata_mutex_lock(&s->mu);
    node_unref(s, w);
    strata_mutex_unlock(&s->mu);
  }
  strata_buf_free(&body);
  if (rc) return put_rc ? rc : strata_err_wrap(rc, "s3 rename %s -> %s", from, to);
  strata_mutex_lock(&s->mu);
  recent_drop(s, from);
  s3_node **pp = node_find(&s->live, from), *lw = *pp;
  if (lw) { /* still open for writing: its writer's fsyncs no longer PUT it */
    *pp = lw->next;
    strata_mutex_lock(&lw->mu);
    lw->unlinked = 1;
    strata_mutex_unlock(&lw->mu);
    node_unref(s, lw);
  }
  strata_mutex_unlock(&s->mu);
  s3_delete(s, from, "rename"); /* best effort, see above */
  strata_err_clear();
  return 0;
}

/* Every PUT and DELETE is durable when answered; there are no directories. */
static int s3_sync_dir(bs_store *bs, const char *dir) { return 0; }
static int s3_mkdir(bs_store *bs, const char *dir) { return 0; }

/* Appends name + NUL to names and its offset to offs. */
static int add_name(strata_buf *names, size_t **offs, size_t *n, size_t *cap, const char *v, size_t vl) {
  char tmp[1024];
  size_t l = xml_text(v, vl, tmp, sizeof tmp);
  while (l && tmp[l - 1] == '/') tmp[--l] = 0;
  if (!l) return 0;
  if (strata_grow(offs, cap, *n + 1, sizeof **offs, 64)) return STRATA_ENOMEM;
  (*offs)[(*n)++] = names->len;
  return strata_buf_append(names, tmp, l + 1);
}

/* Adds the name (after pfx) of each <outer><inner>KEY</inner>..</outer> of a
 * listing page. 0 or STRATA_ENOMEM. */
static int page_names(const char *p, const char *end, const char *outer, const char *inner, const char *pfx,
                      strata_buf *names, size_t **offs, size_t *n, size_t *cap) {
  size_t plen = strlen(pfx), vl, bl;
  const char *v, *blk;
  for (const char *at = p; (at = xml_find(at, end, outer, &blk, &bl));) {
    char key[1024];
    if (!xml_find(blk, blk + bl, inner, &v, &vl)) continue;
    size_t kl = xml_text(v, vl, key, sizeof key);
    if (kl > plen && !memcmp(key, pfx, plen) && add_name(names, offs, n, cap, key + plen, kl - plen))
      return STRATA_ENOMEM;
  }
  return 0;
}

/* ListObjectsV2 of PREFIX/dir/ with delimiter "/", page after page: the
 * objects directly in dir and its subdirectories (common prefixes), like a
 * directory listing. A "directory" with no objects lists empty. */
static int s3_list(bs_store *bs, const char *dir, char ***out, size_t *nout) {
  s3store *s = (s3store *)bs;
  strata_buf pfx = STRATA_BUF_INIT, q = STRATA_BUF_INIT, body = STRATA_BUF_INIT, names = STRATA_BUF_INIT;
  char token[1024] = "";
  size_t *offs = NULL, n = 0, cap = 0;
  int rc = s3_key(s, dir ? dir : "", &pfx);
  if (!rc && pfx.len && (rc = strata_buf_append(&pfx, "/", 1))) rc = strata_err(STRATA_ENOMEM, "s3 list");
  if (!rc && strata_buf_append(&pfx, "", 1)) rc = strata_err(STRATA_ENOMEM, "s3 list");
  for (int page = 0; !rc; page++) {
    q.len = 0;
    /* the canonical query: parameters sorted by name */
    if ((*token && (strata_buf_append(&q, "continuation-token=", 19) || url_encode(&q, token, 0) ||
                    strata_buf_append(&q, "&", 1))) ||
        strata_buf_append(&q, "delimiter=%2F&list-type=2&prefix=", 33) || url_encode(&q, (char *)pfx.p, 0) ||
        strata_buf_append(&q, "", 1)) {
      rc = strata_err(STRATA_ENOMEM, "s3 list %s", dir);
      break;
    }
    s3_req r = {.method = "GET", .query = (char *)q.p};
    r.sink.all = &body;
    rc = s3_do(s, &r, "list");
    if (!rc && r.status != 200) rc = s3_status_err(s, &r, "list");
    strata_buf_free(&r.sink.err);
    if (rc) break;
    const char *p = (const char *)body.p, *end = p + body.len, *v;
    size_t vl;
    /* <Contents><Key>..</Key>..</Contents> and <CommonPrefixes><Prefix>..</Prefix></CommonPrefixes> */
    if (page_names(p, end, "Contents", "Key", (char *)pfx.p, &names, &offs, &n, &cap) ||
        page_names(p, end, "CommonPrefixes", "Prefix", (char *)pfx.p, &names, &offs, &n, &cap)) {
      rc = strata_err(STRATA_ENOMEM, "s3 list %s", dir);
      break;
    }
    int more = xml_find(p, end, "IsTruncated", &v, &vl) && vl == 4 && !memcmp(v, "true", 4);
    if (!more) break;
    if (!xml_find(p, end, "NextContinuationToken", &v, &vl) || !xml_text(v, vl, token, sizeof token)) {
      rc = strata_err(STRATA_EIO, "s3 list %s/%s: a truncated page without NextContinuationToken", s->bucket,
                      (char *)pfx.p);
      break;
    }
  }
  if (!rc) {
    char **arr = malloc((n + 1) * sizeof(char *) + names.len);
    if (!arr) {
      rc = strata_err(STRATA_ENOMEM, "s3 list %s", dir);
    } else {
      char *str = (char *)(arr + n + 1);
      if (names.len) memcpy(str, names.p, names.len);
      for (size_t i = 0; i < n; i++) arr[i] = str + offs[i];
      arr[n] = NULL;
      *out = arr;
      *nout = n;
    }
  }
  free(offs);
  strata_buf_free(&names);
  strata_buf_free(&body);
  strata_buf_free(&q);
  strata_buf_free(&pfx);
  return rc;
}

/* No lock: S3 has none to take. The server's data directory lock and the
 * conditional creates of every file and numbered manifest are the guard. */
/* The lock object's body, or STRATA_ENOTFOUND. */
static int lock_read(s3store *s, strata_buf *body) {
  s3_req r = {.method = "GET", .path = BS_LOCK_FILE};
  r.sink.all = body;
  int rc = s3_do(s, &r, "lock");
  if (!rc && r.status == 404) rc = STRATA_ENOTFOUND;
  else if (!rc && r.status != 200) rc = s3_status_err(s, &r, "lock");
  strata_buf_free(&r.sink.err);
  return rc;
}

static int lock_is_ours(const s3store *s, const strata_buf *b) {
  return b->len >= s->lock_owner_len && !memcmp(b->p, s->lock_body, s->lock_owner_len);
}

/* The writer lock: the object BS_LOCK_FILE (bs_s3_config). */
static int s3_lock(bs_store *bs) {
  s3store *s = (s3store *)bs;
  if (!s->lock_body || s->locked) return 0;
  char where[600];
  bucket_key(s, BS_LOCK_FILE, where, sizeof where);
  s3_src src = {.mem = (const uint8_t *)s->lock_body, .len = strlen(s->lock_body)};
  int rc = s3_put(s, BS_LOCK_FILE, &src, 1, "lock", "another server");
  if (rc == STRATA_EEXISTS) {
    strata_buf body = STRATA_BUF_INIT;
    rc = lock_read(s, &body);
    if (rc == STRATA_ENOTFOUND) { /* released meanwhile: try once more */
      src.pos = 0;
      rc = s3_put(s, BS_LOCK_FILE, &src, 1, "lock", "another server");
    } else if (!rc && !lock_is_ours(s, &body)) {
      if (s->take_over) {
        src.pos = 0;
        rc = s3_put(s, BS_LOCK_FILE, &src, 0, "lock", NULL);
      } else {
        size_t n = body.len < 300 ? body.len : 300;
        for (size_t i = 0; i < n; i++)
          if (body.p[i] == '\n' || body.p[i] < 0x20) body.p[i] = ' ';
        rc = strata_err(STRATA_EBUSY,
                        "%s is held by another server (%.*s); one server per store: if that one is gone for "
                        "good, start this one once with --take-over-store (docs/operations.md "
                        "\"Deployment shapes\")",
                        where, (int)n, (const char *)body.p);
      }
    }
    strata_buf_free(&body);
  }
  if (!rc) s->locked = 1;
  return rc;
}

static void s3_destroy(bs_store *bs) {
  s3store *s = (s3store *)bs;
  if (s->locked) { /* released if still ours (a --take-over-store may have replaced it) */
    strata_buf body = STRATA_BUF_INIT;
    if (!lock_read(s, &body) && lock_is_ours(s, &body)) s3_delete(s, BS_LOCK_FILE, "unlock");
    strata_buf_free(&body);
  }
  strata_mutex_lock(&s->mu);
  while (s->recent) recent_drop(s, s->recent->path);
  while (s->live) { /* handles still open are the caller's bug; their nodes stay theirs */
    s3_node *w = s->live;
    s->live = w->next;
    node_unref(s, w);
  }
  for (int i = 0; i < s->npool; i++) curl_easy_cleanup(s->pool[i]);
  strata_mutex_unlock(&s->mu);
  strata_mutex_destroy(&s->mu);
  free(s->lock_body);
  free(s->endpoint);
  free(s->region);
  free(s->bucket);
  free(s->prefix);
  free(s->access);
  free(s->secret);
  free(s->token);
  free(s);
}

static const bs_ops s3_ops = {
  s3_open_read, s3_pread, s3_size, s3_create, s3_append, s3_fsync, s3_truncate, s3_close,
  s3_rename, s3_sync_dir, s3_remove, s3_mkdir, s3_list, s3_lock, s3_destroy, NULL, NULL,
};

static char *dup_or_null(const char *p, int *bad) {
  if (!p) return NULL;
  char *d = strdup(p);
  if (!d) *bad = 1;
  return d;
}

/* A 1-key listing under the prefix: the endpoint answers, the bucket exists
 * and the credentials are accepted. */
static int s3_probe(s3store *s) {
  strata_buf q = STRATA_BUF_INIT, body = STRATA_BUF_INIT;
  int rc = 0;
  if (strata_buf_append(&q, "list-type=2&max-keys=1&prefix=", 30) || url_encode(&q, s->prefix, 0) ||
      strata_buf_append(&q, "", 1))
    return strata_err(STRATA_ENOMEM, "s3 open");
  s3_req r = {.method = "GET", .query = (char *)q.p};
  r.sink.all = &body;
  rc = s3_do(s, &r, "open");
  if (rc) {
    rc = strata_err_wrap(rc, "cannot reach the S3 endpoint %s (bucket %s)", s->endpoint, s->bucket);
  } else if (r.status != 200) {
    char code[64], msg[200];
    xml_error(&r.sink.err, code, sizeof code, msg, sizeof msg);
    if (r.status == 404)
      rc = strata_err(STRATA_ENOTFOUND, "S3 bucket %s does not exist at %s (HTTP 404 %s%s%s)", s->bucket,
                      s->endpoint, code, *msg ? ": " : "", msg);
    else
      rc = strata_err_wrap(s3_status_err(s, &r, "open"), "S3 bucket %s at %s", s->bucket, s->endpoint);
  }
  strata_buf_free(&r.sink.err);
  strata_buf_free(&body);
  strata_buf_free(&q);
  return rc;
}

int bs_s3_open(const bs_s3_config *cfg, bs_store **out) {
  if (!cfg || !cfg->endpoint || !*cfg->endpoint || !cfg->bucket || !*cfg->bucket)
    return strata_err(STRATA_EINVALID, "S3 store: an endpoint and a bucket are required");
  if (!cfg->access_key != !cfg->secret_key)
    return strata_err(STRATA_EINVALID, "S3 store %s: an access key needs its secret key and the other way round",
                      cfg->endpoint);
  const char *region = cfg->region && *cfg->region ? cfg->region : "us-east-1";
  if (strlen(region) > 64 || strchr(region, ':'))
    return strata_err(STRATA_EINVALID, "S3 store %s: bad region '%s'", cfg->endpoint, region);
  pthread_once(&s3_once, s3_global_init);
  if (s3_global_rc)
    return strata_err(STRATA_EIO, "S3 store: curl_global_init: %s", curl_easy_strerror(s3_global_rc));
  s3store *s = calloc(1, sizeof *s);
  if (!s) return strata_err(STRATA_ENOMEM, "S3 store");
  int bad = 0;
  s->base.ops = &s3_ops;
  strata_mutex_init(&s->mu);
  s->endpoint = dup_or_null(cfg->endpoint, &bad);
  s->region = dup_or_null(region, &bad);
  s->bucket = dup_or_null(cfg->bucket, &bad);
  s->prefix = dup_or_null(cfg->prefix ? cfg->prefix : "", &bad);
  s->access = dup_or_null(cfg->access_key, &bad);
  s->secret = dup_or_null(cfg->secret_key, &bad);
  s->token = dup_or_null(cfg->session_token && *cfg->session_token ? cfg->session_token : NULL, &bad);
  s->take_over = cfg->take_over;
  if (cfg->owner && *cfg->owner) {
    const char *info = cfg->owner_info ? cfg->owner_info : "";
    size_t n = strlen(cfg->owner) + strlen(info) + 16;
    if (!(s->lock_body = malloc(n))) bad = 1;
    else {
      s->lock_owner_len = (size_t)snprintf(s->lock_body, n, "owner %s\n", cfg->owner);
      snprintf(s->lock_body + s->lock_owner_len, n - s->lock_owner_len, "%s", info);
    }
  }
  if (bad) {
    s3_destroy(&s->base);
    return strata_err(STRATA_ENOMEM, "S3 store");
  }
  size_t l = strlen(s->endpoint);
  while (l && s->endpoint[l - 1] == '/') s->endpoint[--l] = 0;
  char *p = s->prefix; /* "a/b", no leading or trailing '/' */
  while (*p == '/') p++;
  memmove(s->prefix, p, strlen(p) + 1);
  l = strlen(s->prefix);
  while (l && s->prefix[l - 1] == '/') s->prefix[--l] = 0;
  snprintf(s->sigv4, sizeof s->sigv4, "aws:amz:%s:s3", s->region);
  unsigned t = cfg->timeout_ms ? cfg->timeout_ms : S3_DEFAULT_TIMEOUT_MS;
  s->connect_ms = (long)t;
  s->stall_s = (long)((t + 999) / 1000);
  s->attempts = cfg->attempts ? (int)cfg->attempts : S3_DEFAULT_ATTEMPTS;
  int rc = s3_probe(s);
  if (rc) {
    strata_err_saved why;
    strata_err_save(rc, &why);
    s3_destroy(&s->base);
    return strata_err_restore(&why);
  }
  *out = &s->base;
  return 0;
}
