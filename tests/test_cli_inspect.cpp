// `graft inspect --graph`: the module tree with output shapes, parameter counts
// and what trains under `graft train`'s freeze flags. The counts are
// torchvision's (resnet18: 11,689,512 parameters; 11,181,642 with a 10-class
// head; its layer1 holds 147,968 and its fc 513 * classes).
#include <sstream>
#include <string>
#include <vector>

#include "tests/cli_util.h"

namespace graft::testing {
namespace {

// The row of module `name` in the table, split into columns
// (name, type, output, params, trainable); empty when absent.
std::vector<std::string> row(const CliResult& r, const std::string& name) {
  std::istringstream in(r.output);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream cells(line);
    std::vector<std::string> c;
    std::string cell;
    while (cells >> cell) c.push_back(cell);
    if (c.size() == 5 && c[0] == name) return c;
  }
  return {};
}

TEST(InspectGraph, Resnet18CountsAndShapesMatchTorchvision) {
  const CliResult r = run_graft({"inspect", "--graph", "--arch", "resnet18"});
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(r.has("resnet18, 1000 classes, input 1x3x224x224")) << r.output;
  EXPECT_TRUE(r.has("parameters: 11,689,512 total, 11,689,512 trainable, 0 frozen")) << r.output;
  EXPECT_EQ(row(r, "(model)"),
            (std::vector<std::string>{"(model)", "ResNet", "1x1000", "11,689,512", "11,689,512"}))
      << r.output;
  EXPECT_EQ(row(r, "conv1"),
            (std::vector<std::string>{"conv1", "Conv2d", "1x64x112x112", "9,408", "9,408"}))
      << r.output;
  EXPECT_EQ(row(r, "maxpool").at(2), "1x64x56x56") << r.output;
  EXPECT_EQ(row(r, "layer1"),
            (std::vector<std::string>{"layer1", "Sequential", "1x64x56x56", "147,968", "147,968"}))
      << r.output;
  EXPECT_EQ(row(r, "layer2").at(2), "1x128x28x28") << r.output;
  EXPECT_EQ(row(r, "layer3").at(2), "1x256x14x14") << r.output;
  EXPECT_EQ(row(r, "layer4").at(2), "1x512x7x7") << r.output;
  EXPECT_EQ(row(r, "layer4.1.conv2").at(2), "1x512x7x7") << r.output;
  EXPECT_EQ(row(r, "layer2.0.downsample.0").at(1), "Conv2d") << r.output;
  EXPECT_EQ(row(r, "avgpool").at(2), "1x512x1x1") << r.output;
  EXPECT_EQ(row(r, "fc"),
            (std::vector<std::string>{"fc", "Linear", "1x1000", "513,000", "513,000"}))
      << r.output;
}

TEST(InspectGraph, FeatureExtractTrainsOnlyTheHead) {
  const CliResult r = run_graft({"inspect", "--graph", "--arch", "resnet18", "--num-classes", "10",
                                 "--mode", "feature-extract"});
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(r.has("trainable under: --mode feature-extract")) << r.output;
  EXPECT_TRUE(r.has("parameters: 11,181,642 total, 5,130 trainable, 11,176,512 frozen"))
      << r.output;
  EXPECT_EQ(row(r, "fc"), (std::vector<std::string>{"fc", "Linear", "1x10", "5,130", "5,130"}))
      << r.output;
  EXPECT_EQ(row(r, "layer4").at(4), "0") << r.output;
  EXPECT_TRUE(r.has("trainable tensors: fc.weight, fc.bias\n")) << r.output;
}

TEST(InspectGraph, FreezeGlobsAndImageSize) {
  CliResult r = run_graft({"inspect", "--graph", "--arch", "resnet18", "--freeze", "layer1.*",
                           "--freeze", "conv1.*", "--image-size", "64"});
  ASSERT_EQ(r.rc, 0) << r.output;
  // 11,689,512 - 147,968 (layer1) - 9,408 (conv1)
  EXPECT_TRUE(r.has("parameters: 11,689,512 total, 11,532,136 trainable, 157,376 frozen"))
      << r.output;
  EXPECT_EQ(row(r, "layer1").at(4), "0") << r.output;
  EXPECT_EQ(row(r, "layer2").at(4), row(r, "layer2").at(3)) << r.output;
  EXPECT_EQ(row(r, "layer4").at(2), "1x512x2x2") << r.output;

  // A glob that matches nothing is the error `graft train` gives.
  r = run_graft({"inspect", "--graph", "--freeze", "layer9.*"});
  EXPECT_NE(r.rc, 0) << r.output;
  EXPECT_EQ(r.error_lines(), 1) << r.output;
  EXPECT_TRUE(r.has("layer9.*")) << r.output;
  // The freeze flags without --graph.
  r = run_graft({"inspect", fixture("train_init.pth"), "--mode", "feature-extract"});
  EXPECT_NE(r.rc, 0) << r.output;
  EXPECT_TRUE(r.has("only apply with --graph")) << r.output;
}

TEST(InspectGraph, ArchAndHeadFromACheckpoint) {
  GRAFT_REQUIRE_FIXTURE("train_init.pth");
  const CliResult r = run_graft({"inspect", "--graph", fixture("train_init.pth")});
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(r.has("resnet18, 10 classes, input 1x3x224x224")) << r.output;
  EXPECT_TRUE(r.has("parameters: 11,181,642 total, 11,181,642 trainable, 0 frozen")) << r.output;
}

}  // namespace
}  // namespace graft::testing
