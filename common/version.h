/*
 * The build's identity: release version, git commit and build date, compiled
 * into common/version.c from -D flags the Makefile passes (see "Version" in
 * the Makefile). strata-server --version, stratactl --version and Admin.Stats'
 * server_version print them.
 */
#ifndef STRATA_COMMON_VERSION_H
#define STRATA_COMMON_VERSION_H

/* "0.1.0" */
const char *strata_version(void);
/* Short git commit of the tree that was built, or "unknown" (no .git). */
const char *strata_git_commit(void);
/* UTC build date, "2026-12-06T20:11:46Z", or "unknown". */
const char *strata_build_date(void);
/* "strata 0.1.0 (commit 1a2b3c4, built 2026-12-06T20:11:46Z)" */
const char *strata_version_line(void);

#endif
