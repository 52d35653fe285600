# Script for the install_and_consume test: installs graft into a fresh prefix,
# checks that the installed bin/graft starts (RUNPATH), then builds and runs
# tests/consumer against the installed tree with g++ and with clang++, and
# checks that the CPU-only consumer needs no CUDA library (when libgraft was
# built without the CUDA backend: GRAFT_WITH_CUDA).
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run("cmake --install" ${CMAKE_COMMAND} --install ${GRAFT_BUILD_DIR} --prefix ${prefix})
if(EXISTS ${prefix}/bin/graft)
  # No LD_LIBRARY_PATH: the binary must find lib/libgraft.so through its RUNPATH.
  run("the installed bin/graft" ${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH ${prefix}/bin/graft info)
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
  message(STATUS "${name}: ${last_output}")
  find_program(LDD ldd)
  if(GRAFT_WITH_CUDA)
    # The CUDA backend still links into libgraft itself (a separate graft::cuda
    # library is not written yet), so only a CPU-only build can pass this check.
    message(STATUS "ldd check skipped: this libgraft was built with the CUDA backend")
  elseif(LDD)
    run("ldd" ${LDD} ${build}/consumer)
    if(last_output MATCHES "lib(cudart|cublas|cublasLt|cudnn)[^ ]*")
      message(FATAL_ERROR "the CPU-only consumer needs ${CMAKE_MATCH_0}:\n${last_output}")
    endif()
  endif()
endforeach()
