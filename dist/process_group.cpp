#include "dist/process_group.h"

#include <chrono>
#include <cstdlib>
#include <thread>

#include "core/autograd.h"
#include "core/env.h"
#include "core/error.h"
#include "core/ops.h"

#ifdef GRAFT_HAVE_MPI
#include <mpi.h>
#endif

namespace graft::dist {

namespace {

int env_int32(const char* name, int fallback) {
  const int64_t v = env_int(name, fallback);
  GRAFT_CHECK(v >= INT32_MIN && v <= INT32_MAX, "environment variable ", name, "=", v,
              " is out of range");
  return static_cast<int>(v);
}

}  // namespace

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

LaunchInfo launch_info() {
  LaunchInfo li;
  if (env_set("OMPI_COMM_WORLD_SIZE")) {
    li.launched = true;
    li.launcher = "OpenMPI";
    li.world_size = env_int32("OMPI_COMM_WORLD_SIZE", 1);
    li.rank = env_int32("OMPI_COMM_WORLD_RANK", 0);
    li.local_rank = env_int32("OMPI_COMM_WORLD_LOCAL_RANK", 0);
  } else if (env_set("PMI_SIZE")) {
    li.launched = true;
    li.launcher = "PMI";
    li.world_size = env_int32("PMI_SIZE", 1);
    li.rank = env_int32("PMI_RANK", 0);
    li.local_rank = env_int32("MPI_LOCALRANKID", 0);
  }
  GRAFT_CHECK(li.world_size >= 1 && li.rank >= 0 && li.rank < li.world_size,
              "the MPI launcher's environment is inconsistent: rank ", li.rank, " of world size ",
              li.world_size);
  return li;
}

#ifndef GRAFT_HAVE_MPI

bool mpi_compiled() { return false; }
bool ProcessGroup::initialized() { return false; }
void set_clean_exit(bool) {}
ProcessGroup& ProcessGroup::world() {
  GRAFT_FAIL(
      "distributed training needs MPI, and this graft was built without it (GRAFT_MPI=OFF or no "
      "MPI found at build time): install libopenmpi-dev openmpi-bin and rebuild");
}

#else

bool mpi_compiled() { return true; }

namespace {

MPI_Datatype mpi_type(DType d, int rank, const char* op) {
  switch (d) {
    case DType::Float32:
      return MPI_FLOAT;
    case DType::Float64:
      return MPI_DOUBLE;
    case DType::Int64:
      return MPI_INT64_T;
    default:
      GRAFT_FAIL("rank ", rank, ": ", op, " supports float32, float64 and int64 tensors, got ",
                 dtype_name(d));
  }
}

void check_mpi(int rc, int rank, const char* op) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  GRAFT_FAIL("rank ", rank, ": MPI ", op, " failed: ", std::string(msg, static_cast<size_t>(len)));
}

class MpiGroup;

// Polls `req` until it completes or `deadline` passes.
class MpiWork : public Work {
 public:
  MpiWork(MpiGroup* g, MPI_Request req, Tensor t, ReduceOp op, const char* name)
      : g_(g), req_(req), t_(std::move(t)), op_(op), name_(name) {
    start_seconds = now();
  }
  ~MpiWork() override;
  bool test() override;
  void wait() override;

 private:
  void complete();
  MpiGroup* g_;
  MPI_Request req_;
  Tensor t_;
  ReduceOp op_;
  const char* name_;
  bool done_ = false;
};

class MpiGroup : public ProcessGroup {
 public:
  MpiGroup() {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int provided = 0;
      // Only the thread that runs the training loop (and autograd's hooks)
      // calls MPI.
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    }
    // Errors come back as return codes (turned into graft::Error), not aborts.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    timeout_ = env_double("GRAFT_DIST_TIMEOUT", timeout_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void set_timeout(double s) override {
    GRAFT_CHECK(s > 0, "rank ", rank_, ": the distributed timeout must be positive, got ", s);
    timeout_ = s;
  }
  double timeout() const override { return timeout_; }

  // Waits for `req`, failing after the timeout.
  void poll(MPI_Request& req, const char* op, double start) {
    const double deadline = start + timeout_;
    for (int spins = 0;; ++spins) {
      int flag = 0;
      check_mpi(MPI_Test(&req, &flag, MPI_STATUS_IGNORE), rank_, op);
      if (flag) return;
      if (now() > deadline) {
        failed_ = true;
        GRAFT_FAIL("rank ", rank_, " of ", size_, ": ", op, " timed out after ", timeout_,
                   " s waiting for the other ranks (a rank died, hung or runs a different "
                   "program; the job is aborted)");
      }
      // Spin briefly, then sleep: ranks often share cores (mpirun --oversubscribe).
      if (spins < 200)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(spins < 2000 ? 20 : 200));
    }
  }

  Tensor checked(const Tensor& t, const char* op) const {
    GRAFT_CHECK(t.defined(), "rank ", rank_, ": ", op, " of an undefined tensor");
    GRAFT_CHECK(t.device().is_cpu(), "rank ", rank_, ": ", op,
                " takes CPU tensors (stage CUDA tensors through host memory), got ",
                t.device().str());
    GRAFT_CHECK(t.is_contiguous(), "rank ", rank_, ": ", op, " needs a contiguous tensor");
    GRAFT_CHECK(t.numel() <= INT32_MAX, "rank ", rank_, ": ", op, " of ", t.numel(),
                " elements exceeds MPI's int count");
    return t;
  }

  void broadcast(Tensor& t, int root) override {
    checked(t, "broadcast");
    GRAFT_CHECK(root >= 0 && root < size_, "rank ", rank_, ": broadcast from rank ", root,
                " outside the world of ", size_);
    MPI_Request req;
    const double t0 = now();
    check_mpi(MPI_Ibcast(t.raw_data(), static_cast<int>(t.numel()),
                         mpi_type(t.dtype(), rank_, "broadcast"), root, MPI_COMM_WORLD, &req),
              rank_, "broadcast");
    poll(req, "broadcast", t0);
    t.storage()->bump_version();
  }

  void all_reduce(Tensor& t, ReduceOp op) override { all_reduce_async(t, op)->wait(); }

  std::unique_ptr<Work> all_reduce_async(Tensor t, ReduceOp op) override {
    checked(t, "all-reduce");
    GRAFT_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, "rank ", rank_,
                ": all-reduce supports float32 and float64, got ", dtype_name(t.dtype()));
    MPI_Request req;
    check_mpi(
        MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), static_cast<int>(t.numel()),
                       mpi_type(t.dtype(), rank_, "all-reduce"), MPI_SUM, MPI_COMM_WORLD, &req),
        rank_, "all-reduce");
    return std::make_unique<MpiWork>(this, req, std::move(t), op, "all-reduce");
  }

  Tensor all_gather(const Tensor& in) override {
    const Tensor t = checked(in, "all-gather");
    Shape shape = t.sizes();
    shape.insert(shape.begin(), size_);
    Tensor out = empty(shape, opts(t.dtype()));
    const MPI_Datatype type = mpi_type(t.dtype(), rank_, "all-gather");
    MPI_Request req;
    const double t0 = now();
    check_mpi(MPI_Iallgather(t.raw_data(), static_cast<int>(t.numel()), type, out.raw_data(),
                             static_cast<int>(t.numel()), type, MPI_COMM_WORLD, &req),
              rank_, "all-gather");
    poll(req, "all-gather", t0);
    return out;
  }

  void barrier() override {
    MPI_Request req;
    const double t0 = now();
    check_mpi(MPI_Ibarrier(MPI_COMM_WORLD, &req), rank_, "barrier");
    poll(req, "barrier", t0);
  }

  void finish(bool clean) override {
    if (finished_) return;
    finished_ = true;
    if (clean && !failed_)
      MPI_Finalize();
    else
      MPI_Abort(MPI_COMM_WORLD, 1);
  }

  bool failed_ = false;
  bool finished_ = false;

 private:
  int rank_ = 0, size_ = 1;
  double timeout_ = 300;
};

MpiWork::~MpiWork() {
  // An abandoned request (an error elsewhere): the job aborts at exit.
  if (!done_) g_->failed_ = true;
}

void MpiWork::complete() {
  done_ = true;
  end_seconds = now();
  if (op_ == ReduceOp::Mean) {
    NoGradGuard ng;
    t_.mul_(1.0 / static_cast<double>(g_->size()));
  }
}

bool MpiWork::test() {
  if (done_) return true;
  int flag = 0;
  check_mpi(MPI_Test(&req_, &flag, MPI_STATUS_IGNORE), g_->rank(), name_);
  if (flag) complete();
  return done_;
}

void MpiWork::wait() {
  if (done_) return;
  g_->poll(req_, name_, start_seconds);
  complete();
}

MpiGroup* g_world = nullptr;
bool g_clean_exit = false;

void finish_at_exit() {
  if (g_world) g_world->finish(g_clean_exit);
}

}  // namespace

bool ProcessGroup::initialized() { return g_world != nullptr; }
void set_clean_exit(bool clean) { g_clean_exit = clean; }

ProcessGroup& ProcessGroup::world() {
  if (!g_world) {
    g_world = new MpiGroup();  // lives until exit (MPI_Finalize/Abort at exit)
    std::atexit(finish_at_exit);
  }
  return *g_world;
}

#endif

}  // namespace graft::dist
