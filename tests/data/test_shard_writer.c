/* Shard writer: rotation across shards, headers, sizes and token bytes read
 * back by hand (and through ct_shard_read_header), uint16 vs uint32 width,
 * no temporary files left behind, and the error paths (token out of range,
 * unwritable directory, write failure, no tokens). */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "core/log.h"
#include "data/data.h"
#include "test_util.h"

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Checks shard `index` of `prefix`: header, size, and that it holds
 * tokens[first .. first + ntok). */
static void check_shard(const char *prefix, int index, int width, const int32_t *tokens,
                        int64_t first, int64_t ntok)
{
    char path[4300];
    snprintf(path, sizeof path, "%s_%06d.bin", prefix, index);
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "missing shard %s", path);
    if (!f) return;
    size_t size = (size_t)(1024 + ntok * width);
    uint8_t *buf = malloc(size + 16);
    size_t got = fread(buf, 1, size + 16, f);
    fclose(f);
    CHECK_MSG(got == size, "%s: %zu bytes, want %zu", path, got, size);
    if (got == size) {
        CHECK(le32(buf) == (width == 2 ? 20240520u : 20240801u));
        CHECK(le32(buf + 4) == (width == 2 ? 1u : 7u));
        CHECK(le32(buf + 8) == (uint32_t)ntok);
        int zeros = 1;
        for (int i = 12; i < 1024; i++) zeros &= buf[i] == 0;
        CHECK(zeros);
        int64_t bad = -1;
        for (int64_t i = 0; i < ntok && bad < 0; i++) {
            const uint8_t *p = buf + 1024 + i * width;
            uint32_t v = width == 2 ? (uint32_t)(p[0] | p[1] << 8) : le32(p);
            if (v != (uint32_t)tokens[first + i]) bad = i;
        }
        CHECK_MSG(bad < 0, "%s: token %lld differs", path, (long long)bad);
    }
    free(buf);
    ct_shard_info_t info = {0};
    CHECK(ct_shard_read_header(path, &info) == CT_OK);
    CHECK(info.ntok == ntok && info.width == width);
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK_MSG(!file_exists(tmp), "%s left behind", tmp);
}

/* Writes n tokens in uneven pieces, then checks every shard. */
static void write_and_check(const char *dir, const char *tag, int vocab, int64_t shard_tokens,
                            int64_t n, int want_shards)
{
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s/%s", dir, tag);
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)n);
    uint64_t r = 99;
    for (int64_t i = 0; i < n; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        tokens[i] = (int32_t)((r >> 33) % (uint64_t)vocab);
    }
    if (n > 1) tokens[0] = vocab - 1, tokens[1] = 0; /* the extremes */
    ct_shard_writer_t *w = NULL;
    CHECK(ct_shard_writer_init(prefix, shard_tokens, vocab, &w) == CT_OK);
    if (!w) goto out;
    int64_t pos = 0;
    size_t piece = 1;
    while (pos < n) {
        size_t k = piece;
        if ((int64_t)k > n - pos) k = (size_t)(n - pos);
        CHECK(ct_shard_writer_push(w, tokens + pos, k) == CT_OK);
        pos += (int64_t)k;
        piece = piece * 3 + 1;
    }
    CHECK(ct_shard_writer_push(w, tokens, 0) == CT_OK);
    int shards = -1;
    int64_t total = -1;
    CHECK(ct_shard_writer_close(w, &shards, &total) == CT_OK);
    CHECK_MSG(shards == want_shards, "%s: %d shards, want %d", tag, shards, want_shards);
    CHECK(total == n);
    int width = vocab <= 65536 ? 2 : 4;
    for (int s = 0; s < want_shards; s++) {
        int64_t first = s * shard_tokens;
        int64_t cnt = n - first < shard_tokens ? n - first : shard_tokens;
        check_shard(prefix, s, width, tokens, first, cnt);
    }
    char next[4300];
    snprintf(next, sizeof next, "%s_%06d.bin", prefix, want_shards);
    CHECK(!file_exists(next));
out:
    free(tokens);
}

static void test_errors(const char *dir)
{
    char prefix[4200];
    ct_shard_writer_t *w = NULL;
    int shards = -1;
    int64_t total = -1;

    /* Bad arguments. */
    snprintf(prefix, sizeof prefix, "%s/bad", dir);
    CAPTURE_STDERR(CHECK(ct_shard_writer_init(prefix, 0, 100, &w) == CT_ERR_INVALID_ARG));
    CAPTURE_STDERR(
        CHECK(ct_shard_writer_init(prefix, (int64_t)1 << 31, 100, &w) == CT_ERR_INVALID_ARG));
    CHECK(w == NULL);

    /* No tokens: an error and no file. */
    snprintf(prefix, sizeof prefix, "%s/empty", dir);
    CHECK(ct_shard_writer_init(prefix, 10, 100, &w) == CT_OK);
    ct_status_t st;
    CAPTURE_STDERR(st = ct_shard_writer_close(w, &shards, &total));
    CHECK(st == CT_ERR_INVALID_ARG && shards == -1 && total == -1);
    CHECK_CAPTURED("no tokens written");

    /* A token outside the vocabulary: the finished shard stays, the open one
     * is removed, and the error sticks. */
    snprintf(prefix, sizeof prefix, "%s/range", dir);
    CHECK(ct_shard_writer_init(prefix, 4, 100, &w) == CT_OK);
    int32_t toks[8] = {1, 2, 3, 4, 5, 100, 6, 7};
    CAPTURE_STDERR(CHECK(ct_shard_writer_push(w, toks, 8) == CT_ERR_INVALID_ARG));
    CHECK_CAPTURED("token 100 at input position 5");
    CHECK(ct_shard_writer_push(w, toks, 1) == CT_ERR_INVALID_ARG);
    CHECK(ct_shard_writer_close(w, &shards, &total) == CT_ERR_INVALID_ARG);
    char path[4300];
    snprintf(path, sizeof path, "%s_000000.bin", prefix);
    CHECK(file_exists(path));
    snprintf(path, sizeof path, "%s_000001.bin.tmp", prefix);
    CHECK(!file_exists(path));
    snprintf(path, sizeof path, "%s_000001.bin", prefix);
    CHECK(!file_exists(path));

    /* A directory that does not exist: the error names the file. */
    snprintf(prefix, sizeof prefix, "%s/no/such/dir/x", dir);
    CHECK(ct_shard_writer_init(prefix, 4, 100, &w) == CT_OK);
    CAPTURE_STDERR(st = ct_shard_writer_push(w, toks, 2));
    CHECK(st == CT_ERR_IO);
    CHECK_CAPTURED("no/such/dir/x_000000.bin.tmp");
    CHECK_CAPTURED("No such file or directory");
    CHECK(ct_shard_writer_close(w, &shards, &total) == CT_ERR_IO);

    /* A failing write (file size limit, like a full disk): the error names
     * the file and the cause, and no partial shard remains. */
    snprintf(prefix, sizeof prefix, "%s/full", dir);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        int n = 1 << 20;
        int32_t *many = calloc((size_t)n, sizeof(int32_t));
        CHECK(ct_shard_writer_init(prefix, n, 100, &w) == CT_OK);
        CAPTURE_STDERR(st = ct_shard_writer_push(w, many, (size_t)n));
        if (st == CT_OK) CAPTURE_STDERR(st = ct_shard_writer_close(w, &shards, &total));
        else CHECK(ct_shard_writer_close(w, &shards, &total) == CT_ERR_IO);
        setrlimit(RLIMIT_FSIZE, &old);
        CHECK(st == CT_ERR_IO);
        CHECK_CAPTURED("full_000000.bin.tmp");
        CHECK_CAPTURED("File too large");
        snprintf(path, sizeof path, "%s_000000.bin.tmp", prefix);
        CHECK(!file_exists(path));
        snprintf(path, sizeof path, "%s_000000.bin", prefix);
        CHECK(!file_exists(path));
        free(many);
    }
    signal(SIGXFSZ, old_handler);

    /* A shard left from an earlier, longer run is reported. */
    snprintf(prefix, sizeof prefix, "%s/stale", dir);
    snprintf(path, sizeof path, "%s_000001.bin", prefix);
    FILE *f = fopen(path, "wb");
    fclose(f);
    CHECK(ct_shard_writer_init(prefix, 4, 100, &w) == CT_OK);
    CHECK(ct_shard_writer_push(w, toks, 3) == CT_OK);
    CAPTURE_STDERR(st = ct_shard_writer_close(w, &shards, &total));
    CHECK(st == CT_OK && shards == 1 && total == 3);
    CHECK_CAPTURED("stale_000001.bin is left from an earlier run");
}

int main(void)
{
    ct_log_init();
    const char *d = ct_test_dir("test_shard_writer");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", d);
    write_and_check(dir, "u16", 1000, 100, 250, 3);       /* 100 + 100 + 50 */
    write_and_check(dir, "exact", 1000, 100, 200, 2);     /* no empty third shard */
    write_and_check(dir, "v65536", 65536, 1000, 2500, 3); /* still uint16 */
    write_and_check(dir, "u32", 70000, 1000, 2500, 3);    /* uint32 above 65536 */
    write_and_check(dir, "big", 50257, 100000, 250000, 3); /* more than one write chunk */
    test_errors(dir);
    return ct_test_finish("test_shard_writer");
}
