// MemoryGuard: a memory budget at admission. It tells FlowControl to refuse a
// new call (RESOURCE_EXHAUSTED, reason "memory") while the process's resident
// memory would pass a configured bound, so 10,000 callers arriving at once
// cannot take the process past it: each open gRPC call holds its own arena
// (about 12 KB in gRPC 1.51, sized by gRPC, see bench/RESULTS.md) that no
// ResourceQuota bounds, and the queue's capacity counts calls, not bytes.
//
// Admission stays cheap: resident memory is read (Process::read, production:
// /proc/self/statm) at most once per read_interval; between two reads each
// call admitted counts as per_call_bytes more, so a burst that arrives between
// two reads is refused once it would pass the bound, not only at the next read.
// While over the bound (at an admission, or at Resident(), which
// FlowControl::Tick calls every second), Process::release (production: glibc's
// malloc_trim) gives the heap's free pages back to the system at most once per
// release_interval, so the resident figure falls back as soon as the calls
// that held the memory have been answered (glibc keeps freed pages otherwise,
// and the guard would go on refusing with nothing queued).
//
// What it cannot bound: gRPC allocates each call's arena when the call
// arrives, before any application code sees it, so a burst of simultaneous
// arrivals takes memory the guard only sees afterwards (bench/RESULTS.md:
// 10,000 calls at once took the process past 96 MiB with almost nothing
// queued yet).
//
// A bound of 0 turns the guard off (Admit() is always true; Resident() still
// reads, for the metric).
//
// Thread-safety: every method may be called from any thread (one internal
// absl::Mutex; the reader and the releaser run under it). The bound is an
// atomic read before the lock, so an Admit() with the guard off (the default)
// takes no lock on the admission path.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"

namespace bg::flow {

class MemoryGuard {
 public:
  struct Options {
    // The bound, MiB of resident memory (`queue.max_resident_mb`); 0: off.
    size_t max_resident_mb = 0;
    // Resident memory is read at most this often.
    Clock::Duration read_interval = std::chrono::milliseconds(50);
    // What one call admitted since the last read is assumed to add: a queued
    // call held ~21 KiB of resident memory in the measurement of
    // bench/RESULTS.md (gRPC's arena and buffers, and ours).
    size_t per_call_bytes = 24 * 1024;
    // Free heap pages are given back at most this often while refusing.
    Clock::Duration release_interval = std::chrono::seconds(1);
  };

  // How the guard reads the process's resident memory, in bytes (0: could not
  // read; the guard then admits), and gives free heap memory back.
  struct Process {
    std::function<uint64_t()> read;
    std::function<void()> release;
    // /proc/self/statm and malloc_trim(0).
    static Process Own();
  };

  MemoryGuard(Clock* clock, const Options& options,
              Process process = Process::Own());
  MemoryGuard(const MemoryGuard&) = delete;
  MemoryGuard& operator=(const MemoryGuard&) = delete;

  // True when one more call may be admitted (and counts it); false when
  // resident memory, or the last reading plus the calls admitted since, is at
  // or above the bound.
  bool Admit() ABSL_LOCKS_EXCLUDED(mu_);

  // Resident bytes, read again if the last reading is older than
  // read_interval. Over the bound, free heap pages are given back first (at
  // most once per release_interval): FlowControl::Tick calls it every
  // adjust_interval, so the figure falls back after a burst even when no new
  // call arrives.
  uint64_t Resident() ABSL_LOCKS_EXCLUDED(mu_);

  // A configuration reload: the new bound applies to the next Admit().
  void SetBound(size_t max_resident_mb) ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t bound_bytes() const {
    return bound_bytes_.load(std::memory_order_relaxed);
  }

 private:
  void ReadIfStale(Clock::TimePoint now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Read(Clock::TimePoint now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool UnderBound() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseIfOver(Clock::TimePoint now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  const Options options_;
  const Process process_;

  mutable absl::Mutex mu_;
  std::atomic<uint64_t> bound_bytes_;
  bool read_once_ ABSL_GUARDED_BY(mu_) = false;
  Clock::TimePoint read_at_ ABSL_GUARDED_BY(mu_);
  uint64_t resident_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t admitted_since_read_ ABSL_GUARDED_BY(mu_) = 0;
  bool released_once_ ABSL_GUARDED_BY(mu_) = false;
  Clock::TimePoint released_at_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bg::flow
