#include "bench/harness/harness.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include "boost/json/array.hpp"

namespace awaitd::bench {

// --- Statistics --------------------------------------------------------------

double Median(std::vector<double> v) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double SortedQuantile(const std::vector<double>& v, double q) {
  if (v.empty()) return kNaN;
  const auto rank =
      static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return SortedQuantile(v, q);
}

void LogReps(bool verbose, std::string_view what,
             const std::vector<double>& v) {
  if (!verbose) return;
  std::string line = "  " + std::string(what) + ":";
  for (double x : v) line += " " + std::to_string(x);
  std::fprintf(stderr, "%s\n", line.c_str());
}

// --- Results -----------------------------------------------------------------

Target AtMost(double bound, Target::On on) { return {on, true, bound}; }
Target AtLeast(double bound, Target::On on) { return {on, false, bound}; }

double Result::ratio() const {
  return std::isnan(baseline) ? kNaN : value / baseline;
}

std::optional<bool> Result::pass() const {
  if (!target) return std::nullopt;
  const double x = target->on == Target::On::kRatio ? ratio() : value;
  if (std::isnan(x)) return false;
  return target->Met(x);
}

bool AllPassed(const std::vector<Result>& results) {
  bool all_pass = true;
  for (const Result& r : results)
    all_pass = all_pass && r.pass().value_or(true);
  return all_pass;
}

// --- Benchmarks in child processes -------------------------------------------

const Benchmark* FindBenchmark(std::span<const Benchmark> benchmarks,
                               std::string_view name) {
  for (const Benchmark& b : benchmarks) {
    if (name == b.name) return &b;
  }
  return nullptr;
}

std::optional<std::vector<std::string>> SelectBenchmarks(
    std::string_view tool, std::string_view list,
    std::span<const Benchmark> benchmarks) {
  std::vector<std::string> names;
  std::string cur;
  for (char c : std::string(list) + ",") {
    if (c == ',') {
      if (!cur.empty()) names.push_back(cur);
      cur.clear();
    } else if (!std::isspace(static_cast<unsigned char>(c))) {
      cur += c;
    }
  }
  for (const std::string& n : names) {
    if (FindBenchmark(benchmarks, n) != nullptr) continue;
    std::string known;
    for (const Benchmark& b : benchmarks)
      known += (known.empty() ? "" : ", ") + std::string(b.name);
    std::fprintf(stderr, "%.*s: unknown benchmark '%s' (known: %s)\n",
                 static_cast<int>(tool.size()), tool.data(), n.c_str(),
                 known.c_str());
    return std::nullopt;
  }
  return names;
}

int RunChild(std::string_view tool, std::span<const Benchmark> benchmarks,
             const std::string& name) {
  const Benchmark* b = FindBenchmark(benchmarks, name);
  if (b == nullptr) {
    std::fprintf(stderr, "%.*s: unknown benchmark '%s'\n",
                 static_cast<int>(tool.size()), tool.data(), name.c_str());
    return 2;
  }
  const std::vector<Result> results = b->run();
  boost::json::array rows;
  for (const Result& r : results) rows.push_back(ResultToJson(r));
  boost::json::object line;
  line["benchmark"] = name;
  line["results"] = std::move(rows);
  const std::string text = Serialize(line) + "\n";
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  return 0;
}

std::vector<Result> RunInChild(const std::string& name,
                               std::vector<std::string> argv,
                               const SpawnFn& spawn) {
  auto failure = [&name](const std::string& why) {
    return std::vector<Result>{
        {name, "child process: " + why, "", kNaN, kNaN, AtMost(0)}};
  };
  argv.push_back("--child=" + name);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return failure("pipe failed");
  std::string error;
  const pid_t pid = spawn(argv, fds[1], &error);
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    return failure(error);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t got = read(fds[0], buf, sizeof buf);
    if (got > 0) {
      out.append(buf, static_cast<std::size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return failure(DescribeExit(status));
  // The last line that parses as a JSON object.
  std::istringstream lines(out);
  std::optional<boost::json::value> parsed;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;
    if (std::optional<boost::json::value> j = ParseJson(line))
      parsed = std::move(j);
  }
  const boost::json::value* results =
      parsed ? parsed->get_object().if_contains("results") : nullptr;
  if (results == nullptr || !results->is_array())
    return failure("no JSON results");
  std::vector<Result> out_results;
  for (const boost::json::value& j : results->get_array()) {
    if (std::optional<Result> r = ResultFromJson(j))
      out_results.push_back(std::move(*r));
  }
  return out_results;
}

std::vector<Result> RunAllInChildren(std::string_view tool,
                                     const std::vector<std::string>& names,
                                     const std::vector<std::string>& argv,
                                     const SpawnFn& spawn) {
  std::vector<Result> results;
  for (const std::string& n : names) {
    std::fprintf(stderr, "%.*s: running %s...\n", static_cast<int>(tool.size()),
                 tool.data(), n.c_str());
    std::vector<Result> r = RunInChild(n, argv, spawn);
    results.insert(results.end(), r.begin(), r.end());
  }
  return results;
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status))
    return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// --- Output ------------------------------------------------------------------

HostInfo ReadHostInfo() {
  HostInfo h;
  h.nproc = std::thread::hardware_concurrency();
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) h.cpu_model = line.substr(colon + 2);
      break;
    }
  }
  std::ifstream load("/proc/loadavg");
  std::string a, b, c;
  if (load >> a >> b >> c) h.loadavg = a + " " + b + " " + c;
  return h;
}

std::string FormatNumber(double v) {
  if (std::isnan(v)) return "-";
  char buf[32];
  const double a = std::fabs(v);
  if (a >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.3gG", v / 1e9);
  } else if (a >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.3gM", v / 1e6);
  } else if (a >= 1e4) {
    std::snprintf(buf, sizeof buf, "%.3gk", v / 1e3);
  } else if (a >= 100 || a == std::floor(a)) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  }
  return buf;
}

namespace {

std::string FormatTarget(const Result& r) {
  if (!r.target) return "-";
  char buf[64];
  std::snprintf(
      buf, sizeof buf, "%s %s %s",
      r.target->on == Target::On::kRatio ? "ratio" : "value",
      r.target->at_most ? "<=" : ">=", FormatNumber(r.target->bound).c_str());
  return buf;
}

}  // namespace

void PrintTable(const std::vector<Result>& results, bool benchmark_column) {
  using Row = std::vector<std::string>;
  const std::size_t first = benchmark_column ? 1 : 0;  // the metric column
  std::vector<Row> rows = {
      {"metric", "value", "baseline", "ratio", "target", "result"}};
  if (benchmark_column) rows[0].insert(rows[0].begin(), "benchmark");
  for (const Result& r : results) {
    const std::optional<bool> pass = r.pass();
    std::string value = FormatNumber(r.value);
    if (!r.unit.empty() && !std::isnan(r.value)) value += " " + r.unit;
    char ratio[32] = "-";
    if (!std::isnan(r.ratio()))
      std::snprintf(ratio, sizeof ratio, "%.3f", r.ratio());
    Row row = {
        r.metric, value,           FormatNumber(r.baseline),
        ratio,    FormatTarget(r), pass ? (*pass ? "PASS" : "FAIL") : "-"};
    if (benchmark_column) row.insert(row.begin(), r.benchmark);
    rows.push_back(std::move(row));
  }
  std::vector<std::size_t> widths(rows[0].size(), 0);
  for (const Row& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  }
  auto print_row = [&widths, first](const Row& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (i > 0) line += " | ";
      // Numbers (value, baseline, ratio) right-aligned, text left-aligned.
      const bool right = i >= first + 1 && i <= first + 3;
      const std::string pad(widths[i] - row[i].size(), ' ');
      line += right ? pad + row[i] : row[i] + (i + 1 < row.size() ? pad : "");
    }
    std::printf("%s\n", line.c_str());
  };
  print_row(rows[0]);
  std::string rule;
  for (std::size_t i = 0; i < widths.size(); ++i)
    rule += (i > 0 ? "-+-" : "") + std::string(widths[i], '-');
  std::printf("%s\n", rule.c_str());
  for (std::size_t i = 1; i < rows.size(); ++i) print_row(rows[i]);
}

void PrintTablesByBenchmark(const std::vector<Result>& results) {
  std::vector<std::string> order;
  for (const Result& r : results) {
    if (std::find(order.begin(), order.end(), r.benchmark) == order.end())
      order.push_back(r.benchmark);
  }
  for (const std::string& benchmark : order) {
    std::vector<Result> rows;
    for (const Result& r : results) {
      if (r.benchmark == benchmark) rows.push_back(r);
    }
    std::printf("\n== %s\n", benchmark.c_str());
    PrintTable(rows, false);
  }
}

}  // namespace awaitd::bench
