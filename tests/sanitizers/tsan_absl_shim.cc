// ThreadSanitizer shim for Debian's prebuilt Abseil: makes absl::Mutex and
// absl::CondVar visible to TSan as synchronization.
//
// Why: libabsl_synchronization.so is not compiled with -fsanitize=thread, and
// absl::Mutex is built on its own atomics and futex calls, not on pthread_mutex
// (which TSan intercepts). Under TSan every access guarded by an absl::Mutex
// therefore looks like a data race (verified with a 10-line program: two
// threads incrementing a counter under absl::MutexLock are reported).
//
// What: this file, linked into each test executable of the ThreadSanitizer
// build only (tests/concurrency.cmake), defines the out-of-line
// lock/unlock/wait entry points of absl::Mutex and absl::CondVar. The
// executable's definitions take precedence over the shared library's; each one
// forwards to the library's real function (dlsym(RTLD_NEXT)) and tells TSan
// about the happens-before edge: __tsan_release(mu) before a mutex is given up,
// and
// __tsan_acquire(mu) after it is taken; a Condition is evaluated between an
// acquire and a release of its mutex (absl may evaluate it inside the library
// or in another thread's Unlock). This models exactly what a mutex guarantees
// (all writes of the previous holder are visible to the next one) and nothing
// more, so real races on data read or written outside the lock are still
// reported. Not modelled: lock-order (deadlock) detection and reader/reader
// distinctions (readers are treated like writers, which can hide a race between
// two readers that write).
//
// Thread-safety: the forwarding pointers are resolved once (function-local
// statics).
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/config.h"
#include "absl/base/macros.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

extern "C" {
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
}

namespace {

// Itanium-mangled names of the library's functions, e.g.
// "_ZN4absl7debian35Mutex4LockEv" for absl::debian3::Mutex::Lock() (Debian
// builds Abseil with the inline namespace "debian3"; "S0_" in a suffix refers
// back to that namespace).
#ifndef ABSL_OPTION_INLINE_NAMESPACE_NAME
#error \
    "tsan_absl_shim expects Abseil built with an inline namespace (Debian: debian3)"
#endif
std::string Mangled(const char* suffix) {
  const std::string ns =
      ABSL_INTERNAL_TOKEN_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  return "_ZN4absl" + std::to_string(ns.size()) + ns + suffix;
}

template <typename Fn>
Fn Real(const char* suffix) {
  const std::string name = Mangled(suffix);
  void* sym = dlsym(RTLD_NEXT, name.c_str());
  if (sym == nullptr) {
    std::fprintf(stderr, "tsan_absl_shim: %s not found in the shared Abseil\n",
                 name.c_str());
    std::abort();
  }
  return reinterpret_cast<Fn>(sym);
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

namespace {
// absl evaluates a waiter's Condition while the mutex is held, but not
// necessarily by the waiter and not necessarily where the shim can see it:
// inside the library's Await/LockWhen after it retook the lock, or inside
// another thread's Unlock. Each evaluation is therefore wrapped in
// acquire/release of the mutex, as if it were its own critical section.
struct TracedCondition {
  const Condition* cond;
  Mutex* mu;
  static bool Eval(TracedCondition* self) {
    __tsan_acquire(self->mu);
    const bool r = self->cond->Eval();
    __tsan_release(self->mu);
    return r;
  }
};
}  // namespace

void Mutex::Lock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex4LockEv");
  real(this);
  __tsan_acquire(this);
}

void Mutex::Unlock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex6UnlockEv");
  __tsan_release(this);
  real(this);
}

bool Mutex::TryLock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<bool (*)(Mutex*)>("5Mutex7TryLockEv");
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

void Mutex::ReaderLock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex10ReaderLockEv");
  real(this);
  __tsan_acquire(this);
}

void Mutex::ReaderUnlock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex12ReaderUnlockEv");
  __tsan_release(this);
  real(this);
}

bool Mutex::ReaderTryLock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<bool (*)(Mutex*)>("5Mutex13ReaderTryLockEv");
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

// Await*: called with the lock held; the library releases and retakes it
// inside.
void Mutex::Await(const Condition& cond) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "5Mutex5AwaitERKNS0_9ConditionE");
  __tsan_release(this);
  TracedCondition traced{&cond, this};
  real(this, Condition(&TracedCondition::Eval, &traced));
  __tsan_acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real =
      Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
          "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  __tsan_release(this);
  TracedCondition traced{&cond, this};
  const bool r =
      real(this, Condition(&TracedCondition::Eval, &traced), timeout);
  __tsan_acquire(this);
  return r;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, absl::Time)>(
      "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  __tsan_release(this);
  TracedCondition traced{&cond, this};
  const bool r =
      real(this, Condition(&TracedCondition::Eval, &traced), deadline);
  __tsan_acquire(this);
  return r;
}

void Mutex::LockWhen(const Condition& cond) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "5Mutex8LockWhenERKNS0_9ConditionE");
  TracedCondition traced{&cond, this};
  real(this, Condition(&TracedCondition::Eval, &traced));
  __tsan_acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real =
      Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
          "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  TracedCondition traced{&cond, this};
  const bool r =
      real(this, Condition(&TracedCondition::Eval, &traced), timeout);
  __tsan_acquire(this);
  return r;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, absl::Time)>(
      "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  TracedCondition traced{&cond, this};
  const bool r =
      real(this, Condition(&TracedCondition::Eval, &traced), deadline);
  __tsan_acquire(this);
  return r;
}

// CondVar waits release `mu` inside the library and hold it again on return.
void CondVar::Wait(Mutex* mu) {
  static const auto real =
      Real<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  real(this, mu);
  __tsan_acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, absl::Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  __tsan_release(mu);
  const bool r = real(this, mu, timeout);
  __tsan_acquire(mu);
  return r;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, absl::Time)>(
      "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  __tsan_release(mu);
  const bool r = real(this, mu, deadline);
  __tsan_acquire(mu);
  return r;
}

ABSL_NAMESPACE_END
}  // namespace absl
