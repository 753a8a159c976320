// HttpGet, HttpRequest: a plain HTTP/1.0 GET over loopback, for tests that
// scrape the daemon's metrics endpoint.
#ifndef AWAITD_TESTS_SERVER_HTTP_GET_H_
#define AWAITD_TESTS_SERVER_HTTP_GET_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"

namespace awaitd::server::testing {

// GET http://127.0.0.1:port/path (HTTP/1.0) with `headers` ("Name:
// value\r\n" each): the status code (0 if there was no answer) and the
// body (the whole response when it did not parse).
inline std::pair<int, std::string> HttpRequest(int port,
                                               const std::string& path,
                                               const std::string& headers) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {0, ""};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{.tv_sec = 10, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return {0, ""};
  }
  const std::string req =
      "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n" + headers + "\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return {0, ""};
  }
  std::string resp;
  char buf[65536];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
    resp.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  const std::size_t body = resp.find("\r\n\r\n");
  int code = 0;
  if (resp.rfind("HTTP/1.", 0) != 0 || body == std::string::npos ||
      !absl::SimpleAtoi(resp.substr(9, 3), &code)) {
    return {0, resp};
  }
  return {code, resp.substr(body + 4)};
}

// GET http://127.0.0.1:port/path (HTTP/1.0): the body of a 200, or nullopt.
inline std::optional<std::string> HttpGet(int port, const std::string& path) {
  auto [code, body] = HttpRequest(port, path, "");
  if (code != 200) return std::nullopt;
  return std::move(body);
}

}  // namespace awaitd::server::testing

#endif  // AWAITD_TESTS_SERVER_HTTP_GET_H_
