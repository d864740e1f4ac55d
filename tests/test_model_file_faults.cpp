// Saving a model file when things go wrong: the order of the system calls,
// each of them failing in turn (through io::FileOps), a real full disk, and a
// writer killed at random moments. Whatever happens, the file at the path is
// the old one or the new one, whole, and no temporary file is left behind by
// a save that returned.
#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <random>
#include <sched.h>
#include <string>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "dann.h"
#include "file_test_util.hpp"
#include "io/file_ops.hpp"
#include "io/model_file.hpp"
#include "model_file_test_util.hpp"

namespace {

using namespace model_test;
using dann_test::TempDir;

// A FileOps that records every call and can make one of them fail. Writes may
// be cut short; fsync succeeds without touching the disk unless asked to.
struct Recorder {
    struct Call {
        std::string op;
        int fd = -1;
        std::string path, to;
    };
    std::vector<Call> calls;
    int fail_at = -1; // index of the call that fails
    int error = 0;    // its errno
    bool zero_write = false; // the failing call, a write, returns 0 instead
    size_t max_write = SIZE_MAX;
    bool real_fsync = false;

    dann::io::FileOps ops() {
        dann::io::FileOps o;
        o.user = this;
        o.open = [](void *u, const char *p, int flags, unsigned mode) {
            Recorder &r = self(u);
            if (r.record({"open", -1, p, ""})) return -1;
            const int fd = ::open(p, flags, static_cast<mode_t>(mode));
            r.calls.back().fd = fd;
            return fd;
        };
        o.write = [](void *u, int fd, const void *data, size_t size) -> ssize_t {
            Recorder &r = self(u);
            if (r.record({"write", fd, "", ""})) return r.zero_write ? 0 : -1;
            return ::write(fd, data, std::min(size, r.max_write));
        };
        o.fsync = [](void *u, int fd) {
            Recorder &r = self(u);
            if (r.record({"fsync", fd, "", ""})) return -1;
            return r.real_fsync ? ::fsync(fd) : 0;
        };
        o.close = [](void *u, int fd) {
            Recorder &r = self(u);
            const bool failing = r.record({"close", fd, "", ""});
            const int e = errno;
            ::close(fd); // Linux releases the descriptor even when close fails
            errno = e;
            return failing ? -1 : 0;
        };
        o.rename = [](void *u, const char *from, const char *to) {
            Recorder &r = self(u);
            if (r.record({"rename", -1, from, to})) return -1;
            return std::rename(from, to);
        };
        o.unlink = [](void *u, const char *p) {
            Recorder &r = self(u);
            if (r.record({"unlink", -1, p, ""})) return -1;
            return ::unlink(p);
        };
        o.open_dir = [](void *u, const char *p) {
            Recorder &r = self(u);
            if (r.record({"open_dir", -1, p, ""})) return -1;
            const int fd = ::open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            r.calls.back().fd = fd;
            return fd;
        };
        return o;
    }

private:
    static Recorder &self(void *u) { return *static_cast<Recorder *>(u); }
    // True when this call is the one that fails (errno set).
    bool record(Call c) {
        calls.push_back(std::move(c));
        if (static_cast<int>(calls.size()) - 1 != fail_at) return false;
        errno = zero_write ? 0 : error;
        return true;
    }
};

std::vector<std::string> folder_entries(const std::string &dir) {
    std::vector<std::string> names;
    DIR *d = ::opendir(dir.c_str());
    REQUIRE(d != nullptr);
    while (const dirent *e = ::readdir(d)) {
        const std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
}

// Two models whose files differ in size: the golden MLP, and the conv net with
// Adam state and a replay set.
struct TwoModels {
    std::unique_ptr<dann::Model> small = golden_mlp(), large = golden_conv();
    dann::OptimizerState adam;
    std::vector<uint8_t> small_bytes, large_bytes;
    TwoModels() {
        large->replay = golden_conv_replay();
        adam = golden_adam(*large);
        small_bytes = dann::encode_model_file(*small, nullptr);
        large_bytes = dann::encode_model_file(*large, &adam);
    }
    void save_small(const std::string &path, const dann::io::FileOps &ops = dann::io::posix_file_ops()) const {
        dann::save_model_file(path, *small, nullptr, ops);
    }
    void save_large(const std::string &path, const dann::io::FileOps &ops = dann::io::posix_file_ops()) const {
        dann::save_model_file(path, *large, &adam, ops);
    }
};

// What a failed call's message says.
const char *call_words(const Recorder::Call &c, int dir_fd) {
    if (c.op == "open_dir") return "open of the folder";
    if (c.op == "open") return "open of";
    if (c.op == "write") return "write to";
    if (c.op == "fsync") return c.fd == dir_fd ? "fsync of the folder" : "fsync of";
    if (c.op == "close") return "close of";
    if (c.op == "rename") return "rename of";
    return "?";
}

} // namespace

TEST_CASE("A save writes the temporary file, syncs and closes it, renames it over the target, then syncs the folder") {
    TempDir dir;
    TwoModels models;
    Recorder rec;
    rec.max_write = 1000; // several writes
    const std::string path = dir.file("m.dann");
    models.save_large(path, rec.ops());
    CHECK(read_bytes(path) == models.large_bytes);

    std::vector<std::string> ops;
    for (const auto &c : rec.calls)
        if (ops.empty() || ops.back() != c.op || c.op != "write") ops.push_back(c.op);
    CHECK(ops == std::vector<std::string>{"open_dir", "open", "write", "fsync", "close", "rename", "fsync", "close"});
    REQUIRE(rec.calls.size() >= 9);
    const auto &dir_open = rec.calls[0];
    const auto &tmp_open = rec.calls[1];
    CHECK(dir_open.path == dir.path());
    CHECK(tmp_open.path.rfind(path + ".tmp-", 0) == 0); // beside the target, in the same folder
    size_t i = 2, written = 0;
    for (; rec.calls[i].op == "write"; ++i) {
        CHECK(rec.calls[i].fd == tmp_open.fd);
        ++written;
    }
    CHECK(written == (models.large_bytes.size() + 999) / 1000);
    CHECK(rec.calls[i].fd == tmp_open.fd);     // fsync of the temporary file
    CHECK(rec.calls[i + 1].fd == tmp_open.fd); // its close
    CHECK(rec.calls[i + 2].path == tmp_open.path);
    CHECK(rec.calls[i + 2].to == path);
    CHECK(rec.calls[i + 3].fd == dir_open.fd); // fsync of the folder, after the rename
    CHECK(rec.calls[i + 4].fd == dir_open.fd);
    CHECK(folder_entries(dir.path()) == std::vector<std::string>{"m.dann"});
}

TEST_CASE("Every call of a save failing in turn, with ENOSPC and EIO, leaves the old file whole and no temporary file") {
    TempDir dir;
    TwoModels models;
    const std::string path = dir.file("m.dann");
    Recorder probe;
    probe.max_write = 1500; // short writes: the save must go on where each stopped
    models.save_large(path, probe.ops());
    REQUIRE(read_bytes(path) == models.large_bytes);
    const int dir_fd = probe.calls[0].fd;
    const size_t n = probe.calls.size();
    for (int error : {ENOSPC, EIO}) {
        for (size_t k = 0; k < n; ++k) {
            const Recorder::Call &call = probe.calls[k];
            CAPTURE(error);
            CAPTURE(k);
            CAPTURE(call.op);
            write_bytes(path, models.small_bytes); // the old file
            Recorder rec;
            rec.max_write = probe.max_write;
            rec.fail_at = static_cast<int>(k);
            rec.error = error;
            try {
                models.save_large(path, rec.ops());
                // Only the folder's close may fail unnoticed: everything is done by then.
                CHECK(k == n - 1);
                CHECK(read_bytes(path) == models.large_bytes);
            } catch (const dann::Error &e) {
                const std::string msg = e.what();
                CAPTURE(msg);
                CHECK(e.status() == DANN_ERR_IO);
                CHECK(msg.find("cannot save " + path) != std::string::npos);
                CHECK(msg.find(call_words(call, dir_fd)) != std::string::npos);
                CHECK(msg.find(std::strerror(error)) != std::string::npos);
                if (call.op == "fsync" && call.fd == dir_fd) {
                    // After the rename: the new file is in place, whole.
                    CHECK(read_bytes(path) == models.large_bytes);
                    CHECK(msg.find("may not survive a power loss") != std::string::npos);
                } else {
                    CHECK(read_bytes(path) == models.small_bytes);
                    CHECK(msg.find(path + " is unchanged") != std::string::npos);
                }
            }
            CHECK(folder_entries(dir.path()) == std::vector<std::string>{"m.dann"});
        }
    }
}

TEST_CASE("A save survives interrupted and one-byte writes, and gives up on a write that makes no progress") {
    TempDir dir;
    TwoModels models;
    const std::string path = dir.file("m.dann");
    Recorder eintr;
    eintr.fail_at = 2; // the first write
    eintr.error = EINTR;
    models.save_small(path, eintr.ops());
    CHECK(read_bytes(path) == models.small_bytes);

    Recorder tiny;
    tiny.max_write = 1;
    models.save_large(path, tiny.ops());
    CHECK(read_bytes(path) == models.large_bytes);

    Recorder stuck;
    stuck.fail_at = 2;
    stuck.zero_write = true;
    dann_test::expect_error([&] { models.save_small(path, stuck.ops()); }, DANN_ERR_IO,
                            {"no progress", path + " is unchanged"});
    CHECK(read_bytes(path) == models.large_bytes);
    CHECK(folder_entries(dir.path()) == std::vector<std::string>{"m.dann"});
}

TEST_CASE("A save into a folder that does not exist fails before writing anything") {
    TempDir dir;
    TwoModels models;
    Recorder rec;
    dann_test::expect_error([&] { models.save_small(dir.file("absent/m.dann"), rec.ops()); }, DANN_ERR_IO,
                            {"open of the folder", "absent", std::strerror(ENOENT)});
    CHECK(rec.calls.size() == 1);
}

TEST_CASE("A file size limit (EFBIG) met in the middle of a save leaves the old file whole") {
    TempDir dir;
    TwoModels models;
    const std::string path = dir.file("m.dann");
    models.save_small(path);
    REQUIRE(models.large_bytes.size() > 4096);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // The child: past 4096 bytes, write fails with EFBIG instead of raising SIGXFSZ.
        std::signal(SIGXFSZ, SIG_IGN);
        rlimit lim{4096, 4096};
        if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(3);
        int code = 4; // the save succeeded
        try {
            models.save_large(path);
        } catch (const dann::Error &e) {
            const std::string msg = e.what();
            code = e.status() != DANN_ERR_IO                        ? 1
                   : msg.find("write to") == std::string::npos ||
                           msg.find(std::strerror(EFBIG)) == std::string::npos
                       ? 2
                       : 0;
        } catch (...) {
            code = 5;
        }
        ::_exit(code);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(read_bytes(path) == models.small_bytes);
    CHECK(folder_entries(dir.path()) == std::vector<std::string>{"m.dann"});
}

TEST_CASE("A full tmpfs (ENOSPC for real) leaves the old file whole, where the test may mount one") {
    TempDir dir;
    const std::string mnt = dir.file("mnt");
    REQUIRE(::mkdir(mnt.c_str(), 0700) == 0);
    // A model whose file needs more than the 64 KiB of the file system.
    dann_model *big = nullptr;
    REQUIRE(dann_model_create_mlp(64, 300, 3, 1, &big) == DANN_OK);
    dann_model *small = nullptr;
    REQUIRE(dann_model_create_mlp(4, 5, 3, 1, &small) == DANN_OK);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // A mount namespace of its own, private, so that the mount is seen by
        // nobody else and vanishes with the child. Without privileges, a user
        // namespace may still allow it.
        if (::unshare(CLONE_NEWNS) != 0 && ::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) ::_exit(77);
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(77);
        if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) ::_exit(77);
        const std::string path = mnt + "/m.dann";
        int code = 0;
        if (dann_model_save(small, path.c_str()) != DANN_OK) code = 10;
        const std::vector<uint8_t> before = read_bytes(path);
        if (code == 0) {
            const dann_status st = dann_model_save(big, path.c_str());
            const std::string msg = dann_last_error();
            if (st != DANN_ERR_IO) code = 11;
            else if (msg.find(std::strerror(ENOSPC)) == std::string::npos) code = 12;
            else if (read_bytes(path) != before) code = 13;
            else if (folder_entries(mnt) != std::vector<std::string>{"m.dann"}) code = 14;
        }
        ::umount2(mnt.c_str(), MNT_DETACH);
        ::_exit(code);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77)
        MESSAGE("skipped: this process may not mount a tmpfs (needs CAP_SYS_ADMIN or user namespaces)");
    else
        CHECK(WEXITSTATUS(status) == 0);
    CHECK(folder_entries(mnt).empty()); // the mount never reached this namespace
    dann_model_destroy(big);
    dann_model_destroy(small);
}

// A process killed by SIGKILL keeps what it wrote in the page cache, so this
// shows that the rename is atomic, not that the data reaches the disk; that is
// what the fsync calls checked above are for.
TEST_CASE("A writer killed at random moments leaves exactly the old or the new file") {
    TempDir dir;
    TwoModels models;
    const std::string path = dir.file("m.dann");
    models.save_small(path);
    std::mt19937 rng(20240611);
    int small_seen = 0, large_seen = 0, leftovers = 0;
    for (int round = 0; round < 50; ++round) {
        CAPTURE(round);
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            try {
                for (;;) {
                    models.save_small(path);
                    models.save_large(path);
                }
            } catch (...) {
                ::_exit(1);
            }
        }
        ::usleep(std::uniform_int_distribution<useconds_t>(100, 30000)(rng));
        ::kill(pid, SIGKILL);
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        CHECK(WIFSIGNALED(status)); // killed, not failed
        const std::vector<uint8_t> bytes = read_bytes(path);
        const bool is_small = bytes == models.small_bytes, is_large = bytes == models.large_bytes;
        CHECK((is_small || is_large));
        small_seen += is_small;
        large_seen += is_large;
        CHECK_NOTHROW(dann::load_model_file(path));
        // A temporary file of the killed writer has its own name; the next
        // save never reads it. Cleared here so that each round starts clean.
        for (const std::string &name : folder_entries(dir.path())) {
            if (name == "m.dann") continue;
            CHECK(name.rfind("m.dann.tmp-" + std::to_string(pid) + "-", 0) == 0);
            ++leftovers;
            ::unlink(dir.file(name).c_str());
        }
    }
    MESSAGE("after 50 kills: the small file " << small_seen << " times, the large " << large_seen
                                             << ", temporary files left " << leftovers);
}
