#pragma once
/// \file corio/backend/kqueue.hpp
/// The BSD and macOS backend: level-triggered kqueue plus a self-pipe for wake-ups.
///
/// Compiled wherever `<sys/event.h>` exists: FreeBSD, macOS, OpenBSD, NetBSD, DragonFly, and
/// on Linux only with the test emulation's include directory on the path (tests/support/kqueue,
/// see the CORIO_KQUEUE_EMULATION build option), which is how the whole test suite runs with
/// this backend on Linux. corio/backend/backend.hpp decides which backend the loop uses.
///
/// Design, and what kqueue offers that is deliberately not used:
/// - Readiness: one EVFILT_READ and one EVFILT_WRITE knote per fd, level-triggered (no
///   EV_CLEAR, no EV_ONESHOT), as the epoll backend. kqueue registers (ident, filter) pairs
///   separately, so `set_interest` sends one change per filter, all in ONE kevent() call with
///   EV_RECEIPT (a per-change result, and no pending event drained); where a BSD lacks
///   EV_RECEIPT it falls back to one kevent() call per change.
/// - The filters still wanted are re-added (EV_ADD on an existing knote only updates it), not
///   only the new ones: closing an fd silently deletes its knotes, so when the loop's record
///   outlives a close and the number is reused, re-adding restores what the loop believes is
///   registered, as the epoll backend's MOD-then-ADD reconciliation does. EV_DELETE of a
///   knote that is gone (ENOENT) or of a closed fd (EBADF) is not an error.
/// - Regular files and directories are refused with EPERM, as epoll refuses them: kqueue
///   would accept them, but readiness-based I/O on a file is always "ready" and would make
///   the same program behave differently per platform.
/// - Wake-up: a non-blocking pipe whose read end is an EVFILT_READ knote. Not EVFILT_USER:
///   `notify()` must be async-signal-safe (signal handlers write 8 bytes to `notify_fd()`,
///   see corio/detail/signals.hpp) and kevent() is not on the async-signal-safe list, while
///   write() is. A full pipe means a wake-up is already pending, so EAGAIN is ignored.
/// - No EVFILT_SIGNAL: signals go through the process-wide handler and that pipe, the same
///   on every backend. No EVFILT_TIMER: timers are the loop's own heap, and the wait's
///   timeout is kevent's (nanosecond resolution; clamped to 24 hours, the limit several BSDs
///   document, after which the loop simply waits again). No EVFILT_PROC: nothing needs it.
/// - Errors: EV_ERROR, and EV_EOF on EVFILT_WRITE (the peer cannot receive any more: a
///   reset, a refused connect, a pipe whose reader is gone) are reported as read and write,
///   like epoll's EPOLLERR/EPOLLHUP. EV_EOF on EVFILT_READ alone means the peer shut down
///   its writing (a half-close, or a pipe's last writer gone): reported as read only, like
///   epoll's EPOLLIN|EPOLLRDHUP, unless `fflags` carries a socket error. Reporting a
///   half-close as writable too would wake a blocked writer on every iteration while the
///   half-closed peer still reads.
/// - The read and write events of one fd in one kevent() batch are merged into one call of
///   the sink, as the concept asks.
/// - Descriptors: kqueue() and pipe() followed by fcntl(FD_CLOEXEC, O_NONBLOCK), because
///   kqueue1/kqueuex/pipe2 are not available everywhere (macOS has neither). A kqueue is
///   not inherited by fork() anyway; the pipe's ends become close-on-exec a moment after
///   pipe() returns (a fork+exec on another thread in between would inherit them).
///
/// Cancellation does not apply here: nothing in this file suspends a task.
/// (`CORIO_DOXYGEN` only lets the API reference see this class on Linux.)

#if __has_include(<sys/event.h>) || defined(CORIO_DOXYGEN)

#include <corio/backend/concept.hpp>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <initializer_list>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
// <sys/types.h> first: older BSDs' <sys/event.h> does not include it.
#include <sys/event.h>
#include <sys/time.h>
#include <unistd.h>

namespace corio::backend {

/// The `backend` of the BSDs and macOS: level-triggered kqueue, and a non-blocking pipe as
/// the wake-up channel. One per event loop; see corio/backend/concept.hpp for what each
/// member does, and the top of this file for the design.
class kqueue_backend {
public:
    /// Creates the kqueue and the wake-up pipe; throws `std::system_error` if it cannot.
    kqueue_backend() {
        try {
            m_kq = ::kqueue();
            if (m_kq < 0) throw std::system_error(errno, std::generic_category(), "kqueue");
            set_fd_flags(m_kq, false);
            int fds[2];
            if (::pipe(fds) < 0) throw std::system_error(errno, std::generic_category(), "pipe");
            m_wake_read = fds[0];
            m_wake_write = fds[1];
            set_fd_flags(m_wake_read, true);
            set_fd_flags(m_wake_write, true);
            struct kevent change;
            EV_SET(&change, static_cast<std::uintptr_t>(m_wake_read), EVFILT_READ, EV_ADD, 0, 0, 0);
            if (::kevent(m_kq, &change, 1, nullptr, 0, nullptr) < 0)
                throw std::system_error(errno, std::generic_category(), "kevent(wake-up pipe)");
        } catch (...) {
            close_all();
            throw;
        }
    }
    kqueue_backend(const kqueue_backend&) = delete;
    kqueue_backend& operator=(const kqueue_backend&) = delete;
    /// Closes the kqueue and the pipe.
    ~kqueue_backend() { close_all(); }

    /// Changes what kqueue watches for `fd` from `old` to `want` (either may be none). Throws
    /// `std::system_error` if the fd cannot be watched (EBADF, EPERM for a regular file or a
    /// directory, what kevent() says otherwise); then nothing was added.
    void set_interest(int fd, io_events old, io_events want) {
        if (old == want) return;
        if (fd < 0) throw std::system_error(EBADF, std::generic_category(), "kevent");
        if (!any(old)) check_watchable(fd);
        struct kevent changes[2];
        int n = 0;
        for (const io_events dir : {io_events::read, io_events::write}) {
            const short filter = dir == io_events::read ? EVFILT_READ : EVFILT_WRITE;
            unsigned short flags = 0;
            if (any(want & dir)) flags = EV_ADD;         // re-added if kept: see the top
            else if (any(old & dir)) flags = EV_DELETE;
            else continue;
            EV_SET(&changes[n], static_cast<std::uintptr_t>(fd), filter, flags | receipt_flag, 0, 0, 0);
            ++n;
        }
        int results[2] = {0, 0}; // errno of each change, 0 if it worked
        apply(changes, n, results);

        int error = 0;
        for (int i = 0; i < n; ++i) {
            const int e = results[i];
            if (e == 0) continue;
            if ((changes[i].flags & EV_DELETE) && (e == ENOENT || e == EBADF)) continue; // gone
            if (error == 0) error = e;
        }
        if (error == 0) return;
        // Undo the knotes this call added that `old` did not have, so the kernel matches `old`
        // as far as possible, then report. (The loop changes one direction at a time.)
        for (int i = 0; i < n; ++i) {
            if (!(changes[i].flags & EV_ADD) || results[i] != 0) continue;
            const io_events dir = changes[i].filter == EVFILT_READ ? io_events::read : io_events::write;
            if (any(old & dir)) continue;
            struct kevent undo;
            EV_SET(&undo, changes[i].ident, changes[i].filter, EV_DELETE, 0, 0, 0);
            [[maybe_unused]] int r = ::kevent(m_kq, &undo, 1, nullptr, 0, nullptr);
        }
        throw std::system_error(error, std::generic_category(), "kevent");
    }

    /// Waits up to `timeout_ns` (-1: forever), calls `sink(fd, events)` once for each ready fd,
    /// and returns how many it reported. Throws `std::system_error` if kevent() fails (EINTR
    /// just returns 0).
    template <class Sink>
    int poll(std::int64_t timeout_ns, Sink&& sink) {
        struct timespec ts{};
        struct timespec* tsp = nullptr;
        if (timeout_ns >= 0) {
            constexpr std::int64_t max_ns = std::int64_t{24} * 3600 * 1'000'000'000;
            const std::int64_t ns = timeout_ns < max_ns ? timeout_ns : max_ns;
            ts.tv_sec = static_cast<decltype(ts.tv_sec)>(ns / 1'000'000'000);
            ts.tv_nsec = static_cast<decltype(ts.tv_nsec)>(ns % 1'000'000'000);
            tsp = &ts;
        }
        const int n = ::kevent(m_kq, nullptr, 0, m_events.data(), static_cast<int>(m_events.size()), tsp);
        if (n < 0) {
            if (errno == EINTR) return 0;
            throw std::system_error(errno, std::generic_category(), "kevent");
        }
        int reported = 0;
        for (int i = 0; i < n; ++i) {
            struct kevent& ev = m_events[static_cast<std::size_t>(i)];
            if (ev.filter == 0) continue; // merged into an earlier event of the same fd
            if (ev.filter == EVFILT_READ && ev.ident == static_cast<std::uintptr_t>(m_wake_read)) {
                drain_wakeup();
                continue;
            }
            io_events ready = readiness(ev);
            for (int j = i + 1; j < n; ++j) {
                struct kevent& other = m_events[static_cast<std::size_t>(j)];
                if (other.ident != ev.ident || other.filter == 0) continue;
                ready = ready | readiness(other);
                other.filter = 0;
            }
            if (!any(ready)) continue;
            sink(static_cast<int>(ev.ident), ready);
            ++reported;
        }
        return reported;
    }

    /// Wakes a `poll` blocked on another thread; async-signal-safe (one write()).
    void notify() noexcept {
        std::uint64_t one = 1;
        [[maybe_unused]] ssize_t r = ::write(m_wake_write, &one, sizeof one);
    }
    /// The write end of the wake-up pipe, which notify() writes 8 bytes to.
    int notify_fd() const noexcept { return m_wake_write; }

private:
#if defined(EV_RECEIPT)
    static constexpr unsigned short receipt_flag = EV_RECEIPT;
#else
    static constexpr unsigned short receipt_flag = 0;
#endif

    /// Applies `n` changes, storing each one's errno (0: done) in `results`.
    void apply(struct kevent* changes, int n, int* results) {
        if (n == 0) return;
        if constexpr (receipt_flag != 0) {
            // One call; EV_RECEIPT makes every change report back and keeps kevent() from
            // draining pending events into `out`.
            struct kevent out[2];
            int got;
            do got = ::kevent(m_kq, changes, n, out, n, &zero_timeout);
            while (got < 0 && errno == EINTR); // changes are idempotent: EV_ADD again, or ENOENT
            if (got < 0) throw std::system_error(errno, std::generic_category(), "kevent");
            for (int k = 0; k < got; ++k) {
                if (!(out[k].flags & EV_ERROR)) continue;
                for (int i = 0; i < n; ++i)
                    if (out[k].filter == changes[i].filter) results[i] = static_cast<int>(out[k].data);
            }
        } else {
            // Without EV_RECEIPT an error is only reliably told apart by making each change
            // its own call with no room for events: then kevent() returns -1 and errno.
            for (int i = 0; i < n; ++i) {
                int r;
                do r = ::kevent(m_kq, &changes[i], 1, nullptr, 0, &zero_timeout);
                while (r < 0 && errno == EINTR);
                results[i] = r < 0 ? errno : 0;
            }
        }
    }

    /// What one event means for the loop: see the top of the file.
    static io_events readiness(const struct kevent& ev) noexcept {
        if (ev.flags & EV_ERROR) return io_events::both;
        if (ev.filter == EVFILT_READ)
            return (ev.flags & EV_EOF) && ev.fflags != 0 ? io_events::both : io_events::read;
        if (ev.filter == EVFILT_WRITE)
            return (ev.flags & EV_EOF) ? io_events::both : io_events::write;
        return io_events::none;
    }

    /// Refuses what epoll refuses too (regular files, directories) and closed fds.
    static void check_watchable(int fd) {
        struct stat st;
        if (::fstat(fd, &st) < 0) throw std::system_error(errno, std::generic_category(), "kevent");
        if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
            throw std::system_error(EPERM, std::generic_category(), "kevent");
    }

    void drain_wakeup() noexcept {
        char buf[256];
        for (;;) {
            const ssize_t r = ::read(m_wake_read, buf, sizeof buf);
            if (r == static_cast<ssize_t>(sizeof buf)) continue;
            if (r < 0 && errno == EINTR) continue;
            return; // empty (EAGAIN) or a short read: drained
        }
    }

    static void set_fd_flags(int fd, bool nonblocking) {
        if (::fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
            throw std::system_error(errno, std::generic_category(), "fcntl(FD_CLOEXEC)");
        if (!nonblocking) return;
        const int fl = ::fcntl(fd, F_GETFL);
        if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            throw std::system_error(errno, std::generic_category(), "fcntl(O_NONBLOCK)");
    }

    void close_all() noexcept {
        for (int* fd : {&m_wake_write, &m_wake_read, &m_kq}) {
            if (*fd >= 0) ::close(*fd);
            *fd = -1;
        }
    }

    static constexpr struct timespec zero_timeout{};
    int m_kq = -1;
    int m_wake_read = -1;
    int m_wake_write = -1;
    std::array<struct kevent, 256> m_events{};
};

static_assert(backend<kqueue_backend>);

} // namespace corio::backend

#endif // __has_include(<sys/event.h>)
