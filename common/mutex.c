/* The per-thread tag strata_mutex records as its owner in checked builds. */
#include "common/mutex.h"

#if STRATA_MUTEX_CHECKS
_Thread_local char strata__mutex_self;
#else
typedef int strata__mutex_unchecked; /* an empty translation unit is not ISO C */
#endif
