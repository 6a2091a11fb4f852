// Subprocess: starts a program for an end-to-end test, reads its stdout until
// it says which port it bound, and kills it (SIGKILL if SIGTERM is ignored)
// when the test is done.
//
// Waiting is bounded and event-driven (poll on the child's stdout with a
// deadline): tests never sleep. Not thread-safe; one test thread owns each
// Subprocess.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace bg::testing {

// Re-checks `condition` (state another process shows: counters over HTTP,
// rows in PostgreSQL, a metric) every `poll` until it holds or `timeout`
// passes; true if it held. Used only where no blocking primitive exists (an
// operation's completion is waited for with GetOperation's own server-side
// wait instead). The pause between checks is a deadline-bounded condition
// wait, never past `timeout`.
inline bool WaitUntil(
    const std::function<bool()>& condition, std::chrono::milliseconds timeout,
    std::chrono::milliseconds poll = std::chrono::milliseconds(50)) {
  using Steady = std::chrono::steady_clock;
  const Steady::time_point give_up = Steady::now() + timeout;
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> lock(mu);
  while (!condition()) {
    const Steady::time_point now = Steady::now();
    if (now >= give_up) return false;
    cv.wait_until(lock, std::min(give_up, now + poll));
  }
  return true;
}

// A path under the test temp directory that belongs to the running test alone
// (suite, test name and pid in it): ctest runs tests in parallel, so two tests
// writing one fixed file name would read each other's config.
inline std::string TestFile(const std::string& suffix) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = "bg-" + std::to_string(getpid());
  if (info != nullptr) {
    name += std::string("-") + info->test_suite_name() + "." + info->name();
  }
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  return ::testing::TempDir() + "/" + name + "-" + suffix;
}

class Subprocess {
 public:
  // With `capture_stderr`, the child's stderr goes to the same pipe as its
  // stdout.
  explicit Subprocess(std::vector<std::string> argv,
                      bool capture_stderr = false) {
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      if (capture_stderr) dup2(out[1], STDERR_FILENO);
      close(out[0]);
      close(out[1]);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(out[1]);
    out_fd_ = out[0];
  }
  ~Subprocess() { Stop(); }
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }

  // Reads stdout until a line matches `pattern` (first capture group returned)
  // or the timeout passes or the child closes stdout.
  std::optional<std::string> WaitForLine(const std::string& pattern,
                                         std::chrono::milliseconds timeout) {
    const std::regex re(pattern);
    const auto give_up = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      size_t nl;
      while ((nl = buffer_.find('\n')) != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        output_ += line + "\n";
        std::smatch m;
        if (std::regex_search(line, m, re))
          return m.size() > 1 ? m[1].str() : line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          give_up - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{out_fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      const ssize_t n = read(out_fd_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, n);
    }
  }

  // Sends SIGTERM and waits up to `timeout` for exit; returns the exit status,
  // or nullopt if the child had to be killed.
  std::optional<int> Terminate(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return std::nullopt;
    kill(pid_, SIGTERM);
    const auto give_up = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    // waitpid has no timeout: poll the child's stdout for EOF (it closes on
    // exit) instead.
    while (std::chrono::steady_clock::now() < give_up) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      pollfd p{out_fd_, POLLIN, 0};
      char chunk[4096];
      if (poll(&p, 1, 20) > 0 && read(out_fd_, chunk, sizeof chunk) <= 0) {
        waitpid(pid_, &status, 0);
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
    }
    Stop();
    return std::nullopt;
  }

  // Everything read so far (complete lines) plus whatever is left until EOF or
  // `timeout`.
  std::string ReadAll(std::chrono::milliseconds timeout) {
    WaitForLine("(?!)",
                timeout);  // A pattern that never matches: reads until EOF.
    return output_ + buffer_;
  }

  const std::string& output() const { return output_; }

 private:
  void Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (out_fd_ >= 0) {
      close(out_fd_);
      out_fd_ = -1;
    }
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buffer_;
  std::string output_;
};

}  // namespace bg::testing
