// Spec's builder, the command-line spec parser (ParseSpecs, ParseInputs),
// ParseArgValue, ParseDuration and FormatSpec.
#include "client/spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "google/protobuf/util/message_differencer.h"

namespace awaitd::client {
namespace {

using ::testing::HasSubstr;
using Words = std::vector<std::string>;

const google::protobuf::Value& ArgOf(const Spec& spec, const std::string& key) {
  return spec.proto().args().fields().at(key);
}

// The error of parsing `words` (which must fail).
std::string ParseError(const Words& words) {
  absl::StatusOr<std::vector<Spec>> specs = ParseSpecs(words);
  EXPECT_FALSE(specs.ok()) << "parsed: " << testing::PrintToString(words);
  if (specs.ok()) return "";
  EXPECT_EQ(specs.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(specs.status().message());
}

// --- Builder -----------------------------------------------------------------

TEST(SpecBuilder, SetsKindAndTypedArgs) {
  Spec s = Spec("sleep")
               .Arg("seconds", 1.5)
               .Arg("n", 3)
               .Arg("big", std::int64_t{1} << 40)
               .Arg("ok", true)
               .Arg("text", "hello")
               .Arg("view", std::string_view("v"));
  EXPECT_EQ(s.proto().kind(), "sleep");
  EXPECT_EQ(ArgOf(s, "seconds").number_value(), 1.5);
  EXPECT_EQ(ArgOf(s, "n").number_value(), 3);
  EXPECT_EQ(ArgOf(s, "big").number_value(), 1099511627776.0);
  EXPECT_TRUE(ArgOf(s, "ok").bool_value());
  EXPECT_EQ(ArgOf(s, "text").string_value(), "hello");
  EXPECT_EQ(ArgOf(s, "view").string_value(), "v");
}

TEST(SpecBuilder, ArgReplacesAnEarlierValueOfTheSameKey) {
  Spec s = Spec("echo").Arg("value", 1).Arg("value", "two");
  EXPECT_EQ(ArgOf(s, "value").string_value(), "two");
}

TEST(SpecBuilder, SetsEveryOption) {
  const absl::Time at =
      absl::FromUnixSeconds(1'800'000'000) + absl::Milliseconds(250);
  Spec s = Spec("echo")
               .Name("A")
               .Timeout(absl::Milliseconds(1500))
               .StartAt(at)
               .Shield()
               .Limit("api")
               .Limit("db")
               .IdempotencyKey("k1");
  const v1::JobSpec& p = s.proto();
  EXPECT_EQ(p.name(), "A");
  EXPECT_EQ(p.timeout().seconds(), 1);
  EXPECT_EQ(p.timeout().nanos(), 500'000'000);
  EXPECT_EQ(p.start_at().seconds(), 1'800'000'000);
  EXPECT_EQ(p.start_at().nanos(), 250'000'000);
  EXPECT_TRUE(p.shield());
  EXPECT_THAT(p.limits(), ::testing::ElementsAre("api", "db"));
  EXPECT_EQ(p.idempotency_key(), "k1");
}

TEST(SpecBuilder, DelayAndStartAtReplaceEachOther) {
  Spec s("echo");
  s.StartAt(absl::FromUnixSeconds(10)).Delay(absl::Seconds(2));
  EXPECT_TRUE(s.proto().has_delay());
  EXPECT_FALSE(s.proto().has_start_at());
  EXPECT_EQ(s.proto().delay().seconds(), 2);
}

TEST(SpecBuilder, InfiniteTimeoutMeansNoTimeout) {
  Spec s = Spec("echo").Timeout(absl::Seconds(3));
  s.Timeout(absl::InfiniteDuration());
  EXPECT_FALSE(s.proto().has_timeout());
}

TEST(SpecBuilder, StartAtBeforeTheEpochKeepsNanosPositive) {
  Spec s("echo");
  s.StartAt(absl::FromUnixSeconds(0) - absl::Milliseconds(1));
  EXPECT_EQ(s.proto().start_at().seconds(), -1);
  EXPECT_EQ(s.proto().start_at().nanos(), 999'000'000);
}

TEST(SpecBuilder, InputReleasesItsProto) {
  Input from_id(7u);
  EXPECT_EQ(from_id.proto().id(), 7u);
  Input from_spec(Spec("echo").Arg("value", 1));
  v1::JobInput p = std::move(from_spec).release();
  EXPECT_EQ(p.spec().kind(), "echo");
  Input from_ref(JobRef{.id = 9});
  EXPECT_EQ(from_ref.proto().id(), 9u);
}

// --- ParseArgValue -----------------------------------------------------------

TEST(SpecArgValue, NumberIsANumber) {
  EXPECT_EQ(ParseArgValue("3").number_value(), 3);
  EXPECT_EQ(ParseArgValue("-0.5").number_value(), -0.5);
}

TEST(SpecArgValue, QuotedNumberIsAString) {
  google::protobuf::Value v = ParseArgValue("\"3\"");
  ASSERT_EQ(v.kind_case(), google::protobuf::Value::kStringValue);
  EXPECT_EQ(v.string_value(), "3");
}

TEST(SpecArgValue, TrueIsABool) {
  google::protobuf::Value v = ParseArgValue("true");
  ASSERT_EQ(v.kind_case(), google::protobuf::Value::kBoolValue);
  EXPECT_TRUE(v.bool_value());
}

TEST(SpecArgValue, BracketsAreAList) {
  google::protobuf::Value v = ParseArgValue("[1,2]");
  ASSERT_EQ(v.kind_case(), google::protobuf::Value::kListValue);
  ASSERT_EQ(v.list_value().values_size(), 2);
  EXPECT_EQ(v.list_value().values(1).number_value(), 2);
}

TEST(SpecArgValue, BracesAreAnObject) {
  google::protobuf::Value v = ParseArgValue(R"({"a": [1, 2]})");
  ASSERT_EQ(v.kind_case(), google::protobuf::Value::kStructValue);
  EXPECT_EQ(v.struct_value().fields().at("a").list_value().values_size(), 2);
}

TEST(SpecArgValue, PlainWordIsAString) {
  EXPECT_EQ(ParseArgValue("hello").string_value(), "hello");
}

TEST(SpecArgValue, MalformedJsonIsTheTextItself) {
  EXPECT_EQ(ParseArgValue("[1,").string_value(), "[1,");
  EXPECT_EQ(ParseArgValue("{a}").string_value(), "{a}");
}

TEST(SpecArgValue, EmptyIsAnEmptyString) {
  google::protobuf::Value v = ParseArgValue("");
  ASSERT_EQ(v.kind_case(), google::protobuf::Value::kStringValue);
  EXPECT_EQ(v.string_value(), "");
}

// --- ParseDuration -----------------------------------------------------------

TEST(SpecDuration, BareNumberIsSeconds) {
  EXPECT_EQ(*ParseDuration("1.5", "t"), absl::Milliseconds(1500));
  EXPECT_EQ(*ParseDuration("0", "t"), absl::ZeroDuration());
  EXPECT_EQ(*ParseDuration("2", "t"), absl::Seconds(2));
}

TEST(SpecDuration, AbslSyntax) {
  EXPECT_EQ(*ParseDuration("500ms", "t"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDuration("1m30s", "t"), absl::Seconds(90));
  EXPECT_EQ(*ParseDuration("2h", "t"), absl::Hours(2));
}

TEST(SpecDuration, MalformedNamesTheFieldAndTheText) {
  absl::StatusOr<absl::Duration> d = ParseDuration("soon", "@timeout");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.status().message(),
            "@timeout: must be a duration like 1.5, 500ms or 1m30s (got "
            "\"soon\")");
}

TEST(SpecDuration, NegativeIsRejected) {
  EXPECT_FALSE(ParseDuration("-1", "t").ok());
  EXPECT_FALSE(ParseDuration("-5s", "t").ok());
}

TEST(SpecDuration, InfinityEmptyAndSpacesAreRejected) {
  for (const char* text : {"inf", "-inf", "nan", "", " 1", "1 ", "1.5 s"}) {
    EXPECT_FALSE(ParseDuration(text, "t").ok()) << text;
  }
}

TEST(SpecDuration, UnknownUnitIsRejected) {
  EXPECT_FALSE(ParseDuration("5x", "t").ok());
}

// --- ParseSpecs --------------------------------------------------------------

TEST(SpecParse, KindsStartSpecsAndArgsFollowThem) {
  auto specs = ParseSpecs(
      Words{"factorial", "n=2", "factorial", "n=3", "step_seconds=0.5"});
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 2u);
  EXPECT_EQ((*specs)[0].proto().kind(), "factorial");
  EXPECT_EQ(ArgOf((*specs)[0], "n").number_value(), 2);
  EXPECT_EQ(ArgOf((*specs)[1], "n").number_value(), 3);
  EXPECT_EQ(ArgOf((*specs)[1], "step_seconds").number_value(), 0.5);
}

TEST(SpecParse, ValuesAreJsonWhereTheyParse) {
  auto specs = ParseSpecs(
      Words{"k", "n=3", "s=\"3\"", "ok=true", "v=[1,2]", "text=hello"});
  ASSERT_TRUE(specs.ok()) << specs.status();
  const Spec& s = (*specs)[0];
  EXPECT_EQ(ArgOf(s, "n").kind_case(), google::protobuf::Value::kNumberValue);
  EXPECT_EQ(ArgOf(s, "s").string_value(), "3");
  EXPECT_EQ(ArgOf(s, "ok").kind_case(), google::protobuf::Value::kBoolValue);
  EXPECT_EQ(ArgOf(s, "v").list_value().values_size(), 2);
  EXPECT_EQ(ArgOf(s, "text").string_value(), "hello");
}

TEST(SpecParse, ValueKeepsEqualsSignsAfterTheFirst) {
  auto specs = ParseSpecs(Words{"echo", "expr=a=b"});
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_EQ(ArgOf((*specs)[0], "expr").string_value(), "a=b");
}

TEST(SpecParse, EmptyValueIsAnEmptyString) {
  auto specs = ParseSpecs(Words{"echo", "value="});
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_EQ(ArgOf((*specs)[0], "value").string_value(), "");
}

TEST(SpecParse, OptionsSetTheSpec) {
  auto specs = ParseSpecs(Words{"sleep", "seconds=1", "@name=A", "@timeout=2s",
                                "@delay=500ms", "@limit=api", "@limit=db",
                                "@shield", "@idempotency_key=k1"});
  ASSERT_TRUE(specs.ok()) << specs.status();
  const v1::JobSpec& p = (*specs)[0].proto();
  EXPECT_EQ(p.name(), "A");
  EXPECT_EQ(p.timeout().seconds(), 2);
  EXPECT_EQ(p.delay().nanos(), 500'000'000);
  EXPECT_THAT(p.limits(), ::testing::ElementsAre("api", "db"));
  EXPECT_TRUE(p.shield());
  EXPECT_EQ(p.idempotency_key(), "k1");
}

TEST(SpecParse, StartAtReadsRfc3339) {
  auto specs = ParseSpecs(Words{"echo", "@start_at=2026-11-23T10:00:00.5Z"});
  ASSERT_TRUE(specs.ok()) << specs.status();
  absl::Time want;
  std::string err;
  ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, "2026-11-23T10:00:00.5Z",
                              &want, &err));
  const v1::JobSpec& p = (*specs)[0].proto();
  EXPECT_EQ(p.start_at().seconds(), absl::ToUnixSeconds(want));
  EXPECT_EQ(p.start_at().nanos(), 500'000'000);
}

TEST(SpecParse, NoWordsIsNoSpecs) {
  auto specs = ParseSpecs(Words{});
  ASSERT_TRUE(specs.ok());
  EXPECT_TRUE(specs->empty());
}

TEST(SpecParse, DigitsAreAKindNotAnId) {
  auto specs = ParseSpecs(Words{"12"});
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_EQ((*specs)[0].proto().kind(), "12");
}

TEST(SpecParse, ArgumentBeforeAnyKindNamesTheWord) {
  EXPECT_EQ(ParseError(Words{"n=2"}),
            "word 1 \"n=2\": an argument before any kind");
}

TEST(SpecParse, OptionBeforeAnyKindNamesTheWord) {
  EXPECT_THAT(ParseError(Words{"@shield", "echo"}),
              HasSubstr("word 1 \"@shield\": an option before any kind"));
}

TEST(SpecParse, DuplicateKeyNamesBothWords) {
  EXPECT_EQ(ParseError(Words{"echo", "value=1", "value=2"}),
            "word 3 \"value=2\": duplicate key \"value\" (already set by "
            "word 2)");
}

TEST(SpecParse, SameKeyInTwoSpecsIsFine) {
  EXPECT_TRUE(ParseSpecs(Words{"echo", "value=1", "echo", "value=2"}).ok());
}

TEST(SpecParse, EmptyKeyNamesTheWord) {
  EXPECT_THAT(ParseError(Words{"echo", "=3"}),
              HasSubstr("word 2 \"=3\": empty key"));
}

TEST(SpecParse, UnknownOptionListsTheValidOnes) {
  const std::string e = ParseError(Words{"echo", "@color=red"});
  EXPECT_THAT(e, HasSubstr("word 2 \"@color=red\": unknown option @color"));
  for (const char* o : {"@name", "@timeout", "@delay", "@start_at", "@limit",
                        "@shield", "@idempotency_key"}) {
    EXPECT_THAT(e, HasSubstr(o));
  }
}

TEST(SpecParse, DelayAndStartAtTogetherNameTheSecond) {
  const std::string e =
      ParseError(Words{"echo", "@delay=1s", "@start_at=2026-11-23T10:00:00Z"});
  EXPECT_THAT(e, HasSubstr("word 3 \"@start_at=2026-11-23T10:00:00Z\""));
  EXPECT_THAT(e, HasSubstr("@delay"));
  const std::string e2 =
      ParseError(Words{"echo", "@start_at=2026-11-23T10:00:00Z", "@delay=1s"});
  EXPECT_THAT(e2, HasSubstr("word 3 \"@delay=1s\""));
}

TEST(SpecParse, BadDurationNamesTheWordAndTheOption) {
  const std::string e = ParseError(Words{"echo", "@timeout=soon"});
  EXPECT_THAT(e, HasSubstr("word 2 \"@timeout=soon\""));
  EXPECT_THAT(e, HasSubstr("@timeout: must be a duration like 1.5, 500ms or "
                           "1m30s (got \"soon\")"));
}

TEST(SpecParse, NegativeDelayIsRejected) {
  EXPECT_THAT(ParseError(Words{"echo", "@delay=-1"}),
              HasSubstr("word 2 \"@delay=-1\""));
}

TEST(SpecParse, BadStartAtNamesTheWord) {
  const std::string e = ParseError(Words{"echo", "@start_at=tomorrow"});
  EXPECT_THAT(e, HasSubstr("word 2 \"@start_at=tomorrow\""));
  EXPECT_THAT(e, HasSubstr("RFC 3339"));
}

TEST(SpecParse, OptionWithoutValueNamesTheWord) {
  EXPECT_THAT(ParseError(Words{"echo", "@name"}),
              HasSubstr("word 2 \"@name\": @name needs a value"));
  EXPECT_THAT(ParseError(Words{"echo", "@limit="}),
              HasSubstr("word 2 \"@limit=\": @limit needs a value"));
}

TEST(SpecParse, RepeatedSingleOptionNamesTheWord) {
  EXPECT_THAT(ParseError(Words{"echo", "@name=a", "@name=b"}),
              HasSubstr("word 3 \"@name=b\": @name given twice"));
}

TEST(SpecParse, ShieldTakesNoOtherValue) {
  EXPECT_THAT(ParseError(Words{"echo", "@shield=maybe"}),
              HasSubstr("word 2 \"@shield=maybe\""));
  auto specs = ParseSpecs(Words{"echo", "@shield=false"});
  ASSERT_TRUE(specs.ok());
  EXPECT_FALSE((*specs)[0].proto().shield());
}

TEST(SpecParse, EmptyWordNamesItsPosition) {
  EXPECT_THAT(ParseError(Words{"echo", ""}), HasSubstr("word 2 \"\""));
}

TEST(SpecParse, ControlCharactersAreEscapedInMessages) {
  EXPECT_THAT(ParseError(Words{"a\nb=1"}), HasSubstr("\"a\\x0ab=1\""));
}

// --- ParseInputs -------------------------------------------------------------

TEST(SpecParseInputs, DigitsAreJobIdsAndKeepTheirPlace) {
  auto inputs =
      ParseInputs(Words{"12", "sleep", "seconds=1", "13", "echo", "value=2"});
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  ASSERT_EQ(inputs->size(), 4u);
  EXPECT_EQ((*inputs)[0].proto().id(), 12u);
  EXPECT_EQ((*inputs)[1].proto().spec().kind(), "sleep");
  EXPECT_EQ((*inputs)[2].proto().id(), 13u);
  EXPECT_EQ((*inputs)[3].proto().spec().kind(), "echo");
}

TEST(SpecParseInputs, ArgumentAfterAnIdNamesTheId) {
  auto inputs = ParseInputs(Words{"sleep", "12", "seconds=1"});
  ASSERT_FALSE(inputs.ok());
  EXPECT_EQ(inputs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(inputs.status().message(),
              HasSubstr("word 3 \"seconds=1\": an argument after job id 12"));
}

TEST(SpecParseInputs, ArgumentBeforeAnyInputNamesTheWord) {
  auto inputs = ParseInputs(Words{"n=2"});
  ASSERT_FALSE(inputs.ok());
  EXPECT_EQ(inputs.status().message(),
            "word 1 \"n=2\": an argument before any kind");
}

TEST(SpecParseInputs, ZeroAndOverflowAreNotIds) {
  for (const char* w : {"0", "99999999999999999999999"}) {
    auto inputs = ParseInputs(Words{w});
    ASSERT_FALSE(inputs.ok()) << w;
    EXPECT_THAT(inputs.status().message(), HasSubstr("not a job id")) << w;
  }
}

TEST(SpecParseInputs, ErrorsOfSpecsStillNameTheWord) {
  auto inputs = ParseInputs(Words{"1", "echo", "@nope"});
  ASSERT_FALSE(inputs.ok());
  EXPECT_THAT(inputs.status().message(), HasSubstr("word 3 \"@nope\""));
}

// --- FormatSpec --------------------------------------------------------------

TEST(SpecFormat, WritesKindSortedArgsAndOptions) {
  Spec s = Spec("sleep")
               .Arg("seconds", 1.5)
               .Arg("result", "done")
               .Name("A")
               .Timeout(absl::Seconds(2))
               .Limit("api")
               .Shield()
               .IdempotencyKey("k");
  EXPECT_EQ(FormatSpec(s.proto()),
            "sleep result=done seconds=1.5 @name=A @timeout=2s @limit=api "
            "@shield @idempotency_key=k");
}

TEST(SpecFormat, QuotesStringsThatWouldReadBackAsOtherTypes) {
  Spec s =
      Spec("echo").Arg("a", "3").Arg("b", "true").Arg("c", "x y").Arg("d", "");
  EXPECT_EQ(FormatSpec(s.proto()), R"(echo a="3" b="true" c="x y" d="")");
}

TEST(SpecFormat, ParsesBackToTheSameSpec) {
  Spec s = Spec("echo")
               .Arg("value", "a=b")
               .Arg("n", 3)
               .Arg("s", "3")
               .Arg("v", ParseArgValue("[1,\"x\"]"))
               .Delay(absl::Milliseconds(1500))
               .Limit("x")
               .Limit("y");
  const std::string text = FormatSpec(s.proto());
  Words words;
  for (absl::string_view w : absl::StrSplit(text, ' ')) {
    words.emplace_back(w.data(), w.size());
  }
  auto back = ParseSpecs(words);
  ASSERT_TRUE(back.ok()) << back.status() << " for " << text;
  ASSERT_EQ(back->size(), 1u);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      (*back)[0].proto(), s.proto()))
      << text << "\nread back as " << (*back)[0].proto().DebugString();
}

TEST(SpecFormat, WritesStartAtAsRfc3339) {
  Spec s = Spec("echo").StartAt(absl::FromUnixSeconds(1'795'168'800));
  EXPECT_EQ(FormatSpec(s.proto()), "echo @start_at=2026-11-20T10:00:00Z");
}

}  // namespace
}  // namespace awaitd::client
