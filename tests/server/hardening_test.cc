// Hardening: what a hostile or careless client could do to the daemon's
// memory, its stack and its data directory, and the limits that stop it
// (results by reference, replies sized before they are built, the memory
// budget, nesting limits, group chains walked without recursion).
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/logger.h"
#include "runtime/runtime.h"
#include "runtime/time.h"
#include "server/daemon/daemon.h"
#include "server/jobs/job_manager.h"
#include "server/jobs/limits.h"
#include "server/kinds/job_kind.h"
#include "tests/runtime/test_util.h"
#include "tests/server/daemon_fixture.h"
#include "tests/server/rpc_test_util.h"

namespace awaitd::server {
namespace {

using testing::DaemonTest;
using ::testing::HasSubstr;
using testing::Input;
using testing::Spec;

// The process's peak resident set (VmHWM), in bytes; ResetPeakRss() starts
// a new peak (Linux: "5" into clear_refs).
std::size_t PeakRss() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      return std::stoull(line.substr(6)) * 1024;  // "VmHWM:   1234 kB"
    }
  }
  return 0;
}
bool ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

// A JSON object nested `levels` deep: {"a": {"a": ... 1}}.
std::string NestedJson(int levels) {
  std::string s;
  for (int i = 0; i < levels; ++i) s += R"({"a": )";
  s += "1";
  for (int i = 0; i < levels; ++i) s += "}";
  return s;
}

// Runs `fn` on a thread with a small stack (256 KiB): deep recursion there
// overflows at a depth a default 8 MiB stack would survive.
void OnSmallStack(std::function<void()> fn) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t t;
  auto* heap_fn = new std::function<void()>(std::move(fn));
  ASSERT_EQ(pthread_create(
                &t, &attr,
                [](void* p) -> void* {
                  std::unique_ptr<std::function<void()>> f(
                      static_cast<std::function<void()>*>(p));
                  (*f)();
                  return nullptr;
                },
                heap_fn),
            0);
  pthread_attr_destroy(&attr);
  pthread_join(t, nullptr);
}

// Waits (polling; bounded) until `job` is done.
bool AwaitJobDone(const JobPtr& job, double seconds = 60) {
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int>(seconds * 1e3));
  while (!job->done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Follows a chain of gathers of one child each, from `result` (the top
// group's result) down to the leaf's value, through the inlined levels and
// the {"result_ref": ...} entries past kMaxInlineGroupDepth (read with
// `get`). Returns the leaf's value, and the number of group levels seen.
google::protobuf::Value FollowChain(
    google::protobuf::Value result,
    const std::function<v1::Job(std::uint64_t)>& get, int* levels) {
  *levels = 0;
  for (;;) {
    if (result.has_list_value()) {
      EXPECT_EQ(result.list_value().values_size(), 1);
      if (result.list_value().values_size() != 1) return {};
      ++*levels;
      google::protobuf::Value next = result.list_value().values(0);
      result = std::move(next);
      continue;
    }
    if (result.has_struct_value() &&
        result.struct_value().fields().contains("result_ref")) {
      const auto id = static_cast<std::uint64_t>(result.struct_value()
                                                     .fields()
                                                     .at("result_ref")
                                                     .struct_value()
                                                     .fields()
                                                     .at("job_id")
                                                     .number_value());
      const v1::Job j = get(id);
      EXPECT_EQ(j.state(), v1::JOB_STATE_SUCCEEDED) << id;
      result = j.result();
      continue;
    }
    return result;
  }
}

// --- Over RPC ---------------------------------------------------------------

class HardeningTest : public testing::DataDirDaemonTest {
 protected:
  HardeningTest() : DataDirDaemonTest("awaitd_hardening") {}
  grpc::Status Gather(const std::vector<v1::JobInput>& inputs,
                      v1::GatherResponse* resp,
                      std::uint64_t* group_id = nullptr) {
    v1::GatherRequest req;
    for (const auto& in : inputs) *req.add_jobs() = in;
    auto ctx = Ctx();
    grpc::Status s = stub_->Gather(ctx.get(), req, resp);
    if (group_id != nullptr) *group_id = testing::GroupIdOf(*ctx);
    return s;
  }
  grpc::Status Get(const std::vector<std::uint64_t>& ids,
                   v1::GetResponse* resp) {
    v1::GetRequest req;
    for (std::uint64_t id : ids) req.add_ids(id);
    return stub_->Get(Ctx().get(), req, resp);
  }
};

// The first reproduction of the issue: a chain of Gathers, each of the
// previous group, made the store unreadable at the next start (each level
// nested the children's results two protobuf levels deeper).
TEST_F(HardeningTest, AChainOfSixtyGathersSurvivesARestart) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  std::uint64_t prev = SubmitOk({Spec("echo", R"({"value": 1})")})[0];
  std::vector<std::uint64_t> groups;
  for (int i = 0; i < 60; ++i) {
    v1::GatherResponse resp;
    std::uint64_t group = 0;
    grpc::Status s = Gather({Input(prev)}, &resp, &group);
    ASSERT_TRUE(s.ok()) << "level " << i << ": " << s.error_message();
    ASSERT_NE(group, 0u);
    groups.push_back(group);
    prev = group;
  }
  daemon_->Shutdown();  // SIGTERM's path
  StopDaemon();

  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable()));
  for (std::uint64_t g : groups) {
    EXPECT_EQ(GetOk(g).state(), v1::JOB_STATE_SUCCEEDED) << g;
  }
  // The top group's result leads down to the echo's value: inlined for
  // kMaxInlineGroupDepth levels, by reference below.
  const v1::Job top = GetOk(groups.back());
  int levels = 0;
  const google::protobuf::Value leaf = FollowChain(
      top.result(), [this](std::uint64_t id) { return GetOk(id); }, &levels);
  EXPECT_EQ(leaf.number_value(), 1);
  EXPECT_EQ(levels, 60);
}

// Results by reference: a chain of 10,000 groups (each gathering the one
// before) is stored, recovered, and every group answers.
TEST_F(HardeningTest, ATenThousandLevelChainOfGathersRecovers) {
  const std::size_t depth = runtime::testing::Scaled(10'000);
  // kAsync: the same records as kSync, without an fsync per group.
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable(Durability::kAsync)));
  const std::uint64_t leaf = SubmitOk({Spec("echo", R"({"value": 42})")})[0];
  JobManager& jobs = daemon_->jobs();
  auto prev = jobs.Find(leaf, "leaf");
  ASSERT_TRUE(prev.ok());
  std::vector<std::uint64_t> ids;
  JobPtr group = *prev;
  for (std::size_t i = 0; i < depth; ++i) {
    group = jobs.StartGather(jobs.ReserveId(), "", {group},
                             /*return_exceptions=*/false);
    ids.push_back(group->id());
  }
  ASSERT_TRUE(AwaitJobDone(group));
  ASSERT_EQ(group->state(), JobState::kSucceeded);
  group.reset();
  prev = absl::StatusOr<JobPtr>();
  daemon_->Shutdown();
  StopDaemon();

  ASSERT_NO_FATAL_FAILURE(StartDaemon(Durable(Durability::kAsync)));
  for (std::size_t i = 0; i < ids.size(); i += 1000) {
    std::vector<std::uint64_t> page(
        ids.begin() + i, ids.begin() + std::min(ids.size(), i + 1000));
    v1::GetResponse resp;
    grpc::Status s = Get(page, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    for (const v1::Job& j : resp.jobs()) {
      ASSERT_EQ(j.state(), v1::JOB_STATE_SUCCEEDED) << j.id();
    }
  }
  // The deepest reply nests kMaxInlineGroupDepth levels of groups.
  const v1::Job top = GetOk(ids.back());
  google::protobuf::Value v = top.result();
  for (int i = 0; i < kMaxInlineGroupDepth; ++i) {
    ASSERT_TRUE(v.has_list_value()) << "level " << i;
    google::protobuf::Value next = v.list_value().values(0);
    v = std::move(next);
  }
  ASSERT_TRUE(v.struct_value().fields().contains("result_ref"));
  EXPECT_EQ(v.struct_value()
                .fields()
                .at("result_ref")
                .struct_value()
                .fields()
                .at("job_id")
                .number_value(),
            static_cast<double>(ids[ids.size() - 1 - kMaxInlineGroupDepth]));
}

// asyncio.gather(t, t) returns t's result twice.
TEST_F(HardeningTest, AGatherOfOneJobTwiceReturnsItsResultTwice) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(DefaultOptions()));
  const std::uint64_t t = SubmitOk({Spec("echo", R"({"value": "x"})")})[0];
  v1::GatherResponse resp;
  std::uint64_t group = 0;
  ASSERT_TRUE(Gather({Input(t), Input(t)}, &resp, &group).ok());
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).result().string_value(), "x");
  EXPECT_EQ(resp.results(1).result().string_value(), "x");
  const v1::Job g = GetOk(group);
  ASSERT_EQ(g.result().list_value().values_size(), 2);
  EXPECT_EQ(g.result().list_value().values(1).string_value(), "x");
}

// The second reproduction: 20,000 copies of one 60 KB result asked for in a
// 120 KB request took the daemon to 2.4 GB before the reply was refused. It
// is refused now before any copy is made.
TEST_F(HardeningTest, RepeatedIdsInGetAreSizedBeforeAnyCopy) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(DefaultOptions()));
  const std::string big(60'000, 'x');
  const std::uint64_t id =
      SubmitOk({Spec("echo", R"({"value": ")" + big + R"("})")})[0];
  ASSERT_EQ(WaitForOk(id).result().string_value().size(), big.size());
  const bool peak_resettable = ResetPeakRss();
  const std::size_t before = PeakRss();
  v1::GetResponse resp;
  grpc::Status s = Get(std::vector<std::uint64_t>(20'000, id), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("--max_message_bytes"));
  EXPECT_THAT(s.error_message(), HasSubstr("20000 jobs"));
  if (peak_resettable) {
    // The request (160 KB) and its ids, not 1.2 GB of copies.
    EXPECT_LT(PeakRss() - before, std::size_t{64} << 20)
        << "peak RSS grew from " << before << " to " << PeakRss();
  }
  // A reply that fits still repeats the job, once per id.
  ASSERT_TRUE(Get(std::vector<std::uint64_t>(100, id), &resp).ok());
  ASSERT_EQ(resp.jobs_size(), 100);
  EXPECT_EQ(resp.jobs(99).result().string_value().size(), big.size());
}

TEST_F(HardeningTest, AGatherOfRepeatedInputsIsSizedBeforeItsReply) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(DefaultOptions()));
  const std::string big(60'000, 'x');
  const std::uint64_t id =
      SubmitOk({Spec("echo", R"({"value": ")" + big + R"("})")})[0];
  WaitForOk(id);
  const bool peak_resettable = ResetPeakRss();
  const std::size_t before = PeakRss();
  v1::GatherResponse resp;
  std::uint64_t group = 0;
  grpc::Status s =
      Gather(std::vector<v1::JobInput>(20'000, Input(id)), &resp, &group);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("--max_message_bytes"));
  if (peak_resettable) {
    EXPECT_LT(PeakRss() - before, std::size_t{64} << 20);
  }
  // The group exists and succeeded; its own reply is refused the same way.
  ASSERT_NE(group, 0u);
  v1::GetResponse get;
  s = Get({group}, &get);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // The group holds 20,000 references, not 20,000 copies.
  EXPECT_LT(daemon_->jobs().memory_charged(), std::size_t{4} << 20);
}

TEST_F(HardeningTest, AListPageEndsWhereTheReplyWouldNotFit) {
  DaemonOptions o = DefaultOptions();
  o.max_message_bytes = 1 << 20;
  ASSERT_NO_FATAL_FAILURE(StartDaemon(o));
  const std::string big(60'000, 'x');
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 40; ++i) {
    ids.push_back(
        SubmitOk({Spec("echo", R"({"value": ")" + big + R"("})")})[0]);
  }
  for (std::uint64_t id : ids) AwaitDone(id);
  std::vector<std::uint64_t> listed;
  std::string token;
  int pages = 0;
  do {
    v1::ListRequest req;
    req.set_page_size(1000);
    req.set_page_token(token);
    v1::ListResponse resp;
    grpc::Status s = stub_->List(Ctx().get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_LT(resp.ByteSizeLong(), std::size_t{1} << 20);
    for (const v1::Job& j : resp.jobs()) listed.push_back(j.id());
    token = resp.next_page_token();
    ASSERT_LT(++pages, 100);
  } while (!token.empty());
  EXPECT_EQ(listed, ids);
  EXPECT_GT(pages, 2);
}

TEST_F(HardeningTest, TheMemoryBudgetRefusesSubmitsAndKeepsWhatItAccepted) {
  DaemonOptions o = DefaultOptions();
  o.jobs.max_memory_bytes = 1 << 20;
  ASSERT_NO_FATAL_FAILURE(StartDaemon(o));
  v1::JobSpec spec =
      Spec("echo", R"({"value": ")" + std::string(50'000, 'y') + R"("})");
  *spec.mutable_delay() = testing::Seconds(3600);
  std::vector<std::uint64_t> accepted;
  grpc::Status refused;
  for (int i = 0; i < 100; ++i) {
    v1::SubmitResponse resp;
    grpc::Status s = Submit({spec}, &resp);
    if (!s.ok()) {
      refused = s;
      break;
    }
    accepted.push_back(resp.jobs(0).id());
  }
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("--max_memory_bytes=1048576"));
  EXPECT_THAT(refused.error_message(), HasSubstr("jobs:"));
  // About 1 MiB / 51 KB of them, all kept.
  EXPECT_GE(accepted.size(), 15u);
  EXPECT_LE(accepted.size(), 21u);
  for (std::uint64_t id : accepted) {
    EXPECT_EQ(GetOk(id).state(), v1::JOB_STATE_PENDING);
  }
  // Groups are admitted under the same budget: a list of 3,000 children
  // (24 bytes each) does not fit what is left.
  v1::GatherResponse gather;
  grpc::Status s =
      Gather(std::vector<v1::JobInput>(3000, Input(accepted[0])), &gather);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("--max_memory_bytes"));
  v1::RunGroupRequest run;
  *run.add_jobs() = spec;
  v1::RunGroupResponse run_resp;
  s = stub_->RunGroup(Ctx().get(), run, &run_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(HardeningTest, RetainedResultsCountAgainstTheMemoryBudget) {
  DaemonOptions o = DefaultOptions();
  o.jobs.max_memory_bytes = 1 << 20;
  o.jobs.result_ttl = absl::Hours(1);
  ASSERT_NO_FATAL_FAILURE(StartDaemon(o));
  // An echo of a 60 KB string holds its args and its result.
  const std::string big(60'000, 'z');
  std::size_t done = 0;
  grpc::Status refused;
  for (int i = 0; i < 100; ++i) {
    v1::WaitForResponse resp;
    grpc::Status s =
        WaitFor(Input(Spec("echo", R"({"value": ")" + big + R"("})")), &resp);
    if (!s.ok()) {
      refused = s;
      break;
    }
    ++done;
  }
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Each finished one holds ~120 KB (args and result): fewer fit than
  // pending ones would.
  EXPECT_GE(done, 6u);
  EXPECT_LE(done, 10u);
  EXPECT_THAT(refused.error_message(), HasSubstr("--max_memory_bytes"));
}

TEST_F(HardeningTest, ArgsNestedTooDeepAreRefusedNamingTheField) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(DefaultOptions()));
  // 20 levels: args (1) and 19 more inside "value".
  v1::SubmitResponse resp;
  ASSERT_TRUE(
      Submit({Spec("echo", R"({"value": )" + NestedJson(19) + "}")}, &resp)
          .ok());
  grpc::Status s =
      Submit({Spec("echo", R"({"value": )" + NestedJson(20) + "}")}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("jobs[0].args.value.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a."
                        "a.a: nested deeper than 20 levels"));
  // The same in a combinator's inline spec.
  v1::GatherResponse gather;
  s = Gather({Input(Spec("echo", R"({"value": )" + NestedJson(25) + "}"))},
             &gather);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("jobs[0].spec.args.value"));
}

// A group's stored record lists its children: a child forgotten before its
// group keeps its record (for the group) until the group is forgotten too,
// and is not seen by Get again after a restart.
TEST_F(HardeningTest, AForgottenChildIsKeptInTheStoreForItsGroup) {
  DaemonOptions o = Durable();
  o.jobs.max_finished_jobs = 1;  // one finished job retained at a time
  ASSERT_NO_FATAL_FAILURE(StartDaemon(o));
  const std::uint64_t child = SubmitOk({Spec("echo", R"({"value": 5})")})[0];
  WaitForOk(child);
  v1::GatherResponse resp;
  std::uint64_t group = 0;
  ASSERT_TRUE(Gather({Input(child)}, &resp, &group).ok());
  // The group finished after the child: the child is the one forgotten.
  daemon_->jobs().SweepNow();
  v1::GetResponse get;
  EXPECT_EQ(Get({child}, &get).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_EQ(GetOk(group).result().list_value().values(0).number_value(), 5);
  ASSERT_TRUE(daemon_->jobs().AwaitStored().ok());
  daemon_->Shutdown();
  StopDaemon();

  ASSERT_NO_FATAL_FAILURE(StartDaemon(o));
  const v1::Job g = GetOk(group);
  ASSERT_EQ(g.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(g.result().list_value().values(0).number_value(), 5);
  EXPECT_EQ(Get({child}, &get).error_code(), grpc::StatusCode::NOT_FOUND);
  // Forgetting the group deletes both records.
  const std::uint64_t other = SubmitOk({Spec("echo", R"({"value": 6})")})[0];
  WaitForOk(other);
  daemon_->jobs().SweepNow();
  EXPECT_EQ(Get({group}, &get).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(daemon_->jobs().AwaitStored().ok());
  daemon_->Shutdown();
  StopDaemon();
  ASSERT_NO_FATAL_FAILURE(StartDaemon(o));
  EXPECT_EQ(Get({group}, &get).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Get({child}, &get).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetOk(other).result().number_value(), 6);
}

// --- In process: kinds of the test's own, and stacks of a known size --------

class JobManagerHardeningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegisterBuiltinKinds(kinds_);
    ASSERT_TRUE(kinds_
                    .Register(JobKind{
                        .name = "deep",
                        .description = "returns a value nested 30 levels",
                        .bind = [](const google::protobuf::Struct&)
                            -> absl::StatusOr<JobBody> {
                          return []() -> JobBody {
                            google::protobuf::Value v;
                            v.set_number_value(1);
                            for (int i = 0; i < 30; ++i) {
                              google::protobuf::Value outer;
                              *outer.mutable_list_value()->add_values() = v;
                              v = outer;
                            }
                            co_return v;
                          }();
                        }})
                    .ok());
    ASSERT_TRUE(
        kinds_
            .Register(JobKind{.name = "huge",
                              .description = "returns 2 MB",
                              .bind = [](const google::protobuf::Struct&)
                                  -> absl::StatusOr<JobBody> {
                                return []() -> JobBody {
                                  google::protobuf::Value v;
                                  v.set_string_value(std::string(2 << 20, 'h'));
                                  co_return v;
                                }();
                              }})
            .ok());
    runtime::RuntimeOptions ro;
    ro.workers = 2;
    runtime_ = std::make_unique<runtime::Runtime>(ro);
    jobs_ = std::make_unique<JobManager>(*runtime_, kinds_, limits_, Options(),
                                         logger_);
    jobs_->Start();
  }
  void TearDown() override {
    jobs_->StopAccepting();
    jobs_->CancelAll("test over", absl::Now() + absl::Seconds(10));
    jobs_->Stop();
    runtime_->Shutdown();
    jobs_.reset();
    runtime_.reset();
  }

  virtual JobManagerOptions Options() const {
    JobManagerOptions o;
    o.max_result_bytes = 1 << 20;
    o.result_ttl = absl::Milliseconds(1);
    return o;
  }

  JobPtr SubmitOne(const std::string& kind, const std::string& args = "{}") {
    v1::JobSpec spec = Spec(kind, args);
    const v1::JobSpec* specs[] = {&spec};
    auto created = jobs_->Submit(specs, "jobs", 0, nullptr);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->front() : nullptr;
  }
  // A chain of `n` gathers over `leaf`, each of the one before.
  JobPtr Chain(JobPtr leaf, std::size_t n) {
    JobPtr g = std::move(leaf);
    for (std::size_t i = 0; i < n; ++i) {
      g = jobs_->StartGather(jobs_->ReserveId(), "", {g}, false);
    }
    return g;
  }

  JobKindRegistry kinds_;
  LimitRegistry limits_;
  Logger logger_{LogLevel::kError};
  std::unique_ptr<runtime::Runtime> runtime_;
  std::unique_ptr<JobManager> jobs_;
};

TEST_F(JobManagerHardeningTest, AResultNestedTooDeepFailsTheJob) {
  JobPtr job = SubmitOne("deep");
  ASSERT_TRUE(AwaitJobDone(job));
  EXPECT_EQ(job->state(), JobState::kFailed);
  ASSERT_NE(job->error(), nullptr);
  EXPECT_EQ(job->error()->type(), "ValueError");
  EXPECT_THAT(job->error()->message(), HasSubstr("deeper than 20 levels"));
  EXPECT_EQ(job->result(), nullptr);
}

TEST_F(JobManagerHardeningTest, AJobCountsItsArgsAndResultUntilForgotten) {
  EXPECT_EQ(jobs_->memory_charged(), 0u);
  const std::string value(10'000, 'v');
  v1::JobSpec spec = Spec("echo", R"({"value": ")" + value + R"("})");
  *spec.mutable_delay() = testing::Seconds(0.05);  // counted while pending
  const v1::JobSpec* specs[] = {&spec};
  auto created = jobs_->Submit(specs, "jobs", 0, nullptr);
  ASSERT_TRUE(created.ok()) << created.status();
  JobPtr job = created->front();
  const std::size_t pending = jobs_->memory_charged();
  EXPECT_GE(pending, kJobBaseBytes + value.size());
  ASSERT_TRUE(AwaitJobDone(job));
  // (Counted when its end is booked, just after it is published.)
  for (int i = 0; i < 1000 && jobs_->memory_charged() == pending; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GE(jobs_->memory_charged(), pending + value.size());
  // Forgotten (result_ttl is 1 ms; a sweep first notes it, a later one
  // forgets it): every byte is given back.
  for (int i = 0; i < 1000 && jobs_->memory_charged() != 0; ++i) {
    jobs_->SweepNow();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(jobs_->memory_charged(), 0u);
}

TEST_F(JobManagerHardeningTest, AResultTooLargeFailsTheJob) {
  JobPtr job = SubmitOne("huge");
  ASSERT_TRUE(AwaitJobDone(job));
  EXPECT_EQ(job->state(), JobState::kFailed);
  ASSERT_NE(job->error(), nullptr);
  EXPECT_EQ(job->error()->type(), "ResultTooLargeError");
  EXPECT_THAT(job->error()->message(), HasSubstr("--max_result_bytes=1048576"));
}

TEST_F(JobManagerHardeningTest, ALongChainOfGroupsIsCancelledWithoutRecursion) {
  JobPtr leaf = SubmitOne("sleep", R"({"seconds": 3600})");
  JobPtr top = Chain(leaf, 10'000);
  bool took = false;
  OnSmallStack([&] { took = jobs_->Cancel(top, "stop the chain"); });
  EXPECT_TRUE(took);
  // (The top gather ends at once; the leaf at its next suspension.)
  ASSERT_TRUE(AwaitJobDone(top));
  EXPECT_EQ(top->state(), JobState::kCancelled);
  ASSERT_TRUE(AwaitJobDone(leaf));
  EXPECT_EQ(leaf->state(), JobState::kCancelled);
}

TEST_F(JobManagerHardeningTest, ACancelWalksEachGroupOfADiamondChainOnce) {
  // g[k+1] = gather(g[k], g[k]): 2^60 paths from the top to the leaf.
  JobPtr leaf = SubmitOne("sleep", R"({"seconds": 3600})");
  JobPtr g = leaf;
  for (int i = 0; i < 60; ++i) {
    g = jobs_->StartGather(jobs_->ReserveId(), "", {g, g}, false);
  }
  EXPECT_TRUE(jobs_->Cancel(g, "stop"));
  ASSERT_TRUE(AwaitJobDone(g));
  EXPECT_EQ(g->state(), JobState::kCancelled);
}

// A Cancel() that takes effect while the body runs but before the job has
// its task's handle (SetTask comes just after the spawn, and a stealing
// worker may start the body first) still ends the job CANCELLED when the
// body returns: Cancel said true (SoakTest caught this once).
TEST(JobTest, ACancelBeforeTheJobHasItsTaskStillCancelsIt) {
  Job job(JobAttributes{.id = 1, .name = "j", .kind = "echo"});
  ASSERT_TRUE(job.EnterBody());
  bool ended = false;
  EXPECT_TRUE(job.CancelLeaf("too late for the handle", &ended));
  EXPECT_FALSE(ended);
  google::protobuf::Value v;
  v.set_number_value(1);
  ASSERT_TRUE(job.Finish(JobState::kSucceeded,
                         std::make_unique<google::protobuf::Value>(v), nullptr,
                         [](const Job&) { return false; }));
  EXPECT_EQ(job.state(), JobState::kCancelled);
  ASSERT_NE(job.error(), nullptr);
  EXPECT_EQ(job.error()->type(), "CancelledError");
  EXPECT_EQ(job.error()->message(), "too late for the handle");
}

TEST(JobTest, ALongChainOfGroupsIsFreedWithoutRecursion) {
  // 20,000 groups, each holding the one before: the last owner lets go on a
  // 256 KiB stack, which nested destructors (a few hundred bytes a level)
  // would overflow.
  std::vector<JobPtr> owner;
  {
    JobPtr g;
    for (int i = 0; i < 20'000; ++i) {
      JobAttributes a;
      a.id = static_cast<std::uint64_t>(i + 1);
      a.type = JobType::kGather;
      auto next = std::make_shared<Job>(std::move(a));
      if (g != nullptr) next->set_children({std::move(g)});
      g = std::move(next);
    }
    owner.push_back(std::move(g));
  }
  std::weak_ptr<Job> top = owner.front();
  OnSmallStack([&] { owner.clear(); });
  EXPECT_TRUE(top.expired());
}

}  // namespace
}  // namespace awaitd::server
