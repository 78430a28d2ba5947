# data/source*.c: byte sources over local files, http(s)://, s3:// and gs://
# (see data/source.h), and their tests and benchmark.
# Included from the top CMakeLists.txt after enable_testing(), once ct_data
# exists. Does:
#   - finds libcurl >= 7.85 (CURLOPT_AWS_SIGV4, CURLOPT_PROTOCOLS_STR) and
#     links it into ct_data, PUBLIC: tests/data/test_source.c uses curl.h
#     (Debian: libcurl4-openssl-dev)
#   - storage_check (tests/source/storage_check.c) and three tests labelled
#     storage that start real servers on 127.0.0.1 (nginx with a self-signed
#     certificate, moto with signature checks, a fault-injecting server):
#     test_storage_s3, test_storage_https, test_storage_faults. They need
#     nginx, openssl and python3 with `pip install "moto[server]"`.
#   - bench_source (bench/bench_source.c); tests/source/bench.sh runs it
#     against file, nginx and moto URLs.

get_filename_component(CT_SOURCE_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

find_package(CURL 7.85 REQUIRED)
message(STATUS "data: libcurl ${CURL_VERSION_STRING}")
target_link_libraries(ct_data PUBLIC CURL::libcurl)

add_executable(storage_check ${CT_SOURCE_ROOT}/tests/source/storage_check.c)
target_include_directories(storage_check PRIVATE ${CT_SOURCE_ROOT}/tests)
target_link_libraries(storage_check PRIVATE ct_data)
foreach(kind s3 https faults)
  add_test(NAME test_storage_${kind}
    COMMAND bash ${CT_SOURCE_ROOT}/tests/source/test_${kind}.sh $<TARGET_FILE:storage_check>)
  set_tests_properties(test_storage_${kind} PROPERTIES LABELS storage TIMEOUT 180
    ENVIRONMENT "CT_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp;CT_SOURCE_DIR=${CT_SOURCE_ROOT}")
endforeach()

add_executable(bench_source ${CT_SOURCE_ROOT}/bench/bench_source.c)
target_link_libraries(bench_source PRIVATE ct_data)
