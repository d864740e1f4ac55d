// The training log of `dann train`: LogRows as CSV, written row by row so that
// a long run can be watched (and plotted) while it trains, and read back so
// that a resumed run's log continues the first part's.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "recipe.hpp"

namespace dann::tool {

// The CSV header line (no newline).
const char *log_csv_header();
// One row as CSV (no newline); eval_accuracy < 0 is an empty field.
std::string log_csv_row(const LogRow &row);
// Rows of a CSV written by log_csv_row under log_csv_header. Throws
// std::runtime_error naming the file and line for anything else.
std::vector<LogRow> read_log_csv(const std::string &path);

class CsvLog {
public:
    // Starts a log at `path`. keep_previous: the run resumes, so rows already
    // in the file (if it exists and is readable) are kept up to the first new
    // row's step. Throws std::runtime_error if the file cannot be written.
    CsvLog(std::string path, bool keep_previous);
    ~CsvLog();
    CsvLog(const CsvLog &) = delete;
    CsvLog &operator=(const CsvLog &) = delete;

    void add(const LogRow &row);
    // Every row of the run, the kept ones first.
    const std::vector<LogRow> &rows() const { return rows_; }

private:
    void rewrite();
    std::string path_;
    std::FILE *file_ = nullptr;
    std::vector<LogRow> rows_;
    bool pending_previous_ = false;
};

} // namespace dann::tool
