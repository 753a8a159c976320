// Links the installed awaitd::client and uses it without a daemon: builds a
// spec, parses command-line words, and finds nothing listening on port 1.
#include <cstdio>
#include <string>
#include <vector>

#include "client/client.h"
#include "client/spec.h"

int main() {
  using awaitd::client::Client;
  using awaitd::client::Spec;
  const Spec spec = Spec("factorial").Arg("n", 3).Name("A");
  std::vector<std::string> words = {"factorial", "n=3", "@name=A"};
  auto parsed = awaitd::client::ParseSpecs(words);
  if (!parsed.ok() || parsed->size() != 1 ||
      (*parsed)[0].proto().SerializeAsString() !=
          spec.proto().SerializeAsString()) {
    std::fprintf(stderr, "ParseSpecs disagrees with the builder\n");
    return 1;
  }
  auto client = Client::Connect(
      {.address = "127.0.0.1:1", .connect_timeout = absl::Milliseconds(200)});
  if (client.ok() || !absl::IsUnavailable(client.status())) {
    std::fprintf(stderr, "expected UNAVAILABLE from port 1\n");
    return 1;
  }
  std::printf("ok: %s\n", awaitd::client::FormatSpec(spec.proto()).c_str());
  return 0;
}
