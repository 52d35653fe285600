# Script for the install_and_consume test: installs graft into a fresh prefix,
# checks that the installed bin/graft starts (RUNPATH), then builds and runs
# tests/consumer against the installed tree:
#   - CPU only (graft::graft), with g++ and with clang++: neither the consumer
#     nor libgraft.so needs a CUDA library (ldd, readelf -d), also when graft
#     was built with the CUDA backend; a shared libgraft then loads
#     libgraft_cuda on demand, so the consumer's CUDA line must not say that
#     the backend could not be loaded;
#   - with find_package(graft COMPONENTS cuda) and graft::cuda (g++), which
#     must fail at configure time, saying why, when graft has no CUDA backend.
# GRAFT_CUDA_BACKEND: none, shared or static (how graft was built).
# Also run by scripts/test.sh on the static CPU-only build.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
set(cuda_lib_regex "lib(cudart|cublas|cublasLt|cudnn)[^ \n;]*")

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

find_program(READELF readelf REQUIRED)
find_program(LDD ldd REQUIRED)
# The NEEDED entries of an ELF file, one per line.
function(needed file outvar)
  run("readelf -d ${file}" ${READELF} -d ${file})
  string(REGEX MATCHALL "\\(NEEDED\\)[^\n]*\\[[^]\n]+\\]" lines "${last_output}")
  set(names)
  foreach(line ${lines})
    string(REGEX REPLACE ".*\\[(.*)\\]" "\\1" name "${line}")
    list(APPEND names ${name})
  endforeach()
  set(${outvar} "${names}" PARENT_SCOPE)
endfunction()

run("cmake --install" ${CMAKE_COMMAND} --install ${GRAFT_BUILD_DIR} --prefix ${prefix})
if(EXISTS ${prefix}/bin/graft)
  # No LD_LIBRARY_PATH: the binary must find lib/libgraft.so through its RUNPATH.
  run("the installed bin/graft" ${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH ${prefix}/bin/graft info)
  message(STATUS "bin/graft info:\n${last_output}")
endif()

file(GLOB libgraft_so ${prefix}/lib*/libgraft.so)
if(libgraft_so)
  needed(${libgraft_so} libs)
  message(STATUS "libgraft.so NEEDED: ${libs}")
  if(libs MATCHES "${cuda_lib_regex}|libgraft_cuda")
    message(FATAL_ERROR "libgraft.so needs ${CMAKE_MATCH_0} (NEEDED: ${libs})")
  endif()
endif()
file(GLOB libgraft_cuda_so ${prefix}/lib*/libgraft_cuda.so)
if(GRAFT_CUDA_BACKEND STREQUAL "shared")
  if(NOT libgraft_cuda_so)
    message(FATAL_ERROR "libgraft_cuda.so was not installed")
  endif()
  needed(${libgraft_cuda_so} libs)
  message(STATUS "libgraft_cuda.so NEEDED: ${libs}")
  if(NOT libs MATCHES "libgraft\\.so")
    message(FATAL_ERROR "libgraft_cuda.so does not need libgraft.so (NEEDED: ${libs})")
  endif()
endif()

find_program(GXX g++)
find_program(CLANGXX clang++)
if(NOT GXX OR NOT CLANGXX)
  message(FATAL_ERROR "the consumer check needs both g++ and clang++ (apt-get install g++ clang)")
endif()

set(compilers ${GXX} ${CLANGXX})
if(GRAFT_SANITIZED)
  # A sanitized libgraft carries GCC's ASan runtime, which clang's cannot
  # share a process with; the sanitized build checks the g++ consumer only.
  set(compilers ${GXX})
  message(STATUS "clang++ consumer skipped: libgraft is built with GCC's sanitizers")
endif()
foreach(compiler ${compilers})
  get_filename_component(name ${compiler} NAME)
  set(build ${WORK_DIR}/build-${name})
  run("configuring the consumer with ${name}" ${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${build}
      -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${compiler})
  run("building the consumer with ${name}" ${CMAKE_COMMAND} --build ${build})
  run("the consumer built with ${name}" ${build}/consumer)
  set(output "${last_output}")
  message(STATUS "${name}: ${output}")
  # ldd: everything the CPU-only consumer loads, directly or through libgraft.
  run("ldd" ${LDD} ${build}/consumer)
  if(last_output MATCHES "${cuda_lib_regex}|libgraft_cuda")
    message(FATAL_ERROR "the CPU-only consumer needs ${CMAKE_MATCH_0}:\n${last_output}")
  endif()
  if(GRAFT_CUDA_BACKEND STREQUAL "shared" AND output MATCHES "cuda: [^\n]*(cannot load|built without)")
    message(FATAL_ERROR "libgraft did not load libgraft_cuda on demand:\n${output}")
  endif()
endforeach()

# find_package(graft COMPONENTS cuda) and graft::cuda.
set(build ${WORK_DIR}/build-cuda)
execute_process(COMMAND ${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${build}
  -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${GXX} -DCONSUMER_CUDA=ON
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(GRAFT_CUDA_BACKEND STREQUAL "none")
  if(NOT rc OR NOT out MATCHES "was built without[ \n]+the[ \n]+CUDA[ \n]+backend")
    message(FATAL_ERROR "find_package(graft COMPONENTS cuda) on a graft without CUDA did not fail clearly (${rc}):\n${out}")
  endif()
  message(STATUS "find_package(graft COMPONENTS cuda) fails as it should")
else()
  if(rc)
    message(FATAL_ERROR "configuring the CUDA consumer failed (${rc}):\n${out}")
  endif()
  run("building the CUDA consumer" ${CMAKE_COMMAND} --build ${build})
  needed(${build}/consumer libs)
  if(GRAFT_CUDA_BACKEND STREQUAL "shared" AND NOT libs MATCHES "libgraft_cuda\\.so")
    message(FATAL_ERROR "the graft::cuda consumer does not link libgraft_cuda (NEEDED: ${libs})")
  endif()
  run("the CUDA consumer" ${build}/consumer)
  message(STATUS "graft::cuda consumer (NEEDED: ${libs}): ${last_output}")
  if(last_output MATCHES "cuda: [^\n]*(cannot load|built without|does not link)")
    message(FATAL_ERROR "the graft::cuda consumer has no CUDA backend:\n${last_output}")
  endif()
endif()
