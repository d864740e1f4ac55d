// Files as the data readers and writers see them. Input goes through zlib,
// which reads gzip streams and plain files alike; output is written to a
// temporary file beside the destination and renamed over it once complete,
// so that no reader ever sees half a file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

struct gzFile_s; // zlib's handle type

namespace dann::data {

// A file opened for reading, gzip-compressed or plain (told by its first bytes,
// not by its name). Errors: DANN_ERR_IO when the file cannot be opened or read
// (with the system's reason), DANN_ERR_FORMAT when a gzip stream is corrupt or
// ends early. Messages name the file.
class InputFile {
public:
    explicit InputFile(const std::string &path);
    ~InputFile();
    InputFile(const InputFile &) = delete;
    InputFile &operator=(const InputFile &) = delete;

    // Reads up to n bytes into dst; fewer only at the end of the data.
    size_t read(void *dst, size_t n);
    // Reads to the end of the data and returns how many bytes were left.
    uint64_t skip_rest();
    const std::string &path() const { return path_; }

private:
    std::string path_;
    gzFile_s *file_ = nullptr;
};

// A file being written: the data goes to a temporary file in the same folder,
// and commit() flushes it to disk and renames it to `path`. A file destroyed
// before commit() leaves `path` untouched and removes the temporary. gzip
// selects gzip compression. Errors (DANN_ERR_IO, naming the file and the
// system's reason, e.g. "No space left on device") come from the constructor,
// write() or commit().
class OutputFile {
public:
    OutputFile(const std::string &path, bool gzip);
    ~OutputFile();
    OutputFile(const OutputFile &) = delete;
    OutputFile &operator=(const OutputFile &) = delete;

    void write(const void *src, size_t n);
    void commit();

private:
    [[noreturn]] void fail_io(const std::string &what, int err);
    void discard() noexcept;

    std::string path_, tmp_path_;
    int fd_ = -1;
    gzFile_s *gz_ = nullptr;
    bool committed_ = false;
};

// Whether a path ends in ".gz".
bool has_gz_suffix(const std::string &path);

} // namespace dann::data
