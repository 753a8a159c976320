// Asio I/O inside the runtime: a TCP echo over loopback with AwaitAsio.
#include "runtime/io.h"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "boost/asio/buffer.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/write.hpp"
#include "boost/system/error_code.hpp"
#include "gtest/gtest.h"
#include "runtime/runtime.h"
#include "runtime/time.h"
#include "tests/runtime/test_util.h"

namespace awaitd::runtime {
namespace {

using boost::asio::ip::tcp;
using boost::system::error_code;
using testing::Watchdog;
using namespace std::chrono_literals;

// Echoes one connection until the peer closes its sending side.
Task<std::size_t> ServeOne(tcp::acceptor* acceptor) {
  auto [ec, sock] = co_await AwaitAsio<error_code, tcp::socket>(
      [acceptor](auto h) { acceptor->async_accept(std::move(h)); });
  if (ec) throw boost::system::system_error(ec, "accept");
  std::array<char, 4096> buf;
  std::size_t echoed = 0;
  for (;;) {
    auto [rec, n] = co_await AwaitAsio<error_code, std::size_t>([&](auto h) {
      sock.async_read_some(boost::asio::buffer(buf), std::move(h));
    });
    if (rec == boost::asio::error::eof) break;
    if (rec) throw boost::system::system_error(rec, "server read");
    auto [wec, w] = co_await AwaitAsio<error_code, std::size_t>([&](auto h) {
      boost::asio::async_write(sock, boost::asio::buffer(buf.data(), n),
                               std::move(h));
    });
    if (wec) throw boost::system::system_error(wec, "server write");
    echoed += w;
  }
  co_return echoed;
}

Task<std::string> Client(std::uint16_t port, std::string message) {
  tcp::socket sock(CurrentIoContext());
  auto [cec] = co_await AwaitAsio<error_code>([&](auto h) {
    sock.async_connect(
        tcp::endpoint(boost::asio::ip::address_v4::loopback(), port),
        std::move(h));
  });
  if (cec) throw boost::system::system_error(cec, "connect");
  auto [wec,
        written] = co_await AwaitAsio<error_code, std::size_t>([&](auto h) {
    boost::asio::async_write(sock, boost::asio::buffer(message), std::move(h));
  });
  if (wec) throw boost::system::system_error(wec, "client write");
  if (written != message.size()) throw std::runtime_error("short write");
  std::string got;
  std::array<char, 8192> buf;
  while (got.size() < message.size()) {
    auto [rec, n] = co_await AwaitAsio<error_code, std::size_t>([&](auto h) {
      sock.async_read_some(boost::asio::buffer(buf), std::move(h));
    });
    if (rec) throw boost::system::system_error(rec, "client read");
    got.append(buf.data(), n);
  }
  sock.shutdown(tcp::socket::shutdown_send);
  co_return got;
}

std::string Pattern(std::size_t n, int seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  return s;
}

Task<bool> EchoSession(int clients, std::size_t bytes) {
  tcp::acceptor acceptor(
      CurrentIoContext(),
      tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0));
  const std::uint16_t port = acceptor.local_endpoint().port();
  std::vector<JoinHandle<std::size_t>> servers;
  std::vector<JoinHandle<std::string>> peers;
  for (int c = 0; c < clients; ++c) {
    servers.push_back(Spawn(ServeOne(&acceptor)));
    peers.push_back(Spawn(Client(port, Pattern(bytes, c))));
  }
  bool ok = true;
  std::size_t total_echoed = 0;
  for (int c = 0; c < clients; ++c) {
    const std::string got = co_await peers[c];
    ok = ok && got == Pattern(bytes, c);
  }
  for (auto& s : servers) total_echoed += co_await s;
  co_return ok&& total_echoed == bytes* clients;
}

TEST(IoTest, TcpEchoOverLoopback) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  EXPECT_TRUE(
      testing::BlockOnWithin(rt, EchoSession(1, 100'000), 30'000ms, false));
}

TEST(IoTest, ConcurrentTcpEchoSessions) {
  Watchdog wd(120s);
  Runtime rt({.workers = 2});
  EXPECT_TRUE(
      testing::BlockOnWithin(rt, EchoSession(8, 64 * 1024), 60'000ms, false));
}

// A task blocked in an accept that never comes; `io` is the io_context the
// acceptor belongs to (where the cancellation must be emitted).
Task<int> AcceptForever(tcp::acceptor* a, boost::asio::io_context* io,
                        std::atomic<bool>* waiting) {
  waiting->store(true);
  auto [ec, sock] = co_await AwaitAsio<error_code, tcp::socket>(
      [a](auto h) { a->async_accept(std::move(h)); }, io);
  co_return ec ? 1 : 0;
}

Task<bool> CancelPendingAccept(std::string* message) {
  boost::asio::io_context* io = &CurrentIoContext();
  tcp::acceptor acceptor(
      *io, tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0));
  std::atomic<bool> waiting{false};
  JoinHandle<int> h = Spawn(AcceptForever(&acceptor, io, &waiting));
  while (!waiting.load()) co_await Yield();
  co_await Sleep(5ms);  // let it reach the accept
  EXPECT_TRUE(h.Cancel("shutting the listener"));
  bool raised = false;
  try {
    co_await h;
  } catch (const CancelledError& e) {
    raised = true;
    *message = e.what();
  }
  // The acceptor still works after the cancelled operation.
  EXPECT_TRUE(acceptor.is_open());
  co_return raised&& h.Cancelled();
}

TEST(IoTest, CancelInterruptsAPendingAcceptThroughItsCancellationSlot) {
  Watchdog wd(60s);
  Runtime rt({.workers = 2});
  std::string message;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(rt.BlockOn(CancelPendingAccept(&message)));
  EXPECT_EQ(message, "shutting the listener");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

}  // namespace
}  // namespace awaitd::runtime
