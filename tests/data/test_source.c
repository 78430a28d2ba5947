/* Byte sources without servers: URL parsing, request URLs and SigV4 query
 * canonicalization, the retry classification and backoff, redaction of
 * credentials from messages, the XML and SHA-256 helpers, and the local-file
 * backend end to end. The http(s), s3 and gs backends against real servers
 * are tests/source/ (label storage). */
#include "data/source.h"
#include "data/source_impl.h"
#include "test_util.h"

#include <curl/curl.h>
#include <stdint.h>

static int url_is(const char *url, ct__src_kind_t kind, const char *path, const char *bucket,
                  const char *key)
{
    ct__url_t u;
    if (ct__url_parse(url, &u) != CT_OK) return 0;
    int ok = u.kind == kind && (!path || strcmp(u.path, path) == 0) &&
             (!bucket || (u.bucket && strcmp(u.bucket, bucket) == 0)) &&
             (!key || (u.key && strcmp(u.key, key) == 0));
    ct__url_free(&u);
    return ok;
}

static void test_urls(void)
{
    CHECK(url_is("s3://bkt/a/b.bin", CT__SRC_S3, NULL, "bkt", "a/b.bin"));
    CHECK(url_is("S3://bkt", CT__SRC_S3, NULL, "bkt", ""));
    CHECK(url_is("s3://bkt/", CT__SRC_S3, NULL, "bkt", ""));
    CHECK(url_is("gs://my_bkt.x/dir/", CT__SRC_GS, NULL, "my_bkt.x", "dir/"));
    CHECK(url_is("https://h:8443/x.bin?a=1", CT__SRC_HTTP, "https://h:8443/x.bin?a=1", NULL, NULL));
    CHECK(url_is("http://h/x", CT__SRC_HTTP, "http://h/x", NULL, NULL));
    CHECK(url_is("file:///tmp/x.bin", CT__SRC_FILE, "/tmp/x.bin", NULL, NULL));
    CHECK(url_is("file://localhost/tmp/x.bin", CT__SRC_FILE, "/tmp/x.bin", NULL, NULL));
    CHECK(url_is("rel/x_*.bin", CT__SRC_FILE, "rel/x_*.bin", NULL, NULL));
    CHECK(url_is("/abs/x.bin", CT__SRC_FILE, "/abs/x.bin", NULL, NULL));
    ct__url_t u;
    CAPTURE_STDERR(CHECK(ct__url_parse("s3:///key", &u) == CT_ERR_INVALID_ARG));
    CHECK_CAPTURED("no valid bucket name");
    CAPTURE_STDERR(CHECK(ct__url_parse("s3://user@bkt/key", &u) == CT_ERR_INVALID_ARG));
    CAPTURE_STDERR(CHECK(ct__url_parse("ftp://h/x", &u) == CT_ERR_UNSUPPORTED));
    CHECK_CAPTURED("unsupported URL scheme 'ftp'");
    CAPTURE_STDERR(CHECK(ct__url_parse("file://host/x", &u) == CT_ERR_INVALID_ARG));
    CAPTURE_STDERR(CHECK(ct__url_parse("https://", &u) == CT_ERR_INVALID_ARG));
    CAPTURE_STDERR(CHECK(ct__url_parse("", &u) == CT_ERR_INVALID_ARG));
}

static void check_str(const char *got, const char *want)
{
    CHECK_MSG(got && strcmp(got, want) == 0, "got '%s', want '%s'", got ? got : "(null)", want);
}

static void test_encoding(void)
{
    ct__buf_t b = {0};
    ct__uri_encode(&b, "a b+c/d~e_f-g.h%é", 1);
    check_str(b.p, "a%20b%2Bc/d~e_f-g.h%25%C3%A9");
    b.n = 0;
    ct__uri_encode(&b, "a/b=c&d", 0);
    check_str(b.p, "a%2Fb%3Dc%26d");
    ct__buf_free(&b);

    const char *kv[] = {"prefix", "data/train x", "list-type", "2", "continuation-token",
                        "1/ab+c=="};
    char *q = ct__query_canonical(kv, 3);
    check_str(q, "continuation-token=1%2Fab%2Bc%3D%3D&list-type=2&prefix=data%2Ftrain%20x");
    free(q);
    const char *kv2[] = {"uploads", NULL};
    q = ct__query_canonical(kv2, 1);
    check_str(q, "uploads=");
    free(q);
    const char *kv3[] = {"uploadId", "u/1", "partNumber", "10"};
    q = ct__query_canonical(kv3, 2);
    check_str(q, "partNumber=10&uploadId=u%2F1"); /* sorted by name, case-sensitive */
    free(q);
    q = ct__query_canonical(NULL, 0);
    check_str(q, "");
    free(q);

    /* request URLs */
    ct_source_env_t env;
    ct_source_env_defaults(&env);
    env.region = "eu-west-1";
    ct_source_t *src;
    CHECK(ct_source_init(&env, &src) == CT_OK);
    ct__url_t u;
    CHECK(ct__url_parse("s3://bkt/d/a b.bin", &u) == CT_OK);
    char *url = ct__s3_url(src, &u, u.key, NULL);
    check_str(url, "https://bkt.s3.eu-west-1.amazonaws.com/d/a%20b.bin");
    free(url);
    url = ct__s3_url(src, &u, NULL, "list-type=2&prefix=d%2F");
    check_str(url, "https://bkt.s3.eu-west-1.amazonaws.com/?list-type=2&prefix=d%2F");
    free(url);
    ct__url_free(&u);
    CHECK(ct__url_parse("s3://b.with.dots/k", &u) == CT_OK);
    url = ct__s3_url(src, &u, u.key, NULL);
    check_str(url, "https://s3.eu-west-1.amazonaws.com/b.with.dots/k");
    free(url);
    ct__url_free(&u);
    CHECK(ct__url_parse("gs://g/k/x.bin", &u) == CT_OK);
    url = ct__s3_url(src, &u, u.key, NULL);
    check_str(url, "https://storage.googleapis.com/g/k/x.bin");
    free(url);
    ct__url_free(&u);
    ct_source_free(src);

    env.endpoint = "http://127.0.0.1:9000/";
    env.gcs_endpoint = "http://127.0.0.1:9001";
    CHECK(ct_source_init(&env, &src) == CT_OK);
    CHECK(ct__url_parse("s3://bkt/k", &u) == CT_OK);
    url = ct__s3_url(src, &u, u.key, "uploads=");
    check_str(url, "http://127.0.0.1:9000/bkt/k?uploads=");
    free(url);
    url = ct__s3_url(src, &u, NULL, "list-type=2&prefix=");
    check_str(url, "http://127.0.0.1:9000/bkt?list-type=2&prefix=");
    free(url);
    ct__url_free(&u);
    CHECK(ct__url_parse("gs://g/k", &u) == CT_OK);
    url = ct__s3_url(src, &u, u.key, NULL);
    check_str(url, "http://127.0.0.1:9001/g/k");
    free(url);
    ct__url_free(&u);
    ct_source_free(src);
}

static void test_retry_policy(void)
{
    CHECK(ct__http_retryable(500, ""));
    CHECK(ct__http_retryable(502, ""));
    CHECK(ct__http_retryable(503, "SlowDown"));
    CHECK(ct__http_retryable(504, ""));
    CHECK(ct__http_retryable(429, ""));
    CHECK(ct__http_retryable(408, ""));
    CHECK(ct__http_retryable(400, "RequestTimeout"));
    CHECK(!ct__http_retryable(400, "InvalidArgument"));
    CHECK(!ct__http_retryable(403, "AccessDenied"));
    CHECK(!ct__http_retryable(403, "SignatureDoesNotMatch"));
    CHECK(!ct__http_retryable(404, "NoSuchKey"));
    CHECK(!ct__http_retryable(416, "InvalidRange"));
    CHECK(!ct__http_retryable(501, "NotImplemented"));
    CHECK(ct__curl_retryable(CURLE_OPERATION_TIMEDOUT));
    CHECK(ct__curl_retryable(CURLE_RECV_ERROR));
    CHECK(ct__curl_retryable(CURLE_SEND_ERROR));
    CHECK(ct__curl_retryable(CURLE_PARTIAL_FILE));
    CHECK(ct__curl_retryable(CURLE_COULDNT_CONNECT));
    CHECK(ct__curl_retryable(CURLE_GOT_NOTHING));
    CHECK(!ct__curl_retryable(CURLE_PEER_FAILED_VERIFICATION));
    CHECK(!ct__curl_retryable(CURLE_URL_MALFORMAT));
    CHECK(!ct__curl_retryable(CURLE_WRITE_ERROR));
    /* backoff: doubles from base, capped, jittered into [d/2, d] */
    CHECK(fabs(ct__backoff_s(0, 0.25, 20, 0.0) - 0.125) < 1e-9);
    CHECK(fabs(ct__backoff_s(0, 0.25, 20, 0.999999) - 0.25) < 1e-6);
    CHECK(fabs(ct__backoff_s(3, 0.25, 20, 0.999999) - 2.0) < 1e-5);
    CHECK(fabs(ct__backoff_s(30, 0.25, 20, 0.999999) - 20.0) < 1e-4);
    CHECK(ct__backoff_s(30, 0.25, 20, 0.0) >= 10.0);
    for (int i = 0; i < 1000; i++) {
        double u = ct__random01();
        CHECK(u >= 0 && u < 1);
    }
}

static void test_redaction(void)
{
    char *r = ct__redact_url("https://user:hunter2@h.example/x.bin?X-Amz-Signature=deadbeef"
                             "&X-Amz-Credential=AKIA%2F1&token#frag");
    check_str(r, "https://user:***@h.example/x.bin?X-Amz-Signature=***&X-Amz-Credential=***&***");
    ct__redacted_free(r);
    r = ct__redact_url("https://tok@h/x");
    check_str(r, "https://***@h/x");
    ct__redacted_free(r);
    r = ct__redact_url("s3://bkt/k/x.bin");
    check_str(r, "s3://bkt/k/x.bin");
    ct__redacted_free(r);
    r = ct__redact_url("/local/@path?x");
    check_str(r, "/local/@path?***");
    ct__redacted_free(r);

    /* nothing secret reaches the log when a request fails */
    ct_source_env_t env;
    ct_source_env_defaults(&env);
    env.access_key = "AKIDSECRETKEYID";
    env.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRET";
    env.session_token = "SESSIONTOKENSECRET";
    env.endpoint = "http://127.0.0.1:1"; /* nothing listens on port 1 */
    env.max_retries = 1;
    env.retry_base_s = 0.001;
    env.timeout_s = 2;
    ct_source_t *src;
    CHECK(ct_source_init(&env, &src) == CT_OK);
    char buf[16];
    CAPTURE_STDERR(CHECK(ct_source_read(src, "s3://bkt/k.bin", 5, 10, -1, buf) == CT_ERR_IO));
    CHECK_CAPTURED("s3://bkt/k.bin at byte offset 5");
    CHECK_CAPTURED("retry 1 of 1");
    CHECK_CAPTURED("gave up after 2 attempts");
    CHECK(!strstr(ct_test_captured, "wJalrXUtnFEMI"));
    CHECK(!strstr(ct_test_captured, "SESSIONTOKENSECRET"));
    CHECK(!strstr(ct_test_captured, "AKIDSECRETKEYID"));
    CAPTURE_STDERR(CHECK(ct_source_read(src, "http://u:pw123@127.0.0.1:1/x?sig=SIGSECRET", 0, 4,
                                        -1, buf) == CT_ERR_IO));
    CHECK_CAPTURED("http://u:***@127.0.0.1:1/x?sig=***");
    CHECK(!strstr(ct_test_captured, "SIGSECRET") && !strstr(ct_test_captured, "pw123"));
    ct_source_free(src);
}

static void test_xml(void)
{
    char *t = ct__xml_text(NULL, NULL);
    check_str(t, "");
    free(t);
    const char *s = "a&amp;b&lt;&gt;&quot;&apos;&#65;&#x42;&#xe9;&#x1F600;z";
    t = ct__xml_text(s, s + strlen(s));
    check_str(t, "a&b<>\"'AB\xc3\xa9\xf0\x9f\x98\x80z");
    free(t);
    const char *bad[] = {"&bogus;", "&amp", "&#;", "&#x;", "&#0;", "&#xZZ;", "&#1114112;"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(ct__xml_text(bad[i], bad[i] + strlen(bad[i])) == NULL, "%s", bad[i]);

    const char *err = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>"
                      "<Message>The specified bucket does not exist</Message><BucketName>b"
                      "</BucketName></Error>";
    char code[32], msg[64];
    ct__xml_get(err, err + strlen(err), "Code", code, sizeof code);
    ct__xml_get(err, err + strlen(err), "Message", msg, sizeof msg);
    check_str(code, "NoSuchBucket");
    check_str(msg, "The specified bucket does not exist");
    ct__xml_get(err, err + strlen(err), "Missing", code, sizeof code);
    check_str(code, "");

    const char *page =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>b</Name><Prefix>d/</Prefix><KeyCount>4</KeyCount><MaxKeys>4</MaxKeys>"
        "<IsTruncated>true</IsTruncated><NextContinuationToken>1a&amp;b/c=</NextContinuationToken>"
        "<Contents><Key>d/</Key><Size>0</Size></Contents>"
        "<Contents>\n  <Key>d/x_1.bin</Key><LastModified>2024</LastModified>"
        "<ETag>&quot;e&quot;</ETag><Size>1024</Size><StorageClass>STANDARD</StorageClass></Contents>"
        "<Contents><Key>d/a&amp;b &lt;c&gt;.bin</Key><Size>7</Size></Contents>"
        "<Contents><Key>d/sub/x_2.bin</Key><Size>9</Size></Contents>"
        "</ListBucketResult>";
    ct_object_t *objs = NULL;
    int n = 0, cap = 0, trunc = 0;
    char *token = NULL;
    CHECK(ct__s3_parse_list(page, strlen(page), "s3://b/", NULL, &objs, &n, &cap, &trunc,
                            &token) == CT_OK);
    CHECK(n == 3 && trunc == 1);
    check_str(token, "1a&b/c=");
    if (n == 3) {
        check_str(objs[0].url, "s3://b/d/x_1.bin");
        CHECK(objs[0].size == 1024);
        check_str(objs[1].url, "s3://b/d/a&b <c>.bin");
        CHECK(objs[1].size == 7);
        CHECK(objs[2].size == 9);
    }
    free(token);
    ct_objects_free(objs, n);
    objs = NULL;
    n = cap = 0;
    /* a pattern matches whole keys, '*' not crossing '/' */
    CHECK(ct__s3_parse_list(page, strlen(page), "gs://b/", "d/x_*.bin", &objs, &n, &cap, &trunc,
                            &token) == CT_OK);
    CHECK(n == 1 && n > 0 && strcmp(objs[0].url, "gs://b/d/x_1.bin") == 0);
    free(token);
    ct_objects_free(objs, n);
    objs = NULL;
    n = cap = 0;
    const char *last = "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k"
                       "</Key><Size>3</Size></Contents></ListBucketResult>";
    CHECK(ct__s3_parse_list(last, strlen(last), "s3://b/", NULL, &objs, &n, &cap, &trunc,
                            &token) == CT_OK);
    CHECK(n == 1 && trunc == 0 && token == NULL);
    const char *broken[] = {
        "<html>not s3</html>",
        "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
        "<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>k</Key><Size>x1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>k&zz;</Key><Size>1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>k</Key><Size>1</Size>",
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        token = NULL;
        CHECK_MSG(ct__s3_parse_list(broken[i], strlen(broken[i]), "s3://b/", NULL, &objs, &n,
                                    &cap, &trunc, &token) == CT_ERR_CORRUPT, "%s", broken[i]);
        free(token);
    }
    ct_objects_free(objs, n);
}

static void test_sha256(void)
{
    char hex[65];
    ct__sha256_hex("", 0, hex);
    check_str(hex, CT__EMPTY_SHA256);
    ct__sha256_hex("abc", 3, hex);
    check_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes */
    ct__sha256_hex(m, strlen(m), hex);
    check_str(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    ct__sha256_hex(a, 1000000, hex);
    check_str(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

static void test_env(void)
{
    setenv("AWS_ACCESS_KEY_ID", "ak", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "sk", 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_REGION");
    setenv("AWS_DEFAULT_REGION", "ap-south-1", 1);
    setenv("AWS_ENDPOINT_URL", "http://e:1", 1);
    setenv("AWS_ENDPOINT_URL_S3", "http://s3e:2", 1);
    setenv("GCS_ENDPOINT_URL", "http://g:3", 1);
    setenv("AWS_CA_BUNDLE", "/ca.pem", 1);
    ct_source_env_t env;
    ct_source_env_from_environ(&env);
    check_str(env.access_key, "ak");
    check_str(env.secret_key, "sk");
    CHECK(env.session_token == NULL);
    check_str(env.region, "ap-south-1");
    check_str(env.endpoint, "http://s3e:2");
    check_str(env.gcs_endpoint, "http://g:3");
    check_str(env.ca_bundle, "/ca.pem");
    CHECK(env.max_retries == 8 && env.part_bytes == CT_SOURCE_PART_BYTES);
    const char *vars[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                          "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "GCS_ENDPOINT_URL",
                          "AWS_CA_BUNDLE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
    ct_source_env_from_environ(&env);
    CHECK(env.access_key == NULL && env.endpoint == NULL);
    check_str(env.region, "us-east-1");
    check_str(env.gcs_endpoint, "https://storage.googleapis.com");
}

/* A relative glob that matches nothing names the working directory it was
 * taken from. */
static void test_relative_glob(ct_source_t *src, const char *dir)
{
    char cwd[4096], real[4096], want[8400];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(realpath(dir, real) != NULL); /* what getcwd will say */
    CHECK(chdir(dir) == 0);
    ct_object_t *objs;
    int n = 0;
    CAPTURE_STDERR(CHECK(ct_source_list(src, "none_*.bin", &objs, &n) == CT_ERR_NOT_FOUND));
    snprintf(want, sizeof want, "no file matches 'none_*.bin' (relative to %s)\n---> HINT: ", real);
    CHECK_CAPTURED(want);
    CAPTURE_STDERR(CHECK(ct_source_list(src, "s_*.bin", &objs, &n) == CT_OK && n == 3));
    if (n == 3) ct_objects_free(objs, n);
    CAPTURE_STDERR(CHECK(ct_source_list(src, "none.bin", &objs, &n) == CT_ERR_NOT_FOUND));
    snprintf(want, sizeof want, "cannot stat none.bin (relative to %s): ", real);
    CHECK_CAPTURED(want);
    CHECK(chdir(cwd) == 0);
}

static void test_files(void)
{
    const char *dir = ct_test_dir("source");
    ct_source_env_t env;
    ct_source_env_defaults(&env);
    ct_source_t *src;
    CHECK(ct_source_init(&env, &src) == CT_OK);
    char path[4200], spec[8600];
    unsigned char data[5000], got[5000];
    for (int i = 0; i < 5000; i++) data[i] = (unsigned char)(i * 131 + 7);
    for (int f = 2; f >= 0; f--) { /* written out of order; listed sorted */
        snprintf(path, sizeof path, "%s/s_%d.bin", dir, f);
        CHECK(ct_source_write(src, path, data, 1000 + (size_t)f * 1000) == CT_OK);
    }
    snprintf(path, sizeof path, "%s/other.txt", dir);
    CHECK(ct_source_write(src, path, "x", 1) == CT_OK);
    CHECK(ct_source_write(src, path, "hello", 5) == CT_OK); /* replaces */
    int64_t size = -1;
    CHECK(ct_source_size(src, path, &size) == CT_OK && size == 5);
    snprintf(spec, sizeof spec, "file://%s", path);
    CHECK(ct_source_read(src, spec, 1, 3, 5, got) == CT_OK && memcmp(got, "ell", 3) == 0);

    ct_object_t *objs;
    int n = 0;
    snprintf(spec, sizeof spec, "%s/s_*.bin , %s/other.txt", dir, dir);
    CHECK(ct_source_list(src, spec, &objs, &n) == CT_OK && n == 4);
    if (n == 4) {
        for (int f = 0; f < 3; f++) {
            snprintf(path, sizeof path, "%s/s_%d.bin", dir, f);
            CHECK(strcmp(objs[f].url, path) == 0 && objs[f].size == 1000 + f * 1000);
        }
        CHECK(objs[3].size == 5);
        CHECK(ct_source_read(src, objs[2].url, 1234, 1766, objs[2].size, got) == CT_OK);
        CHECK(memcmp(got, data + 1234, 1766) == 0);
        /* short object, changed size, nothing there */
        CAPTURE_STDERR(CHECK(ct_source_read(src, objs[2].url, 2990, 20, -1, got) == CT_ERR_CORRUPT));
        CHECK_CAPTURED("ends at byte offset 3000");
        CAPTURE_STDERR(CHECK(ct_source_read(src, objs[2].url, 0, 20, 4000, got) == CT_ERR_CORRUPT));
        CHECK_CAPTURED("changed size: 3000 bytes now, 4000 when listed");
        ct_objects_free(objs, n);
    }
    CHECK(ct_source_read(src, "/nonexistent/x", 0, 0, -1, got) == CT_OK); /* nothing to read */
    CAPTURE_STDERR(CHECK(ct_source_read(src, "/nonexistent/x", 0, 1, -1, got) == CT_ERR_NOT_FOUND));
    CHECK_CAPTURED("/nonexistent/x");
    snprintf(spec, sizeof spec, "%s/s_*.bin,%s/none_*.bin", dir, dir);
    CAPTURE_STDERR(CHECK(ct_source_list(src, spec, &objs, &n) == CT_ERR_NOT_FOUND));
    /* a local glob is reported in the words of files, not of object stores */
    snprintf(path, sizeof path, "no file matches '%s/none_*.bin'\n---> HINT: ", dir);
    CHECK_CAPTURED(path);
    CHECK(!strstr(ct_test_captured, "no object") && !strstr(ct_test_captured, "prefix"));
    CHECK(!strstr(ct_test_captured, "relative to")); /* the path is absolute */
    test_relative_glob(src, dir);
    snprintf(path, sizeof path, "%s/s_dir", dir); /* a glob that matches a folder only */
    CHECK(mkdir(path, 0755) == 0);
    snprintf(spec, sizeof spec, "%s/s_d*", dir);
    CAPTURE_STDERR(CHECK(ct_source_list(src, spec, &objs, &n) == CT_ERR_NOT_FOUND));
    CHECK_CAPTURED("s_d*', only 1 folder(s) or other non-regular file(s)\n---> HINT: ");
    CAPTURE_STDERR(CHECK(ct_source_list(src, " , ", &objs, &n) == CT_ERR_NOT_FOUND));
    CAPTURE_STDERR(CHECK(ct_source_list(src, dir, &objs, &n) == CT_ERR_INVALID_ARG));
    CHECK_CAPTURED("not a regular file");
    snprintf(path, sizeof path, "%s/missing/x.bin", dir);
    CAPTURE_STDERR(CHECK(ct_source_write(src, path, "x", 1) == CT_ERR_IO));
    CHECK_CAPTURED("folder must exist");
    CAPTURE_STDERR(CHECK(ct_source_write(src, "https://h/x", "x", 1) == CT_ERR_UNSUPPORTED));
    CAPTURE_STDERR(CHECK(ct_source_write(src, "s3://b/prefix/", "x", 1) == CT_ERR_INVALID_ARG));
    CHECK_CAPTURED("names a bucket or prefix");
    CAPTURE_STDERR(CHECK(ct_source_size(src, "ftp://h/x", &size) == CT_ERR_UNSUPPORTED));
    ct_source_free(src);
}

int main(void)
{
    test_urls();
    test_encoding();
    test_retry_policy();
    test_redaction();
    test_xml();
    test_sha256();
    test_env();
    test_files();
    return ct_test_finish("test_source");
}
