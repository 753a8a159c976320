// awaitd_bench_harness (awaitd::bench_harness): the parts runtime_bench and
// server_bench share.
//
// Both binaries run each benchmark in a fresh child process: the binary
// re-executed with its own arguments plus --child=<name>, which prints one
// JSON line, {"benchmark":<name>,"results":[<row>,...]}, on stdout. The parent
// collects the rows, prints them as a table, optionally writes them to a
// --json file as {"machine":{...},\n"results":[\n<row>,\n...\n]}\n, and exits
// 1 under --fail_on_miss when a row misses its target. This library holds
// that protocol: the rows (Result, Target), their JSON form, the child
// process driver, the table printer, and the median / quantile helpers the
// benchmarks report with. What differs stays in each binary: its flags (so
// --help is unchanged; the harness takes their values as arguments), how it
// spawns itself, its benchmarks, and its "machine" fields and table header.
//
// JSON goes through Boost.JSON (values, parsing, string escaping) with two
// exceptions that keep the files' text as it always was: numbers are written
// "%.17g" (NaN and infinities as null), where Boost 1.81's serializer writes
// 1.5 as "1.5E0" and NaN as "NaN"; and ParseJson converts numbers from their
// text with strtod, where Boost 1.81's parser is one ulp off for about one in
// five 17-digit numbers (1.83 added parse_options::numbers for this), which
// would change the last digit of figures copied from a child to the file.
#ifndef AWAITD_BENCH_HARNESS_HARNESS_H_
#define AWAITD_BENCH_HARNESS_HARNESS_H_

#include <sys/types.h>

#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "boost/json/object.hpp"
#include "boost/json/value.hpp"

namespace awaitd::bench {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// --- Statistics --------------------------------------------------------------

// The median of `v` (the mean of the middle two for an even count); NaN if
// empty.
double Median(std::vector<double> v);
// The q-quantile (0..1) of sorted `v`, nearest rank; NaN if empty.
double SortedQuantile(const std::vector<double>& v, double q);
// The same for unsorted `v`.
double Quantile(std::vector<double> v, double q);
// With `verbose`, prints "  <what>: <v[0]> <v[1]> ..." to stderr: the values
// of every repetition behind a median.
void LogReps(bool verbose, std::string_view what, const std::vector<double>& v);

// --- Results -----------------------------------------------------------------

// A pass/fail criterion on the value or on value / baseline.
struct Target {
  enum class On { kValue, kRatio };
  On on = On::kValue;
  bool at_most = true;  // true: <= bound; false: >= bound
  double bound = 0;

  bool Met(double x) const { return at_most ? x <= bound : x >= bound; }
};

Target AtMost(double bound, Target::On on = Target::On::kValue);
Target AtLeast(double bound, Target::On on = Target::On::kValue);

// One row of a benchmark's results.
struct Result {
  std::string benchmark;
  std::string metric;
  std::string unit;
  double value = kNaN;
  double baseline = kNaN;  // NaN: none
  std::optional<Target> target;

  double ratio() const;
  // Empty when there is no target; false when the value (or ratio) the target
  // is on is missing.
  std::optional<bool> pass() const;
};

// Whether no row missed its target (rows without one count as passed).
bool AllPassed(const std::vector<Result>& results);

// --- JSON --------------------------------------------------------------------

// Compact JSON text of `v`: Boost.JSON's, except that doubles are "%.17g" and
// NaN / infinities are null.
std::string Serialize(const boost::json::value& v);
// Parses one JSON text (standard JSON, nothing after it; strings may hold
// invalid UTF-8); every number becomes a double, converted from its text by
// strtod. Empty on error.
std::optional<boost::json::value> ParseJson(std::string_view text);

// {"benchmark","metric","unit","value","baseline","ratio",
//  "target":{"on":"value"|"ratio","op":"<="|">=","bound"}|null,
//  "pass":true|false|null}, in that order.
boost::json::object ResultToJson(const Result& r);
// The inverse of ResultToJson (ratio and pass are derived, not read); missing
// fields get defaults. Empty unless `j` is an object.
std::optional<Result> ResultFromJson(const boost::json::value& j);

// Writes {"machine":<machine>,\n"results":[\n<row>,\n...<row>\n]}\n to
// `path`. False if the file cannot be written.
bool WriteJsonFile(const std::string& path, const boost::json::object& machine,
                   const std::vector<Result>& results);

// --- Benchmarks in child processes -------------------------------------------

struct Benchmark {
  const char* name;
  std::vector<Result> (*run)();
};

const Benchmark* FindBenchmark(std::span<const Benchmark> benchmarks,
                               std::string_view name);

// Splits the comma-separated --benchmarks value (whitespace ignored). Prints
// "<tool>: unknown benchmark '<name>' (known: ...)" to stderr and returns
// empty if a name is not in `benchmarks`.
std::optional<std::vector<std::string>> SelectBenchmarks(
    std::string_view tool, std::string_view list,
    std::span<const Benchmark> benchmarks);

// The --child=<name> side: runs benchmark `name` and prints its JSON line on
// stdout. Returns the process's exit status (2: unknown benchmark).
int RunChild(std::string_view tool, std::span<const Benchmark> benchmarks,
             const std::string& name);

// Starts `argv` (argv[0] is for the spawner to interpret) with its stdout on
// `stdout_fd` and returns its pid; or returns -1 and sets *error.
using SpawnFn = std::function<pid_t(const std::vector<std::string>& argv,
                                    int stdout_fd, std::string* error)>;

// The parent side: spawns `argv` plus --child=<name>, reads its stdout to the
// end, reaps it, and returns the rows of the last line that parses as a JSON
// object. Any failure (spawn, exit status, no JSON) becomes a single row,
// "child process: <why>", that always fails.
std::vector<Result> RunInChild(const std::string& name,
                               std::vector<std::string> argv,
                               const SpawnFn& spawn);

// RunInChild for each of `names` in turn, announcing each on stderr
// ("<tool>: running <name>..."); every row, in order.
std::vector<Result> RunAllInChildren(std::string_view tool,
                                     const std::vector<std::string>& names,
                                     const std::vector<std::string>& argv,
                                     const SpawnFn& spawn);

// "exit status N", "killed by signal N", or "status N", for a waitpid status.
std::string DescribeExit(int status);

// --- Output ------------------------------------------------------------------

// What every "machine" header has.
struct HostInfo {
  unsigned nproc = 0;     // std::thread::hardware_concurrency()
  std::string cpu_model;  // the first "model name" in /proc/cpuinfo
  std::string loadavg;    // the first three fields of /proc/loadavg
};
HostInfo ReadHostInfo();

// Short human-readable number: 3 significant digits, k/M/G suffixes; "-" for
// NaN.
std::string FormatNumber(double v);

// Prints `results` as one aligned table on stdout:
//   [benchmark |] metric | value | baseline | ratio | target | result
// with a rule under the header; numbers right-aligned.
void PrintTable(const std::vector<Result>& results, bool benchmark_column);

// One table per benchmark, in the order they first appear, each after a
// "\n== <benchmark>\n" line and without the benchmark column.
void PrintTablesByBenchmark(const std::vector<Result>& results);

}  // namespace awaitd::bench

#endif  // AWAITD_BENCH_HARNESS_HARNESS_H_
