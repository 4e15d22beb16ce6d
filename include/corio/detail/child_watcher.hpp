#pragma once
/// \file corio/detail/child_watcher.hpp
/// Watching one child process for its exit without racing with other children: never
/// `waitpid(-1)`, only `waitpid(pid)` of our own pid. asyncio 3.12 does the same with its
/// PidfdChildWatcher (Linux >= 5.3) and ThreadedChildWatcher (elsewhere); so does corio:
///
/// - **pidfd** (Linux, `SYS_pidfd_open`): the kernel gives an fd that becomes readable when
///   the child exits; the loop watches it with add_reader and the loop thread reaps with
///   `waitpid(pid, WNOHANG)`. No thread. Chosen at run time; a kernel without pidfd_open
///   (ENOSYS) or a sandbox refusing it (EPERM) falls back to the thread, once and for all.
/// - **threaded** (every POSIX system): a detached thread blocks in `waitid(pid, WNOWAIT)`,
///   reaps the child, stores the status in a block shared with the loop side, and closes the
///   write end of a pipe whose read end the loop watches. The thread never touches the event
///   loop (no call_soon_threadsafe): whatever happens to the loop, even its destruction, the
///   thread only reaps and closes its own fd, so it never blocks a loop, never dangles and
///   never outlives its child. kqueue's EVFILT_PROC would do without the thread on BSD and
///   macOS, but the backend concept exposes fd readiness only.
///
/// Both look the same to the loop: an fd that becomes readable when the child has exited
/// (`fd()`), then `try_collect()` gives the exit status. So a running child is I/O for the
/// virtual-time clock, as a socket peer is, on either path (no begin/end_external_work).
///
/// Signals and pid reuse: a pid may be reused once its zombie is reaped. send_signal() kills
/// only while the child is not reaped: on the pidfd path reaping happens on the loop thread,
/// the caller's; on the threaded path the thread reaps under a mutex that send_signal() also
/// takes, after waiting with WNOWAIT (the zombie keeps its pid until then).
///
/// Giving up (the watch is destroyed before the exit was collected, e.g. the process object
/// is dropped while the child runs): the child is reaped in the background, so it never stays
/// a zombie: the threaded watcher's thread does it anyway; the pidfd path reaps at once if the
/// child is gone, else hands the pid to a detached thread blocking in `waitpid(pid)`.
///
/// Everything here is in corio::detail::proc. Test hook: `force_threaded_child_watcher` selects the threaded watcher for new watches.

#include <corio/detail/socket.hpp>

#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include <csignal>
#include <fcntl.h>
#include <pthread.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/syscall.h>
#endif

namespace corio::detail::proc {

/// Test switch: new watches use the threaded watcher even where pidfd works.
inline std::atomic<bool> force_threaded_child_watcher{false};
/// Set once pidfd_open was found missing (ENOSYS) or refused: the thread is used from then on.
inline std::atomic<bool> pidfd_unusable{false};

/// asyncio's returncode: the exit code, or minus the signal number for a child killed by a
/// signal.
inline int returncode_from_status(int status) noexcept {
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return status; // not reached: stopped children are not reported without WUNTRACED
}

/// What a child's exit gave.
struct child_exit {
    int returncode = 0;
    /// The child was reaped by someone else (a `waitpid(-1)` elsewhere, or SIGCHLD ignored):
    /// the status is unknown and returncode is 255 (asyncio's behaviour).
    bool unknown = false;
};

/// Shared by the loop side and the threaded watcher's thread. The thread fills it under the
/// mutex, unlocks, then closes the pipe; the loop side reads it under the mutex after EOF.
struct child_reap_block {
    std::mutex mutex;
    bool reaped = false;  ///< guarded by mutex
    int returncode = 255; ///< guarded by mutex
    bool unknown = false; ///< guarded by mutex
};

/// `waitpid(pid)` retried on EINTR; returns the asyncio returncode, or nullopt on ECHILD.
inline std::optional<int> blocking_reap(pid_t pid) noexcept {
    int status = 0;
    for (;;) {
        pid_t r = ::waitpid(pid, &status, 0);
        if (r == pid) return returncode_from_status(status);
        if (r < 0 && errno == EINTR) continue;
        return std::nullopt;
    }
}

/// Starts a detached thread running `fn` with every signal blocked, so that signals meant for
/// the program are never delivered to a watcher thread. Throws `std::system_error` (EAGAIN).
template <class F>
void start_detached_thread(F fn) {
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old); // the new thread inherits this mask
    try {
        std::thread(std::move(fn)).detach();
    } catch (...) {
        ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
        throw;
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

/// One child, watched from its spawn until its exit status is collected (see the file comment).
/// Loop-thread object; not copyable.
class child_watch {
public:
    /// Starts watching `pid` (a child of this process, not yet reaped). Throws
    /// `std::system_error` if neither a pidfd nor a watcher thread can be had.
    explicit child_watch(pid_t pid) : m_pid(pid) {
#if defined(__linux__) && defined(SYS_pidfd_open)
        if (!force_threaded_child_watcher.load(std::memory_order_relaxed) &&
            !pidfd_unusable.load(std::memory_order_relaxed)) {
            // pidfd_open gives a close-on-exec fd. The pid cannot have been reused: it is our
            // unreaped child, and corio never reaps anything but its own children by pid.
            long fd = ::syscall(SYS_pidfd_open, static_cast<long>(pid), 0L);
            if (fd >= 0) {
                m_fd.reset(static_cast<int>(fd));
                return;
            }
            const int e = errno;
            if (e == ESRCH) { // already reaped by someone else (SIGCHLD ignored): the thread
                start_thread(); // finds that out at once and reports it as unknown
                return;
            }
            if (e != ENOSYS && e != EPERM && e != EACCES && e != EINVAL)
                throw std::system_error(e, std::generic_category(), "pidfd_open");
            pidfd_unusable.store(true, std::memory_order_relaxed); // fall back, from now on
        }
#endif
        start_thread();
    }
    child_watch(const child_watch&) = delete;
    child_watch& operator=(const child_watch&) = delete;

    /// Gives up watching: a child not collected yet is reaped in the background.
    ~child_watch() {
        if (m_collected) return;
        if (m_block) return; // the threaded watcher reaps it; closing our end is all we do
        abandon_pidfd();
    }

    /// Readable once the child has exited. Close-on-exec, non-blocking.
    int fd() const noexcept { return m_fd.get(); }
    /// The child's pid.
    pid_t pid() const noexcept { return m_pid; }
    /// True for the threaded watcher.
    bool threaded() const noexcept { return m_block != nullptr; }
    /// True once try_collect() gave the status.
    bool collected() const noexcept { return m_collected; }

    /// After fd() became readable: reaps the child (pidfd) or takes what the thread reaped.
    /// nullopt if the child has not exited yet (a spurious wake-up). Stop watching fd() (the
    /// loop's remove_reader), then close_fd().
    std::optional<child_exit> try_collect() noexcept {
        if (m_collected) return std::nullopt;
        std::optional<child_exit> out;
        if (m_block) {
            char buf[16];
            ssize_t n = ::read(m_fd.get(), buf, sizeof buf);
            if (n != 0) return std::nullopt; // not EOF yet: the thread has not finished
            std::lock_guard lock(m_block->mutex);
            out = child_exit{m_block->returncode, m_block->unknown};
        } else {
            int status = 0;
            pid_t r;
            do r = ::waitpid(m_pid, &status, WNOHANG);
            while (r < 0 && errno == EINTR);
            if (r == 0) return std::nullopt;
            if (r == m_pid) out = child_exit{returncode_from_status(status), false};
            else out = child_exit{255, true}; // ECHILD: someone else reaped it
        }
        m_collected = true;
        return out;
    }

    /// Closes fd() (after the loop stopped watching it).
    void close_fd() noexcept { m_fd.reset(); }

    /// kill(pid, sig) unless the child has been reaped. Returns false (and does nothing) if it
    /// has; throws `std::system_error` if kill fails.
    bool send_signal(int sig) {
        if (m_collected) return false;
        if (m_block) {
            std::lock_guard lock(m_block->mutex);
            if (m_block->reaped) return false;
            return do_kill(sig);
        }
        return do_kill(sig);
    }

private:
    bool do_kill(int sig) const {
        if (::kill(m_pid, sig) == 0) return true;
        if (errno == ESRCH) return false; // reaped by someone else
        throw std::system_error(errno, std::generic_category(), "kill");
    }

    void start_thread() {
        auto [r, w] = open_pipe(); // close-on-exec, blocking
        set_nonblocking(r.get());  // the loop watches the read end
        auto block = std::make_shared<child_reap_block>();
        const pid_t pid = m_pid;
        const int wfd = w.get();
        // std::thread throws std::system_error (EAGAIN) if no thread can be made; the caller
        // then deals with the child.
        start_detached_thread([block, pid, wfd] {
            // Wait without reaping, so that the pid stays ours while send_signal may use it.
            siginfo_t info{};
            while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) < 0 &&
                   errno == EINTR) {
            }
            {
                std::lock_guard lock(block->mutex);
                std::optional<int> rc = blocking_reap(pid);
                block->returncode = rc.value_or(255);
                block->unknown = !rc;
                block->reaped = true;
            }
            ::close(wfd); // EOF on the loop side (a close, never a write: no SIGPIPE)
        });
        w.release(); // the thread owns it now
        m_block = std::move(block);
        m_fd = std::move(r);
    }

    void abandon_pidfd() noexcept {
        m_fd.reset();
        int status = 0;
        pid_t r;
        do r = ::waitpid(m_pid, &status, WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r != 0) return; // reaped now, or not ours any more
        try {
            start_detached_thread([pid = m_pid] { (void)blocking_reap(pid); });
        } catch (...) {
            // No thread to be had: the child stays a zombie until this process exits.
        }
    }

    pid_t m_pid;
    unique_fd m_fd;
    std::shared_ptr<child_reap_block> m_block; ///< threaded watcher only
    bool m_collected = false;
};

} // namespace corio::detail::proc
