/* Private to trainer/: the checkpoint manifest reader on bytes in memory,
 * for the tests and the fuzzing harness (tests/fuzz/fuzz_manifest.c). It is
 * the code ct_ckpt_read_config runs on a manifest.yaml once it is read. */
#ifndef CT_TRAINER_CKPT_IMPL_H
#define CT_TRAINER_CKPT_IMPL_H

#include <stddef.h>

#include "core/config.h"
#include "core/status.h"

/* Parses manifest text (len bytes, no NUL needed; origin names it in
 * errors), checks its layout and model dims, and loads the config stored
 * in it into cfg, checking that it describes the same model. Logs and
 * returns CT_ERR_CORRUPT or CT_ERR_CONFIG on bad input; cfg is then left
 * freed. */
CT_MUST_USE ct_status_t ct__ckpt_parse_manifest(const char *text, size_t len, const char *origin,
                                                ct_config_t *cfg);

#endif
