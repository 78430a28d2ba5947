/* Fuzzes the S3 XML readers (data/source_xml.c, data/source_s3.c): the
 * input as a ListObjectsV2 answer (ct__s3_parse_list, with and without a
 * pattern) and as an error body (<Code> and <Message>, as source_curl.c
 * reads them). */
#include "data/source_impl.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *xml = (const char *)data;
    for (int k = 0; k < 2; k++) {
        ct_object_t *objs = NULL;
        int n = 0, cap = 0, truncated = 0;
        char *token = NULL;
        ct_status_t st = ct__s3_parse_list(xml, size, "s3://bucket/", k ? "data/*.bin" : NULL,
                                           &objs, &n, &cap, &truncated, &token);
        if (st == CT_OK) {
            for (int i = 0; i < n; i++)
                FUZZ_REQUIRE(objs[i].url && strncmp(objs[i].url, "s3://bucket/", 12) == 0 &&
                             objs[i].size >= 0);
            FUZZ_REQUIRE(!truncated || (token && *token));
        }
        ct_objects_free(objs, n);
        free(token);
    }
    char code[64], msg[512];
    ct__xml_get(xml, xml + size, "Code", code, sizeof code);
    ct__xml_get(xml, xml + size, "Message", msg, sizeof msg);
    FUZZ_REQUIRE(strlen(code) < sizeof code && strlen(msg) < sizeof msg);
    return 0;
}
