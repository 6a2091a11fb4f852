// DashedFlags: lets every binary of billing-gateway accept documented dashed
// flag spellings
// (--check-config, --max-outstanding, --no-honor-pushback) on top of absl's
// underscored names (--check_config). Call before absl::ParseCommandLine and
// parse its result.
//
// Header-only, pure; no thread-safety concerns.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace bg {

class DashedFlags {
 public:
  DashedFlags(int argc, char** argv) {
    bool after_double_dash = false;
    for (int i = 0; i < argc; ++i) {
      std::string arg = argv[i];
      if (i == 0 || after_double_dash || !absl::StartsWith(arg, "--") ||
          arg == "--") {
        after_double_dash |= arg == "--";
        args_.push_back(arg);
        continue;
      }
      const size_t eq = arg.find('=');
      std::string name =
          arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      const std::string rest = eq == std::string::npos ? "" : arg.substr(eq);
      name = absl::StrReplaceAll(name, {{"-", "_"}});
      if (absl::StartsWith(name, "no_")) name = "no" + name.substr(3);
      args_.push_back(absl::StrCat("--", name, rest));
    }
    for (std::string& a : args_) pointers_.push_back(a.data());
  }
  int argc() const { return static_cast<int>(pointers_.size()); }
  char** argv() { return pointers_.data(); }

 private:
  std::vector<std::string> args_;
  std::vector<char*> pointers_;
};

}  // namespace bg
