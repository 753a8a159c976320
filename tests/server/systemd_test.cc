// systemd integration (server/daemon/systemd.h): the sd_notify datagrams a
// Type=notify unit relies on, read from a NOTIFY_SOCKET the test creates, in
// process and from the awaitd binary; and the watchdog's rule: ping while the
// loops make progress, stop pinging while they are all blocked.
#include "server/daemon/systemd.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/runtime.h"
#include "server/daemon/daemon.h"
#include "tests/server/daemon_fixture.h"
#include "tests/support/process.h"

extern char** environ;

namespace awaitd::server::testing {
namespace {

using ::awaitd::testing::Output;
using ::awaitd::testing::Process;
using ::awaitd::testing::ProcessOptions;
using ::awaitd::testing::ProcessResult;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A fresh directory under the test temp dir, removed at exit.
std::string TestDir(const std::string& what) {
  struct Cleanup {
    std::vector<std::filesystem::path> dirs;
    ~Cleanup() {
      std::error_code ec;
      for (const auto& d : dirs) std::filesystem::remove_all(d, ec);
    }
  };
  static Cleanup cleanup;
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      ("awaitd_systemd_" + std::to_string(::getpid()) + "_" + what);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  cleanup.dirs.push_back(dir);
  return dir.string();
}

// The receiving end of NOTIFY_SOCKET, as systemd holds it: a bound unix
// datagram socket, at a path or (name starting with '@') in the abstract
// namespace.
class NotifySocket {
 public:
  explicit NotifySocket(std::string name) : name_(std::move(name)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name_.data(), name_.size());
    if (name_[0] == '@') addr.sun_path[0] = '\0';
    const auto len =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len), 0)
        << name_ << ": " << std::strerror(errno);
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  const std::string& name() const { return name_; }

  // The next datagram, or nullopt after `timeout`.
  std::optional<std::string> Next(absl::Duration timeout) {
    pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
    if (::poll(&p, 1, ms) <= 0) return std::nullopt;
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }
  // Reads datagrams until one starts with `prefix`; the ones before it are
  // appended to `skipped` when given.
  std::optional<std::string> NextStartingWith(
      const std::string& prefix, absl::Duration timeout,
      std::vector<std::string>* skipped = nullptr) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return std::nullopt;
      std::optional<std::string> m = Next(left);
      if (!m.has_value()) return std::nullopt;
      if (m->rfind(prefix, 0) == 0) return m;
      if (skipped != nullptr) skipped->push_back(*m);
    }
  }

 private:
  std::string name_;
  int fd_ = -1;
};

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name); old != nullptr) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_.has_value()) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(SystemdNotifierTest, SendsOneDatagramToAPathSocket) {
  const std::string dir = TestDir("path");
  NotifySocket sock(dir + "/notify");
  SystemdNotifier notifier(sock.name());
  ASSERT_TRUE(notifier.enabled());
  ASSERT_TRUE(notifier.Notify("READY=1\nSTATUS=hello").ok());
  EXPECT_EQ(sock.Next(absl::Seconds(5)), "READY=1\nSTATUS=hello");
}

TEST(SystemdNotifierTest, SendsToAnAbstractSocket) {
  NotifySocket sock("@awaitd-test-" + std::to_string(::getpid()));
  SystemdNotifier notifier(sock.name());
  ASSERT_TRUE(notifier.Notify("WATCHDOG=1").ok());
  EXPECT_EQ(sock.Next(absl::Seconds(5)), "WATCHDOG=1");
}

TEST(SystemdNotifierTest, DisabledWithoutASocketAndEveryNotifyIsANoOp) {
  SystemdNotifier notifier("");
  EXPECT_FALSE(notifier.enabled());
  EXPECT_TRUE(notifier.Notify("READY=1").ok());
}

TEST(SystemdNotifierTest, BadSocketNamesAreErrorsNamingTheVariable) {
  absl::Status relative = SystemdNotifier("relative/path").Notify("READY=1");
  EXPECT_EQ(relative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(relative.message()), HasSubstr("NOTIFY_SOCKET"));
  absl::Status too_long =
      SystemdNotifier("/" + std::string(200, 'x')).Notify("READY=1");
  EXPECT_EQ(too_long.code(), absl::StatusCode::kInvalidArgument);
  const std::string dir = TestDir("missing");
  absl::Status missing =
      SystemdNotifier(dir + "/nobody-listens").Notify("READY=1");
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("nobody-listens"));
}

TEST(WatchdogIntervalTest, ReadsWatchdogUsecForThisProcessOnly) {
  ScopedEnv usec("WATCHDOG_USEC", "1500000");
  {
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid()));
    EXPECT_EQ(WatchdogIntervalFromEnvironment(), absl::Milliseconds(1500));
  }
  {
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid() + 1));
    EXPECT_EQ(WatchdogIntervalFromEnvironment(), absl::ZeroDuration());
  }
  ::unsetenv("WATCHDOG_PID");
  EXPECT_EQ(WatchdogIntervalFromEnvironment(), absl::Milliseconds(1500));
  ScopedEnv bad("WATCHDOG_USEC", "soon");
  EXPECT_EQ(WatchdogIntervalFromEnvironment(), absl::ZeroDuration());
}

class SystemdDaemonTest : public DaemonTest {
 protected:
  SystemdDaemonTest() { start_in_setup_ = false; }
};

TEST_F(SystemdDaemonTest, ReadyOnceServingThenWatchdogThenStopping) {
  const std::string dir = TestDir("daemon");
  NotifySocket sock(dir + "/notify");
  DaemonOptions o = DefaultOptions();
  o.notify_socket = sock.name();
  o.watchdog_interval = absl::Milliseconds(200);
  StartDaemon(std::move(o));

  std::optional<std::string> ready = sock.Next(absl::Seconds(5));
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(*ready, "READY=1\nSTATUS=serving on " + daemon_->address());
  // READY means clients can call.
  auto ctx = Ctx();
  v1::SubmitRequest req;
  *req.add_jobs() = Spec("echo", R"({"value": 1})");
  v1::SubmitResponse resp;
  EXPECT_TRUE(stub_->Submit(ctx.get(), req, &resp).ok());

  // Pings every interval / 2 (100 ms): at least 5 in a second.
  const absl::Time start = absl::Now();
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(sock.Next(absl::Seconds(2)), "WATCHDOG=1") << "ping " << i;
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));

  daemon_->Shutdown();
  std::vector<std::string> before;
  EXPECT_EQ(sock.NextStartingWith("STOPPING=1", absl::Seconds(5), &before),
            "STOPPING=1\nSTATUS=shutting down");
  for (const std::string& m : before) EXPECT_EQ(m, "WATCHDOG=1");
  // Nothing after STOPPING: the watchdog stopped first.
  EXPECT_EQ(sock.Next(absl::Milliseconds(300)), std::nullopt);
}

TEST_F(SystemdDaemonTest, NoWatchdogWithoutAnInterval) {
  const std::string dir = TestDir("nodog");
  NotifySocket sock(dir + "/notify");
  DaemonOptions o = DefaultOptions();
  o.notify_socket = sock.name();
  StartDaemon(std::move(o));
  EXPECT_THAT(sock.Next(absl::Seconds(5)).value_or(""), StartsWith("READY=1"));
  EXPECT_EQ(sock.Next(absl::Milliseconds(400)), std::nullopt);
}

runtime::Task<void> HogTheLoop(absl::Notification* hogging,
                               absl::Notification* release) {
  hogging->Notify();
  release->WaitForNotification();  // blocks the worker thread itself
  co_return;
}

TEST_F(SystemdDaemonTest, WatchdogStopsPingingWhileEveryLoopIsBlocked) {
  const std::string dir = TestDir("stall");
  NotifySocket sock(dir + "/notify");
  auto lines = std::make_shared<std::vector<std::string>>();
  auto mu = std::make_shared<absl::Mutex>();
  DaemonOptions o = DefaultOptions();
  o.runtime.workers = 1;
  o.notify_socket = sock.name();
  o.watchdog_interval = absl::Milliseconds(200);
  o.log_sink = [lines, mu](LogLevel, std::string_view line) {
    absl::MutexLock lock(mu.get());
    lines->emplace_back(line);
  };
  StartDaemon(std::move(o));
  ASSERT_THAT(sock.Next(absl::Seconds(5)).value_or(""), StartsWith("READY=1"));
  ASSERT_EQ(sock.Next(absl::Seconds(2)), "WATCHDOG=1");

  absl::Notification hogging, release;
  daemon_->runtime().SpawnDetached(HogTheLoop(&hogging, &release));
  ASSERT_TRUE(hogging.WaitForNotificationWithTimeout(absl::Seconds(5)));
  // At most one ping already on its way when the hog started; then none
  // for several periods.
  std::optional<std::string> m = sock.Next(absl::Milliseconds(150));
  if (m.has_value()) {
    EXPECT_EQ(*m, "WATCHDOG=1");
  }
  EXPECT_EQ(sock.Next(absl::Milliseconds(600)), std::nullopt)
      << "pinged while the only loop was blocked";
  {
    absl::MutexLock lock(mu.get());
    bool logged = false;
    for (const std::string& l : *lines) {
      logged |= l.find("event=loops_stalled") != std::string::npos;
    }
    EXPECT_TRUE(logged);
  }

  release.Notify();
  EXPECT_EQ(sock.Next(absl::Seconds(2)), "WATCHDOG=1")
      << "no ping after the loop came back";
  absl::MutexLock lock(mu.get());
  bool recovered = false;
  for (const std::string& l : *lines) {
    recovered |= l.find("event=loops_recovered") != std::string::npos;
  }
  EXPECT_TRUE(recovered);
}

std::string AwaitdPath() { return testing::AwaitdBinaryPath(); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The binary as systemd runs it: NOTIFY_SOCKET and WATCHDOG_USEC in its
// environment (WATCHDOG_PID is omitted: systemd sets it only when it cannot
// tell the main process apart).
TEST(SystemdBinaryTest, NotifiesReadyWatchdogAndStoppingOnSigterm) {
  const std::string awaitd = AwaitdPath();
  ASSERT_TRUE(std::filesystem::exists(awaitd)) << awaitd;
  const std::string dir = TestDir("binary");
  NotifySocket sock(dir + "/notify");
  const std::string port_file = dir + "/port";

  ProcessOptions o;
  o.argv = {awaitd,
            "--metrics_listen=",
            "--durability=none",
            "--listen=127.0.0.1:0",
            "--port_file=" + port_file,
            "--workers=2",
            "--shutdown_grace=1s"};
  o.env = {{"NOTIFY_SOCKET", sock.name()}, {"WATCHDOG_USEC", "300000"}};
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view v(*e);
    if (v.rfind("WATCHDOG_", 0) == 0) {
      o.unset_env.emplace_back(v.substr(0, v.find('=')));
    }
  }
  const std::string log = dir + "/stderr";
  o.stdout_to = Output::Inherit();
  o.stderr_to = Output::File(log);
  Process daemon(o);  // killed and reaped at the end if still running
  ASSERT_TRUE(daemon.started()) << daemon.error();

  std::optional<std::string> ready = sock.Next(absl::Seconds(20));
  ASSERT_TRUE(ready.has_value()) << ReadFile(log);
  EXPECT_THAT(*ready, StartsWith("READY=1\nSTATUS=serving on 127.0.0.1:"));
  // The listener was up (and its address published) before READY.
  std::string address = ReadFile(port_file);
  ASSERT_FALSE(address.empty());
  address.pop_back();  // '\n'
  EXPECT_EQ(*ready, "READY=1\nSTATUS=serving on " + address);
  EXPECT_EQ(sock.Next(absl::Seconds(2)), "WATCHDOG=1");
  EXPECT_EQ(sock.Next(absl::Seconds(2)), "WATCHDOG=1");

  ASSERT_TRUE(daemon.Signal(SIGTERM));
  EXPECT_EQ(sock.NextStartingWith("STOPPING=1", absl::Seconds(10)),
            "STOPPING=1\nSTATUS=shutting down");
  const std::optional<ProcessResult> status =
      daemon.Wait(std::chrono::seconds(20));
  ASSERT_TRUE(status.has_value()) << "awaitd did not exit on SIGTERM";
  ASSERT_EQ(status->term_signal, 0) << status->Describe();
  EXPECT_EQ(status->exit_code, 0) << ReadFile(log);
  EXPECT_THAT(ReadFile(log), HasSubstr("event=watchdog_started"));
}

}  // namespace
}  // namespace awaitd::server::testing
