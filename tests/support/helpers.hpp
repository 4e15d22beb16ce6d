#pragma once
// Test helpers: a counted type that checks lifetimes, a recorder for the loop's reports, and
// the small pieces the networking and subprocess tests share (fd counting, RLIMIT_NOFILE,
// polling a condition on the loop, the errno inside an exception_ptr).

#include <corio/event_loop.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

namespace corio_test {

/// Counts constructions and destructions, to prove nothing is leaked or destroyed twice.
struct counted {
    static inline int constructed = 0;
    static inline int destroyed = 0;
    static int alive() { return constructed - destroyed; }
    static void reset() { constructed = destroyed = 0; }

    int value = 0;
    bool moved_from = false;
    counted() { ++constructed; }
    explicit counted(int v) : value(v) { ++constructed; }
    counted(const counted& o) : value(o.value) { ++constructed; }
    counted(counted&& o) noexcept : value(o.value) {
        o.moved_from = true;
        ++constructed;
    }
    counted& operator=(const counted&) = default;
    counted& operator=(counted&&) = default;
    ~counted() { ++destroyed; }
};

/// Installs itself as the loop's exception handler and keeps every report.
struct report_recorder {
    std::vector<corio::exception_context> reports;

    void attach(corio::event_loop& loop) {
        loop.set_exception_handler(
            [this](corio::event_loop&, const corio::exception_context& c) { reports.push_back(c); });
    }
    std::size_t count(const std::string& message_prefix) const {
        std::size_t n = 0;
        for (const auto& r : reports)
            if (r.message.rfind(message_prefix, 0) == 0) ++n;
        return n;
    }
};

/// Lets every task that is ready run a few times (tasks created now take their first step on
/// the next iteration).
inline corio::task<> settle(int rounds = 5) {
    for (int i = 0; i < rounds; ++i) co_await corio::sleep(std::chrono::seconds(0));
}

/// create_task from a plain function, not a coroutine: a coroutine called inside `co_await`
/// must not be handed a temporary capturing lambda under GCC 12 (GCC PR 100611, see
/// test_compiler_traps.cpp), and this keeps test bodies free of that trap.
template <class F>
auto spawn(F body) {
    return corio::create_task(std::move(body));
}

/// Open file descriptors of the process, to prove a test released what it opened. Portable:
/// probes every number below RLIMIT_NOFILE (capped at 65536) with fcntl.
inline int open_fd_count() {
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    const int top = static_cast<int>(std::min<rlim_t>(rl.rlim_cur, 65536));
    int n = 0;
    for (int fd = 0; fd < top; ++fd)
        if (::fcntl(fd, F_GETFD) != -1) ++n;
    return n;
}

/// Raises the soft RLIMIT_NOFILE to `want` (at most the hard limit) if it is lower; returns
/// the soft limit now in force (the caller skips a test that needs more).
inline rlim_t raise_fd_limit(rlim_t want) {
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want) {
        rlimit raised = rl;
        raised.rlim_cur = std::min(want, rl.rlim_max);
        ::setrlimit(RLIMIT_NOFILE, &raised);
        ::getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

/// The errno of a std::system_error held by `e`: 0 if `e` is null, -1 for another type.
inline int error_code_of(std::exception_ptr e) {
    if (!e) return 0;
    try {
        std::rethrow_exception(e);
    } catch (const std::system_error& se) {
        return se.code().value();
    } catch (...) {
        return -1;
    }
}

/// Polls `pred` on the running loop (1 ms sleeps) until it holds; false if it still does not
/// after `limit` of loop time (a safety net against a hang, never a timing assertion).
template <class Pred>
corio::task<bool> eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    auto& loop = corio::get_running_loop();
    const double deadline = loop.time() + std::chrono::duration<double>(limit).count();
    while (!pred()) {
        if (loop.time() > deadline) co_return false;
        co_await corio::sleep(std::chrono::milliseconds(1));
    }
    co_return true;
}

/// A private temporary directory (for Unix socket paths), removed with whatever is left in it
/// at the end. Throws `std::system_error` if it cannot be made.
struct temp_dir {
    std::string path;
    temp_dir() {
        char tmpl[] = "/tmp/corio-test-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::system_error(errno, std::generic_category(), "mkdtemp");
        path = tmpl;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        if (DIR* d = ::opendir(path.c_str())) {
            while (dirent* e = ::readdir(d))
                if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
                    ::unlink((path + "/" + e->d_name).c_str());
            ::closedir(d);
        }
        ::rmdir(path.c_str());
    }
    /// The path of `name` inside the directory.
    std::string file(const char* name) const { return path + "/" + name; }
};

} // namespace corio_test
