# CMake toolchain file: Linux on 64-bit ARM (AArch64), cross-compiled on a
# Debian 12 x86-64 host with Debian's GNU cross compilers.
#
#   apt-get install g++-aarch64-linux-gnu qemu-user
#   platform/fetch-arm64-sysroot.sh
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=platform/aarch64-linux-gnu.cmake
#   (or: cmake --preset aarch64)
#
# Headers and libraries of the C/C++ runtime come from the cross toolchain
# (/usr/aarch64-linux-gnu); oneDNN, OpenBLAS, zlib and doctest from a sysroot folder of
# unpacked Debian arm64 packages (platform/fetch-arm64-sysroot.sh):
# DANN_ARM64_SYSROOT (cache variable or environment), default
# build-sysroot-arm64/ in the source tree. Programs run under
# `qemu-aarch64 -L <sysroot>` (CMAKE_CROSSCOMPILING_EMULATOR), so ctest and
# doctest_discover_tests work on the host.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(DANN_ARM64_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${DANN_ARM64_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${DANN_ARM64_TRIPLE}-g++)

if(NOT DANN_ARM64_SYSROOT)
  if(DEFINED ENV{DANN_ARM64_SYSROOT} AND NOT "$ENV{DANN_ARM64_SYSROOT}" STREQUAL "")
    set(DANN_ARM64_SYSROOT "$ENV{DANN_ARM64_SYSROOT}")
  else()
    get_filename_component(DANN_ARM64_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../build-sysroot-arm64" ABSOLUTE)
  endif()
endif()
get_filename_component(DANN_ARM64_SYSROOT "${DANN_ARM64_SYSROOT}" ABSOLUTE)
set(DANN_ARM64_SYSROOT "${DANN_ARM64_SYSROOT}" CACHE PATH
    "Unpacked Debian arm64 packages (platform/fetch-arm64-sysroot.sh)")
# try_compile projects re-read this file: hand them the same sysroot.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES DANN_ARM64_SYSROOT)

if(NOT EXISTS "${DANN_ARM64_SYSROOT}/usr/lib/${DANN_ARM64_TRIPLE}/cmake/dnnl/dnnl-config.cmake")
  message(FATAL_ERROR "No arm64 oneDNN in DANN_ARM64_SYSROOT=${DANN_ARM64_SYSROOT}: "
                      "run platform/fetch-arm64-sysroot.sh \"${DANN_ARM64_SYSROOT}\"")
endif()

# Search the cross toolchain's tree and the sysroot for libraries, headers and
# packages; programs (cmake, the compilers) come from the host. No
# CMAKE_SYSROOT: the compilers keep their own arm64 C/C++ runtime.
set(CMAKE_FIND_ROOT_PATH /usr/${DANN_ARM64_TRIPLE} "${DANN_ARM64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_LIBRARY_ARCHITECTURE ${DANN_ARM64_TRIPLE})

# The cross linker finds what libdnnl.so.2 needs (libgomp, libstdc++) in the
# toolchain's folders; -rpath-link adds the sysroot's, for libraries that only
# the sysroot has.
set(CMAKE_EXE_LINKER_FLAGS_INIT
    "-Wl,-rpath-link,${DANN_ARM64_SYSROOT}/usr/lib/${DANN_ARM64_TRIPLE}:${DANN_ARM64_SYSROOT}/lib/${DANN_ARM64_TRIPLE}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${CMAKE_EXE_LINKER_FLAGS_INIT}")

# On the board these are the system's library folders: no RPATH entries that
# point at the build host's sysroot (and no clash between the sysroot's
# libgomp.so.1 and the cross compiler's). OpenBLAS is linked from its
# openblas-openmp folder and found at run time as libopenblas.so.0 through
# the alternatives link in the library folder (made by the fetch script in
# the sysroot, by dpkg on a board).
list(APPEND CMAKE_PLATFORM_IMPLICIT_LINK_DIRECTORIES
     "${DANN_ARM64_SYSROOT}/usr/lib/${DANN_ARM64_TRIPLE}" "${DANN_ARM64_SYSROOT}/lib/${DANN_ARM64_TRIPLE}"
     "${DANN_ARM64_SYSROOT}/usr/lib/${DANN_ARM64_TRIPLE}/openblas-openmp")

# NEON-only cores (most boards) get oneDNN 2.6's reference kernels for
# convolution and inner product; dann then runs them through OpenBLAS, which
# the sysroot provides: required here unless the cache says otherwise.
set(DANN_WITH_OPENBLAS ON CACHE STRING "Use OpenBLAS where oneDNN runs reference kernels: AUTO, ON or OFF")

# qemu-user runs the test programs: the sysroot holds Debian's arm64 loader,
# libc, libstdc++, libgomp, zlib and oneDNN, as a Debian 12 board would.
# QEMU_CPU (environment) picks the emulated core, e.g. neoverse-n1.
find_program(DANN_QEMU_AARCH64 qemu-aarch64)
if(DANN_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${DANN_QEMU_AARCH64};-L;${DANN_ARM64_SYSROOT}")
elseif(NOT CMAKE_IN_TRY_COMPILE)
  message(WARNING "qemu-aarch64 not found (apt-get install qemu-user): the tests cannot run here, "
                  "and listing them fails the build; without qemu configure with -DDANN_BUILD_TESTS=OFF")
endif()
