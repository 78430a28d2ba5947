/* Status codes for user and environment errors (the first error channel in
 * STYLE.md). One X-macro table makes the enum, ct_status_name() and
 * ct_status_str(). Programmer errors do not use these: they abort through
 * CT_ASSERT and the CT_CHECK_* macros in core/log.h. */
#ifndef CT_CORE_STATUS_H
#define CT_CORE_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

#define CT_STATUS_MAP(X)                                                  \
    X(OK, "success")                                                      \
    X(ERR_INVALID_ARG, "invalid argument")                                \
    X(ERR_CONFIG, "invalid configuration")                                \
    X(ERR_IO, "input/output error")                                       \
    X(ERR_NOT_FOUND, "not found")                                         \
    X(ERR_CORRUPT, "corrupt or malformed data")                           \
    X(ERR_NO_MEMORY, "out of memory")                                     \
    X(ERR_UNSUPPORTED, "unsupported")                                     \
    X(ERR_COMM, "communication failure")                                  \
    X(ERR_TIMEOUT, "timed out")                                           \
    X(ERR_INTERRUPTED, "interrupted")

typedef enum {
#define CT__STATUS_ENUM(name, str) CT_##name,
    CT_STATUS_MAP(CT__STATUS_ENUM)
#undef CT__STATUS_ENUM
    CT_STATUS_COUNT
} ct_status_t;

/* Every function that returns a ct_status_t is declared with this: a status
 * is handled (passed on, logged, or turned into an exit code), never
 * dropped. The build makes an ignored one an error (-Werror=unused-result). */
#define CT_MUST_USE __attribute__((warn_unused_result))

/* "CT_ERR_IO" style name of a status; never NULL. */
const char *ct_status_name(ct_status_t s);
/* Human-readable description of a status; never NULL. */
const char *ct_status_str(ct_status_t s);

#ifdef __cplusplus
}
#endif

#endif
