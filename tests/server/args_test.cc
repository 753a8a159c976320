// Args (server/kinds/args.h): the argument reader kinds bind with. The
// built-in kinds' messages are checked in builtin_kinds_test.cc; this is
// the reader's own contract.
#include "server/kinds/args.h"

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace awaitd::server {
namespace {

using google::protobuf::Struct;

Struct Parse(std::string_view json) {
  Struct s;
  auto status =
      google::protobuf::util::JsonStringToMessage(std::string(json), &s);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in " << json;
  return s;
}

void ExpectError(const Args& a, std::string_view message) {
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument)
      << a.status();
  EXPECT_EQ(std::string(a.status().message()), message);
}

TEST(ArgsTest, ReadsEveryTypeAndFallback) {
  const Struct s =
      Parse(R"({"n": 3, "x": 0.5, "s": "hi", "b": true, "v": [1, "a"]})");
  Args a(s, {"n", "x", "s", "b", "v", "m", "y", "t", "c", "w"});
  EXPECT_EQ(a.Integer("n"), 3);
  EXPECT_EQ(a.Number("x"), 0.5);
  EXPECT_EQ(a.String("s"), "hi");
  EXPECT_TRUE(a.Bool("b"));
  EXPECT_EQ(a.Any("v").list_value().values_size(), 2);
  EXPECT_EQ(a.IntegerOr("m", 7), 7);
  EXPECT_EQ(a.NumberOr("y", 1.5), 1.5);
  EXPECT_EQ(a.StringOr("t", "dflt"), "dflt");
  EXPECT_FALSE(a.BoolOr("c", false));
  EXPECT_EQ(a.AnyOr("w", NumberValue(4)).number_value(), 4);
  EXPECT_TRUE(a.ok()) << a.status();
}

TEST(ArgsTest, RefusesTheFirstUnknownFieldInByteOrder) {
  const Struct s = Parse(R"({"zzz": 1, "aaa": 2, "n": 3})");
  Args a(s, {"n", "m"});
  ExpectError(a, "aaa: unknown field (this kind takes: n, m)");
  EXPECT_EQ(a.Integer("n"), 0);  // a no-op after the error
}

TEST(ArgsTest, ARequiredFieldMissingIsRequired) {
  const Struct s = Parse("{}");
  Args a(s, {"text"});
  EXPECT_EQ(a.String("text"), "");
  ExpectError(a, "text: required");
}

TEST(ArgsTest, TheFirstErrorWins) {
  const Struct s = Parse(R"({"a": "x", "b": -1})");
  Args a(s, {"a", "b"});
  a.Number("a");
  a.Number("b", {.min = 0});
  ExpectError(a, "a: must be a number (got string)");
}

TEST(ArgsTest, WrongTypesNameWhatTheyGot) {
  const Struct s = Parse(R"({"n": "1", "s": 2, "b": null, "o": {}})");
  {
    Args a(s, {"n", "s", "b", "o"});
    a.Integer("n");
    ExpectError(a, "n: must be an integer (got string)");
  }
  {
    Args a(s, {"n", "s", "b", "o"});
    a.String("s");
    ExpectError(a, "s: must be a string (got number)");
  }
  {
    Args a(s, {"n", "s", "b", "o"});
    a.BoolOr("b", true);
    ExpectError(a, "b: must be a bool (got null)");
  }
  {
    Args a(s, {"n", "s", "b", "o"});
    a.Number("o");
    ExpectError(a, "o: must be a number (got object)");
  }
}

TEST(ArgsTest, RangesAndTheirNotes) {
  const Struct s = Parse(R"({"x": 0, "n": 2.5, "big": 101})");
  {
    Args a(s, {"x", "n", "big"});
    a.Number("x", {.min = 0, .min_exclusive = true});
    ExpectError(a, "x: must be a finite number > 0 (got 0)");
  }
  {
    Args a(s, {"x", "n", "big"});
    a.Integer("n", {.min = 1});
    ExpectError(a, "n: must be an integer >= 1 (got 2.5)");
  }
  {
    Args a(s, {"x", "n", "big"});
    a.Integer("n");
    ExpectError(a, "n: must be an integer (got 2.5)");
  }
  {
    Args a(s, {"x", "n", "big"});
    a.IntegerOr("big", 1, {.max = 100, .max_note = "a hundred"});
    ExpectError(a, "big: must be at most 100 (a hundred) (got 101)");
  }
}

TEST(ArgsTest, IntegersStayWithinTwoToTheFiftyThird) {
  const Struct s = Parse(R"({"n": 1e300, "m": -1e300, "k": 9007199254740992})");
  {
    Args a(s, {"n", "m", "k"});
    a.Integer("n");
    ExpectError(a, "n: must be at most 9007199254740992 (2^53) (got 1e+300)");
  }
  {
    Args a(s, {"n", "m", "k"});
    a.Integer("m");
    ExpectError(a,
                "m: must be at least -9007199254740992 (-2^53) (got -1e+300)");
  }
  {
    Args a(s, {"n", "m", "k"});
    EXPECT_EQ(a.Integer("k"), std::int64_t{1} << 53);
    EXPECT_TRUE(a.ok()) << a.status();
  }
}

TEST(ArgsTest, StringsHaveAMaximumLength) {
  const Struct s = Parse(R"({"s": "abcdef"})");
  Args a(s, {"s"});
  a.String("s", {.max_length = 5});
  ExpectError(a, "s: must be at most 5 bytes (got 6)");
}

TEST(ArgsTest, RefuseRecordsAKindsOwnCheckUnlessAnErrorCameFirst) {
  const Struct s = Parse(R"({"mode": "fast"})");
  Args a(s, {"mode"});
  if (a.String("mode") != "slow") a.Refuse("mode", "must be \"slow\"");
  a.Refuse("other", "ignored: not the first error");
  ExpectError(a, "mode: must be \"slow\"");
}

TEST(ArgsTest, FormatNumberWritesIntegersInFullAndOthersShortest) {
  EXPECT_EQ(FormatNumber(2592000), "2592000");
  EXPECT_EQ(FormatNumber(0.1), "0.1");
  EXPECT_EQ(FormatNumber(1e300), "1e+300");
  EXPECT_EQ(ValueKindName(StringValue("x")), "string");
  EXPECT_EQ(ValueKindName(BoolValue(true)), "bool");
  EXPECT_EQ(ValueKindName(NullValue()), "null");
}

}  // namespace
}  // namespace awaitd::server
