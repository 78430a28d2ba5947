/* The byte sources against real servers on loopback, driven by
 * tests/source/test_*.sh, which start the servers and pass where they are
 * in the environment:
 *   storage_check s3      moto with signature checks on: MOTO_ENDPOINT,
 *                         MOTO_AK/SK, MOTO_TMP_AK/SK/TOKEN; buckets ctrain-s3
 *                         and ctrain-gcs exist (the latter read as gs://)
 *   storage_check https   nginx: HTTPS_BASE, HTTP_BASE, CA_FILE, WWW_DIR
 *   storage_check faults  tests/source/fault_server.py: FAULT_BASE, FAULT_ROOT
 * Every check that expects a failure captures what was logged and looks for
 * the URL, the offset, the status and the server's code in it. The exit
 * code is the verdict; the scripts also grep the output for the secrets. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>

#include "data/source.h"
#include "test_util.h"

static const char *need_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "storage_check: %s is not set (run me through tests/source/test_*.sh)\n",
                name);
        exit(2);
    }
    return v;
}

/* Deterministic bytes: object `seed`, byte i. */
static unsigned char byte_at(uint32_t seed, size_t i)
{
    uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ull + seed * 0xD1B54A32D192ED03ull;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    return (unsigned char)(x >> 56);
}

static unsigned char *make_data(uint32_t seed, size_t n)
{
    unsigned char *d = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) d[i] = byte_at(seed, i);
    return d;
}

/* Reads [off, off+len) of url and compares with data. */
static int read_ok(ct_source_t *src, const char *url, const unsigned char *data, int64_t size,
                   int64_t off, size_t len)
{
    unsigned char *buf = malloc(len ? len : 1);
    ct_status_t st = ct_source_read(src, url, off, len, size, buf);
    int ok = st == CT_OK && memcmp(buf, data + off, len) == 0;
    if (!ok)
        fprintf(stderr, "read_ok %s [%lld, +%zu): %s%s\n", url, (long long)off, len,
                ct_status_name(st), st == CT_OK ? " but the bytes differ" : "");
    free(buf);
    return ok;
}

static void read_ranges(ct_source_t *src, const char *url, const unsigned char *data, int64_t n)
{
    CHECK(read_ok(src, url, data, n, 0, 1));
    CHECK(read_ok(src, url, data, n, 1, 7));
    CHECK(read_ok(src, url, data, n, n - 1, 1));
    CHECK(read_ok(src, url, data, n, n / 3 + 1, (size_t)(n / 2 - 3)));
    CHECK(read_ok(src, url, data, n, 0, (size_t)n));
}

/* ---- threads ------------------------------------------------------------------------- */
typedef struct {
    ct_source_t *src;
    const char *url;
    const unsigned char *data;
    int64_t size;
    int id, reads, bad;
    /* writers */
    const char *fmt;
    int first, count;
} job_t;

static void *reader(void *p)
{
    job_t *j = p;
    uint64_t s = 0x1234567ull + (uint64_t)j->id * 7919;
    for (int i = 0; i < j->reads; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int64_t off = (int64_t)((s >> 20) % (uint64_t)j->size);
        size_t len = 1 + (size_t)((s >> 40) % (uint64_t)(j->size - off));
        if (!read_ok(j->src, j->url, j->data, j->size, off, len)) j->bad++;
    }
    return NULL;
}

static int parallel_reads(ct_source_t *src, const char *url, const unsigned char *data,
                          int64_t size, int nthreads, int reads)
{
    pthread_t t[16];
    job_t j[16];
    for (int i = 0; i < nthreads; i++) {
        j[i] = (job_t){.src = src, .url = url, .data = data, .size = size, .id = i, .reads = reads};
        pthread_create(&t[i], NULL, reader, &j[i]);
    }
    int bad = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        bad += j[i].bad;
    }
    return bad;
}

static void *writer(void *p)
{
    job_t *j = p;
    char url[256];
    unsigned char body[8];
    for (int i = j->first; i < j->first + j->count; i++) {
        snprintf(url, sizeof url, j->fmt, i);
        size_t n = 1 + (size_t)(i % 7);
        for (size_t k = 0; k < n; k++) body[k] = (unsigned char)('a' + (i + (int)k) % 26);
        if (ct_source_write(j->src, url, body, n) != CT_OK) j->bad++;
    }
    return NULL;
}

static ct_source_t *open_source(const ct_source_env_t *env)
{
    ct_source_t *src = NULL;
    if (ct_source_init(env, &src) != CT_OK) {
        fprintf(stderr, "ct_source_init failed\n");
        exit(2);
    }
    return src;
}

/* ---- s3 (moto) ----------------------------------------------------------------------- */
static void check_s3(void)
{
    ct_source_env_t env;
    ct_source_env_defaults(&env);
    env.endpoint = need_env("MOTO_ENDPOINT");
    env.access_key = need_env("MOTO_AK");
    env.secret_key = need_env("MOTO_SK");
    env.max_retries = 2;
    env.retry_base_s = 0.01;
    env.timeout_s = 20;
    env.part_bytes = 64 << 10; /* moto runs with a 1 KiB minimum part */
    ct_source_t *src = open_source(&env);
    const char *sk = env.secret_key;

    /* signatures are checked: a wrong secret is refused at once */
    ct_source_env_t bad_env = env;
    bad_env.secret_key = "wrong-secret-7f3a9c";
    ct_source_t *bad = open_source(&bad_env);
    CAPTURE_STDERR(CHECK(ct_source_write(bad, "s3://ctrain-s3/bad.bin", "x", 1) == CT_ERR_IO));
    CHECK_CAPTURED("s3://ctrain-s3/bad.bin");
    CHECK_CAPTURED("HTTP 403 SignatureDoesNotMatch");
    CHECK_CAPTURED("HINT: check the access key and secret");
    CHECK(!strstr(ct_test_captured, "retry"));
    CHECK(!strstr(ct_test_captured, "wrong-secret-7f3a9c") && !strstr(ct_test_captured, sk));
    ct_source_free(bad);
    bad_env.access_key = "AKIANOSUCHKEY0000000";
    bad_env.secret_key = sk;
    bad = open_source(&bad_env);
    int64_t size = -1;
    CAPTURE_STDERR(CHECK(ct_source_size(bad, "s3://ctrain-s3/bad.bin", &size) == CT_ERR_IO));
    CHECK_CAPTURED("HTTP 403 InvalidAccessKeyId");
    ct_source_free(bad);

    /* PutObject, size, ranged reads at odd offsets; a key that needs encoding */
    const size_t n1 = 60001; /* below part_bytes: one PutObject */
    unsigned char *d1 = make_data(1, n1);
    const char *u1 = "s3://ctrain-s3/shards/a b+c&d=e~f\xc3\xa9_000.bin";
    CHECK(ct_source_write(src, u1, d1, n1) == CT_OK);
    CHECK(ct_source_size(src, u1, &size) == CT_OK && size == (int64_t)n1);
    read_ranges(src, u1, d1, (int64_t)n1);

    /* multipart: 300 KiB + 17 in 64 KiB parts */
    const size_t n2 = (300 << 10) + 17;
    unsigned char *d2 = make_data(2, n2);
    const char *u2 = "s3://ctrain-s3/shards/big_001.bin";
    CAPTURE_STDERR(CHECK(ct_source_write(src, u2, d2, n2) == CT_OK));
    CHECK(ct_source_size(src, u2, &size) == CT_OK && size == (int64_t)n2);
    read_ranges(src, u2, d2, (int64_t)n2);
    CHECK(parallel_reads(src, u2, d2, (int64_t)n2, 8, 12) == 0);
    /* an empty object */
    CHECK(ct_source_write(src, "s3://ctrain-s3/empty.bin", "", 0) == CT_OK);
    CHECK(ct_source_size(src, "s3://ctrain-s3/empty.bin", &size) == CT_OK && size == 0);

    /* list: a prefix, a pattern, a comma-separated mix */
    ct_object_t *objs = NULL;
    int n = 0;
    CHECK(ct_source_list(src, "s3://ctrain-s3/shards/", &objs, &n) == CT_OK && n == 2);
    if (n == 2) {
        CHECK(strcmp(objs[0].url, u1) == 0 && objs[0].size == (int64_t)n1);
        CHECK(strcmp(objs[1].url, u2) == 0 && objs[1].size == (int64_t)n2);
        CHECK(read_ok(src, objs[0].url, d1, objs[0].size, 99, 1001));
    }
    ct_objects_free(objs, n);
    CHECK(ct_source_list(src, "s3://ctrain-s3/shards/big_*.bin", &objs, &n) == CT_OK && n == 1);
    ct_objects_free(objs, n);
    CHECK(ct_source_list(src, "s3://ctrain-s3/shards/big_001.bin, s3://ctrain-s3/shards/",
                         &objs, &n) == CT_OK && n == 3);
    ct_objects_free(objs, n);

    /* more than 1000 keys: ListObjectsV2 pagination */
    const int many = 1100;
    pthread_t t[4];
    job_t j[4];
    for (int i = 0; i < 4; i++) {
        j[i] = (job_t){.src = src, .fmt = "s3://ctrain-s3/many/k_%05d.bin", .first = i * many / 4,
                       .count = many / 4};
        pthread_create(&t[i], NULL, writer, &j[i]);
    }
    int wbad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        wbad += j[i].bad;
    }
    CHECK(wbad == 0);
    CHECK(ct_source_list(src, "s3://ctrain-s3/many/", &objs, &n) == CT_OK);
    CHECK_MSG(n == many, "listed %d of %d", n, many);
    int sorted = 1;
    for (int i = 0; i < n; i++) {
        char want[64];
        snprintf(want, sizeof want, "s3://ctrain-s3/many/k_%05d.bin", i);
        sorted &= strcmp(objs[i].url, want) == 0 && objs[i].size == 1 + i % 7;
    }
    CHECK(sorted);
    ct_objects_free(objs, n);
    CHECK(ct_source_list(src, "s3://ctrain-s3/many/k_001*.bin", &objs, &n) == CT_OK && n == 100);
    ct_objects_free(objs, n);

    /* what goes wrong is said clearly */
    CAPTURE_STDERR(CHECK(ct_source_list(src, "s3://ctrain-s3/nothing/", &objs, &n) ==
                         CT_ERR_NOT_FOUND));
    CHECK_CAPTURED("no object matches 's3://ctrain-s3/nothing/'");
    CAPTURE_STDERR(CHECK(ct_source_read(src, "s3://no-such-bucket/x.bin", 0, 4, -1, d2) ==
                         CT_ERR_NOT_FOUND));
    CHECK_CAPTURED("s3://no-such-bucket/x.bin at byte offset 0");
    CHECK_CAPTURED("HTTP 404 NoSuchBucket");
    CHECK_CAPTURED("HINT: the bucket does not exist");
    CAPTURE_STDERR(CHECK(ct_source_list(src, "s3://no-such-bucket/p/", &objs, &n) ==
                         CT_ERR_NOT_FOUND));
    CHECK_CAPTURED("cannot list s3://no-such-bucket/p/: HTTP 404 NoSuchBucket");
    CAPTURE_STDERR(CHECK(ct_source_size(src, "s3://ctrain-s3/missing.bin", &size) ==
                         CT_ERR_NOT_FOUND));
    CHECK_CAPTURED("s3://ctrain-s3/missing.bin: HTTP 404 NoSuchKey");
    CAPTURE_STDERR(CHECK(ct_source_read(src, "s3://ctrain-s3/missing.bin", 10, 4, -1, d2) ==
                         CT_ERR_NOT_FOUND));
    CHECK_CAPTURED("NoSuchKey");
    CAPTURE_STDERR(CHECK(ct_source_read(src, u2, (int64_t)n2 - 10, 20, -1, d2) == CT_ERR_CORRUPT));
    CHECK_CAPTURED("runs past its end");
    CAPTURE_STDERR(CHECK(ct_source_read(src, u2, (int64_t)n2 + 10, 20, -1, d2) == CT_ERR_CORRUPT));
    CHECK_CAPTURED("HTTP 416 InvalidRange");
    CAPTURE_STDERR(CHECK(ct_source_read(src, u2, 5, 20, (int64_t)n2 + 1, d2) == CT_ERR_CORRUPT));
    CHECK_CAPTURED("changed size");
    /* an object rewritten with another size under a reader */
    CHECK(ct_source_write(src, "s3://ctrain-s3/shrinks.bin", d1, 5000) == CT_OK);
    CHECK(ct_source_write(src, "s3://ctrain-s3/shrinks.bin", d1, 4000) == CT_OK);
    CAPTURE_STDERR(CHECK(ct_source_read(src, "s3://ctrain-s3/shrinks.bin", 100, 100, 5000, d2) ==
                         CT_ERR_CORRUPT));
    CHECK_CAPTURED("s3://ctrain-s3/shrinks.bin at byte offset 100");
    CHECK_CAPTURED("changed size: 4000 bytes now, 5000 when listed");

    /* temporary credentials: the session token is sent and checked */
    ct_source_env_t tmp_env = env;
    tmp_env.access_key = need_env("MOTO_TMP_AK");
    tmp_env.secret_key = need_env("MOTO_TMP_SK");
    tmp_env.session_token = need_env("MOTO_TMP_TOKEN");
    ct_source_t *tmp = open_source(&tmp_env);
    CHECK(read_ok(tmp, u1, d1, (int64_t)n1, 4096, 50001));
    ct_source_free(tmp);
    tmp_env.session_token = "not-the-token-91c2";
    tmp = open_source(&tmp_env);
    CAPTURE_STDERR(CHECK(ct_source_read(tmp, u1, 0, 10, -1, d2) != CT_OK));
    CHECK_CAPTURED("InvalidToken");
    CHECK(!strstr(ct_test_captured, "not-the-token-91c2"));
    ct_source_free(tmp);

    /* gs:// through the same signing, against moto standing in for GCS */
    ct_source_env_t gs_env = env;
    gs_env.endpoint = NULL;
    gs_env.access_key = gs_env.secret_key = NULL;
    gs_env.gcs_endpoint = env.endpoint;
    gs_env.gcs_access_key = env.access_key;
    gs_env.gcs_secret_key = env.secret_key;
    ct_source_t *gs = open_source(&gs_env);
    CHECK(ct_source_write(gs, "gs://ctrain-gcs/g/x_0.bin", d1, 3000) == CT_OK);
    CHECK(ct_source_write(gs, "gs://ctrain-gcs/g/x_1.bin", d2, n2) == CT_OK); /* multipart */
    CHECK(ct_source_list(gs, "gs://ctrain-gcs/g/", &objs, &n) == CT_OK && n == 2);
    if (n == 2) {
        CHECK(strcmp(objs[1].url, "gs://ctrain-gcs/g/x_1.bin") == 0 && objs[1].size == (int64_t)n2);
        read_ranges(gs, objs[1].url, d2, objs[1].size);
    }
    ct_objects_free(objs, n);
    ct_source_free(gs);
    gs_env.gcs_secret_key = "wrong-gcs-secret-55d1";
    gs = open_source(&gs_env);
    CAPTURE_STDERR(CHECK(ct_source_size(gs, "gs://ctrain-gcs/g/x_0.bin", &size) == CT_ERR_IO));
    CHECK_CAPTURED("gs://ctrain-gcs/g/x_0.bin: HTTP 403 SignatureDoesNotMatch");
    CHECK(!strstr(ct_test_captured, "wrong-gcs-secret-55d1"));
    ct_source_free(gs);

    free(d1);
    free(d2);
    ct_source_free(src);
}

/* ---- https (nginx) -------------------------------------------------------------------- */
static void check_https(void)
{
    const char *https = need_env("HTTPS_BASE"), *http = need_env("HTTP_BASE");
    const char *www = need_env("WWW_DIR");
    ct_source_env_t env;
    ct_source_env_defaults(&env);
    env.ca_bundle = need_env("CA_FILE");
    env.max_retries = 2;
    env.retry_base_s = 0.01;
    ct_source_t *src = open_source(&env);
    const size_t n = (3 << 20) + 333;
    unsigned char *d = make_data(3, n);
    char path[4096], url[512], spec[1200];
    snprintf(path, sizeof path, "%s/obj.bin", www);
    CHECK(ct_source_write(src, path, d, n) == CT_OK);

    for (int pass = 0; pass < 2; pass++) {
        snprintf(url, sizeof url, "%s/obj.bin", pass ? http : https);
        int64_t size = -1;
        CHECK(ct_source_size(src, url, &size) == CT_OK && size == (int64_t)n);
        read_ranges(src, url, d, (int64_t)n);
        CHECK(parallel_reads(src, url, d, (int64_t)n, 6, 10) == 0);
        ct_object_t *objs;
        int no = 0;
        snprintf(spec, sizeof spec, "%s,%s", url, path);
        CHECK(ct_source_list(src, spec, &objs, &no) == CT_OK && no == 2);
        if (no == 2) CHECK(strcmp(objs[0].url, url) == 0 && objs[0].size == (int64_t)n);
        ct_objects_free(objs, no);
        unsigned char buf[64];
        CAPTURE_STDERR(CHECK(ct_source_read(src, url, (int64_t)n - 10, 20, -1, buf) ==
                             CT_ERR_CORRUPT));
        CHECK_CAPTURED("runs past its end");
        CHECK_CAPTURED(url);
        CAPTURE_STDERR(CHECK(ct_source_read(src, url, (int64_t)n + 5, 20, -1, buf) ==
                             CT_ERR_CORRUPT));
        CHECK_CAPTURED("HTTP 416");
        CAPTURE_STDERR(CHECK(ct_source_read(src, url, 0, 20, (int64_t)n + 1, buf) ==
                             CT_ERR_CORRUPT));
        CHECK_CAPTURED("changed size");
        snprintf(url, sizeof url, "%s/missing.bin", pass ? http : https);
        CAPTURE_STDERR(CHECK(ct_source_read(src, url, 0, 20, -1, buf) == CT_ERR_NOT_FOUND));
        CHECK_CAPTURED("HTTP 404");
        CHECK(!strstr(ct_test_captured, "retry"));
    }

    /* TLS is verified by default: without the CA the read fails, clearly and at once */
    ct_source_env_t no_ca = env;
    no_ca.ca_bundle = NULL;
    ct_source_t *bad = open_source(&no_ca);
    snprintf(url, sizeof url, "%s/obj.bin", https);
    unsigned char buf[16];
    CAPTURE_STDERR(CHECK(ct_source_read(bad, url, 0, 16, -1, buf) == CT_ERR_IO));
    CHECK_CAPTURED("TLS certificate verification failed");
    CHECK_CAPTURED("self-signed certificate");
    CHECK_CAPTURED("HINT: the server's certificate is not trusted");
    CHECK(!strstr(ct_test_captured, "retry"));
    ct_source_free(bad);
    free(d);
    ct_source_free(src);
}

/* ---- faults ------------------------------------------------------------------------------- */
static size_t sink(char *p, size_t s, size_t n, void *u)
{
    char *b = u;
    size_t l = strlen(b), k = s * n;
    if (l + k < 63) {
        memcpy(b + l, p, k);
        b[l + k] = 0;
    }
    return s * n;
}

/* How many METHOD requests for /MODE/NAME reached the fault server. */
static int served(const char *base, const char *method, const char *mode, const char *name)
{
    char url[512], body[64] = "";
    snprintf(url, sizeof url, "%s/_count/%s/%s/%s", base, method, mode, name);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? atoi(body) : -1;
}

static void check_faults(void)
{
    const char *base = need_env("FAULT_BASE"), *root = need_env("FAULT_ROOT");
    ct_source_env_t env;
    ct_source_env_defaults(&env);
    env.endpoint = base; /* s3://MODE/obj.bin goes to the fault server too */
    env.access_key = "AKIAFAULTKEY";
    env.secret_key = "fault-secret-c0ffee";
    env.session_token = "fault-token-beef";
    env.max_retries = 4;
    env.retry_base_s = 0.01;
    env.retry_max_s = 0.05;
    env.timeout_s = 1;
    env.part_bytes = 1 << 20;
    ct_source_t *src = open_source(&env);
    const size_t n = (2 << 20) + 77;
    unsigned char *d = make_data(4, n);
    char path[4096], url[512], want[600];
    snprintf(path, sizeof path, "%s/obj.bin", root);
    CHECK(ct_source_write(src, path, d, n) == CT_OK);
    const int64_t off = 12345;
    const size_t len = (1 << 20) + 3;
    unsigned char *buf = malloc(n);

    /* recovered: the data is identical to a clean read */
    const struct {
        const char *mode;
        int requests;
        const char *said;
    } ok[] = {
        {"ok", 1, NULL},
        {"drop1", 2, "Connection reset by peer"},
        {"reset1", 2, NULL}, /* libcurl itself may retry a reused connection */
        {"truncate1", 2, "retry 1 of 4"},
        {"nolen1", 2, "the transfer ended after"},
        {"stall1", 2, "curl error 28"},
        {"503x2", 3, "HTTP 503 SlowDown"},
        {"429x1", 2, "HTTP 429 SlowDown"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int s3 = i % 2; /* alternate http:// and s3:// (signed) requests */
        if (s3) snprintf(url, sizeof url, "s3://%s/obj.bin", ok[i].mode);
        else snprintf(url, sizeof url, "%s/%s/obj.bin", base, ok[i].mode);
        memset(buf, 0, n);
        ct_status_t st;
        CAPTURE_STDERR(st = ct_source_read(src, url, off, len, (int64_t)n, buf));
        CHECK_MSG(st == CT_OK && memcmp(buf, d + off, len) == 0, "%s: %s", ok[i].mode,
                  ct_status_name(st));
        int got = served(base, "GET", ok[i].mode, "obj.bin");
        CHECK_MSG(got == ok[i].requests, "%s: %d requests, want %d", ok[i].mode, got,
                  ok[i].requests);
        if (ok[i].said) {
            CHECK_CAPTURED(ok[i].said);
            snprintf(want, sizeof want, "read %s at byte offset %lld", url, (long long)off);
            CHECK_CAPTURED(want);
        }
    }

    /* reported: the URL, the offset and what was wrong */
    const struct {
        const char *mode;
        int s3;
        ct_status_t st;
        int requests;
        int64_t expect; /* the size passed to the read */
        const char *said;
    } bad[] = {
        {"truncate", 0, CT_ERR_IO, 5, (int64_t)n, "gave up after 5 attempts"},
        {"badlen", 0, CT_ERR_CORRUPT, 1, (int64_t)n, "wrong Content-Length: 1048679 bytes announced"},
        {"short", 1, CT_ERR_CORRUPT, 1, -1, "the object is only 1048614 bytes long"},
        {"changed", 0, CT_ERR_CORRUPT, 1, (int64_t)n,
         "changed size: 2097230 bytes now, 2097229 when listed"},
        {"wrongrange", 0, CT_ERR_CORRUPT, 1, (int64_t)n, "the server sent Content-Range 12346-1060924"},
        {"norange", 0, CT_ERR_UNSUPPORTED, 1, (int64_t)n, "ignored the Range header"},
        {"403", 1, CT_ERR_IO, 1, (int64_t)n, "HTTP 403 AccessDenied: Access Denied"},
        {"404", 1, CT_ERR_NOT_FOUND, 1, (int64_t)n, "HTTP 404 NoSuchKey"},
        {"500always", 1, CT_ERR_IO, 5, (int64_t)n, "HTTP 500 InternalError"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bad[i].s3) snprintf(url, sizeof url, "s3://%s/obj.bin", bad[i].mode);
        else snprintf(url, sizeof url, "%s/%s/obj.bin", base, bad[i].mode);
        ct_status_t st;
        CAPTURE_STDERR(st = ct_source_read(src, url, off, len, bad[i].expect, buf));
        CHECK_MSG(st == bad[i].st, "%s: %s", bad[i].mode, ct_status_name(st));
        int got = served(base, "GET", bad[i].mode, "obj.bin");
        CHECK_MSG(got == bad[i].requests, "%s: %d requests, want %d", bad[i].mode, got,
                  bad[i].requests);
        snprintf(want, sizeof want, "cannot read %s at byte offset %lld", url, (long long)off);
        CHECK_CAPTURED(want);
        CHECK_CAPTURED(bad[i].said);
        CHECK_CAPTURED("HINT");
    }
    /* the truncated transfer says where it stopped */
    ct_status_t st;
    CAPTURE_STDERR(st = ct_source_read(src, "s3://truncate/obj.bin", off, len, -1, buf));
    CHECK(st != CT_OK);
    snprintf(want, sizeof want, "after 524289 of %zu bytes, at byte offset %lld", len,
             (long long)off + 524289);
    CHECK_CAPTURED(want);
    /* a size that changed is only noticed when the caller knows the old one */
    CHECK(ct_source_read(src, "s3://changed/obj.bin", off, len, -1, buf) == CT_OK);

    /* a failed multipart upload is aborted */
    CAPTURE_STDERR(CHECK(ct_source_write(src, "s3://mpu403/up.bin", d, n) == CT_ERR_IO));
    CHECK_CAPTURED("cannot write s3://mpu403/up.bin (part 1 of 3)");
    CHECK_CAPTURED("aborted the multipart upload of s3://mpu403/up.bin");
    CHECK(served(base, "POST", "mpu403", "up.bin") == 1);
    CHECK(served(base, "PUT", "mpu403", "up.bin") == 1);
    CHECK(served(base, "DELETE", "mpu403", "up.bin") == 1);

    free(buf);
    free(d);
    ct_source_free(src);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: storage_check s3|https|faults\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (strcmp(argv[1], "s3") == 0) check_s3();
    else if (strcmp(argv[1], "https") == 0) check_https();
    else if (strcmp(argv[1], "faults") == 0) check_faults();
    else {
        fprintf(stderr, "storage_check: unknown mode '%s'\n", argv[1]);
        return 2;
    }
    return ct_test_finish(argv[1]);
}
