// A process group over MPI for data-parallel training (issue 17).
//
// Rank and world size come from the launcher: `mpirun -np 4 -H a,b graft
// train ...` sets OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK} (MPICH/PMI: PMI_RANK,
// PMI_SIZE), which launch_info() reads without initialising MPI.
//
// Every collective is issued non-blocking and completed by polling MPI_Test
// against a deadline, so a dead or stuck peer becomes a graft::Error naming
// the rank and the operation after `timeout` seconds, never a hang. After
// such an error (or any error while more than one rank runs), the process
// must not call MPI_Finalize (it would wait for the dead peer): finish()
// aborts the job instead, and mpirun ends every rank with a non-zero status.
//
// Built without MPI (GRAFT_MPI=OFF, or no libopenmpi-dev), launch_info()
// still works and ProcessGroup::world() throws a clear error.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace graft::dist {

struct LaunchInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  bool launched = false;  // an MPI launcher's variables are set
  std::string launcher;   // "OpenMPI", "PMI" or ""
};

// What the launcher says (environment only; MPI is not initialised).
LaunchInfo launch_info();

// Whether graft was built with MPI (GRAFT_MPI).
bool mpi_compiled();

enum class ReduceOp { Sum, Mean };

// A pending non-blocking collective. wait() completes it (polling against the
// group's deadline); a Mean all-reduce divides after completion.
class Work {
 public:
  virtual ~Work() = default;
  virtual bool test() = 0;  // drives progress; true once complete
  virtual void wait() = 0;
  double start_seconds = 0;  // dist::now() when the collective was issued
  double end_seconds = 0;    // when wait()/test() saw it complete
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  // The world group, initialising MPI on first use. Throws when graft was
  // built without MPI.
  static ProcessGroup& world();
  // Whether world() was initialised in this process.
  static bool initialized();

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Seconds a collective may wait for its peers (default 300, or
  // $GRAFT_DIST_TIMEOUT).
  virtual void set_timeout(double seconds) = 0;
  virtual double timeout() const = 0;

  // In place, on contiguous CPU tensors (float32, float64, int64 for
  // broadcast/all-gather; float32/float64 for all-reduce).
  virtual void broadcast(Tensor& t, int root) = 0;
  virtual void all_reduce(Tensor& t, ReduceOp op) = 0;
  virtual std::unique_ptr<Work> all_reduce_async(Tensor t, ReduceOp op) = 0;
  // [size(), ...t.shape]: every rank's `t` (same shape and dtype on every rank).
  virtual Tensor all_gather(const Tensor& t) = 0;
  virtual void barrier() = 0;

  // Ends MPI at exit: MPI_Finalize when `clean`, else MPI_Abort(1), which
  // makes mpirun stop every rank (a peer may be waiting on us).
  virtual void finish(bool clean) = 0;
};

// Whether the process may end MPI with MPI_Finalize at exit (set once the
// run completed on this rank); otherwise exit aborts the whole job.
void set_clean_exit(bool clean);

// Seconds on a monotonic clock (for the overlap timestamps).
double now();

}  // namespace graft::dist
