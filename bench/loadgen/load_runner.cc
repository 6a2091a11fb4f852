#include "bench/loadgen/load_runner.h"

#include <httplib.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/loadgen/sim_stats.h"

namespace bg::loadgen {

// Runs functions at given steady-clock times on one thread of its own.
class LoadRunner::DelayQueue {
 public:
  DelayQueue() : thread_([this] { Loop(); }) {}
  ~DelayQueue() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
      cv_.Signal();
    }
    thread_.join();
  }

  void Schedule(Clock::time_point when, std::function<void()> fn) {
    absl::MutexLock lock(&mu_);
    queue_.emplace(when, std::move(fn));
    cv_.Signal();
  }

 private:
  void Loop() {
    absl::MutexLock lock(&mu_);
    while (!stop_) {
      if (queue_.empty()) {
        cv_.Wait(&mu_);
        continue;
      }
      const auto now = Clock::now();
      auto first = queue_.begin();
      if (first->first > now) {
        cv_.WaitWithTimeout(&mu_, absl::FromChrono(first->first - now));
        continue;
      }
      std::function<void()> fn = std::move(first->second);
      queue_.erase(first);
      mu_.Unlock();
      fn();
      mu_.Lock();
    }
  }

  absl::Mutex mu_;
  absl::CondVar cv_;
  std::multimap<Clock::time_point, std::function<void()>> queue_
      ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

LoadRunner::LoadRunner(Target* target, RunnerOptions options,
                       RunRecorder* recorder)
    : target_(target), options_(std::move(options)), recorder_(recorder) {}

LoadRunner::~LoadRunner() = default;

std::chrono::nanoseconds LoadRunner::Run(bool* complete) {
  start_ = Clock::now();
  issue_end_ = start_ + options_.max_duration;
  timer_ = std::make_unique<DelayQueue>();
  std::thread progress([this] { ProgressLoop(); });
  std::thread poller;
  if (!options_.sim_stats_url.empty())
    poller = std::thread([this] { PollLoop(); });

  // Calls still running after the last one was issued end by their deadline;
  // the margin covers slow callbacks. Past it, the run is reported as
  // incomplete.
  const absl::Duration drain_bound =
      absl::FromChrono(options_.deadline) + absl::Seconds(10);
  bool drained = false;
  if (options_.open_loop) {
    RunOpen();
    absl::MutexLock lock(&mu_);
    drained = mu_.AwaitWithTimeout(
        absl::Condition(
            +[](int64_t* n) { return *n == 0; }, &outstanding_),
        drain_bound);
  } else {
    RunClosed();
    absl::MutexLock lock(&mu_);
    // Virtual users stop issuing at issue_end_, then drain.
    const absl::Duration until_issue_end = absl::FromChrono(
        std::max(issue_end_ - Clock::now(), Clock::duration::zero()));
    drained = mu_.AwaitWithTimeout(
        absl::Condition(
            +[](int64_t* n) { return *n == 0; }, &active_vus_),
        until_issue_end + drain_bound);
  }
  const auto elapsed = Clock::now() - start_;
  {
    absl::MutexLock lock(&mu_);
    finished_ = true;
  }
  progress.join();
  if (poller.joinable()) poller.join();
  *complete = drained;
  return elapsed;
}

CallSpec LoadRunner::Plan(int64_t seq) {
  CallSpec call;
  call.seq = seq;
  call.op = options_.mix.Draw(options_.mix_seed, seq);
  if (NeedsAccount(call.op)) {
    if (const auto account = accounts_.Pick(options_.mix_seed, seq)) {
      call.account_seq = *account;
    } else {
      call.op = options_.mix.FallbackRegistration();
      recorder_->RecordFallback();
    }
  }
  return call;
}

void LoadRunner::Finish(const CallSpec& call, Clock::time_point due,
                        Clock::time_point at, const CallResult& r) {
  recorder_->RecordResult(
      Since(at),
      std::chrono::duration_cast<std::chrono::microseconds>(at - due), r,
      call.op);
  if (r.kind == OutcomeKind::kOk && IsRegistration(call.op)) {
    accounts_.Add(call.seq);
  }
}

void LoadRunner::RunClosed() {
  const int64_t vus =
      std::max<int64_t>(1, std::min(options_.concurrency, options_.count));
  {
    absl::MutexLock lock(&mu_);
    active_vus_ = vus;
    vu_succeeded_.assign(static_cast<size_t>(vus), false);
  }
  for (int64_t i = 0; i < vus; ++i) VuNext(i);
}

void LoadRunner::VuNext(int64_t vu, std::optional<CallSpec> retry) {
  const Clock::time_point t0 = Clock::now();
  if (t0 >= issue_end_) {
    VuFinished();
    return;
  }
  CallSpec call;
  if (retry) {
    call = *retry;
  } else {
    const int64_t seq = next_seq_.fetch_add(1, std::memory_order_relaxed);
    if (seq >= options_.count) {
      VuFinished();
      return;
    }
    call = Plan(seq);
  }
  recorder_->RecordSent(Since(t0), call.op);
  {
    absl::MutexLock lock(&mu_);
    ++outstanding_;
  }
  target_->Start(call, [this, vu, call, t0](const CallResult& r) {
    const Clock::time_point t1 = Clock::now();
    Finish(call, t0, t1, r);
    bool first_success = false;
    {
      absl::MutexLock lock(&mu_);
      --outstanding_;
      if (r.kind == OutcomeKind::kOk && !vu_succeeded_[vu]) {
        vu_succeeded_[vu] = true;
        first_success = true;
      }
    }
    if (first_success) recorder_->RecordFirstSuccess(Since(t1));
    const bool rejected = r.kind == OutcomeKind::kRejected;
    Clock::duration wait = Clock::duration::zero();
    if (rejected && r.pushback > Clock::duration::zero()) {
      if (options_.honor_pushback) wait = r.pushback;
    } else if (rejected || r.kind == OutcomeKind::kError) {
      wait = options_.failure_wait;
    }
    std::optional<CallSpec> again;
    if (rejected) again = call;
    if (wait > Clock::duration::zero()) {
      // Never wait past the end of the run: the user would simply not come
      // back.
      timer_->Schedule(std::min<Clock::time_point>(t1 + wait, issue_end_),
                       [this, vu, again] { VuNext(vu, again); });
    } else if (r.kind != OutcomeKind::kOk) {
      // Local failures (and bare rejections) may be reported fast, even
      // inline: go through the timer thread so a dead target cannot recurse
      // down this stack.
      timer_->Schedule(t1, [this, vu, again] { VuNext(vu, again); });
    } else {
      VuNext(vu);
    }
  });
}

void LoadRunner::VuFinished() {
  absl::MutexLock lock(&mu_);
  --active_vus_;
}

void LoadRunner::RunOpen() {
  const ArrivalSchedule& schedule = options_.schedule;
  for (int64_t i = 0; i < schedule.size(); ++i) {
    const Clock::time_point due =
        start_ + std::chrono::duration_cast<Clock::duration>(schedule.DueAt(i));
    const auto wait = due - Clock::now();
    if (wait > Clock::duration::zero()) absl::SleepFor(absl::FromChrono(wait));
    const CallSpec call = Plan(i);
    bool full;
    {
      absl::MutexLock lock(&mu_);
      full = outstanding_ >= options_.max_outstanding;
      if (!full) ++outstanding_;
    }
    if (full) {
      recorder_->RecordNotSent(Since(due), call.op);
      continue;
    }
    recorder_->RecordSent(Since(due), call.op);
    target_->Start(call, [this, call, due](const CallResult& r) {
      Finish(call, due, Clock::now(), r);
      absl::MutexLock lock(&mu_);
      --outstanding_;
    });
  }
}

void LoadRunner::PrintProgress(bool final_line) {
  const RunRecorder::Progress p = recorder_->progress();
  int64_t outstanding;
  {
    absl::MutexLock lock(&mu_);
    outstanding = outstanding_;
  }
  const double t = std::chrono::duration<double>(Clock::now() - start_).count();
  auto c = [&p](OutcomeKind k) { return p.counts[static_cast<int>(k)]; };
  const int64_t planned =
      options_.open_loop ? options_.schedule.size() : options_.count;
  const int64_t done = c(OutcomeKind::kOk) + c(OutcomeKind::kRejected) +
                       c(OutcomeKind::kTimeout) + c(OutcomeKind::kError) +
                       c(OutcomeKind::kNotSent);
  std::string backlog;
  if (p.last_backlog)
    backlog = absl::StrFormat(" backlog %.0f", *p.last_backlog);
  const std::string line = absl::StrFormat(
      "%6.1fs sent %d ok %d rej %d timeout %d err %d not_sent %d inflight %d%s",
      t, p.sent, c(OutcomeKind::kOk), c(OutcomeKind::kRejected),
      c(OutcomeKind::kTimeout), c(OutcomeKind::kError),
      c(OutcomeKind::kNotSent), outstanding, backlog);
  if (options_.progress == ProgressMode::kTty) {
    constexpr int kWidth = 24;
    const double frac = planned > 0
                            ? std::min(1.0, static_cast<double>(done) /
                                                static_cast<double>(planned))
                            : 0.0;
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar(filled, '#');
    bar.append(kWidth - filled, '.');
    std::fprintf(stderr, "\r[%s] %3.0f%% %s\033[K%s", bar.c_str(), frac * 100,
                 line.c_str(), final_line ? "\n" : "");
  } else {
    std::fprintf(stderr, "billing-loadgen: %s\n", line.c_str());
  }
  std::fflush(stderr);
}

void LoadRunner::ProgressLoop() {
  const auto print_period = options_.progress == ProgressMode::kTty
                                ? std::chrono::milliseconds(250)
                                : std::chrono::milliseconds(5000);
  Clock::time_point last_print = Clock::now();
  for (;;) {
    bool done;
    int64_t outstanding;
    {
      // Wake every 250 ms to sample the in-flight gauge for the time series.
      absl::MutexLock lock(&mu_);
      done = mu_.AwaitWithTimeout(absl::Condition(&finished_),
                                  absl::Milliseconds(250));
      outstanding = outstanding_;
    }
    const auto now = Clock::now();
    recorder_->RecordOutstanding(Since(now), outstanding);
    if (done) break;
    if (options_.progress != ProgressMode::kNone &&
        now - last_print >= print_period) {
      last_print = now;
      PrintProgress(false);
    }
  }
  if (options_.progress != ProgressMode::kNone) PrintProgress(true);
}

void LoadRunner::PollLoop() {
  // URL: http://host:port[/path]; the path defaults to /sim/stats.
  std::string url = options_.sim_stats_url;
  std::string path = "/sim/stats";
  const size_t scheme = url.find("://");
  const size_t path_at =
      url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (path_at != std::string::npos) {
    path = url.substr(path_at);
    url = url.substr(0, path_at);
  }
  httplib::Client client(url);
  client.set_connection_timeout(0, 500000);
  client.set_read_timeout(0, 800000);
  bool warned = false;
  for (;;) {
    const auto tick = Clock::now();
    auto res = client.Get(path.c_str());
    std::optional<double> backlog;
    if (res && res->status == 200) {
      backlog = ExtractNumberField(res->body, options_.backlog_field);
    }
    if (backlog) {
      recorder_->RecordBacklog(Since(tick), *backlog);
    } else if (!warned) {
      warned = true;
      std::fprintf(stderr,
                   "billing-loadgen: no number at '%s' in GET %s%s (status "
                   "%d); backlog column "
                   "stays empty until one appears\n",
                   options_.backlog_field.c_str(), url.c_str(), path.c_str(),
                   res ? res->status : -1);
    }
    const auto wait = tick + std::chrono::seconds(1) - Clock::now();
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(
            absl::Condition(&finished_),
            absl::FromChrono(std::max(wait, Clock::duration::zero())))) {
      return;
    }
  }
}

}  // namespace bg::loadgen
