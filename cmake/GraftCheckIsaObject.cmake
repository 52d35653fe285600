# Build-time check of the localized ISA object (CMakeLists.txt, "the CPU GEMM
# for AVX-512"): its only defined global symbols must be the graft_gemm_*
# entry points. Anything else would let the final link mix its code with the
# baseline's. Usage: cmake -DNM=nm -DOBJECT=file.o -P GraftCheckIsaObject.cmake
execute_process(COMMAND ${NM} --defined-only --extern-only ${OBJECT}
  OUTPUT_VARIABLE symbols RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} failed on ${OBJECT}")
endif()
string(REPLACE "\n" ";" lines "${symbols}")
foreach(line IN LISTS lines)
  if(line STREQUAL "")
    continue()
  endif()
  if(NOT line MATCHES " graft_gemm_[a-z0-9_]+_avx512$")
    message(FATAL_ERROR "${OBJECT} still exports a global symbol: ${line}")
  endif()
endforeach()
