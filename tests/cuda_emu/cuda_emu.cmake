# ctrain's CUDA emulator (tests/cuda_emu): kernels/cuda/*.cu compiled as host
# C++ with emu.h, a host-memory CUDA runtime and a reference cuBLASLt, so
# that CI (no GPU) executes the hand-written kernels and the GPU model's
# dataflow against the CPU references. cuDNN attention is not emulated (the
# plain attention stands in). Included from tests/CMakeLists.txt when the
# CUDA toolkit's headers are available. Tests (label unit):
#   test_cuda_ops_emu   tests/kernels/test_cuda_ops.c on the emulator
#   test_gpu_model_emu  tests/trainer/test_gpu_model.c, small shapes
#   test_llama_gpu_model_emu  tests/trainer/test_llama_gpu_model.c, the same for Llama
#   test_plan_gpu_emu   tests/trainer/test_plan_gpu.c: the memory plan against
#                       the emulated device's peak, to the byte
enable_language(CXX)
find_package(Python3 REQUIRED COMPONENTS Interpreter)
set(CT_EMU_DIR ${CMAKE_SOURCE_DIR}/tests/cuda_emu)
set(CT_EMU_CU encoder layernorm residual gelu xent convert adamw attention attention_flash
    matmul device attention_nocudnn rmsnorm rope swiglu attention_gqa)
set(CT_EMU_SRC)
foreach(f ${CT_EMU_CU})
  set(in ${CMAKE_SOURCE_DIR}/kernels/cuda/${f}.cu)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/cuda_emu/${f}.cpp)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/cuda_emu
    COMMAND ${Python3_EXECUTABLE} ${CT_EMU_DIR}/translate.py ${in} ${out}
    DEPENDS ${in} ${CT_EMU_DIR}/translate.py VERBATIM)
  list(APPEND CT_EMU_SRC ${out})
endforeach()
add_library(ct_kernels_emu STATIC ${CT_EMU_SRC} ${CT_EMU_DIR}/emu_runtime.cpp
            ${CT_EMU_DIR}/emu_cublaslt.cpp)
target_include_directories(ct_kernels_emu BEFORE PRIVATE ${CT_EMU_DIR}/include ${CT_EMU_DIR})
target_include_directories(ct_kernels_emu PRIVATE ${CMAKE_SOURCE_DIR} ${CUDAToolkit_INCLUDE_DIRS})
target_compile_options(ct_kernels_emu PRIVATE -std=c++20 -O2 -include ${CT_EMU_DIR}/emu.h
                       -Wno-unused-parameter -Wno-deprecated-declarations)
target_link_libraries(ct_kernels_emu PUBLIC ct_core Threads::Threads)

# The CPU kernels again, without the real CUDA objects of ct_kernels.
file(GLOB CT_EMU_CPU_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/cpu/*.c)
list(FILTER CT_EMU_CPU_SRC EXCLUDE REGEX "nocuda\\.c$")
add_library(ct_kernels_cpu_emu STATIC ${CT_EMU_CPU_SRC})
target_include_directories(ct_kernels_cpu_emu PRIVATE ${CBLAS_INCLUDE})
target_link_libraries(ct_kernels_cpu_emu PUBLIC ct_kernels_emu ct_core OpenMP::OpenMP_C
                      ${OPENBLAS_LIB})

add_executable(test_cuda_ops_emu ${CMAKE_SOURCE_DIR}/tests/kernels/test_cuda_ops.c)
target_include_directories(test_cuda_ops_emu PRIVATE ${CMAKE_SOURCE_DIR}/tests)
target_compile_definitions(test_cuda_ops_emu PRIVATE CT_TEST_EMU)
target_link_libraries(test_cuda_ops_emu PRIVATE ct_kernels_cpu_emu ct_kernels_emu stdc++)
set_target_properties(test_cuda_ops_emu PROPERTIES LINKER_LANGUAGE CXX)
add_test(NAME test_cuda_ops_emu COMMAND test_cuda_ops_emu)
set_tests_properties(test_cuda_ops_emu PROPERTIES LABELS unit TIMEOUT 900
  ENVIRONMENT "OMP_NUM_THREADS=2")

# model/ with its cuda backend, on the emulated kernels.
file(GLOB CT_EMU_MODEL_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/model/*.c)
list(FILTER CT_EMU_MODEL_SRC EXCLUDE REGEX "model/[a-z0-9]+_nocuda\\.c$")

add_executable(test_gpu_model_emu ${CMAKE_SOURCE_DIR}/tests/trainer/test_gpu_model.c
  ${CT_EMU_MODEL_SRC})
target_include_directories(test_gpu_model_emu PRIVATE ${CMAKE_SOURCE_DIR}/tests)
target_compile_definitions(test_gpu_model_emu PRIVATE CT_TEST_EMU)
target_link_libraries(test_gpu_model_emu PRIVATE ct_kernels_cpu_emu ct_kernels_emu ct_comm
                      ct_core m stdc++)
set_target_properties(test_gpu_model_emu PROPERTIES LINKER_LANGUAGE CXX)
add_test(NAME test_gpu_model_emu COMMAND test_gpu_model_emu)
set_tests_properties(test_gpu_model_emu PROPERTIES LABELS unit TIMEOUT 900
  ENVIRONMENT "OMP_NUM_THREADS=2")

add_executable(test_llama_gpu_model_emu ${CMAKE_SOURCE_DIR}/tests/trainer/test_llama_gpu_model.c
  ${CT_EMU_MODEL_SRC})
target_include_directories(test_llama_gpu_model_emu PRIVATE ${CMAKE_SOURCE_DIR}/tests)
target_compile_definitions(test_llama_gpu_model_emu PRIVATE CT_TEST_EMU)
target_link_libraries(test_llama_gpu_model_emu PRIVATE ct_kernels_cpu_emu ct_kernels_emu ct_comm
                      ct_core m stdc++)
set_target_properties(test_llama_gpu_model_emu PROPERTIES LINKER_LANGUAGE CXX)
add_test(NAME test_llama_gpu_model_emu COMMAND test_llama_gpu_model_emu)
set_tests_properties(test_llama_gpu_model_emu PROPERTIES LABELS unit TIMEOUT 900
  ENVIRONMENT "OMP_NUM_THREADS=2")

add_executable(test_plan_gpu_emu ${CMAKE_SOURCE_DIR}/tests/trainer/test_plan_gpu.c
  ${CT_EMU_MODEL_SRC})
target_include_directories(test_plan_gpu_emu PRIVATE ${CMAKE_SOURCE_DIR}/tests)
target_compile_definitions(test_plan_gpu_emu PRIVATE CT_TEST_EMU)
target_link_libraries(test_plan_gpu_emu PRIVATE ct_kernels_cpu_emu ct_kernels_emu ct_comm
                      ct_core m stdc++)
set_target_properties(test_plan_gpu_emu PROPERTIES LINKER_LANGUAGE CXX)
add_test(NAME test_plan_gpu_emu COMMAND test_plan_gpu_emu)
set_tests_properties(test_plan_gpu_emu PROPERTIES LABELS unit TIMEOUT 300
  ENVIRONMENT "OMP_NUM_THREADS=2")

# comm/ with its real nccl backend on the emulated NCCL (MPI underneath), so
# the GPU path's data parallelism runs under mpirun without GPUs.
if(CT_HAVE_MPI)
  add_library(ct_comm_emu STATIC ${CMAKE_SOURCE_DIR}/comm/comm.c ${CMAKE_SOURCE_DIR}/comm/local.c
              ${CMAKE_SOURCE_DIR}/comm/mpi.c ${CMAKE_SOURCE_DIR}/comm/nccl.c
              ${CMAKE_SOURCE_DIR}/comm/sidechannel.c
              ${CT_EMU_DIR}/emu_nccl.cpp)
  target_include_directories(ct_comm_emu BEFORE PRIVATE ${CT_EMU_DIR}/include)
  target_include_directories(ct_comm_emu PRIVATE ${CMAKE_SOURCE_DIR} ${CUDAToolkit_INCLUDE_DIRS})
  target_compile_definitions(ct_comm_emu PRIVATE CT_HAVE_MPI)
  target_compile_options(ct_comm_emu PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-std=c++20>)
  target_link_libraries(ct_comm_emu PUBLIC ct_core ct_kernels_emu Threads::Threads MPI::MPI_C)
  set(CT_EMU_COMM ct_comm_emu)
else()
  set(CT_EMU_COMM ct_comm)
endif()

# The whole ctrain binary on the emulated device: train.c's GPU wiring
# (device choice, checkpoints from the device, resume onto it, evaluation,
# sampling) end to end, by tests/cuda_emu/test_train_emu.sh.
file(GLOB CT_EMU_TRAINER_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/trainer/*.c
     ${CMAKE_SOURCE_DIR}/cli/*.c)
add_executable(ctrain_emu ${CT_EMU_TRAINER_SRC} ${CT_EMU_MODEL_SRC})
target_link_libraries(ctrain_emu PRIVATE ct_kernels_cpu_emu ct_kernels_emu ct_data ${CT_EMU_COMM} ct_core
                      ZLIB::ZLIB m stdc++)
set_target_properties(ctrain_emu PROPERTIES LINKER_LANGUAGE CXX)
add_test(NAME test_train_emu
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cuda_emu/test_train_emu.sh $<TARGET_FILE:ctrain_emu>)
set_tests_properties(test_train_emu PROPERTIES LABELS integration TIMEOUT 900
  ENVIRONMENT "CT_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp;OMP_NUM_THREADS=2;CT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
add_test(NAME test_llama_train_emu
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cuda_emu/test_llama_train_emu.sh $<TARGET_FILE:ctrain_emu>)
set_tests_properties(test_llama_train_emu PROPERTIES LABELS integration TIMEOUT 900
  ENVIRONMENT "CT_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp;OMP_NUM_THREADS=2;CT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
if(CT_HAVE_MPI)
  add_test(NAME test_parallel_emu
    COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cuda_emu/test_parallel_emu.sh $<TARGET_FILE:ctrain_emu>)
  set_tests_properties(test_parallel_emu PROPERTIES LABELS mpi TIMEOUT 900
    ENVIRONMENT "CT_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp;OMP_NUM_THREADS=1;CT_SOURCE_DIR=${CMAKE_SOURCE_DIR};MPIEXEC=${MPIEXEC_EXECUTABLE}")
  add_test(NAME test_llama_parallel_emu
    COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cuda_emu/test_llama_parallel_emu.sh $<TARGET_FILE:ctrain_emu>)
  set_tests_properties(test_llama_parallel_emu PROPERTIES LABELS mpi TIMEOUT 900
    ENVIRONMENT "CT_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp;OMP_NUM_THREADS=1;CT_SOURCE_DIR=${CMAKE_SOURCE_DIR};MPIEXEC=${MPIEXEC_EXECUTABLE}")
endif()
