#include "bench/killbill_sim/queue_growth.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace bg::sim {

QueueGrowthDetector::Result QueueGrowthDetector::Sample(int64_t timestamp_ms,
                                                        double ready_entries) {
  if (!has_smoothed_) {
    smoothed_ = ready_entries;
    has_smoothed_ = true;
  } else {
    smoothed_ =
        options_.alpha * ready_entries + (1.0 - options_.alpha) * smoothed_;
  }
  if (static_cast<int>(points_.size()) >= options_.window) points_.pop_front();
  points_.emplace_back(timestamp_ms, smoothed_);

  Result result;
  result.smoothed = smoothed_;
  if (static_cast<int>(points_.size()) >= options_.window &&
      points_.size() >= 2) {
    // Centre x on the oldest point: epoch-sized timestamps would lose precision
    // in x*x.
    const int64_t origin = points_.front().first;
    const double n = static_cast<double>(points_.size());
    double sum_x = 0, sum_y = 0;
    for (const auto& [t, s] : points_) {
      sum_x += static_cast<double>(t - origin);
      sum_y += s;
    }
    const double mean_x = sum_x / n, mean_y = sum_y / n;
    double sxx = 0, sxy = 0;
    for (const auto& [t, s] : points_) {
      const double dx = static_cast<double>(t - origin) - mean_x;
      sxx += dx * dx;
      sxy += dx * (s - mean_y);
    }
    // All samples in the same millisecond: Kill Bill's regression yields NaN
    // there; we report "no slope" rather than fail the healthcheck.
    const double slope_per_ms = sxx > 0 ? sxy / sxx : 0.0;
    result.slope = RoundHalfUp(slope_per_ms * 100.0, 2);
    result.growing = result.slope > options_.growing_threshold;
  }
  last_ = result;
  return result;
}

double RoundHalfUp(double value, int decimals) {
  if (!std::isfinite(value)) return value;
  const double scale = std::pow(10.0, decimals);
  // Go through the shortest decimal representation (as BigDecimal.valueOf
  // would) so that 0.125 rounds to 0.13 and 1.005 (really 1.00499999...)
  // behaves like its decimal text.
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals + 6,
                std::fabs(value) * scale);
  const double scaled = std::strtod(buf, nullptr);
  const double rounded = std::floor(scaled + 0.5) / scale;
  return value < 0 ? -rounded : rounded;
}

std::string JavaDoubleToString(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  if (value == 0.0) return std::signbit(value) ? "-0.0" : "0.0";

  // Shortest mantissa digits that round-trip.
  char buf[64];
  int precision = 1;
  for (; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*e", precision - 1, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  // buf = [-]d[.ddd]e[+-]XX
  std::string text(buf);
  const bool negative = text[0] == '-';
  if (negative) text.erase(0, 1);
  const size_t e_pos = text.find('e');
  const int exponent = std::atoi(text.c_str() + e_pos + 1);
  std::string digits;
  for (size_t i = 0; i < e_pos; ++i) {
    if (text[i] != '.') digits += text[i];
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();

  std::string out;
  const double magnitude = std::fabs(value);
  if (magnitude >= 1e-3 && magnitude < 1e7) {
    if (exponent >= 0) {
      const size_t int_len = static_cast<size_t>(exponent) + 1;
      if (digits.size() <= int_len) {
        out = digits + std::string(int_len - digits.size(), '0') + ".0";
      } else {
        out = digits.substr(0, int_len) + "." + digits.substr(int_len);
      }
    } else {
      out =
          "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    }
  } else {
    out = digits.substr(0, 1) + "." +
          (digits.size() > 1 ? digits.substr(1) : "0") + "E" +
          std::to_string(exponent);
  }
  return negative ? "-" + out : out;
}

}  // namespace bg::sim
