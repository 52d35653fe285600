// data::CachedDataset: the deterministic prefix of a pipeline (decoding,
// resizing, cropping, normalising) computed once gives the uncached data
// set's batches bit for bit, with the random rest still drawn per epoch; the
// memory budget is respected.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "stb_write.h"

#include "core/error.h"
#include "core/ops.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/transforms.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace graft::data {
namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path =
        fs::temp_directory_path() /
        ("graft_data_cache_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// A w x h RGB PNG with varied pixels (so resizes and crops are not trivial).
void write_png(const fs::path& p, int w, int h, int seed) {
  fs::create_directories(p.parent_path());
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < px.size(); ++i)
    px[i] = static_cast<uint8_t>((i * 37 + static_cast<size_t>(seed) * 101 + i / 7 * 13) % 251);
  ASSERT_TRUE(stbi_write_png(p.string().c_str(), w, h, 3, px.data(), w * 3));
}

// 12 images of various sizes in 3 classes.
std::string make_folder(const TempDir& dir) {
  const fs::path r = dir.path / "data";
  for (int i = 0; i < 12; ++i) {
    // Appended piece by piece: GCC 12's -Wrestrict misfires on a + b + c here.
    std::string cls = "c", file = std::to_string(i);
    cls += std::to_string(i % 3);
    file += ".png";
    write_png(r / cls / file, 40 + 3 * i, 36 + 5 * (i % 4), i);
  }
  return r.string();
}

// Every batch of `epochs` shuffled epochs, bit for bit, with the same labels.
void expect_same_batches(const DatasetPtr& a, const DatasetPtr& b, int workers) {
  DataLoader::Options o;
  o.batch_size = 5;
  o.shuffle = true;
  o.seed = 3;
  o.num_workers = workers;
  DataLoader la(a, o), lb(b, o);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    la.start(epoch);
    lb.start(epoch);
    Batch x, y;
    int batches = 0;
    while (la.next(x)) {
      ASSERT_TRUE(lb.next(y));
      ASSERT_EQ(x.images.sizes(), y.images.sizes());
      EXPECT_EQ(std::memcmp(x.images.raw_data(), y.images.raw_data(), x.images.nbytes()), 0)
          << "epoch " << epoch << ", batch " << batches;
      EXPECT_EQ(x.labels.to_vector<int64_t>(), y.labels.to_vector<int64_t>());
      ++batches;
    }
    EXPECT_FALSE(lb.next(y));
    EXPECT_EQ(batches, (a->size() + 4) / 5);
  }
}

TEST(CachedDataset, RandomPipelineKeepsItsDrawsAndBits) {
  TempDir dir;
  const std::string root = make_folder(dir);
  // Resize + CenterCrop are cached; the crop, flip and jitter stay per epoch.
  auto t = std::make_shared<Compose>(std::vector<TransformPtr>{
      std::make_shared<Resize>(40), std::make_shared<CenterCrop>(36),
      std::make_shared<RandomResizedCrop>(24), std::make_shared<RandomHorizontalFlip>(),
      std::make_shared<ColorJitter>(0.3, 0.3, 0.3), std::make_shared<ToTensor>(),
      std::make_shared<Normalize>()});
  auto plain = std::make_shared<ImageFolder>(root, t);
  std::string why;
  auto cached = CachedDataset::make(plain, {}, &why);
  ASSERT_TRUE(cached) << why;
  ASSERT_TRUE(cached->rest());
  EXPECT_EQ(cached->rest()->repr().find("  Resize("), std::string::npos) << cached->rest()->repr();
  EXPECT_EQ(cached->rest()->repr().find("CenterCrop"), std::string::npos);
  EXPECT_NE(cached->rest()->repr().find("RandomResizedCrop"), std::string::npos);
  EXPECT_EQ(cached->bytes(), 12 * 36 * 36 * 3);  // the center crops, uint8 RGB
  EXPECT_FALSE(cached->deterministic());
  expect_same_batches(plain, cached, 0);
  expect_same_batches(plain, cached, 2);
  // The random part still varies by epoch: two epochs' first batches differ.
  DataLoader::Options o;
  o.batch_size = 12;
  DataLoader l(cached, o);
  Batch e0, e1;
  l.start(0);
  ASSERT_TRUE(l.next(e0));
  l.start(1);
  ASSERT_TRUE(l.next(e1));
  EXPECT_NE(std::memcmp(e0.images.raw_data(), e1.images.raw_data(), e0.images.nbytes()), 0);
}

TEST(CachedDataset, DeterministicPipelineIsCachedWhole) {
  TempDir dir;
  const std::string root = make_folder(dir);
  auto plain = std::make_shared<ImageFolder>(root, imagenet_eval_transform(32, 28));
  std::string why;
  auto cached = CachedDataset::make(
      std::make_shared<Subset>(plain, std::vector<int64_t>{11, 0, 5, 7, 2, 3, 9, 1, 4, 6, 8, 10}),
      {.max_bytes = int64_t{1} << 20, .num_workers = 2}, &why);
  ASSERT_TRUE(cached) << why;
  EXPECT_FALSE(cached->rest());
  EXPECT_TRUE(cached->deterministic());
  EXPECT_EQ(cached->bytes(), 12 * 3 * 28 * 28 * 4);  // float32 tensors
  expect_same_batches(
      std::make_shared<Subset>(plain, std::vector<int64_t>{11, 0, 5, 7, 2, 3, 9, 1, 4, 6, 8, 10}),
      cached, 0);
}

TEST(CachedDataset, BudgetAndNothingToCacheAreReported) {
  TempDir dir;
  const std::string root = make_folder(dir);
  auto plain = std::make_shared<ImageFolder>(root, imagenet_train_transform(24));
  std::string why;
  // Decoding only (the pipeline starts with a random crop): ~5 KB per image.
  EXPECT_FALSE(CachedDataset::make(plain, {.max_bytes = 20000, .num_workers = 0}, &why));
  EXPECT_NE(why.find("memory budget of 0 MiB"), std::string::npos) << why;
  EXPECT_NE(why.find("of 12 examples"), std::string::npos) << why;
  auto decoded = CachedDataset::make(plain, {}, &why);
  ASSERT_TRUE(decoded);
  EXPECT_NE(decoded->rest()->repr().find("RandomResizedCrop"), std::string::npos);
  expect_same_batches(plain, decoded, 0);
  Generator gen(1);
  auto tensors = std::make_shared<TensorDataset>(randn({4, 3, 8, 8}, {}, &gen),
                                                 randint(0, 2, {4}, {DType::Int64}, &gen));
  EXPECT_FALSE(CachedDataset::make(tensors, {}, &why));
  EXPECT_NE(why.find("nothing to cache"), std::string::npos) << why;
}

TEST(CachedDataset, FashionMnistPerImagePipelineEqualsThePreprocessedOne) {
  if (!fs::exists(std::string(kFashionMnistRoot) + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST not installed";
  // The demo preprocesses all images at once (a TensorDataset); the same
  // examples one by one (FashionMNIST::get) and through CachedDataset give
  // the same bits.
  FashionMNIST::Options fo;
  fo.train = false;
  fo.classes = {5, 6, 7, 8, 9};
  auto ds = std::make_shared<FashionMNIST>(fo);
  std::vector<int64_t> first(60);
  for (int64_t i = 0; i < 60; ++i) first[static_cast<size_t>(i)] = i * 7;
  auto per_image = std::make_shared<Subset>(ds, first);
  auto all = std::make_shared<TensorDataset>(ds->preprocess(ds->images()), ds->labels());
  auto once = std::make_shared<Subset>(all, first);
  std::string why;
  auto cached = CachedDataset::make(per_image, {}, &why);
  ASSERT_TRUE(cached) << why;
  expect_same_batches(per_image, once, 0);
  expect_same_batches(per_image, cached, 0);
}

}  // namespace
}  // namespace graft::data
