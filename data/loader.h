// DataLoader: batches of a Dataset, decoded and transformed by worker threads.
//
// Batches come out in order (batch b holds positions [b*B, (b+1)*B) of the
// epoch's order). Workers claim batch indices in order and never run more than
// `prefetch` batches per worker ahead of the consumer, so memory is bounded.
// Randomness is a function of (seed, epoch, batch index) only: the shuffled
// order and every random transform are the same whatever num_workers is.
// An exception thrown by Dataset::get in a worker is re-thrown by next() when
// the consumer reaches that batch. Stopping early (or destroying the loader)
// cancels the outstanding work and joins the workers.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "data/dataset.h"

namespace graft::data {

struct Batch {
  Tensor images;  // float32 [B, C, H, W]
  Tensor labels;  // int64 [B]
};

// Stacks examples into a Batch; errors name the example whose shape differs.
Batch collate(const std::vector<Example>& examples);

// torch.utils.data.DistributedSampler's indices (drop_last=False) for an
// epoch order: padded to ceil(n / world) * world by repeating the order from
// its start, then every world-th entry from `rank`. With pad = false nothing
// is repeated: rank r takes order[r], order[r + world], ... (the shards then
// differ in size by at most one example, and together hold each example once).
std::vector<int64_t> distributed_shard(const std::vector<int64_t>& order, int64_t world,
                                       int64_t rank, bool pad = true);

class DataLoader {
 public:
  struct Options {
    int64_t batch_size = 32;
    bool shuffle = false;
    bool drop_last = false;
    int num_workers = 0;  // 0: load on the consumer's thread
    int prefetch = 2;     // batches in flight per worker
    uint64_t seed = 0;
    // Data-parallel sharding (torch's DistributedSampler): the epoch's order
    // (shuffled as above, identical on every rank) is padded with its own
    // first indices to a multiple of num_replicas, and this rank takes
    // positions rank, rank + num_replicas, ... Every rank gets the same number
    // of examples and batches.
    int64_t num_replicas = 1;
    int64_t rank = 0;
    // false: no padding (distributed_shard's pad = false), so that every
    // example is seen exactly once across the ranks: for evaluation, whose
    // sums are added over the ranks afterwards. Ranks may then differ by a
    // batch, so no per-batch collective may run in such an epoch.
    bool pad_shards = true;
  };
  DataLoader(DatasetPtr dataset, Options options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Batches per epoch.
  int64_t size() const;
  const Options& options() const { return opts_; }
  const DatasetPtr& dataset() const { return dataset_; }

  // Starts epoch `epoch` (stopping any epoch in progress). The next call to
  // start() without an argument continues with epoch + 1.
  // `first_batch` > 0 resumes the epoch there: batches (and their random
  // transforms) depend only on (seed, epoch, batch index), so the rest of the
  // epoch is the one an uninterrupted run would see.
  void start(int64_t epoch, int64_t first_batch = 0);
  void start() { start(next_epoch_); }
  // The next batch of the current epoch; false when the epoch is done (or was
  // stopped, or a worker failed and its error was already thrown).
  bool next(Batch& out);
  // Cancels the current epoch and joins the workers (idempotent).
  void stop();

  // The example order of `epoch` (identity when not shuffling), this rank's
  // shard of it when num_replicas > 1.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  // for (Batch& b : loader) runs one epoch (start() + next() until done).
  class Iterator {
   public:
    Iterator(DataLoader* loader) : loader_(loader) { advance(); }
    Iterator() = default;
    Batch& operator*() { return batch_; }
    Iterator& operator++() {
      advance();
      return *this;
    }
    bool operator!=(const Iterator& o) const { return loader_ != o.loader_; }

   private:
    void advance() {
      if (loader_ && !loader_->next(batch_)) loader_ = nullptr;
    }
    DataLoader* loader_ = nullptr;
    Batch batch_;
  };
  Iterator begin() {
    start();
    return Iterator(this);
  }
  Iterator end() { return Iterator(); }

 private:
  Batch load_batch(int64_t b) const;
  void worker_loop();

  DatasetPtr dataset_;
  Options opts_;
  int64_t next_epoch_ = 0;

  // Current epoch state.
  bool running_ = false;
  bool started_ = false;
  int64_t epoch_ = 0;
  std::vector<int64_t> order_;
  int64_t num_batches_ = 0;
  int64_t next_claim_ = 0;    // next batch index a worker will take
  int64_t next_deliver_ = 0;  // next batch index the consumer gets
  bool stopping_ = false;
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };
  std::map<int64_t, Slot> ready_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_ready_;
  std::vector<std::thread> workers_;
};

}  // namespace graft::data
