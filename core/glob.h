// Shell-style wildcard match of a whole name, for parameter and state_dict
// key selection (optim/params.h's groups, io/state_dict.h's filters,
// train/finetune.cpp's head and backbone globs): '*' matches any run of
// characters, dots included (so "layer4.*" matches "layer4.1.conv2.weight"),
// '?' exactly one character; everything else matches itself. There is no
// escape and no '**' (a run of stars is one star).
#pragma once

#include <string_view>

namespace graft {

bool glob_match(std::string_view pattern, std::string_view name);

}  // namespace graft
