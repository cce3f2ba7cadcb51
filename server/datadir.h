/*
 * What strata-server checks before it creates or opens anything: that the
 * listen address is free and that the data directory is missing, empty, or a
 * Strata data directory of a format this build reads (docs/operations.md,
 * "What is on disk"). strata-server's main() calls them in that order, so a
 * refused start leaves nothing behind. They read only; srv_open does the rest.
 */
#ifndef STRATA_SERVER_DATADIR_H
#define STRATA_SERVER_DATADIR_H

#include <stddef.h>

/* The marker file at the top of a data directory and the format it names.
 * Its content is one line, "strata data directory format N". */
#define SRV_FORMAT_FILE "FORMAT"
#define SRV_FORMAT_VERSION 1

/* Where a data directory's store lives when not in DIR/kv: one line
 * "data-url URL", then optionally "log-dir DIR" (absolute paths), "s3-endpoint URL",
 * "s3-region R" and "owner HEX"
 * (docs/operations.md, "What is on disk"). Written at the first start that names
 * them. */
#define SRV_STORE_FILE "STORE"

typedef struct srv_store_loc {
  char data_url[4096]; /* "" = DIR/kv */
  char log_dir[4096];  /* "" = the default (srv_opts.log_dir) */
  char s3_endpoint[512], s3_region[64]; /* s3:// only: recorded like the places ("" = the
                                           AWS environment at every start) */
  char owner[40];      /* this data directory's name as a store's writer (the S3 writer lock):
                          random hex, recorded with the places */
  int fresh;           /* named by flags, not recorded yet: srv_record_store writes it */
} srv_store_loc;

/* Resolves --data-url and --log-dir, --s3-endpoint and --s3-region (any may be NULL) against what DIR/STORE
 * records: a data directory keeps the place its store was first given. With no
 * record, flags that name a place are taken (loc->fresh) unless DIR/kv already
 * holds a store. Relative directories are made absolute (the server may be
 * started from elsewhere next time). Reads only. Returns 0 with *loc filled, or
 * -1 with one line in msg: a flag that differs from the record, a URL that does
 * not parse, a store already in DIR/kv. */
int srv_resolve_store(const char *dir, const char *data_url, const char *log_dir, const char *s3_endpoint,
                      const char *s3_region, srv_store_loc *loc, char *msg, size_t cap);

/* Records a fresh *loc in DIR/STORE (durably, as the format marker), once the
 * places it names were found usable. Returns 0, or -1 with msg. */
int srv_record_store(const char *dir, const srv_store_loc *loc, char *msg, size_t cap);

/* `listen` is "HOST:PORT" (HOST may be empty, or "[v6]") with PORT a decimal
 * number 0..65535; `flag` names the option in the message ("--listen").
 * Returns 0, or -1 with one line for the user in msg. */
int srv_listen_syntax(const char *flag, const char *listen, char *msg, size_t cap);

/* srv_listen_syntax, then binds (and closes) a socket on `listen`; port 0 is
 * always free. Returns 0, or -1 with one line for the user in msg. */
int srv_check_listen(const char *flag, const char *listen, char *msg, size_t cap);

/* --metrics-listen: the address metrics.c serves (an IPv4 HOST:PORT, one
 * parser for both), free to bind. Returns 0, or -1 with one line in msg. */
int srv_check_metrics_listen(const char *listen, char *msg, size_t cap);

/* 0 when dir is missing, empty, or a Strata data directory whose format this
 * build reads (an older one without the marker included); else -1 with what
 * was found in msg. */
int srv_check_data_dir(const char *dir, char *msg, size_t cap);

/* Creates dir if missing and writes the format marker if absent (durably:
 * a temporary file, fsync, rename, fsync of the directory). Returns 0 or -1
 * with msg. */
int srv_mark_data_dir(const char *dir, char *msg, size_t cap);

#endif
