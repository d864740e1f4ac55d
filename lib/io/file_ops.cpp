#include "io/file_ops.hpp"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.hpp"

namespace dann::io {
namespace {

int posix_open(void *, const char *path, int flags, unsigned mode) {
    return ::open(path, flags, static_cast<mode_t>(mode));
}
ssize_t posix_write(void *, int fd, const void *data, size_t size) { return ::write(fd, data, size); }
int posix_fsync(void *, int fd) { return ::fsync(fd); }
int posix_close(void *, int fd) { return ::close(fd); }
int posix_rename(void *, const char *from, const char *to) { return std::rename(from, to); }
int posix_unlink(void *, const char *path) { return ::unlink(path); }
int posix_open_dir(void *, const char *path) { return ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC); }

std::string folder_of(const std::string &path) {
    const size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

// Names are unique within a process (the counter) and between live processes
// (the pid); a name left by a dead process is skipped by O_EXCL.
std::string temp_name(const std::string &path) {
    static std::atomic<uint64_t> counter{0};
    return path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

class AtomicWrite {
public:
    AtomicWrite(const std::string &path, const FileOps &ops) : path_(path), ops_(ops) {}
    ~AtomicWrite() {
        // Only reached with a file or folder still open when an error is thrown.
        if (fd_ >= 0) ops_.close(ops_.user, fd_);
        if (!tmp_.empty()) ops_.unlink(ops_.user, tmp_.c_str());
        if (dir_fd_ >= 0) ops_.close(ops_.user, dir_fd_);
    }
    AtomicWrite(const AtomicWrite &) = delete;
    AtomicWrite &operator=(const AtomicWrite &) = delete;

    void run(const uint8_t *data, size_t size) {
        // The folder first: without it the rename could not be made durable,
        // and nothing has been written yet.
        const std::string dir = folder_of(path_);
        dir_fd_ = ops_.open_dir(ops_.user, dir.c_str());
        if (dir_fd_ < 0) {
            const int e = errno;
            failed("open of the folder " + dir, e);
        }

        for (int attempt = 0; fd_ < 0; ++attempt) {
            const std::string name = temp_name(path_);
            fd_ = ops_.open(ops_.user, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
            const int e = errno;
            if (fd_ >= 0) {
                tmp_ = name;
            } else if (e != EEXIST || attempt >= 100) {
                failed("open of " + name, e);
            }
        }

        size_t done = 0;
        while (done < size) {
            const ssize_t n = ops_.write(ops_.user, fd_, data + done, size - done);
            const int e = errno;
            if (n < 0 && e == EINTR) continue;
            if (n < 0) failed("write to " + tmp_, e);
            // A regular file that takes nothing would loop forever.
            if (n == 0) failed("write to " + tmp_ + " (no progress at byte " + std::to_string(done) + ")", ENOSPC);
            done += static_cast<size_t>(n);
        }
        int rc;
        while ((rc = ops_.fsync(ops_.user, fd_)) != 0 && errno == EINTR) {
        }
        if (rc != 0) {
            const int e = errno;
            failed("fsync of " + tmp_, e);
        }
        // The descriptor is released even when close reports an error
        // (POSIX leaves it unspecified, Linux always closes it).
        const int fd = fd_;
        fd_ = -1;
        if (ops_.close(ops_.user, fd) != 0) {
            const int e = errno;
            failed("close of " + tmp_, e);
        }
        if (ops_.rename(ops_.user, tmp_.c_str(), path_.c_str()) != 0) {
            const int e = errno;
            failed("rename of " + tmp_ + " to " + path_, e);
        }
        tmp_.clear();

        // Some file systems cannot sync a folder (EINVAL); the rename stands.
        while ((rc = ops_.fsync(ops_.user, dir_fd_)) != 0 && errno == EINTR) {
        }
        const int e = errno;
        ops_.close(ops_.user, dir_fd_);
        dir_fd_ = -1;
        if (rc != 0 && e != EINVAL)
            fail(DANN_ERR_IO, "cannot save " + path_ + ": fsync of the folder " + dir + " failed: " +
                                  std::strerror(e) + "; the new file is in place but may not survive a power loss");
    }

private:
    // `e` is errno, read before a message's allocation could change it.
    [[noreturn]] void failed(const std::string &call, int e) {
        fail(DANN_ERR_IO, "cannot save " + path_ + ": " + call + " failed: " + std::strerror(e) + "; " +
                              path_ + " is unchanged");
    }

    const std::string &path_;
    const FileOps &ops_;
    int dir_fd_ = -1, fd_ = -1;
    std::string tmp_;
};

} // namespace

const FileOps &posix_file_ops() {
    static const FileOps ops = [] {
        FileOps o;
        o.open = posix_open;
        o.write = posix_write;
        o.fsync = posix_fsync;
        o.close = posix_close;
        o.rename = posix_rename;
        o.unlink = posix_unlink;
        o.open_dir = posix_open_dir;
        return o;
    }();
    return ops;
}

void write_file_atomically(const std::string &path, const void *data, size_t size, const FileOps &ops) {
    AtomicWrite w(path, ops);
    w.run(static_cast<const uint8_t *>(data), size);
}

std::vector<uint8_t> read_file_bytes(const std::string &path, uint64_t max_bytes) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) {
        const int e = errno;
        fail(DANN_ERR_IO, "cannot open " + path + ": " + std::strerror(e));
    }
    struct stat st {};
    if (::fstat(::fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        std::fclose(f);
        fail(DANN_ERR_IO, "cannot read " + path + ": it is a folder");
    }
    std::vector<uint8_t> data;
    uint8_t buf[1 << 16];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) {
        if (got > max_bytes - data.size()) {
            std::fclose(f);
            fail(DANN_ERR_FORMAT, path + ": file is too large to be a model (more than " +
                                      std::to_string(max_bytes) + " bytes)");
        }
        data.insert(data.end(), buf, buf + got);
    }
    const bool error = std::ferror(f) != 0;
    const int e = errno;
    std::fclose(f);
    if (error) fail(DANN_ERR_IO, "cannot read " + path + ": " + std::strerror(e));
    return data;
}

} // namespace dann::io
