// A consumer header whose name matches one of graft's (graft/io/file.h): the
// installed graft headers include each other as <graft/...>, so this file
// must not be picked up by them, nor theirs by us.
#pragma once

inline const char* consumer_file_h() { return "consumer io/file.h"; }
