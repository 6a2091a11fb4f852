#include "bench/killbill_sim/sim_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace bg::sim {
namespace {

thread_local ConnectionContext* t_connection = nullptr;
// Set on the accept thread while it disposes of a connection over the limits.
thread_local bool t_reject_connection = false;

// Tomcat's connectionTimeout (20 s) bounds a stalled request read.
constexpr int kReadTimeoutMs = 20000;
constexpr int kWriteTimeoutMs = 5000;
// Keep-alive waits are sliced so a closed listener is noticed quickly.
constexpr int kPollSliceMs = 50;

bool PollFd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

void ResetAndClose(int fd) {
  linger lg{1, 0};  // close with RST, not FIN
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
}

void AddressOf(const sockaddr_storage& addr, std::string& ip, int& port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    port = ntohs(a->sin6_port);
  }
  ip = buf;
}

// A buffered socket stream: httplib's request parser reads byte by byte.
class BufferedSocketStream final : public httplib::Stream {
 public:
  BufferedSocketStream(int fd, ConnectionContext* context)
      : fd_(fd), context_(context) {}

  bool has_buffered() const { return offset_ < length_; }

  bool is_readable() const override {
    return has_buffered() || PollFd(fd_, POLLIN, kReadTimeoutMs);
  }
  bool is_writable() const override {
    return PollFd(fd_, POLLOUT, kWriteTimeoutMs);
  }

  ssize_t read(char* ptr, size_t size) override {
    if (!has_buffered()) {
      if (!PollFd(fd_, POLLIN, kReadTimeoutMs)) return -1;
      if (size >= sizeof buffer_) return Recv(ptr, size);
      const ssize_t n = Recv(buffer_, sizeof buffer_);
      if (n <= 0) return n;
      offset_ = 0;
      length_ = static_cast<size_t>(n);
    }
    const size_t n = std::min(size, length_ - offset_);
    std::memcpy(ptr, buffer_ + offset_, n);
    offset_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (context_->reset) return -1;  // a fault: nothing may reach the client
    if (!is_writable()) return -1;
    for (;;) {
      const ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      return n;
    }
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      AddressOf(addr, ip, port);
    }
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      AddressOf(addr, ip, port);
    }
  }
  socket_t socket() const override { return fd_; }

 private:
  ssize_t Recv(char* ptr, size_t size) {
    for (;;) {
      const ssize_t n = ::recv(fd_, ptr, size, 0);
      if (n < 0 && errno == EINTR) continue;
      return n;
    }
  }

  const int fd_;
  ConnectionContext* const context_;
  char buffer_[4096];
  size_t offset_ = 0;
  size_t length_ = 0;
};

}  // namespace

ConnectionContext* CurrentConnection() { return t_connection; }

ConnectionWorkers::ConnectionWorkers(size_t max_connections,
                                     size_t accept_count,
                                     std::function<void()> on_reject)
    : max_connections_(max_connections),
      accept_count_(accept_count),
      on_reject_(std::move(on_reject)) {}

ConnectionWorkers::~ConnectionWorkers() { shutdown(); }

void ConnectionWorkers::enqueue(std::function<void()> fn) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    const bool at_thread_limit = threads_.size() >= max_connections_;
    // Connections that no idle thread will pick up wait in the "accept queue".
    const size_t waiting = queue_.size() > idle_ ? queue_.size() - idle_ : 0;
    if (!shutdown_ && !(at_thread_limit && waiting >= accept_count_)) {
      queue_.push_back(std::move(fn));
      if (idle_ < queue_.size() && !at_thread_limit) {
        threads_.emplace_back([this] { Work(); });
      }
      cv_.notify_one();
      return;
    }
  }
  // Over the limits: count it first (a client that sees the close may read the
  // count at once), then run the task with the reject flag, which closes the
  // socket.
  if (on_reject_) on_reject_();
  t_reject_connection = true;
  fn();
  t_reject_connection = false;
}

void ConnectionWorkers::Work() {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> lock(mu_);
      ++idle_;
      cv_.wait(lock, [this] { return shutdown_ || !queue_.empty(); });
      --idle_;
      if (queue_.empty()) return;  // shutdown with nothing left
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
}

void ConnectionWorkers::shutdown() {
  std::vector<std::thread> threads;
  {
    std::unique_lock<std::mutex> lock(mu_);
    shutdown_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
}

SimHttpServer::SimHttpServer(const Limits& limits,
                             std::function<void()> on_reject)
    : limits_(limits) {
  // Only for the Keep-Alive response header; the loop below enforces them.
  set_keep_alive_max_count(limits.keep_alive_max_requests);
  set_keep_alive_timeout(limits.keep_alive_timeout_ms / 1000);
  new_task_queue = [limits, on_reject] {
    return new ConnectionWorkers(limits.max_connections, limits.accept_count,
                                 on_reject);
  };
}

void SimHttpServer::CloseListener() {
  const socket_t sock = svr_sock_.exchange(INVALID_SOCKET);
  if (sock != INVALID_SOCKET) {
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
  }
}

void SimHttpServer::SetListenBacklog(int backlog) {
  const socket_t sock = svr_sock_;
  // listen() on a listening socket only changes its backlog (Linux).
  if (sock != INVALID_SOCKET) ::listen(sock, backlog);
}

bool SimHttpServer::process_and_close_socket(socket_t sock) {
  if (t_reject_connection) {
    ResetAndClose(sock);
    return false;
  }
  // httplib writes status+headers and the body separately: without TCP_NODELAY,
  // Nagle plus delayed ACKs add ~40 ms to every keep-alive exchange.
  const int one = 1;
  ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ConnectionContext context;
  context.fd = sock;
  t_connection = &context;
  BufferedSocketStream stream(sock, &context);
  bool ok = true;
  for (size_t served = 0; served < limits_.keep_alive_max_requests; ++served) {
    // Wait for the next request (or pipelined bytes) while the listener is
    // open.
    bool readable = stream.has_buffered();
    for (int waited = 0; !readable && waited < limits_.keep_alive_timeout_ms;
         waited += kPollSliceMs) {
      if (svr_sock_ == INVALID_SOCKET) break;
      readable = PollFd(sock, POLLIN, kPollSliceMs);
    }
    if (!readable || svr_sock_ == INVALID_SOCKET) break;
    const bool last = served + 1 == limits_.keep_alive_max_requests;
    bool connection_closed = false;
    ok = process_request(stream, last, connection_closed, nullptr);
    if (!ok || connection_closed || context.reset) break;
  }
  t_connection = nullptr;
  if (context.reset) {
    ResetAndClose(sock);
  } else {
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
  }
  return ok;
}

}  // namespace bg::sim
