/* See common/version.h. The values come from the Makefile's -D flags. */
#include "common/version.h"

#ifndef STRATA_VERSION
#define STRATA_VERSION "unknown"
#endif
#ifndef STRATA_GIT_COMMIT
#define STRATA_GIT_COMMIT "unknown"
#endif
#ifndef STRATA_BUILD_DATE
#define STRATA_BUILD_DATE "unknown"
#endif

const char *strata_version(void) { return STRATA_VERSION; }
const char *strata_git_commit(void) { return STRATA_GIT_COMMIT; }
const char *strata_build_date(void) { return STRATA_BUILD_DATE; }
const char *strata_version_line(void) {
  return "strata " STRATA_VERSION " (commit " STRATA_GIT_COMMIT ", built " STRATA_BUILD_DATE ")";
}
