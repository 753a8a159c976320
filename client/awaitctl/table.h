// Table: aligned columns for people, two spaces apart, the last column not
// padded (so no line ends in spaces), widths measured without colour codes.
//
//   Table t({"ID", "NAME", "STATE"});
//   t.AddHeader();
//   t.AddRow({{"1"}, {"Job-1"}, {"succeeded", Color::kGreen}});
//   out.Print(t.Render(out));
//
// Thread safety: a value; externally synchronized.
#ifndef AWAITD_CLIENT_AWAITCTL_TABLE_H_
#define AWAITD_CLIENT_AWAITCTL_TABLE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "client/awaitctl/output.h"

namespace awaitd::awaitctl {

class Table {
 public:
  struct Cell {
    Cell(std::string t, Color c = Color::kNone)  // NOLINT: implicit
        : text(std::move(t)), color(c) {}
    Cell(const char* t) : text(t) {}  // NOLINT: implicit
    std::string text;                 // printable (see Printable())
    Color color = Color::kNone;
  };

  explicit Table(std::vector<std::string> headers, std::size_t indent = 0);

  // The header row (bold on a terminal), where it is to appear.
  void AddHeader();
  // A row; missing cells are empty, extra ones ignored.
  void AddRow(std::vector<Cell> cells);
  // A line of its own, not aligned ("done (2)").
  void AddLine(std::string text, Color color = Color::kNone);

  std::size_t rows() const { return rows_; }
  std::string Render(const Output& out) const;

 private:
  struct Line {
    enum Kind { kHeader, kRow, kText } kind;
    std::vector<Cell> cells;  // kRow; kText holds one
  };
  std::vector<std::string> headers_;
  std::size_t indent_;
  std::vector<Line> lines_;
  std::size_t rows_ = 0;
};

}  // namespace awaitd::awaitctl

#endif  // AWAITD_CLIENT_AWAITCTL_TABLE_H_
