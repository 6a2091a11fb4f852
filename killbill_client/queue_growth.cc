#include "killbill_client/queue_growth.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace bg::killbill {

QueueGrowthDetector::QueueGrowthDetector(const QueueGrowthOptions& options)
    : options_(options),
      ring_(static_cast<size_t>(std::max(1, options.window))) {}

QueueGrowthDetector::Result QueueGrowthDetector::Sample(int64_t timestamp_ms,
                                                        double ready_entries) {
  if (!has_smoothed_) {
    smoothed_ = ready_entries;
    has_smoothed_ = true;
  } else {
    smoothed_ =
        options_.alpha * ready_entries + (1.0 - options_.alpha) * smoothed_;
  }

  const int capacity = static_cast<int>(ring_.size());
  if (count_ == 0) {
    origin_ms_ = timestamp_ms;
    origin_y_ = smoothed_;
  }
  const Point point{timestamp_ms, smoothed_};
  if (count_ < capacity) {
    ring_[static_cast<size_t>(count_++)] = point;
  } else {
    const Point& dropped = ring_[static_cast<size_t>(oldest_)];
    const double x = static_cast<double>(dropped.t_ms - origin_ms_);
    const double y = dropped.smoothed - origin_y_;
    sum_x_ -= x;
    sum_xx_ -= x * x;
    sum_y_ -= y;
    sum_xy_ -= x * y;
    ring_[static_cast<size_t>(oldest_)] = point;
    oldest_ = (oldest_ + 1) % capacity;
  }
  if (++since_rebase_ >= capacity) {
    Rebase();  // includes the new point
  } else {
    const double x = static_cast<double>(timestamp_ms - origin_ms_);
    const double y = smoothed_ - origin_y_;
    sum_x_ += x;
    sum_xx_ += x * x;
    sum_y_ += y;
    sum_xy_ += x * y;
  }

  Result result;
  result.smoothed = smoothed_;
  if (count_ >= options_.window && count_ >= 2) {
    const double n = static_cast<double>(count_);
    const double sxx = sum_xx_ - sum_x_ * sum_x_ / n;
    const double sxy = sum_xy_ - sum_x_ * sum_y_ / n;
    // All samples in the same millisecond: Kill Bill's regression yields NaN
    // there; we report "no slope" rather than fail the healthcheck.
    const double slope_per_ms = sxx > 0 ? sxy / sxx : 0.0;
    result.raw_slope_per_s = slope_per_ms * 1000.0;
    result.slope = RoundHalfUp(slope_per_ms * 100.0, 2);
    result.growing = result.slope > options_.growing_threshold;
  }
  last_ = result;
  return result;
}

void QueueGrowthDetector::Rebase() {
  const int capacity = static_cast<int>(ring_.size());
  const Point& oldest = ring_[static_cast<size_t>(oldest_)];
  origin_ms_ = oldest.t_ms;
  origin_y_ = oldest.smoothed;
  sum_x_ = sum_xx_ = sum_y_ = sum_xy_ = 0.0;
  for (int i = 0; i < count_; ++i) {
    const Point& p = ring_[static_cast<size_t>((oldest_ + i) % capacity)];
    const double x = static_cast<double>(p.t_ms - origin_ms_);
    const double y = p.smoothed - origin_y_;
    sum_x_ += x;
    sum_xx_ += x * x;
    sum_y_ += y;
    sum_xy_ += x * y;
  }
  since_rebase_ = 0;
}

double RoundHalfUp(double value, int decimals) {
  if (!std::isfinite(value)) return value;
  const double scale = std::pow(10.0, decimals);
  const double magnitude = std::fabs(value) * scale;
  // Away from a tie the decimal detour below cannot change the result (it
  // moves `magnitude` by less than 1e-8), and skipping it keeps Sample() cheap.
  const double fraction = magnitude - std::floor(magnitude);
  double scaled = magnitude;
  if (std::fabs(fraction - 0.5) <= 1e-6) {
    // Near a tie, go through the decimal text (as BigDecimal.valueOf would) so
    // that 0.125 rounds to 0.13 and 1.005 (really 1.00499999...) behaves like
    // its decimal text.
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals + 6, magnitude);
    scaled = std::strtod(buf, nullptr);
  }
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

}  // namespace bg::killbill
