// HandleHelp: `--help` for every binary of billing-gateway. Prints the
// program's usage message, then every flag defined in the binary's main file,
// one line each:
//   --check-config  Validate the configuration, ... (default: false)
// Flags are listed with the dashed spelling DashedFlags accepts (absl's
// underscored one works too). Abseil's own --help lists only the flags of a
// file named like the program ("No flags matched" for a main.cc) and wraps
// long help texts; --helpfull (every flag of every library) stays Abseil's.
//
// Header-only; call from main() before absl::ParseCommandLine. Not
// thread-safe (reads the flag registry; main is single-threaded then).
#pragma once

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"

namespace bg {

// The --help text: the usage message, then one line per flag defined in a
// file whose path ends with `main_file` (e.g. "gateway/main.cc").
inline std::string HelpText(absl::string_view main_file) {
  std::vector<const absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (absl::EndsWith(flag->Filename(), main_file)) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  size_t width = 0;
  for (const auto* flag : flags) width = std::max(width, flag->Name().size());
  std::string text(
      absl::StripTrailingAsciiWhitespace(absl::ProgramUsageMessage()));
  text +=
      "\n\nFlags (--name=VALUE or --name VALUE; --helpfull lists Abseil's "
      "own too):\n";
  for (const auto* flag : flags) {
    const std::string name = absl::StrReplaceAll(flag->Name(), {{"_", "-"}});
    std::string help = absl::StrReplaceAll(flag->Help(), {{"\n", " "}});
    std::string default_value = flag->DefaultValue();
    if (default_value.empty()) default_value = "\"\"";
    text += "  --" + name + std::string(width - name.size() + 2, ' ') + help +
            " (default: " + default_value + ")\n";
  }
  return text;
}

// True after printing HelpText to stdout when argv asks for help (--help,
// -help or -h); the caller then exits 0.
inline bool HandleHelp(int argc, char** argv, absl::string_view main_file) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") return false;
    if (arg == "--help" || arg == "-help" || arg == "-h") {
      std::fputs(HelpText(main_file).c_str(), stdout);
      return true;
    }
  }
  return false;
}

}  // namespace bg
