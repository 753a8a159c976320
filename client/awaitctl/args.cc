// Splits awaitctl's command line into command, options and arguments.
#include "client/awaitctl/args.h"

#include <cctype>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/spec.h"
#include "common/strings.h"

namespace awaitd::awaitctl {
namespace {

// Text from the command line as the user typed it, quoted for a message;
// control characters are escaped so they cannot garble the terminal.
std::string Quote(std::string_view text) {
  std::string out = "'";
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    } else {
      out += static_cast<char>(c);
    }
  }
  out += "'";
  return out;
}

// Every option name of `command` and the global ones, for "did you mean".
std::vector<std::string_view> OptionNames(const CommandInfo* command) {
  std::vector<std::string_view> names;
  if (command != nullptr) {
    for (const OptionInfo& o : command->options) names.push_back(o.name);
  }
  for (const OptionInfo& o : GlobalOptions()) names.push_back(o.name);
  return names;
}

// Why `name` (without "--") is not an option here.
std::string UnknownOption(const CommandInfo* command, std::string_view name) {
  std::string message = StrCat("unknown option ", Quote(StrCat("--", name)));
  // An option of some command, given where it does not apply.
  std::string owners;
  for (const CommandInfo& c : Commands()) {
    if (&c == command) continue;
    for (const OptionInfo& o : c.options) {
      if (o.name == name) {
        StrAppend(&owners, owners.empty() ? "" : ", ", c.name);
        break;
      }
    }
  }
  if (command == nullptr && !owners.empty()) {
    StrAppend(&message, " before the command (it is an option of ", owners,
              "; put it after the command's name)");
    return message;
  }
  if (command != nullptr) StrAppend(&message, " for ", command->name);
  const std::vector<std::string_view> names = OptionNames(command);
  if (std::string close = ClosestMatch(name, names); !close.empty()) {
    StrAppend(&message, " (did you mean '--", close, "'?)");
  } else if (!owners.empty()) {
    StrAppend(&message, " (it is an option of ", owners, ")");
  }
  return message;
}

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or
// code points past U+10FFFF), as protobuf strings must be.
bool IsUtf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= text.size()) return false;  // cut short
    for (std::size_t k = 1; k <= n; ++k) {
      const unsigned char b = static_cast<unsigned char>(text[i + k]);
      if ((b & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3f);
    }
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// Every byte of `text` outside printable ASCII as \xNN.
std::string HexEscaped(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c < 0x20 || c >= 0x7f) {
      StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

bool LooksLikeNumber(std::string_view word) {
  return word.size() >= 2 && word[0] == '-' &&
         (std::isdigit(static_cast<unsigned char>(word[1])) || word[1] == '.');
}

class Parser {
 public:
  explicit Parser(std::span<const std::string> words) : words_(words) {}

  Invocation Run() {
    bool only_arguments = false;
    for (i_ = 0; i_ < words_.size(); ++i_) {
      const std::string& word = words_[i_];
      if (!IsUtf8(word)) {
        Fail(StrCat("'", HexEscaped(word), "' is not valid UTF-8 text"));
        continue;
      }
      if (only_arguments || word.size() < 2 || word[0] != '-' ||
          LooksLikeNumber(word)) {
        Argument(word);
      } else if (word == "--") {
        only_arguments = true;
      } else if (word[1] == '-') {
        LongOption(std::string_view(word).substr(2));
      } else {
        ShortOptions(std::string_view(word).substr(1));
      }
    }
    return std::move(inv_);
  }

 private:
  void Fail(std::string message) {
    if (inv_.error.ok()) {
      inv_.error = absl::InvalidArgumentError(std::move(message));
    }
  }

  void Argument(const std::string& word) {
    if (inv_.command != nullptr || !inv_.error.ok()) {
      inv_.args.push_back(word);
      return;
    }
    inv_.command = FindCommand(word);
    if (inv_.command != nullptr) return;
    std::vector<std::string_view> names;
    for (const CommandInfo& c : Commands()) names.push_back(c.name);
    std::string message = StrCat("unknown command ", Quote(word));
    if (std::string close = ClosestMatch(word, names); !close.empty()) {
      StrAppend(&message, " (did you mean '", close, "'?)");
    }
    Fail(std::move(message));
  }

  void Record(const OptionInfo& option, std::string value) {
    if (option.name == "help") {
      inv_.help = true;
    } else if (option.name == "version") {
      inv_.version = true;
    } else {
      inv_.options[std::string(option.name)].push_back(std::move(value));
    }
  }

  void LongOption(std::string_view text) {
    const std::size_t eq = text.find('=');
    const std::string_view name = text.substr(0, eq);
    const OptionInfo* option = FindOption(inv_.command, name);
    if (option == nullptr) {
      Fail(UnknownOption(inv_.command, name));
      return;
    }
    if (option->value.empty()) {
      if (eq != std::string_view::npos) {
        Fail(StrCat("option '--", name, "' takes no value (got ",
                    Quote(text.substr(eq + 1)), ")"));
        return;
      }
      Record(*option, "");
      return;
    }
    if (eq != std::string_view::npos) {
      Record(*option, std::string(text.substr(eq + 1)));
    } else if (i_ + 1 < words_.size()) {
      Record(*option, words_[++i_]);
    } else {
      Fail(StrCat("option '--", name, "' needs a value (--", name, " ",
                  option->value, ")"));
    }
  }

  // "-q", "-h", or several flags at once ("-qh").
  void ShortOptions(std::string_view letters) {
    for (std::size_t k = 0; k < letters.size(); ++k) {
      const OptionInfo* option = FindShortOption(inv_.command, letters[k]);
      if (option == nullptr) {
        Fail(StrCat("unknown option ", Quote(StrCat("-", letters.substr(k, 1))),
                    " (long options start with '--')"));
        return;
      }
      if (!option->value.empty()) {  // none today; kept general
        if (k + 1 < letters.size()) {
          Record(*option, std::string(letters.substr(k + 1)));
        } else if (i_ + 1 < words_.size()) {
          Record(*option, words_[++i_]);
        } else {
          Fail(StrCat("option '-", letters.substr(k, 1), "' needs a value"));
        }
        return;
      }
      Record(*option, "");
    }
  }

  std::span<const std::string> words_;
  std::size_t i_ = 0;
  Invocation inv_;
};

}  // namespace

bool Invocation::Has(std::string_view name) const {
  return options.find(name) != options.end();
}

std::optional<std::string> Invocation::Value(std::string_view name) const {
  auto it = options.find(name);
  if (it == options.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> Invocation::Values(std::string_view name) const {
  auto it = options.find(name);
  if (it == options.end()) return {};
  return it->second;
}

absl::StatusOr<std::optional<absl::Duration>> Invocation::Duration(
    std::string_view name) const {
  std::optional<std::string> text = Value(name);
  if (!text) return std::optional<absl::Duration>();
  absl::StatusOr<absl::Duration> d =
      client::ParseDuration(*text, StrCat("--", name));
  if (!d.ok()) return d.status();
  return std::optional<absl::Duration>(*d);
}

absl::StatusOr<long long> Invocation::Integer(std::string_view name,
                                              long long fallback, long long min,
                                              long long max) const {
  std::optional<std::string> text = Value(name);
  if (!text) return fallback;
  return ParseInteger(*text, StrCat("--", name), min, max);
}

Invocation ParseCommandLine(std::span<const std::string> words) {
  return Parser(words).Run();
}

absl::StatusOr<long long> ParseInteger(std::string_view text,
                                       std::string_view what, long long min,
                                       long long max) {
  long long value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec == std::errc::invalid_argument || ptr != end) {
    return absl::InvalidArgumentError(
        StrCat(what, ": must be an integer (got ", Quote(text), ")"));
  }
  if (ec == std::errc::result_out_of_range || value < min || value > max) {
    return absl::InvalidArgumentError(StrCat(
        what, ": must be from ", min, " to ", max, " (got ", Quote(text), ")"));
  }
  return value;
}

absl::StatusOr<std::uint64_t> ParseJobId(std::string_view text) {
  std::uint64_t id = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, id);
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0])) ||
      ec != std::errc() || ptr != end || id == 0) {
    return absl::InvalidArgumentError(
        StrCat(Quote(text), " is not a job id (a positive integer)"));
  }
  return id;
}

}  // namespace awaitd::awaitctl
