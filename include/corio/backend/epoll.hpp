#pragma once
/// \file corio/backend/epoll.hpp
/// The Linux backend: level-triggered epoll plus an eventfd for wake-ups.

#if defined(__linux__)

#include <corio/backend/concept.hpp>

#include <array>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <system_error>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace corio::backend {

/// The `backend` of Linux: level-triggered epoll, and an eventfd as the wake-up channel.
/// One per event loop; see corio/backend/concept.hpp for what each member does.
class epoll_backend {
public:
    /// Creates the epoll instance and the eventfd; throws `std::system_error` if it cannot.
    epoll_backend() {
        m_epfd = ::epoll_create1(EPOLL_CLOEXEC);
        if (m_epfd < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
        m_evfd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m_evfd < 0) {
            int e = errno;
            ::close(m_epfd);
            throw std::system_error(e, std::generic_category(), "eventfd");
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = wakeup_marker;
        if (::epoll_ctl(m_epfd, EPOLL_CTL_ADD, m_evfd, &ev) < 0) {
            int e = errno;
            ::close(m_evfd);
            ::close(m_epfd);
            throw std::system_error(e, std::generic_category(), "epoll_ctl(eventfd)");
        }
    }
    epoll_backend(const epoll_backend&) = delete;
    epoll_backend& operator=(const epoll_backend&) = delete;
    ~epoll_backend() {
        ::close(m_evfd);
        ::close(m_epfd);
    }

    /// Changes what epoll watches for `fd` from `old` to `want` (either may be none).
    void set_interest(int fd, io_events old, io_events want) {
        if (old == want) return;
        epoll_event ev{};
        ev.events = (any(want & io_events::read) ? EPOLLIN : 0u) |
                    (any(want & io_events::write) ? EPOLLOUT : 0u);
        ev.data.fd = fd;
        int op = !any(old) ? EPOLL_CTL_ADD : !any(want) ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
        if (::epoll_ctl(m_epfd, op, fd, &ev) == 0) return;
        int e = errno;
        // The kernel forgets an fd when its last descriptor closes, and a reused fd number may
        // still be known; reconcile instead of failing.
        if (op == EPOLL_CTL_ADD && e == EEXIST) op = EPOLL_CTL_MOD;
        else if (op == EPOLL_CTL_MOD && e == ENOENT) op = EPOLL_CTL_ADD;
        else if (op == EPOLL_CTL_DEL && (e == ENOENT || e == EBADF)) return;
        else throw std::system_error(e, std::generic_category(), "epoll_ctl");
        if (::epoll_ctl(m_epfd, op, fd, &ev) < 0)
            throw std::system_error(errno, std::generic_category(), "epoll_ctl");
    }

    /// Waits up to `timeout_ns` (rounded up to milliseconds; -1: forever), calls `sink(fd,
    /// events)` for each ready fd, and returns how many it reported.
    template <class Sink>
    int poll(std::int64_t timeout_ns, Sink&& sink) {
        int timeout_ms = -1;
        if (timeout_ns >= 0) {
            // Round up, as asyncio does: waking early would only spin.
            std::int64_t ms = (timeout_ns + 999'999) / 1'000'000;
            timeout_ms = ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
        }
        int n = ::epoll_wait(m_epfd, m_events.data(), static_cast<int>(m_events.size()), timeout_ms);
        if (n < 0) {
            if (errno == EINTR) return 0;
            throw std::system_error(errno, std::generic_category(), "epoll_wait");
        }
        int reported = 0;
        for (int i = 0; i < n; ++i) {
            const epoll_event& ev = m_events[static_cast<std::size_t>(i)];
            if (ev.data.fd == wakeup_marker) {
                std::uint64_t count;
                [[maybe_unused]] ssize_t r = ::read(m_evfd, &count, sizeof count);
                continue;
            }
            io_events ready = io_events::none;
            if (ev.events & (EPOLLIN | EPOLLPRI)) ready = ready | io_events::read;
            if (ev.events & EPOLLOUT) ready = ready | io_events::write;
            if (ev.events & (EPOLLERR | EPOLLHUP)) ready = io_events::both;
            sink(ev.data.fd, ready);
            ++reported;
        }
        return reported;
    }

    /// Wakes a `poll` blocked on another thread; async-signal-safe.
    void notify() noexcept {
        std::uint64_t one = 1;
        [[maybe_unused]] ssize_t r = ::write(m_evfd, &one, sizeof one);
    }
    /// The eventfd that notify() writes to.
    int notify_fd() const noexcept { return m_evfd; }

private:
    static constexpr int wakeup_marker = -1;
    int m_epfd = -1;
    int m_evfd = -1;
    std::array<epoll_event, 256> m_events{};
};

static_assert(backend<epoll_backend>);

} // namespace corio::backend

#endif // __linux__
