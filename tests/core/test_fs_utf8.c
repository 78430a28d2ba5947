/* core/fs (mkdir -p, read-whole-file) and core/utf8 (encoder, strict
 * decoder). */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fs.h"
#include "core/utf8.h"
#include "test_util.h"

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static void test_mkdir_p(const char *dir)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/a/b//c/", dir);
    CHECK(ct_fs_mkdir_p(p) == CT_OK);
    snprintf(p, sizeof p, "%s/a/b/c", dir);
    CHECK(is_dir(p));
    CHECK(ct_fs_mkdir_p(p) == CT_OK); /* exists: fine */

    /* A file in the way: the error names the component that failed. */
    snprintf(p, sizeof p, "%s/file", dir);
    FILE *f = fopen(p, "w");
    fclose(f);
    ct_status_t st;
    CAPTURE_STDERR(st = ct_fs_mkdir_p(p));
    CHECK(st == CT_ERR_IO);
    CHECK_CAPTURED("Not a directory");
    snprintf(p, sizeof p, "%s/file/x/y", dir);
    CAPTURE_STDERR(st = ct_fs_mkdir_p(p));
    CHECK(st == CT_ERR_IO);
    char want[4400];
    snprintf(want, sizeof want, "cannot create directory %s/file/x: Not a directory", dir);
    CHECK_CAPTURED(want);
}

static void test_read_file(const char *dir)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/data.bin", dir);
    /* 200 KiB with NULs: more than one read block, length exact */
    size_t n = 200 * 1024 + 7;
    char *src = malloc(n);
    for (size_t i = 0; i < n; i++) src[i] = (char)(i * 31 % 251);
    FILE *f = fopen(p, "wb");
    fwrite(src, 1, n, f);
    fclose(f);
    char *buf = NULL;
    size_t len = 0;
    CHECK(ct_fs_read_file(p, &buf, &len) == CT_OK);
    CHECK(buf && len == n && memcmp(buf, src, n) == 0 && buf[n] == 0);
    free(buf);
    free(src);

    snprintf(p, sizeof p, "%s/empty", dir);
    f = fopen(p, "wb");
    fclose(f);
    buf = NULL;
    CHECK(ct_fs_read_file(p, &buf, &len) == CT_OK && len == 0 && buf && buf[0] == 0);
    free(buf);

    char *untouched = (char *)p;
    buf = untouched;
    snprintf(p, sizeof p, "%s/missing", dir);
    CHECK(ct_fs_read_file(p, &buf, &len) == CT_ERR_NOT_FOUND && buf == untouched);
    CHECK(ct_fs_read_file(dir, &buf, &len) == CT_ERR_IO && errno == EISDIR && buf == untouched);
}

static void test_sync_dir(const char *dir)
{
    CHECK(ct_fs_sync_dir(dir) == CT_OK);
    char missing[4200], file[4200];
    snprintf(missing, sizeof missing, "%s/no_such_dir", dir);
    ct_status_t st;
    CAPTURE_STDERR(st = ct_fs_sync_dir(missing));
    CHECK(st == CT_ERR_IO);
    CHECK_CAPTURED("cannot sync directory");
    CHECK_CAPTURED(missing);
    /* a file is not a directory */
    snprintf(file, sizeof file, "%s/plain_file", dir);
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    if (f) fclose(f);
    CAPTURE_STDERR(st = ct_fs_sync_dir(file));
    CHECK(st == CT_ERR_IO);
}

static void test_utf8(void)
{
    static const struct {
        uint32_t cp;
        const char *utf8;
    } cases[] = {{0x00, "\x00"},           {0x41, "A"},
                 {0x7F, "\x7f"},           {0x80, "\xc2\x80"},
                 {0x100, "\xc4\x80"},      {0x7FF, "\xdf\xbf"},
                 {0x800, "\xe0\xa0\x80"},  {0xFFFD, "\xef\xbf\xbd"},
                 {0xFFFF, "\xef\xbf\xbf"}, {0x10000, "\xf0\x90\x80\x80"},
                 {0x1F600, "\xf0\x9f\x98\x80"}, {0x10FFFF, "\xf4\x8f\xbf\xbf"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[4];
        size_t want = cases[i].cp ? strlen(cases[i].utf8) : 1;
        size_t k = ct_utf8_encode(cases[i].cp, out);
        CHECK_MSG(k == want && memcmp(out, cases[i].utf8, k) == 0, "encode U+%04X", cases[i].cp);
        uint32_t cp = 0xdead;
        CHECK_MSG(ct_utf8_decode((const uint8_t *)cases[i].utf8, want, &cp) == want &&
                      cp == cases[i].cp, "decode U+%04X", cases[i].cp);
    }
    /* Invalid: overlong, surrogate, above U+10FFFF, stray continuation,
     * truncated, bad continuation. */
    static const char *bad[] = {"\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xed\xa0\x80",
                                "\xed\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
                                "\x80", "\xbf", "\xe2\x82", "\xc3\x28", "\xf0\x9f\x98"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint32_t cp = 0xdead;
        CHECK_MSG(ct_utf8_decode((const uint8_t *)bad[i], strlen(bad[i]), &cp) == 0 && cp == 0xdead,
                  "invalid case %zu accepted", i);
    }
    /* n bounds the read: a valid 2-byte character given 1 byte is truncated. */
    uint32_t cp;
    CHECK(ct_utf8_decode((const uint8_t *)"\xc3\xa9", 1, &cp) == 0);
}

int main(void)
{
    const char *dir = ct_test_dir("test_fs_utf8");
    char d[4200];
    snprintf(d, sizeof d, "%s", dir);
    test_mkdir_p(d);
    test_read_file(d);
    test_sync_dir(d);
    test_utf8();
    return ct_test_finish("test_fs_utf8");
}
