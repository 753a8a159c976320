// Child processes for tests that drive a binary from the outside (awaitd,
// awaitctl, the README's commands, openssl, promtool, prometheus): the one
// way tests/server and tests/client start a program.
//
// Run to completion: what it printed on stdout and stderr, and how it ended.
//
//   ProcessResult r = RunProcess({
//       .argv = {AWAITCTL_PATH, "--address", address, "health"},
//       .env = {{"NO_COLOR", "1"}},
//       .timeout = std::chrono::seconds(30),
//   });
//   EXPECT_EQ(r.exit_code, 0) << r.Describe();
//   EXPECT_EQ(r.out, "SERVING\n");
//
// In the background (a daemon): started by the constructor, signalled and
// waited for by the test, killed (SIGKILL, with its process group) and
// reaped by the destructor if it still runs.
//
//   Process daemon({.argv = {awaitd, "--port_file=" + port_file},
//                   .stderr_to = Output::File(dir + "/awaitd.err")});
//   ASSERT_TRUE(daemon.started()) << daemon.error();
//   ...
//   ASSERT_TRUE(daemon.Signal(SIGTERM));
//   std::optional<ProcessResult> r = daemon.Wait(std::chrono::seconds(15));
//   ASSERT_TRUE(r.has_value()) << "still running after SIGTERM";
//   EXPECT_EQ(r->exit_code, 0) << r->Describe();
//
// The child:
//   - runs argv[0] (a path; a bare name is looked up in PATH, the child's
//     PATH when `env` sets one), with argv as given;
//   - gets this process's environment, minus `unset_env`, plus `env` (or
//     only `env` with `clear_env`);
//   - reads `stdin_data` on stdin (then end of file), or /dev/null;
//   - writes stdout and stderr where `stdout_to` and `stderr_to` say: by
//     default into separate pipes, read concurrently (by a thread of the
//     Process) so neither can fill up and stall it; or into a file, /dev/null
//     or this process's own; stderr also into wherever stdout goes (2>&1);
//   - starts with default signal dispositions and no blocked signals
//     (whatever the test process has set), in its own process group.
//
// RunProcess kills the child, with its process group, by SIGKILL when
// `timeout` passes (timed_out is then true); it returns once the child has
// exited and closed its captured stdout and stderr. `on_output` runs on the
// calling thread whenever new output arrived, with everything read so far;
// it may act on the child (kill(pid, SIGINT) once a line appeared), which is
// how a test sends Ctrl-C at the right moment. A Process ignores `timeout`
// and `on_output`: it lives until Wait() sees it exit, Kill() or the
// destructor.
//
// Thread safety: RunProcess may be called, and Processes started, from
// several threads at once. One Process is used by one thread at a time,
// except out() and err(), which any thread may call. Both fork a
// multi-threaded process, so everything the child needs is prepared before
// fork() (strings, files opened with O_CLOEXEC), and the child only calls
// async-signal-safe functions until it execs.
#ifndef AWAITD_TESTS_SUPPORT_PROCESS_H_
#define AWAITD_TESTS_SUPPORT_PROCESS_H_

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace awaitd::testing {

struct ProcessOptions;
struct ProcessResult;
inline ProcessResult RunProcess(const ProcessOptions& options);

// Where a child's stdout or stderr goes.
struct Output {
  enum class To {
    kCapture,  // a pipe, read into ProcessResult::out / err
    kFile,     // a file, created or truncated
    kAppend,   // a file, created or appended to
    kInherit,  // this process's own stdout / stderr
    kNull,     // /dev/null
    kStdout,   // stderr only: wherever stdout goes (2>&1)
  };
  To to = To::kCapture;
  std::string path;  // kFile, kAppend

  static Output Capture() { return {}; }
  static Output File(std::string path) { return {To::kFile, std::move(path)}; }
  static Output Append(std::string path) {
    return {To::kAppend, std::move(path)};
  }
  static Output Inherit() { return {To::kInherit, {}}; }
  static Output Null() { return {To::kNull, {}}; }
  static Output Stdout() { return {To::kStdout, {}}; }
};

struct ProcessOptions {
  // argv[0] is the program: a path, or a name looked up in PATH.
  std::vector<std::string> argv;
  // Set (or replace) in the child's environment.
  std::vector<std::pair<std::string, std::string>> env;
  // Removed from the child's environment.
  std::vector<std::string> unset_env;
  // Start from an empty environment (then only `env`).
  bool clear_env = false;
  // The child's stdin; nullopt gives it /dev/null.
  std::optional<std::string> stdin_data;
  // The child's working directory; empty keeps this process's.
  std::string working_directory;
  // RunProcess: the child is killed (SIGKILL, with its process group) after
  // this long.
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
  // RunProcess: called whenever output arrived, with all of it so far.
  std::function<void(pid_t pid, const std::string& out, const std::string& err)>
      on_output;
  // Where the child's stdout and stderr go (captured by default).
  Output stdout_to = Output::Capture();
  Output stderr_to = Output::Capture();
};

struct ProcessResult {
  // The exit status; -1 if a signal ended the child, or it did not start.
  int exit_code = -1;
  // The signal that ended the child, or 0.
  int term_signal = 0;
  // Killed because `timeout` passed (RunProcess).
  bool timed_out = false;
  std::string out;  // stdout, when captured
  std::string err;  // stderr, when captured
  // Why the child could not run ("exec /x: No such file or directory");
  // empty when it ran.
  std::string error;

  // How it ended, and both streams: for assertion messages.
  std::string Describe() const {
    std::string how;
    if (!error.empty()) {
      how = "did not start: " + error;
    } else if (timed_out) {
      how = "timed out (killed)";
    } else if (term_signal != 0) {
      how = "killed by signal " + std::to_string(term_signal);
    } else {
      how = "exit " + std::to_string(exit_code);
    }
    return how + "\n--- stdout ---\n" + out + "--- stderr ---\n" + err + "---";
  }
};

namespace process_internal {

inline std::string Errno(const std::string& what, int e = errno) {
  return what + ": " + std::strerror(e);
}

// The environment the child gets, as "NAME=value" strings.
inline std::vector<std::string> ChildEnvironment(const ProcessOptions& o) {
  std::map<std::string, std::string> vars;
  if (!o.clear_env) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      const std::string entry(*e);
      const std::size_t eq = entry.find('=');
      if (eq == std::string::npos) continue;
      vars[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
  }
  for (const std::string& name : o.unset_env) vars.erase(name);
  for (const auto& [name, value] : o.env) vars[name] = value;
  std::vector<std::string> out;
  out.reserve(vars.size());
  for (const auto& [name, value] : vars) out.push_back(name + "=" + value);
  return out;
}

// The first executable named `program` on `path` (a PATH value), or
// nullopt.
inline std::optional<std::string> SearchPath(const std::string& program,
                                             const std::string& path) {
  std::size_t begin = 0;
  while (begin <= path.size()) {
    std::size_t end = path.find(':', begin);
    if (end == std::string::npos) end = path.size();
    const std::string dir = path.substr(begin, end - begin);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    begin = end + 1;
  }
  return std::nullopt;
}

// argv[0] as a path: itself if it has a '/', else the first executable of
// that name on the child's PATH.
inline std::string ResolveProgram(const std::string& program,
                                  const std::vector<std::string>& env) {
  if (program.find('/') != std::string::npos) return program;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const std::string& e : env) {
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  }
  return SearchPath(program, path).value_or(program);  // execve says why
}

// Reads what is available on `fd` (non-blocking) into `into`; false at end
// of file or on an error.
inline bool Drain(int fd, std::string& into) {
  char buf[8192];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      into.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;  // 0: end of file
  }
}

inline void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

inline void SetNonBlocking(int fd) {
  if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// In the child (async-signal-safe): `fd` becomes `target`, open across
// exec.
inline bool MoveFd(int fd, int target) {
  if (fd == target) return fcntl(fd, F_SETFD, 0) == 0;
  return dup2(fd, target) >= 0;
}

}  // namespace process_internal

// The first executable named `name` on this process's PATH, or nullopt
// (`command -v name`).
inline std::optional<std::string> FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  return process_internal::SearchPath(
      name, path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
}

// A child process, started by the constructor (see the top of the file).
class Process {
 public:
  explicit Process(const ProcessOptions& options) { Start(options); }
  // Kills it (SIGKILL, with its process group) if it still runs, and reaps
  // it.
  ~Process() {
    if (pid_ > 0 && !reaped_) Kill();
    StopPump();
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Whether it started; error() says why not.
  bool started() const { return pid_ > 0; }
  const std::string& error() const { return result_.error; }
  // The child's id (-1 if it did not start). Valid for kill() until Wait()
  // or Kill() has reaped it.
  pid_t pid() const { return pid_; }

  // Sends `signo` to the child (not its group): false if it did not start,
  // has been reaped, or kill() failed.
  bool Signal(int signo) {
    if (pid_ <= 0 || reaped_) return false;
    return kill(pid_, signo) == 0;
  }

  // Waits up to `timeout` for the child to exit, and reaps it: how it ended,
  // with the output captured (all of it), or nullopt if it still runs. Once
  // it has ended, the same answer at once.
  std::optional<ProcessResult> Wait(std::chrono::milliseconds timeout) {
    using Clock = std::chrono::steady_clock;
    if (pid_ <= 0 || reaped_) return Result();
    const Clock::time_point deadline = Clock::now() + timeout;
    auto nap = std::chrono::microseconds(500);
    while (true) {
      if (TryReap()) return Result();
      if (Clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(
          std::min<Clock::duration>(nap, deadline - Clock::now()));
      nap = std::min<std::chrono::microseconds>(nap * 2,
                                                std::chrono::milliseconds(10));
    }
  }

  // Kills it (SIGKILL, with its process group) unless it already ended, and
  // reaps it: how it ended.
  ProcessResult Kill() {
    if (pid_ > 0 && !reaped_) {
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);
      int status = 0;
      pid_t w;
      do {
        w = waitpid(pid_, &status, 0);
      } while (w < 0 && errno == EINTR);
      Reaped(w == pid_ ? status : -1);
    }
    return Result();
  }

  // What it wrote on a captured stdout / stderr so far.
  std::string out() const {
    std::lock_guard<std::mutex> lock(mu_);
    return out_;
  }
  std::string err() const {
    std::lock_guard<std::mutex> lock(mu_);
    return err_;
  }

 private:
  friend ProcessResult RunProcess(const ProcessOptions& options);

  void Start(const ProcessOptions& options) {
    namespace pi = process_internal;
    if (options.argv.empty()) {
      result_.error = "no program (argv is empty)";
      return;
    }
    if (options.stdout_to.to == Output::To::kStdout) {
      result_.error = "stdout_to cannot be Output::Stdout()";
      return;
    }

    // Everything the child needs, built before fork().
    const std::vector<std::string> env = pi::ChildEnvironment(options);
    const std::string program = pi::ResolveProgram(options.argv[0], env);
    std::vector<char*> argv_ptrs;
    for (const std::string& a : options.argv) {
      argv_ptrs.push_back(const_cast<char*>(a.c_str()));
    }
    argv_ptrs.push_back(nullptr);
    std::vector<char*> env_ptrs;
    for (const std::string& e : env) {
      env_ptrs.push_back(const_cast<char*>(e.c_str()));
    }
    env_ptrs.push_back(nullptr);
    const char* cwd = options.working_directory.empty()
                          ? nullptr
                          : options.working_directory.c_str();

    // The descriptors the child gets as 0, 1 and 2 (-1: keep its own, or
    // for 2 with kStdout, a copy of 1), and the parent's ends of the pipes.
    int child_fd[3] = {-1, -1, -1};
    int in_write = -1, out_read = -1, err_read = -1;
    int exec_pipe[2] = {-1, -1};  // the child's errno if exec fails
    auto close_all = [&] {
      for (int& fd : child_fd) pi::CloseFd(fd);
      pi::CloseFd(in_write);
      pi::CloseFd(out_read);
      pi::CloseFd(err_read);
      pi::CloseFd(exec_pipe[0]);
      pi::CloseFd(exec_pipe[1]);
    };
    auto fail = [&](std::string why) {
      result_.error = std::move(why);
      close_all();
    };
    if (pipe2(exec_pipe, O_CLOEXEC) != 0) return fail(pi::Errno("pipe2"));
    if (options.stdin_data.has_value()) {
      int p[2];
      if (pipe2(p, O_CLOEXEC) != 0) return fail(pi::Errno("pipe2"));
      child_fd[0] = p[0];
      in_write = p[1];
    } else {
      child_fd[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (child_fd[0] < 0) return fail(pi::Errno("open /dev/null"));
    }
    const Output* outputs[2] = {&options.stdout_to, &options.stderr_to};
    int* read_ends[2] = {&out_read, &err_read};
    for (int i = 0; i < 2; ++i) {
      const Output& o = *outputs[i];
      int& fd = child_fd[i + 1];
      switch (o.to) {
        case Output::To::kCapture: {
          int p[2];
          if (pipe2(p, O_CLOEXEC) != 0) return fail(pi::Errno("pipe2"));
          *read_ends[i] = p[0];
          fd = p[1];
          break;
        }
        case Output::To::kFile:
        case Output::To::kAppend:
          fd = open(o.path.c_str(),
                    O_WRONLY | O_CREAT | O_CLOEXEC |
                        (o.to == Output::To::kFile ? O_TRUNC : O_APPEND),
                    0644);
          if (fd < 0) return fail(pi::Errno("open " + o.path));
          break;
        case Output::To::kNull:
          fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
          if (fd < 0) return fail(pi::Errno("open /dev/null"));
          break;
        case Output::To::kInherit:
        case Output::To::kStdout:
          break;
      }
    }
    const bool err_to_out = options.stderr_to.to == Output::To::kStdout;

    const pid_t pid = fork();
    if (pid < 0) return fail(pi::Errno("fork"));
    if (pid == 0) {
      // The child: async-signal-safe calls only, until execve.
      setpgid(0, 0);
      struct sigaction dfl;
      std::memset(&dfl, 0, sizeof(dfl));
      dfl.sa_handler = SIG_DFL;
      for (int s = 1; s < NSIG; ++s) sigaction(s, &dfl, nullptr);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      bool ok = true;
      for (int target = 0; target < 3 && ok; ++target) {
        if (child_fd[target] >= 0) ok = pi::MoveFd(child_fd[target], target);
      }
      if (ok && err_to_out) ok = dup2(STDOUT_FILENO, STDERR_FILENO) >= 0;
      if (ok && cwd != nullptr) ok = chdir(cwd) == 0;
      if (ok) execve(program.c_str(), argv_ptrs.data(), env_ptrs.data());
      const int e = errno;
      [[maybe_unused]] ssize_t w = write(exec_pipe[1], &e, sizeof(e));
      _exit(127);
    }

    // The parent. Its own setpgid closes the race with a kill of the group
    // before the child's ran (it fails harmlessly once the child execs).
    setpgid(pid, pid);
    for (int& fd : child_fd) pi::CloseFd(fd);
    pi::CloseFd(exec_pipe[1]);
    int child_errno = 0;
    ssize_t n;
    do {
      n = read(exec_pipe[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    pi::CloseFd(exec_pipe[0]);
    if (n == static_cast<ssize_t>(sizeof(child_errno))) {
      int status = 0;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return fail(pi::Errno("exec " + program, child_errno));
    }
    pid_ = pid;

    if (in_write < 0 && out_read < 0 && err_read < 0) {
      eof_ = true;  // nothing to read or write
      return;
    }
    int wake[2];
    if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
      // Without a way to stop it early, the pump would outlive a child
      // whose grandchildren keep the pipes open: give up on this one.
      result_.error = pi::Errno("pipe2");
      close_all();
      Kill();
      pid_ = -1;
      return;
    }
    wake_read_ = wake[0];
    wake_write_ = wake[1];
    pump_ = std::thread([this, in_write, out_read, err_read,
                         data = options.stdin_data.value_or("")] {
      Pump(in_write, out_read, err_read, data);
    });
  }

  // The pump thread: writes stdin_data, reads stdout and stderr until they
  // close, or until StopPump() (then only what is in the pipes already: a
  // grandchild could keep them open).
  void Pump(int in, int out, int err, const std::string& data) {
    namespace pi = process_internal;
    // A write to a stdin the child closed must fail with EPIPE, not kill
    // this process: SIGPIPE is blocked on this thread, and a pending one is
    // taken before it ends.
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
    for (int fd : {in, out, err}) pi::SetNonBlocking(fd);
    std::size_t written = 0;
    if (in >= 0 && data.empty()) pi::CloseFd(in);
    bool stopping = false;
    std::string chunk;
    while (out >= 0 || err >= 0 || in >= 0) {
      pollfd fds[4];
      nfds_t n = 0;
      for (int fd : {out, err}) {
        if (fd >= 0) fds[n++] = {fd, POLLIN, 0};
      }
      if (in >= 0) fds[n++] = {in, POLLOUT, 0};
      fds[n++] = {wake_read_, POLLIN, 0};
      if (!stopping && poll(fds, n, -1) < 0 && errno != EINTR) break;
      if (!stopping && (fds[n - 1].revents & POLLIN) != 0) stopping = true;
      bool got = false;
      for (int* fd : {&out, &err}) {
        if (*fd < 0) continue;
        chunk.clear();
        const bool open = pi::Drain(*fd, chunk);
        if (!chunk.empty()) {
          std::lock_guard<std::mutex> lock(mu_);
          (fd == &out ? out_ : err_) += chunk;
          got = true;
        }
        if (!open || stopping) pi::CloseFd(*fd);
      }
      if (in >= 0 && !stopping) {
        const ssize_t w =
            write(in, data.data() + written, data.size() - written);
        if (w > 0) written += static_cast<std::size_t>(w);
        if ((w < 0 && errno != EAGAIN && errno != EINTR) ||
            written == data.size()) {
          pi::CloseFd(in);
        }
      }
      if (stopping) pi::CloseFd(in);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (got) ++generation_;
        if (out < 0 && err < 0) eof_ = true;
      }
      cv_.notify_all();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      eof_ = true;
    }
    cv_.notify_all();
    const timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
    }
  }

  // Stops the pump (after what the pipes hold already) and joins it.
  void StopPump() {
    if (pump_.joinable()) {
      [[maybe_unused]] ssize_t w = write(wake_write_, "x", 1);
      pump_.join();
    }
    process_internal::CloseFd(wake_read_);
    process_internal::CloseFd(wake_write_);
  }

  // Reaps the child if it has exited.
  bool TryReap() {
    int status = 0;
    pid_t w;
    do {
      w = waitpid(pid_, &status, WNOHANG);
    } while (w < 0 && errno == EINTR);
    if (w == 0) return false;
    Reaped(w == pid_ ? status : -1);
    return true;
  }

  // The child is gone (`status` from waitpid, or -1 if it could not be
  // had): everything it wrote is in the pipes, so the pump stops after
  // reading them.
  void Reaped(int status) {
    reaped_ = true;
    if (status != -1 && WIFEXITED(status)) {
      result_.exit_code = WEXITSTATUS(status);
    } else if (status != -1 && WIFSIGNALED(status)) {
      result_.term_signal = WTERMSIG(status);
    }
    StopPump();
  }

  ProcessResult Result() const {
    ProcessResult r = result_;
    std::lock_guard<std::mutex> lock(mu_);
    r.out = out_;
    r.err = err_;
    return r;
  }

  pid_t pid_ = -1;
  bool reaped_ = false;
  ProcessResult result_;  // exit_code, term_signal, error
  std::thread pump_;
  int wake_read_ = -1, wake_write_ = -1;  // StopPump() -> the pump
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string out_, err_;         // guarded by mu_
  std::uint64_t generation_ = 0;  // output arrivals; guarded by mu_
  bool eof_ = false;              // stdout and stderr closed; guarded by mu_
};

// Runs a program to completion (see the top of the file).
inline ProcessResult RunProcess(const ProcessOptions& options) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + options.timeout;
  Process p(options);
  if (!p.started()) return p.Result();

  // Until stdout and stderr are closed (the child has exited, or closed
  // them itself), with on_output called on new output.
  bool timed_out = false;
  {
    std::uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(p.mu_);
    while (true) {
      const bool woke = p.cv_.wait_until(
          lock, deadline, [&] { return p.eof_ || p.generation_ != seen; });
      if (p.generation_ != seen) {
        seen = p.generation_;
        if (options.on_output) {
          const std::string out = p.out_;
          const std::string err = p.err_;
          lock.unlock();
          options.on_output(p.pid(), out, err);
          lock.lock();
        }
      }
      if (p.eof_) break;
      if (!woke) {
        timed_out = true;
        break;
      }
    }
  }
  // Then for the child itself, within the same deadline.
  std::optional<ProcessResult> r;
  if (!timed_out) {
    r = p.Wait(std::chrono::ceil<std::chrono::milliseconds>(
        std::max<Clock::duration>(deadline - Clock::now(), Clock::duration{})));
    timed_out = !r.has_value();
  }
  if (timed_out) {
    r = p.Kill();
    r->timed_out = true;
  }
  return *r;
}

}  // namespace awaitd::testing

#endif  // AWAITD_TESTS_SUPPORT_PROCESS_H_
