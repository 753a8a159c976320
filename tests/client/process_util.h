// RunProcess: runs a program as a child process and returns what it printed
// on stdout and stderr, and how it ended, for tests that drive a binary from
// the outside (awaitctl, the README's commands).
//
//   ProcessResult r = RunProcess({
//       .argv = {AWAITCTL_PATH, "--address", address, "health"},
//       .env = {{"NO_COLOR", "1"}},
//       .timeout = std::chrono::seconds(30),
//   });
//   EXPECT_EQ(r.exit_code, 0) << r.Describe();
//   EXPECT_EQ(r.out, "SERVING\n");
//
// The child:
//   - runs argv[0] (a path; a bare name is looked up in PATH, the child's
//     PATH when `env` sets one), with argv as given;
//   - gets this process's environment, minus `unset_env`, plus `env` (or
//     only `env` with `clear_env`);
//   - reads `stdin_data` on stdin (then end of file), or /dev/null;
//   - writes stdout and stderr into separate pipes, read concurrently so
//     neither can fill up and stall it;
//   - starts with default signal dispositions and no blocked signals
//     (whatever the test process has set), in its own process group;
//   - is killed, with its process group, by SIGKILL when `timeout` passes
//     (timed_out is then true).
// `on_output` runs on the calling thread whenever new output arrived, with
// everything read so far; it may act on the child (kill(pid, SIGINT) once a
// line appeared), which is how a test sends Ctrl-C at the right moment.
//
// Thread safety: RunProcess may be called from several threads at once. It
// forks a multi-threaded process, so everything the child needs is prepared
// before fork(), and the child only calls async-signal-safe functions until
// it execs.
#ifndef AWAITD_TESTS_CLIENT_PROCESS_UTIL_H_
#define AWAITD_TESTS_CLIENT_PROCESS_UTIL_H_

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
#include <csignal>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace awaitd::testing {

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
  // The child is killed (SIGKILL, with its process group) after this long.
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
  // Called whenever output arrived, with all of it so far (see above).
  std::function<void(pid_t pid, const std::string& out, const std::string& err)>
      on_output;
};

struct ProcessResult {
  // The exit status; -1 if a signal ended the child, or it did not start.
  int exit_code = -1;
  // The signal that ended the child, or 0.
  int term_signal = 0;
  // Killed because `timeout` passed.
  bool timed_out = false;
  std::string out;  // stdout
  std::string err;  // stderr
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

inline std::string Errno(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
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

// argv[0] as a path: itself if it has a '/', else the first executable of
// that name on the child's PATH.
inline std::string ResolveProgram(const std::string& program,
                                  const std::vector<std::string>& env) {
  if (program.find('/') != std::string::npos) return program;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const std::string& e : env) {
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  }
  std::size_t begin = 0;
  while (begin <= path.size()) {
    std::size_t end = path.find(':', begin);
    if (end == std::string::npos) end = path.size();
    const std::string dir = path.substr(begin, end - begin);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    begin = end + 1;
  }
  return program;  // execve fails, and says why
}

// Reads what is available on `fd` into `into`; false at end of file or on
// an error.
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

}  // namespace process_internal

inline ProcessResult RunProcess(const ProcessOptions& options) {
  using Clock = std::chrono::steady_clock;
  namespace pi = process_internal;
  ProcessResult result;
  if (options.argv.empty()) {
    result.error = "no program (argv is empty)";
    return result;
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

  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  int in_pipe[2] = {-1, -1};
  int exec_pipe[2] = {-1, -1};  // the child's errno if exec fails
  auto close_all = [&] {
    for (int* p : {out_pipe, err_pipe, in_pipe, exec_pipe}) {
      pi::CloseFd(p[0]);
      pi::CloseFd(p[1]);
    }
  };
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 ||
      pipe2(exec_pipe, O_CLOEXEC) != 0 ||
      (options.stdin_data.has_value() && pipe2(in_pipe, O_CLOEXEC) != 0)) {
    result.error = pi::Errno("pipe2");
    close_all();
    return result;
  }
  const int dev_null = options.stdin_data.has_value()
                           ? -1
                           : open("/dev/null", O_RDONLY | O_CLOEXEC);

  const pid_t pid = fork();
  if (pid < 0) {
    result.error = pi::Errno("fork");
    close_all();
    if (dev_null >= 0) close(dev_null);
    return result;
  }
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
    const int in_fd = in_pipe[0] >= 0 ? in_pipe[0] : dev_null;
    if (in_fd < 0 || dup2(in_fd, STDIN_FILENO) < 0 ||
        dup2(out_pipe[1], STDOUT_FILENO) < 0 ||
        dup2(err_pipe[1], STDERR_FILENO) < 0 ||
        (cwd != nullptr && chdir(cwd) != 0)) {
      const int e = errno;
      [[maybe_unused]] ssize_t w = write(exec_pipe[1], &e, sizeof(e));
      _exit(127);
    }
    execve(program.c_str(), argv_ptrs.data(), env_ptrs.data());
    const int e = errno;
    [[maybe_unused]] ssize_t w = write(exec_pipe[1], &e, sizeof(e));
    _exit(127);
  }

  // The parent.
  if (dev_null >= 0) close(dev_null);
  pi::CloseFd(out_pipe[1]);
  pi::CloseFd(err_pipe[1]);
  pi::CloseFd(in_pipe[0]);
  pi::CloseFd(exec_pipe[1]);
  {
    int child_errno = 0;
    ssize_t n;
    do {
      n = read(exec_pipe[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    pi::CloseFd(exec_pipe[0]);
    if (n == static_cast<ssize_t>(sizeof(child_errno))) {
      result.error = "exec " + program + ": " + std::strerror(child_errno);
      int status = 0;
      waitpid(pid, &status, 0);
      close_all();
      return result;
    }
  }

  // A write to a stdin the child closed must fail with EPIPE, not kill this
  // process: SIGPIPE is blocked on this thread meanwhile, and a pending one
  // is taken before the mask is restored.
  sigset_t pipe_set, old_mask;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);

  for (int fd : {out_pipe[0], err_pipe[0], in_pipe[1]}) {
    if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  std::size_t written = 0;
  if (in_pipe[1] >= 0 && options.stdin_data->empty()) pi::CloseFd(in_pipe[1]);

  const Clock::time_point deadline = Clock::now() + options.timeout;
  bool killed = false;
  while (out_pipe[0] >= 0 || err_pipe[0] >= 0) {
    pollfd fds[3];
    nfds_t n = 0;
    for (int fd : {out_pipe[0], err_pipe[0]}) {
      if (fd >= 0) fds[n++] = {fd, POLLIN, 0};
    }
    if (in_pipe[1] >= 0) fds[n++] = {in_pipe[1], POLLOUT, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    if (left.count() <= 0 && !killed) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      killed = true;
      result.timed_out = true;
    }
    // After the kill, only what is already in the pipes is read (a
    // grandchild outside the group could keep them open).
    const int wait_ms =
        killed ? 100
               : static_cast<int>(std::min<long long>(left.count(), 1000));
    const int ready = poll(fds, n, wait_ms);
    if (ready < 0 && errno != EINTR) break;
    if (ready == 0 && killed) break;
    const std::size_t before = result.out.size() + result.err.size();
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_pipe[1]) {
        const std::string& data = *options.stdin_data;
        const ssize_t w =
            write(in_pipe[1], data.data() + written, data.size() - written);
        if (w > 0) written += static_cast<std::size_t>(w);
        if ((w < 0 && errno != EAGAIN && errno != EINTR) ||
            written == data.size()) {
          pi::CloseFd(in_pipe[1]);
        }
        continue;
      }
      const bool is_out = fds[i].fd == out_pipe[0];
      if (!pi::Drain(fds[i].fd, is_out ? result.out : result.err)) {
        pi::CloseFd(is_out ? out_pipe[0] : err_pipe[0]);
      }
    }
    if (options.on_output && result.out.size() + result.err.size() != before) {
      options.on_output(pid, result.out, result.err);
    }
  }
  pi::CloseFd(in_pipe[1]);

  // Both pipes closed: the child has exited or is about to (or closed them
  // itself); wait for it, within the deadline.
  int status = 0;
  while (true) {
    const pid_t w = waitpid(pid, &status, killed ? 0 : WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (w == 0) {
      if (Clock::now() >= deadline) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        killed = true;
        result.timed_out = true;
        continue;
      }
      usleep(2000);
    }
  }
  close_all();

  const timespec zero = {0, 0};
  while (sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);

  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
  }
  return result;
}

}  // namespace awaitd::testing

#endif  // AWAITD_TESTS_CLIENT_PROCESS_UTIL_H_
