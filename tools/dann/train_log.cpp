#include "train_log.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "args.hpp"
#include "json.hpp"

namespace dann::tool {

const char *log_csv_header() {
    return "step,p,lr,lambda,label_loss,domain_loss,domain_accuracy,target_entropy,eval_accuracy";
}

std::string log_csv_row(const LogRow &r) {
    std::string line = std::to_string(r.step);
    for (const double v : {r.p, r.lr, r.lambda, r.label_loss, r.domain_loss, r.domain_accuracy,
                           r.target_entropy})
        line += "," + json::number(v);
    line += ",";
    if (r.eval_accuracy >= 0) line += json::number(r.eval_accuracy);
    return line;
}

std::vector<LogRow> read_log_csv(const std::string &path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
    std::string line;
    if (!std::getline(in, line) || line != log_csv_header())
        throw std::runtime_error(path + ": not a dann training log (unexpected header)");
    std::vector<LogRow> rows;
    for (int number = 2; std::getline(in, line); ++number) {
        if (line.empty()) continue;
        std::vector<std::string> fields;
        std::stringstream stream(line);
        for (std::string field; std::getline(stream, field, ',');) fields.push_back(field);
        if (!line.empty() && line.back() == ',') fields.emplace_back();
        const std::string where = path + " line " + std::to_string(number);
        if (fields.size() != 9) throw std::runtime_error(where + ": expected 9 fields");
        try {
            LogRow r;
            r.step = parse_int(fields[0], "step");
            double *values[] = {&r.p, &r.lr, &r.lambda, &r.label_loss, &r.domain_loss,
                                &r.domain_accuracy, &r.target_entropy};
            for (size_t i = 0; i < 7; ++i) *values[i] = parse_double(fields[i + 1], "field");
            r.eval_accuracy = fields[8].empty() ? -1 : parse_double(fields[8], "eval_accuracy");
            rows.push_back(r);
        } catch (const std::exception &e) {
            throw std::runtime_error(where + ": " + e.what());
        }
    }
    return rows;
}

CsvLog::CsvLog(std::string path, bool keep_previous) : path_(std::move(path)) {
    if (keep_previous) {
        std::ifstream probe(path_);
        if (probe) {
            try {
                rows_ = read_log_csv(path_);
                pending_previous_ = true;
                // Appending to the old file would leave rows past the checkpoint;
                // it is rewritten when the first new row arrives.
                return;
            } catch (const std::exception &e) {
                std::fprintf(stderr, "dann train: warning: %s; starting a new log\n", e.what());
                rows_.clear();
            }
        }
    }
    rewrite();
}

CsvLog::~CsvLog() {
    if (file_) std::fclose(file_);
}

void CsvLog::rewrite() {
    if (file_) std::fclose(file_);
    file_ = std::fopen(path_.c_str(), "w");
    if (!file_) throw std::runtime_error("cannot write " + path_ + ": " + std::strerror(errno));
    std::fprintf(file_, "%s\n", log_csv_header());
    for (const LogRow &r : rows_) std::fprintf(file_, "%s\n", log_csv_row(r).c_str());
    std::fflush(file_);
}

void CsvLog::add(const LogRow &row) {
    if (pending_previous_) {
        pending_previous_ = false;
        std::vector<LogRow> kept;
        for (const LogRow &r : rows_)
            if (r.step < row.step) kept.push_back(r);
        rows_.swap(kept);
        rewrite();
    }
    rows_.push_back(row);
    if (std::fprintf(file_, "%s\n", log_csv_row(row).c_str()) < 0 || std::fflush(file_) != 0)
        throw std::runtime_error("cannot write " + path_ + ": " + std::strerror(errno));
}

} // namespace dann::tool
