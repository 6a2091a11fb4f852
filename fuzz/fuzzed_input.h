// FuzzedInput: splits one libFuzzer input into the few typed arguments a target
// needs.
//
// Tiny on purpose (no FuzzedDataProvider dependency): the first bytes choose
// small integers, the rest is handed over as text, so seed files stay readable
// JSON/YAML after a one-byte selector. Not thread-safe; one per input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace bg::fuzz {

class FuzzedInput {
 public:
  FuzzedInput(const uint8_t* data, size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}

  // One byte, or 0 when the input is used up.
  uint8_t TakeByte() {
    if (rest_.empty()) return 0;
    const auto b = static_cast<uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  // Text up to (not including) the first `separator`, consumed with the
  // separator; the whole remainder when there is none.
  std::string_view TakeUntil(char separator) {
    const size_t at = rest_.find(separator);
    std::string_view head = rest_.substr(0, at);
    rest_.remove_prefix(at == std::string_view::npos ? rest_.size() : at + 1);
    return head;
  }
  std::string_view Rest() const { return rest_; }

 private:
  std::string_view rest_;
};

}  // namespace bg::fuzz
