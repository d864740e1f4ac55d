# Finds OpenBLAS's OpenMP build for dann's BLAS path and defines the imported
# target dann::openblas. Used by dann's own build and, when dann was built
# with it, by the installed dannConfig.cmake (for libdann.a's users).
#
#   dann_find_openblas(<AUTO|ON|OFF> <result variable>)
#
# Debian keeps each OpenBLAS variant in its own folders,
# <libdir>/openblas-openmp/libopenblas.so and
# /usr/include/<multiarch>/openblas-openmp/cblas.h (the plain libdir names are
# alternatives symlinks to one of the variants): the OpenMP ones are searched
# first. DANN_OPENBLAS_LIBRARY and DANN_OPENBLAS_INCLUDE_DIR (cache) point
# elsewhere; the library must then be an OpenMP build on libgomp.

function(dann_find_openblas mode result)
  string(TOUPPER "${mode}" mode)
  if(mode MATCHES "^(OFF|NO|FALSE|0|N)$")
    set(${result} OFF PARENT_SCOPE)
    return()
  endif()
  if(NOT mode MATCHES "^(AUTO|ON|YES|TRUE|1|Y)$")
    message(FATAL_ERROR "DANN_WITH_OPENBLAS=${mode}: expected AUTO, ON or OFF")
  endif()
  set(arch_dirs)
  if(CMAKE_LIBRARY_ARCHITECTURE)
    list(APPEND arch_dirs ${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp)
  endif()
  list(APPEND arch_dirs openblas-openmp)
  # openblas_config.h, not cblas.h: other BLAS ship a cblas.h too.
  find_path(DANN_OPENBLAS_INCLUDE_DIR openblas_config.h
    HINTS /usr/include /usr/local/include
    PATH_SUFFIXES ${arch_dirs} NO_DEFAULT_PATH)
  find_path(DANN_OPENBLAS_INCLUDE_DIR openblas_config.h PATH_SUFFIXES openblas)
  find_library(DANN_OPENBLAS_LIBRARY openblas
    HINTS /usr/lib /usr/local/lib
    PATH_SUFFIXES ${arch_dirs} NO_DEFAULT_PATH)
  find_library(DANN_OPENBLAS_LIBRARY openblas)
  if(NOT DANN_OPENBLAS_INCLUDE_DIR OR NOT DANN_OPENBLAS_LIBRARY)
    if(mode STREQUAL "AUTO")
      set(${result} OFF PARENT_SCOPE)
      return()
    endif()
    message(FATAL_ERROR "DANN_WITH_OPENBLAS=ON but OpenBLAS (OpenMP build) was not found "
                        "(Debian: apt-get install libopenblas-openmp-dev; or set "
                        "DANN_OPENBLAS_LIBRARY and DANN_OPENBLAS_INCLUDE_DIR)")
  endif()
  if(NOT DANN_OPENBLAS_LIBRARY MATCHES "openmp")
    message(STATUS "dann: ${DANN_OPENBLAS_LIBRARY} is not in an openblas-openmp folder; "
                   "it must be OpenBLAS's OpenMP build (libgomp), or its threads and oneDNN's will compete")
  endif()
  if(NOT TARGET dann::openblas)
    add_library(dann::openblas UNKNOWN IMPORTED)
    set_target_properties(dann::openblas PROPERTIES
      IMPORTED_LOCATION "${DANN_OPENBLAS_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${DANN_OPENBLAS_INCLUDE_DIR}")
  endif()
  set(${result} ON PARENT_SCOPE)
endfunction()
