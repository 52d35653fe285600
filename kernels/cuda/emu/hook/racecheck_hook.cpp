// racecheck builds only (-DGRAFT_SANITIZE=thread with -DGRAFT_CUDA=EMULATE):
// compiled into every program that links libgraft (an INTERFACE source of the
// graft target). ThreadSanitizer calls its weak __tsan_on_report after each
// report; only a definition in the program itself overrides it, because the
// sanitizer runtime is loaded before libgraft.
#include <cuda_runtime.h>

extern "C" void __tsan_on_report(const void* /*report*/) {
  graft::cuda::emu::racecheck_on_report();
}
