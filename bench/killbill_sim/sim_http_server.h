// SimHttpServer: cpp-httplib's Server with Tomcat-like connection handling for
// killbill-sim.
//
// httplib serves a connection on one thread from accept to close. This subclass
// replaces that per-connection loop (process_and_close_socket) so the sim can
// clang-format off
//   * close a connection at once when the connection limits are exceeded
//     (Tomcat's full accept queue), see ConnectionWorkers;
//   * reset a connection (RST, no response byte) when a fault asks for it;
//   * close its listening socket at any moment (refuse outage) and bind
//     again later.
// clang-format on
// Handlers reach the connection they run on through CurrentConnection()
// (thread-local: a connection is served by one thread from start to end).
//
// Thread-safety: as httplib::Server; CloseListener() may be called from any
// thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "httplib.h"

namespace bg::sim {

// Per-connection state a handler may change.
struct ConnectionContext {
  int fd = -1;
  // Drop the response and reset (RST) the connection once the handler returns.
  bool reset = false;
};

// The connection the calling thread is serving, or nullptr outside a handler.
ConnectionContext* CurrentConnection();

// Thread pool for connections: a thread per open connection, created lazily up
// to `max_connections`; up to `accept_count` further connections wait FIFO;
// beyond that a connection is closed at once (on the accept thread) and
// `on_reject` is called. Thread-safety: enqueue() from the accept thread,
// shutdown() once; both thread-safe.
class ConnectionWorkers final : public httplib::TaskQueue {
 public:
  ConnectionWorkers(size_t max_connections, size_t accept_count,
                    std::function<void()> on_reject);
  ~ConnectionWorkers() override;
  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

 private:
  void Work();

  const size_t max_connections_;
  const size_t accept_count_;
  const std::function<void()> on_reject_;
  // std::mutex rather than absl::Mutex: httplib's TaskQueue contract is
  // std-based and this lock guards only the queue below.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  std::vector<std::thread> threads_;         // guarded by mu_
  size_t idle_ = 0;                          // guarded by mu_
  bool shutdown_ = false;                    // guarded by mu_
};

class SimHttpServer final : public httplib::Server {
 public:
  struct Limits {
    size_t max_connections = 8192;
    size_t accept_count = 100;
    size_t keep_alive_max_requests = 100;
    int keep_alive_timeout_ms = 20000;
  };
  SimHttpServer(const Limits& limits, std::function<void()> on_reject);

  // Closes the listening socket now (listen_after_bind() then returns); safe
  // before listening and repeatedly.
  void CloseListener();
  // Re-lists the bound socket with a kernel accept backlog of `backlog`: the
  // shared libcpp-httplib was compiled with CPPHTTPLIB_LISTEN_BACKLOG 5, and
  // 100 clients connecting at once then lose SYNs/ACKs (1 s retransmits, failed
  // first reads). Call after binding.
  void SetListenBacklog(int backlog);
  // True while a listening socket is open.
  bool IsBound() const { return svr_sock_ != INVALID_SOCKET; }

 private:
  bool process_and_close_socket(socket_t sock) override;

  const Limits limits_;
};

}  // namespace bg::sim
