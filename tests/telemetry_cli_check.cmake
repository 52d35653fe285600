# Script for the cli_telemetry test: `graft train --telemetry 2` on a small
# ImageFolder writes telemetry.csv (long format) and telemetry.svg into --out.
# The values themselves are checked against torch in tests/test_research.cpp.
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${GRAFT_CLI} train --arch resnet18 --data ${DATA} --image-size 32
                        --epochs 1 --batch-size 12 --telemetry 2 --out ${WORK_DIR} --quiet
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc)
  message(FATAL_ERROR "graft train --telemetry failed (rc ${rc}):\n${out}${err}")
endif()
if(NOT EXISTS ${WORK_DIR}/telemetry.svg)
  message(FATAL_ERROR "no telemetry.svg in ${WORK_DIR}")
endif()
file(STRINGS ${WORK_DIR}/telemetry.csv rows)
list(GET rows 0 header)
if(NOT header STREQUAL "step,kind,name,metric,value")
  message(FATAL_ERROR "telemetry.csv header is '${header}'")
endif()
# 36 images / batch 12 = 3 steps, sampled every 2: steps 1 and 3.
set(num "-?[0-9.]+(e[-+][0-9]+)?")
foreach(want "1,group,group0,grad_norm,${num}" "3,group,group0,update_ratio,${num}"
             "1,layer,layer1.0.conv1,act_std,${num}" "3,layer,relu,act_zero_frac,${num}")
  set(found OFF)
  foreach(row ${rows})
    if(row MATCHES "^${want}$")
      set(found ON)
    endif()
  endforeach()
  if(NOT found)
    message(FATAL_ERROR "telemetry.csv has no row matching ${want}")
  endif()
endforeach()
foreach(row ${rows})
  if(row MATCHES "^2,")
    message(FATAL_ERROR "step 2 is not a sampled step but telemetry.csv has: ${row}")
  endif()
endforeach()
