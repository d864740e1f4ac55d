#include "data/gzfile.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.hpp"

namespace dann::data {

namespace {

// gzread and gzwrite take an unsigned length and answer with an int.
constexpr size_t kMaxZlibChunk = size_t{1} << 30;

std::string system_reason(int err) { return err != 0 ? std::strerror(err) : "unknown error"; }

} // namespace

bool has_gz_suffix(const std::string &path) {
    return path.size() >= 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
}

// ---------------------------------------------------------------------------
// Input

InputFile::InputFile(const std::string &path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(DANN_ERR_IO, "cannot open " + path + ": " + system_reason(errno));
    file_ = gzdopen(fd, "rb");
    if (file_ == nullptr) {
        ::close(fd);
        fail(DANN_ERR_OUT_OF_MEMORY, "cannot open " + path + ": out of memory for the zlib stream");
    }
    gzbuffer(file_, 256 * 1024);
}

InputFile::~InputFile() {
    if (file_ != nullptr) gzclose_r(file_);
}

size_t InputFile::read(void *dst, size_t n) {
    auto *p = static_cast<unsigned char *>(dst);
    size_t total = 0;
    while (total < n) {
        const auto want = static_cast<unsigned>(std::min(n - total, kMaxZlibChunk));
        errno = 0;
        const int got = gzread(file_, p + total, want);
        const int saved_errno = errno;
        if (got > 0) total += static_cast<size_t>(got);
        if (got == static_cast<int>(want)) continue;

        // A short read: the end of the data, or an error that zlib recorded.
        int zerr = Z_OK;
        const char *zmsg = gzerror(file_, &zerr);
        switch (zerr) {
        case Z_OK:
        case Z_STREAM_END:
            return total;
        case Z_ERRNO:
            fail(DANN_ERR_IO, "reading " + path_ + ": " + system_reason(saved_errno));
        case Z_BUF_ERROR:
            fail(DANN_ERR_FORMAT, path_ + ": gzip stream truncated (unexpected end of file)");
        case Z_DATA_ERROR:
            fail(DANN_ERR_FORMAT, path_ + ": corrupt gzip stream (" + std::string(zmsg) + ")");
        case Z_MEM_ERROR:
            fail(DANN_ERR_OUT_OF_MEMORY, "reading " + path_ + ": out of memory in zlib");
        default:
            fail(DANN_ERR_IO, "reading " + path_ + ": " + std::string(zmsg));
        }
    }
    return total;
}

uint64_t InputFile::skip_rest() {
    unsigned char buf[64 * 1024];
    uint64_t total = 0;
    for (;;) {
        const size_t got = read(buf, sizeof buf);
        total += got;
        if (got < sizeof buf) return total;
    }
}

// ---------------------------------------------------------------------------
// Output

OutputFile::OutputFile(const std::string &path, bool gzip) : path_(path) {
    static std::atomic<unsigned> counter{0};
    tmp_path_ = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    // 0666 lets the umask decide the final permissions, as for any new file.
    fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0)
        fail(DANN_ERR_IO, "cannot write " + path_ + ": creating " + tmp_path_ + ": " + system_reason(errno));
    if (gzip) {
        // zlib closes the descriptor it is given; keep ours for fsync.
        const int gz_fd = ::dup(fd_);
        if (gz_fd < 0) fail_io("cannot write", errno);
        gz_ = gzdopen(gz_fd, "wb");
        if (gz_ == nullptr) {
            ::close(gz_fd);
            fail_io("cannot write", ENOMEM);
        }
    }
}

OutputFile::~OutputFile() {
    if (!committed_) discard();
}

void OutputFile::discard() noexcept {
    if (gz_ != nullptr) gzclose_w(gz_);
    gz_ = nullptr;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!tmp_path_.empty()) ::unlink(tmp_path_.c_str());
    tmp_path_.clear();
}

void OutputFile::fail_io(const std::string &what, int err) {
    discard();
    committed_ = true; // nothing left to clean up
    fail(DANN_ERR_IO, what + " " + path_ + ": " + system_reason(err));
}

void OutputFile::write(const void *src, size_t n) {
    if (committed_ || fd_ < 0) fail(DANN_ERR_INTERNAL, "write to " + path_ + " after commit");
    const auto *p = static_cast<const unsigned char *>(src);
    while (n > 0) {
        const size_t want = std::min(n, kMaxZlibChunk);
        if (gz_ != nullptr) {
            errno = 0;
            const int put = gzwrite(gz_, p, static_cast<unsigned>(want));
            if (put <= 0) {
                const int saved_errno = errno;
                int zerr = Z_OK;
                gzerror(gz_, &zerr);
                fail_io("writing", zerr == Z_ERRNO ? saved_errno : (zerr == Z_MEM_ERROR ? ENOMEM : EIO));
            }
            p += put;
            n -= static_cast<size_t>(put);
        } else {
            const ssize_t put = ::write(fd_, p, want);
            if (put < 0) {
                if (errno == EINTR) continue;
                fail_io("writing", errno);
            }
            p += put;
            n -= static_cast<size_t>(put);
        }
    }
}

void OutputFile::commit() {
    if (committed_ || fd_ < 0) fail(DANN_ERR_INTERNAL, "commit of " + path_ + " twice");
    if (gz_ != nullptr) {
        errno = 0;
        const int rc = gzclose_w(gz_);
        const int saved_errno = errno;
        gz_ = nullptr;
        if (rc != Z_OK) fail_io("writing", rc == Z_ERRNO ? saved_errno : EIO);
    }
    // Data on disk before the rename: after a crash, the old file or the whole new one.
    if (::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS) fail_io("writing", errno);
    const int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0 && errno != EINTR) fail_io("writing", errno);
    if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) fail_io("cannot rename the finished file to", errno);
    tmp_path_.clear();
    committed_ = true;
}

} // namespace dann::data
