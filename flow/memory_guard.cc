#include "flow/memory_guard.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

namespace bg::flow {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;

// The second field of /proc/self/statm: resident pages.
uint64_t ReadStatm() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0;
  unsigned long long resident = 0;
  const int fields = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (fields != 2) return 0;
  const long page = sysconf(_SC_PAGESIZE);
  return resident * static_cast<uint64_t>(page > 0 ? page : 4096);
}

}  // namespace

MemoryGuard::Process MemoryGuard::Process::Own() {
  return Process{ReadStatm, [] { malloc_trim(0); }};
}

MemoryGuard::MemoryGuard(Clock* clock, const Options& options, Process process)
    : clock_(clock),
      options_(options),
      process_(std::move(process)),
      bound_bytes_(options.max_resident_mb * kMiB) {}

void MemoryGuard::Read(Clock::TimePoint now) {
  resident_ = process_.read ? process_.read() : 0;
  read_at_ = now;
  read_once_ = true;
  admitted_since_read_ = 0;
}

void MemoryGuard::ReadIfStale(Clock::TimePoint now) {
  if (!read_once_ || now - read_at_ >= options_.read_interval) Read(now);
}

bool MemoryGuard::UnderBound() const {
  if (resident_ == 0) return true;  // unreadable: no figure to refuse on
  return resident_ + admitted_since_read_ * options_.per_call_bytes <
         bound_bytes();
}

void MemoryGuard::ReleaseIfOver(Clock::TimePoint now) {
  if (UnderBound() || !process_.release) return;
  if (released_once_ && now - released_at_ < options_.release_interval) return;
  // Over the bound: what was freed may still be counted as resident.
  process_.release();
  released_once_ = true;
  released_at_ = now;
  Read(now);
}

bool MemoryGuard::Admit() {
  if (bound_bytes() == 0) return true;
  absl::MutexLock lock(&mu_);
  const Clock::TimePoint now = clock_->Now();
  ReadIfStale(now);
  ReleaseIfOver(now);
  if (!UnderBound()) return false;
  ++admitted_since_read_;
  return true;
}

uint64_t MemoryGuard::Resident() {
  absl::MutexLock lock(&mu_);
  const Clock::TimePoint now = clock_->Now();
  ReadIfStale(now);
  if (bound_bytes() != 0) ReleaseIfOver(now);
  return resident_;
}

void MemoryGuard::SetBound(size_t max_resident_mb) {
  bound_bytes_.store(max_resident_mb * kMiB, std::memory_order_relaxed);
}

}  // namespace bg::flow
