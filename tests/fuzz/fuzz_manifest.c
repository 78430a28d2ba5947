/* Fuzzes the checkpoint manifest reader (trainer/ckpt.c): the bytes of a
 * manifest.yaml through ct__ckpt_parse_manifest, the code
 * ct_ckpt_read_config runs once the file is read (libcyaml on the
 * manifest, then the stored config and its checks against the model). */
#include "core/config.h"
#include "fuzz.h"
#include "trainer/ckpt_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ct_config_t cfg;
    if (ct__ckpt_parse_manifest((const char *)data, size, "fuzz/manifest.yaml", &cfg) == CT_OK)
        ct_config_free(&cfg);
    return 0;
}
