/* The environment reader (see core/env.h). The only getenv call in ctrain. */
#include "core/env.h"

#include <stdlib.h>

const char *ct_env_get(const char *name) { return getenv(name); }
