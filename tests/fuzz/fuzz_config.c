/* Fuzzes the config loader (core/config.c): the input as a YAML file
 * (ct_config_load_string, what `ctrain train` and a checkpoint's stored
 * config go through) and, line by line, as --set arguments. A config that
 * loads must round-trip: ct_config_to_yaml then loading that text gives the
 * same YAML again (what a checkpoint relies on). */
#include "core/config.h"
#include "fuzz.h"

/* Writes cfg as YAML, loads it back and writes it again: both texts agree. */
static void check_round_trip(const ct_config_t *cfg)
{
    char *y = ct_config_to_yaml(cfg);
    FUZZ_REQUIRE(y != NULL);
    ct_config_t again;
    FUZZ_REQUIRE(ct_config_load_string(y, "round trip", &again) == CT_OK);
    char *y2 = ct_config_to_yaml(&again);
    FUZZ_REQUIRE(y2 && strcmp(y, y2) == 0);
    free(y);
    free(y2);
    ct_config_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    ct_config_t cfg;
    if (ct_config_load_string(text, "fuzz.yaml", &cfg) == CT_OK) {
        check_round_trip(&cfg);
        ct_config_free(&cfg);
    }
    /* the same bytes as --set arguments, one per line (at most 32; a last
     * newline ends the last line) */
    const char *sets[32];
    int n = 0;
    if (size > 0 && text[size - 1] == '\n') text[size - 1] = 0;
    for (char *p = text; n < 32;) {
        sets[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = 0;
        p = nl + 1;
    }
    if (ct_config_load(NULL, sets, n, &cfg) == CT_OK) {
        check_round_trip(&cfg);
        ct_config_free(&cfg);
    }
    free(text);
    return 0;
}
