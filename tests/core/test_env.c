/* core/env: ct_env_get gives a variable's value, "" for an empty one and
 * NULL for an unset one, and sees changes made after start. */
#include <stdlib.h>
#include <string.h>

#include "core/env.h"
#include "test_util.h"

int main(void)
{
    unsetenv("CT_TEST_ENV_X");
    CHECK(ct_env_get("CT_TEST_ENV_X") == NULL);
    setenv("CT_TEST_ENV_X", "a b=c", 1);
    const char *v = ct_env_get("CT_TEST_ENV_X");
    CHECK(v && strcmp(v, "a b=c") == 0);
    setenv("CT_TEST_ENV_X", "", 1);
    v = ct_env_get("CT_TEST_ENV_X");
    CHECK(v && v[0] == 0);
    unsetenv("CT_TEST_ENV_X");
    CHECK(ct_env_get("CT_TEST_ENV_X") == NULL);
    return ct_test_finish("test_env");
}
