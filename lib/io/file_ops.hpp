// The system calls that saving a file makes, behind a table of function
// pointers so that tests can record them or make any of them fail. The
// default table calls POSIX directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <sys/types.h>
#include <vector>

namespace dann::io {

// Each function behaves like its POSIX namesake: -1 and errno on failure.
// `user` is handed to every call unchanged.
struct FileOps {
    void *user = nullptr;
    int (*open)(void *user, const char *path, int flags, unsigned mode) = nullptr;
    ssize_t (*write)(void *user, int fd, const void *data, size_t size) = nullptr;
    int (*fsync)(void *user, int fd) = nullptr;
    int (*close)(void *user, int fd) = nullptr;
    int (*rename)(void *user, const char *from, const char *to) = nullptr;
    int (*unlink)(void *user, const char *path) = nullptr;
    // Opens a folder for fsync (O_RDONLY | O_DIRECTORY).
    int (*open_dir)(void *user, const char *path) = nullptr;
};

const FileOps &posix_file_ops();

// Replaces `path` with `size` bytes so that, whatever happens, `path` holds
// either its old contents or the new ones, whole: the folder is opened, a
// temporary file next to `path` is written, fsync'ed and closed, renamed over
// `path`, and the folder fsync'ed. On failure the temporary file is removed
// and DANN_ERR_IO names the call that failed and the system's reason. A
// process killed in the middle may leave `<path>.tmp-<pid>-<n>` behind; it is
// never read and may be deleted.
void write_file_atomically(const std::string &path, const void *data, size_t size,
                           const FileOps &ops = posix_file_ops());

// The whole file; DANN_ERR_IO if it cannot be read, DANN_ERR_FORMAT if it is
// larger than max_bytes.
std::vector<uint8_t> read_file_bytes(const std::string &path, uint64_t max_bytes);

} // namespace dann::io
