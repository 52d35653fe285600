#include "data/dataset.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "data/idx.h"
#include "io/npy.h"

namespace fs = std::filesystem;

namespace graft::data {

// ---- Dataset ----

Example Dataset::get(int64_t index) const {
  Generator gen(static_cast<uint64_t>(index));
  return get(index, gen);
}

void Dataset::check_index(int64_t index, const char* who) const {
  GRAFT_CHECK(index >= 0 && index < size(), who, ": index ", index, " out of range for ", size(),
              " examples");
}

// ---- ImageFolder ----

namespace {

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Files under `dir` in os.walk order (directories by path, files by name),
// skipping hidden entries.
std::vector<std::string> walk_sorted(const fs::path& dir) {
  std::vector<std::pair<std::string, std::string>> files;  // (parent, name)
  auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink);
  for (auto end = fs::recursive_directory_iterator(); it != end; ++it) {
    if (hidden(it->path())) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file())
      files.emplace_back(it->path().parent_path().string(), it->path().filename().string());
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> out;
  out.reserve(files.size());
  for (auto& [parent, name] : files) out.push_back((fs::path(parent) / name).string());
  return out;
}

}  // namespace

ImageFolder::ImageFolder(const std::string& root, TransformPtr transform)
    : ImageFolder(root, Options{std::move(transform)}) {}

ImageFolder::ImageFolder(const std::string& root, Options options)
    : root_(root), options_(std::move(options)) {
  GRAFT_CHECK(fs::is_directory(root_), "ImageFolder: ", root_, " is not a directory");
  for (const auto& e :
       fs::directory_iterator(root_, fs::directory_options::follow_directory_symlink))
    if (e.is_directory() && !hidden(e.path())) classes_.push_back(e.path().filename().string());
  std::sort(classes_.begin(), classes_.end());
  GRAFT_CHECK(!classes_.empty(), "ImageFolder: no class folders in ", root_,
              " (expected root/<class>/<image files>)");
  std::vector<std::string> exts;
  for (const auto& e : options_.extensions) exts.push_back(lower(e));
  std::vector<std::string> empty_classes;
  for (size_t c = 0; c < classes_.size(); ++c) {
    class_to_idx_[classes_[c]] = static_cast<int64_t>(c);
    size_t found = 0;
    for (auto& path : walk_sorted(fs::path(root_) / classes_[c])) {
      const std::string l = lower(path);
      const bool ok = std::any_of(exts.begin(), exts.end(), [&](const std::string& e) {
        return l.size() >= e.size() && l.compare(l.size() - e.size(), e.size(), e) == 0;
      });
      if (!ok) continue;
      samples_.emplace_back(std::move(path), static_cast<int64_t>(c));
      ++found;
    }
    if (found == 0) empty_classes.push_back(classes_[c]);
  }
  if (!empty_classes.empty()) {
    std::string names, ext_list;
    for (const auto& n : empty_classes) names += (names.empty() ? "" : ", ") + n;
    for (const auto& e : options_.extensions) ext_list += (ext_list.empty() ? "" : ", ") + e;
    GRAFT_FAIL("ImageFolder: no image files in class folder(s) ", names, " under ", root_,
               " (supported extensions: ", ext_list, ")");
  }
  if (options_.skip_bad_images) {
    // Decode everything once, in parallel; keep order, report each failure.
    std::vector<std::string> errors(samples_.size());
    parallel_for(0, static_cast<int64_t>(samples_.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        try {
          read_image(samples_[i].first);
        } catch (const std::exception& ex) {
          errors[i] = ex.what();
        }
      }
    });
    std::vector<std::pair<std::string, int64_t>> kept;
    for (size_t i = 0; i < samples_.size(); ++i) {
      if (errors[i].empty()) {
        kept.push_back(std::move(samples_[i]));
      } else {
        std::cerr << "warning: ImageFolder: skipping undecodable image: " << errors[i] << "\n";
        ++skipped_;
      }
    }
    samples_ = std::move(kept);
    if (skipped_ > 0)
      std::cerr << "warning: ImageFolder: skipped " << skipped_ << " of " << (skipped_ + size())
                << " files under " << root_ << "\n";
    GRAFT_CHECK(!samples_.empty(), "ImageFolder: no decodable images under ", root_);
  }
}

Image ImageFolder::load(int64_t index) const {
  check_index(index, "ImageFolder");
  return read_image(samples_[index].first);
}

std::optional<Dataset::Stages> ImageFolder::stages() const {
  Stages st;
  const TransformPtr& t = options_.transform;
  if (!t) {
    st.prefix = [this](int64_t i) { return ImageOrTensor(to_tensor(load(i))); };
    return st;
  }
  std::vector<TransformPtr> steps = {t};
  if (const auto* c = dynamic_cast<const Compose*>(t.get())) steps = c->transforms();
  size_t k = 0;
  while (k < steps.size() && steps[k]->deterministic()) ++k;
  std::vector<TransformPtr> head(steps.begin(), steps.begin() + static_cast<std::ptrdiff_t>(k));
  std::vector<TransformPtr> tail(steps.begin() + static_cast<std::ptrdiff_t>(k), steps.end());
  st.prefix = [this, head](int64_t i) {
    ImageOrTensor x = load(i);
    Generator unused(0);  // deterministic steps draw nothing
    for (const auto& step : head) x = step->apply(std::move(x), unused);
    return x;
  };
  if (tail.size() == 1) st.rest = tail[0];
  if (tail.size() > 1) st.rest = std::make_shared<Compose>(tail);
  return st;
}

bool ImageFolder::deterministic() const {
  return !options_.transform || options_.transform->deterministic();
}

Example ImageFolder::get(int64_t index, Generator& gen) const {
  Image img = load(index);
  Tensor t;
  if (options_.transform) {
    ImageOrTensor out = options_.transform->apply(std::move(img), gen);
    GRAFT_CHECK(std::holds_alternative<Tensor>(out), "ImageFolder: the transform ",
                options_.transform->repr(), " must end with ToTensor()");
    t = std::get<Tensor>(std::move(out));
  } else {
    t = to_tensor(img);
  }
  return {std::move(t), samples_[index].second};
}

int64_t ImageFolder::label(int64_t index) const {
  check_index(index, "ImageFolder");
  return samples_[index].second;
}

// ---- TensorDataset ----

TensorDataset::TensorDataset(Tensor images, Tensor labels) {
  GRAFT_CHECK(images.defined() && labels.defined(), "TensorDataset: undefined tensor");
  GRAFT_CHECK(images.dim() >= 1 && labels.dim() == 1,
              "TensorDataset: expected images [N, ...] and labels [N], got ", images.meta_str(),
              " and ", labels.meta_str());
  GRAFT_CHECK(images.size(0) == labels.size(0), "TensorDataset: ", images.size(0), " images but ",
              labels.size(0), " labels");
  const DType ld = labels.dtype();
  GRAFT_CHECK(ld == DType::Int64 || ld == DType::Int32 || ld == DType::Int16 || ld == DType::Int8 ||
                  ld == DType::UInt8,
              "TensorDataset: labels must be integers, got ", dtype_name(ld));
  images_ = images.cpu().to(DType::Float32).contiguous();
  labels_ = labels.cpu().to(DType::Int64).contiguous();
  const int64_t* l = labels_.data_ptr<int64_t>();
  for (int64_t i = 0; i < labels_.numel(); ++i) {
    GRAFT_CHECK(l[i] >= 0, "TensorDataset: negative label ", l[i], " at index ", i);
    num_classes_ = std::max(num_classes_, l[i] + 1);
  }
}

std::shared_ptr<TensorDataset> TensorDataset::from_npy(const std::string& images_path,
                                                       const std::string& labels_path) {
  return std::make_shared<TensorDataset>(io::load_npy(images_path), io::load_npy(labels_path));
}

Example TensorDataset::get(int64_t index, Generator&) const {
  check_index(index, "TensorDataset");
  // A plain copy of the row: clone() would open an OpenMP region per example,
  // whose wake-ups cost more than the copy (most of a cached epoch's loading
  // time on 2 busy cores).
  Shape shape(images_.sizes().begin() + 1, images_.sizes().end());
  Tensor out = empty(shape);
  const int64_t n = out.numel();
  std::memcpy(out.data_ptr<float>(), images_.data_ptr<float>() + index * n,
              static_cast<size_t>(n) * sizeof(float));
  return {std::move(out), labels_.data_ptr<int64_t>()[index]};
}

int64_t TensorDataset::label(int64_t index) const {
  check_index(index, "TensorDataset");
  return labels_.data_ptr<int64_t>()[index];
}

// ---- Fashion-MNIST ----

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

Tensor fashion_mnist_demo_transform(const Tensor& images_u8, int64_t size) {
  GRAFT_CHECK(images_u8.dtype() == DType::UInt8 && images_u8.dim() == 3,
              "fashion_mnist_demo_transform: expected uint8 [N, H, W], got ", images_u8.meta_str());
  GRAFT_CHECK(size > 0, "fashion_mnist_demo_transform: size must be positive");
  const Tensor src_t = images_u8.contiguous();
  const int64_t n = src_t.size(0), H = src_t.size(1), W = src_t.size(2);
  // Bilinear taps of F.interpolate(mode="bilinear", align_corners=False):
  // source coordinate (o + 0.5) * in / out - 0.5, clamped at 0, neighbour
  // clamped at the last pixel.
  struct Tap {
    int64_t i0, i1;
    float l0, l1;
  };
  auto taps = [](int64_t in, int64_t out) {
    std::vector<Tap> t(static_cast<size_t>(out));
    const float scale = static_cast<float>(in) / static_cast<float>(out);
    for (int64_t o = 0; o < out; ++o) {
      const float src = std::max(0.0f, (static_cast<float>(o) + 0.5f) * scale - 0.5f);
      const auto i0 = static_cast<int64_t>(src);
      const int64_t i1 = std::min(i0 + 1, in - 1);
      const float l1 = src - static_cast<float>(i0);
      t[o] = {i0, i1, 1.0f - l1, l1};
    }
    return t;
  };
  const std::vector<Tap> ty = taps(H, size), tx = taps(W, size);
  Tensor out = empty({n, 3, size, size});
  const uint8_t* s = src_t.data_ptr<uint8_t>();
  float* o = out.data_ptr<float>();
  const int64_t plane = size * size;
  constexpr float kMean = 0.286f, kStd = 0.353f;
  parallel_for(0, n, 256, [&](int64_t b, int64_t e) {
    std::vector<float> img(static_cast<size_t>(H * W));
    for (int64_t i = b; i < e; ++i) {
      const uint8_t* p = s + i * H * W;
      for (int64_t k = 0; k < H * W; ++k) img[k] = static_cast<float>(p[k]) / 255.0f;
      float* dst = o + i * 3 * plane;
      for (int64_t y = 0; y < size; ++y) {
        const float* r0 = img.data() + ty[y].i0 * W;
        const float* r1 = img.data() + ty[y].i1 * W;
        for (int64_t x = 0; x < size; ++x) {
          const Tap& c = tx[x];
          const float v = ty[y].l0 * (c.l0 * r0[c.i0] + c.l1 * r0[c.i1]) +
                          ty[y].l1 * (c.l0 * r1[c.i0] + c.l1 * r1[c.i1]);
          dst[y * size + x] = (v - kMean) / kStd;
        }
      }
      std::copy_n(dst, plane, dst + plane);  // repeat to 3 channels
      std::copy_n(dst, plane, dst + 2 * plane);
    }
  });
  return out;
}

FashionMNIST::FashionMNIST(Options options) {
  const std::string prefix = options.root + (options.train ? "/train" : "/t10k");
  LabeledImages d =
      read_idx_pair(prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz");
  const int64_t* l = d.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < d.labels.numel(); ++i)
    GRAFT_CHECK(l[i] < 10, "FashionMNIST: label ", l[i], " at index ", i, " is not in 0..9");
  demo_size_ = options.demo_size;
  GRAFT_CHECK(demo_size_ >= 0, "FashionMNIST: demo_size must be >= 0");
  if (options.classes.empty()) {
    images_ = d.images;
    labels_ = d.labels;
    num_classes_ = 10;
    class_names_ = fashion_mnist_classes();
    return;
  }
  std::vector<int64_t> remap(10, -1);
  for (size_t k = 0; k < options.classes.size(); ++k) {
    const int64_t c = options.classes[k];
    GRAFT_CHECK(c >= 0 && c < 10, "FashionMNIST: class id ", c, " is not in 0..9");
    GRAFT_CHECK(remap[c] < 0, "FashionMNIST: class id ", c, " listed twice");
    remap[c] = static_cast<int64_t>(k);
    class_names_.push_back(fashion_mnist_classes()[c]);
  }
  num_classes_ = static_cast<int64_t>(options.classes.size());
  std::vector<int64_t> keep, new_labels;
  for (int64_t i = 0; i < d.labels.numel(); ++i)
    if (remap[l[i]] >= 0) {
      keep.push_back(i);
      new_labels.push_back(remap[l[i]]);
    }
  const int64_t hw = d.images.size(1) * d.images.size(2);
  images_ = empty({static_cast<int64_t>(keep.size()), d.images.size(1), d.images.size(2)},
                  opts(DType::UInt8));
  const uint8_t* src = d.images.data_ptr<uint8_t>();
  uint8_t* dst = images_.data_ptr<uint8_t>();
  for (size_t j = 0; j < keep.size(); ++j) std::copy_n(src + keep[j] * hw, hw, dst + j * hw);
  labels_ = tensor<int64_t>(new_labels);
}

Tensor FashionMNIST::preprocess(const Tensor& images_u8) const {
  if (demo_size_ > 0) return fashion_mnist_demo_transform(images_u8, demo_size_);
  Tensor x = images_u8.contiguous().to(DType::Float32).unsqueeze(1);
  float* p = x.data_ptr<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = p[i] / 255.0f;
  return x;
}

Example FashionMNIST::get(int64_t index, Generator&) const {
  check_index(index, "FashionMNIST");
  return {preprocess(images_.narrow(0, index, 1)).squeeze(0), labels_.data_ptr<int64_t>()[index]};
}

std::optional<Dataset::Stages> FashionMNIST::stages() const {
  Stages st;
  st.prefix = [this](int64_t i) {
    return ImageOrTensor(preprocess(images_.narrow(0, i, 1)).squeeze(0).contiguous());
  };
  return st;
}

int64_t FashionMNIST::label(int64_t index) const {
  check_index(index, "FashionMNIST");
  return labels_.data_ptr<int64_t>()[index];
}

// ---- Subset and splits ----

Subset::Subset(DatasetPtr base, std::vector<int64_t> indices)
    : base_(std::move(base)), indices_(std::move(indices)) {
  GRAFT_CHECK(base_, "Subset: null base dataset");
  for (int64_t i : indices_)
    GRAFT_CHECK(i >= 0 && i < base_->size(), "Subset: index ", i, " out of range for ",
                base_->size(), " examples");
}

Example Subset::get(int64_t index, Generator& gen) const {
  check_index(index, "Subset");
  return base_->get(indices_[index], gen);
}

std::optional<Dataset::Stages> Subset::stages() const {
  std::optional<Stages> st = base_->stages();
  if (!st) return st;
  st->prefix = [prefix = st->prefix, idx = indices_](int64_t i) {
    return prefix(idx[static_cast<size_t>(i)]);
  };
  return st;
}

int64_t Subset::label(int64_t index) const {
  check_index(index, "Subset");
  return base_->label(indices_[index]);
}

// ---- CachedDataset ----

namespace {
int64_t entry_bytes(const ImageOrTensor& v) {
  if (const auto* img = std::get_if<Image>(&v)) return static_cast<int64_t>(img->pixels.size());
  const Tensor& t = std::get<Tensor>(v);
  return static_cast<int64_t>(t.nbytes());
}
}  // namespace

std::shared_ptr<CachedDataset> CachedDataset::make(DatasetPtr base, Options o, std::string* why) {
  GRAFT_CHECK(base, "CachedDataset: null data set");
  std::optional<Stages> st = base->stages();
  if (!st) {
    if (why) *why = "nothing to cache: its examples are tensors in memory already";
    return nullptr;
  }
  std::shared_ptr<CachedDataset> c(new CachedDataset());
  c->base_ = base;
  c->rest_ = st->rest;
  const int64_t n = base->size();
  c->entries_.resize(static_cast<size_t>(n));
  std::atomic<int64_t> next{0}, bytes{0}, filled{0};
  std::atomic<bool> over{false};
  std::exception_ptr error;
  std::mutex error_mu;
  auto work = [&] {
    for (;;) {
      const int64_t i = next.fetch_add(1);
      if (i >= n || over.load()) return;
      try {
        ImageOrTensor v = st->prefix(i);
        if (bytes.fetch_add(entry_bytes(v)) + entry_bytes(v) > o.max_bytes) {
          over.store(true);
          return;
        }
        c->entries_[static_cast<size_t>(i)] = std::move(v);
        // After 64 examples, stop early when the whole set would not fit.
        const int64_t done = filled.fetch_add(1) + 1;
        if (done == 64 && bytes.load() / done * n > o.max_bytes) {
          over.store(true);
          return;
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
        over.store(true);
        return;
      }
    }
  };
  if (o.num_workers <= 0) {
    work();
  } else {
    std::vector<std::thread> threads;
    for (int w = 0; w < o.num_workers; ++w) threads.emplace_back(work);
    for (auto& t : threads) t.join();
  }
  if (error) std::rethrow_exception(error);
  if (over.load()) {
    if (why)
      *why = "its decoded examples exceed the memory budget of " +
             std::to_string(o.max_bytes >> 20) + " MiB (" + std::to_string(bytes.load() >> 20) +
             " MiB for the first " + std::to_string(filled.load()) + " of " + std::to_string(n) +
             " examples)";
    return nullptr;
  }
  c->bytes_ = bytes.load();
  return c;
}

Example CachedDataset::get(int64_t index, Generator& gen) const {
  check_index(index, "CachedDataset");
  const ImageOrTensor& e = entries_[static_cast<size_t>(index)];
  ImageOrTensor x;
  if (const auto* img = std::get_if<Image>(&e)) {
    x = *img;
  } else {
    // A plain copy: clone() would open an OpenMP region per example.
    const Tensor& t = std::get<Tensor>(e);
    Tensor copy = empty(t.sizes(), opts(t.dtype()));
    std::memcpy(copy.raw_data(), t.raw_data(), t.nbytes());
    x = std::move(copy);
  }
  if (rest_) x = rest_->apply(std::move(x), gen);
  GRAFT_CHECK(std::holds_alternative<Tensor>(x), "CachedDataset: the transform ",
              rest_ ? rest_->repr() : std::string("(none)"), " must end with ToTensor()");
  return {std::get<Tensor>(std::move(x)), base_->label(index)};
}

namespace {
std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  Generator gen(seed);
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(p[i], p[gen.next_below(static_cast<uint64_t>(i + 1))]);
  return p;
}
}  // namespace

std::pair<std::shared_ptr<Subset>, std::shared_ptr<Subset>> train_val_split(DatasetPtr base,
                                                                            double val_fraction,
                                                                            uint64_t seed) {
  GRAFT_CHECK(base, "train_val_split: null dataset");
  GRAFT_CHECK(val_fraction >= 0 && val_fraction <= 1, "train_val_split: val_fraction ",
              val_fraction, " is not in [0, 1]");
  const int64_t n = base->size();
  const auto n_val = static_cast<int64_t>(std::llround(val_fraction * static_cast<double>(n)));
  std::vector<int64_t> p = permutation(n, seed);
  std::vector<int64_t> val(p.begin(), p.begin() + n_val), train(p.begin() + n_val, p.end());
  std::sort(val.begin(), val.end());
  std::sort(train.begin(), train.end());
  return {std::make_shared<Subset>(base, std::move(train)),
          std::make_shared<Subset>(base, std::move(val))};
}

std::shared_ptr<Subset> per_class_subset(DatasetPtr base, int64_t k, uint64_t seed, bool strict) {
  GRAFT_CHECK(base, "per_class_subset: null dataset");
  GRAFT_CHECK(k > 0, "per_class_subset: k must be positive, got ", k);
  std::vector<std::vector<int64_t>> by_class(static_cast<size_t>(base->num_classes()));
  for (int64_t i = 0; i < base->size(); ++i) {
    const int64_t l = base->label(i);
    GRAFT_CHECK(l >= 0 && l < base->num_classes(), "per_class_subset: label ", l, " of example ", i,
                " is outside 0..", base->num_classes() - 1);
    by_class[l].push_back(i);
  }
  std::vector<int64_t> chosen;
  for (size_t c = 0; c < by_class.size(); ++c) {
    auto& idx = by_class[c];
    GRAFT_CHECK(!strict || static_cast<int64_t>(idx.size()) >= k, "per_class_subset: class ", c,
                " has ", idx.size(), " examples, fewer than k = ", k);
    // Per-class stream so one class's choice does not depend on the others.
    const std::vector<int64_t> p =
        permutation(static_cast<int64_t>(idx.size()), seed * 1000003 + c);
    for (int64_t j = 0; j < std::min<int64_t>(k, static_cast<int64_t>(idx.size())); ++j)
      chosen.push_back(idx[p[j]]);
  }
  std::sort(chosen.begin(), chosen.end());
  return std::make_shared<Subset>(base, std::move(chosen));
}

}  // namespace graft::data
