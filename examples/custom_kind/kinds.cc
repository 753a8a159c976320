#include "kinds.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cctype>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "runtime/time.h"
#include "runtime/to_thread.h"
#include "server/kinds/args.h"

namespace custom_kind {

using awaitd::server::Args;
using awaitd::server::JobBody;
using awaitd::server::JobFailure;
using google::protobuf::Struct;
using google::protobuf::Value;

// --- word_count: CPU work on the event loop ----------------------------------

// Counts the words of `text` at least `min_length` long, and the distinct
// ones. Yields every 64 KiB so the loop's other jobs run in between.
JobBody WordCount(std::string text, std::int64_t min_length) {
  std::int64_t words = 0;
  std::set<std::string> distinct;
  std::string word;
  auto flush = [&] {
    if (static_cast<std::int64_t>(word.size()) >= min_length) {
      ++words;
      distinct.insert(word);
    }
    word.clear();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (std::isalnum(c) || c == '\'') {
      word.push_back(static_cast<char>(std::tolower(c)));
    } else if (!word.empty()) {
      flush();
    }
    if (i % 65536 == 65535) co_await awaitd::runtime::Yield();
  }
  if (!word.empty()) flush();
  Value result;
  auto& fields = *result.mutable_struct_value()->mutable_fields();
  fields["words"] = awaitd::server::NumberValue(static_cast<double>(words));
  fields["distinct"] =
      awaitd::server::NumberValue(static_cast<double>(distinct.size()));
  co_return result;
}

absl::StatusOr<JobBody> BindWordCount(const Struct& args) {
  Args a(args, {"text", "min_length"});
  std::string text = a.String("text", {.max_length = 1 << 20});
  const std::int64_t min_length =
      a.IntegerOr("min_length", 1, {.min = 1, .max = 100});
  if (!a.ok()) return a.status();  // "text: required", ...
  return WordCount(std::move(text), min_length);
}

// --- resolve: a blocking call on the blocking pool ---------------------------

// getaddrinfo blocks (DNS), so it runs on the blocking pool, never on an
// event loop. It cannot be interrupted: a cancelled job's lookup runs on and
// its result is discarded.
JobBody Resolve(std::string host) {
  auto lookup = [host]() -> std::vector<std::string> {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* list = nullptr;
    if (int rc = getaddrinfo(host.c_str(), nullptr, &hints, &list); rc != 0) {
      throw JobFailure("socket.gaierror", host + ": " + gai_strerror(rc));
    }
    std::set<std::string> seen;
    for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
      char text[INET6_ADDRSTRLEN] = {};
      const void* addr =
          ai->ai_family == AF_INET
              ? static_cast<const void*>(
                    &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr)
              : static_cast<const void*>(
                    &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr);
      if (inet_ntop(ai->ai_family, addr, text, sizeof(text)) != nullptr) {
        seen.insert(text);
      }
    }
    freeaddrinfo(list);
    return {seen.begin(), seen.end()};
  };
  std::vector<std::string> addresses =
      co_await awaitd::runtime::ToThread(lookup);
  Value result;
  for (std::string& a : addresses) {
    *result.mutable_list_value()->add_values() =
        awaitd::server::StringValue(std::move(a));
  }
  co_return result;
}

absl::StatusOr<JobBody> BindResolve(const Struct& args) {
  Args a(args, {"host"});
  std::string host = a.String("host", {.max_length = 253});
  if (a.ok() && host.empty()) a.Refuse("host", "must not be empty");
  if (!a.ok()) return a.status();
  return Resolve(std::move(host));
}

absl::Status RegisterKinds(awaitd::server::JobKindRegistry& kinds) {
  absl::Status s = kinds.Register(
      {.name = "word_count",
       .description = "Counts the words of text (and the distinct ones).\n"
                      "args: text (string, required), min_length (integer "
                      "1..100, default 1)",
       .retry_safe = true,
       .bind = BindWordCount});
  if (!s.ok()) return s;
  return kinds.Register(
      {.name = "resolve",
       .description = "Resolves host to its addresses (getaddrinfo, on the "
                      "blocking pool).\nargs: host (string, required)",
       .blocking = true,
       .retry_safe = true,
       .bind = BindResolve});
}

}  // namespace custom_kind
