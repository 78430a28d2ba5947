/* Names and strings for ct_status_t, generated from CT_STATUS_MAP. */
#include "core/status.h"

const char *ct_status_name(ct_status_t s)
{
    switch (s) {
#define CT__STATUS_NAME(name, str) case CT_##name: return "CT_" #name;
    CT_STATUS_MAP(CT__STATUS_NAME)
#undef CT__STATUS_NAME
    default: return "CT_UNKNOWN_STATUS";
    }
}

const char *ct_status_str(ct_status_t s)
{
    switch (s) {
#define CT__STATUS_STR(name, str) case CT_##name: return str;
    CT_STATUS_MAP(CT__STATUS_STR)
#undef CT__STATUS_STR
    default: return "unknown status";
    }
}
