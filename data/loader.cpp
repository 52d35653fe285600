#include "data/loader.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/ops.h"

namespace graft::data {

Batch collate(const std::vector<Example>& examples) {
  GRAFT_CHECK(!examples.empty(), "collate: empty batch");
  const Shape& s0 = examples[0].image.sizes();
  Shape shape = s0;
  shape.insert(shape.begin(), static_cast<int64_t>(examples.size()));
  Tensor images = empty(shape);
  Tensor labels = empty({static_cast<int64_t>(examples.size())}, opts(DType::Int64));
  const int64_t n = shape_numel(s0);
  auto* dst = images.data_ptr<float>();
  auto* lab = labels.data_ptr<int64_t>();
  for (size_t i = 0; i < examples.size(); ++i) {
    const Tensor& t = examples[i].image;
    GRAFT_CHECK(t.sizes() == s0, "collate: example ", i, " of the batch has shape ",
                shape_str(t.sizes()), " but example 0 has ", shape_str(s0),
                "; add a Resize/CenterCrop so all images have one size");
    const Tensor c =
        t.dtype() == DType::Float32 ? t.contiguous() : t.to(DType::Float32).contiguous();
    std::memcpy(dst + static_cast<int64_t>(i) * n, c.data_ptr<float>(), n * sizeof(float));
    lab[i] = examples[i].label;
  }
  return {images, labels};
}

std::vector<int64_t> distributed_shard(const std::vector<int64_t>& order, int64_t world,
                                       int64_t rank, bool pad) {
  GRAFT_CHECK(world >= 1 && rank >= 0 && rank < world, "distributed_shard: rank ", rank,
              " outside a world of ", world);
  const auto n = static_cast<int64_t>(order.size());
  if (n == 0) return {};
  const int64_t per_rank = (n + world - 1) / world, total = pad ? per_rank * world : n;
  std::vector<int64_t> shard;
  shard.reserve(static_cast<size_t>(per_rank));
  // Position i of the padded order is order[i % n] (torch repeats the list
  // as often as the padding needs).
  for (int64_t i = rank; i < total; i += world) shard.push_back(order[static_cast<size_t>(i % n)]);
  return shard;
}

DataLoader::DataLoader(DatasetPtr dataset, Options options)
    : dataset_(std::move(dataset)), opts_(options) {
  GRAFT_CHECK(dataset_, "DataLoader: null dataset");
  GRAFT_CHECK(opts_.batch_size > 0, "DataLoader: batch_size must be positive, got ",
              opts_.batch_size);
  GRAFT_CHECK(opts_.num_workers >= 0, "DataLoader: num_workers must be >= 0, got ",
              opts_.num_workers);
  GRAFT_CHECK(opts_.prefetch >= 1, "DataLoader: prefetch must be >= 1, got ", opts_.prefetch);
  GRAFT_CHECK(opts_.num_replicas >= 1 && opts_.rank >= 0 && opts_.rank < opts_.num_replicas,
              "DataLoader: rank ", opts_.rank, " outside num_replicas ", opts_.num_replicas);
}

DataLoader::~DataLoader() { stop(); }

int64_t DataLoader::size() const {
  const int64_t w = opts_.num_replicas, size = dataset_->size();
  // This rank's examples: ceil(size / w) when padded, else those of its
  // positions rank, rank + w, ... below size.
  const int64_t n = opts_.pad_shards ? (size + w - 1) / w
                                     : (size > opts_.rank ? (size - 1 - opts_.rank) / w + 1 : 0);
  const int64_t b = opts_.batch_size;
  return opts_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  const int64_t n = dataset_->size();
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  if (opts_.shuffle) {
    // Streams 2e (order) and 2e+1 (augmentation) of the run seed.
    Generator gen = Generator(opts_.seed).fork(static_cast<uint64_t>(2 * epoch));
    for (int64_t i = n - 1; i > 0; --i)
      std::swap(order[i], order[gen.next_below(static_cast<uint64_t>(i + 1))]);
  }
  if (opts_.num_replicas > 1)
    return distributed_shard(order, opts_.num_replicas, opts_.rank, opts_.pad_shards);
  return order;
}

Batch DataLoader::load_batch(int64_t b) const {
  const int64_t begin = b * opts_.batch_size;
  const int64_t end =
      std::min<int64_t>(begin + opts_.batch_size, static_cast<int64_t>(order_.size()));
  // One generator per batch, from (seed, epoch, batch): the worker that runs
  // the batch does not matter.
  Generator gen = Generator(opts_.seed)
                      .fork(static_cast<uint64_t>(2 * epoch_ + 1))
                      .fork(static_cast<uint64_t>(b));
  std::vector<Example> ex;
  ex.reserve(static_cast<size_t>(end - begin));
  for (int64_t i = begin; i < end; ++i) ex.push_back(dataset_->get(order_[i], gen));
  return collate(ex);
}

void DataLoader::worker_loop() {
  const int64_t window = static_cast<int64_t>(opts_.num_workers) * opts_.prefetch;
  for (;;) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_work_.wait(lock, [&] {
        return stopping_ || next_claim_ >= num_batches_ || next_claim_ < next_deliver_ + window;
      });
      if (stopping_ || next_claim_ >= num_batches_) return;
      b = next_claim_++;
    }
    Slot slot;
    try {
      slot.batch = load_batch(b);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      ready_[b] = std::move(slot);
    }
    cv_ready_.notify_all();
  }
}

void DataLoader::start(int64_t epoch, int64_t first_batch) {
  GRAFT_CHECK(first_batch >= 0 && first_batch <= size(), "DataLoader::start: batch ", first_batch,
              " is outside the epoch's ", size(), " batches");
  stop();
  epoch_ = epoch;
  next_epoch_ = epoch + 1;
  order_ = epoch_order(epoch);
  num_batches_ = size();
  next_claim_ = next_deliver_ = first_batch;
  stopping_ = false;
  ready_.clear();
  running_ = started_ = true;
  for (int w = 0; w < opts_.num_workers; ++w) workers_.emplace_back([this] { worker_loop(); });
}

bool DataLoader::next(Batch& out) {
  GRAFT_CHECK(started_, "DataLoader::next: no epoch started; call start() first");
  if (!running_) return false;  // finished, failed or stopped
  if (next_deliver_ >= num_batches_) {
    stop();
    return false;
  }
  if (opts_.num_workers == 0) {
    try {
      out = load_batch(next_deliver_++);
    } catch (...) {
      stop();
      throw;
    }
    return true;
  }
  Slot slot;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_ready_.wait(lock, [&] { return ready_.count(next_deliver_) > 0; });
    auto it = ready_.find(next_deliver_);
    slot = std::move(it->second);
    ready_.erase(it);
    ++next_deliver_;
  }
  cv_work_.notify_all();
  if (slot.error) {
    stop();
    std::rethrow_exception(slot.error);
  }
  out = std::move(slot.batch);
  return true;
}

void DataLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_work_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  ready_.clear();
  running_ = false;
}

}  // namespace graft::data
