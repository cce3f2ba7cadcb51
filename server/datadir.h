/*
 * What strata-server checks before it creates or opens anything: that the
 * listen address is free and that the data directory is missing, empty, or a
 * Strata data directory of a format this build reads (docs/format.md, "The
 * data directory"). strata-server's main() calls them in that order, so a
 * refused start leaves nothing behind. They read only; srv_open does the rest.
 */
#ifndef STRATA_SERVER_DATADIR_H
#define STRATA_SERVER_DATADIR_H

#include <stddef.h>

/* The marker file at the top of a data directory and the format it names.
 * Its content is one line, "strata data directory format N". */
#define SRV_FORMAT_FILE "FORMAT"
#define SRV_FORMAT_VERSION 1

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
