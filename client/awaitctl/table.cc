// Table rendering.
#include "client/awaitctl/table.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/awaitctl/format.h"
#include "common/strings.h"

namespace awaitd::awaitctl {

Table::Table(std::vector<std::string> headers, std::size_t indent)
    : headers_(std::move(headers)), indent_(indent) {}

void Table::AddHeader() { lines_.push_back({Line::kHeader, {}}); }

void Table::AddRow(std::vector<Cell> cells) {
  cells.resize(headers_.size(), Cell(""));
  lines_.push_back({Line::kRow, std::move(cells)});
  ++rows_;
}

void Table::AddLine(std::string text, Color color) {
  lines_.push_back({Line::kText, {Cell(std::move(text), color)}});
}

std::string Table::Render(const Output& out) const {
  const bool has_header =
      std::any_of(lines_.begin(), lines_.end(),
                  [](const Line& l) { return l.kind == Line::kHeader; });
  std::vector<std::size_t> widths(headers_.size(), 0);
  for (std::size_t c = 0; c < headers_.size(); ++c) {
    if (has_header) widths[c] = DisplayWidth(headers_[c]);
  }
  for (const Line& line : lines_) {
    if (line.kind != Line::kRow) continue;
    for (std::size_t c = 0; c < headers_.size(); ++c) {
      widths[c] = std::max(widths[c], DisplayWidth(line.cells[c].text));
    }
  }
  // Trailing columns empty in every row (and header) are dropped.
  std::size_t columns = headers_.size();
  while (columns > 0 && widths[columns - 1] == 0) --columns;

  std::string result;
  const std::string indent(indent_, ' ');
  for (const Line& line : lines_) {
    if (line.kind == Line::kText) {
      StrAppend(&result, indent,
                out.Paint(line.cells[0].text, line.cells[0].color), "\n");
      continue;
    }
    std::string text = indent;
    // The last cell that is not empty ends the line (no trailing spaces).
    std::size_t last = 0;
    for (std::size_t c = 0; c < columns; ++c) {
      const std::string& t =
          line.kind == Line::kHeader ? headers_[c] : line.cells[c].text;
      if (!t.empty()) last = c;
    }
    for (std::size_t c = 0; c <= last && c < columns; ++c) {
      const bool header = line.kind == Line::kHeader;
      const std::string& t = header ? headers_[c] : line.cells[c].text;
      const Color color = header ? Color::kBold : line.cells[c].color;
      StrAppend(&text, out.Paint(t, color));
      if (c < last) {
        text.append(widths[c] - DisplayWidth(t) + 2, ' ');
      }
    }
    StrAppend(&result, text, "\n");
  }
  return result;
}

}  // namespace awaitd::awaitctl
