# The CUDA path (kernels/cuda/, comm/'s nccl backend). Included from the top
# CMakeLists.txt before the libraries. Defines:
#   CT_CUDA        AUTO (default: CUDA when nvcc is found), ON (required), OFF
#   CT_HAVE_CUDA   ON when kernels/cuda/ is built
#   CT_HAVE_CUDNN  ON when cuDNN and the cudnn-frontend headers are found
#   CT_HAVE_NCCL   ON when NCCL is found (comm/nccl.c is built)
#   CT_CUDA_LIBS   what ct_kernels links for CUDA
# Architectures: CMAKE_CUDA_ARCHITECTURES, 80;90 unless set (e.g.
# -DCMAKE_CUDA_ARCHITECTURES=100 or native; native fails at configure time
# on a machine without a GPU). CUDA 13 compiles for sm_75 and newer only.
# The CUDA runtime is linked statically (CUDA::cudart_static), which loads
# the driver (libcuda.so.1) at run time, so binaries start on machines
# without a GPU or driver and take the CPU path. Never link CUDA::cuda_driver.
# cuDNN and NCCL have no CMake packages: found with find_library under
# CUDNN_ROOT / NCCL_ROOT (CMake or environment variables; e.g. the
# nvidia/cudnn and nvidia/nccl folders of a Python environment) and the
# toolkit's library directory. The cudnn-frontend headers (header-only C++,
# pip package nvidia-cudnn-frontend) are found under CUDNN_FRONTEND_ROOT or
# Python's site-packages.

set(CT_CUDA AUTO CACHE STRING "build the CUDA path: AUTO (if nvcc is found), ON (required) or OFF")
set_property(CACHE CT_CUDA PROPERTY STRINGS AUTO ON OFF)
set(CT_HAVE_CUDA OFF)
set(CT_HAVE_CUDNN OFF)
set(CT_HAVE_NCCL OFF)
if(NOT CT_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "CT_CUDA must be AUTO, ON or OFF, got '${CT_CUDA}'")
endif()
if(NOT CT_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(CT_HAVE_CUDA ON)
  elseif(CT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "CT_CUDA=ON but no CUDA compiler was found (put nvcc on PATH or set "
                        "CMAKE_CUDA_COMPILER)")
  endif()
endif()

if(CT_HAVE_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
    set(CMAKE_CUDA_ARCHITECTURES 80 90)
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_package(CUDAToolkit REQUIRED)
  set(CMAKE_CUDA_FLAGS_RELEASE "-O3")
  set(CT_CUDA_LIBS CUDA::cudart_static CUDA::cublasLt)

  # cuDNN (library + headers) and the cudnn-frontend headers
  set(CT_CUDNN_HINTS ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_LIBRARY_ROOT}
      ${CUDAToolkit_LIBRARY_DIR}/.. ${CUDAToolkit_TARGET_DIR})
  find_library(CT_CUDNN_LIB NAMES cudnn libcudnn.so.9 NAMES_PER_DIR HINTS ${CT_CUDNN_HINTS}
    PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu)
  find_path(CT_CUDNN_INCLUDE cudnn.h HINTS ${CT_CUDNN_HINTS} PATH_SUFFIXES include)
  execute_process(COMMAND python3 -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    OUTPUT_VARIABLE CT_PY_SITE OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  find_path(CT_CUDNN_FE_INCLUDE cudnn_frontend.h
    HINTS ${CUDNN_FRONTEND_ROOT} $ENV{CUDNN_FRONTEND_ROOT} ${CT_PY_SITE}
    PATH_SUFFIXES include)
  if(CT_CUDNN_LIB AND CT_CUDNN_INCLUDE AND CT_CUDNN_FE_INCLUDE)
    set(CT_HAVE_CUDNN ON)
    # the frontend's runtime-compiled engines call NVRTC
    list(APPEND CT_CUDA_LIBS ${CT_CUDNN_LIB} CUDA::nvrtc)
  endif()

  # NCCL
  find_library(CT_NCCL_LIB NAMES nccl libnccl.so.2 NAMES_PER_DIR
    HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_LIBRARY_DIR}
    PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu)
  find_path(CT_NCCL_INCLUDE nccl.h HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_INCLUDE_DIRS}
    PATH_SUFFIXES include)
  if(CT_NCCL_LIB AND CT_NCCL_INCLUDE)
    set(CT_HAVE_NCCL ON)
  endif()
  message(STATUS "CUDA: ON (CT_CUDA=${CT_CUDA}), nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES}")
  message(STATUS "cuDNN attention: ${CT_HAVE_CUDNN} (lib ${CT_CUDNN_LIB}, frontend ${CT_CUDNN_FE_INCLUDE})")
  message(STATUS "NCCL: ${CT_HAVE_NCCL} (${CT_NCCL_LIB})")
else()
  message(STATUS "CUDA: OFF (CT_CUDA=${CT_CUDA}); the CPU path only")
endif()

# Adds the CUDA sources to ct_kernels (called after it is defined).
function(ct_kernels_add_cuda target)
  file(GLOB cu CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/cuda/*.cu)
  if(CT_HAVE_CUDNN)
    list(FILTER cu EXCLUDE REGEX "attention_nocudnn\\.cu$")
  else()
    list(FILTER cu EXCLUDE REGEX "attention_cudnn\\.cu$")
  endif()
  target_sources(${target} PRIVATE ${cu})
  target_include_directories(${target} PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
  if(CT_HAVE_CUDNN)
    set_source_files_properties(${CMAKE_SOURCE_DIR}/kernels/cuda/attention_cudnn.cu
      PROPERTIES INCLUDE_DIRECTORIES "${CT_CUDNN_INCLUDE};${CT_CUDNN_FE_INCLUDE}")
  endif()
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall>)
  target_link_libraries(${target} PUBLIC ${CT_CUDA_LIBS})
  target_compile_definitions(${target} PUBLIC CT_HAVE_CUDA)
endfunction()
