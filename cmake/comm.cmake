# comm/: process groups and collectives (see comm/comm.h), and its tests.
# Included from the top CMakeLists.txt after enable_testing(). Defines:
#   ct_comm         library; links ct_core, Threads and (when used) MPI::MPI_C
#   CT_MPI          AUTO (default: use MPI when find_package finds it), ON, OFF
#   CT_HAVE_MPI     ON when comm/ is built with MPI (a CMake variable; the
#                   C macro of the same name is defined for comm/ sources only)
# Tests: test_comm (label unit, one process), and with MPI the mpi-labelled
# runs of tests/comm/mpi_collectives.c (np 2 and np 4 layouts) and
# tests/comm/run_failure.sh (a hung rank and a killed rank) and
# tests/comm/run_hang.sh (which rank is named when one is stopped).

get_filename_component(CT_COMM_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

set(CT_MPI AUTO CACHE STRING "build comm/ with MPI: AUTO (if found), ON (required) or OFF")
set_property(CACHE CT_MPI PROPERTY STRINGS AUTO ON OFF)
if(CT_MPI STREQUAL "ON")
  find_package(MPI REQUIRED COMPONENTS C)
elseif(CT_MPI STREQUAL "AUTO")
  find_package(MPI COMPONENTS C)
elseif(NOT CT_MPI STREQUAL "OFF")
  message(FATAL_ERROR "CT_MPI must be AUTO, ON or OFF, got '${CT_MPI}'")
endif()
if(NOT CT_MPI STREQUAL "OFF" AND MPI_C_FOUND)
  set(CT_HAVE_MPI ON)
else()
  set(CT_HAVE_MPI OFF)
endif()
message(STATUS "comm: MPI ${CT_HAVE_MPI} (CT_MPI=${CT_MPI})")

find_package(Threads REQUIRED)
add_library(ct_comm STATIC
  ${CT_COMM_ROOT}/comm/comm.c
  ${CT_COMM_ROOT}/comm/local.c
  ${CT_COMM_ROOT}/comm/sidechannel.c)
target_link_libraries(ct_comm PUBLIC ct_core Threads::Threads)
# The nccl backend when cmake/cuda.cmake found NCCL, else its empty slot.
if(CT_HAVE_NCCL)
  target_sources(ct_comm PRIVATE ${CT_COMM_ROOT}/comm/nccl.c)
  target_include_directories(ct_comm PRIVATE ${CT_NCCL_INCLUDE} ${CUDAToolkit_INCLUDE_DIRS})
  target_link_libraries(ct_comm PRIVATE ${CT_NCCL_LIB} CUDA::cudart_static)
else()
  target_sources(ct_comm PRIVATE ${CT_COMM_ROOT}/comm/nccl_none.c)
endif()
if(CT_HAVE_MPI)
  target_sources(ct_comm PRIVATE ${CT_COMM_ROOT}/comm/mpi.c)
  target_compile_definitions(ct_comm PRIVATE CT_HAVE_MPI)
  # PRIVATE: comm.h does not include mpi.h; the static library still brings
  # MPI into every executable that links ct_comm.
  target_link_libraries(ct_comm PRIVATE MPI::MPI_C)
endif()

# ---- tests --------------------------------------------------------------------
# The unit test runs as one process (a singleton MPI world when built with
# MPI). Open MPI keeps allocations until exit, so under AddressSanitizer the
# leak check uses suppressions for its libraries, with full unwinding to see
# them (our own leaks still fail); intercept_tls_get_addr=0 as in the
# Makefile's test-asan (a tracer crash of GCC 12's runtime). mpirun passes
# the environment to the ranks it starts on this machine. Harmless in
# builds without ASan.
set(CT_COMM_TEST_DIR ${CT_COMM_ROOT}/tests/comm)
set(CT_COMM_MPI_ENV
  "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1"
  "ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:intercept_tls_get_addr=0"
  "LSAN_OPTIONS=suppressions=${CT_COMM_TEST_DIR}/lsan.supp")

add_executable(test_comm ${CT_COMM_TEST_DIR}/test_comm.c)
target_include_directories(test_comm PRIVATE ${CT_COMM_ROOT}/tests)
target_link_libraries(test_comm PRIVATE ct_comm)
add_test(NAME test_comm COMMAND test_comm)
set_tests_properties(test_comm PROPERTIES LABELS unit TIMEOUT 120 ENVIRONMENT "${CT_COMM_MPI_ENV}")

if(CT_HAVE_MPI)
  foreach(prog mpi_collectives mpi_failure)
    add_executable(${prog} ${CT_COMM_TEST_DIR}/${prog}.c)
    target_include_directories(${prog} PRIVATE ${CT_COMM_ROOT}/tests)
    target_link_libraries(${prog} PRIVATE ct_comm)
  endforeach()

  # name  ranks  dp  tp   (dp 0: world/tp)
  set(CT_COMM_LAYOUTS
    "np2_dp2 2 2 1" "np2_tp2 2 1 2"
    "np4_dp2_tp2 4 2 2" "np4_dp4 4 4 1" "np4_tp4 4 1 4" "np4_dpauto_tp2 4 0 2")
  foreach(layout ${CT_COMM_LAYOUTS})
    separate_arguments(args UNIX_COMMAND "${layout}")
    list(GET args 0 tag)
    list(GET args 1 np)
    list(GET args 2 dp)
    list(GET args 3 tp)
    add_test(NAME test_comm_mpi_${tag}
      COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe
              ${MPIEXEC_PREFLAGS} $<TARGET_FILE:mpi_collectives> ${MPIEXEC_POSTFLAGS} ${dp} ${tp})
    set_tests_properties(test_comm_mpi_${tag} PROPERTIES LABELS mpi TIMEOUT 300
      ENVIRONMENT "${CT_COMM_MPI_ENV}")
  endforeach()

  foreach(mode hang stop kill)
    add_test(NAME test_comm_mpi_fail_${mode}
      COMMAND bash ${CT_COMM_TEST_DIR}/run_failure.sh ${mode} ${MPIEXEC_EXECUTABLE}
              $<TARGET_FILE:mpi_failure> ${MPIEXEC_NUMPROC_FLAG})
    set_tests_properties(test_comm_mpi_fail_${mode} PROPERTIES LABELS mpi TIMEOUT 120
      ENVIRONMENT "${CT_COMM_MPI_ENV}")
  endforeach()

  # A rank stopped from outside is named by every other rank, and no other
  # rank is (np 2, and np 4 as dp 2 x tp 2, where some ranks wait for it
  # through a peer); a rank stopped and resumed blames no one. About 6 s each.
  # mode np tp k
  foreach(hang "stop 2 1 0" "stop 2 1 1" "stop 4 2 0" "stop 4 2 1" "stop 4 2 3" "suspend 2 1 1")
    separate_arguments(args UNIX_COMMAND "${hang}")
    string(REPLACE ";" "_" tag "${args}")
    add_test(NAME test_comm_mpi_hang_${tag}
      COMMAND bash ${CT_COMM_TEST_DIR}/run_hang.sh ${args} ${MPIEXEC_EXECUTABLE}
              $<TARGET_FILE:mpi_failure> ${MPIEXEC_NUMPROC_FLAG})
    set_tests_properties(test_comm_mpi_hang_${tag} PROPERTIES LABELS mpi TIMEOUT 120
      ENVIRONMENT "${CT_COMM_MPI_ENV}")
  endforeach()
endif()

# The nccl backend (label gpu, skipped without a device). Each mode is its own
# process: MPI cannot restart after finalize. `timeout` takes about 10 s.
if(CT_HAVE_NCCL)
  add_executable(test_nccl ${CT_COMM_TEST_DIR}/test_nccl.c)
  target_include_directories(test_nccl PRIVATE ${CT_COMM_ROOT}/tests ${CUDAToolkit_INCLUDE_DIRS})
  target_link_libraries(test_nccl PRIVATE ct_comm CUDA::cudart_static)
  foreach(mode backend device_groups timeout)
    add_test(NAME test_nccl_${mode} COMMAND test_nccl ${mode})
    set_tests_properties(test_nccl_${mode} PROPERTIES LABELS gpu TIMEOUT 300
      SKIP_RETURN_CODE 77 ENVIRONMENT "${CT_COMM_MPI_ENV}")
  endforeach()
endif()
