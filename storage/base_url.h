/*
 * Where a store's OCDBT files live, named by one string: strata-server's
 * --data-url, recorded in the data directory (server/README.md "Where the
 * files live"). The one parser of that string; nothing else splits it.
 *
 *   /srv/strata/kv, ./kv, file:///srv/strata/kv   a directory (local disk or a
 *                                                 shared file system's mount)
 *   s3://BUCKET[/PREFIX]                          objects BUCKET/PREFIX/<path> in an
 *                                                 S3-compatible object store
 *
 * For s3:// the endpoint, region and credentials come from bs_url_opts or the
 * usual AWS environment variables (bs_url_open). Credentials are taken from the
 * environment only, never from flags (which any user sees in ps).
 */
#ifndef STRATA_STORAGE_BASE_URL_H
#define STRATA_STORAGE_BASE_URL_H

#include "storage/base.h"

enum bs_url_kind { BS_URL_DIR = 1, BS_URL_S3 = 2 };

#define BS_URL_PATH_MAX 4096
#define BS_URL_BUCKET_MAX 63 /* S3's bucket name rules: 3..63 of [a-z0-9.-] */

typedef struct bs_url {
  enum bs_url_kind kind;
  char path[BS_URL_PATH_MAX];          /* BS_URL_DIR: the directory as given (file:// stripped) */
  char bucket[BS_URL_BUCKET_MAX + 1];  /* BS_URL_S3 */
  char prefix[BS_URL_PATH_MAX];        /* BS_URL_S3: "" or "a/b" (no leading or trailing '/') */
} bs_url;

/* Parses and checks url; 0 or STRATA_EINVALID with a message saying what is
 * wrong and what forms are accepted. */
int bs_url_parse(const char *url, bs_url *u);

/* The canonical form of a parsed URL ("s3://b/p", or the directory path),
 * the text recorded in the data directory. */
void bs_url_format(const bs_url *u, char *out, size_t cap);

typedef struct bs_url_opts {
  /* s3:// only; NULL = from the environment: endpoint AWS_ENDPOINT_URL_S3, then
   * AWS_ENDPOINT_URL, else https://s3.REGION.amazonaws.com; region AWS_REGION,
   * then AWS_DEFAULT_REGION, else us-east-1. Credentials: AWS_ACCESS_KEY_ID,
   * AWS_SECRET_ACCESS_KEY (both required) and AWS_SESSION_TOKEN (optional). */
  const char *s3_endpoint, *s3_region;
  /* s3:// only: the writer lock's owner (NULL: no lock), what else its object
   * says, and whether to take the lock over from another owner (bs_s3_config). */
  const char *owner, *owner_info;
  int take_over;
} bs_url_opts;

/* Opens the base store a parsed URL names (a directory is created when
 * missing); *out is the caller's, freed with bs_destroy. */
int bs_url_open(const bs_url *u, const bs_url_opts *o, bs_store **out);

#endif
