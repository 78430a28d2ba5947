/* The one place that reads the process environment: every getenv in
 * ctrain goes through ct_env_get, so `grep ct_env_get` lists every variable
 * ctrain reads (CT_LOG_LEVEL, CT_LOG_FILE, CT_GPT2_VOCAB_DIR, the AWS_* and
 * GCS credentials in data/source, the launcher's OMPI_COMM_WORLD_SIZE and
 * PMI_SIZE, ...). Left out: setting variables (ctrain never does). */
#ifndef CT_CORE_ENV_H
#define CT_CORE_ENV_H

#ifdef __cplusplus
extern "C" {
#endif

/* The value of the variable name, or NULL when it is unset (an empty value
 * is returned as ""). The string belongs to the environment: do not free or
 * modify it. Thread-safe as long as nothing sets variables, which ctrain
 * does not. */
const char *ct_env_get(const char *name);

#ifdef __cplusplus
}
#endif

#endif
