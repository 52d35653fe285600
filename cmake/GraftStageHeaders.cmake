# Copies graft's public headers into DEST_DIR (the build's include/graft/),
# rewriting graft's own includes from "core/tensor.h" to <graft/core/tensor.h>.
# In the source tree the headers keep their short form (the repository root is
# on the include path); an installed or staged tree has only include/ on the
# path, so a consumer's own "core/..." or "io/..." files cannot clash with
# graft's. Run as a script: cmake -DSOURCE_DIR=... -DDEST_DIR=... -P this.
cmake_minimum_required(VERSION 3.25)
set(dirs core nn optim io data train dist)
set(regex "#include \"((core|nn|optim|io|data|train|dist)/[^\"]+)\"")

set(wanted)
foreach(dir ${dirs})
  file(GLOB_RECURSE headers RELATIVE ${SOURCE_DIR} ${SOURCE_DIR}/${dir}/*.h)
  list(APPEND wanted ${headers})
endforeach()
# The umbrella header (core/cuda.h, the CUDA interface, is one of core/*.h).
list(APPEND wanted graft.h)

foreach(rel ${wanted})
  file(READ ${SOURCE_DIR}/${rel} text)
  string(REGEX REPLACE "${regex}" "#include <graft/\\1>" text "${text}")
  set(out ${DEST_DIR}/${rel})
  set(old "")
  if(EXISTS ${out})
    file(READ ${out} old)
  endif()
  if(NOT old STREQUAL text)  # leave unchanged files alone (timestamps)
    file(WRITE ${out} "${text}")
  endif()
endforeach()

# Drop headers that no longer exist in the source tree.
file(GLOB_RECURSE staged RELATIVE ${DEST_DIR} ${DEST_DIR}/*.h)
foreach(rel ${staged})
  if(NOT rel IN_LIST wanted)
    file(REMOVE ${DEST_DIR}/${rel})
  endif()
endforeach()
