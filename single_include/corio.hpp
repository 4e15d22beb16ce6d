// corio 0.1.0: Python's asyncio for C++20, as a single header.
//
// GENERATED FILE, DO NOT EDIT. It is include/corio/*.hpp inlined, starting from
// include/corio/corio.hpp. Regenerate from the repository's root with:
//     scripts/amalgamate
// (CI runs `scripts/amalgamate --check` to make sure it is up to date).
//
// Use: #include "corio.hpp" and compile with -std=c++20 -pthread. Do not mix it
// with <corio/...> headers in one program.
//
// MIT License
//
// Copyright (c) 2026 the corio authors
//
// Permission is hereby granted, free of charge, to any person obtaining a copy
// of this software and associated documentation files (the "Software"), to deal
// in the Software without restriction, including without limitation the rights
// to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
// copies of the Software, and to permit persons to whom the Software is
// furnished to do so, subject to the following conditions:
//
// The above copyright notice and this permission notice shall be included in all
// copies or substantial portions of the Software.
//
// THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
// IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
// FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
// AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
// LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
// OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
// SOFTWARE.

#pragma once

// ---- begin corio/corio.hpp ----
/// \file corio/corio.hpp
/// Everything corio has: `#include <corio/corio.hpp>`.
///
/// | header                 | asyncio                          |
/// |------------------------|----------------------------------|
/// | corio/event_loop.hpp   | events, base_events (the loop)   |
/// | corio/future.hpp       | futures                          |
/// | corio/task.hpp         | tasks (task, create_task, ...)   |
/// | corio/sleep.hpp        | tasks.sleep                      |
/// | corio/runners.hpp      | runners (run)                    |
/// | corio/exceptions.hpp   | exceptions                       |
/// | corio/gather.hpp       | tasks.gather (+ none, outcome)   |
/// | corio/shield.hpp       | tasks.shield                     |
/// | corio/wait.hpp         | tasks.wait                       |
/// | corio/timeouts.hpp     | tasks.wait_for, timeouts         |
/// | corio/as_completed.hpp | tasks.as_completed               |
/// | corio/task_group.hpp   | taskgroups                       |
/// | corio/async_generator.hpp | async generators              |
/// | corio/pool_executor.hpp | the articles' AsyncPoolExecutor |
/// | corio/queue.hpp        | queues                           |
/// | corio/locks.hpp        | locks (+ barrier)                |
/// | corio/testing.hpp      | test_utils (virtual time)        |
/// | corio/executor.hpp     | to_thread, run_in_executor, concurrent.futures.ThreadPoolExecutor |
/// | corio/address.hpp      | socket addresses ((host, port) tuples) |
/// | corio/resolver.hpp     | getaddrinfo, socket.getservbyname |
/// | corio/transports.hpp   | transports                       |
/// | corio/protocols.hpp    | protocols                        |
/// | corio/net.hpp          | create_connection, create_server, Server (TCP, Unix) |
/// | corio/datagram.hpp     | create_datagram_endpoint (UDP, Unix datagrams) |
/// | corio/streams.hpp      | streams (open_connection, start_server, StreamReader/Writer) |
/// | corio/subprocess.hpp   | subprocess (create_subprocess_exec) |

/// \namespace corio
/// Everything corio has: asyncio's names, in C++. `corio::detail` is the implementation, not API.

// ---- begin corio/address.hpp (included from corio/corio.hpp) ----
/// \file corio/address.hpp
/// `corio::address`: a socket address (IPv4, IPv6 or Unix path), the value asyncio spells as a
/// `(host, port)` tuple or a path, and `corio::port_or_service`, the "port" argument of the
/// connection functions (`8080` or `"http"`).
///
/// ```
/// corio::address a{"127.0.0.1", 8080};      // asyncio: ('127.0.0.1', 8080)
/// corio::address b{"::1", 53};              // asyncio: ('::1', 53, 0, 0)
/// auto u = corio::address::unix_path("/tmp/s");
/// a.host(); a.port(); a.to_string();        // "127.0.0.1", 8080, "127.0.0.1:8080"
/// ```
///
/// An address holds numeric hosts only; names are resolved with `corio::getaddrinfo`
/// (corio/resolver.hpp), off the loop thread.

#include <cerrno>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

namespace corio {

/// A socket address: IPv4 or IPv6 host and port, or a Unix-domain path. A value type
/// (copyable, comparable); the default address is empty (`family() == AF_UNSPEC`).
class address {
public:
    /// The empty address (family AF_UNSPEC).
    address() noexcept { std::memset(&m_storage, 0, sizeof m_storage); }

    /// A numeric IPv4 or IPv6 host and a port: `{"127.0.0.1", 80}`, `{"::1", 80}`,
    /// `{"fe80::1%eth0", 80}`. An empty host or "0.0.0.0" means any IPv4 address.
    /// Throws `std::invalid_argument` if `host` is not a numeric address (use getaddrinfo for
    /// names) or `port` is outside 0..65535.
    address(std::string_view host, int port) : address() {
        if (port < 0 || port > 65535)
            throw std::invalid_argument("corio::address: port out of range: " +
                                        std::to_string(port));
        const std::string h(host.empty() ? std::string_view("0.0.0.0") : host);
        auto* v4 = reinterpret_cast<sockaddr_in*>(&m_storage);
        if (::inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
            v4->sin_family = AF_INET;
            v4->sin_port = htons(static_cast<std::uint16_t>(port));
            m_size = sizeof(sockaddr_in);
            return;
        }
        std::string bare = h;
        std::uint32_t scope = 0;
        if (auto pct = bare.find('%'); pct != std::string::npos) {
            scope = parse_scope(bare.substr(pct + 1));
            bare.resize(pct);
        }
        if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']')
            bare = bare.substr(1, bare.size() - 2);
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&m_storage);
        if (::inet_pton(AF_INET6, bare.c_str(), &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons(static_cast<std::uint16_t>(port));
            v6->sin6_scope_id = scope;
            m_size = sizeof(sockaddr_in6);
            return;
        }
        std::memset(&m_storage, 0, sizeof m_storage);
        throw std::invalid_argument("corio::address: not a numeric IPv4 or IPv6 address: '" + h +
                                    "' (resolve names with corio::getaddrinfo)");
    }

    /// A Unix-domain socket path. Throws `std::invalid_argument` if it does not fit in
    /// `sockaddr_un` (about 107 bytes) or is empty. A path starting with '\0' is a Linux
    /// abstract-namespace name.
    static address unix_path(std::string_view path) {
        address a;
        auto* un = reinterpret_cast<sockaddr_un*>(&a.m_storage);
        if (path.empty() || path.size() >= sizeof un->sun_path)
            throw std::invalid_argument("corio::address: bad Unix socket path length " +
                                        std::to_string(path.size()));
        un->sun_family = AF_UNIX;
        std::memcpy(un->sun_path, path.data(), path.size());
        a.m_size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                          (path[0] == '\0' ? 0 : 1));
        return a;
    }

    /// Copies a `sockaddr` the system returned (accept, getpeername, recvfrom, getaddrinfo).
    /// Throws `std::invalid_argument` if `len` is larger than `sockaddr_storage`.
    static address from_sockaddr(const sockaddr* sa, socklen_t len) {
        address a;
        if (len > static_cast<socklen_t>(sizeof a.m_storage))
            throw std::invalid_argument("corio::address: sockaddr too large");
        if (sa && len > 0) std::memcpy(&a.m_storage, sa, static_cast<std::size_t>(len));
        a.m_size = len;
        return a;
    }

    /// AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC for the empty address.
    int family() const noexcept { return m_size == 0 ? AF_UNSPEC : m_storage.ss_family; }
    /// True unless this is the empty address.
    explicit operator bool() const noexcept { return m_size != 0; }

    /// The numeric host ("127.0.0.1", "::1"), or the path of a Unix address, or "" if empty.
    std::string host() const {
        char buf[INET6_ADDRSTRLEN] = {};
        switch (family()) {
        case AF_INET:
            ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&m_storage)->sin_addr, buf,
                        sizeof buf);
            return buf;
        case AF_INET6:
            ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&m_storage)->sin6_addr,
                        buf, sizeof buf);
            return buf;
        case AF_UNIX: {
            const auto* un = reinterpret_cast<const sockaddr_un*>(&m_storage);
            const std::size_t off = offsetof(sockaddr_un, sun_path);
            if (static_cast<std::size_t>(m_size) <= off) return {}; // unnamed socket
            std::size_t n = static_cast<std::size_t>(m_size) - off;
            if (un->sun_path[0] != '\0') n = ::strnlen(un->sun_path, n);
            return std::string(un->sun_path, n);
        }
        default:
            return {};
        }
    }

    /// The port (host byte order); 0 for Unix and empty addresses.
    int port() const noexcept {
        switch (family()) {
        case AF_INET:
            return ntohs(reinterpret_cast<const sockaddr_in*>(&m_storage)->sin_port);
        case AF_INET6:
            return ntohs(reinterpret_cast<const sockaddr_in6*>(&m_storage)->sin6_port);
        default:
            return 0;
        }
    }

    /// "127.0.0.1:80", "[::1]:80", the path of a Unix address, or "" if empty.
    std::string to_string() const {
        switch (family()) {
        case AF_INET:
            return host() + ':' + std::to_string(port());
        case AF_INET6:
            return '[' + host() + "]:" + std::to_string(port());
        default:
            return host();
        }
    }

    /// The raw address, for system calls.
    const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&m_storage); }
    /// The raw address, for system calls that fill it in (set size() with resize()).
    sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&m_storage); }
    /// The length of the raw address.
    socklen_t size() const noexcept { return m_size; }
    /// The largest raw address this type holds (for accept/recvfrom buffers).
    static constexpr socklen_t capacity() noexcept {
        return static_cast<socklen_t>(sizeof(sockaddr_storage));
    }
    /// Sets the length after a system call filled data(); clamps to capacity().
    void resize(socklen_t len) noexcept { m_size = len > capacity() ? capacity() : len; }

    /// Same family, host and port (IPv6: and scope), or the same Unix path. Compared field by
    /// field, not byte by byte: on the BSDs and macOS the kernel fills in `sin_len`, which an
    /// address built here leaves at 0.
    friend bool operator==(const address& a, const address& b) noexcept {
        if (a.family() != b.family()) return false;
        switch (a.family()) {
        case AF_UNSPEC:
            return true;
        case AF_INET: {
            const auto& x = *reinterpret_cast<const sockaddr_in*>(&a.m_storage);
            const auto& y = *reinterpret_cast<const sockaddr_in*>(&b.m_storage);
            return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
        }
        case AF_INET6: {
            const auto& x = *reinterpret_cast<const sockaddr_in6*>(&a.m_storage);
            const auto& y = *reinterpret_cast<const sockaddr_in6*>(&b.m_storage);
            return x.sin6_port == y.sin6_port && x.sin6_scope_id == y.sin6_scope_id &&
                   std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
        }
        case AF_UNIX: {
            // The path part only (an abstract name's length is significant).
            const std::size_t off = offsetof(sockaddr_un, sun_path);
            const std::size_t na = a.m_size > off ? static_cast<std::size_t>(a.m_size) - off : 0;
            const std::size_t nb = b.m_size > off ? static_cast<std::size_t>(b.m_size) - off : 0;
            const auto* pa = reinterpret_cast<const sockaddr_un*>(&a.m_storage)->sun_path;
            const auto* pb = reinterpret_cast<const sockaddr_un*>(&b.m_storage)->sun_path;
            if (na > 0 && pa[0] != '\0' && nb > 0 && pb[0] != '\0')
                return a.host() == b.host(); // a path: up to its NUL, whatever the length says
            return na == nb && std::memcmp(pa, pb, na) == 0;
        }
        default:
            return a.m_size == b.m_size &&
                   std::memcmp(&a.m_storage, &b.m_storage, static_cast<std::size_t>(a.m_size)) == 0;
        }
    }

private:
    static std::uint32_t parse_scope(const std::string& s) {
        if (s.empty()) return 0;
        std::uint32_t v = 0;
        for (char c : s) {
            if (c < '0' || c > '9') {
                unsigned idx = ::if_nametoindex(s.c_str());
                if (idx == 0)
                    throw std::invalid_argument("corio::address: unknown IPv6 scope '" + s + "'");
                return idx;
            }
            v = v * 10 + static_cast<std::uint32_t>(c - '0');
        }
        return v;
    }

    sockaddr_storage m_storage;
    socklen_t m_size = 0;
};

/// The port argument of the connection functions: a number (`8080`) or a service name
/// (`"http"`, resolved by getaddrinfo). Implicit from both, so `open_connection(host, 80)` and
/// `open_connection(host, "http")` both read naturally.
class port_or_service {
public:
    /// A port number (0..65535; checked when used).
    port_or_service(int port) : m_text(std::to_string(port)), m_port(port) {}
    /// A service name or a port in decimal ("80").
    port_or_service(std::string_view service) : m_text(service) {}
    /// As the string_view form.
    port_or_service(const char* service) : m_text(service ? service : "") {}
    /// As the string_view form.
    port_or_service(std::string service) : m_text(std::move(service)) {}

    /// The text getaddrinfo gets ("80" or "http").
    const std::string& str() const noexcept { return m_text; }
    /// The number if given as one (or as decimal text), else -1.
    int number() const noexcept {
        if (m_port >= 0) return m_port;
        if (m_text.empty() || m_text.size() > 5) return -1;
        int v = 0;
        for (char c : m_text) {
            if (c < '0' || c > '9') return -1;
            v = v * 10 + (c - '0');
        }
        return v;
    }

private:
    std::string m_text;
    int m_port = -1;
};

} // namespace corio
// ---- end corio/address.hpp ----
// ---- begin corio/as_completed.hpp (included from corio/corio.hpp) ----
/// \file corio/as_completed.hpp
/// `corio::as_completed(futures, timeout)`: asyncio.as_completed, as an iterator whose `next()`
/// is awaited.
///
///     auto it = corio::as_completed(tasks, 10s);
///     while (auto f = co_await it.next())   // f: std::optional of a handle that is done
///         use(f->result());                 // result() rethrows the future's error
///
/// - `next()` gives the handles passed in, each once, in the order they complete (those
///   already done at the call first, in input order), then `std::nullopt`. What it gives is
///   done: `result()`, `exception()` and `cancelled()` answer at once (as asyncio 3.13's
///   `async for f in as_completed(...)`, which yields the original futures).
/// - A range of `task<T>` (passed with std::move) is started as tasks when `as_completed` is
///   called, and `next()` gives their `task_handle<T>`s. Futures passed twice are taken once.
/// - Timeout: counted from the call (asyncio 3.13; 3.12 starts it at the first step of the
///   `for` loop). Once it has passed, each `next()` gives the futures that had completed before
///   it and not been taken yet, then throws `timeout_error` once for every future still
///   pending at the deadline, then gives `std::nullopt`. Nothing is cancelled: the futures left
///   carry on (asyncio).
/// - Cancelling the task awaiting `next()` throws `cancelled_error` there and cancels nothing;
///   a later `next()` carries on where it left off.
/// - Destroying the iterator (early, too) takes every registration off the futures and the
///   loop; the futures carry on.
///
/// `as_completed` must be called on the loop's thread while the loop runs (it registers a
/// timer and, for coroutines, creates tasks). One `next()` at a time.

// ---- begin corio/future.hpp (included from corio/as_completed.hpp) ----
/// \file corio/future.hpp
/// `corio::future<T>`: asyncio's Future. A copyable handle to a shared result that is pending,
/// then done (a value or an exception) or cancelled. Any number of coroutines may `co_await` it;
/// done callbacks run on the loop (scheduled with call_soon, never inside `set_result`).
///
/// Thread safety: a future (and a task handle) belongs to its loop's thread: copy, destroy, await
/// and complete it there only; its reference count is not atomic, which keeps every await and
/// spawn free of locked instructions. Another thread completes a future by posting a callback
/// that does the work on the loop, without carrying a handle across:
///
///     corio::future<int> f;                 // in a coroutine, which keeps f alive while waiting
///     std::thread worker([&loop, &f] {
///         int r = compute();
///         loop.call_soon_threadsafe([&f, r] { f.set_result(r); }); // runs on the loop thread
///     });
///     int r = co_await f;
///     worker.join();
///
/// The worker must not outlive `f`: if the awaiting task can be cancelled (which cancels `f` and
/// unwinds the coroutine), wait for the worker before `f` goes out of scope.
///

// ---- begin corio/event_loop.hpp (included from corio/future.hpp) ----
/// \file corio/event_loop.hpp
/// `corio::event_loop`: asyncio's event loop. One per thread; it runs callbacks and task steps
/// from a FIFO ready queue, fires timers from a heap, and waits for I/O, wake-ups from other
/// threads and signals through its backend (epoll on Linux).
///
/// ## One iteration (as asyncio's _run_once)
/// 1. Wait for I/O: not at all if work is ready, until the next timer otherwise (forever if
///    there is none). Ready fds queue their reader/writer callbacks.
/// 2. Queue callbacks posted from other threads, and handlers of signals that arrived.
/// 3. Queue the callbacks of timers whose deadline passed, earliest first.
/// 4. Run exactly the callbacks queued so far, in order; what they schedule runs next iteration.
///
/// ## Thread safety
/// Every member must be called on the thread running the loop, except `call_soon_threadsafe`
/// (and `handle::cancel` of the handle it returns), which any thread may call at any time.
///
/// ## Exceptions
/// An exception escaping a callback goes to the exception handler and the loop carries on.
/// System errors of the backend (`std::system_error`) escape `run_forever`.

// ---- begin corio/backend/backend.hpp (included from corio/event_loop.hpp) ----
/// \file corio/backend/backend.hpp
/// The one place where the default backend is chosen.
///
/// - Linux: epoll (corio/backend/epoll.hpp).
/// - macOS, FreeBSD, OpenBSD, NetBSD, DragonFly: kqueue (corio/backend/kqueue.hpp).
/// - Defining `CORIO_BACKEND_KQUEUE` selects kqueue wherever `<sys/event.h>` exists; on Linux
///   that is only with the test emulation's include directory (tests/support/kqueue) on the
///   path, which is how corio's test suite runs with the kqueue backend on Linux (build option
///   CORIO_KQUEUE_EMULATION). Define it for the whole program or not at all: the event loop's
///   layout depends on it.
///
/// Both backends are included wherever they compile (each header guards itself), so either
/// can also be named directly, and each is checked against the `backend` concept.

// ---- begin corio/backend/concept.hpp (included from corio/backend/backend.hpp) ----
/// \file corio/backend/concept.hpp
/// The one small interface between the event loop and the operating system.
///
/// A backend is readiness-based: the loop tells it which of read/write it wants per fd, and
/// `poll` reports which fds are ready. It also owns the loop's wake-up channel: `notify()` makes
/// a blocked `poll` return; it is thread-safe AND async-signal-safe (signal handlers call it by
/// writing 8 bytes to `notify_fd()`), so a backend's wake-up must be an eventfd or a pipe.
///
/// A completion-based backend (io_uring) fits under the same concept by implementing readiness
/// with poll requests (IORING_OP_POLL_ADD); completion-style operations would be an additional
/// optional interface that streams can detect with a concept, without changing the loop.

#include <concepts>

/// What the event loop asks of the operating system: the `backend` concept and its
/// implementations (epoll on Linux).
namespace corio::backend {

/// Which readiness the loop wants or the backend saw.
enum class io_events : std::uint8_t { none = 0, read = 1, write = 2, both = 3 };

///@{
/// Set operations on io_events; `any(e)` is true unless `e` is none.
constexpr io_events operator|(io_events a, io_events b) noexcept {
    return static_cast<io_events>(static_cast<std::uint8_t>(a) | static_cast<std::uint8_t>(b));
}
constexpr io_events operator&(io_events a, io_events b) noexcept {
    return static_cast<io_events>(static_cast<std::uint8_t>(a) & static_cast<std::uint8_t>(b));
}
constexpr io_events operator~(io_events a) noexcept {
    return static_cast<io_events>(~static_cast<std::uint8_t>(a) & 3u);
}
constexpr bool any(io_events e) noexcept { return e != io_events::none; }
///@}

/// What `poll` reports to: called once per ready fd (never for the wake-up channel).
struct io_sink_archetype {
    /// Receives one ready fd and what it is ready for.
    void operator()(int /*fd*/, io_events /*ready*/) const {}
};

/// The concept every backend satisfies (checked by a static_assert beside each backend).
///
/// - `set_interest(fd, old, want)`: change what the kernel watches for `fd` from `old` to
///   `want` (either may be none). Throws `std::system_error` when the fd cannot be watched.
/// - `poll(timeout_ns, sink)`: wait up to `timeout_ns` (-1 = forever, 0 = just look) and call
///   `sink(fd, events)` for each ready fd; drains the wake-up channel itself. Errors and hang-ups
///   are reported as both read and write, so the callbacks discover them. EINTR returns early.
/// - `notify()`: wake a `poll` blocked in another thread (or a signal handler).
/// - `notify_fd()`: the fd that `notify` writes 8 bytes to.
template <class B>
concept backend = requires(B& b, const B& cb, int fd, io_events ev, std::int64_t timeout_ns) {
    { b.set_interest(fd, ev, ev) } -> std::same_as<void>;
    { b.poll(timeout_ns, io_sink_archetype{}) } -> std::same_as<int>;
    { b.notify() } noexcept;
    { cb.notify_fd() } noexcept -> std::same_as<int>;
};

} // namespace corio::backend
// ---- end corio/backend/concept.hpp ----
// ---- begin corio/backend/epoll.hpp (included from corio/backend/backend.hpp) ----
/// \file corio/backend/epoll.hpp
/// The Linux backend: level-triggered epoll plus an eventfd for wake-ups.

#if defined(__linux__)


#include <array>
#include <climits>

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
// ---- end corio/backend/epoll.hpp ----
// ---- begin corio/backend/kqueue.hpp (included from corio/backend/backend.hpp) ----
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


#include <array>
#include <ctime>
#include <initializer_list>

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
// ---- end corio/backend/kqueue.hpp ----

#if defined(CORIO_BACKEND_KQUEUE) || defined(__APPLE__) || defined(__FreeBSD__) ||              \
    defined(__OpenBSD__) || defined(__NetBSD__) || defined(__DragonFly__)
#if !__has_include(<sys/event.h>)
#error "corio: the kqueue backend needs <sys/event.h> (on Linux: -I tests/support/kqueue, the test emulation)"
#endif
namespace corio::backend {
/// The default backend of this platform.
using default_backend = kqueue_backend;
} // namespace corio::backend
#elif defined(__linux__)
namespace corio::backend {
/// The default backend of this platform.
using default_backend = epoll_backend;
} // namespace corio::backend
#else
#error "corio: no event-loop backend for this platform (epoll on Linux, kqueue on the BSDs and macOS)"
#endif

namespace corio::backend {
static_assert(backend<default_backend>);
} // namespace corio::backend
// ---- end corio/backend/backend.hpp ----
// ---- begin corio/detail/callback.hpp (included from corio/event_loop.hpp) ----
/// \file corio/detail/callback.hpp
/// Type-erased, reference-counted callbacks: what `call_soon`, `call_later`, `add_reader`,
/// signal handlers and done callbacks schedule. One allocation holds the node and the callable.

// ---- begin corio/detail/ready_queue.hpp (included from corio/detail/callback.hpp) ----
/// \file corio/detail/ready_queue.hpp
/// The loop's FIFO of runnable work. Nodes are intrusive: a task or a callback carries its own
/// link and entry point, so scheduling never allocates.


namespace corio::detail {

/// Something the loop can run: a task step or a callback. `run` is a plain function pointer
/// (no vtable) so every kind of node keeps control of its own layout.
struct ready_node {
    ready_node* next_ready = nullptr;
    void (*run)(ready_node*) = nullptr;
};

/// Intrusive singly linked FIFO. A node is in at most one queue at a time; its owner keeps it
/// alive while it is queued.
class ready_queue {
public:
    ready_queue() = default;
    ready_queue(const ready_queue&) = delete;
    ready_queue& operator=(const ready_queue&) = delete;

    bool empty() const noexcept { return m_head == nullptr; }
    std::size_t size() const noexcept { return m_size; }

    void push(ready_node* n) noexcept {
        n->next_ready = nullptr;
        if (m_tail) m_tail->next_ready = n;
        else m_head = n;
        m_tail = n;
        ++m_size;
    }

    /// Precondition: !empty().
    ready_node* pop() noexcept {
        ready_node* n = m_head;
        m_head = n->next_ready;
        if (!m_head) m_tail = nullptr;
        n->next_ready = nullptr;
        --m_size;
        return n;
    }

private:
    ready_node* m_head = nullptr;
    ready_node* m_tail = nullptr;
    std::size_t m_size = 0;
};

} // namespace corio::detail
// ---- end corio/detail/ready_queue.hpp ----
// ---- begin corio/detail/timer_heap.hpp (included from corio/detail/callback.hpp) ----
/// \file corio/detail/timer_heap.hpp
/// A 4-ary min-heap of deadlines with exact removal.
///
/// Entries carry their key inline (deadline, then insertion order), so comparisons never chase a
/// pointer; each node records its slot so that cancelling a timer removes it at once in
/// O(log n) instead of leaving a tombstone. A million pending timers cost 24 bytes each here.

#include <limits>
#include <vector>

namespace corio::detail {

/// A timer the heap can hold: embedded in a sleeping task's frame or in a `call_later` callback.
struct timer_node {
    static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
    /// Called once when the deadline passes (the node has already left the heap).
    void (*fire)(timer_node*) = nullptr;
    std::size_t heap_index = npos;
    std::int64_t when = 0; ///< loop time in nanoseconds

    bool in_heap() const noexcept { return heap_index != npos; }
};

class timer_heap {
public:
    bool empty() const noexcept { return m_heap.empty(); }
    std::size_t size() const noexcept { return m_heap.size(); }

    /// Precondition: !empty().
    std::int64_t top_when() const noexcept { return m_heap.front().when; }

    void push(timer_node* n, std::int64_t when) {
        n->when = when;
        m_heap.push_back(entry{when, m_seq++, n});
        sift_up(m_heap.size() - 1);
    }

    /// Precondition: !empty(). Removes and returns the earliest timer.
    timer_node* pop() noexcept {
        timer_node* n = m_heap.front().node;
        erase_at(0);
        return n;
    }

    /// Removes `n` if it is in the heap.
    void erase(timer_node* n) noexcept {
        if (n->in_heap()) erase_at(n->heap_index);
    }

private:
    static constexpr std::size_t arity = 4;

    struct entry {
        std::int64_t when;
        std::uint64_t seq; // equal deadlines fire in the order they were set
        timer_node* node;
        bool operator<(const entry& o) const noexcept {
            return when < o.when || (when == o.when && seq < o.seq);
        }
    };

    void place(std::size_t i, const entry& e) noexcept {
        m_heap[i] = e;
        e.node->heap_index = i;
    }

    void erase_at(std::size_t i) noexcept {
        m_heap[i].node->heap_index = timer_node::npos;
        entry last = m_heap.back();
        m_heap.pop_back();
        if (i == m_heap.size()) return;
        place(i, last);
        if (i > 0 && last < m_heap[(i - 1) / arity]) sift_up(i);
        else sift_down(i);
    }

    void sift_up(std::size_t i) noexcept {
        entry e = m_heap[i];
        while (i > 0) {
            std::size_t parent = (i - 1) / arity;
            if (!(e < m_heap[parent])) break;
            place(i, m_heap[parent]);
            i = parent;
        }
        place(i, e);
    }

    void sift_down(std::size_t i) noexcept {
        entry e = m_heap[i];
        const std::size_t n = m_heap.size();
        for (;;) {
            std::size_t first = i * arity + 1;
            if (first >= n) break;
            std::size_t last = first + arity < n ? first + arity : n;
            std::size_t best = first;
            for (std::size_t c = first + 1; c < last; ++c)
                if (m_heap[c] < m_heap[best]) best = c;
            if (!(m_heap[best] < e)) break;
            place(i, m_heap[best]);
            i = best;
        }
        place(i, e);
    }

    std::vector<entry> m_heap;
    std::uint64_t m_seq = 0;
};

} // namespace corio::detail
// ---- end corio/detail/timer_heap.hpp ----

#include <atomic>
#include <optional>
#include <type_traits>

namespace corio {
class event_loop;
}

namespace corio::detail {

/// Reference counting is atomic because `call_soon_threadsafe` hands a node (and its handle)
/// across threads; everything else about a node is touched on the loop thread only, except the
/// `cancelled` flag, which a handle may set from any thread.
///
/// References: each `corio::handle`, each place the loop holds it (ready queue, timer heap,
/// fd table, signal table) owns one.
class callback_node : public ready_node, public timer_node {
public:
    callback_node() noexcept {
        ready_node::run = &run_thunk;
        timer_node::fire = &fire_thunk;
    }
    callback_node(const callback_node&) = delete;
    callback_node& operator=(const callback_node&) = delete;
    virtual ~callback_node() = default;

    void add_ref() noexcept { m_refs.fetch_add(1, std::memory_order_relaxed); }
    void release() noexcept {
        if (m_refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
    }

    bool cancelled() const noexcept { return m_cancelled.load(std::memory_order_acquire); }
    void mark_cancelled() noexcept { m_cancelled.store(true, std::memory_order_release); }

    /// Runs the callable (unless cancelled). Persistent nodes (readers, signal handlers) run
    /// again and again; one-shot nodes are released by whoever queued them.
    void invoke_if_live() {
        if (!cancelled()) invoke();
    }
    /// Frees what the callable captured, early (asyncio drops a cancelled handle's callback).
    virtual void drop_callable() noexcept = 0;

    /// True if the timer node belongs to a callback (not, say, a sleeping task's awaiter).
    static bool is_callback_timer(const timer_node* t) noexcept { return t->fire == &fire_thunk; }

    event_loop* loop = nullptr; ///< set for timers, whose cancel must leave the heap
    bool queued = false;        ///< in the ready queue (persistent nodes are queued once at a time)
    /// Readers, writers and signal handlers run many times; every other callback runs once and
    /// its callable is destroyed right after, on the loop thread, whoever holds the last
    /// reference (a handle kept by another thread must not destroy loop-owned captures).
    bool persistent = false;

protected:
    virtual void invoke() = 0;

private:
    static void run_thunk(ready_node* n); // defined in event_loop.hpp
    static void fire_thunk(timer_node* n);

    std::atomic<std::uint32_t> m_refs{1};
    std::atomic<bool> m_cancelled{false};
};

template <class F>
class callback_impl final : public callback_node {
public:
    template <class G>
    explicit callback_impl(G&& g) : m_fn(std::in_place, std::forward<G>(g)) {}
    void drop_callable() noexcept override { m_fn.reset(); }

protected:
    void invoke() override {
        if (m_fn) (*m_fn)();
    }

private:
    std::optional<F> m_fn;
};

/// Allocates a node owning a decayed copy of `fn`; the caller owns the one reference it has.
template <class F>
callback_node* make_callback(F&& fn) {
    static_assert(std::is_invocable_v<std::decay_t<F>&>,
                  "corio: a callback must be callable with no arguments");
    return new callback_impl<std::decay_t<F>>(std::forward<F>(fn));
}

/// Owns one reference to a node; the loop's internal bookkeeping uses it.
class callback_ref {
public:
    callback_ref() = default;
    explicit callback_ref(callback_node* n) noexcept : m_node(n) {} // adopts a reference
    callback_ref(callback_ref&& o) noexcept : m_node(std::exchange(o.m_node, nullptr)) {}
    callback_ref& operator=(callback_ref&& o) noexcept {
        if (this != &o) {
            reset();
            m_node = std::exchange(o.m_node, nullptr);
        }
        return *this;
    }
    ~callback_ref() { reset(); }
    void reset() noexcept {
        if (m_node) std::exchange(m_node, nullptr)->release();
    }
    callback_node* get() const noexcept { return m_node; }
    callback_node* operator->() const noexcept { return m_node; }
    explicit operator bool() const noexcept { return m_node != nullptr; }

private:
    callback_node* m_node = nullptr;
};

} // namespace corio::detail
// ---- end corio/detail/callback.hpp ----
// ---- begin corio/detail/future_core.hpp (included from corio/event_loop.hpp) ----
/// \file corio/detail/future_core.hpp
/// The shared state behind `future<T>` and spawned tasks.
///
/// Lifetime: reference counted, single-threaded (a future belongs to its loop's thread). Each
/// handle (`future<T>`, `task_handle<T>`) owns a reference; a pending task is also owned by its
/// loop. Waiters are intrusive nodes: a suspended coroutine's awaiter lives in its own frame, so
/// awaiting a future allocates nothing.
///
/// States: pending -> done (value or exception) | cancelled. Never back.

// ---- begin corio/detail/loop_ops.hpp (included from corio/detail/future_core.hpp) ----
/// \file corio/detail/loop_ops.hpp
/// The loop's internal services, for corio's own futures, tasks and awaitables. Declared here so
/// the pieces below the loop can name them; defined in event_loop.hpp once the loop is complete.

// ---- begin corio/exceptions.hpp (included from corio/detail/loop_ops.hpp) ----
/// \file corio/exceptions.hpp
/// The error types of corio, the counterparts of asyncio's exceptions.
///
/// | asyncio                    | corio                         | derives from          |
/// |----------------------------|-------------------------------|-----------------------|
/// | `CancelledError`           | `cancelled_error`             | `std::exception` only |
/// | `TimeoutError`             | `timeout_error`               | `std::runtime_error`  |
/// | `InvalidStateError`        | `invalid_state_error`         | `std::logic_error`    |
/// | `IncompleteReadError`      | `incomplete_read_error`       | `std::runtime_error`  |
/// | `LimitOverrunError`        | `limit_overrun_error`         | `std::runtime_error`  |
/// | `QueueEmpty` / `QueueFull` | `queue_empty` / `queue_full`  | `std::runtime_error`  |
/// | `QueueShutDown`            | `queue_shutdown`              | `std::runtime_error`  |
/// | `ExceptionGroup`           | `exception_group`             | `std::runtime_error`  |
///
/// `incomplete_read_error` and `limit_overrun_error` are declared for the streams still to come
/// (see docs/porting.md); the others are thrown today.

#include <exception>

namespace corio {

/// Thrown into a coroutine at the `co_await` where it is suspended when its task is cancelled,
/// and by `result()` of a cancelled future.
///
/// It derives from `std::exception` but deliberately NOT from `std::runtime_error` (asyncio's
/// CancelledError is a BaseException for the same reason): a `catch (std::runtime_error&)` meant
/// for I/O errors must not swallow a cancellation. Catch it only to clean up, then rethrow.
class cancelled_error : public std::exception {
public:
    /// A cancellation without a message.
    cancelled_error() = default;
    /// A cancellation carrying `message` (what `cancel(msg)` passes on).
    explicit cancelled_error(std::string message) : m_message(std::move(message)) {}

    /// The message given to `cancel(msg)`, empty if none.
    const std::string& message() const noexcept { return m_message; }
    /// The message, or "cancelled" if it is empty.
    const char* what() const noexcept override {
        return m_message.empty() ? "cancelled" : m_message.c_str();
    }

private:
    std::string m_message;
};

/// An operation exceeded its deadline (`wait_for`, `with_timeout`, `timeout_at`, and the timeouts of `as_completed`).
class timeout_error : public std::runtime_error {
public:
    /// what() is "timed out".
    timeout_error() : std::runtime_error("timed out") {}
    /// With a message of its own.
    explicit timeout_error(const std::string& what) : std::runtime_error(what) {}
};

/// A future or task was used in a state that does not allow the operation: `result()` of a
/// pending future, `set_result()` on a finished one.
class invalid_state_error : public std::logic_error {
public:
    /// `what` describes the misuse, in asyncio's words where it has some ("Result is not set.").
    explicit invalid_state_error(const std::string& what) : std::logic_error(what) {}
};

/// `readexactly(n)` or `readuntil(sep)` met end of stream first (corio/streams.hpp).
class incomplete_read_error : public std::runtime_error {
public:
    /// `expected` is how many bytes were asked for, or `unknown_size` (readuntil). what() reads
    /// "P bytes read on a total of N expected bytes" (or "... of undefined expected bytes"), as
    /// asyncio's message.
    incomplete_read_error(std::string partial, std::size_t expected)
        : std::runtime_error(std::to_string(partial.size()) + " bytes read on a total of " +
                             (expected == unknown_size ? std::string("undefined")
                                                       : std::to_string(expected)) +
                             " expected bytes"),
          m_partial(std::move(partial)), m_expected(expected) {}

    /// The `expected()` of a read that had no size (asyncio's `expected=None`).
    static constexpr std::size_t unknown_size = static_cast<std::size_t>(-1);

    /// The bytes read before end of stream.
    const std::string& partial() const noexcept { return m_partial; }
    /// How many bytes were asked for; `unknown_size` for readuntil.
    std::size_t expected() const noexcept { return m_expected; }

private:
    std::string m_partial;
    std::size_t m_expected;
};

/// A separator was not found within the reader's `limit` (corio/streams.hpp).
class limit_overrun_error : public std::runtime_error {
public:
    /// `consumed`: see consumed().
    limit_overrun_error(const std::string& what, std::size_t consumed)
        : std::runtime_error(what), m_consumed(consumed) {}
    /// How many bytes are to be consumed (as asyncio's `LimitOverrunError.consumed`).
    std::size_t consumed() const noexcept { return m_consumed; }

private:
    std::size_t m_consumed;
};

/// `get_nowait()` on an empty queue.
class queue_empty : public std::runtime_error {
public:
    queue_empty() : std::runtime_error("queue is empty") {}
};

/// `put_nowait()` on a full queue.
class queue_full : public std::runtime_error {
public:
    queue_full() : std::runtime_error("queue is full") {}
};

/// `put`/`get` on a queue that was `shutdown()`.
class queue_shutdown : public std::runtime_error {
public:
    queue_shutdown() : std::runtime_error("queue is shut down") {}
};

/// Several errors at once (from a `task_group`): every one is kept.
class exception_group : public std::runtime_error {
public:
    /// `what` sums them up; `exceptions` are the errors themselves.
    exception_group(const std::string& what, std::vector<std::exception_ptr> exceptions)
        : std::runtime_error(what), m_exceptions(std::move(exceptions)) {}

    /// Every error of the group.
    const std::vector<std::exception_ptr>& exceptions() const noexcept { return m_exceptions; }

private:
    std::vector<std::exception_ptr> m_exceptions;
};

class event_loop;

/// What the loop's exception handler receives (asyncio's `context` dict, as a struct).
struct exception_context {
    std::string message;          ///< what happened, e.g. "Task exception was never retrieved"
    std::exception_ptr exception; ///< the error, or null for warnings without one
    std::string task_name;        ///< the task concerned, empty if none
};

} // namespace corio
// ---- end corio/exceptions.hpp ----

#include <memory>

namespace corio {
class event_loop;
}

namespace corio::detail {

struct ready_node;
struct timer_node;
class future_core;
class task_core;

struct loop_ops {
    /// Appends to the ready queue (loop thread only).
    static void enqueue(event_loop& loop, ready_node* n) noexcept;
    /// The loop's list of live futures.
    static void link(event_loop& loop, future_core* f) noexcept;
    static void unlink(event_loop& loop, future_core* f) noexcept;
    /// Through the loop's exception handler; to stderr if the loop is gone.
    static void report(event_loop* loop, const exception_context& ctx) noexcept;
    /// Throws `std::runtime_error("Event loop is closed")` if it is (or is null).
    static void check_open(const event_loop* loop);
    /// Loop time in nanoseconds (virtual under the test clock).
    static std::int64_t now_ns(const event_loop& loop) noexcept;
    static void add_timer(event_loop& loop, timer_node* n, std::int64_t when_ns);
    /// Takes `n` out of the heap if it is there (the heap owns no reference to it).
    static void remove_timer(event_loop& loop, timer_node* n) noexcept;
    /// Tasks of the loop that are not done, oldest first.
    static std::vector<task_core*> pending_tasks(const event_loop& loop);
    /// Per-loop objects of corio's own layers (the networking registry, ...), found by the
    /// address of a key object: null if there is none. close() destroys them, newest first,
    /// once it has dropped the fd watches (the loop is closed by then).
    static void* find_attachment(const event_loop& loop, const void* key) noexcept;
    /// Adds one (see find_attachment). Throws `std::runtime_error` if the loop is closed.
    static void add_attachment(event_loop& loop, const void* key, std::shared_ptr<void> value);
};

} // namespace corio::detail
// ---- end corio/detail/loop_ops.hpp ----

#include <new>

namespace corio::detail {

class future_core;
class task_core;

/// A node in a future's list of things to do when it completes.
struct future_waiter {
    future_waiter* prev = nullptr;
    future_waiter* next = nullptr;
    future_core* owner = nullptr; ///< non-null while linked
    /// Called once, on completion, after the node left the list.
    void (*on_done)(future_waiter*) = nullptr;
    /// Called instead of on_done if the future dies pending (only done-callbacks can be there
    /// then: a suspended awaiter keeps its future alive).
    void (*on_discard)(future_waiter*) = nullptr;
};

class future_core {
public:
    enum class status : std::uint8_t { pending, done, cancelled };

    future_core(const future_core&) = delete;
    future_core& operator=(const future_core&) = delete;

    void add_ref() noexcept { ++m_refs; }
    void release() noexcept {
        if (--m_refs == 0) delete this;
    }

    status state() const noexcept { return m_status; }
    bool done() const noexcept { return m_status != status::pending; }
    bool cancelled() const noexcept { return m_status == status::cancelled; }
    bool is_task() const noexcept { return m_is_task; }
    event_loop* loop() const noexcept { return m_loop; }

    /// asyncio's Future.cancel(): a pending future becomes cancelled and its callbacks are
    /// scheduled; returns false if it was already done. Tasks override this.
    virtual bool cancel(std::string msg = {}) {
        if (done()) return false;
        loop_ops::check_open(m_loop);
        finish(status::cancelled, std::make_exception_ptr(cancelled_error(std::move(msg))));
        return true;
    }

    /// Throws invalid_state_error if pending, the cancelled_error if cancelled; else the stored
    /// error (null if it succeeded), which now counts as retrieved.
    std::exception_ptr exception() {
        if (m_status == status::pending) throw invalid_state_error("Exception is not set.");
        if (m_status == status::cancelled) std::rethrow_exception(m_exception);
        m_retrieved = true;
        return m_exception;
    }

    /// For result(): throws what a pending, cancelled or failed future must throw.
    void rethrow_if_not_value() {
        if (m_status == status::pending) throw invalid_state_error("Result is not set.");
        if (m_exception) {
            m_retrieved = true;
            std::rethrow_exception(m_exception);
        }
    }

    void set_exception(std::exception_ptr e) {
        if (!e) throw std::invalid_argument("corio: set_exception needs an exception");
        check_settable();
        finish(status::done, std::move(e));
    }

    void add_waiter(future_waiter* w) noexcept {
        w->owner = this;
        w->next = nullptr;
        w->prev = m_wait_tail;
        if (m_wait_tail) m_wait_tail->next = w;
        else m_wait_head = w;
        m_wait_tail = w;
    }

    void remove_waiter(future_waiter* w) noexcept {
        if (w->owner != this) return;
        (w->prev ? w->prev->next : m_wait_head) = w->next;
        (w->next ? w->next->prev : m_wait_tail) = w->prev;
        w->prev = w->next = nullptr;
        w->owner = nullptr;
    }

    std::uint32_t use_count() const noexcept { return m_refs; }
    /// The task part of a task's state, null for a plain future.
    virtual task_core* as_task() noexcept { return nullptr; }

    /// Called by the loop when it closes: the loop's pointer must not outlive it.
    void detach_loop() noexcept { m_loop = nullptr; }
    /// The loop's list of live futures (so `close()` can detach them and find pending tasks).
    future_core* live_prev = nullptr;
    future_core* live_next = nullptr;

protected:
    future_core(event_loop* loop, bool is_task) noexcept : m_is_task(is_task), m_loop(loop) {
        if (m_loop) loop_ops::link(*m_loop, this);
    }
    virtual ~future_core() {
        while (future_waiter* w = m_wait_head) {
            remove_waiter(w);
            if (w->on_discard) w->on_discard(w);
        }
        report_if_unretrieved({});
        if (m_loop) loop_ops::unlink(*m_loop, this);
    }

    /// Failed, and nobody has looked at the error.
    bool has_unretrieved_error() const noexcept {
        return m_status == status::done && m_exception && !m_retrieved;
    }

    /// asyncio's "... exception was never retrieved", once. A derived destructor calls it with
    /// the task's name (a base destructor cannot reach the derived parts any more).
    void report_if_unretrieved(const std::string& task_name) noexcept {
        if (!has_unretrieved_error()) return;
        m_retrieved = true;
        loop_ops::report(m_loop, {m_is_task ? "Task exception was never retrieved"
                                            : "Future exception was never retrieved",
                                  m_exception, task_name});
    }

    void check_settable() const {
        if (done()) throw invalid_state_error("invalid state: the future is already done");
        loop_ops::check_open(m_loop);
    }

    /// Completes the future and schedules every waiter, in the order they were added.
    void finish(status s, std::exception_ptr e) noexcept {
        m_status = s;
        m_exception = std::move(e);
        while (future_waiter* w = m_wait_head) {
            remove_waiter(w);
            w->on_done(w);
        }
    }

    void mark_retrieved() noexcept { m_retrieved = true; }

    std::uint32_t m_refs = 1;
    status m_status = status::pending;
    bool m_retrieved = false;
    bool m_is_task = false;
    event_loop* m_loop = nullptr;
    std::exception_ptr m_exception;

private:
    future_waiter* m_wait_head = nullptr;
    future_waiter* m_wait_tail = nullptr;
};

/// A future's value slot (constructed only on success).
template <class T>
class future_state : public future_core {
public:
    static_assert(!std::is_reference_v<T>, "corio: future<T&> is not supported; use a pointer");
    explicit future_state(event_loop* loop, bool is_task = false) noexcept
        : future_core(loop, is_task) {}
    ~future_state() override {
        if (m_has_value) m_value.~T();
    }

    template <class... A>
    void set_value(A&&... a) {
        check_settable();
        emplace(std::forward<A>(a)...);
        finish(status::done, nullptr);
    }

    /// Precondition: done without exception.
    T& value() noexcept { return m_value; }
    bool has_value() const noexcept { return m_has_value; }

protected:
    template <class... A>
    void emplace(A&&... a) {
        ::new (static_cast<void*>(std::addressof(m_value))) T(std::forward<A>(a)...);
        m_has_value = true;
    }

private:
    union {
        T m_value;
    };
    bool m_has_value = false;
};

template <>
class future_state<void> : public future_core {
public:
    explicit future_state(event_loop* loop, bool is_task = false) noexcept
        : future_core(loop, is_task) {}
    void set_value() {
        check_settable();
        finish(status::done, nullptr);
    }
    bool has_value() const noexcept { return m_status == status::done && !m_exception; }

protected:
    void emplace() noexcept {}
};

} // namespace corio::detail
// ---- end corio/detail/future_core.hpp ----
// ---- begin corio/detail/signals.hpp (included from corio/event_loop.hpp) ----
/// \file corio/detail/signals.hpp
/// The process-wide part of signal handling. A signal can only have one disposition per
/// process, so the handler is global: it records the signal and writes to the wake-up fd of
/// the loop that registered it (both async-signal-safe); that loop then runs the user's
/// callback as an ordinary callback on its own thread.

#include <csignal>

#include <unistd.h>

namespace corio::detail {

#if defined(NSIG)
inline constexpr int signal_limit = NSIG;
#else
inline constexpr int signal_limit = 65;
#endif

struct signal_slot {
    std::atomic<int> wake_fd{-1};    ///< the owning loop's notify fd, -1 if none
    std::atomic<bool> pending{false};
};

inline signal_slot g_signal_slots[signal_limit];

static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free,
              "signal handlers need lock-free atomics");

extern "C" inline void corio_signal_handler(int sig) {
    if (sig <= 0 || sig >= signal_limit) return;
    const int saved = errno;
    signal_slot& s = g_signal_slots[sig];
    s.pending.store(true, std::memory_order_release);
    int fd = s.wake_fd.load(std::memory_order_acquire);
    if (fd >= 0) {
        std::uint64_t one = 1;
        [[maybe_unused]] ssize_t r = ::write(fd, &one, sizeof one);
    }
    errno = saved;
}

} // namespace corio::detail
// ---- end corio/detail/signals.hpp ----
// ---- begin corio/detail/task_core.hpp (included from corio/event_loop.hpp) ----
/// \file corio/detail/task_core.hpp
/// What makes a coroutine a task: the step the loop runs, the trampoline that replaces
/// symmetric transfer, and the cancellation protocol.
///
/// ## Stepping, and why there is a trampoline
/// The loop runs a task by calling `step()`. Inside a step, awaiting a `task<T>` does not resume
/// the child from `await_suspend` (symmetric transfer); it stores the child in `next` and
/// returns to `step()`, which resumes it. GCC does not turn symmetric transfer into a tail call
/// at -O0/-Og/-O1 or under ASan (GCC PR 94794), so a long run of synchronously completing awaits
/// would grow the stack by a frame each time and overflow; with the trampoline the stack depth
/// stays constant in every build mode, for a store and a load per transfer.
///
/// ## One thread
/// A task is only ever resumed by its loop's thread, from `step()`. Other threads reach the loop
/// through `call_soon_threadsafe`, whose callbacks run later on the loop thread. So a coroutine
/// never resumes on a thread other than the one it suspended on, and a handle is never resumed
/// while its `await_suspend` is still running: the Clang bugs about frame writes racing with a
/// resumer on another thread (llvm #56301) and thread_local values cached across a suspension
/// (llvm #47179) cannot arise from corio's own awaitables.
///
/// ## Cancellation (asyncio's Task.cancel, in C++)
/// - Suspended on a waiter: the waiter propagates the request (a sleep leaves the timer heap, an
///   awaited future is itself cancelled) and the task wakes to find `cancelled_error` thrown at
///   that `co_await`.
/// - Queued or running: `must_cancel` is set; the next step throws `cancelled_error` at the await
///   it resumes (or, if the task never started, finishes it cancelled without running it).


#include <coroutine>
#include <source_location>

namespace corio::detail {

class task_core;

/// The task whose step is running on this thread, or null.
inline thread_local constinit task_core* t_current_task = nullptr;

/// Something a task is suspended on.
struct task_waiter {
    /// Propagates a cancellation request to what is awaited. Returns true if the request was
    /// absorbed: the task will be woken and see the cancellation at its `co_await`.
    bool (*cancel)(task_waiter*, const std::string& msg) = nullptr;
};

/// asyncio names tasks "Task-1", "Task-2", ... per process; loops on other threads count too.
inline std::uint64_t next_task_id() noexcept {
    static std::atomic<std::uint64_t> counter{0};
    return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

class task_core : public ready_node {
public:
    task_core(std::coroutine_handle<> frame, std::string name, std::source_location where)
        : m_frame(frame), m_id(next_task_id()), m_created(where) {
        ready_node::run = &run_step;
        if (!name.empty()) {
            try {
                extras().name = std::move(name);
            } catch (...) {
                m_frame.destroy(); // ~task_core does not run for a throwing constructor
                throw;
            }
        }
    }
    task_core(const task_core&) = delete;
    task_core& operator=(const task_core&) = delete;

    /// The innermost coroutine of a task transfers to another through this slot (trampoline).
    std::coroutine_handle<> next;

    /// Called by an awaiter that parks the task on the loop.
    void suspend_on(std::coroutine_handle<> h, task_waiter* w) noexcept {
        m_resume = h;
        m_waiting = w;
    }
    /// Called by what the task waited for: resume it on a later loop iteration.
    void wake() noexcept {
        m_waiting = nullptr;
        schedule();
    }
    /// Wakes the task so that its current `co_await` throws `cancelled_error(msg)`.
    void wake_cancelled(const std::string& msg) {
        m_deliver_cancel = true;
        if (!msg.empty() || m_extras) extras().cancel_message = msg;
        wake();
    }
    /// Every suspending awaiter calls this first in await_resume.
    void throw_if_cancel_delivered() {
        if (m_deliver_cancel) {
            m_deliver_cancel = false;
            throw cancelled_error(m_extras ? m_extras->cancel_message : std::string());
        }
    }

    /// asyncio's Task.cancel().
    bool request_cancel(std::string msg) {
        if (as_future().done()) return false;
        ++m_num_cancels_requested;
        if (m_waiting && m_waiting->cancel(m_waiting, msg)) return true;
        m_must_cancel = true;
        if (!msg.empty() || m_extras) extras().cancel_message = std::move(msg);
        return true;
    }
    /// asyncio's Task.cancelling() / uncancel().
    int cancelling() const noexcept { return m_num_cancels_requested; }
    int uncancel() noexcept {
        if (m_num_cancels_requested > 0) --m_num_cancels_requested;
        return m_num_cancels_requested;
    }

    std::string get_name() const {
        if (m_extras && !m_extras->name.empty()) return m_extras->name;
        return "Task-" + std::to_string(m_id);
    }
    void set_name(std::string name) { extras().name = std::move(name); }
    const std::source_location& created_at() const noexcept { return m_created; }
    bool started() const noexcept { return m_started; }

    virtual future_core& as_future() noexcept = 0;

    /// Used by the loop's close(): destroys the frame of a task that is still pending.
    void destroy_pending() noexcept {
        m_waiting = nullptr;
        if (m_frame) std::exchange(m_frame, {}).destroy();
        finish_cancelled();
    }

    /// True if a ready-queue node is a task step (rather than a callback).
    static bool is_step(const ready_node* n) noexcept { return n->run == &run_step; }

    bool queued() const noexcept { return m_queued; }
    void unqueue() noexcept { m_queued = false; }

protected:
    ~task_core() {
        if (m_frame) m_frame.destroy();
    }

    void schedule() noexcept {
        if (!m_queued) {
            m_queued = true;
            loop_ops::enqueue(*as_future().loop(), this);
        }
    }

    /// Moves the outcome out of the finished frame and completes the future.
    virtual void complete_from_frame() noexcept = 0;
    /// Completes the future as cancelled (with the pending cancel message).
    virtual void finish_cancelled() noexcept = 0;

    std::string cancel_message() const { return m_extras ? m_extras->cancel_message : ""; }
    /// A cancellation was requested that no await has delivered yet.
    bool cancel_pending() const noexcept { return m_must_cancel; }

    std::coroutine_handle<> m_frame; ///< the outermost coroutine, owned

private:
    struct task_extras {
        std::string name;
        std::string cancel_message;
    };
    task_extras& extras() {
        if (!m_extras) m_extras = std::make_unique<task_extras>();
        return *m_extras;
    }

    static void run_step(ready_node* n) { static_cast<task_core*>(n)->step(); }

    void step() noexcept {
        m_queued = false;
        if (as_future().done()) return;
        if (!m_started) {
            m_started = true;
            if (m_must_cancel) { // cancelled before it ran: its body never runs
                std::exchange(m_frame, {}).destroy();
                finish_cancelled();
                return;
            }
            m_resume = m_frame;
        } else if (m_must_cancel) {
            m_must_cancel = false;
            m_deliver_cancel = true;
        }
        m_waiting = nullptr;
        task_core* const outer = std::exchange(t_current_task, this);
        std::coroutine_handle<> h = std::exchange(m_resume, {});
        while (h) {
            next = {};
            h.resume();
            h = next;
        }
        t_current_task = outer;
        m_deliver_cancel = false;
        if (m_frame.done()) {
            complete_from_frame(); // may release the last reference: `this` is gone after it
        } else if (m_must_cancel && m_waiting && m_waiting->cancel(m_waiting, cancel_message())) {
            m_must_cancel = false; // cancelled itself while running: hand it to what it awaits
        }
    }

    std::coroutine_handle<> m_resume;
    task_waiter* m_waiting = nullptr;
    std::unique_ptr<task_extras> m_extras;
    std::uint64_t m_id;
    std::source_location m_created;
    int m_num_cancels_requested = 0;
    bool m_started = false;
    bool m_queued = false;
    bool m_must_cancel = false;
    bool m_deliver_cancel = false;
};

/// The task being stepped on this thread; throws if a corio awaitable is used outside one.
inline task_core& require_current_task() {
    if (!t_current_task)
        throw std::logic_error(
            "corio: this awaitable must be awaited inside a task (run it with corio::run, "
            "run_until_complete or create_task)");
    return *t_current_task;
}

} // namespace corio::detail
// ---- end corio/detail/task_core.hpp ----

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>
#include <typeinfo>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#endif

namespace corio {

template <class T>
class future;
class executor; // corio/executor.hpp
/// \cond INTERNAL
namespace detail {
struct executor_ops;
struct executor_link;
} // namespace detail
/// \endcond

/// What the loop calls for errors it cannot give to anyone else (an exception escaping a
/// callback, a task exception nobody retrieved, a task destroyed while pending, slow callbacks
/// in debug mode). It must not throw; if it does, the default handler reports that too.
using exception_handler = std::function<void(event_loop&, const exception_context&)>;

/// How to build a loop.
struct loop_options {
    /// Debug mode (also switched on by the environment variable CORIO_DEBUG=1).
    bool debug = false;
    /// Virtual time (the test clock, see corio/testing.hpp): `time()` stands still while any
    /// work is ready and jumps straight to the next timer when every task is idle, so sleeps and
    /// timeouts of hours take microseconds and always happen in the same order.
    bool virtual_time = false;
};

/// A scheduled callback (`call_soon`, `call_soon_threadsafe`); asyncio's `Handle`.
/// Copyable; the callback lives as long as the loop needs it, whatever happens to handles.
class handle {
public:
    /// An empty handle (refers to no callback).
    handle() = default;
    ///@{
    /// Copies refer to the same callback.
    handle(const handle& o) noexcept : m_node(o.m_node) {
        if (m_node) m_node->add_ref();
    }
    handle(handle&& o) noexcept : m_node(std::exchange(o.m_node, nullptr)) {}
    handle& operator=(handle o) noexcept {
        std::swap(m_node, o.m_node);
        return *this;
    }
    ///@}
    /// Releases this reference; the callback itself stays scheduled.
    ~handle() {
        if (m_node) m_node->release();
    }

    /// The callback will not run (if it has not yet). Idempotent. For a timer handle this must be
    /// called on the loop's thread; a `call_soon_threadsafe` handle may be cancelled anywhere.
    void cancel() noexcept;
    /// True once cancel() was called on a handle of this callback.
    bool cancelled() const noexcept { return m_node && m_node->cancelled(); }
    /// True unless the handle is empty.
    explicit operator bool() const noexcept { return m_node != nullptr; }

    /// \cond INTERNAL
protected:
    explicit handle(detail::callback_node* adopt) noexcept : m_node(adopt) {}
    detail::callback_node* m_node = nullptr;
    friend class event_loop;
    /// \endcond
};

/// A callback scheduled for a time (`call_later`, `call_at`); asyncio's `TimerHandle`.
class timer_handle : public handle {
public:
    /// An empty handle.
    timer_handle() = default;
    /// When it is (or was) due, in loop time (seconds).
    double when() const noexcept {
        return m_node ? static_cast<double>(m_node->when) / 1e9 : 0.0;
    }

private:
    using handle::handle;
    friend class event_loop;
};

/// The event loop (asyncio's `AbstractEventLoop`). The file comment of corio/event_loop.hpp
/// says what one iteration does, and which members other threads may call (only
/// `call_soon_threadsafe`).
///
/// Programs rarely build one: `corio::run` makes a loop, runs `main` on it and closes it, and
/// code running on a loop reaches it with `get_running_loop()`.
class event_loop {
public:
    ///@{
    /// A new loop, not running. Debug mode is on if `opts.debug` is set or the environment
    /// variable CORIO_DEBUG is set to anything but "" or "0".
    event_loop() : event_loop(loop_options{}) {}
    explicit event_loop(loop_options opts) : m_virtual(opts.virtual_time), m_debug(opts.debug) {
        if (const char* env = std::getenv("CORIO_DEBUG"); env && env[0] && std::strcmp(env, "0"))
            m_debug = true;
        if (m_virtual) m_virtual_now = real_now_ns();
    }
    ///@}
    event_loop(const event_loop&) = delete;
    event_loop& operator=(const event_loop&) = delete;

    /// Closes the loop if it is not closed (see close()). Destroying a running loop is a
    /// programming error and terminates.
    ~event_loop() {
        if (m_running) std::terminate();
        close();
    }

    // --- Running and stopping -------------------------------------------------------------

    /// Runs until `aw` completes and returns its value (or rethrows its exception). A `task`,
    /// coroutine or awaitable is wrapped in a task first. Throws `std::runtime_error` if the loop
    /// stopped before `aw` finished, if it is closed, or if a loop already runs on this thread.
    template <class Aw>
    auto run_until_complete(Aw&& aw);

    /// Runs until `stop()` is called. The callbacks already queued when `stop()` is called
    /// still run (asyncio's semantics).
    void run_forever() {
        detail::loop_ops::check_open(this);
        if (m_running) throw std::runtime_error("This event loop is already running");
        if (t_running_loop)
            throw std::runtime_error("Cannot run the event loop while another loop is running");
        struct running_guard {
            event_loop& loop;
            explicit running_guard(event_loop& l) : loop(l) {
                loop.m_running = true;
                loop.m_thread_id.store(std::this_thread::get_id(), std::memory_order_relaxed);
                t_running_loop = &loop;
            }
            ~running_guard() {
                loop.m_stopping = false;
                loop.m_running = false;
                loop.m_thread_id.store(std::thread::id(), std::memory_order_relaxed);
                t_running_loop = nullptr;
            }
        } guard(*this);
        for (;;) {
            run_once();
            if (m_stopping) break;
        }
    }

    /// Asks `run_forever` to return after the current iteration.
    void stop() noexcept { m_stopping = true; }
    /// True while `run_forever` (or `run_until_complete`) runs.
    bool is_running() const noexcept { return m_running; }
    /// True once `close()` was called.
    bool is_closed() const noexcept { return m_closed; }

    /// Closes the loop: drops scheduled callbacks and timers, destroys still-pending tasks
    /// (reporting "Task was destroyed but it is pending!" for each), restores signal
    /// dispositions, and detaches remaining futures. Idempotent. Throws `std::runtime_error`
    /// if the loop is running. `corio::run` cancels and finishes leftover tasks before this.
    /// The default executor is shut down without waiting; jobs finishing later are dropped
    /// (see corio/executor.hpp).
    void close();

    /// Monotonic time in seconds (virtual under the test clock).
    double time() const noexcept { return static_cast<double>(now_ns()) / 1e9; }

    /// The loop of the calling thread's running `run_forever`, or null.
    static event_loop* running() noexcept { return t_running_loop; }

    // --- Callbacks ------------------------------------------------------------------------

    /// Schedules `fn()` for the next iteration, after everything already scheduled (FIFO).
    template <class F>
    handle call_soon(F&& fn) {
        check_usable();
        detail::callback_node* n = detail::make_callback(std::forward<F>(fn));
        enqueue_callback(n);
        return handle(n);
    }

    /// Schedules `fn()` after `delay` (a `std::chrono::duration`). Callbacks due at the same
    /// time run in the order they were scheduled.
    template <class Rep, class Period, class F>
    timer_handle call_later(std::chrono::duration<Rep, Period> delay, F&& fn) {
        return call_at_ns(
            now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(delay).count(),
            std::forward<F>(fn));
    }

    /// Schedules `fn()` at loop time `when` (seconds, as `time()` returns).
    template <class F>
    timer_handle call_at(double when, F&& fn) {
        return call_at_ns(static_cast<std::int64_t>(std::llround(when * 1e9)),
                          std::forward<F>(fn));
    }

    /// The one member safe from any thread: schedules `fn()` on the loop's thread and wakes the
    /// loop if it is waiting. Throws `std::runtime_error` once the loop is closed.
    template <class F>
    handle call_soon_threadsafe(F&& fn) {
        detail::callback_node* n = detail::make_callback(std::forward<F>(fn));
        n->add_ref(); // the queue's reference
        {
            std::lock_guard lock(m_ts_mutex);
            if (m_ts_closed) {
                n->release();
                n->release();
                throw std::runtime_error("Event loop is closed");
            }
            m_ts_queue.push_back(n);
        }
        if (!m_ts_pending.exchange(true, std::memory_order_acq_rel)) m_backend.notify();
        return handle(n);
    }

    // --- Tasks and futures ----------------------------------------------------------------

    /// Wraps `aw` (a `task<T>`, a callable returning an awaitable, or any awaitable) in a task
    /// scheduled on this loop, and returns its handle (`task_handle<T>`). See task.hpp.
    template <class Aw>
    auto create_task(Aw&& aw, std::string name = {},
                     std::source_location where = std::source_location::current());

    /// A new pending future of this loop.
    template <class T = void>
    future<T> create_future();

    // --- Executors ------------------------------------------------------------------------
    // Declared here so that they read as asyncio's loop methods; defined (with their full
    // documentation) in corio/executor.hpp, which must be included to use them (corio/corio.hpp
    // and corio/runners.hpp include it).

    /// asyncio's `loop.run_in_executor(executor, func, *args)`: runs `fn(args...)` on `ex` (the
    /// default thread pool if null) and returns a `future<R>` of this loop; see
    /// corio/executor.hpp.
    template <class F, class... A>
    auto run_in_executor(executor* ex, F&& fn, A&&... args);
    /// asyncio's `loop.set_default_executor(executor)`: see corio/executor.hpp.
    void set_default_executor(std::shared_ptr<executor> ex);
    /// asyncio's `loop.shutdown_default_executor()`, to `co_await`: see corio/executor.hpp.
    auto shutdown_default_executor();

    // --- I/O readiness --------------------------------------------------------------------

    /// Calls `fn()` whenever `fd` is readable, until remove_reader(fd); replaces an earlier
    /// reader of `fd`. Throws `std::system_error` if the fd cannot be watched (e.g. a regular
    /// file), `std::invalid_argument` for a negative fd.
    template <class F>
    void add_reader(int fd, F&& fn) {
        watch(fd, &fd_watch::reader, backend::io_events::read, std::forward<F>(fn));
    }
    /// Stops watching `fd` for reading; false if no reader was registered.
    bool remove_reader(int fd) { return unwatch(fd, &fd_watch::reader, backend::io_events::read); }

    /// As add_reader, for writability.
    template <class F>
    void add_writer(int fd, F&& fn) {
        watch(fd, &fd_watch::writer, backend::io_events::write, std::forward<F>(fn));
    }
    /// Stops watching `fd` for writing; false if no writer was registered.
    bool remove_writer(int fd) { return unwatch(fd, &fd_watch::writer, backend::io_events::write); }

    // --- Networking: transports and protocols ---------------------------------------------
    // Declared here so that they read as asyncio's loop methods; each forwards to the free
    // function of the same name, defined (with its full documentation) in corio/net.hpp or
    // corio/datagram.hpp, which must be included to use it (corio/corio.hpp includes both).
    // The returned task runs on the loop that awaits it.

    /// asyncio's `loop.create_connection(factory, host, port, ...)`: see corio/net.hpp.
    template <class Factory, class... Args>
    auto create_connection(Factory&& factory, Args&&... args);
    /// asyncio's `loop.create_server(factory, host, port, ...)`: see corio/net.hpp.
    template <class Factory, class... Args>
    auto create_server(Factory&& factory, Args&&... args);
    /// asyncio's `loop.create_unix_connection(factory, path)`: see corio/net.hpp.
    template <class Factory, class... Args>
    auto create_unix_connection(Factory&& factory, Args&&... args);
    /// asyncio's `loop.create_unix_server(factory, path)`: see corio/net.hpp.
    template <class Factory, class... Args>
    auto create_unix_server(Factory&& factory, Args&&... args);
    /// asyncio's `loop.create_datagram_endpoint(factory, local_addr, remote_addr, ...)`: see
    /// corio/datagram.hpp.
    template <class Factory, class... Args>
    auto create_datagram_endpoint(Factory&& factory, Args&&... args);

    // --- Signals --------------------------------------------------------------------------

    /// Calls `fn()` on this loop (as a callback, never inside the signal handler) each time
    /// `signum` arrives. Replaces an earlier handler of this loop. Throws
    /// `std::invalid_argument` for a signal that cannot be caught, `std::runtime_error` if
    /// another loop handles it.
    template <class F>
    void add_signal_handler(int signum, F&& fn) {
        detail::loop_ops::check_open(this);
        check_signal(signum);
        detail::signal_slot& slot = detail::g_signal_slots[signum];
        const int mine = m_backend.notify_fd();
        int owner = slot.wake_fd.load();
        if (owner != -1 && owner != mine)
            throw std::runtime_error("corio: signal " + std::to_string(signum) +
                                     " is already handled by another event loop");
        detail::callback_ref node(detail::make_callback(std::forward<F>(fn)));
        node->persistent = true;
        if (m_signals.empty()) m_signals.resize(detail::signal_limit);
        signal_entry& e = m_signals[static_cast<std::size_t>(signum)];
        if (!e.handler) {
            struct sigaction sa{};
            sa.sa_handler = &detail::corio_signal_handler;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = SA_RESTART;
            slot.pending.store(false);
            slot.wake_fd.store(mine);
            if (::sigaction(signum, &sa, &e.previous) != 0) {
                int err = errno;
                slot.wake_fd.store(-1);
                throw std::system_error(err, std::generic_category(), "sigaction");
            }
            ++m_signal_count;
        } else {
            e.handler->mark_cancelled();
        }
        e.handler = std::move(node);
    }

    /// Restores the disposition the signal had before; false if this loop did not handle it.
    bool remove_signal_handler(int signum) {
        if (signum <= 0 || signum >= detail::signal_limit || m_signals.empty()) return false;
        signal_entry& e = m_signals[static_cast<std::size_t>(signum)];
        if (!e.handler) return false;
        ::sigaction(signum, &e.previous, nullptr);
        detail::g_signal_slots[signum].wake_fd.store(-1);
        detail::g_signal_slots[signum].pending.store(false);
        e.handler->mark_cancelled();
        e.handler.reset();
        --m_signal_count;
        return true;
    }

    // --- Errors and debugging -------------------------------------------------------------

    /// Replaces the exception handler (an empty function restores the default).
    void set_exception_handler(exception_handler h) { m_handler = std::move(h); }
    /// The handler set with set_exception_handler; empty while the default one is in use.
    const exception_handler& get_exception_handler() const noexcept { return m_handler; }

    /// Gives `ctx` to the exception handler (the default one if none is set).
    void call_exception_handler(const exception_context& ctx) noexcept {
        if (m_handler) {
            try {
                m_handler(*this, ctx);
                return;
            } catch (...) {
                default_exception_handler(
                    {"Unhandled error in exception handler", std::current_exception(), {}});
            }
        }
        default_exception_handler(ctx);
    }

    /// Writes one line to stderr: "corio: MESSAGE [task NAME]: EXCEPTION-TYPE: WHAT".
    void default_exception_handler(const exception_context& ctx) noexcept { print_report(ctx); }

    /// Debug mode: reports slow callbacks and steps (see slow_callback_duration), says where
    /// leaked tasks were created, and makes call_soon, call_later, call_at, create_task and
    /// add_reader/add_writer throw `std::runtime_error` when called from a thread other than the
    /// one running the loop.
    void set_debug(bool on) noexcept { m_debug = on; }
    /// True in debug mode.
    bool get_debug() const noexcept { return m_debug; }

    /// In debug mode, callbacks and task steps taking longer than this are reported.
    std::chrono::nanoseconds slow_callback_duration = std::chrono::milliseconds(100);

    /// True for a loop built with `loop_options::virtual_time`.
    bool uses_virtual_time() const noexcept { return m_virtual; }

    ///@{
    /// For executors (thread-safe): while work submitted to another thread is outstanding, a
    /// virtual-time loop waits for it for real instead of jumping to the next timer.
    void begin_external_work() noexcept { m_external.fetch_add(1, std::memory_order_acq_rel); }
    void end_external_work() noexcept { m_external.fetch_sub(1, std::memory_order_acq_rel); }
    ///@}

    /// The default handler's output: writes `ctx` as one line to stderr (also used for reports
    /// that come after the loop is gone).
    static void print_report(const exception_context& ctx) noexcept;

private:
    friend struct detail::loop_ops;
    friend class handle;

    struct fd_watch {
        detail::callback_ref reader;
        detail::callback_ref writer;
        backend::io_events registered = backend::io_events::none;
    };
    struct signal_entry {
        detail::callback_ref handler;
        struct sigaction previous{};
    };

    static inline thread_local constinit event_loop* t_running_loop = nullptr;

    static std::int64_t real_now_ns() noexcept {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }
    std::int64_t now_ns() const noexcept { return m_virtual ? m_virtual_now : real_now_ns(); }

    template <class F>
    timer_handle call_at_ns(std::int64_t when, F&& fn) {
        check_usable();
        detail::callback_node* n = detail::make_callback(std::forward<F>(fn));
        n->loop = this;
        n->add_ref(); // the heap's reference
        m_timers.push(n, when);
        return timer_handle(n);
    }

    /// The loop is open, and (in debug mode, as asyncio's _check_thread) the caller is on the
    /// thread running it, if it runs.
    void check_usable() const {
        detail::loop_ops::check_open(this);
        if (m_debug) {
            const std::thread::id owner = m_thread_id.load(std::memory_order_relaxed);
            if (owner != std::thread::id() && owner != std::this_thread::get_id())
                throw std::runtime_error("Non-thread-safe operation invoked on an event loop other "
                                         "than the current one");
        }
    }

    /// Queues a callback node; the queue takes a reference, released when it has run.
    void enqueue_callback(detail::callback_node* n) noexcept {
        if (n->queued) return;
        n->queued = true;
        n->add_ref();
        m_ready.push(n);
    }

    template <class F>
    void watch(int fd, detail::callback_ref fd_watch::*slot, backend::io_events ev, F&& fn) {
        check_usable();
        if (fd < 0) throw std::invalid_argument("corio: invalid file descriptor");
        detail::callback_ref node(detail::make_callback(std::forward<F>(fn)));
        node->persistent = true;
        if (static_cast<std::size_t>(fd) >= m_fds.size()) m_fds.resize(static_cast<std::size_t>(fd) + 1);
        fd_watch& w = m_fds[static_cast<std::size_t>(fd)];
        const backend::io_events want = w.registered | ev;
        m_backend.set_interest(fd, w.registered, want); // throws before anything changed
        if (!backend::any(w.registered)) ++m_watched_fds;
        w.registered = want;
        if (w.*slot) (w.*slot)->mark_cancelled();
        w.*slot = std::move(node);
    }

    bool unwatch(int fd, detail::callback_ref fd_watch::*slot, backend::io_events ev) {
        if (fd < 0 || static_cast<std::size_t>(fd) >= m_fds.size()) return false;
        fd_watch& w = m_fds[static_cast<std::size_t>(fd)];
        if (!(w.*slot)) return false;
        (w.*slot)->mark_cancelled();
        (w.*slot).reset();
        const backend::io_events want = w.registered & ~ev;
        const backend::io_events old = w.registered;
        w.registered = want;
        if (!backend::any(want)) --m_watched_fds;
        if (!m_closed) m_backend.set_interest(fd, old, want);
        return true;
    }

    static void check_signal(int signum) {
        if (signum <= 0 || signum >= detail::signal_limit)
            throw std::invalid_argument("corio: invalid signal number " + std::to_string(signum));
        if (signum == SIGKILL || signum == SIGSTOP)
            throw std::invalid_argument("corio: signal " + std::to_string(signum) +
                                        " cannot be caught");
    }

    void on_io(int fd, backend::io_events ready) noexcept {
        if (fd < 0 || static_cast<std::size_t>(fd) >= m_fds.size()) return;
        fd_watch& w = m_fds[static_cast<std::size_t>(fd)];
        if (backend::any(ready & backend::io_events::read) && w.reader) enqueue_callback(w.reader.get());
        if (backend::any(ready & backend::io_events::write) && w.writer) enqueue_callback(w.writer.get());
    }

    void drain_threadsafe() {
        if (!m_ts_pending.load(std::memory_order_acquire)) return;
        m_ts_pending.store(false, std::memory_order_release);
        {
            std::lock_guard lock(m_ts_mutex);
            m_ts_queue.swap(m_ts_taken);
        }
        for (detail::callback_node* n : m_ts_taken) {
            n->queued = true; // its queue reference was taken by call_soon_threadsafe
            m_ready.push(n);
        }
        m_ts_taken.clear();
    }

    void dispatch_signals() noexcept {
        if (m_signal_count == 0) return;
        for (int sig = 1; sig < detail::signal_limit; ++sig) {
            signal_entry& e = m_signals[static_cast<std::size_t>(sig)];
            if (e.handler && detail::g_signal_slots[sig].pending.exchange(false))
                enqueue_callback(e.handler.get());
        }
    }

    void run_once() {
        std::int64_t timeout = -1;
        if (!m_ready.empty() || m_stopping) timeout = 0;
        else if (!m_timers.empty()) timeout = std::max<std::int64_t>(0, m_timers.top_when() - now_ns());

        bool jump = false; // virtual time: jump to the next timer if nothing else happens
        if (m_virtual && timeout > 0) {
            if (m_external.load(std::memory_order_acquire) == 0) {
                timeout = 0;
                jump = true;
            } else {
                timeout = -1; // wait for the other thread's call_soon_threadsafe
            }
        }
        // Without watched fds, only a blocking wait needs the kernel: wake-ups and signals are
        // also flagged in memory, so a busy loop makes no syscall per iteration.
        if (timeout != 0 || m_watched_fds > 0)
            m_backend.poll(timeout, [this](int fd, backend::io_events ev) { on_io(fd, ev); });
        drain_threadsafe();
        dispatch_signals();

        if (jump && m_ready.empty()) m_virtual_now = std::max(m_virtual_now, m_timers.top_when());
        if (!m_timers.empty()) {
            const std::int64_t now = now_ns();
            while (!m_timers.empty() && m_timers.top_when() <= now) {
                detail::timer_node* t = m_timers.pop();
                t->fire(t);
            }
        }

        for (std::size_t n = m_ready.size(); n > 0 && !m_ready.empty(); --n) run_node(m_ready.pop());
    }

    void run_node(detail::ready_node* n) noexcept {
        if (!m_debug) {
            run_guarded(n);
            return;
        }
        const bool is_task = detail::task_core::is_step(n);
        std::string name = is_task ? static_cast<detail::task_core*>(n)->get_name() : "callback";
        const std::int64_t t0 = real_now_ns();
        run_guarded(n); // a task may be gone after its last step: only `name` is used below
        const std::int64_t dt = real_now_ns() - t0;
        if (dt >= slow_callback_duration.count()) {
            char secs[32];
            std::snprintf(secs, sizeof secs, "%.3f", static_cast<double>(dt) / 1e9);
            call_exception_handler({"Executing " + name + " took " + secs + " seconds", nullptr,
                                    is_task ? name : std::string()});
        }
    }

    void run_guarded(detail::ready_node* n) noexcept {
        try {
            n->run(n);
        } catch (...) {
            call_exception_handler({"Exception in callback", std::current_exception(), {}});
        }
    }

    /// Empties the ready queue without running anything (close()).
    void clear_ready() noexcept {
        while (!m_ready.empty()) {
            detail::ready_node* n = m_ready.pop();
            if (detail::task_core::is_step(n)) {
                static_cast<detail::task_core*>(n)->unqueue();
            } else {
                auto* c = static_cast<detail::callback_node*>(n);
                c->queued = false;
                c->drop_callable(); // free captures now, even if a handle keeps the node
                c->release();
            }
        }
    }

    std::vector<detail::task_core*> pending_tasks() const {
        std::vector<detail::task_core*> out;
        for (detail::future_core* f = m_live_head; f; f = f->live_next)
            if (detail::task_core* t = f->as_task(); t && !f->done()) out.push_back(t);
        return out;
    }

    backend::default_backend m_backend;
    detail::ready_queue m_ready;
    detail::timer_heap m_timers;
    std::vector<fd_watch> m_fds;
    std::size_t m_watched_fds = 0;
    std::vector<signal_entry> m_signals;
    int m_signal_count = 0;
    detail::future_core* m_live_head = nullptr;

    std::mutex m_ts_mutex;
    std::vector<detail::callback_node*> m_ts_queue; // guarded by m_ts_mutex
    bool m_ts_closed = false;                        // guarded by m_ts_mutex
    std::vector<detail::callback_node*> m_ts_taken;
    std::atomic<bool> m_ts_pending{false};
    std::atomic<int> m_external{0};
    std::atomic<std::thread::id> m_thread_id{}; ///< the thread in run_forever, if any

    exception_handler m_handler;
    std::int64_t m_virtual_now = 0;
    bool m_virtual = false;
    bool m_debug = false;
    bool m_running = false;
    bool m_stopping = false;
    bool m_closed = false;

    // Executors (corio/executor.hpp; set only once one is used). Workers post through
    // m_executor_link, whose loop pointer close() clears: a job finishing after close() (or
    // after the loop is gone) never touches the loop. m_close_executors is close()'s hook.
    friend struct detail::executor_ops;
    std::shared_ptr<executor> m_default_executor;
    std::shared_ptr<detail::executor_link> m_executor_link;
    void (*m_close_executors)(event_loop&) noexcept = nullptr;
    bool m_executor_shutdown_called = false;

    // Per-loop objects of corio's layers (see loop_ops::add_attachment), destroyed by close().
    struct attachment {
        const void* key;
        std::shared_ptr<void> value;
    };
    std::vector<attachment> m_attachments;
};

// --- get_running_loop ------------------------------------------------------------------------

/// The loop running in this thread; throws `std::runtime_error("no running event loop")`
/// outside one (asyncio's RuntimeError).
inline event_loop& get_running_loop() {
    event_loop* loop = event_loop::running();
    if (!loop) throw std::runtime_error("no running event loop");
    return *loop;
}

// --- Implementation ---------------------------------------------------------------------------

inline void handle::cancel() noexcept {
    if (!m_node) return;
    m_node->mark_cancelled();
    if (m_node->in_heap()) { // a pending timer leaves the heap now, and frees its callable
        detail::loop_ops::remove_timer(*m_node->loop, m_node);
        m_node->drop_callable();
        m_node->release(); // the heap's reference (ours keeps the node alive)
    }
}

inline void event_loop::close() {
    if (m_running) throw std::runtime_error("Cannot close a running event loop");
    if (m_closed) return;
    if (m_close_executors) m_close_executors(*this); // executors: see corio/executor.hpp
    {
        std::lock_guard lock(m_ts_mutex);
        m_ts_closed = true;
        m_ts_queue.swap(m_ts_taken);
    }
    for (detail::callback_node* n : m_ts_taken) {
        n->drop_callable();
        n->release();
    }
    m_ts_taken.clear();
    clear_ready();

    // Destroy the frames of tasks still pending while the loop is intact: their awaiters leave
    // the timer heap, futures' waiter lists and fd table as they go. A destructor may wake or
    // create other tasks, so repeat until none is pending.
    for (auto pending = pending_tasks(); !pending.empty(); pending = pending_tasks()) {
        for (detail::task_core* t : pending) t->as_future().add_ref();
        for (detail::task_core* t : pending) {
            if (t->as_future().done()) continue;
            std::string msg = "Task was destroyed but it is pending!";
            if (m_debug) {
                const auto& at = t->created_at();
                msg += std::string(" (created at ") + at.file_name() + ":" +
                       std::to_string(at.line()) + ")";
            }
            call_exception_handler({std::move(msg), nullptr, t->get_name()});
            t->destroy_pending();
        }
        clear_ready();
        for (detail::task_core* t : pending) t->as_future().release();
    }
    clear_ready();

    while (!m_timers.empty()) {
        detail::timer_node* t = m_timers.pop();
        if (detail::callback_node::is_callback_timer(t)) {
            auto* c = static_cast<detail::callback_node*>(t);
            c->drop_callable();
            c->release();
        }
    }
    for (int sig = 1; sig < detail::signal_limit && m_signal_count > 0; ++sig) remove_signal_handler(sig);
    m_closed = true;
    m_fds.clear();
    m_watched_fds = 0;
    // Newest first; a destructor may look for its siblings, so each leaves the list first.
    while (!m_attachments.empty()) {
        std::shared_ptr<void> last = std::move(m_attachments.back().value);
        m_attachments.pop_back();
        last.reset();
    }
    while (detail::future_core* f = m_live_head) {
        detail::loop_ops::unlink(*this, f);
        f->detach_loop();
    }
}

inline void event_loop::print_report(const exception_context& ctx) noexcept {
    try {
        std::string line = "corio: " + ctx.message;
        if (!ctx.task_name.empty()) line += " [task " + ctx.task_name + "]";
        if (ctx.exception) {
            try {
                std::rethrow_exception(ctx.exception);
            } catch (const std::exception& e) {
                std::string type = typeid(e).name();
#if __has_include(<cxxabi.h>)
                int status = 0;
                if (char* d = abi::__cxa_demangle(type.c_str(), nullptr, nullptr, &status)) {
                    type = d;
                    std::free(d);
                }
#endif
                line += ": " + type + ": " + e.what();
            } catch (...) {
                line += ": unknown exception";
            }
        }
        line += '\n';
        std::fputs(line.c_str(), stderr);
    } catch (...) {
        std::fputs("corio: (failed to format an error report)\n", stderr);
    }
}

} // namespace corio

/// \cond INTERNAL
namespace corio::detail {

inline void loop_ops::enqueue(event_loop& loop, ready_node* n) noexcept { loop.m_ready.push(n); }

inline std::vector<task_core*> loop_ops::pending_tasks(const event_loop& loop) {
    std::vector<task_core*> out = loop.pending_tasks();
    std::reverse(out.begin(), out.end()); // creation order (the live list is newest first)
    return out;
}

inline void loop_ops::link(event_loop& loop, future_core* f) noexcept {
    f->live_prev = nullptr;
    f->live_next = loop.m_live_head;
    if (loop.m_live_head) loop.m_live_head->live_prev = f;
    loop.m_live_head = f;
}

inline void loop_ops::unlink(event_loop& loop, future_core* f) noexcept {
    (f->live_prev ? f->live_prev->live_next : loop.m_live_head) = f->live_next;
    if (f->live_next) f->live_next->live_prev = f->live_prev;
    f->live_prev = f->live_next = nullptr;
}

inline void loop_ops::report(event_loop* loop, const exception_context& ctx) noexcept {
    if (loop) loop->call_exception_handler(ctx);
    else event_loop::print_report(ctx);
}

inline void loop_ops::check_open(const event_loop* loop) {
    if (!loop || loop->m_closed) throw std::runtime_error("Event loop is closed");
}

inline std::int64_t loop_ops::now_ns(const event_loop& loop) noexcept { return loop.now_ns(); }

inline void* loop_ops::find_attachment(const event_loop& loop, const void* key) noexcept {
    for (const auto& a : loop.m_attachments)
        if (a.key == key) return a.value.get();
    return nullptr;
}

inline void loop_ops::add_attachment(event_loop& loop, const void* key, std::shared_ptr<void> value) {
    check_open(&loop);
    loop.m_attachments.push_back({key, std::move(value)});
}

inline void loop_ops::add_timer(event_loop& loop, timer_node* n, std::int64_t when_ns) {
    loop.m_timers.push(n, when_ns);
}

inline void loop_ops::remove_timer(event_loop& loop, timer_node* n) noexcept {
    loop.m_timers.erase(n);
}

inline void callback_node::run_thunk(ready_node* n) {
    auto* c = static_cast<callback_node*>(n);
    c->queued = false;
    callback_ref queue_ref(c); // released when done, even if the callable throws
    if (c->persistent) {
        c->invoke_if_live();
        return;
    }
    struct drop_after {
        callback_node* c;
        ~drop_after() { c->drop_callable(); }
    } drop{c};
    c->invoke_if_live();
}

inline void callback_node::fire_thunk(timer_node* n) {
    auto* c = static_cast<callback_node*>(n);
    // The heap's reference becomes the queue's.
    if (c->cancelled()) {
        c->release();
        return;
    }
    c->queued = true;
    loop_ops::enqueue(*c->loop, c);
}

} // namespace corio::detail
/// \endcond

// The loop's member templates that make futures and tasks are defined with those types. The
// headers form a chain (event_loop -> future -> task), each including the next at its end, so
// that whichever one a user includes first, every definition is complete.
// ---- end corio/event_loop.hpp ----

#include <deque>
#include <list>

namespace corio {

template <class T = void>
class future;

namespace detail {

/// Whether a value can really be copied: std::is_copy_constructible is true for containers of
/// move-only elements (their copy constructors are not constrained), so look inside them.
template <class T>
struct is_copyable : std::is_copy_constructible<T> {};
template <class T, class A>
struct is_copyable<std::vector<T, A>> : is_copyable<T> {};
template <class T, class A>
struct is_copyable<std::deque<T, A>> : is_copyable<T> {};
template <class T, class A>
struct is_copyable<std::list<T, A>> : is_copyable<T> {};
template <class T>
inline constexpr bool is_copyable_v = is_copyable<T>::value;

/// What cancelling the task that awaits a future does to that future.
enum class on_waiter_cancel {
    cancel_future, ///< asyncio's `await fut`: the future is cancelled too
    detach,        ///< asyncio's `await shield(fut)`: stop waiting, leave the future running
};

/// How a coroutine waits for a future: the node in the future's waiter list lives in the
/// coroutine's frame, so waiting allocates nothing.
template <class T, on_waiter_cancel Policy = on_waiter_cancel::cancel_future>
class future_awaiter : public future_waiter, public task_waiter {
public:
    explicit future_awaiter(future<T> f) noexcept : m_future(std::move(f)) {
        future_waiter::on_done = &on_future_done;
        task_waiter::cancel = &on_cancel;
    }
    future_awaiter(const future_awaiter&) = delete;
    future_awaiter& operator=(const future_awaiter&) = delete;
    ~future_awaiter() {
        if (m_future) state().remove_waiter(this);
    }

    bool await_ready() const {
        if (!m_future) throw invalid_state_error("corio: awaiting an empty future handle");
        return state().done();
    }

    void await_suspend(std::coroutine_handle<> h) {
        task_core& t = require_current_task();
        if (&t.as_future() == &state()) throw std::runtime_error("Task cannot await on itself");
        if (t.as_future().loop() != state().loop())
            throw std::runtime_error("corio: the future is attached to a different loop");
        m_task = &t;
        state().add_waiter(this);
        t.suspend_on(h, this);
    }

    T await_resume() {
        if (m_task) m_task->throw_if_cancel_delivered();
        // Sole owner (the awaited handle was an rvalue): the value can be moved out.
        if constexpr (std::is_void_v<T>) {
            m_future.result();
        } else if constexpr (detail::is_copyable_v<T>) {
            if (state().use_count() == 1) return std::move(m_future).result();
            return m_future.result();
        } else {
            return std::move(m_future).result();
        }
    }

private:
    future_state<T>& state() const noexcept { return *m_future.state(); }

    static void on_future_done(future_waiter* w) noexcept {
        static_cast<future_awaiter*>(w)->m_task->wake();
    }
    static bool on_cancel(task_waiter* w, const std::string& msg) {
        auto* self = static_cast<future_awaiter*>(w);
        if constexpr (Policy == on_waiter_cancel::cancel_future) {
            return self->state().cancel(msg); // asyncio: the awaited future is cancelled too
        } else {
            self->state().remove_waiter(self);
            self->m_task->wake_cancelled(msg);
            return true;
        }
    }

    future<T> m_future;
    task_core* m_task = nullptr;
};

/// A done callback: waits in the future's list (without owning the future, so an abandoned
/// pending future is freed), then is queued on the loop owning it.
template <class T, class F>
class done_callback final : public callback_node, public future_waiter {
public:
    template <class G>
    done_callback(future_state<T>* st, G&& g) : m_state(st), m_fn(std::forward<G>(g)) {
        future_waiter::on_done = &on_future_done;
        future_waiter::on_discard = &on_future_discard;
    }
    void drop_callable() noexcept override { m_fn.reset(); }

    /// Queues it now: the future is already done.
    void schedule() {
        m_state->add_ref();
        m_owned = true;
        queued = true; // the node's own reference becomes the queue's
        loop_ops::enqueue(*m_state->loop(), this);
    }

protected:
    void invoke() override {
        if (m_fn) (*m_fn)(future<T>::adopt(std::exchange(m_state, nullptr)));
        m_owned = false;
    }

private:
    ~done_callback() override {
        if (m_owned && m_state) m_state->release();
    }
    static void on_future_done(future_waiter* w) noexcept { static_cast<done_callback*>(w)->schedule(); }
    static void on_future_discard(future_waiter* w) noexcept {
        static_cast<done_callback*>(w)->release();
    }

    future_state<T>* m_state;
    bool m_owned = false;
    std::optional<F> m_fn;
};

/// Waits until a future is done, without taking its result. Cancelling the waiting task does
/// not cancel the future (asyncio.wait's behaviour); the task just stops waiting.
class completion_awaiter : public future_waiter, public task_waiter {
public:
    explicit completion_awaiter(future_core& f) noexcept : m_future(&f) {
        future_waiter::on_done = &on_future_done;
        task_waiter::cancel = &on_cancel;
        m_future->add_ref();
    }
    completion_awaiter(const completion_awaiter&) = delete;
    completion_awaiter& operator=(const completion_awaiter&) = delete;
    ~completion_awaiter() {
        m_future->remove_waiter(this);
        m_future->release();
    }
    bool await_ready() const noexcept { return m_future->done(); }
    void await_suspend(std::coroutine_handle<> h) {
        task_core& t = require_current_task();
        if (&t.as_future() == m_future) throw std::runtime_error("Task cannot await on itself");
        m_task = &t;
        m_future->add_waiter(this);
        t.suspend_on(h, this);
    }
    void await_resume() {
        if (m_task) m_task->throw_if_cancel_delivered();
    }

private:
    static void on_future_done(future_waiter* w) noexcept {
        static_cast<completion_awaiter*>(w)->m_task->wake();
    }
    static bool on_cancel(task_waiter* w, const std::string& msg) {
        auto* self = static_cast<completion_awaiter*>(w);
        self->m_future->remove_waiter(self);
        self->m_task->wake_cancelled(msg);
        return true;
    }

    future_core* m_future;
    task_core* m_task = nullptr;
};

} // namespace detail

/// The parts of a future handle that do not depend on its value type.
class future_base {
public:
    /// True if it holds a future (a default-constructed `future<T>` always does).
    explicit operator bool() const noexcept { return m_core != nullptr; }

    /// True once it has a result or an exception, or was cancelled.
    bool done() const noexcept { return m_core->done(); }
    /// True if it was cancelled.
    bool cancelled() const noexcept { return m_core->cancelled(); }

    /// Cancels a pending future (a task: throws `cancelled_error` into it at its current
    /// `co_await`); false if it was already done. `msg` becomes the cancelled_error's message.
    bool cancel(std::string msg = {}) { return m_core->cancel(std::move(msg)); }

    /// The error it finished with (null if it succeeded). Throws `invalid_state_error` if
    /// pending, `cancelled_error` if cancelled.
    std::exception_ptr exception() const { return m_core->exception(); }

    /// The loop it belongs to. Throws `std::runtime_error` once that loop is closed.
    event_loop& get_loop() const {
        detail::loop_ops::check_open(m_core->loop());
        return *m_core->loop();
    }

    /// `co_await f.wait_done()` suspends until the future (or task) is done, without taking its
    /// result or error. Cancelling the awaiting task does not cancel this future; the awaiter
    /// just stops waiting (as asyncio.wait does).
    detail::completion_awaiter wait_done() const noexcept { return detail::completion_awaiter(*m_core); }

    /// The shared state (for corio's own combinators).
    detail::future_core* core() const noexcept { return m_core; }

    /// True if both are handles of the same future (or both are empty).
    friend bool operator==(const future_base& a, const future_base& b) noexcept {
        return a.m_core == b.m_core;
    }

    /// \cond INTERNAL
protected:
    future_base() = default;
    explicit future_base(detail::future_core* adopt) noexcept : m_core(adopt) {}
    future_base(const future_base& o) noexcept : m_core(o.m_core) {
        if (m_core) m_core->add_ref();
    }
    future_base(future_base&& o) noexcept : m_core(std::exchange(o.m_core, nullptr)) {}
    future_base& operator=(const future_base& o) noexcept {
        future_base tmp(o);
        std::swap(m_core, tmp.m_core);
        return *this;
    }
    future_base& operator=(future_base&& o) noexcept {
        std::swap(m_core, o.m_core);
        return *this;
    }
    ~future_base() {
        if (m_core) m_core->release();
    }

    detail::future_core* m_core = nullptr;
    /// \endcond
};

/// A future (asyncio's `Future`): a copyable handle to a result that is pending, then done (a
/// value or an exception) or cancelled. The file comment of corio/future.hpp also says how
/// another thread completes one.
///
/// `future<T> f;` makes a pending future of the running loop; copies share it. `T` may be
/// `void`; it may not be a reference.
template <class T>
class future : public future_base {
public:
    /// The type of the result (`T`).
    using value_type = T;

    /// A new pending future of the running loop (throws `std::runtime_error` if none runs).
    future() : future(get_running_loop()) {}
    /// A new pending future of `loop`.
    explicit future(event_loop& loop)
        : future_base(new detail::future_state<T>(&loop)) {
        detail::loop_ops::check_open(&loop);
    }

    /// The value. Throws `invalid_state_error` if pending, `cancelled_error` if cancelled, the
    /// stored exception if it failed.
    decltype(auto) result() const& {
        state()->rethrow_if_not_value();
        if constexpr (!std::is_void_v<T>) return static_cast<const T&>(state()->value());
    }
    /// As above, but moves the value out when this is the only handle left.
    decltype(auto) result() && {
        state()->rethrow_if_not_value();
        if constexpr (std::is_void_v<T>) return;
        else if constexpr (detail::is_copyable_v<T>) {
            if (state()->use_count() == 1) return T(std::move(state()->value()));
            return T(state()->value());
        } else {
            return T(std::move(state()->value()));
        }
    }

    /// Completes the future with a value (constructed from `args`) and schedules its callbacks
    /// and waiters. Throws `invalid_state_error` if it is already done.
    template <class... A>
    void set_result(A&&... args) {
        state()->set_value(std::forward<A>(args)...);
    }
    /// Completes the future with an error. Throws `invalid_state_error` if already done.
    void set_exception(std::exception_ptr e) { state()->set_exception(std::move(e)); }

    /// Schedules `fn(const future<T>&)` with call_soon once the future is done (at once if it
    /// already is). The callable is moved into the loop and lives until it has run. Throws
    /// `std::runtime_error` if the future's loop is closed.
    template <class F>
    void add_done_callback(F&& fn) {
        static_assert(std::is_invocable_v<std::decay_t<F>&, const future<T>&>,
                      "corio: a done callback takes (const future<T>&)");
        detail::loop_ops::check_open(state()->loop());
        auto* node = new detail::done_callback<T, std::decay_t<F>>(state(), std::forward<F>(fn));
        if (state()->done()) node->schedule();
        else state()->add_waiter(node);
    }

    /// `co_await fut` suspends until the future is done, then gives `result()`: a copy for an
    /// lvalue, moved out for an rvalue that is the last handle. If the awaiting task is
    /// cancelled, the future is cancelled too (as asyncio does); `co_await f.wait_done()` waits
    /// without that (and `corio::shield` protects the future from it).
    ///@{
    detail::future_awaiter<T> operator co_await() const& noexcept { return detail::future_awaiter<T>(*this); }
    detail::future_awaiter<T> operator co_await() && noexcept {
        return detail::future_awaiter<T>(std::move(*this));
    }
    ///@}

    /// The shared state (for corio's own combinators).
    detail::future_state<T>* state() const noexcept {
        return static_cast<detail::future_state<T>*>(m_core);
    }
    /// Wraps a state, adopting one reference.
    static future adopt(detail::future_state<T>* st) noexcept { return future(st, adopt_tag{}); }

    /// \cond INTERNAL
protected:
    struct adopt_tag {};
    future(detail::future_state<T>* st, adopt_tag) noexcept : future_base(st) {}
    /// \endcond
};

template <class T>
future<T> event_loop::create_future() {
    return future<T>(*this);
}

} // namespace corio

// ---- begin corio/task.hpp (included from corio/future.hpp) ----
/// \file corio/task.hpp
/// Coroutines and tasks: asyncio's `async def` and `Task`.
///
/// - `task<T>` is the coroutine type (`async def f() -> T`). It is lazy: nothing runs until it
///   is awaited or scheduled. `co_await f()` runs it inline, with no trip through the loop.
///   Move-only; awaitable once.
/// - `create_task(aw)` schedules a coroutine (or any awaitable, or a callable returning one) on
///   the running loop and returns a `task_handle<T>`, a `future<T>` with a name.
/// - `current_task()`, `all_tasks()`, `ensure_future()` as in asyncio.
///
/// ## Lifetimes (C++ Core Guidelines CP.51)
/// A coroutine keeps its parameters (copied or moved into its frame) but not what references
/// point to: a lambda's captures live in the lambda object, which is usually a temporary that
/// dies at the end of the full-expression, before the coroutine's first suspension. Pass the
/// callable itself: `create_task(lambda)`, `corio::run(lambda)` and `co_invoke(lambda, args...)`
/// move the callable (and arguments) into the frame of a wrapper coroutine, so its captures live
/// as long as the coroutine does. Take coroutine parameters by value, not by reference.
///
/// ## GCC 12: prvalue arguments written directly inside co_await (GCC PR 100611)
/// See docs in README ("Compiler notes") and tests/test_compiler_traps.cpp for what corio
/// verifies and what users must avoid.



namespace corio {

template <class T = void>
class task;
template <class T = void>
class task_handle;
class task_ref;

namespace detail {

// --- Awaitable traits ------------------------------------------------------------------------

template <class A>
decltype(auto) get_awaiter(A&& a) {
    if constexpr (requires { std::forward<A>(a).operator co_await(); })
        return std::forward<A>(a).operator co_await();
    else if constexpr (requires { operator co_await(std::forward<A>(a)); })
        return operator co_await(std::forward<A>(a));
    else
        return std::forward<A>(a);
}

template <class A>
using awaiter_t = decltype(get_awaiter(std::declval<A>()));

template <class W>
concept awaiter = requires(W& w) {
    { w.await_ready() } -> std::convertible_to<bool>;
    w.await_resume();
};

template <class A>
concept awaitable = awaiter<std::remove_reference_t<awaiter_t<A>>>;

/// What `co_await a` gives.
template <class A>
using await_result_t = decltype(std::declval<std::remove_reference_t<awaiter_t<A>>&>().await_resume());

template <class T>
struct is_task : std::false_type {};
template <class T>
struct is_task<task<T>> : std::true_type {};

template <class T>
inline constexpr bool is_future_v =
    std::is_base_of_v<future_base, std::remove_cvref_t<T>> && requires { typename std::remove_cvref_t<T>::value_type; };

// --- The coroutine's promise -----------------------------------------------------------------

/// Returns control to whoever awaits the coroutine: the parent coroutine (through the
/// trampoline, see detail/task_core.hpp) or, for a task's outermost frame, the task's step.
struct task_final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
        std::coroutine_handle<> c = h.promise().continuation;
        if (!c) return std::noop_coroutine(); // outermost frame: step() sees done()
        if (task_core* t = t_current_task) {
            t->next = c;
            return std::noop_coroutine();
        }
        return c; // not under a task: plain symmetric transfer
    }
    void await_resume() const noexcept {}
};

class task_promise_base {
public:
    std::suspend_always initial_suspend() const noexcept { return {}; }
    task_final_awaiter final_suspend() const noexcept { return {}; }
    void unhandled_exception() noexcept {
        m_exception = std::current_exception();
        try {
            throw;
        } catch (const cancelled_error&) {
            m_exception_is_cancel = true;
        } catch (...) {
        }
    }

    std::coroutine_handle<> continuation;

    std::exception_ptr take_exception() noexcept { return std::move(m_exception); }
    bool exception_is_cancel() const noexcept { return m_exception_is_cancel; }

protected:
    void rethrow_or_check_taken() {
        if (m_taken) throw invalid_state_error("corio: the task's result was already taken");
        m_taken = true;
        if (m_exception) std::rethrow_exception(std::exchange(m_exception, nullptr));
    }

    std::exception_ptr m_exception;
    bool m_exception_is_cancel = false;
    bool m_taken = false;
};

template <class T>
class task_promise : public task_promise_base {
public:
    task_promise() noexcept {}
    ~task_promise() {
        if (m_has_value) m_value.~T();
    }

    task<T> get_return_object() noexcept;

    template <class U = T>
        requires std::constructible_from<T, U&&>
    void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
        ::new (static_cast<void*>(std::addressof(m_value))) T(std::forward<U>(v));
        m_has_value = true;
    }

    /// The value for the awaiting coroutine (moved out), or its exception.
    T result() {
        rethrow_or_check_taken();
        return std::move(m_value);
    }
    /// For a task's outermost frame. Precondition: finished without exception.
    T&& value() noexcept { return std::move(m_value); }

private:
    union {
        T m_value;
    };
    bool m_has_value = false;
};

template <>
class task_promise<void> : public task_promise_base {
public:
    task<void> get_return_object() noexcept;
    void return_void() const noexcept {}
    void result() { rethrow_or_check_taken(); }
};

template <class T>
class task_awaiter {
public:
    explicit task_awaiter(std::coroutine_handle<task_promise<T>> h) noexcept : m_h(h) {}

    bool await_ready() const {
        if (!m_h) throw invalid_state_error("corio: awaiting an empty task (moved from, or "
                                            "handed to create_task)");
        if (!m_h.done() && m_h.promise().continuation)
            throw invalid_state_error("corio: the task is already being awaited");
        return m_h.done();
    }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> parent) noexcept {
        m_h.promise().continuation = parent;
        if (task_core* t = t_current_task) { // trampoline: see detail/task_core.hpp
            t->next = m_h;
            return std::noop_coroutine();
        }
        return m_h;
    }
    T await_resume() { return m_h.promise().result(); }

private:
    std::coroutine_handle<task_promise<T>> m_h;
};

} // namespace detail

// --- task<T> ---------------------------------------------------------------------------------

/// The coroutine type: `corio::task<int> f() { co_return 42; }`.
///
/// Lazy (created suspended); `co_await f()` runs it inline and gives its value or rethrows its
/// exception. Move-only, awaitable once. Destroying an unstarted task destroys its frame
/// without running it. Hand it to `create_task` (with std::move) to run it concurrently.
template <class T>
class [[nodiscard]] task {
public:
    /// The coroutine's promise (what makes `task<T>` a coroutine return type).
    using promise_type = detail::task_promise<T>;
    /// What `co_await` gives (`T`).
    using value_type = T;
    /// The coroutine handle it owns.
    using handle_type = std::coroutine_handle<promise_type>;

    static_assert(!std::is_reference_v<T>, "corio: task<T&> is not supported; return a pointer");

    /// An empty task (as a moved-from one).
    task() noexcept = default;
    ///@{
    /// Moves the coroutine; the source becomes empty.
    task(task&& o) noexcept : m_h(std::exchange(o.m_h, {})) {}
    task& operator=(task&& o) noexcept {
        if (this != &o) {
            reset();
            m_h = std::exchange(o.m_h, {});
        }
        return *this;
    }
    ///@}
    /// Destroys the coroutine frame, run or not.
    ~task() { reset(); }

    /// False for a moved-from task.
    explicit operator bool() const noexcept { return static_cast<bool>(m_h); }

    ///@{
    /// `co_await t` runs the coroutine inline, in the awaiting task, and gives its value (moved
    /// out) or rethrows its exception. Throws `invalid_state_error` for an empty task, one
    /// already being awaited, or one whose result was already taken.
    detail::task_awaiter<T> operator co_await() & noexcept { return detail::task_awaiter<T>(m_h); }
    detail::task_awaiter<T> operator co_await() && noexcept { return detail::task_awaiter<T>(m_h); }
    ///@}

    /// Gives up ownership of the coroutine frame.
    handle_type release() noexcept { return std::exchange(m_h, {}); }

private:
    explicit task(handle_type h) noexcept : m_h(h) {}
    void reset() noexcept {
        if (m_h) std::exchange(m_h, {}).destroy();
    }
    friend promise_type;

    handle_type m_h;
};

namespace detail {

template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
    return task<T>(std::coroutine_handle<task_promise<T>>::from_promise(*this));
}
inline task<void> task_promise<void>::get_return_object() noexcept {
    return task<void>(std::coroutine_handle<task_promise<void>>::from_promise(*this));
}

// --- The state of a scheduled task ------------------------------------------------------------

/// A task's future and its driving state, in one allocation beside the coroutine frame. The
/// frame is destroyed as soon as the coroutine finishes; the state lives while handles do.
template <class T>
class task_state final : public future_state<T>, public task_core {
public:
    task_state(event_loop& loop, std::coroutine_handle<task_promise<T>> h, std::string name,
               std::source_location where)
        : future_state<T>(&loop, true), task_core(h, std::move(name), where) {}

    ~task_state() override {
        if (!this->has_unretrieved_error()) return; // the common case: no name to build
        std::string name;
        try {
            name = get_name();
        } catch (...) { // out of memory: report without the name
        }
        this->report_if_unretrieved(name);
    }

    bool cancel(std::string msg) override { return request_cancel(std::move(msg)); }
    future_core& as_future() noexcept override { return *this; }
    task_core* as_task() noexcept override { return this; }

    /// Schedules the first step (asyncio: create_task calls the coroutine's first step soon).
    void start() noexcept { schedule(); }

private:
    void complete_from_frame() noexcept override {
        auto h = std::coroutine_handle<task_promise<T>>::from_address(m_frame.address());
        task_promise<T>& p = h.promise();
        const bool is_cancel = p.exception_is_cancel();
        std::exception_ptr e = p.take_exception();
        if (!e && cancel_pending()) {
            // Cancelled while running and returned without suspending again: asyncio's __step
            // turns that return into a cancellation (an exception, though, is kept).
            std::exchange(m_frame, {}).destroy();
            finish_cancelled();
            return;
        }
        if constexpr (!std::is_void_v<T>) {
            if (!e) {
                try {
                    this->emplace(p.value());
                } catch (...) {
                    e = std::current_exception();
                }
            }
        }
        std::exchange(m_frame, {}).destroy();
        const auto s = e && is_cancel ? future_core::status::cancelled : future_core::status::done;
        this->finish(s, std::move(e));
        this->release(); // the loop's reference: `this` may be gone now
    }

    void finish_cancelled() noexcept override {
        this->finish(future_core::status::cancelled,
                     std::make_exception_ptr(cancelled_error(cancel_message())));
        this->release();
    }
};

/// Wraps a callable's awaitable: the callable (and its arguments) live in this frame.
template <class F, class... A>
auto co_invoke_impl(F f, A... args)
    -> task<std::remove_cvref_t<await_result_t<std::invoke_result_t<F&, A&...>>>> {
    using R = std::remove_cvref_t<await_result_t<std::invoke_result_t<F&, A&...>>>;
    if constexpr (std::is_void_v<R>) {
        co_await std::invoke(f, args...);
    } else {
        co_return co_await std::invoke(f, args...);
    }
}

/// Wraps any awaitable (a future, a custom awaitable) in a coroutine.
template <class R, class Aw>
task<R> await_in_task(Aw aw) {
    if constexpr (std::is_void_v<R>) {
        co_await std::move(aw);
    } else {
        co_return co_await std::move(aw);
    }
}

template <class>
inline constexpr bool always_false = false;

/// A `task<T>` for anything create_task accepts.
template <class Aw>
auto as_task(Aw&& aw) {
    using A = std::remove_cvref_t<Aw>;
    if constexpr (is_task<A>::value) {
        static_assert(!std::is_lvalue_reference_v<Aw>,
                      "corio: a task is move-only; pass it with std::move(t)");
        return A(std::move(aw));
    } else if constexpr (std::is_invocable_v<A&>) {
        static_assert(awaitable<std::invoke_result_t<A&>>,
                      "corio: the callable must return an awaitable (e.g. a corio::task)");
        return co_invoke_impl(A(std::forward<Aw>(aw)));
    } else if constexpr (awaitable<A>) {
        return await_in_task<std::remove_cvref_t<await_result_t<A>>>(A(std::forward<Aw>(aw)));
    } else {
        static_assert(always_false<Aw>,
                      "corio: expected a task, an awaitable, or a callable returning one");
    }
}

} // namespace detail

// --- Handles -----------------------------------------------------------------------------------

/// A scheduled task, whatever its result type (what `current_task()` and `all_tasks()` give).
/// Copyable; compares equal to every other handle of the same task.
class task_ref : public future_base {
public:
    /// An empty handle (what current_task() gives outside a task).
    task_ref() = default;
    /// A handle to the task `t` (corio's own code makes these; null gives an empty handle).
    explicit task_ref(detail::task_core* t) noexcept : future_base(t ? &t->as_future() : nullptr) {
        if (m_core) m_core->add_ref();
    }

    /// The task's name: the one given to create_task or set_name, else "Task-N" (N counts the
    /// tasks of the process, from 1).
    std::string get_name() const { return task_part().get_name(); }
    /// Renames the task.
    void set_name(std::string name) { task_part().set_name(std::move(name)); }
    /// How many cancellation requests are pending (asyncio's Task.cancelling()).
    int cancelling() const noexcept { return task_part().cancelling(); }
    /// Withdraws one cancellation request and returns how many remain (asyncio's
    /// Task.uncancel()).
    int uncancel() noexcept { return task_part().uncancel(); }

private:
    detail::task_core& task_part() const noexcept { return *m_core->as_task(); }
};

/// What `create_task` returns: a `future<T>` (await it, cancel it, read its result) with a name.
template <class T>
class task_handle : public future<T> {
public:
    /// An empty handle.
    task_handle() noexcept : future<T>(nullptr, typename future<T>::adopt_tag{}) {}

    /// As task_ref::get_name.
    std::string get_name() const { return task_part().get_name(); }
    /// Renames the task.
    void set_name(std::string name) { task_part().set_name(std::move(name)); }
    /// How many cancellation requests are pending (asyncio's Task.cancelling()).
    int cancelling() const noexcept { return task_part().cancelling(); }
    /// Withdraws one cancellation request and returns how many remain (asyncio's
    /// Task.uncancel()).
    int uncancel() noexcept { return task_part().uncancel(); }

    /// The same task, as a handle that does not know its result type.
    operator task_ref() const noexcept { return task_ref(&task_part()); }

    /// Wraps a task's state, adopting one reference.
    static task_handle adopt(detail::task_state<T>* st) noexcept { return task_handle(st); }

private:
    explicit task_handle(detail::task_state<T>* st) noexcept
        : future<T>(st, typename future<T>::adopt_tag{}) {}
    detail::task_core& task_part() const noexcept { return *this->m_core->as_task(); }
};

// --- Loop members that need tasks --------------------------------------------------------------

template <class Aw>
auto event_loop::create_task(Aw&& aw, std::string name, std::source_location where) {
    check_usable();
    auto t = detail::as_task(std::forward<Aw>(aw));
    using T = typename decltype(t)::value_type;
    auto* st = new detail::task_state<T>(*this, t.release(), std::move(name), where);
    st->add_ref(); // the handle's (the first one is the loop's, until the task finishes)
    st->start();
    return task_handle<T>::adopt(st);
}

template <class Aw>
auto event_loop::run_until_complete(Aw&& aw) {
    detail::loop_ops::check_open(this);
    auto f = [&] {
        if constexpr (detail::is_future_v<Aw>) {
            using T = typename std::remove_cvref_t<Aw>::value_type;
            return future<T>(std::forward<Aw>(aw));
        } else {
            auto t = create_task(std::forward<Aw>(aw));
            using T = typename decltype(t)::value_type;
            return future<T>(std::move(t));
        }
    }();
    if (f.state()->loop() != this)
        throw std::runtime_error("corio: the future belongs to a different event loop");
    // Stop when it is done; disarmed afterwards so a later run is not stopped by it.
    auto armed = std::make_shared<bool>(true);
    f.add_done_callback([this, armed](const auto&) {
        if (*armed) stop();
    });
    struct disarm {
        std::shared_ptr<bool>& a;
        ~disarm() { *a = false; }
    } guard{armed};
    run_forever();
    if (!f.done()) throw std::runtime_error("Event loop stopped before Future completed.");
    return std::move(f).result();
}

// --- Free functions ----------------------------------------------------------------------------

/// asyncio.create_task: schedules `aw` on the running loop. `aw` is a `task<T>` (moved in), a
/// callable returning an awaitable (moved into the task, so lambda captures stay alive), or any
/// awaitable. Throws `std::runtime_error("no running event loop")` outside a loop.
template <class Aw>
auto create_task(Aw&& aw, std::string name = {},
                 std::source_location where = std::source_location::current()) {
    return get_running_loop().create_task(std::forward<Aw>(aw), std::move(name), where);
}

/// asyncio.ensure_future: a future stays itself; anything else becomes a task.
template <class Aw>
auto ensure_future(Aw&& aw) {
    if constexpr (detail::is_future_v<Aw>) {
        return future<typename std::remove_cvref_t<Aw>::value_type>(std::forward<Aw>(aw));
    } else {
        return create_task(std::forward<Aw>(aw));
    }
}

/// Calls `f(args...)` inside a coroutine that owns `f` and `args` (copied or moved in), so
/// lambda captures and arguments outlive every suspension (CP.51).
template <class F, class... A>
auto co_invoke(F&& f, A&&... args) {
    return detail::co_invoke_impl(std::decay_t<F>(std::forward<F>(f)),
                                  std::decay_t<A>(std::forward<A>(args))...);
}

/// The task running now; an empty handle outside a task.
inline task_ref current_task() noexcept { return task_ref(detail::t_current_task); }

/// The running loop's tasks that are not done. Throws outside a loop.
inline std::vector<task_ref> all_tasks() {
    std::vector<task_ref> out;
    for (detail::task_core* t : detail::loop_ops::pending_tasks(get_running_loop())) out.emplace_back(t);
    return out;
}

} // namespace corio
// ---- end corio/task.hpp ----
// ---- end corio/future.hpp ----
// ---- begin corio/sleep.hpp (included from corio/as_completed.hpp) ----
/// \file corio/sleep.hpp
/// `co_await corio::sleep(duration)`: asyncio.sleep.
///
/// - `sleep(0s)` (or any duration <= 0) yields: the task goes to the back of the ready queue
///   and resumes on the next loop iteration, after everything already scheduled.
/// - A positive duration parks the task on a timer (no allocation: the timer node lives in the
///   awaiting coroutine's frame).
/// - Cancellation: the timer is removed at once and `cancelled_error` is thrown at the
///   `co_await`.
/// - `sleep(d, value)` gives `value` back when it wakes (asyncio's `result=`).



namespace corio {
namespace detail {

/// A duration in nanoseconds, saturating instead of overflowing (sleep(hours::max())).
template <class Rep, class Period>
std::int64_t saturating_ns(std::chrono::duration<Rep, Period> d) noexcept {
    using ns = std::chrono::duration<long double, std::nano>;
    const long double v = std::chrono::duration_cast<ns>(d).count();
    constexpr auto hi = static_cast<long double>(std::numeric_limits<std::int64_t>::max() / 4);
    if (v >= hi) return static_cast<std::int64_t>(hi);
    if (v <= -hi) return -static_cast<std::int64_t>(hi);
    return static_cast<std::int64_t>(v);
}

class sleep_awaiter : public timer_node, public task_waiter {
public:
    explicit sleep_awaiter(std::int64_t delay_ns) noexcept : m_delay(delay_ns) {
        timer_node::fire = &on_fire;
        task_waiter::cancel = &on_cancel;
    }
    /// Movable until awaited (so `create_task(sleep(d))` and `gather(sleep(d, v))` work); a
    /// registered timer node never moves.
    sleep_awaiter(sleep_awaiter&& o) noexcept : sleep_awaiter(o.m_delay) {}
    sleep_awaiter(const sleep_awaiter&) = delete;
    sleep_awaiter& operator=(const sleep_awaiter&) = delete;
    sleep_awaiter& operator=(sleep_awaiter&&) = delete;
    ~sleep_awaiter() {
        if (in_heap()) loop_ops::remove_timer(*m_loop, this); // the frame died while asleep
    }

    bool await_ready() const noexcept { return false; }

    void await_suspend(std::coroutine_handle<> h) {
        task_core& t = require_current_task();
        m_task = &t;
        m_loop = t.as_future().loop();
        if (m_delay <= 0) { // yield once
            t.suspend_on(h, nullptr);
            t.wake();
            return;
        }
        loop_ops::add_timer(*m_loop, this, loop_ops::now_ns(*m_loop) + m_delay);
        t.suspend_on(h, this);
    }

    void await_resume() { m_task->throw_if_cancel_delivered(); }

private:
    static void on_fire(timer_node* n) noexcept { static_cast<sleep_awaiter*>(n)->m_task->wake(); }
    static bool on_cancel(task_waiter* w, const std::string& msg) {
        auto* self = static_cast<sleep_awaiter*>(w);
        loop_ops::remove_timer(*self->m_loop, self);
        self->m_task->wake_cancelled(msg);
        return true;
    }

    std::int64_t m_delay;
    task_core* m_task = nullptr;
    event_loop* m_loop = nullptr;
};

template <class T>
class sleep_value_awaiter : public sleep_awaiter {
public:
    sleep_value_awaiter(std::int64_t delay_ns, T value)
        : sleep_awaiter(delay_ns), m_value(std::move(value)) {}
    sleep_value_awaiter(sleep_value_awaiter&& o) noexcept(std::is_nothrow_move_constructible_v<T>)
        : sleep_awaiter(std::move(o)), m_value(std::move(o.m_value)) {}
    T await_resume() {
        sleep_awaiter::await_resume();
        return std::move(m_value);
    }

private:
    T m_value;
};

} // namespace detail

/// Suspends the calling task for `delay` (see the file comment). Must be awaited in a task.
template <class Rep, class Period>
[[nodiscard]] detail::sleep_awaiter sleep(std::chrono::duration<Rep, Period> delay) noexcept {
    return detail::sleep_awaiter(detail::saturating_ns(delay));
}

/// As sleep(delay), then gives back `value`.
template <class Rep, class Period, class T>
[[nodiscard]] detail::sleep_value_awaiter<T> sleep(std::chrono::duration<Rep, Period> delay, T value) {
    return detail::sleep_value_awaiter<T>(detail::saturating_ns(delay), std::move(value));
}

} // namespace corio
// ---- end corio/sleep.hpp ----
// ---- begin corio/wait.hpp (included from corio/as_completed.hpp) ----
/// \file corio/wait.hpp
/// `co_await corio::wait(futures, return_when, timeout)`: asyncio.wait.
///
///     std::vector<corio::task_handle<int>> tasks = ...;
///     auto [done, pending] = co_await corio::wait(tasks, corio::first_completed, 5s);
///
/// - Waits on futures and tasks that already exist (a range of `future<T>`, `task_handle<T>` or
///   `task_ref`). Like asyncio 3.12, it does not take coroutines: wrap each `task<T>` with
///   `corio::create_task` first (a range of `task<T>` is a compile-time error).
/// - Returns `{done, pending}`: the handles passed in, split by `done()` when `wait` resumes.
///   Each vector keeps the order of the input. A future passed twice is listed once (asyncio
///   works on a set).
/// - Never cancels the futures and never throws `timeout_error`: when the timeout passes, what
///   is not done is simply in `pending`. Cancelling the task that waits stops the waiting
///   (`cancelled_error` at the `co_await`), and the futures carry on.
/// - Like asyncio, it always suspends at least once, even if the condition already holds.
/// - `first_exception` reads the error of each future that is done (asyncio calls
///   `f.exception()`), so those errors count as retrieved and are not reported as "never
///   retrieved".
///
/// Waiting allocates the coroutine frame and one intrusive waiter node per future; nothing is
/// left registered with the futures once `wait` resumes, is cancelled or is destroyed.


#include <ranges>

namespace corio {

/// When `wait` returns: asyncio's FIRST_COMPLETED, FIRST_EXCEPTION and ALL_COMPLETED. The
/// constants `corio::first_completed`, `corio::first_exception` and `corio::all_completed`
/// spell them as asyncio does.
enum class return_when {
    /// As soon as any future is done (finished or cancelled).
    first_completed,
    /// As soon as any future finishes with an exception (a cancelled future does not count);
    /// if none does, when all are done.
    first_exception,
    /// When every future is done.
    all_completed,
};

/// asyncio.FIRST_COMPLETED: `wait` returns as soon as any future is done.
inline constexpr return_when first_completed = return_when::first_completed;
/// asyncio.FIRST_EXCEPTION: `wait` returns as soon as any future fails, else when all are done.
inline constexpr return_when first_exception = return_when::first_exception;
/// asyncio.ALL_COMPLETED (the default): `wait` returns when every future is done.
inline constexpr return_when all_completed = return_when::all_completed;

/// What `co_await wait(...)` gives: the handles passed in, split into those that are done and
/// those that are not, each in input order. Use it with a structured binding:
/// `auto [done, pending] = co_await corio::wait(tasks);`
template <class H>
struct wait_result {
    std::vector<H> done;    ///< the futures that were done when `wait` resumed
    std::vector<H> pending; ///< the others (not cancelled: `wait` never cancels)
};

namespace detail {

/// True for the handles `wait` and `as_completed` accept as they are.
template <class H>
inline constexpr bool is_future_handle_v = std::is_base_of_v<future_base, H>;


/// asyncio's test in FIRST_EXCEPTION mode: finished (not cancelled) with an error. Like
/// asyncio's `f.exception()`, it marks the error as retrieved.
inline bool failed(future_core& f) noexcept {
    return f.state() == future_core::status::done && f.exception() != nullptr;
}

/// The distinct futures of `hs` (first occurrence kept, input order): asyncio's `set(fs)`.
/// Throws `std::invalid_argument` for an empty handle.
template <class H>
std::vector<H> distinct_futures(std::vector<H> hs, const char* who) {
    std::vector<std::pair<future_core*, std::size_t>> keys;
    keys.reserve(hs.size());
    for (std::size_t i = 0; i < hs.size(); ++i) {
        if (!hs[i]) throw std::invalid_argument(std::string(who) + ": an empty future handle");
        keys.emplace_back(hs[i].core(), i);
    }
    std::sort(keys.begin(), keys.end());
    std::vector<bool> keep(hs.size(), false);
    for (std::size_t i = 0; i < keys.size(); ++i)
        if (i == 0 || keys[i].first != keys[i - 1].first) keep[keys[i].second] = true;
    std::vector<H> out;
    out.reserve(hs.size());
    for (std::size_t i = 0; i < hs.size(); ++i)
        if (keep[i]) out.push_back(std::move(hs[i]));
    return out;
}

/// Suspends the calling task until the `return_when` condition holds or the timeout passes,
/// with one waiter node per future (no allocation after construction). Cancelling the task
/// removes every registration and throws `cancelled_error` at the `co_await`; the futures are
/// left alone.
class wait_awaiter final : public task_waiter, public timer_node {
public:
    wait_awaiter(const std::vector<future_core*>& futures, return_when when,
                 std::optional<std::int64_t> timeout_ns)
        : m_nodes(futures.size()), m_when(when), m_timeout(timeout_ns) {
        task_waiter::cancel = &on_cancel;
        timer_node::fire = &on_fire;
        for (std::size_t i = 0; i < futures.size(); ++i) {
            m_nodes[i].self = this;
            m_nodes[i].future = futures[i];
            m_nodes[i].on_done = &on_future_done;
        }
    }
    wait_awaiter(const wait_awaiter&) = delete;
    wait_awaiter& operator=(const wait_awaiter&) = delete;
    ~wait_awaiter() { unregister(); }

    bool await_ready() const noexcept { return false; } // asyncio's wait always yields

    void await_suspend(std::coroutine_handle<> h) {
        task_core& t = require_current_task();
        event_loop* loop = t.as_future().loop();
        for (const node& n : m_nodes)
            if (n.future->loop() != loop)
                throw std::runtime_error("corio: the future is attached to a different loop");
        m_task = &t;
        m_loop = loop;
        std::size_t pending = 0;
        bool met = false;
        for (node& n : m_nodes) {
            if (!n.future->done()) ++pending;
            else if (m_when == return_when::first_completed) met = true;
            else if (m_when == return_when::first_exception && failed(*n.future)) met = true;
        }
        if (met || pending == 0) { // nothing to wait for: yield once, as asyncio does
            t.suspend_on(h, nullptr);
            t.wake();
            return;
        }
        if (m_timeout) // first, as it may throw; a timeout <= 0 fires on the next iteration
            loop_ops::add_timer(*loop, this, loop_ops::now_ns(*loop) + std::max<std::int64_t>(*m_timeout, 0));
        m_pending = pending;
        for (node& n : m_nodes)
            if (!n.future->done()) n.future->add_waiter(&n);
        t.suspend_on(h, this);
    }

    void await_resume() {
        if (m_task) m_task->throw_if_cancel_delivered();
    }

private:
    struct node final : future_waiter {
        wait_awaiter* self = nullptr;
        future_core* future = nullptr;
    };

    /// Takes every node off its future and the timer off the loop.
    void unregister() noexcept {
        for (node& n : m_nodes) n.future->remove_waiter(&n); // no-op for nodes not linked
        if (in_heap()) loop_ops::remove_timer(*m_loop, this);
    }

    static void on_future_done(future_waiter* w) noexcept {
        auto* n = static_cast<node*>(w);
        wait_awaiter* self = n->self;
        --self->m_pending;
        bool met = self->m_pending == 0 || self->m_when == return_when::first_completed;
        if (!met && self->m_when == return_when::first_exception) met = failed(*n->future);
        if (met) {
            self->unregister();
            self->m_task->wake();
        }
    }
    static void on_fire(timer_node* t) noexcept {
        auto* self = static_cast<wait_awaiter*>(t);
        self->unregister();
        self->m_task->wake();
    }
    static bool on_cancel(task_waiter* w, const std::string& msg) {
        auto* self = static_cast<wait_awaiter*>(w);
        self->unregister(); // stop waiting; the futures themselves are not cancelled
        self->m_task->wake_cancelled(msg);
        return true;
    }

    std::vector<node> m_nodes; // sized once: the nodes never move while linked
    return_when m_when;
    std::optional<std::int64_t> m_timeout;
    std::size_t m_pending = 0;
    task_core* m_task = nullptr;
    event_loop* m_loop = nullptr;
};

template <class H>
task<wait_result<H>> wait_impl(std::vector<H> fs, return_when when, std::optional<std::int64_t> timeout_ns) {
    // Checked when awaited, as asyncio raises its ValueErrors from the coroutine.
    if (fs.empty()) throw std::invalid_argument("Set of Tasks/Futures is empty.");
    if (when != return_when::first_completed && when != return_when::first_exception &&
        when != return_when::all_completed)
        throw std::invalid_argument("Invalid return_when value: " +
                                    std::to_string(static_cast<int>(when)));
    std::vector<H> distinct = distinct_futures(std::move(fs), "corio::wait");
    std::vector<future_core*> cores;
    cores.reserve(distinct.size());
    for (const H& h : distinct) cores.push_back(h.core());
    {
        wait_awaiter waiter(cores, when, timeout_ns);
        co_await waiter;
    }
    wait_result<H> r;
    for (H& h : distinct) (h.done() ? r.done : r.pending).push_back(std::move(h));
    co_return r;
}

template <class R>
using range_handle_t = std::remove_cvref_t<std::ranges::range_value_t<R>>;

template <class H>
constexpr bool check_wait_handle() {
    static_assert(!is_task<H>::value,
                  "corio::wait takes futures and tasks, not coroutines (asyncio 3.12 forbids them "
                  "too): wrap each task<T> with corio::create_task first");
    static_assert(is_task<H>::value || is_future_handle_v<H>,
                  "corio::wait takes a range of corio::future<T>, task_handle<T> or task_ref");
    return is_future_handle_v<H>;
}

template <class R>
auto start_wait(R&& fs, return_when when, std::optional<std::int64_t> timeout_ns) {
    using H = range_handle_t<R>;
    if constexpr (check_wait_handle<H>()) {
        std::vector<H> hs;
        if constexpr (std::ranges::sized_range<R>) hs.reserve(std::ranges::size(fs));
        for (auto&& h : fs) hs.emplace_back(h); // copies of the handles
        return wait_impl<H>(std::move(hs), when, timeout_ns);
    }
}

} // namespace detail

/// asyncio.wait without a timeout: `auto [done, pending] = co_await corio::wait(fs, when);`
///
/// `fs` is a range of `future<T>`, `task_handle<T>` or `task_ref` (copied when `wait` is
/// called). Suspends until `when` holds (see `return_when`), then gives the handles split into
/// done and pending (see `wait_result`), without cancelling anything. When awaited it throws
/// `std::invalid_argument` if `fs` is empty (asyncio's ValueError) or holds an empty handle,
/// and `std::runtime_error` for a future of another loop.
/// Cancellation: cancelling the awaiting task throws `cancelled_error` at the `co_await`; the
/// futures are not cancelled.
template <std::ranges::input_range R>
auto wait(R&& fs, return_when when = all_completed) {
    return detail::start_wait(std::forward<R>(fs), when, std::nullopt);
}

/// asyncio.wait with a timeout: as above, but returns when `timeout` has passed even if `when`
/// does not hold; what is not done then is in `pending` (nothing is cancelled and no
/// `timeout_error` is thrown). A timeout <= 0 checks once, after one loop iteration.
template <std::ranges::input_range R, class Rep, class Period>
auto wait(R&& fs, return_when when, std::chrono::duration<Rep, Period> timeout) {
    return detail::start_wait(std::forward<R>(fs), when, detail::saturating_ns(timeout));
}

/// asyncio.wait(fs, timeout=...) with `return_when` after the timeout: `wait(fs, 5s)` waits for
/// all of them, for 5 seconds at most.
template <std::ranges::input_range R, class Rep, class Period>
auto wait(R&& fs, std::chrono::duration<Rep, Period> timeout, return_when when = all_completed) {
    return detail::start_wait(std::forward<R>(fs), when, detail::saturating_ns(timeout));
}

/// asyncio.wait with an optional timeout (`std::nullopt`: none, as asyncio's `timeout=None`).
template <std::ranges::input_range R>
auto wait(R&& fs, return_when when, std::optional<std::chrono::nanoseconds> timeout) {
    std::optional<std::int64_t> ns;
    if (timeout) ns = detail::saturating_ns(*timeout);
    return detail::start_wait(std::forward<R>(fs), when, ns);
}

} // namespace corio
// ---- end corio/wait.hpp ----


namespace corio {

template <class H>
class as_completed_iterator;

namespace detail {

/// The bookkeeping of as_completed, independent of the handle type: which futures completed,
/// in which order, and who waits for the next one. Lives on the heap (the iterator can move);
/// one waiter node per pending future, allocated once.
class as_completed_core : public timer_node {
public:
    /// What a `next()` gives when it looks.
    enum class outcome { future, timeout, finished, none_yet };

    /// Something suspended in `next()`.
    struct waiter {
        task_core* task = nullptr;
        as_completed_core* core = nullptr; ///< null once the iterator is gone
    };

    as_completed_core(const std::vector<future_core*>& futures, event_loop& loop,
                      std::optional<std::int64_t> timeout_ns)
        : m_nodes(futures.size()), m_loop(&loop) {
        timer_node::fire = &on_fire;
        m_done.reserve(futures.size()); // on_future_done must not allocate
        std::size_t pending = 0;
        for (std::size_t i = 0; i < futures.size(); ++i) {
            node& n = m_nodes[i];
            n.self = this;
            n.index = i;
            n.future = futures[i];
            n.on_done = &on_future_done;
            if (!n.future->done()) ++pending;
        }
        if (pending > 0 && timeout_ns) // first, as it may throw
            loop_ops::add_timer(loop, this, loop_ops::now_ns(loop) + std::max<std::int64_t>(*timeout_ns, 0));
        for (node& n : m_nodes) {
            if (n.future->done()) m_done.push_back(n.index); // already done: first, input order
            else n.future->add_waiter(&n);
        }
        m_registered = pending;
    }
    as_completed_core(const as_completed_core&) = delete;
    as_completed_core& operator=(const as_completed_core&) = delete;
    ~as_completed_core() {
        unregister();
        if (m_waiter) { // the iterator died under a suspended next(): let it see that
            m_waiter->core = nullptr;
            m_waiter->task->wake();
        }
    }

    /// Takes the next outcome; `index` is set for `outcome::future`.
    outcome take(std::size_t& index) noexcept {
        if (m_head < m_done.size()) {
            index = m_done[m_head++];
            return outcome::future;
        }
        if (m_timeouts > 0) {
            --m_timeouts;
            return outcome::timeout;
        }
        return m_registered == 0 ? outcome::finished : outcome::none_yet;
    }
    /// True if `take` would not give `none_yet`.
    bool ready() const noexcept { return m_head < m_done.size() || m_timeouts > 0 || m_registered == 0; }
    /// How many more `next()` calls give a future or throw `timeout_error`.
    std::size_t remaining() const noexcept { return m_done.size() - m_head + m_timeouts + m_registered; }

    event_loop* loop() const noexcept { return m_loop; }
    waiter* current_waiter() const noexcept { return m_waiter; }
    void set_waiter(waiter* w) noexcept { m_waiter = w; }

private:
    struct node final : future_waiter {
        as_completed_core* self = nullptr;
        future_core* future = nullptr;
        std::size_t index = 0;
    };

    void unregister() noexcept {
        for (node& n : m_nodes) n.future->remove_waiter(&n);
        if (in_heap()) loop_ops::remove_timer(*m_loop, this);
    }
    void wake_waiter() noexcept {
        if (waiter* w = std::exchange(m_waiter, nullptr)) w->task->wake();
    }

    static void on_future_done(future_waiter* fw) noexcept {
        auto* n = static_cast<node*>(fw);
        as_completed_core* self = n->self;
        self->m_done.push_back(n->index); // capacity reserved: does not throw
        if (--self->m_registered == 0 && self->in_heap()) loop_ops::remove_timer(*self->m_loop, self);
        self->wake_waiter();
    }
    static void on_fire(timer_node* t) noexcept {
        auto* self = static_cast<as_completed_core*>(t);
        for (node& n : self->m_nodes) n.future->remove_waiter(&n); // asyncio's _on_timeout
        self->m_timeouts += self->m_registered; // one timeout_error per future still pending
        self->m_registered = 0;
        self->wake_waiter();
    }

    std::vector<node> m_nodes; // sized once: the nodes never move while linked
    std::vector<std::size_t> m_done;
    std::size_t m_head = 0;
    std::size_t m_registered = 0; // nodes still linked to a pending future
    std::size_t m_timeouts = 0;   // timeout_errors still to throw
    waiter* m_waiter = nullptr;
    event_loop* m_loop;
};

/// The handles and the core, together on the heap.
template <class H>
struct as_completed_state {
    std::vector<H> handles;
    as_completed_core core;

    as_completed_state(std::vector<H> hs, event_loop& loop, std::optional<std::int64_t> timeout_ns)
        : handles(std::move(hs)), core(cores_of(handles), loop, timeout_ns) {}

    static std::vector<future_core*> cores_of(const std::vector<H>& hs) {
        std::vector<future_core*> out;
        out.reserve(hs.size());
        for (const H& h : hs) out.push_back(h.core());
        return out;
    }
};

/// `co_await it.next()`. Cancelling the awaiting task stops the wait (cancelled_error at the
/// co_await) and cancels nothing.
template <class H>
class as_completed_awaiter final : public task_waiter {
public:
    explicit as_completed_awaiter(as_completed_state<H>* st) noexcept : m_state(st) {
        task_waiter::cancel = &on_cancel;
        m_waiter.core = st ? &st->core : nullptr;
    }
    as_completed_awaiter(const as_completed_awaiter&) = delete;
    as_completed_awaiter& operator=(const as_completed_awaiter&) = delete;
    ~as_completed_awaiter() {
        if (m_waiter.core && m_waiter.core->current_waiter() == &m_waiter) m_waiter.core->set_waiter(nullptr);
    }

    bool await_ready() const {
        if (!m_state) throw invalid_state_error("corio: next() on a moved-from as_completed iterator");
        return m_state->core.ready();
    }
    void await_suspend(std::coroutine_handle<> h) {
        task_core& t = require_current_task();
        as_completed_core& core = m_state->core;
        if (t.as_future().loop() != core.loop())
            throw std::runtime_error("corio: the as_completed iterator belongs to a different loop");
        if (core.current_waiter())
            throw invalid_state_error("corio: as_completed: next() is already being awaited");
        m_waiter.task = &t;
        core.set_waiter(&m_waiter);
        t.suspend_on(h, this);
    }
    std::optional<H> await_resume() {
        if (m_waiter.task) m_waiter.task->throw_if_cancel_delivered();
        if (!m_waiter.core)
            throw invalid_state_error("corio: the as_completed iterator was destroyed during next()");
        std::size_t i = 0;
        switch (m_state->core.take(i)) {
        case as_completed_core::outcome::future: return m_state->handles[i];
        case as_completed_core::outcome::timeout: throw timeout_error();
        case as_completed_core::outcome::finished: return std::nullopt;
        case as_completed_core::outcome::none_yet: break;
        }
        throw invalid_state_error("corio: as_completed woke without an outcome"); // not reached
    }

private:
    static bool on_cancel(task_waiter* w, const std::string& msg) {
        auto* self = static_cast<as_completed_awaiter*>(w);
        if (self->m_waiter.core) self->m_waiter.core->set_waiter(nullptr);
        self->m_waiter.task->wake_cancelled(msg);
        return true;
    }

    as_completed_state<H>* m_state;
    as_completed_core::waiter m_waiter;
};

template <class R>
using as_completed_elem_t = std::remove_cvref_t<std::ranges::range_value_t<R>>;

/// The handle type `next()` gives for a range of `E`.
template <class E>
struct as_completed_handle {
    using type = E;
};
template <class T>
struct as_completed_handle<task<T>> {
    using type = task_handle<T>;
};

template <class R>
auto make_as_completed(R&& fs, std::optional<std::int64_t> timeout_ns) {
    using E = as_completed_elem_t<R>;
    using H = typename as_completed_handle<E>::type;
    static_assert(is_task<E>::value || is_future_handle_v<E>,
                  "corio::as_completed takes a range of corio::future<T>, task_handle<T>, task_ref "
                  "or task<T>");
    static_assert(!is_task<E>::value || !std::is_lvalue_reference_v<R>,
                  "corio::as_completed: tasks are move-only; pass the range with std::move");
    event_loop& loop = get_running_loop();
    std::vector<H> hs;
    if constexpr (std::ranges::sized_range<R>) hs.reserve(std::ranges::size(fs));
    if constexpr (is_task<E>::value) {
        for (auto&& t : fs) hs.push_back(corio::create_task(std::move(t)));
    } else {
        for (auto&& h : fs) hs.emplace_back(h); // copies of the handles
        // asyncio works on set(fs): a future passed twice is taken once (first place kept).
        hs = distinct_futures(std::move(hs), "corio::as_completed");
        for (const H& h : hs)
            if (h.core()->loop() != &loop)
                throw std::runtime_error("corio: the future is attached to a different loop");
    }
    return as_completed_iterator<H>(
        std::make_unique<as_completed_state<H>>(std::move(hs), loop, timeout_ns));
}

} // namespace detail

/// What `as_completed` returns: `co_await it.next()` gives the next future to complete (see
/// the file comment of corio/as_completed.hpp). Move-only; destroying it early takes every
/// registration off the futures and the loop, and cancels nothing.
template <class H>
class as_completed_iterator {
public:
    /// `co_await it.next()` gives `std::optional<H>`: the next handle to complete (it is done),
    /// or `std::nullopt` once every future has been given. Suspends until one completes.
    /// Throws `timeout_error` once per future still pending when the timeout passed (nothing
    /// is cancelled), `invalid_state_error` on a moved-from iterator, while another `next()` is
    /// awaited, or if the iterator is destroyed during the wait.
    /// Cancellation: cancelling the awaiting task throws `cancelled_error` at the `co_await`;
    /// no future is cancelled and no future is skipped (a later `next()` gives it).
    [[nodiscard]] detail::as_completed_awaiter<H> next() noexcept {
        return detail::as_completed_awaiter<H>(m_state.get());
    }

    /// How many more `next()` calls will give a future or throw `timeout_error`.
    std::size_t remaining() const noexcept { return m_state ? m_state->core.remaining() : 0; }

    /// \cond INTERNAL
    explicit as_completed_iterator(std::unique_ptr<detail::as_completed_state<H>> st) noexcept
        : m_state(std::move(st)) {}
    /// \endcond

private:
    std::unique_ptr<detail::as_completed_state<H>> m_state;
};

/// asyncio.as_completed: `auto it = corio::as_completed(fs); while (auto f = co_await
/// it.next()) use(f->result());` gives the futures of `fs` in the order they complete.
///
/// `fs` is a range of `future<T>`, `task_handle<T>` or `task_ref` (copied), or of `task<T>`
/// passed with std::move (each started with create_task now; `next()` then gives their
/// `task_handle<T>`). Throws `std::runtime_error` outside a running loop or for a future of
/// another loop, `std::invalid_argument` for an empty handle. An empty `fs` gives an iterator
/// whose first `next()` is `std::nullopt`.
template <std::ranges::input_range R>
auto as_completed(R&& fs) {
    return detail::make_as_completed(std::forward<R>(fs), std::nullopt);
}

/// As `as_completed(fs)`, with a timeout counted from this call: once it has passed, `next()`
/// throws `timeout_error` once for each future still pending then, and the futures are not
/// cancelled.
template <std::ranges::input_range R, class Rep, class Period>
auto as_completed(R&& fs, std::chrono::duration<Rep, Period> timeout) {
    return detail::make_as_completed(std::forward<R>(fs), detail::saturating_ns(timeout));
}

/// As above, with an optional timeout (`std::nullopt`: none, as asyncio's `timeout=None`).
template <std::ranges::input_range R>
auto as_completed(R&& fs, std::optional<std::chrono::nanoseconds> timeout) {
    std::optional<std::int64_t> ns;
    if (timeout) ns = detail::saturating_ns(*timeout);
    return detail::make_as_completed(std::forward<R>(fs), ns);
}

} // namespace corio
// ---- end corio/as_completed.hpp ----
// ---- begin corio/async_generator.hpp (included from corio/corio.hpp) ----
/// \file corio/async_generator.hpp
/// `corio::async_generator<T>`: asyncio's async generator (`async def` with `yield`) and its
/// `async for`.
///
///     corio::async_generator<int> ticks(int n) {          // async def ticks(n):
///         for (int i = 0; i < n; ++i) {                   //     for i in range(n):
///             co_await corio::sleep(1s);                  //         await asyncio.sleep(1)
///             co_yield i;                                 //         yield i
///         }
///     }
///     ...
///     auto gen = ticks(3);                                // async for i in ticks(3):
///     while (auto i = co_await gen.next()) use(*i);       //     use(i)
///
/// ## How it runs
/// The generator is lazy: its body starts at the first `next()`. It runs inside the task of
/// whoever awaits `next()` (no task of its own, like an inline `co_await` of a `task<T>`), so it
/// may `co_await` anything a task may (sleeps, futures, other tasks, other generators), and
/// cancelling the consumer's task throws `cancelled_error` at the `co_await` inside the
/// generator where it is suspended; uncaught, it comes out of `next()`.
///
/// Control passes between consumer and generator through the task's trampoline (see
/// corio/task.hpp and detail/task_core.hpp), both at `next()` and at each `co_yield`, so a
/// generator that yields a million values without suspending, or a deep chain of generators
/// reading one another, does not grow the stack, whatever the optimisation level.



namespace corio {

template <class T>
class async_generator;

namespace detail {

/// Resumes `c` next: through the current task's trampoline (the step loop resumes it once the
/// running coroutine has returned), or by plain symmetric transfer outside a task.
inline std::coroutine_handle<> generator_transfer(std::coroutine_handle<> c) noexcept {
    if (task_core* t = t_current_task) {
        t->next = c;
        return std::noop_coroutine();
    }
    return c;
}

template <class T>
class async_generator_promise;

/// `co_yield` of an rvalue `T`: the value stays in the generator's frame (the temporary lives
/// until the generator resumes) and `next()` moves it out.
struct generator_yield_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
        return generator_transfer(std::exchange(h.promise().consumer, {}));
    }
    void await_resume() const noexcept {}
};

/// `co_yield` of anything else (an lvalue, a value of another type): a `T` is made here, in the
/// awaiter, which lives in the generator's frame while it is suspended.
template <class T>
class generator_yield_copy_awaiter {
public:
    template <class U>
    generator_yield_copy_awaiter(async_generator_promise<T>& p, U&& v)
        : m_promise(p), m_value(std::forward<U>(v)) {}
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
        m_promise.set_yielded(std::addressof(m_value));
        return generator_transfer(std::exchange(h.promise().consumer, {}));
    }
    void await_resume() const noexcept {}

private:
    async_generator_promise<T>& m_promise;
    T m_value;
};

/// At the end of the body (returned or threw): back to the consumer's pending `next()`.
struct generator_final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
        return generator_transfer(std::exchange(h.promise().consumer, {}));
    }
    void await_resume() const noexcept {}
};

template <class T>
class async_generator_promise {
public:
    async_generator<T> get_return_object() noexcept;

    std::suspend_always initial_suspend() const noexcept { return {}; }
    generator_final_awaiter final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() noexcept { m_exception = std::current_exception(); }

    generator_yield_awaiter yield_value(T&& v) noexcept {
        m_value = std::addressof(v);
        return {};
    }
    template <class U>
        requires std::constructible_from<T, U&&>
    generator_yield_copy_awaiter<T> yield_value(U&& v) {
        return generator_yield_copy_awaiter<T>(*this, std::forward<U>(v));
    }

    void set_yielded(T* v) noexcept { m_value = v; }

    /// The coroutine suspended in `next()`, while one is pending (null otherwise).
    std::coroutine_handle<> consumer;

    /// What the pending `next()` gives: the error the body ended with, the yielded value, or
    /// nothing (the body returned).
    std::optional<T> take_result() {
        if (m_exception) std::rethrow_exception(std::exchange(m_exception, nullptr));
        if (T* v = std::exchange(m_value, nullptr)) return std::optional<T>(std::move(*v));
        return std::nullopt;
    }
    void clear_yielded() noexcept { m_value = nullptr; }

private:
    T* m_value = nullptr;
    std::exception_ptr m_exception;
};

/// What `next()` returns: resumes the generator until it yields, returns or throws.
template <class T>
class async_generator_next {
public:
    using handle_type = std::coroutine_handle<async_generator_promise<T>>;
    explicit async_generator_next(handle_type h) noexcept : m_h(h) {}

    bool await_ready() const {
        if (!m_h) throw invalid_state_error("corio: next() on an empty async_generator (moved from)");
        if (m_h.promise().consumer)
            throw invalid_state_error(
                "corio: async_generator::next() called while a previous next() is still pending");
        return m_h.done();
    }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> consumer) noexcept {
        m_h.promise().clear_yielded();
        m_h.promise().consumer = consumer;
        return generator_transfer(m_h); // trampoline: see the file comment
    }
    std::optional<T> await_resume() { return m_h.promise().take_result(); }

private:
    handle_type m_h;
};

} // namespace detail

/// An asynchronous generator: a coroutine that `co_yield`s values of type `T` and may
/// `co_await` in between (asyncio's async generator). See the file comment of
/// corio/async_generator.hpp.
///
/// Lazy: the body starts at the first `next()`. Move-only. One consumer at a time: a `next()`
/// while another is pending throws `invalid_state_error`.
///
/// Destroying the generator destroys its frame: the locals of the body are destroyed where it
/// stopped (at a `co_yield`, or at a `co_await` if the consumer's frame is being destroyed while
/// it waits in `next()`; the awaiters then leave the timer heap and futures' waiter lists).
/// Destroying it while another task waits in its `next()` is a programming error.
template <class T>
class [[nodiscard]] async_generator {
public:
    static_assert(!std::is_reference_v<T>, "corio: async_generator<T&> is not supported; yield a pointer");
    static_assert(!std::is_void_v<T>, "corio: an async_generator yields values; use corio::none");

    /// The coroutine's promise (what makes `async_generator<T>` a coroutine return type).
    using promise_type = detail::async_generator_promise<T>;
    /// What the generator yields (`next()` gives `std::optional<T>`).
    using value_type = T;
    /// The coroutine handle it owns.
    using handle_type = std::coroutine_handle<promise_type>;

    /// An empty generator (as a moved-from one); `next()` on it throws `invalid_state_error`.
    async_generator() noexcept = default;
    ///@{
    /// Moves the coroutine; the source becomes empty.
    async_generator(async_generator&& o) noexcept : m_h(std::exchange(o.m_h, {})) {}
    async_generator& operator=(async_generator&& o) noexcept {
        if (this != &o) {
            reset();
            m_h = std::exchange(o.m_h, {});
        }
        return *this;
    }
    ///@}
    /// Destroys the coroutine frame, wherever it stopped (see the class comment).
    ~async_generator() { reset(); }

    /// False for a moved-from (empty) generator.
    explicit operator bool() const noexcept { return static_cast<bool>(m_h); }

    /// True once the body has returned or thrown (then `next()` gives `std::nullopt`).
    bool done() const noexcept { return !m_h || m_h.done(); }

    /// `co_await gen.next()` runs the body, inline in the awaiting task, until it yields (gives
    /// the value), returns (gives `std::nullopt`, and so does every later call) or throws (the
    /// exception comes out of this await, once; later calls give `std::nullopt`).
    ///
    /// Cancellation: cancelling the awaiting task throws `cancelled_error` at the `co_await`
    /// inside the body where it is suspended; if the body lets it out, it comes out here.
    /// Throws `invalid_state_error` for an empty generator or if another `next()` is pending.
    detail::async_generator_next<T> next() noexcept { return detail::async_generator_next<T>(m_h); }

private:
    explicit async_generator(handle_type h) noexcept : m_h(h) {}
    void reset() noexcept {
        if (m_h) std::exchange(m_h, {}).destroy();
    }
    friend promise_type;

    handle_type m_h;
};

namespace detail {
template <class T>
async_generator<T> async_generator_promise<T>::get_return_object() noexcept {
    return async_generator<T>(std::coroutine_handle<async_generator_promise<T>>::from_promise(*this));
}
} // namespace detail

} // namespace corio
// ---- end corio/async_generator.hpp ----
// ---- begin corio/datagram.hpp (included from corio/corio.hpp) ----
/// \file corio/datagram.hpp
/// Datagram endpoints: asyncio's `loop.create_datagram_endpoint`, for UDP (IPv4, IPv6) and Unix
/// datagram sockets.
///
/// ```
/// struct echo : corio::datagram_protocol {
///     corio::datagram_transport* t = nullptr;
///     void connection_made(corio::datagram_transport& tr) override { t = &tr; }
///     void datagram_received(std::string_view data, const corio::address& from) override {
///         t->sendto(data, from);
///     }
/// };
/// auto [transport, proto] = co_await corio::create_datagram_endpoint(
///     [] { return std::make_shared<echo>(); }, corio::address{"127.0.0.1", 9999});
/// ```
///
/// | asyncio | corio |
/// |---|---|
/// | `loop.create_datagram_endpoint(P, local_addr=('127.0.0.1', 0))` | `create_datagram_endpoint(factory, corio::address{"127.0.0.1", 0})` (or `loop.create_datagram_endpoint(...)`) |
/// | `remote_addr=('127.0.0.1', 53)` | third argument: `create_datagram_endpoint(factory, {}, corio::address{"127.0.0.1", 53})` |
/// | `family=socket.AF_UNIX`, `local_addr='/tmp/s'` | `corio::address::unix_path("/tmp/s")` (the family follows the address) |
/// | `reuse_port=True`, `allow_broadcast=True` | `corio::datagram_options{.reuse_port = true, .allow_broadcast = true}` |
/// | `transport.sendto(data, addr)` / `sendto(data)` | same (the second for a connected endpoint) |
/// | `transport.get_extra_info('sockname')` | `transport->extra_info<corio::address>("sockname")` |
///
/// Behaviour (as CPython's selector datagram transport; details in
/// corio/detail/datagram_transport.hpp):
/// - `datagram_received(data, from)` once per datagram, in arrival order; a datagram larger than
///   64 KiB (possible on Unix sockets only) arrives truncated. Empty datagrams are sent and
///   received (asyncio before 3.13 silently skipped sending them).
/// - `sendto` never blocks: it sends at once if nothing is queued, else queues (a full socket
///   buffer, EAGAIN) and sends on writability; `pause_writing()` / `resume_writing()` at the
///   water marks (64 KiB / 16 KiB). A send that fails (EMSGSIZE, ECONNREFUSED, ...) goes to
///   `error_received` and the endpoint stays open; so does a receive that fails (an ICMP "port
///   unreachable" after a send on a connected endpoint shows up as ECONNREFUSED).
/// - `sendto` after `close()` is dropped silently. `close()` sends what is queued, then calls
///   `connection_lost(nullptr)` once, on a later loop iteration; `abort()` drops the queue.
/// - An exception escaping `datagram_received` or `error_received` goes to the loop's
///   exception handler and the endpoint keeps receiving (CPython's behaviour for datagram
///   transports; stream transports abort instead).
/// - Closing the loop with endpoints still open closes their sockets (no connection_lost).
/// - Unix paths: a stale socket file at the local path is removed before binding (as asyncio);
///   the file is NOT removed when the endpoint closes (asyncio does not either): unlink it
///   yourself.
/// - Hosts are numeric (`corio::address`); resolve names first with `corio::getaddrinfo`.

// ---- begin corio/detail/datagram_transport.hpp (included from corio/datagram.hpp) ----
/// \file corio/detail/datagram_transport.hpp
/// The datagram transport behind `corio::create_datagram_endpoint` (corio/datagram.hpp): a
/// UDP or Unix datagram socket driven by the loop's add_reader/add_writer, with the semantics
/// of CPython's `_SelectorDatagramTransport`:
///
/// - Reading: each readiness receives datagrams until EAGAIN, at most `max_reads_per_ready`
///   of them (the fd is level-triggered: what is left is read on the next iteration, after the
///   other ready callbacks: fairness). A datagram larger than the 64 KiB receive buffer is
///   delivered truncated, as asyncio does. A failed receive (ECONNREFUSED from an ICMP "port
///   unreachable" on a connected socket, ...) goes to `error_received`; the endpoint stays open.
/// - Writing: `sendto` sends at once when nothing is queued; on EAGAIN the datagram is queued
///   and the queue is flushed when the socket becomes writable. Send errors go to
///   `error_received` (synchronously, from inside `sendto`, when the immediate send fails).
///   Flow control as asyncio's `_FlowControlMixin`: `pause_writing()` when the queued size goes
///   over the high-water mark, `resume_writing()` once it drains to the low-water mark.
/// - Exceptions escaping `datagram_received` / `error_received` go to the loop's exception
///   handler and the endpoint keeps working (in CPython they escape `_read_ready` into the
///   loop's handler, the transport stays open). Exceptions escaping `connection_lost`,
///   `pause_writing` and `resume_writing` are reported too.
/// - close(): stops reading, sends what is queued, then calls `connection_lost(nullptr)` on a
///   later iteration (exactly once) and closes the socket. abort(): drops the queue, same end.
///
/// Ownership: while the endpoint is open the loop owns a reference, through the reader
/// (and writer) callbacks and the scheduled connection_lost call. Closing the loop with an
/// endpoint still open drops those callbacks, which destroys the transport and closes the
/// socket (without a connection_lost call, as asyncio). The destructor never touches the loop.

// ---- begin corio/detail/loop_registry.hpp (included from corio/detail/datagram_transport.hpp) ----
/// \file corio/detail/loop_registry.hpp
/// The loop's reference to the open transports and servers of corio's networking layer: the
/// loop owns them while they are open, and when it closes it detaches whatever is still open
/// (fds closed, protocols released, no callback), as asyncio drops such transports.


#include <unordered_map>

namespace corio::detail {

// --- Loop ownership ----------------------------------------------------------------------------

/// Something the loop owns while it is open (a transport, a server).
class loop_resource {
public:
    virtual ~loop_resource() = default;
    /// The loop is closing (called from inside `event_loop::close`): forget the loop, close the
    /// fds and release the protocol, without calling the loop or any protocol callback.
    virtual void loop_closed() noexcept = 0;
};

/// The open transports and servers of one loop: the loop's reference to them. It is one of
/// the loop's attachments (loop_ops::add_attachment), so the loop's close() destroys it, and
/// its destructor detaches everything still open.
class loop_registry {
public:
    /// The registry of `loop`, made on first use. Throws `std::runtime_error` if the loop is
    /// closed.
    static loop_registry& of(event_loop& loop) {
        if (loop_registry* r = find(loop)) return *r;
        auto reg = std::shared_ptr<loop_registry>(new loop_registry());
        loop_ops::add_attachment(loop, key(), reg);
        return *reg;
    }

    loop_registry(const loop_registry&) = delete;
    loop_registry& operator=(const loop_registry&) = delete;

    /// Detaches everything still open (the loop is closing).
    ~loop_registry() {
        auto items = std::move(m_items);
        m_items.clear();
        m_closing = true;
        for (auto& [raw, owned] : items) raw->loop_closed();
        // `items` releases its references here: transports and servers die unless a user
        // still holds them.
    }

    /// The loop now owns `r`.
    void add(std::shared_ptr<loop_resource> r) {
        if (m_closing) return;
        loop_resource* raw = r.get();
        m_items.emplace(raw, std::move(r));
    }
    /// The loop lets go of `r`; the reference is handed back so that the caller decides when
    /// the object may die (not in the middle of one of its own members).
    std::shared_ptr<loop_resource> remove(loop_resource* r) noexcept {
        auto it = m_items.find(r);
        if (it == m_items.end()) return nullptr;
        std::shared_ptr<loop_resource> out = std::move(it->second);
        m_items.erase(it);
        return out;
    }
    /// How many objects the loop owns (for tests).
    std::size_t size() const noexcept { return m_items.size(); }

    /// The registry of `loop` if it has one (for tests).
    static loop_registry* find(const event_loop& loop) noexcept {
        return static_cast<loop_registry*>(loop_ops::find_attachment(loop, key()));
    }

private:
    loop_registry() = default;

    static const void* key() noexcept {
        static const char k = 0;
        return &k;
    }

    std::unordered_map<loop_resource*, std::shared_ptr<loop_resource>> m_items;
    bool m_closing = false;
};

} // namespace corio::detail
// ---- end corio/detail/loop_registry.hpp ----
// ---- begin corio/detail/socket.hpp (included from corio/detail/datagram_transport.hpp) ----
/// \file corio/detail/socket.hpp
/// File-descriptor and socket helpers for the stream transports and servers (corio/net.hpp):
/// an RAII fd, non-blocking close-on-exec sockets and pipes, accept, sends and pipe writes that
/// never raise SIGPIPE, and errno-to-exception helpers.
///
/// ## Portability
/// Linux has `accept4`, `pipe2`, `SOCK_NONBLOCK | SOCK_CLOEXEC` and `MSG_NOSIGNAL`; each is used
/// under `#ifdef`, with an `fcntl` fallback (and `SO_NOSIGPIPE` / `F_SETNOSIGPIPE` where the
/// system has them instead of MSG_NOSIGNAL, as macOS). The fallbacks leave a window between
/// creating an fd and marking it close-on-exec in which a fork+exec on another thread inherits
/// it; that is what every portable library accepts.
///
/// ## SIGPIPE
/// Writing to a socket or pipe whose reading end is gone raises SIGPIPE, whose default action
/// kills the process. A library must neither die nor change the process's signal dispositions,
/// so:
/// - sockets: `send(..., MSG_NOSIGNAL)`; where that flag does not exist, `SO_NOSIGPIPE` is set
///   on every socket corio creates or accepts;
/// - pipes (no per-call flag exists): where `F_SETNOSIGPIPE` exists (macOS) it is set on the
///   fd; elsewhere `pipe_write` blocks SIGPIPE for the calling thread around `write()` and,
///   if the write failed with EPIPE, consumes the SIGPIPE it generated (`sigtimedwait` with a
///   zero timeout), unless one was already pending before the write, which it leaves for its
///   owner. The write then fails with EPIPE like any other error.


#include <ctime>

#include <fcntl.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/types.h>

namespace corio::detail {

/// Owns a file descriptor: closes it when destroyed unless released. Move-only.
class unique_fd {
public:
    unique_fd() = default;
    /// Adopts `fd` (-1: empty).
    explicit unique_fd(int fd) noexcept : m_fd(fd) {}
    unique_fd(unique_fd&& o) noexcept : m_fd(std::exchange(o.m_fd, -1)) {}
    unique_fd& operator=(unique_fd&& o) noexcept {
        if (this != &o) reset(std::exchange(o.m_fd, -1));
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    int get() const noexcept { return m_fd; }
    explicit operator bool() const noexcept { return m_fd >= 0; }
    /// Gives up ownership.
    int release() noexcept { return std::exchange(m_fd, -1); }
    /// Closes the fd it owns (if any) and adopts `fd`. close() errors are ignored: the fd is
    /// released whatever close() says (POSIX leaves its state unspecified on EINTR, and Linux
    /// always frees it, so retrying could close someone else's fd).
    void reset(int fd = -1) noexcept {
        if (m_fd >= 0) ::close(m_fd);
        m_fd = fd;
    }

private:
    int m_fd = -1;
};

/// asyncio's OSError: `std::system_error(err, std::generic_category(), what)`.
[[noreturn]] inline void throw_os_error(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

/// Sets or clears O_NONBLOCK. Throws `std::system_error`.
inline void set_nonblocking(int fd, bool on = true) {
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0) throw_os_error(errno, "fcntl(F_GETFL)");
    const int want = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    if (want != fl && ::fcntl(fd, F_SETFL, want) < 0) throw_os_error(errno, "fcntl(O_NONBLOCK)");
}

/// Sets FD_CLOEXEC. Throws `std::system_error`.
inline void set_cloexec(int fd) {
    const int fl = ::fcntl(fd, F_GETFD);
    if (fl < 0 || ::fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) throw_os_error(errno, "fcntl(FD_CLOEXEC)");
}

/// An int socket option. Throws `std::system_error` with `what`.
inline void set_socket_option(int fd, int level, int name, int value, const char* what) {
    if (::setsockopt(fd, level, name, &value, sizeof value) != 0) throw_os_error(errno, what);
}

/// Where send() has no MSG_NOSIGNAL, the socket itself must be told not to raise SIGPIPE.
inline void set_no_sigpipe([[maybe_unused]] int fd) noexcept {
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
}

/// A non-blocking, close-on-exec socket. Throws `std::system_error`.
inline unique_fd open_socket(int family, int type, int protocol = 0) {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
    unique_fd fd(::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol));
    if (!fd) throw_os_error(errno, "socket");
#else
    unique_fd fd(::socket(family, type, protocol));
    if (!fd) throw_os_error(errno, "socket");
    set_cloexec(fd.get());
    set_nonblocking(fd.get());
#endif
    set_no_sigpipe(fd.get());
    return fd;
}

/// accept() giving a non-blocking, close-on-exec socket (accept4 where available). Returns the
/// new fd, or -1 with errno set (never throws: the accept loop sorts the errors). Fills `peer`
/// if not null.
inline int accept_socket(int listen_fd, address* peer) noexcept {
    address tmp;
    address& a = peer ? *peer : tmp;
    socklen_t len = address::capacity();
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || \
    defined(__DragonFly__)
    const int fd = ::accept4(listen_fd, a.data(), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return -1;
#else
    const int fd = ::accept(listen_fd, a.data(), &len);
    if (fd < 0) return -1;
    if (::fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
        const int e = errno;
        ::close(fd);
        errno = e;
        return -1;
    }
#endif
    a.resize(len);
    set_no_sigpipe(fd);
    return fd;
}

/// A close-on-exec pipe `{read end, write end}` (blocking: set_nonblocking the ends the loop
/// watches). Throws `std::system_error`.
inline std::pair<unique_fd, unique_fd> open_pipe() {
    int fds[2];
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || \
    defined(__DragonFly__)
    if (::pipe2(fds, O_CLOEXEC) != 0) throw_os_error(errno, "pipe2");
    return {unique_fd(fds[0]), unique_fd(fds[1])};
#else
    if (::pipe(fds) != 0) throw_os_error(errno, "pipe");
    std::pair<unique_fd, unique_fd> p{unique_fd(fds[0]), unique_fd(fds[1])};
    set_cloexec(fds[0]);
    set_cloexec(fds[1]);
    return p;
#endif
}

/// Where the system can (macOS: F_SETNOSIGPIPE), marks a pipe fd so that writes to it never
/// raise SIGPIPE; returns false elsewhere, where pipe_write does the blocking dance instead.
inline bool set_pipe_no_sigpipe([[maybe_unused]] int fd) noexcept {
#if defined(F_SETNOSIGPIPE)
    return ::fcntl(fd, F_SETNOSIGPIPE, 1) == 0;
#else
    return false;
#endif
}

/// send() that never raises SIGPIPE: returns what send returns (errno set on -1).
inline ssize_t socket_send(int fd, const char* data, std::size_t n) noexcept {
#if defined(MSG_NOSIGNAL)
    return ::send(fd, data, n, MSG_NOSIGNAL);
#else
    return ::send(fd, data, n, 0); // SO_NOSIGPIPE was set on the socket
#endif
}

/// write() to a pipe that never raises SIGPIPE (see the file comment): returns what write
/// returns (errno set on -1). `no_sigpipe_fd`: the fd was marked with set_pipe_no_sigpipe.
inline ssize_t pipe_write(int fd, const char* data, std::size_t n, bool no_sigpipe_fd) noexcept {
    if (no_sigpipe_fd) return ::write(fd, data, n);
#if !defined(_POSIX_REALTIME_SIGNALS) || _POSIX_REALTIME_SIGNALS <= 0
    // No sigtimedwait to take a generated SIGPIPE back: such systems must mark the fd with
    // set_pipe_no_sigpipe (macOS has F_SETNOSIGPIPE), or ignore SIGPIPE.
    return ::write(fd, data, n);
#else
    sigset_t pipe_set, old_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    // Block first, then look: a SIGPIPE pending now (for this thread or the process) belongs
    // to someone else and must not be consumed.
    const bool blocked = ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set) == 0;
    bool was_pending = false;
    if (blocked) {
        sigset_t pending;
        sigemptyset(&pending);
        if (::sigpending(&pending) == 0) was_pending = sigismember(&pending, SIGPIPE) == 1;
    }
    ssize_t r = ::write(fd, data, n);
    const int err = errno;
    if (blocked) {
        if (r < 0 && err == EPIPE && !was_pending) {
            // The write queued a SIGPIPE for this thread: take it back before unblocking.
            const timespec zero{0, 0};
            while (::sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
            }
        }
        if (sigismember(&old_set, SIGPIPE) != 1) ::pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
    }
    errno = err;
    return r;
#endif
}

/// Disables Nagle's algorithm on a TCP socket, as asyncio does for every stream socket. Errors
/// (not a TCP socket: a Unix socket) are ignored.
inline void set_tcp_nodelay(int fd) noexcept {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/// getsockname; the empty address on failure.
inline address socket_local_address(int fd) {
    address a;
    socklen_t len = address::capacity();
    if (::getsockname(fd, a.data(), &len) != 0) return address{};
    a.resize(len);
    return a;
}

/// getpeername; the empty address on failure (not connected).
inline address socket_peer_address(int fd) {
    address a;
    socklen_t len = address::capacity();
    if (::getpeername(fd, a.data(), &len) != 0) return address{};
    a.resize(len);
    return a;
}

/// The pending error of a socket (SO_ERROR), 0 if none; errno if getsockopt itself fails.
inline int socket_error(int fd) noexcept {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}

/// True if `fd` is a socket.
inline bool is_socket(int fd) noexcept {
    struct stat st{};
    return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/// accept() errors that mean "nothing (more) to accept now": asyncio ignores them.
inline bool is_transient_accept_error(int err) noexcept {
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED
#ifdef EPROTO
           || err == EPROTO
#endif
        ;
}

/// accept() errors that mean "out of a resource": asyncio stops accepting for a while.
inline bool is_resource_accept_error(int err) noexcept {
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

} // namespace corio::detail
// ---- end corio/detail/socket.hpp ----
// ---- begin corio/protocols.hpp (included from corio/detail/datagram_transport.hpp) ----
/// \file corio/protocols.hpp
/// Protocols: the callback interfaces transports call (asyncio.protocols). Derive, override
/// what you need, and give the connection functions a factory returning `std::shared_ptr<P>`:
///
/// ```
/// struct echo : corio::protocol {
///     corio::transport* t = nullptr;
///     void connection_made(corio::transport& tr) override { t = &tr; }
///     void data_received(std::string_view data) override { t->write(data); }
/// };
/// auto srv = co_await loop.create_server([] { return std::make_shared<echo>(); }, "127.0.0.1", 0);
/// ```
///
/// Callbacks run on the loop thread, one at a time, in the order asyncio documents:
/// `connection_made`, then any number of `data_received`, then at most one `eof_received`,
/// then exactly one `connection_lost` — except when `connection_made` itself throws (the
/// connection is aborted without it) or the loop is closed with the connection still open
/// (it is dropped without callbacks, as asyncio drops it). An exception escaping a callback goes to the loop's
/// exception handler. As in asyncio, a stream transport is then aborted (connection_lost gets
/// that exception), while a datagram endpoint keeps working.

// ---- begin corio/transports.hpp (included from corio/protocols.hpp) ----
/// \file corio/transports.hpp
/// Transports: asyncio's low-level connection objects (asyncio.transports). A transport owns a
/// socket or pipe and moves bytes; a *protocol* (corio/protocols.hpp) receives them through
/// callbacks. Streams (corio/streams.hpp) are built on this pair.
///
/// | asyncio | corio |
/// |---|---|
/// | `BaseTransport` | `corio::base_transport` |
/// | `ReadTransport` / `WriteTransport` | `read_transport` / `write_transport` |
/// | `Transport` | `corio::transport` |
/// | `DatagramTransport` | `corio::datagram_transport` |
///
/// Ownership: transports live in `std::shared_ptr`s. While a connection is open the event loop
/// holds one reference, so a transport outlives the `connection_lost` call that ends it; the
/// transport owns its protocol. The `transport&` given to `connection_made` stays valid at
/// least until `connection_lost` returns; `shared_from_this()` gives a lasting reference.
///
/// All members are loop-thread only, like the rest of the loop's objects.


#include <any>

namespace corio {

/// What every transport has (asyncio.BaseTransport).
class base_transport : public std::enable_shared_from_this<base_transport> {
public:
    virtual ~base_transport() = default;

    /// Closes the transport: data already written is still sent, then the protocol's
    /// `connection_lost(nullptr)` is called (on a later iteration, never inside close()).
    /// Idempotent.
    virtual void close() = 0;
    /// True once close() or abort() was called or the connection was lost.
    virtual bool is_closing() const noexcept = 0;

    /// Optional information about the transport, as asyncio's `get_extra_info(name)`:
    /// "peername" and "sockname" give a `corio::address`, "socket" and "pipe" the file
    /// descriptor (`int`). Unknown names give an empty `std::any`.
    virtual std::any get_extra_info(std::string_view name) const = 0;

    /// get_extra_info as a typed value: empty if the name is unknown or holds another type.
    template <class T>
    std::optional<T> extra_info(std::string_view name) const {
        std::any a = get_extra_info(name);
        if (const T* p = std::any_cast<T>(&a)) return *p;
        return std::nullopt;
    }

protected:
    ///@{
    /// Only derived classes make, copy and assign one (no slicing through the base).
    base_transport() = default;
    base_transport(const base_transport&) = default;
    base_transport& operator=(const base_transport&) = default;
    ///@}
};

/// The reading half (asyncio.ReadTransport).
class read_transport : public virtual base_transport {
public:
    /// Stops calling the protocol's data_received until resume_reading(). Idempotent.
    virtual void pause_reading() = 0;
    /// Resumes calling data_received. Idempotent.
    virtual void resume_reading() = 0;
    /// True unless reading is paused or the transport is closing.
    virtual bool is_reading() const noexcept = 0;
};

/// The writing half (asyncio.WriteTransport).
class write_transport : public virtual base_transport {
public:
    /// Queues `data` for sending and returns at once (never blocks; sends what it can right
    /// away). When the buffered size passes the high-water mark the protocol's
    /// `pause_writing()` is called, and `resume_writing()` once it drains below the low-water
    /// mark. Throws `std::runtime_error` after write_eof(); data written after the transport
    /// closed or the connection was lost is dropped (asyncio logs a warning instead).
    virtual void write(std::string_view data) = 0;
    /// Closes the write side once buffered data is sent (shutdown(SHUT_WR)); reading goes on.
    virtual void write_eof() = 0;
    /// True if write_eof() is supported (TCP, Unix stream sockets, pipes).
    virtual bool can_write_eof() const noexcept = 0;
    /// Closes at once: buffered data is discarded, connection_lost(nullptr) follows.
    virtual void abort() = 0;
    /// Bytes buffered and not yet handed to the kernel.
    virtual std::size_t get_write_buffer_size() const noexcept = 0;
    /// Sets the high- and low-water marks for pause_writing/resume_writing. Defaults as asyncio:
    /// high 64 KiB, low = high / 4; giving only `high` sets low = high / 4, giving only `low`
    /// sets high = 4 * low. Throws `std::invalid_argument` if low > high.
    virtual void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                         std::optional<std::size_t> low = std::nullopt) = 0;
    /// The current `{low, high}` water marks (asyncio's order).
    virtual std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept = 0;
};

/// A bidirectional stream transport: TCP, Unix stream socket (asyncio.Transport).
class transport : public read_transport, public write_transport {};

/// A datagram transport: UDP or Unix datagram socket (asyncio.DatagramTransport).
class datagram_transport : public virtual base_transport {
public:
    /// Sends one datagram to `to` (never blocks: queued if the socket is not writable).
    /// Errors of the send are given to the protocol's error_received.
    virtual void sendto(std::string_view data, const address& to) = 0;
    /// Sends one datagram to the remote address the endpoint was connected to. Throws
    /// `std::logic_error` if the endpoint has no remote address.
    virtual void sendto(std::string_view data) = 0;
    /// Closes at once, dropping queued datagrams.
    virtual void abort() = 0;
    /// Bytes queued and not yet sent.
    virtual std::size_t get_write_buffer_size() const noexcept = 0;
    /// Sets the water marks at which the protocol's pause_writing/resume_writing are called;
    /// same rules and defaults as write_transport::set_write_buffer_limits.
    virtual void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                         std::optional<std::size_t> low = std::nullopt) = 0;
    /// The current `{low, high}` water marks.
    virtual std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept = 0;
};

} // namespace corio
// ---- end corio/transports.hpp ----


namespace corio {

/// What every protocol has (asyncio.BaseProtocol).
class base_protocol {
public:
    virtual ~base_protocol() = default;
    /// The connection ended: `exc` is null for a normal close or EOF, else the error (a
    /// `std::system_error` for a reset, for instance). Called once (see the file comment).
    virtual void connection_lost(std::exception_ptr exc) { (void)exc; }
    /// The transport's write buffer went over its high-water mark: stop writing.
    virtual void pause_writing() {}
    /// The transport's write buffer drained below its low-water mark: writing may resume.
    virtual void resume_writing() {}

protected:
    ///@{
    /// Only derived classes make, copy and assign one (no slicing through the base).
    base_protocol() = default;
    base_protocol(const base_protocol&) = default;
    base_protocol& operator=(const base_protocol&) = default;
    ///@}
};

/// A stream protocol (asyncio.Protocol), for TCP and Unix stream connections.
class protocol : public base_protocol {
public:
    /// The connection is up; `t` stays valid at least until connection_lost returns.
    virtual void connection_made(transport& t) { (void)t; }
    /// Some bytes arrived (a view valid only during the call).
    virtual void data_received(std::string_view data) { (void)data; }
    /// The peer closed its write side. Return true to keep the transport open (half-closed:
    /// you may still write), false to have it closed (asyncio's default).
    virtual bool eof_received() { return false; }
};

/// A datagram protocol (asyncio.DatagramProtocol), for UDP and Unix datagram endpoints.
class datagram_protocol : public base_protocol {
public:
    /// The endpoint is ready; `t` stays valid at least until connection_lost returns.
    virtual void connection_made(datagram_transport& t) { (void)t; }
    /// One datagram arrived from `from` (the view is valid only during the call).
    virtual void datagram_received(std::string_view data, const address& from) {
        (void)data;
        (void)from;
    }
    /// A send or receive failed (an ICMP "port unreachable" shows up here as
    /// ECONNREFUSED); the endpoint stays open.
    virtual void error_received(std::exception_ptr exc) { (void)exc; }
};

} // namespace corio
// ---- end corio/protocols.hpp ----



namespace corio::detail {

// --- Helpers (the fd/socket plumbing itself is detail/socket.hpp's) ----------------------

/// asyncio removes a stale Unix socket file before binding a datagram endpoint to its path
/// (a leftover of an earlier run); anything else at that path is left alone (bind then fails
/// with EADDRINUSE).
inline void remove_stale_unix_socket(const address& a) {
    const std::string path = a.host();
    if (path.empty() || path[0] == '\0') return; // abstract namespace: no file
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
}

/// The receive buffer, one per thread (one loop per thread, and a buffer is only in use during
/// a datagram_received call, which cannot start another receive on the same thread).
inline char* datagram_read_buffer(std::size_t size) {
    thread_local std::unique_ptr<char[]> buf;
    if (!buf) buf.reset(new char[size]);
    return buf.get();
}

// --- The transport -------------------------------------------------------------------------

/// A UDP or Unix datagram endpoint: see the file comment.
class datagram_socket_transport final : public datagram_transport, public loop_resource {
public:
    /// Receive buffer size: every UDP payload fits (65507 bytes over IPv4, 65527 over IPv6).
    static constexpr std::size_t read_buffer_size = 65536;
    /// At most this many datagrams per readiness, then the loop runs other callbacks.
    static constexpr int max_reads_per_ready = 32;
    /// Counted per queued datagram on top of its payload in get_write_buffer_size(), so that
    /// a flood of empty datagrams still reaches the high-water mark.
    static constexpr std::size_t datagram_overhead = 8;

    /// Takes ownership of `fd` (non-blocking). `peer` is the remote address the socket is
    /// connected to, if any. Nothing happens until start().
    datagram_socket_transport(event_loop& loop, unique_fd fd,
                              std::shared_ptr<datagram_protocol> protocol,
                              std::optional<address> peer)
        : m_loop(&loop), m_fd(fd.release()), m_protocol(std::move(protocol)),
          m_peer(std::move(peer)) {
        m_sockname = query_sockname();
    }
    datagram_socket_transport(const datagram_socket_transport&) = delete;
    datagram_socket_transport& operator=(const datagram_socket_transport&) = delete;

    /// Never touches the loop: it may run while the loop closes, or after.
    ~datagram_socket_transport() override {
        if (m_fd >= 0) ::close(m_fd);
    }

    /// Calls connection_made (its exception propagates: the caller drops the transport, which
    /// closes the socket, and connection_lost is not called), then starts reading.
    void start() {
        // The loop owns the endpoint while it is open; if the loop closes first, loop_closed()
        // detaches it, so a handle kept past the loop never touches the loop.
        m_registry = &loop_registry::of(*m_loop);
        m_registry->add(shared_self());
        try {
            m_protocol->connection_made(*this);
        } catch (...) {
            // Undo whatever connection_made started (a queued send registers a writer that
            // would keep the transport alive): the socket closes when the caller drops us.
            m_closing = m_conn_lost = true;
            m_queue.clear();
            m_buffer_size = 0;
            stop_writing();
            m_protocol.reset();
            leave_registry();
            throw;
        }
        if (!m_closing) {
            auto self = shared_self();
            m_loop->add_reader(m_fd, [self] { self->read_ready(); });
            m_reading = true;
        }
    }

    // --- datagram_transport -------------------------------------------------------------

    void sendto(std::string_view data, const address& to) override {
        if (m_peer && to && !(to == *m_peer))
            throw std::invalid_argument("corio: invalid address: must be empty or " +
                                        m_peer->to_string() + " (the connected peer)");
        send_or_queue(data, to);
    }

    void sendto(std::string_view data) override {
        if (!m_peer)
            throw std::logic_error(
                "corio: sendto(data) without an address needs a connected endpoint "
                "(create_datagram_endpoint with a remote_addr)");
        send_or_queue(data, address{});
    }

    void close() override {
        if (m_closing) return;
        auto keep = shared_self(); // removing the reader may drop the loop's reference
        m_closing = true;
        stop_reading();
        if (m_queue.empty()) {
            m_conn_lost = true;
            stop_writing();
            schedule_connection_lost(nullptr);
        }
    }

    void abort() override { force_close(nullptr); }

    bool is_closing() const noexcept override { return m_closing; }

    std::any get_extra_info(std::string_view name) const override {
        if (name == "sockname") {
            if (m_fd >= 0) {
                if (address a = query_sockname()) return a;
            }
            if (m_sockname) return m_sockname;
            return {};
        }
        if (name == "peername") {
            if (m_peer) return *m_peer;
            return {};
        }
        if (name == "socket") {
            if (m_fd >= 0) return m_fd;
            return {};
        }
        return {};
    }

    std::size_t get_write_buffer_size() const noexcept override { return m_buffer_size; }

    // --- Flow control (asyncio's _FlowControlMixin; not yet in the datagram_transport base) ---

    /// Sets the water marks; see write_transport::set_write_buffer_limits.
    void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                 std::optional<std::size_t> low = std::nullopt) override {
        std::size_t h = high ? *high : (low ? 4 * *low : std::size_t{64 * 1024});
        std::size_t l = low ? *low : h / 4;
        if (l > h) throw std::invalid_argument("corio: high must be >= low must be >= 0");
        m_high = h;
        m_low = l;
        maybe_pause_protocol();
    }
    /// `{low, high}`.
    std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override {
        return {m_low, m_high};
    }

    /// The protocol (null once connection_lost has run).
    const std::shared_ptr<datagram_protocol>& protocol() const noexcept { return m_protocol; }

private:
    struct queued {
        std::string data;
        address to;
    };

    std::shared_ptr<datagram_socket_transport> shared_self() {
        return std::shared_ptr<datagram_socket_transport>(shared_from_this(), this);
    }

    address query_sockname() const {
        address a;
        socklen_t len = address::capacity();
        if (::getsockname(m_fd, a.data(), &len) != 0) return {};
        a.resize(len);
        return a;
    }

    void report(const char* what, std::exception_ptr e) noexcept {
        if (m_loop && !m_loop->is_closed()) m_loop->call_exception_handler({what, std::move(e), {}});
        else event_loop::print_report({what, std::move(e), {}});
    }

    /// error_received from inside the loop's callbacks: its exception is reported.
    void deliver_error(int err, const char* what) noexcept {
        if (!m_protocol) return;
        try {
            m_protocol->error_received(
                std::make_exception_ptr(std::system_error(err, std::generic_category(), what)));
        } catch (...) {
            report("Exception in callback datagram_protocol::error_received",
                   std::current_exception());
        }
    }

    void read_ready() {
        if (m_conn_lost || m_closing) return;
        auto keep = shared_self();
        char* buf = datagram_read_buffer(read_buffer_size);
        for (int i = 0; i < max_reads_per_ready && !m_closing; ++i) {
            address from;
            socklen_t len = address::capacity();
            const ssize_t n = ::recvfrom(m_fd, buf, read_buffer_size, 0, from.data(), &len);
            if (n < 0) {
                const int err = errno;
                if (err == EINTR) continue;
                if (err == EAGAIN || err == EWOULDBLOCK) return;
                deliver_error(err, "recvfrom");
                continue;
            }
            from.resize(len);
            const std::size_t size = std::min(static_cast<std::size_t>(n), read_buffer_size);
            try {
                m_protocol->datagram_received(std::string_view(buf, size), from);
            } catch (...) {
                report("Exception in callback datagram_protocol::datagram_received",
                       std::current_exception());
            }
        }
    }

    /// Sends one datagram now: 0 on success, else the errno (EAGAIN: try later).
    int send_one(std::string_view data, const address& to) noexcept {
#ifdef MSG_NOSIGNAL
        constexpr int flags = MSG_NOSIGNAL;
#else
        constexpr int flags = 0;
#endif
        for (;;) {
            const ssize_t n = m_peer ? ::send(m_fd, data.data(), data.size(), flags)
                                     : ::sendto(m_fd, data.data(), data.size(), flags, to.data(),
                                                to.size());
            if (n >= 0) return 0;
            if (errno != EINTR) return errno == EWOULDBLOCK ? EAGAIN : errno;
        }
    }

    void send_or_queue(std::string_view data, const address& to) {
        if (m_closing) return; // asyncio drops (and after a few, logs) sends on a closed transport
        if (m_queue.empty()) {
            const int err = send_one(data, to);
            if (err == 0) return;
            if (err != EAGAIN) {
                // As asyncio: called from inside sendto; what it throws reaches the caller.
                m_protocol->error_received(std::make_exception_ptr(
                    std::system_error(err, std::generic_category(), m_peer ? "send" : "sendto")));
                return;
            }
            auto self = shared_self();
            m_loop->add_writer(m_fd, [self] { self->write_ready(); });
            m_writing = true;
        }
        m_queue.push_back(queued{std::string(data), to});
        m_buffer_size += data.size() + datagram_overhead;
        maybe_pause_protocol();
    }

    void write_ready() {
        if (m_conn_lost) return;
        auto keep = shared_self();
        while (!m_queue.empty()) {
            queued& q = m_queue.front();
            const int err = send_one(q.data, q.to);
            if (err == EAGAIN) break;
            m_buffer_size -= q.data.size() + datagram_overhead;
            m_queue.pop_front();
            if (err != 0) {
                // As asyncio: report, then resume on the next writability (still watched).
                deliver_error(err, m_peer ? "send" : "sendto");
                return;
            }
        }
        maybe_resume_protocol(); // may queue more
        if (m_queue.empty()) {
            stop_writing();
            if (m_closing && !m_conn_lost) {
                m_conn_lost = true;
                call_connection_lost(nullptr); // inside a writer callback: not inside close()
            }
        }
    }

    void maybe_pause_protocol() {
        if (m_buffer_size <= m_high || m_protocol_paused || !m_protocol) return;
        m_protocol_paused = true;
        try {
            m_protocol->pause_writing();
        } catch (...) {
            report("protocol.pause_writing() failed", std::current_exception());
        }
    }

    void maybe_resume_protocol() {
        if (!m_protocol_paused || m_buffer_size > m_low || !m_protocol) return;
        m_protocol_paused = false;
        try {
            m_protocol->resume_writing();
        } catch (...) {
            report("protocol.resume_writing() failed", std::current_exception());
        }
    }

    void stop_reading() noexcept {
        if (!m_reading) return;
        m_reading = false;
        if (m_loop && !m_loop->is_closed()) m_loop->remove_reader(m_fd);
    }
    void stop_writing() noexcept {
        if (!m_writing) return;
        m_writing = false;
        if (m_loop && !m_loop->is_closed()) m_loop->remove_writer(m_fd);
    }

    void force_close(std::exception_ptr exc) {
        if (m_conn_lost) return;
        auto keep = shared_self();
        if (!m_queue.empty()) {
            m_queue.clear();
            m_buffer_size = 0;
        }
        stop_writing();
        m_closing = true;
        stop_reading();
        m_conn_lost = true;
        schedule_connection_lost(std::move(exc));
    }

    void schedule_connection_lost(std::exception_ptr exc) {
        if (!m_loop || m_loop->is_closed()) { // nothing can be called back any more: let go
            close_socket();
            m_protocol.reset();
            leave_registry();
            return;
        }
        auto self = shared_self();
        m_loop->call_soon([self, exc] { self->call_connection_lost(exc); });
    }

    void call_connection_lost(std::exception_ptr exc) noexcept {
        std::shared_ptr<datagram_protocol> p = std::move(m_protocol);
        if (p) {
            try {
                p->connection_lost(std::move(exc));
            } catch (...) {
                report("Exception in callback datagram_protocol::connection_lost",
                       std::current_exception());
            }
        }
        close_socket();
        leave_registry();
        // `p` is released here: the transport no longer keeps its protocol (breaks a
        // protocol -> transport reference cycle, as asyncio's `self._protocol = None`).
    }

    /// The loop no longer owns the endpoint (the caller still holds a reference to it).
    void leave_registry() noexcept {
        if (m_registry) {
            std::shared_ptr<loop_resource> keep = m_registry->remove(this);
            m_registry = nullptr;
            // `keep` may be the last reference: callers hold their own (`self`) around this.
            (void)keep;
        }
    }

    // --- loop_resource ------------------------------------------------------------------

    /// The loop is closing with the endpoint still open: drop everything without callbacks,
    /// and forget the loop (a handle kept past it must never touch it).
    void loop_closed() noexcept override {
        m_loop = nullptr;
        m_registry = nullptr;
        m_closing = m_conn_lost = true;
        m_reading = m_writing = false;
        m_queue.clear();
        m_buffer_size = 0;
        close_socket();
        m_protocol.reset();
    }

    void close_socket() noexcept {
        if (m_fd >= 0) {
            m_sockname = query_sockname();
            ::close(std::exchange(m_fd, -1));
        }
    }

    event_loop* m_loop; ///< null once the loop closed (loop_closed)
    loop_registry* m_registry = nullptr;
    int m_fd;
    std::shared_ptr<datagram_protocol> m_protocol;
    std::optional<address> m_peer;
    address m_sockname;
    std::deque<queued> m_queue;
    std::size_t m_buffer_size = 0;
    std::size_t m_high = 64 * 1024;
    std::size_t m_low = 16 * 1024;
    bool m_reading = false;
    bool m_writing = false;
    bool m_closing = false;         ///< close() or abort() was called
    bool m_conn_lost = false;       ///< connection_lost is scheduled (or done)
    bool m_protocol_paused = false; ///< pause_writing() was called, resume_writing() not yet
};

} // namespace corio::detail
// ---- end corio/detail/datagram_transport.hpp ----



namespace corio {

/// Options of `create_datagram_endpoint` (asyncio's keyword arguments).
struct datagram_options {
    /// AF_INET, AF_INET6 or AF_UNIX; AF_UNSPEC (the default) takes the family of `local_addr`
    /// or `remote_addr`. Needed only to make an endpoint with neither address.
    int family = AF_UNSPEC;
    /// SO_REUSEPORT: several endpoints may bind the same address and port (the kernel spreads
    /// the datagrams). Throws `std::invalid_argument` where the system has no SO_REUSEPORT.
    bool reuse_port = false;
    /// SO_BROADCAST: allow sending to broadcast addresses.
    bool allow_broadcast = false;
};

/// asyncio's `loop.create_datagram_endpoint(protocol_factory, local_addr, remote_addr, ...)`:
/// creates a datagram socket of the family of the addresses (UDP over IPv4/IPv6, or a Unix
/// datagram socket for `address::unix_path`), binds it to `local_addr` if given (port 0 picks
/// a free port: read it back with `get_extra_info("sockname")`), connects it to
/// `remote_addr` if given (then only that peer's datagrams arrive and `sendto(data)` works),
/// calls `factory()` for the protocol, then the protocol's `connection_made(transport)`, and
/// starts receiving. See the file comment for the transport's behaviour.
///
/// Returns (the task gives) `{transport, protocol}`, as asyncio's tuple; `P` is the element
/// type of the `std::shared_ptr` the factory returns, a `datagram_protocol`. The transport
/// stays alive while open (the loop holds it) even if the caller drops both pointers.
///
/// Throws `std::invalid_argument` if neither address nor `opts.family` gives a family, or the
/// two addresses' families differ; `std::system_error` if socket, bind or connect fails (e.g.
/// EADDRINUSE), the socket then being closed; whatever `factory()` or `connection_made`
/// throws (the socket is closed, connection_lost is not called).
///
/// Cancellation: the task never suspends (binding and connecting a datagram socket do not
/// block), so it completes once started; a task cancelled before it starts creates nothing.
///
/// GCC 12 (PR 100611): a factory lambda that captures something non-trivially destructible
/// (a shared_ptr, a string) must be named before the `co_await` statement, not written inside
/// it.
template <class Factory>
auto create_datagram_endpoint(Factory factory, std::optional<address> local_addr = std::nullopt,
                              std::optional<address> remote_addr = std::nullopt,
                              datagram_options opts = {})
    -> task<std::pair<std::shared_ptr<datagram_transport>,
                      typename std::invoke_result_t<Factory&>>> {
    using protocol_ptr = std::invoke_result_t<Factory&>;
    using P = typename protocol_ptr::element_type;
    static_assert(std::is_same_v<protocol_ptr, std::shared_ptr<P>>,
                  "corio: the protocol factory must return a std::shared_ptr<P>");
    static_assert(std::is_base_of_v<datagram_protocol, P>,
                  "corio: a datagram endpoint's protocol must derive from corio::datagram_protocol");

    event_loop& loop = get_running_loop();
    if (local_addr && !*local_addr) local_addr.reset(); // an empty address means "none"
    if (remote_addr && !*remote_addr) remote_addr.reset();

    int family = opts.family;
    for (const std::optional<address>* a : {&local_addr, &remote_addr}) {
        if (!*a) continue;
        if (family == AF_UNSPEC) family = (*a)->family();
        else if ((*a)->family() != family)
            throw std::invalid_argument("corio: create_datagram_endpoint: address " +
                                        (*a)->to_string() + " is not of the endpoint's family");
    }
    if (family == AF_UNSPEC)
        throw std::invalid_argument(
            "corio: create_datagram_endpoint: unexpected address family (give local_addr, "
            "remote_addr or datagram_options::family)");

    detail::unique_fd fd = detail::open_socket(family, SOCK_DGRAM);
    if (opts.reuse_port) {
#ifdef SO_REUSEPORT
        detail::set_socket_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "setsockopt(SO_REUSEPORT)");
#else
        throw std::invalid_argument("corio: reuse_port is not supported on this system");
#endif
    }
    if (opts.allow_broadcast)
        detail::set_socket_option(fd.get(), SOL_SOCKET, SO_BROADCAST, 1, "setsockopt(SO_BROADCAST)");
    if (local_addr) {
        if (family == AF_UNIX) detail::remove_stale_unix_socket(*local_addr);
        if (::bind(fd.get(), local_addr->data(), local_addr->size()) != 0) {
            const int e = errno; // before the message is built: that may change errno
            detail::throw_os_error(e, "error while attempting to bind on address " +
                                          local_addr->to_string());
        }
    }
    if (remote_addr) {
        int rc;
        do {
            rc = ::connect(fd.get(), remote_addr->data(), remote_addr->size());
        } while (rc != 0 && errno == EINTR);
        if (rc != 0) {
            const int e = errno;
            detail::throw_os_error(e, "connect to " + remote_addr->to_string());
        }
    }

    protocol_ptr proto = factory();
    if (!proto) throw std::invalid_argument("corio: the protocol factory returned a null pointer");
    auto tr = std::make_shared<detail::datagram_socket_transport>(loop, std::move(fd), proto,
                                                                  std::move(remote_addr));
    tr->start();
    co_return std::pair<std::shared_ptr<datagram_transport>, protocol_ptr>(std::move(tr),
                                                                           std::move(proto));
}

/// \cond INTERNAL
template <class Factory, class... Args>
auto event_loop::create_datagram_endpoint(Factory&& factory, Args&&... args) {
    return corio::create_datagram_endpoint(std::forward<Factory>(factory),
                                           std::forward<Args>(args)...);
}
/// \endcond

} // namespace corio
// ---- end corio/datagram.hpp ----
// ---- begin corio/executor.hpp (included from corio/corio.hpp) ----
/// \file corio/executor.hpp
/// Executors: asyncio's `loop.run_in_executor`, `asyncio.to_thread` and
/// `concurrent.futures.ThreadPoolExecutor`, for blocking or CPU-heavy calls that must not freeze
/// the event loop.
///
///     long heavy_calculus();               // def heavy_calculus(): ...   (CPU work)
///
///     corio::task<> handler() {            // async def handler():
///         auto& loop = corio::get_running_loop();
///         // nullptr: the default pool     //     # executor=None: the default pool
///         long r = co_await loop.run_in_executor(nullptr, heavy_calculus);
///                                          //     r = await loop.run_in_executor(None, heavy_calculus)
///         long s = co_await corio::to_thread(heavy_calculus);
///                                          //     s = await asyncio.to_thread(heavy_calculus)
///     }
///
/// While the call runs on a worker thread, the loop keeps running every other task; the result
/// (or the exception the function threw) comes back on the loop's thread, where the awaiting
/// coroutine resumes. C++ has no GIL, so where asyncio programs reach for a ProcessPoolExecutor
/// for CPU work, corio's thread pool is the counterpart.
///
/// ## What runs where
/// - `fn` and its arguments are decay-copied (moved from rvalues) into the job, as `std::thread`
///   does: pass `std::ref(x)` to hand a reference over (and keep `x` alive until the job ends).
///   They are called, and destroyed, on a worker thread.
/// - The `future<R>` run_in_executor returns belongs to the loop; only the loop's thread touches
///   it. A worker posts the outcome with `call_soon_threadsafe`.
/// - A virtual-time loop (corio/testing.hpp) waits for outstanding jobs for real instead of
///   jumping to its next timer (the jobs are bracketed by `begin_external_work` /
///   `end_external_work`).
///
/// ## Cancellation (as asyncio's wrap_future does it)
/// Cancelling the returned future, or the task awaiting it (`co_await` cancels the awaited
/// future), cancels the call at once on the loop side: the awaiting task sees `cancelled_error`.
/// A job that has not started yet then never runs (its function and arguments are just
/// destroyed); a job already running cannot be interrupted: it runs to completion on its worker
/// and its result (or exception) is dropped unseen when it reaches the loop. Nothing leaks
/// either way.
///
/// ## The loop closes while jobs still run
/// `loop.close()` shuts the default executor down *without waiting* (asyncio's
/// `BaseEventLoop.close` does `shutdown(wait=False)`): queued jobs still run, and a job still
/// running finishes. Workers never hold the loop itself: they post through a shared token whose
/// pointer to the loop `close()` clears under a mutex, so a job that finishes after `close()`
/// (or after the loop was destroyed) has its outcome dropped silently. The loop keeps its
/// reference to the default executor until it is destroyed; if it is the last owner, the pool's
/// destructor then waits for the jobs still running (a C++ thread cannot be abandoned safely).
/// `corio::run` does not get there: like asyncio.run, it awaits `shutdown_default_executor()`
/// (which waits for the jobs) before closing the loop.


#include <condition_variable>
#include <future>
#include <tuple>

namespace corio {

/// \cond INTERNAL
namespace detail {

/// What executor_job holds: the work, and what to do if it is dropped without running.
struct job_base {
    virtual ~job_base() = default;
    /// Runs the work (once).
    virtual void run() = 0;
    /// The executor dropped the job unrun (shutdown with cancel_futures): tell whoever waits.
    virtual void discard() noexcept {}
};

template <class F>
struct plain_job final : job_base {
    template <class G>
    explicit plain_job(G&& g) : fn(std::forward<G>(g)) {}
    void run() override { fn(); }
    F fn;
};

/// executor::submit's job: the function and arguments live here, not in the std::future's
/// shared state, so they are destroyed as soon as the job has run or was dropped.
template <class R, class F, class... A>
struct submit_job final : job_base {
    template <class G, class... B>
    explicit submit_job(G&& g, B&&... b) : fn(std::forward<G>(g)), args(std::forward<B>(b)...) {}
    void run() override {
        try {
            if constexpr (std::is_void_v<R>) {
                std::apply([this](auto&... a) { std::invoke(std::move(fn), std::move(a)...); }, args);
                promise.set_value();
            } else {
                promise.set_value(std::apply(
                    [this](auto&... a) -> R { return std::invoke(std::move(fn), std::move(a)...); },
                    args));
            }
        } catch (...) {
            promise.set_exception(std::current_exception());
        }
    }
    // discard(): destroying the promise unset gives the future broken_promise.
    std::promise<R> promise;
    F fn;
    std::tuple<A...> args;
};

} // namespace detail
/// \endcond

/// One unit of work for an executor: a type-erased, move-only `void()` callable.
///
/// An executor either calls it once (on any thread) or destroys it without calling it. For the
/// jobs `run_in_executor` and `to_thread` make, destroying one unrun cancels the loop's future of
/// that call (as `ThreadPoolExecutor.shutdown(cancel_futures=True)` cancels the futures of queued
/// work); for `executor::submit`, its `std::future` gets `std::future_error` (broken_promise).
class executor_job {
public:
    /// An empty job.
    executor_job() noexcept = default;
    /// Wraps any callable `fn()` (moved or copied in). Throws what allocating it throws.
    template <class F>
        requires(!std::is_same_v<std::remove_cvref_t<F>, executor_job> &&
                 std::is_invocable_v<std::decay_t<F>&>)
    explicit executor_job(F&& fn)
        : m_job(std::make_unique<detail::plain_job<std::decay_t<F>>>(std::forward<F>(fn))) {}
    ///@{
    /// Moves the work; the source becomes empty.
    executor_job(executor_job&& o) noexcept = default;
    executor_job& operator=(executor_job&& o) noexcept {
        if (this != &o) {
            reset();
            m_job = std::move(o.m_job);
        }
        return *this;
    }
    ///@}
    executor_job(const executor_job&) = delete;
    executor_job& operator=(const executor_job&) = delete;
    /// Destroys the work; a job that never ran counts as cancelled (see the class comment).
    ~executor_job() { reset(); }

    /// Runs the work, once: the job is empty afterwards (its callable is destroyed before this
    /// returns). Rethrows what the callable throws (the jobs of `run_in_executor` and `submit`
    /// never throw: they keep the exception for their future). Throws `std::bad_function_call`
    /// on an empty job.
    void operator()() {
        std::unique_ptr<detail::job_base> j = std::move(m_job);
        if (!j) throw std::bad_function_call();
        j->run();
    }

    /// Drops the work without running it (as destroying the job does).
    void reset() noexcept {
        if (std::unique_ptr<detail::job_base> j = std::move(m_job)) j->discard();
    }

    /// True unless empty (moved from, run or reset).
    explicit operator bool() const noexcept { return m_job != nullptr; }

    /// \cond INTERNAL
    explicit executor_job(std::unique_ptr<detail::job_base> j) noexcept : m_job(std::move(j)) {}
    /// \endcond

private:
    std::unique_ptr<detail::job_base> m_job;
};

/// The interface `run_in_executor` takes (asyncio's `concurrent.futures.Executor`): something
/// that runs jobs on other threads. Implement `execute` and `shutdown` to plug in your own;
/// `thread_pool_executor` is corio's.
///
/// Every member must be safe to call from any thread.
class executor {
public:
    virtual ~executor() = default;

    /// Queues `job` to run on some thread: it must eventually be called once, or destroyed
    /// unrun (which cancels what waits for it). Throws `std::runtime_error("cannot schedule new
    /// futures after shutdown")` once `shutdown` was called (then `job` is not run).
    virtual void execute(executor_job job) = 0;

    /// Stops accepting jobs (asyncio's `Executor.shutdown`). Jobs already queued still run,
    /// unless `cancel_futures` is true: then queued jobs that have not started are dropped
    /// unrun. With `wait`, returns once every job has finished and the threads have exited.
    /// Idempotent (a later call may still wait, or cancel what is queued).
    virtual void shutdown(bool wait = true, bool cancel_futures = false) = 0;

    /// Runs `fn(args...)` as a job and returns a `std::future` of its result, usable from any
    /// thread without a loop (asyncio's `Executor.submit`). `fn` and `args` are decay-copied as
    /// std::thread does (use `std::ref` for references). The future rethrows what `fn` throws;
    /// it throws `std::future_error` (broken_promise) if the job was dropped unrun by
    /// `shutdown(..., cancel_futures = true)`. Throws what `execute` throws (after shutdown:
    /// `std::runtime_error`).
    template <class F, class... A>
    auto submit(F&& fn, A&&... args)
        -> std::future<std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>> {
        using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>;
        using job_t = detail::submit_job<R, std::decay_t<F>, std::decay_t<A>...>;
        auto job = std::make_unique<job_t>(std::forward<F>(fn), std::forward<A>(args)...);
        std::future<R> result = job->promise.get_future();
        execute(executor_job(std::unique_ptr<detail::job_base>(std::move(job))));
        return result;
    }

protected:
    /// \cond INTERNAL
    executor() = default;
    /// \endcond
};

/// \cond INTERNAL
namespace detail {

/// A thread_pool_executor's state, shared with its worker threads (so a worker never depends on
/// the executor object, which may be destroyed by one of its own jobs).
struct pool_state {
    explicit pool_state(std::size_t max) : max_workers(max) {}
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<executor_job> queue;  // guarded by mutex
    std::vector<std::thread> threads; // guarded by mutex
    std::size_t idle = 0;             // workers waiting for a job; guarded by mutex
    std::size_t max_workers;
    bool shut_down = false; // guarded by mutex
    std::mutex join_mutex;  // one joiner at a time; later ones wait for it
};

/// The pool whose worker is the calling thread, if any (a job calling shutdown(wait) on its
/// own pool cannot wait for itself).
inline thread_local const pool_state* t_current_pool = nullptr;

} // namespace detail
/// \endcond

/// asyncio's (concurrent.futures') `ThreadPoolExecutor`: a pool of up to `max_workers` threads
/// running jobs in the order they were queued.
///
/// Threads are started lazily, as CPython does: a job queued while no worker is idle starts a
/// new thread, until there are `max_workers`; idle threads wait for the next job and live until
/// shutdown. Thread safe: any thread may submit, execute and shut down. The destructor is
/// `shutdown(true)`: it waits for every queued and running job.
///
/// A job that throws when run (only a plain `executor_job` made from a callable can: `submit`
/// and `run_in_executor` keep exceptions for their futures) is reported on stderr as "corio:
/// Exception in executor job: ..." and the worker carries on.
class thread_pool_executor final : public executor {
public:
    /// CPython's default: min(32, number of CPUs + 4).
    static std::size_t default_max_workers() noexcept {
        const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
        return std::min<std::size_t>(32, std::size_t{cpus} + 4);
    }

    /// A pool of at most `max_workers` threads (none started yet). Throws
    /// `std::invalid_argument` for 0 (asyncio's ValueError).
    explicit thread_pool_executor(std::size_t max_workers = default_max_workers())
        : m_state(make_state(max_workers)) {}
    thread_pool_executor(const thread_pool_executor&) = delete;
    thread_pool_executor& operator=(const thread_pool_executor&) = delete;

    /// `shutdown(true)`: waits for every queued and running job. (Destroyed by one of its own
    /// jobs, it cannot wait for itself: its threads then finish the queue and exit on their own.)
    ~thread_pool_executor() override {
        try {
            stop(true, false, true);
        } catch (...) {
            // join() failing is a broken system; nothing sensible to do in a destructor.
        }
    }

    /// See executor::execute. Starts a thread if no worker is idle and fewer than
    /// `max_workers()` exist. Throws `std::runtime_error("cannot schedule new futures after
    /// shutdown")` after shutdown, or the `std::system_error` of starting the first thread.
    void execute(executor_job job) override {
        detail::pool_state& s = *m_state;
        {
            std::lock_guard lock(s.mutex);
            if (s.shut_down) throw std::runtime_error("cannot schedule new futures after shutdown");
            // After queueing, more jobs than idle workers: start one more thread if allowed.
            if (s.queue.size() >= s.idle && s.threads.size() < s.max_workers) {
                try {
                    s.threads.emplace_back(&thread_pool_executor::worker_main, m_state);
                } catch (...) {
                    if (s.threads.empty()) throw; // nobody would ever run the job
                }
            }
            s.queue.push_back(std::move(job));
            // Under the lock: once it is released, the job may run, destroy this executor and
            // let the last worker exit, freeing `s` (a job may own its executor).
            s.wake.notify_one();
        }
    }

    /// See executor::shutdown. Called from one of this pool's own jobs, it never waits.
    void shutdown(bool wait = true, bool cancel_futures = false) override {
        stop(wait, cancel_futures, false);
    }

    /// The limit given to the constructor.
    std::size_t max_workers() const noexcept { return m_state->max_workers; }

    /// How many worker threads exist now (started lazily; 0 before the first job, and once a
    /// shutdown that waited has joined them).
    std::size_t thread_count() const {
        std::lock_guard lock(m_state->mutex);
        return m_state->threads.size();
    }

private:
    static std::shared_ptr<detail::pool_state> make_state(std::size_t max_workers) {
        if (max_workers == 0) throw std::invalid_argument("max_workers must be greater than 0");
        return std::make_shared<detail::pool_state>(max_workers);
    }

    static void worker_main(std::shared_ptr<detail::pool_state> s) {
        detail::t_current_pool = s.get();
        std::unique_lock lock(s->mutex);
        for (;;) {
            if (!s->queue.empty()) {
                executor_job job = std::move(s->queue.front());
                s->queue.pop_front();
                lock.unlock();
                try {
                    job();
                } catch (...) {
                    event_loop::print_report({"Exception in executor job", std::current_exception(), {}});
                }
                lock.lock();
                continue;
            }
            if (s->shut_down) return;
            ++s->idle;
            s->wake.wait(lock);
            --s->idle;
        }
    }

    void stop(bool wait, bool cancel_futures, bool destroying) {
        detail::pool_state& s = *m_state;
        std::deque<executor_job> dropped;
        {
            std::lock_guard lock(s.mutex);
            s.shut_down = true;
            if (cancel_futures) dropped.swap(s.queue);
        }
        s.wake.notify_all();
        dropped.clear(); // unrun: their futures are cancelled
        if (!wait) return;
        if (detail::t_current_pool == &s) {
            // A job of this pool: waiting would wait for itself. If the executor object is going
            // away, its threads must not be left joinable: they finish the queue and exit alone
            // (they own the shared state).
            if (destroying) {
                std::vector<std::thread> threads;
                {
                    std::lock_guard lock(s.mutex);
                    threads.swap(s.threads);
                }
                for (std::thread& t : threads) t.detach();
            }
            return;
        }
        std::lock_guard join_lock(s.join_mutex);
        std::vector<std::thread> threads;
        {
            std::lock_guard lock(s.mutex);
            threads.swap(s.threads);
        }
        for (std::thread& t : threads) t.join();
    }

    std::shared_ptr<detail::pool_state> m_state;
};

/// \cond INTERNAL
namespace detail {

/// What workers post through: the loop, until close() clears it (under the mutex, so a worker
/// is either done with call_soon_threadsafe or never starts it).
struct executor_link {
    explicit executor_link(event_loop* l) noexcept : loop(l) {}
    std::mutex mutex;
    event_loop* loop; // guarded by mutex; null once the loop is closed

    /// Schedules `fn` on the loop; false if the loop is closed (then `fn` never runs, and is
    /// destroyed on the calling thread).
    template <class F>
    bool post(F&& fn) noexcept {
        std::lock_guard lock(mutex);
        if (!loop) return false;
        try {
            loop->call_soon_threadsafe(std::forward<F>(fn));
            return true;
        } catch (...) { // closed meanwhile, or out of memory: nobody can be told
            return false;
        }
    }
};

/// One run_in_executor call, shared by the loop's future and the worker's job. Only `cancelled`
/// is touched by workers; the rest belongs to the loop's thread.
struct executor_call {
    explicit executor_call(event_loop& l) noexcept : loop(&l) {}

    /// Set on the loop thread when the future is cancelled; a worker skips the job if set.
    std::atomic<bool> cancelled{false};

    event_loop* loop;              ///< used on the loop thread only, while it is open
    future_core* target = nullptr; ///< the future, while it exists
    bool external_open = false;    ///< begin_external_work called, end_external_work not yet

    void close_external() noexcept {
        if (external_open) {
            external_open = false;
            loop->end_external_work();
        }
    }
};

/// The future run_in_executor returns: cancelling it stops a job that has not started.
template <class V>
class executor_future_state final : public future_state<V> {
public:
    executor_future_state(event_loop& loop, std::shared_ptr<executor_call> call)
        : future_state<V>(&loop), m_call(std::move(call)) {
        m_call->target = this;
    }
    ~executor_future_state() override { m_call->target = nullptr; }

    bool cancel(std::string msg) override {
        if (this->done()) return false;
        if (!this->loop()) return future_state<V>::cancel(std::move(msg)); // closed: throws
        m_call->cancelled.store(true, std::memory_order_release);
        const bool r = future_state<V>::cancel(std::move(msg));
        m_call->close_external(); // the loop no longer waits for the job
        return r;
    }

private:
    std::shared_ptr<executor_call> m_call;
};

/// The job of one run_in_executor call.
template <class V, class F, class... A>
class call_job final : public job_base {
public:
    template <class G, class... B>
    call_job(std::shared_ptr<executor_link> link, std::shared_ptr<executor_call> call, G&& fn,
             B&&... args)
        : m_link(std::move(link)), m_call(std::move(call)), m_fn(std::forward<G>(fn)),
          m_args(std::forward<B>(args)...) {}

    void run() override {
        if (m_call->cancelled.load(std::memory_order_acquire)) return; // cancelled before start
        std::optional<slot> value;
        std::exception_ptr error;
        try {
            if constexpr (std::is_void_v<V>) {
                std::apply([this](auto&... a) { std::invoke(std::move(m_fn), std::move(a)...); },
                           m_args);
                value.emplace(true);
            } else {
                value.emplace(std::apply(
                    [this](auto&... a) -> decltype(auto) {
                        return std::invoke(std::move(m_fn), std::move(a)...);
                    },
                    m_args));
            }
        } catch (...) {
            error = std::current_exception();
        }
        // Runs on the loop thread, if the loop is still open.
        m_link->post([c = std::move(m_call), v = std::move(value), e = std::move(error)]() mutable {
            deliver(*c, v, e);
        });
    }

    void discard() noexcept override {
        if (m_call->cancelled.load(std::memory_order_acquire)) return;
        m_link->post([c = std::move(m_call)] {
            c->close_external();
            if (c->target && !c->target->done()) c->target->cancel();
        });
    }

private:
    using slot = std::conditional_t<std::is_void_v<V>, bool, V>;

    /// On the loop thread: completes the future, unless it was cancelled or nobody holds it.
    static void deliver(executor_call& c, std::optional<slot>& v, std::exception_ptr& e) {
        c.close_external();
        auto* st = static_cast<executor_future_state<V>*>(c.target);
        if (!st || st->done()) return;
        if (e) {
            st->set_exception(std::move(e));
        } else if constexpr (std::is_void_v<V>) {
            st->set_value();
        } else {
            st->set_value(std::move(*v));
        }
    }

    std::shared_ptr<executor_link> m_link;
    std::shared_ptr<executor_call> m_call;
    F m_fn;
    std::tuple<A...> m_args;
};

/// What run_in_executor's future holds for `fn(args...)` (a reference result is copied).
template <class F, class... A>
using executor_result_t =
    std::remove_cvref_t<std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>>;

/// A prepared call: its future, and the job to hand to an executor.
template <class V>
struct prepared_call {
    future<V> fut;
    executor_job job;
    std::shared_ptr<executor_call> call;
};

/// The loop's executor members (friend of event_loop).
struct executor_ops {
    /// close()'s hook: cut the workers off the loop, then shut the default executor down
    /// without waiting (asyncio's BaseEventLoop.close).
    static void on_close(event_loop& loop) noexcept {
        if (loop.m_executor_link) {
            std::lock_guard lock(loop.m_executor_link->mutex);
            loop.m_executor_link->loop = nullptr;
        }
        loop.m_executor_shutdown_called = true;
        if (loop.m_default_executor) {
            try {
                loop.m_default_executor->shutdown(false);
            } catch (...) {
                loop.call_exception_handler(
                    {"error while shutting down the default executor", std::current_exception(), {}});
            }
        }
    }

    static const std::shared_ptr<executor_link>& link(event_loop& loop) {
        if (!loop.m_executor_link) {
            loop.m_executor_link = std::make_shared<executor_link>(&loop);
            loop.m_close_executors = &on_close;
        }
        return loop.m_executor_link;
    }

    static executor& default_executor(event_loop& loop) {
        if (loop.m_executor_shutdown_called)
            throw std::runtime_error("Executor shutdown has been called");
        if (!loop.m_default_executor) {
            loop.m_default_executor = std::make_shared<thread_pool_executor>();
            loop.m_close_executors = &on_close;
        }
        return *loop.m_default_executor;
    }

    static bool has_default_executor(const event_loop& loop) noexcept {
        return loop.m_default_executor != nullptr;
    }

    /// The future and job of `fn(args...)`; the loop waits (virtual time) until the job reports.
    template <class F, class... A>
    static auto prepare(event_loop& loop, F&& fn, A&&... args) {
        using V = executor_result_t<F, A...>;
        using job_t = call_job<V, std::decay_t<F>, std::decay_t<A>...>;
        const std::shared_ptr<executor_link>& l = link(loop);
        auto call = std::make_shared<executor_call>(loop);
        auto fut = future<V>::adopt(new executor_future_state<V>(loop, call));
        executor_job job(std::unique_ptr<job_base>(
            new job_t(l, call, std::forward<F>(fn), std::forward<A>(args)...)));
        loop.begin_external_work();
        call->external_open = true;
        return prepared_call<V>{std::move(fut), std::move(job), std::move(call)};
    }

    /// Hands the job to `ex`; if that throws, the loop stops waiting for it.
    template <class V>
    static void submit(executor& ex, prepared_call<V>& p) {
        try {
            ex.execute(std::move(p.job));
        } catch (...) {
            p.call->close_external();
            throw;
        }
    }

    /// asyncio's loop.shutdown_default_executor(): executor.shutdown(wait=True) on a thread of
    /// its own, while the loop keeps running.
    static task<> shutdown_default(event_loop& loop) {
        loop.m_executor_shutdown_called = true;
        std::shared_ptr<executor> ex = loop.m_default_executor;
        if (!ex) co_return;
        auto shut = [ex] { ex->shutdown(true); };
        prepared_call<void> p = prepare(loop, std::move(shut));
        // Joined once it has reported; left to finish alone (detached) if we are cancelled
        // first: it holds the executor and the token, never the loop.
        struct thread_guard {
            std::thread t;
            bool reported = false;
            ~thread_guard() {
                if (!t.joinable()) return;
                if (reported) t.join();
                else t.detach();
            }
        } guard;
        guard.t = std::thread([job = std::move(p.job)]() mutable { job(); });
        co_await p.fut.wait_done(); // cancelling us does not cancel the shutdown
        guard.reported = true;
        guard.t.join();
        p.fut.result(); // rethrows what shutdown threw
    }
};

} // namespace detail
/// \endcond

// --- Loop members -----------------------------------------------------------------------------

/// asyncio's `loop.run_in_executor(executor, func, *args)`: runs `fn(args...)` on `ex` (on the
/// loop's default `thread_pool_executor` if `ex` is null, created on first use) and returns a
/// `future<R>` of this loop, `R` being what `fn` returns (`void` gives `future<void>`; a
/// reference result is copied). The future gets the result or the exception `fn` threw, on the
/// loop's thread.
///
/// `fn` and `args` are decay-copied into the job (use `std::ref` for references) and called and
/// destroyed on a worker thread; `ex` must outlive the job. Cancelling the future (or the task
/// awaiting it) before the job starts means it never runs; a running job finishes and its
/// result is dropped (see the file comment of corio/executor.hpp).
///
/// Throws `std::runtime_error` if the loop is closed, if `ex` is null after
/// `shutdown_default_executor()` or `close()` ("Executor shutdown has been called"), and what
/// `ex->execute` throws (after `ex->shutdown`: "cannot schedule new futures after shutdown").
template <class F, class... A>
auto event_loop::run_in_executor(executor* ex, F&& fn, A&&... args) {
    using V = detail::executor_result_t<F, A...>;
    static_assert(!detail::is_task<V>::value,
                  "corio: run_in_executor runs a plain function on another thread; await a "
                  "coroutine (task) on the loop instead");
    check_usable();
    executor& target = ex ? *ex : detail::executor_ops::default_executor(*this);
    detail::prepared_call<V> p =
        detail::executor_ops::prepare(*this, std::forward<F>(fn), std::forward<A>(args)...);
    detail::executor_ops::submit(target, p);
    return std::move(p.fut);
}

/// asyncio's `loop.set_default_executor(executor)`: the executor `run_in_executor(nullptr, ...)`
/// and `to_thread` use from now on. The loop shares ownership; the executor it replaces is
/// released, not shut down (if the loop was its last owner, its destructor waits for its
/// jobs). `close()` shuts the default executor down without waiting. Throws
/// `std::invalid_argument` for a null pointer.
inline void event_loop::set_default_executor(std::shared_ptr<executor> ex) {
    if (!ex) throw std::invalid_argument("corio: set_default_executor needs an executor");
    std::shared_ptr<executor> old = std::exchange(m_default_executor, std::move(ex));
    m_close_executors = &detail::executor_ops::on_close;
}

/// asyncio's `loop.shutdown_default_executor()` (3.9): `co_await` it to shut the default
/// executor down and wait for its jobs; the loop keeps running meanwhile (the waiting happens on
/// a thread of its own). Afterwards `run_in_executor(nullptr, ...)` and `to_thread` throw
/// `std::runtime_error("Executor shutdown has been called")`. Does nothing more if no default
/// executor was ever made. Cancelling the awaiting task stops the waiting, not the shutdown.
/// `corio::run` calls it before closing its loop. (asyncio's `timeout=` is not supported.)
inline auto event_loop::shutdown_default_executor() {
    return detail::executor_ops::shutdown_default(*this);
}

// --- to_thread ----------------------------------------------------------------------------------

/// `co_await corio::to_thread(fn, args...)`: asyncio.to_thread. Runs `fn(args...)` on the
/// running loop's default executor and gives its result (rethrows its exception). Lazy, like a
/// coroutine: nothing is submitted until it is awaited (or scheduled with create_task).
///
/// `fn` and `args` are copied (moved from rvalues) as by std::thread: pass `std::ref(x)` to hand
/// over a reference. Cancellation: a job that has not started never runs; a running one runs to
/// completion and its result is dropped; the awaiting task sees `cancelled_error` at once.
/// Throws `std::runtime_error` outside a loop, or after the default executor was shut down.
template <class F, class... A>
task<detail::executor_result_t<F, A...>> to_thread(F fn, A... args) {
    auto fut = get_running_loop().run_in_executor(nullptr, std::move(fn), std::move(args)...);
    if constexpr (std::is_void_v<detail::executor_result_t<F, A...>>) {
        co_await std::move(fut);
    } else {
        co_return co_await std::move(fut);
    }
}

} // namespace corio
// ---- end corio/executor.hpp ----
// ---- begin corio/gather.hpp (included from corio/corio.hpp) ----
/// \file corio/gather.hpp
/// `co_await corio::gather(a, b, c)`: asyncio.gather. Runs awaitables concurrently and gives
/// every result, in the order they were passed; `gather_settled` is
/// `gather(..., return_exceptions=True)`. Also `corio::none` (the value of a `void` awaitable
/// where a value is needed) and `corio::outcome<T>` (a value or an error).
///
///     auto [n, s] = co_await corio::gather(count(), fetch("x"));    // std::tuple<int, std::string>
///     std::vector<int> all = co_await corio::gather(std::move(tasks));  // a range, input order
///
/// ## What happens when
/// - `gather(...)` is asyncio's: each argument that is not a future is wrapped in a task
///   (`create_task`) **at the call**, so the children start on the next loop iteration whether
///   or not the result is ever awaited. Futures and task handles are watched as they are. The
///   loop is that of the first argument (the running loop for one that is not a future), so a
///   gather of futures can be made before its loop runs; any other needs a running loop.
/// - It returns a `future<R>` (R = `std::tuple<...>` or `std::vector<...>`), asyncio's
///   `_GatheringFuture`: await it, `cancel()` it, give it to `wait`, or drop it. A dropped gather
///   does not stop its children, which are tasks; if it fails and nobody awaits it, the loop
///   reports "Future exception was never retrieved" for it, once its children are done (asyncio
///   does the same).
/// - The first child that fails completes the gather with that error; the others keep running
///   (they are not cancelled), and the errors they end with later count as retrieved, as in
///   asyncio: no "exception was never retrieved" report for them.
/// - Cancelling the task that awaits the gather (or calling `cancel()` on the gather future)
///   cancels every child that is not done; the await then throws `cancelled_error` once the
///   children have reacted: the first one to finish, for gather (or the error it ended with, if
///   it turned the cancellation into one); all of them, for gather_settled.
/// - A child cancelled by someone else counts as failing with its `cancelled_error` (gather
///   throws it; gather_settled gives an outcome holding it); the task awaiting the gather is
///   not cancelled for that, and the other children go on.
/// - A gather that ends with a cancellation is a cancelled future (`cancelled()` is true, and it
///   is never reported as unretrieved); asyncio's stays "done with a CancelledError" instead.
///
/// ## Cost
/// A variadic gather allocates its state once (a future holding one intrusive waiter node per
/// child); a range gather allocates a `std::vector` of nodes (which grows while an unsized range
/// is read) and the state. Plus one task per argument that is not already a future, and the
/// result. Children are watched by nodes in their waiter lists, not by done callbacks: nothing
/// is allocated per child, no trip through the loop, and the work is linear in the number of
/// children. A child that finishes completes the gather (or counts towards it) on the spot; the
/// awaiting task is then woken through the loop as usual. (Completion of nested gathers recurses
/// once per level of nesting, as cancellation does in asyncio.)
///
/// ## Lifetimes
/// The gather holds no reference to a child that is still pending (a pending task is owned by
/// its loop; a pending future by its other handles), so there is no reference cycle: if every
/// handle of a pending plain future is dropped, nobody can ever complete it, and gather treats it
/// as cancelled. The state lives while a handle to the gather exists or a child is pending.


#include <array>
#include <iterator>
#include <variant>

namespace corio {

/// The result of a `void` awaitable where a value is needed: in the tuple or vector of a
/// gather, in an `outcome<void>`. An empty value; all `none`s are equal.
struct none {
    /// All `none`s are equal.
    friend constexpr bool operator==(none, none) noexcept = default;
};

/// A value or an error: what `gather_settled` gives for each child (asyncio's
/// `return_exceptions=True`, where the list holds either the result or the exception).
///
/// `outcome<void>` holds a `none`. A cancelled child gives an outcome holding its
/// `cancelled_error`.
template <class T>
class outcome {
public:
    /// What it holds on success: `T`, or `none` for `outcome<void>`.
    using value_type = std::conditional_t<std::is_void_v<T>, none, T>;

    /// An outcome holding `v`.
    outcome(value_type v) noexcept(std::is_nothrow_move_constructible_v<value_type>)
        : m_state(std::in_place_index<0>, std::move(v)) {}

    /// An outcome holding the error `e`. Throws `std::invalid_argument` if `e` is null.
    static outcome failure(std::exception_ptr e) {
        if (!e) throw std::invalid_argument("corio::outcome: a failure needs an exception");
        return outcome(failure_tag{}, std::move(e));
    }

    /// True if it holds a value.
    bool has_value() const noexcept { return m_state.index() == 0; }
    /// True if it holds a value (as has_value()).
    explicit operator bool() const noexcept { return has_value(); }

    ///@{
    /// The value; rethrows the error if it holds one.
    value_type& value() & {
        rethrow_if_error();
        return *std::get_if<0>(&m_state);
    }
    const value_type& value() const& {
        rethrow_if_error();
        return *std::get_if<0>(&m_state);
    }
    value_type&& value() && {
        rethrow_if_error();
        return std::move(*std::get_if<0>(&m_state));
    }
    ///@}

    /// The error, or a null `exception_ptr` if it holds a value.
    std::exception_ptr error() const noexcept {
        if (const std::exception_ptr* e = std::get_if<1>(&m_state)) return *e;
        return nullptr;
    }

private:
    struct failure_tag {};
    outcome(failure_tag, std::exception_ptr e) noexcept : m_state(std::in_place_index<1>, std::move(e)) {}
    void rethrow_if_error() const {
        if (const std::exception_ptr* e = std::get_if<1>(&m_state)) std::rethrow_exception(*e);
    }

    std::variant<value_type, std::exception_ptr> m_state;
};

namespace detail {

// --- What gather accepts: what ensure_future accepts ---------------------------------------------

/// A future or task handle, a `task<T>`, a callable returning an awaitable, or an awaitable.
template <class A>
concept gatherable =
    is_future_v<A> || is_task<std::remove_cvref_t<A>>::value ||
    (std::is_invocable_v<std::remove_cvref_t<A>&> &&
     awaitable<std::invoke_result_t<std::remove_cvref_t<A>&>>) ||
    awaitable<std::remove_cvref_t<A>>;

/// The `T` of the `future<T>` that ensure_future would make of an `A` (as_task's order: a
/// future or task, then a callable, then an awaitable). No `type` for anything else, so that
/// the overloads' return types fail quietly (clang checks them before the constraints).
template <class A>
struct gather_child {};
template <class A>
    requires(is_future_v<A> || is_task<std::remove_cvref_t<A>>::value)
struct gather_child<A> {
    using type = typename std::remove_cvref_t<A>::value_type;
};
template <class A>
    requires(!is_future_v<A> && !is_task<std::remove_cvref_t<A>>::value &&
             std::is_invocable_v<std::remove_cvref_t<A>&> &&
             awaitable<std::invoke_result_t<std::remove_cvref_t<A>&>>)
struct gather_child<A> {
    using type = std::remove_cvref_t<await_result_t<std::invoke_result_t<std::remove_cvref_t<A>&>>>;
};
template <class A>
    requires(!is_future_v<A> && !is_task<std::remove_cvref_t<A>>::value &&
             !std::is_invocable_v<std::remove_cvref_t<A>&> && awaitable<std::remove_cvref_t<A>>)
struct gather_child<A> {
    using type = std::remove_cvref_t<await_result_t<std::remove_cvref_t<A>>>;
};

/// See gather_child.
template <class A>
using gather_child_t = typename gather_child<A>::type;

/// `T`, or `none` for void.
template <class T>
using gather_value_t = std::conditional_t<std::is_void_v<T>, none, T>;

/// What a gather gives for a child of type `T`.
template <bool Settled, class T>
using gather_element_t = std::conditional_t<Settled, outcome<T>, gather_value_t<T>>;

/// Checks a future argument and settles the gather's loop as asyncio does: the loop of the
/// first argument (the running loop for one that is not a future); every future must share it.
template <class A>
void gather_note_loop(event_loop*& loop, const A& a) {
    if constexpr (is_future_v<A>) {
        if (!a) throw invalid_state_error("corio::gather: an empty future handle");
        event_loop* own = static_cast<const future_base&>(a).core()->loop(); // task_handle hides core()
        loop_ops::check_open(own);
        if (!loop) loop = own;
        else if (loop != own)
            throw std::invalid_argument("corio::gather: the futures belong to different event loops");
    } else {
        if (!loop) loop = &get_running_loop();
    }
}

/// The child future for an argument: the future itself, or a new task on `loop`. Returns one
/// reference to its state, owned by the caller.
template <class A>
future_core* gather_spawn(event_loop& loop, A&& a) {
    using T = gather_child_t<A>;
    future<T> f = [&] {
        if constexpr (is_future_v<A>) {
            return future<T>(std::forward<A>(a));
        } else {
            static_assert(!(is_task<std::remove_cvref_t<A>>::value && std::is_lvalue_reference_v<A>),
                          "corio::gather: a task is move-only; pass it with std::move(t)");
            return future<T>(loop.create_task(std::forward<A>(a)));
        }
    }();
    future_core* c = f.core();
    c->add_ref(); // outlives `f`
    return c;
}

/// A future's cancelled_error, as an exception_ptr (exception() throws it rather than return it).
inline std::exception_ptr gather_cancellation_of(future_core& c) noexcept {
    try {
        (void)c.exception();
    } catch (...) {
        return std::current_exception();
    }
    return std::make_exception_ptr(cancelled_error());
}

/// One child, as the gather sees it. Sits in the child's waiter list while the child is pending
/// (then `child` is a plain pointer: the gather holds no reference to a pending child); once the
/// child is done, `child` owns one reference until the result is collected or not needed.
struct gather_node : future_waiter {
    future_core* child = nullptr; ///< null once released, or if the child died pending
    future_core* gather = nullptr;
};

/// The gather's future (asyncio's _GatheringFuture) and its bookkeeping. `Nodes` is a
/// `std::array` or `std::vector` of gather_node, never resized once the state exists (nodes sit
/// in waiter lists).
template <class R, class Nodes>
class gather_state : public future_state<R> {
    using status = future_core::status;

public:
    /// asyncio's _GatheringFuture.cancel: cancels every pending child; true if any was.
    bool cancel(std::string msg) override {
        if (this->done()) return false;
        this->add_ref(); // a child's completion must not free us mid-loop
        struct keep {
            gather_state* s;
            ~keep() { s->release(); }
        } k{this};
        // Set first: a plain future child completes synchronously inside its cancel(), and if it
        // is the last, completion must already see the request (asyncio's _cancel_requested).
        const bool was_requested = std::exchange(m_cancel_requested, true);
        std::string previous = std::exchange(m_cancel_message, msg);
        bool any = false;
        for (gather_node& n : m_nodes) {
            if (!n.owner) continue; // done already
            future_core* c = n.child;
            c->add_ref();
            struct drop {
                future_core* c;
                ~drop() { c->release(); }
            } d{c};
            if (c->cancel(msg)) any = true;
        }
        if (!any) {
            m_cancel_requested = was_requested;
            m_cancel_message = std::move(previous);
        }
        return any;
    }

    /// Watches the children (their references are in the nodes). Called once, by the factory,
    /// after it made the handle it returns (so finishing here cannot free the state).
    void start() noexcept {
        m_unfinished = m_nodes.size();
        if (m_unfinished == 0) {
            complete();
            return;
        }
        this->add_ref(); // the pending children's: dropped when the last one is done
        for (gather_node& n : m_nodes) {
            n.gather = this;
            n.on_done = &on_child_done;
            n.on_discard = &on_child_discarded;
        }
        for (gather_node& n : m_nodes) {
            future_core* c = n.child;
            if (c->done()) {
                child_done(n); // takes a reference of its own if it keeps the child
            } else {
                c->add_waiter(&n);
            }
            c->release(); // may discard a plain future nobody else holds: then on_child_discarded
        }
    }

protected:
    gather_state(event_loop* loop, Nodes nodes, bool settled) noexcept
        : future_state<R>(loop), m_nodes(std::move(nodes)), m_settled(settled) {}
    ~gather_state() override {
        for (gather_node& n : m_nodes)
            if (n.child && !n.owner) n.child->release();
    }

    /// Builds the result from the children: all done, and in plain mode all succeeded. Takes
    /// the references the nodes hold.
    virtual R collect() = 0;

    Nodes m_nodes;

private:
    static void on_child_done(future_waiter* w) noexcept {
        auto* n = static_cast<gather_node*>(w);
        static_cast<gather_state*>(n->gather)->child_done(*n);
    }
    static void on_child_discarded(future_waiter* w) noexcept {
        auto* n = static_cast<gather_node*>(w);
        static_cast<gather_state*>(n->gather)->child_discarded(*n);
    }

    /// A loop that is closed cannot run the wake-ups finishing the gather would schedule.
    bool can_finish() const noexcept { return this->loop() && !this->loop()->is_closed(); }

    /// asyncio's gather._done_callback, for child `n` (done, and alive while this runs).
    void child_done(gather_node& n) noexcept {
        future_core& c = *n.child;
        if (this->done() || !can_finish()) {
            // Nobody will read it: mark its error retrieved, as asyncio does.
            if (!c.cancelled()) (void)c.exception();
            n.child = nullptr;
        } else if (!m_settled && c.cancelled()) {
            n.child = nullptr;
            this->finish(status::cancelled, gather_cancellation_of(c));
        } else if (std::exception_ptr e = m_settled || c.cancelled() ? nullptr : c.exception()) {
            n.child = nullptr;
            this->finish(status::done, std::move(e));
        } else {
            c.add_ref(); // kept for collect()
        }
        child_finished();
    }

    /// A pending plain future died (its last handle was dropped): nobody can complete it any
    /// more. It counts as cancelled, as a task destroyed while pending does.
    void child_discarded(gather_node& n) noexcept {
        n.child = nullptr;
        if (!this->done() && !m_settled && can_finish()) {
            try {
                this->finish(status::cancelled, std::make_exception_ptr(cancelled_error()));
            } catch (...) {
            }
        }
        child_finished();
    }

    void child_finished() noexcept {
        if (--m_unfinished != 0) return;
        if (!this->done() && can_finish()) complete();
        this->release(); // the pending children's reference: `this` may be gone now
    }

    /// Every child is done and the gather is not: its result, or cancelled_error if it was
    /// cancelled (asyncio: whatever return_exceptions says, issue 32684).
    void complete() noexcept {
        if (m_cancel_requested) {
            for (gather_node& n : m_nodes) {
                if (!n.child) continue;
                if (!n.child->cancelled()) (void)n.child->exception(); // retrieved
                std::exchange(n.child, nullptr)->release();
            }
            std::exception_ptr e;
            try {
                e = std::make_exception_ptr(cancelled_error(m_cancel_message));
            } catch (...) {
                e = std::current_exception();
            }
            this->finish(status::cancelled, std::move(e));
            return;
        }
        try {
            this->emplace(collect());
        } catch (...) {
            this->finish(status::done, std::current_exception());
            return;
        }
        this->finish(status::done, nullptr);
    }

    std::size_t m_unfinished = 0;
    std::string m_cancel_message;
    bool m_settled;
    bool m_cancel_requested = false;
};

/// Takes child `n`'s result for the gather's R (its reference goes with it).
template <bool Settled, class T>
gather_element_t<Settled, T> gather_take(gather_node& n) {
    if constexpr (Settled) {
        if (!n.child) return outcome<T>::failure(std::make_exception_ptr(cancelled_error()));
        future<T> f = future<T>::adopt(static_cast<future_state<T>*>(std::exchange(n.child, nullptr)));
        if (f.cancelled()) return outcome<T>::failure(gather_cancellation_of(*f.core()));
        if (std::exception_ptr e = f.exception()) return outcome<T>::failure(std::move(e));
        if constexpr (std::is_void_v<T>) {
            return outcome<T>(none{});
        } else {
            return outcome<T>(std::move(f).result()); // moved out when the gather held the last handle
        }
    } else {
        future<T> f = future<T>::adopt(static_cast<future_state<T>*>(std::exchange(n.child, nullptr)));
        if constexpr (std::is_void_v<T>) {
            f.result();
            return none{};
        } else {
            return std::move(f).result();
        }
    }
}

template <bool Settled, class... T>
using gather_tuple_t = std::tuple<gather_element_t<Settled, T>...>;

template <bool Settled, class... T>
class gather_tuple_state final
    : public gather_state<gather_tuple_t<Settled, T...>, std::array<gather_node, sizeof...(T)>> {
    using base = gather_state<gather_tuple_t<Settled, T...>, std::array<gather_node, sizeof...(T)>>;

public:
    gather_tuple_state(event_loop* loop, const std::array<gather_node, sizeof...(T)>& nodes) noexcept
        : base(loop, nodes, Settled) {}

private:
    gather_tuple_t<Settled, T...> collect() override {
        return collect_impl(std::index_sequence_for<T...>{});
    }
    template <std::size_t... I>
    gather_tuple_t<Settled, T...> collect_impl(std::index_sequence<I...>) {
        return gather_tuple_t<Settled, T...>(gather_take<Settled, T>(this->m_nodes[I])...);
    }
};

template <bool Settled, class T>
class gather_range_state final
    : public gather_state<std::vector<gather_element_t<Settled, T>>, std::vector<gather_node>> {
    using base = gather_state<std::vector<gather_element_t<Settled, T>>, std::vector<gather_node>>;

public:
    gather_range_state(event_loop* loop, std::vector<gather_node>&& nodes) noexcept
        : base(loop, std::move(nodes), Settled) {}

private:
    std::vector<gather_element_t<Settled, T>> collect() override {
        std::vector<gather_element_t<Settled, T>> out;
        out.reserve(this->m_nodes.size());
        for (gather_node& n : this->m_nodes) out.push_back(gather_take<Settled, T>(n));
        return out;
    }
};

/// Releases the references a factory put in its nodes if it fails before the state owns them.
template <class Nodes>
struct gather_nodes_guard {
    Nodes& nodes;
    bool armed = true;
    ~gather_nodes_guard() {
        if (!armed) return;
        for (gather_node& n : nodes)
            if (n.child) n.child->release();
    }
};

template <bool Settled, class... A>
auto gather_args(A&&... aws) {
    using state = gather_tuple_state<Settled, gather_child_t<A>...>;
    using result = gather_tuple_t<Settled, gather_child_t<A>...>;
    event_loop* loop = nullptr;
    (gather_note_loop(loop, aws), ...); // every check before the first task is created
    if (!loop) loop = &get_running_loop();
    std::array<gather_node, sizeof...(A)> nodes{};
    gather_nodes_guard<decltype(nodes)> guard{nodes};
    std::size_t i = 0;
    ((nodes[i++].child = gather_spawn(*loop, std::forward<A>(aws))), ...);
    auto* st = new state(loop, nodes);
    guard.armed = false;
    auto f = future<result>::adopt(st);
    st->start();
    return f;
}

template <bool Settled, class R>
auto gather_range(R&& range) {
    // An rvalue range gives its elements up (tasks are move-only); an lvalue range of tasks
    // cannot, unless it yields them by value (a view).
    using ref = std::conditional_t<std::is_lvalue_reference_v<R>, std::ranges::range_reference_t<R>,
                                   std::ranges::range_rvalue_reference_t<R>>;
    static_assert(!(is_task<std::remove_cvref_t<ref>>::value && std::is_lvalue_reference_v<ref>),
                  "corio::gather: tasks are move-only; pass the range with std::move(range)");
    using T = gather_child_t<ref>;
    using result = std::vector<gather_element_t<Settled, T>>;
    event_loop* loop = nullptr;
    if constexpr (!is_future_v<ref>) loop = &get_running_loop();
    std::vector<gather_node> nodes;
    gather_nodes_guard<std::vector<gather_node>> guard{nodes};
    if constexpr (std::ranges::sized_range<R>) nodes.reserve(static_cast<std::size_t>(std::ranges::size(range)));
    for (auto it = std::ranges::begin(range); it != std::ranges::end(range); ++it) {
        nodes.emplace_back(); // before spawning: a task is never created and then lost
        // Dereferenced once: a view may make its element (a task) on each dereference.
        auto&& element = [&]() -> ref {
            if constexpr (std::is_lvalue_reference_v<R>) return *it;
            else return std::ranges::iter_move(it);
        }();
        gather_note_loop(loop, element);
        nodes.back().child = gather_spawn(*loop, std::forward<ref>(element));
    }
    if (!loop) loop = &get_running_loop(); // an empty range of futures
    auto* st = new gather_range_state<Settled, T>(loop, std::move(nodes));
    guard.armed = false;
    auto f = future<result>::adopt(st);
    st->start();
    return f;
}

/// What the range gather takes: an input range of what the variadic gather takes, that is not
/// itself one of those.
template <class R>
concept gather_range_of =
    std::ranges::input_range<R> && !gatherable<R> && gatherable<std::ranges::range_reference_t<R>>;

} // namespace detail

/// asyncio.gather(a, b, c): runs the awaitables concurrently and gives their results as a
/// tuple, in argument order (a `void` result is `none`):
///
///     auto [user, posts] = co_await corio::gather(fetch_user(id), fetch_posts(id));
///
/// Each argument is a `task<T>` (moved in), a callable returning an awaitable, any awaitable,
/// or a future/task handle (the future itself is watched; an lvalue handle is copied, which
/// shares the future). Those that are not futures become tasks right now, scheduled on the loop
/// of the first argument (the running loop for a non-future); they run whether or not the
/// result is awaited (see the file comment).
///
/// Result: a `future<std::tuple<T...>>`, done when every child is (or the first one fails).
/// Awaiting it gives the tuple (moved out) or throws:
/// - the first error a child ends with; the other children keep running, and their errors are
///   marked retrieved (no "exception was never retrieved" report);
/// - `cancelled_error` if a child was cancelled (by someone else: the other children go on);
/// - `cancelled_error` if the awaiting task was cancelled: that cancels every pending child,
///   and the await throws once the first of them has finished.
///
/// Throws at the call: `std::runtime_error` without a running loop (unless the first argument is
/// a future), `std::invalid_argument` if futures belong to different loops,
/// `invalid_state_error` for an empty future handle.
template <class... Aws>
    requires(detail::gatherable<Aws> && ...)
[[nodiscard]] future<std::tuple<detail::gather_value_t<detail::gather_child_t<Aws>>...>>
gather(Aws&&... aws) {
    return detail::gather_args<false>(std::forward<Aws>(aws)...);
}

/// asyncio.gather(*aws): as the variadic gather, for a range of awaitables of one type (tasks,
/// task handles, futures, ...), giving a `std::vector` of results in the range's order (`none`
/// for `void`). A range of `task<T>` must be an rvalue (`std::move(tasks)`): its tasks are
/// moved out. An empty range gives a future that is already done, with an empty vector.
///
/// Results, errors and cancellation: as the variadic gather. For a range of tasks the loop is
/// the running one; for futures, the loop of the first.
template <class R>
    requires detail::gather_range_of<R>
[[nodiscard]] future<std::vector<detail::gather_value_t<detail::gather_child_t<std::ranges::range_reference_t<R>>>>>
gather(R&& range) {
    return detail::gather_range<false>(std::forward<R>(range));
}

/// asyncio.gather(a, b, c, return_exceptions=True): as gather, but a child's error does not
/// complete the gather: every child's result comes back as an `outcome<T>` (its value, or its
/// error; a child that was cancelled gives its `cancelled_error`), once all are done.
///
///     auto [a, b] = co_await corio::gather_settled(may_fail(), other());
///     if (!a) log(a.error());
///
/// Cancelling the awaiting task still cancels every pending child; the await throws
/// `cancelled_error` once they have all finished (asyncio, whatever return_exceptions says).
/// Throws at the call as gather does.
template <class... Aws>
    requires(detail::gatherable<Aws> && ...)
[[nodiscard]] future<std::tuple<outcome<detail::gather_child_t<Aws>>...>> gather_settled(Aws&&... aws) {
    return detail::gather_args<true>(std::forward<Aws>(aws)...);
}

/// asyncio.gather(*aws, return_exceptions=True): as gather_settled, for a range; gives a
/// `std::vector<outcome<T>>` in the range's order (empty at once for an empty range).
template <class R>
    requires detail::gather_range_of<R>
[[nodiscard]] future<std::vector<outcome<detail::gather_child_t<std::ranges::range_reference_t<R>>>>>
gather_settled(R&& range) {
    return detail::gather_range<true>(std::forward<R>(range));
}

} // namespace corio
// ---- end corio/gather.hpp ----
// ---- begin corio/locks.hpp (included from corio/corio.hpp) ----
/// \file corio/locks.hpp
/// Synchronization primitives for tasks of one loop: asyncio's `Lock`, `Event`, `Condition`,
/// `Semaphore`, `BoundedSemaphore` and `Barrier`, as `corio::lock`, `event`, `condition`,
/// `semaphore`, `bounded_semaphore` and `barrier`.
///
///     corio::lock lk;
///     auto g = co_await lk.acquire();         // async with lock:  (g releases it when it dies)
///     co_await ev.wait();                     // await event.wait()
///     std::size_t i = co_await b.wait();      // await barrier.wait()
///
/// Like asyncio's, they are not thread-safe: use them from the tasks of one loop.
///
/// ## Fairness
/// Waiters are served first come, first served. A task that arrives while others wait queues
/// behind them, even if the primitive happens to be free at that instant (a lock just released
/// to a waiter that has not run yet is not taken by a newcomer), as asyncio 3.12 does.
///
/// ## Cancellation never loses a wake-up
/// Cancelling a waiting task throws `cancelled_error` at its `co_await` and takes it out of the
/// queue of waiters. If the task had already been woken (handed the lock, a semaphore unit, a
/// notification) and is cancelled before it runs, what it was handed goes to the next waiter.
///
/// ## Misuse
/// Releasing a lock that is not held, releasing a `bounded_semaphore` beyond its initial
/// value, `condition::wait`/`notify` without holding the lock throw `std::logic_error` (asyncio
/// answers the first and the last with RuntimeError, the second with ValueError: corio uses
/// `std::logic_error` for every misuse).
///
/// ## Lifetime
/// A primitive should outlive the tasks that use it, but the shape `corio::run` produces is
/// safe: a lock local to `main`, which returns while workers wait on it or hold it. When a
/// primitive is destroyed, every task waiting on it gets `cancelled_error` at its `co_await` (as
/// when an awaited future is cancelled; its `what()` says the primitive was destroyed) and never
/// touches it again, and its guards are disarmed: they hold nothing from then on.
///
/// ## Allocation
/// Waiting in `lock::acquire`, `semaphore::acquire` and `event::wait` allocates nothing (the
/// waiter's node lives in the awaiting frame). `condition::wait`/`wait_for` and `barrier::wait`
/// are coroutines: a frame each.
///
/// ## Differences from asyncio
/// `barrier::reset()` and `abort()` are plain functions (asyncio's are coroutines that take the
/// barrier's lock: on one loop there is nothing to wait for). asyncio binds a primitive to the
/// first loop that waits on it for good; corio only requires the tasks waiting at the same time
/// to share a loop (`std::runtime_error` otherwise), so a primitive may serve one `corio::run`
/// after another.



namespace corio {

namespace detail {

// --- Parking a task: the intrusive waiter queue shared by queues and locks --------------------

/// Base of the error thrown at an await whose primitive was destroyed while the task waited:
/// corio's own coroutines (condition::wait, barrier::wait) let it through without touching the
/// dead primitive.
struct orphaned_marker {};

/// The cancellation a wait ends with when its primitive is destroyed (as awaiting a future
/// that is cancelled): a `cancelled_error`, so the task ends cancelled unless it catches it.
class orphaned_cancel final : public cancelled_error, public orphaned_marker {
public:
    explicit orphaned_cancel(std::string msg) : cancelled_error(std::move(msg)) {}
};

inline constexpr const char* orphaned_message = "corio: the queue or lock this task waited on was destroyed";

/// Throws orphaned_cancel, keeping the message of `err` if it is a cancellation.
[[noreturn]] inline void throw_orphaned(std::exception_ptr err) {
    std::string msg = orphaned_message;
    if (err) {
        try {
            std::rethrow_exception(err);
        } catch (const cancelled_error& e) {
            msg = e.message();
        } catch (...) {
        }
    }
    throw orphaned_cancel(std::move(msg));
}

class park_list;

/// A parked task's node, in the awaiting coroutine's frame (waiting allocates nothing).
struct park_node : task_waiter {
    park_node* prev = nullptr;
    park_node* next = nullptr;
    park_list* list = nullptr; ///< the list it is in, null if none
    task_core* task = nullptr;
    bool orphaned = false; ///< its list died with the primitive
};

/// An intrusive FIFO of parked nodes. Destroying it marks the nodes still in it orphaned.
class park_list {
public:
    park_list() noexcept = default;
    park_list(const park_list&) = delete;
    park_list& operator=(const park_list&) = delete;
    ~park_list() {
        while (park_node* n = m_head) {
            remove(n);
            n->orphaned = true;
        }
    }

    bool empty() const noexcept { return m_head == nullptr; }
    std::size_t size() const noexcept { return m_size; }
    park_node* front() const noexcept { return m_head; }

    void push_back(park_node* n) noexcept {
        n->list = this;
        n->next = nullptr;
        n->prev = m_tail;
        (m_tail ? m_tail->next : m_head) = n;
        m_tail = n;
        ++m_size;
    }
    void push_front(park_node* n) noexcept {
        n->list = this;
        n->prev = nullptr;
        n->next = m_head;
        (m_head ? m_head->prev : m_tail) = n;
        m_head = n;
        ++m_size;
    }
    void remove(park_node* n) noexcept {
        if (n->list != this) return;
        (n->prev ? n->prev->next : m_head) = n->next;
        (n->next ? n->next->prev : m_tail) = n->prev;
        n->prev = n->next = nullptr;
        n->list = nullptr;
        --m_size;
    }

private:
    park_node* m_head = nullptr;
    park_node* m_tail = nullptr;
    std::size_t m_size = 0;
};

/// The waiters of one primitive. A wake-up moves a node from `waiting` to `woken` and
/// schedules its task; the node leaves `woken` when the task resumes. Keeping the woken nodes
/// lets the primitive count wake-ups in flight (and reserve what they were woken for), and
/// lets its destructor reach them too.
struct park_queue {
    park_list waiting; ///< parked, in the order they are to be woken
    park_list woken;   ///< handed a wake-up, not resumed yet

    park_queue() noexcept = default;
    park_queue(const park_queue&) = delete;
    park_queue& operator=(const park_queue&) = delete;
    /// The primitive dies: every wait on it ends with a cancellation (see orphaned_cancel).
    ~park_queue() {
        orphan_all(waiting);
        orphan_all(woken);
    }

    bool has_waiters() const noexcept { return !waiting.empty() || !woken.empty(); }

    /// Wakes the first waiting task; false if none waits.
    bool wake_one() noexcept {
        park_node* n = waiting.front();
        if (!n) return false;
        waiting.remove(n);
        woken.push_back(n);
        n->task->wake();
        return true;
    }
    void wake_all() noexcept {
        while (wake_one()) {
        }
    }

    static void orphan_all(park_list& l) noexcept {
        while (park_node* n = l.front()) {
            l.remove(n);
            n->orphaned = true;
            try {
                n->task->wake_cancelled(orphaned_message);
            } catch (...) { // no memory for the message: the cancellation is flagged already
                n->task->wake();
            }
        }
    }

    /// asyncio binds a primitive to the loop it is used on; here the tasks parked at once must
    /// share a loop (they are woken from it).
    void check_loop(task_core& t) const {
        const park_node* other = waiting.front() ? waiting.front() : woken.front();
        if (other && other->task->as_future().loop() != t.as_future().loop())
            throw std::runtime_error("corio: the queue or lock is bound to a different event loop");
    }
};

/// Called when a parked task gives up: it was cancelled while waiting (`was_woken` false), or
/// after it was woken but before it ran (`was_woken` true: the wake-up must be passed on).
using abandon_fn = void (*)(void* owner, bool was_woken) noexcept;

/// `co_await park` suspends the task in a park_queue until it is woken. Throws
/// `cancelled_error` if the task is cancelled (calling `abandon` first, so the primitive can
/// pass a wake-up on), `orphaned_cancel` if the primitive died.
class park_awaiter : public park_node {
public:
    park_awaiter(park_queue& q, void* owner, abandon_fn abandon, bool front = false) noexcept
        : m_queue(&q), m_owner(owner), m_abandon(abandon), m_front(front) {
        task_waiter::cancel = &on_cancel;
    }
    /// Only before it is awaited (awaitables are moved into tasks by create_task).
    park_awaiter(park_awaiter&& o) noexcept : park_awaiter(*o.m_queue, o.m_owner, o.m_abandon, o.m_front) {}
    park_awaiter(const park_awaiter&) = delete;
    park_awaiter& operator=(const park_awaiter&) = delete;
    park_awaiter& operator=(park_awaiter&&) = delete;

    /// The frame dies while parked (its loop closes): leave, passing on a wake-up received.
    ~park_awaiter() {
        if (!list) return;
        const bool was_woken = list == &m_queue->woken;
        list->remove(this);
        if (was_woken && m_abandon) m_abandon(m_owner, true);
    }

    bool await_ready() const noexcept { return false; }

    void await_suspend(std::coroutine_handle<> h) {
        task_core& t = require_current_task();
        m_queue->check_loop(t);
        task = &t;
        if (m_front) m_queue->waiting.push_front(this);
        else m_queue->waiting.push_back(this);
        t.suspend_on(h, this);
    }

    void await_resume() {
        // Here the node is in `woken` (woken normally, perhaps cancelled since) or in no list
        // (cancelled while waiting, or orphaned).
        bool was_woken = false;
        if (list) {
            was_woken = true;
            list->remove(this);
        }
        try {
            task->throw_if_cancel_delivered();
        } catch (const cancelled_error& e) {
            if (orphaned) throw orphaned_cancel(e.message());
            if (m_abandon) m_abandon(m_owner, was_woken);
            throw;
        }
        if (orphaned) throw orphaned_cancel(orphaned_message); // (its cancellation was not delivered)
    }

private:
    static bool on_cancel(task_waiter* w, const std::string& msg) {
        auto* self = static_cast<park_awaiter*>(w);
        self->task->wake_cancelled(msg); // first: it may throw, and then nothing has changed
        if (self->list) self->list->remove(self);
        return true;
    }

    park_queue* m_queue;
    void* m_owner;
    abandon_fn m_abandon;
    bool m_front;
};

template <bool WithGuard>
class lock_awaiter;
class semaphore_awaiter;
class event_awaiter;

} // namespace detail

// --- guard ------------------------------------------------------------------------------------

namespace detail {

class guard_list;

/// A guard's link in the list of guards of its primitive (so the primitive's destructor can
/// disarm the guards that outlive it).
struct guard_link {
    guard_link* prev = nullptr;
    guard_link* next = nullptr;
    guard_list* list = nullptr; ///< null: holds nothing
};

/// The live guards of a primitive. Destroying it disarms them: they will not release.
class guard_list {
public:
    guard_list() noexcept = default;
    guard_list(const guard_list&) = delete;
    guard_list& operator=(const guard_list&) = delete;
    ~guard_list() {
        while (guard_link* g = m_head) remove(g);
    }
    void push(guard_link* g) noexcept {
        g->list = this;
        g->prev = nullptr;
        g->next = m_head;
        if (m_head) m_head->prev = g;
        m_head = g;
    }
    void remove(guard_link* g) noexcept {
        if (g->list != this) return;
        (g->prev ? g->prev->next : m_head) = g->next;
        if (g->next) g->next->prev = g->prev;
        g->prev = g->next = nullptr;
        g->list = nullptr;
    }
    /// `to` takes the place of `from` (a guard moved).
    void replace(guard_link* from, guard_link* to) noexcept {
        to->list = this;
        to->prev = from->prev;
        to->next = from->next;
        (from->prev ? from->prev->next : m_head) = to;
        if (from->next) from->next->prev = to;
        from->prev = from->next = nullptr;
        from->list = nullptr;
    }

private:
    guard_link* m_head = nullptr;
};

} // namespace detail

/// What `co_await lk.acquire()` (and `semaphore::acquire`, `condition::acquire`) gives: holds
/// the acquisition and releases it when destroyed (`async with lock:` in asyncio).
///
/// Movable (to hand the lock to another scope or task), not copyable. `release()` (or its alias
/// `unlock()`) releases early; the destructor then does nothing. An exception thrown by the
/// release in the destructor (the primitive was released by hand meanwhile) goes to the running
/// loop's exception handler instead of terminating. If the primitive is destroyed first, the
/// guard holds nothing from then on (see "Lifetime" in corio/locks.hpp).
template <class M>
class [[nodiscard]] guard : private detail::guard_link {
public:
    /// A guard that holds nothing.
    guard() noexcept = default;
    /// Adopts an acquisition of `m` already made: the guard will release it.
    explicit guard(M& m) noexcept : m_held(&m) { m.m_guards.push(this); }
    /// Takes over the acquisition `o` holds; `o` holds nothing afterwards.
    guard(guard&& o) noexcept { take(o); }
    /// Releases what this guard holds, then takes over the acquisition `o` holds.
    guard& operator=(guard&& o) noexcept {
        if (this != &o) {
            release_quietly();
            take(o);
        }
        return *this;
    }
    guard(const guard&) = delete;
    guard& operator=(const guard&) = delete;
    /// Releases the acquisition if it still holds one.
    ~guard() { release_quietly(); }

    /// Releases the acquisition now. Throws `std::logic_error` if the guard holds nothing
    /// (released already, moved from), and whatever the primitive's `release()` throws.
    void release() {
        M* m = detach();
        if (!m) throw std::logic_error("corio: the guard holds nothing (released or moved from)");
        m->release();
    }
    /// Same as release() (the name std::unique_lock uses).
    void unlock() { release(); }

    /// True while it holds an acquisition.
    bool owns_lock() const noexcept { return list != nullptr; }
    /// Same as owns_lock().
    explicit operator bool() const noexcept { return list != nullptr; }

private:
    void take(guard& o) noexcept {
        if (o.list) {
            o.list->replace(&o, this);
            m_held = std::exchange(o.m_held, nullptr);
        }
    }
    M* detach() noexcept {
        if (!list) return nullptr; // released, moved from, or the primitive is gone
        list->remove(this);
        return std::exchange(m_held, nullptr);
    }
    void release_quietly() noexcept {
        if (M* m = detach()) {
            try {
                m->release();
            } catch (...) {
                detail::loop_ops::report(event_loop::running(),
                                         {"Exception in corio::guard release", std::current_exception(), {}});
            }
        }
    }

    M* m_held = nullptr;
};

// --- lock -------------------------------------------------------------------------------------

/// asyncio's `Lock`: a mutual-exclusion lock for tasks. Not owned by a task: any task may
/// release it, as in asyncio. FIFO-fair.
class lock {
public:
    /// An unlocked lock.
    lock() noexcept = default;
    lock(const lock&) = delete;
    lock& operator=(const lock&) = delete;

    /// `auto g = co_await lk.acquire();` takes the lock, waiting while it is held (or while
    /// earlier waiters are in line), and gives a `guard<lock>` that releases it. Does not
    /// suspend if the lock is free and nobody waits. Cancellation: `cancelled_error` at the
    /// `co_await`, without the lock; if the lock had just been handed to this task, it goes to
    /// the next waiter. Keep the guard: `co_await lk.acquire();` alone releases the lock at
    /// once (where asyncio code pairs `await lock.acquire()` with `lock.release()`, hold the
    /// guard and call its `release()`).
    [[nodiscard]] detail::lock_awaiter<true> acquire() noexcept;

    /// True if the lock is held.
    bool locked() const noexcept { return m_locked; }

    /// Releases the lock and wakes the first waiter. Throws `std::logic_error("Lock is not
    /// acquired.")` if it is not held (asyncio raises RuntimeError). Usually a `guard` calls it.
    void release() {
        if (!m_locked) throw std::logic_error("Lock is not acquired.");
        m_locked = false;
        wake_if_free();
    }

private:
    template <bool>
    friend class detail::lock_awaiter;
    friend class guard<lock>;

    bool free_now() const noexcept { return !m_locked && !m_waiters.has_waiters(); }
    /// asyncio's _wake_up_first: if the lock is free and nobody is on the way to take it, wake
    /// the first waiter (which takes the lock when it runs).
    void wake_if_free() noexcept {
        if (!m_locked && m_waiters.woken.empty()) m_waiters.wake_one();
    }
    static void on_abandon(void* self, bool) noexcept { static_cast<lock*>(self)->wake_if_free(); }

    detail::park_queue m_waiters;
    detail::guard_list m_guards;
    bool m_locked = false;
};

namespace detail {

/// `co_await lk.acquire()`; `WithGuard` false is the raw acquisition corio uses inside.
template <bool WithGuard>
class lock_awaiter {
public:
    explicit lock_awaiter(lock& l) noexcept : m_lock(&l), m_park(l.m_waiters, &l, &lock::on_abandon) {}
    lock_awaiter(lock_awaiter&& o) noexcept : m_lock(o.m_lock), m_park(std::move(o.m_park)) {}

    bool await_ready() const noexcept { return m_lock->free_now(); }
    void await_suspend(std::coroutine_handle<> h) {
        m_park.await_suspend(h);
        m_parked = true;
    }
    auto await_resume() {
        if (m_parked) m_park.await_resume(); // throws if cancelled (the lock passed on)
        m_lock->m_locked = true;
        if constexpr (WithGuard) return guard<lock>(*m_lock);
    }

private:
    lock* m_lock;
    park_awaiter m_park;
    bool m_parked = false;
};

} // namespace detail

inline detail::lock_awaiter<true> lock::acquire() noexcept { return detail::lock_awaiter<true>(*this); }

// --- event ------------------------------------------------------------------------------------

/// asyncio's `Event`: a flag tasks can wait for. `set()` wakes every waiter; waiters woken by
/// it return even if `clear()` is called before they run.
class event {
public:
    /// An event that is not set.
    event() noexcept = default;
    event(const event&) = delete;
    event& operator=(const event&) = delete;

    /// True if the flag is set.
    bool is_set() const noexcept { return m_set; }
    /// Sets the flag and wakes every task waiting for it.
    void set() noexcept {
        if (!m_set) {
            m_set = true;
            m_waiters.wake_all();
        }
    }
    /// Clears the flag: later wait()s block until set() is called again.
    void clear() noexcept { m_set = false; }

    /// `co_await ev.wait()` returns `true` (as asyncio) at once if the flag is set, else when
    /// set() is called. Cancellation: `cancelled_error` at the `co_await`.
    [[nodiscard]] detail::event_awaiter wait() noexcept;

private:
    friend class detail::event_awaiter;
    detail::park_queue m_waiters;
    bool m_set = false;
};

namespace detail {

class event_awaiter {
public:
    explicit event_awaiter(event& e) noexcept : m_event(&e), m_park(e.m_waiters, &e, nullptr) {}
    event_awaiter(event_awaiter&& o) noexcept : m_event(o.m_event), m_park(std::move(o.m_park)) {}

    bool await_ready() const noexcept { return m_event->m_set; }
    void await_suspend(std::coroutine_handle<> h) {
        m_park.await_suspend(h);
        m_parked = true;
    }
    bool await_resume() {
        if (m_parked) m_park.await_resume();
        return true;
    }

private:
    event* m_event;
    park_awaiter m_park;
    bool m_parked = false;
};

} // namespace detail

inline detail::event_awaiter event::wait() noexcept { return detail::event_awaiter(*this); }

// --- condition --------------------------------------------------------------------------------

class barrier;

/// asyncio's `Condition`: a lock (its own, or one given) plus notifications.
///
///     auto g = co_await cond.acquire();
///     auto ready = [&] { return !items.empty(); };
///     co_await cond.wait_for(ready);          // releases the lock while it waits
///
/// (Name a capturing lambda before the statement that awaits, see GCC PR 100611 in task.hpp.)
class condition {
public:
    /// A condition with a lock of its own.
    condition() noexcept : m_lock(&m_own_lock) {}
    /// A condition on `lk`, which must outlive it (asyncio's `Condition(lock)`). A task waiting
    /// when the condition is destroyed re-acquires `lk` before its wait ends (cancelled).
    explicit condition(lock& lk) noexcept : m_lock(&lk) {}
    condition(const condition&) = delete;
    condition& operator=(const condition&) = delete;

    /// Acquires the underlying lock: `auto g = co_await cond.acquire();` (see lock::acquire).
    [[nodiscard]] detail::lock_awaiter<true> acquire() noexcept { return m_lock->acquire(); }
    /// True if the underlying lock is held.
    bool locked() const noexcept { return m_lock->locked(); }
    /// Releases the underlying lock (see lock::release).
    void release() { m_lock->release(); }

    /// `co_await cond.wait()`: releases the lock, waits until notified, re-acquires the lock
    /// and returns `true`. The caller must hold the lock: otherwise throws `std::logic_error`
    /// ("cannot wait on un-acquired lock"; asyncio's RuntimeError). Cancellation: the lock is
    /// re-acquired before `cancelled_error` leaves the `co_await` (as asyncio; further
    /// cancellations while re-acquiring are absorbed until the lock is held, the last one is
    /// thrown); a notification this wait had received is passed to another waiter.
    task<bool> wait();

    /// `co_await cond.wait_for(pred)`: while `pred()` is false, wait(). Returns the last value
    /// of `pred()`. The caller must hold the lock (checked when it has to wait). Cancellation
    /// as wait(). `pred` is moved into the coroutine.
    template <class Predicate>
    auto wait_for(Predicate pred) -> task<std::remove_cvref_t<std::invoke_result_t<Predicate&>>>;

    /// Wakes up to `n` waiting tasks (the longest waiting first). The caller must hold the
    /// lock: otherwise throws `std::logic_error` ("cannot notify on un-acquired lock").
    void notify(std::size_t n = 1) {
        if (!locked()) throw std::logic_error("cannot notify on un-acquired lock");
        do_notify(n);
    }
    /// Wakes every waiting task. The caller must hold the lock (as notify).
    void notify_all() { notify(std::numeric_limits<std::size_t>::max()); }

private:
    friend class barrier;

    void do_notify(std::size_t n) noexcept {
        for (std::size_t i = 0; i < n && m_waiters.wake_one(); ++i) {
        }
    }
    /// A notified waiter that was cancelled before it ran passes its notification on.
    static void on_abandon(void* self, bool was_woken) noexcept {
        if (was_woken) static_cast<condition*>(self)->do_notify(1);
    }

    lock m_own_lock;
    lock* m_lock;
    detail::park_queue m_waiters;
    detail::park_list m_reacquiring; ///< waits re-acquiring the lock (to see this die meanwhile)
};

inline task<bool> condition::wait() {
    if (!m_lock->locked()) throw std::logic_error("cannot wait on un-acquired lock");
    lock& lk = *m_lock;
    const bool own_lock = &lk == &m_own_lock;
    lk.release();
    std::exception_ptr err;
    bool notified = false;
    detail::park_awaiter park(m_waiters, this, &condition::on_abandon);
    try {
        co_await park;
        notified = true;
    } catch (...) {
        err = std::current_exception();
    }
    if (park.orphaned) {
        // The condition was destroyed: touch nothing of it. Its own lock died with it; a lock
        // of the caller's is re-acquired below, as the caller's guard expects.
        if (own_lock) std::rethrow_exception(err);
    } else {
        m_reacquiring.push_back(&park);
    }
    // Re-acquire the lock whatever happened, as asyncio does; a cancellation meanwhile is kept
    // and waited through.
    for (;;) {
        detail::lock_awaiter<false> reacquire(lk);
        try {
            co_await reacquire;
            break;
        } catch (const detail::orphaned_marker&) {
            throw; // the lock is gone
        } catch (const cancelled_error&) {
            err = std::current_exception();
        }
    }
    if (park.orphaned) detail::throw_orphaned(err); // the condition died meanwhile
    m_reacquiring.remove(&park);
    if (err) {
        // A notification this wait received but will not act on goes to someone else.
        if (notified) do_notify(1);
        std::rethrow_exception(err);
    }
    co_return true;
}

template <class Predicate>
auto condition::wait_for(Predicate pred) -> task<std::remove_cvref_t<std::invoke_result_t<Predicate&>>> {
    auto result = pred();
    while (!result) {
        co_await wait();
        result = pred();
    }
    co_return result;
}

// --- semaphore --------------------------------------------------------------------------------

/// asyncio's `Semaphore`: a counter of available units; `acquire()` takes one, waiting while
/// none is left; `release()` gives one back. FIFO-fair (asyncio 3.12 semantics).
class semaphore {
public:
    /// A semaphore with `value` units. Throws `std::invalid_argument` (a `std::logic_error`) if
    /// `value` is negative (asyncio's ValueError).
    explicit semaphore(int value = 1) : semaphore(value, false) {}
    semaphore(const semaphore&) = delete;
    semaphore& operator=(const semaphore&) = delete;

    /// `auto g = co_await sem.acquire();` takes a unit, waiting while none is free or earlier
    /// waiters are in line; the `guard<semaphore>` gives it back. Cancellation:
    /// `cancelled_error` at the `co_await`, without a unit; a unit just handed to this task goes
    /// to the next waiter.
    [[nodiscard]] detail::semaphore_awaiter acquire() noexcept;

    /// True if acquire() would wait: no unit is free, or tasks wait already.
    bool locked() const noexcept { return m_value == 0 || m_waiters.has_waiters(); }

    /// Gives a unit back and wakes the first waiter. For a bounded_semaphore, throws
    /// `std::logic_error` ("BoundedSemaphore released too many times") if that would exceed its
    /// initial value.
    void release() {
        if (m_bounded && m_value >= m_bound)
            throw std::logic_error("BoundedSemaphore released too many times");
        ++m_value;
        wake_next();
    }

protected:
    /// A semaphore with `value` units that, if `bounded`, cannot be released above `value`.
    semaphore(int value, bool bounded) : m_value(value), m_bound(value), m_bounded(bounded) {
        if (value < 0) throw std::invalid_argument("Semaphore initial value must be >= 0");
    }

private:
    friend class detail::semaphore_awaiter;
    friend class guard<semaphore>;

    /// Hands a unit to the first waiter (asyncio's _wake_up_next).
    bool wake_next() noexcept {
        if (m_waiters.waiting.empty()) return false;
        --m_value;
        m_waiters.wake_one();
        return true;
    }
    void wake_while_free() noexcept {
        while (m_value > 0 && wake_next()) {
        }
    }
    /// A waiter gives up: a unit it was handed comes back, and goes to whoever is next.
    static void on_abandon(void* self, bool was_woken) noexcept {
        auto* s = static_cast<semaphore*>(self);
        if (was_woken) ++s->m_value;
        s->wake_while_free();
    }

    detail::park_queue m_waiters;
    detail::guard_list m_guards;
    int m_value;
    int m_bound;
    bool m_bounded;
};

/// asyncio's `BoundedSemaphore`: a semaphore whose `release()` throws `std::logic_error` if it
/// would raise the count above the initial value (asyncio's ValueError).
class bounded_semaphore : public semaphore {
public:
    /// A bounded semaphore with `value` units (`std::invalid_argument` if negative).
    explicit bounded_semaphore(int value = 1) : semaphore(value, true) {}
};

namespace detail {

class semaphore_awaiter {
public:
    explicit semaphore_awaiter(semaphore& s) noexcept
        : m_sem(&s), m_park(s.m_waiters, &s, &semaphore::on_abandon) {}
    semaphore_awaiter(semaphore_awaiter&& o) noexcept : m_sem(o.m_sem), m_park(std::move(o.m_park)) {}

    bool await_ready() const noexcept { return !m_sem->locked(); }
    void await_suspend(std::coroutine_handle<> h) {
        m_park.await_suspend(h);
        m_parked = true;
    }
    guard<semaphore> await_resume() {
        if (!m_parked) {
            --m_sem->m_value;
        } else {
            m_park.await_resume(); // the unit was taken for us when we were woken
            // Newcomers may have queued behind us while units were free: wake as many as fit.
            m_sem->wake_while_free();
        }
        return guard<semaphore>(*m_sem);
    }

private:
    semaphore* m_sem;
    park_awaiter m_park;
    bool m_parked = false;
};

} // namespace detail

inline detail::semaphore_awaiter semaphore::acquire() noexcept { return detail::semaphore_awaiter(*this); }

// --- barrier ----------------------------------------------------------------------------------

/// asyncio's `BrokenBarrierError`: thrown by `barrier::wait()` when the barrier is aborted, or
/// reset while the task waits.
class broken_barrier_error : public std::runtime_error {
public:
    /// `what` is asyncio's message ("Barrier aborted", "Abort or reset of barrier").
    explicit broken_barrier_error(const std::string& what = "Barrier aborted") : std::runtime_error(what) {}
};

/// asyncio's `Barrier` (3.11): `parties` tasks wait for each other; when the last arrives all
/// are released, and the barrier can be used again (a new round starts once every task of the
/// previous round has left).
class barrier {
public:
    /// A barrier for `parties` tasks. Throws `std::invalid_argument` if `parties` is 0
    /// (asyncio's ValueError "parties must be > 0").
    explicit barrier(std::size_t parties) : m_parties(parties) {
        if (parties == 0) throw std::invalid_argument("parties must be > 0");
    }
    barrier(const barrier&) = delete;
    barrier& operator=(const barrier&) = delete;

    /// `std::size_t i = co_await b.wait();` waits until `parties()` tasks wait, then returns
    /// this task's arrival index in the round (0 for the first, `parties() - 1` for the one
    /// that released the others). Throws `broken_barrier_error` if the barrier is broken
    /// (aborted), or is aborted or reset while this task waits. A task arriving while the
    /// previous round drains or resets waits for that to end first. Cancellation:
    /// `cancelled_error` at the `co_await`; the task leaves the round (the others keep waiting
    /// for a full count, the barrier is not broken: asyncio's behaviour).
    task<std::size_t> wait();

    /// Returns the barrier to its initial state: tasks waiting in the round get
    /// `broken_barrier_error`; a broken barrier works again. Unlike asyncio's (a coroutine that
    /// takes the barrier's lock), it acts at once: on one loop there is nothing to wait for.
    void reset() noexcept {
        if (m_count > 0) m_state = state::resetting;
        else m_state = state::filling;
        m_cond.do_notify(std::numeric_limits<std::size_t>::max());
    }

    /// Breaks the barrier: waiting and later wait()s throw `broken_barrier_error` until
    /// reset(). Acts at once (asyncio's is a coroutine, see reset()).
    void abort() noexcept {
        m_state = state::broken;
        m_cond.do_notify(std::numeric_limits<std::size_t>::max());
    }

    /// How many tasks it takes to pass the barrier.
    std::size_t parties() const noexcept { return m_parties; }
    /// How many tasks wait in the current round (0 while draining or resetting).
    std::size_t n_waiting() const noexcept { return m_state == state::filling ? m_count : 0; }
    /// True if the barrier is broken (aborted and not reset).
    bool broken() const noexcept { return m_state == state::broken; }

private:
    enum class state { filling, draining, resetting, broken };

    /// Waits while the previous round drains or resets; throws if broken.
    task<> block() {
        auto passable = [this] { return m_state != state::draining && m_state != state::resetting; };
        co_await m_cond.wait_for(passable);
        if (m_state == state::broken) throw broken_barrier_error("Barrier aborted");
    }
    /// Waits in the round until it is released; throws if aborted or reset meanwhile.
    task<> wait_released() {
        auto released = [this] { return m_state != state::filling; };
        co_await m_cond.wait_for(released);
        if (m_state == state::broken || m_state == state::resetting)
            throw broken_barrier_error("Abort or reset of barrier");
    }
    /// The last task of the round has left: the next round may start.
    void exit() noexcept {
        if (m_count == 0) {
            if (m_state == state::resetting || m_state == state::draining) m_state = state::filling;
            m_cond.do_notify(std::numeric_limits<std::size_t>::max());
        }
    }

    condition m_cond; // on its own lock: a barrier destroyed while tasks wait is left alone by them
    std::size_t m_parties;
    state m_state = state::filling;
    std::size_t m_count = 0;
};

inline task<std::size_t> barrier::wait() {
    {
        detail::lock_awaiter<false> enter(m_cond.m_own_lock);
        co_await enter; // on error nothing is held yet
    }
    std::exception_ptr err;
    std::size_t index = 0;
    bool counted = false;
    try {
        co_await block();
        index = m_count++;
        counted = true;
        if (index + 1 == m_parties) {
            m_state = state::draining; // release the round
            m_cond.do_notify(std::numeric_limits<std::size_t>::max());
        } else {
            co_await wait_released();
        }
    } catch (const detail::orphaned_marker&) {
        throw; // the barrier was destroyed: touch nothing
    } catch (...) {
        err = std::current_exception();
    }
    // Here the lock is held again (condition::wait re-acquires it even when cancelled).
    if (counted) {
        --m_count;
        exit();
    }
    m_cond.m_own_lock.release();
    if (err) std::rethrow_exception(err);
    co_return index;
}

} // namespace corio
// ---- end corio/locks.hpp ----
// ---- begin corio/net.hpp (included from corio/corio.hpp) ----
/// \file corio/net.hpp
/// Stream connections and servers with transports and protocols: asyncio's
/// `loop.create_connection`, `loop.create_server`, `loop.create_unix_connection`,
/// `loop.create_unix_server` and `asyncio.Server`.
///
/// ```
/// struct echo : corio::protocol {                              // class Echo(asyncio.Protocol):
///     corio::transport* t = nullptr;
///     void connection_made(corio::transport& tr) override { t = &tr; }
///     void data_received(std::string_view d) override { t->write(d); }
/// };
/// auto factory = [] { return std::make_shared<echo>(); };
/// corio::server srv = co_await corio::create_server(factory, "127.0.0.1", 8888);
/// co_await srv.serve_forever();                                // until cancelled
/// ```
///
/// The same functions are members of the loop (`loop.create_server(factory, host, port)`).
/// The transports behave as asyncio's selector transports: see corio/detail/stream_transport.hpp
/// for reading, writing, flow control, errors and ownership. In short: the loop owns every open
/// transport and every server that is not closed, so dropping all handles neither closes nor
/// leaks them; closing the loop (the end of `corio::run`) releases whatever is still open.
///
/// | asyncio | corio |
/// |---|---|
/// | `await loop.create_connection(f, host, port)` | `co_await corio::create_connection(f, host, port)` → `{transport, protocol}` |
/// | `await loop.create_server(f, host, port)` | `co_await corio::create_server(f, host, port)` → `corio::server` |
/// | `await loop.create_unix_connection(f, path)` | `co_await corio::create_unix_connection(f, path)` |
/// | `await loop.create_unix_server(f, path)` | `co_await corio::create_unix_server(f, path)` |
/// | `server.close()`, `await server.wait_closed()` | `srv.close()`, `co_await srv.wait_closed()` |
/// | `await server.serve_forever()` | `co_await srv.serve_forever()` |
/// | `server.sockets[0].getsockname()[1]` | `srv.port()` |
///
/// GCC 12 (PR 100611): a factory lambda that captures something with a destructor (a
/// shared_ptr, a string) must be named before the statement with the `co_await`, not written
/// inside it.

// ---- begin corio/detail/stream_transport.hpp (included from corio/net.hpp) ----
/// \file corio/detail/stream_transport.hpp
/// The stream transport behind create_connection, create_server and their Unix variants
/// (corio/net.hpp), and behind subprocess pipes (`make_pipe_transport`): a socket or pipe fd
/// driven by the loop's add_reader/add_writer, with the semantics of CPython's
/// `_SelectorSocketTransport` (selector_events.py) and, for pipes, `_UnixReadPipeTransport` /
/// `_UnixWritePipeTransport` (unix_events.py).
///
/// ## Reading
/// A reader is registered while reading is wanted (not paused, no EOF seen, not closing). Each
/// readiness reads once, up to 256 KiB (asyncio's max_size), into a per-thread buffer, and
/// hands the bytes to `data_received` (a view valid only during the call). EOF calls
/// `eof_received`: the transport closes unless it returns true (half-close; a read-only pipe
/// always closes).
///
/// ## Writing
/// `write` sends at once while nothing is buffered ("write-through"); what the kernel does
/// not take is buffered and a writer is registered until the buffer is empty (never while it is
/// empty: a level-triggered writable fd would spin). Flow control as asyncio: over the high-water
/// mark (64 KiB) the protocol's `pause_writing` is called once, and `resume_writing` once the
/// buffer drains to the low-water mark (16 KiB). `write_eof` shuts the write side
/// (`shutdown(SHUT_WR)`) once the buffer is empty; on a pipe it closes the transport.
///
/// ## Ending
/// `close` stops reading, flushes the buffer, then schedules `connection_lost(nullptr)`;
/// `abort` drops the buffer and does the same at once. `connection_lost` is called exactly
/// once, always from a loop callback on a later iteration (never from inside the call that
/// ended the connection), and then the fd is closed and the protocol released (which breaks a
/// protocol -> transport reference cycle).
///
/// Errors: an I/O error (ECONNRESET, EPIPE, ...) ends the connection with
/// `connection_lost(std::system_error)`, without a report (asyncio logs those only in debug
/// mode); an exception escaping a protocol callback goes to the loop's exception handler and
/// aborts the transport, and connection_lost gets that exception. A write after close/abort or
/// after the connection was lost is dropped silently. No write ever raises SIGPIPE
/// (detail/socket.hpp).
///
/// ## Ownership
/// While open, a transport is owned by its loop (the `loop_registry` below) whatever the
/// user keeps: a server's connections live on when nobody holds their transport. The reader
/// and writer callbacks point at the transport without owning it; they are removed before the
/// loop lets go. After connection_lost the loop lets go, and the transport lives as long as
/// shared_ptrs to it do. If the loop closes while transports are open, each is detached: the fd
/// is closed and the protocol released without any callback (asyncio just drops such
/// transports), so nothing leaks even when the protocol holds a shared_ptr to its transport.
/// A detached or lost transport never touches the loop again: its members are no-ops.
///
/// All members are loop-thread only.




namespace corio::detail {

class stream_transport;

/// What a server's connection reports to its server (the server counts its connections for
/// wait_closed, and can close them all).
class connection_owner {
public:
    virtual ~connection_owner() = default;
    /// A connection started (before connection_made).
    virtual void connection_attached(stream_transport& t) = 0;
    /// A connection ended (after connection_lost).
    virtual void connection_detached(stream_transport& t) noexcept = 0;
};

/// The read buffer, one per thread: one loop per thread, and the bytes are only lent to
/// data_received, which cannot start another read on the same thread.
inline char* stream_read_buffer(std::size_t size) {
    thread_local std::unique_ptr<char[]> buf;
    if (!buf) buf.reset(new char[size]);
    return buf.get();
}

// --- The transport -----------------------------------------------------------------------------

/// A stream transport over a socket or pipe fd: see the file comment.
class stream_transport final : public transport, public loop_resource {
public:
    /// What the fd is.
    enum class kind {
        socket,      ///< a connected stream socket (TCP, Unix): reads, writes, shutdown
        read_pipe,   ///< the read end of a pipe: reads only; EOF closes
        write_pipe,  ///< the write end of a pipe: writes only; write_eof closes
        duplex_pipe, ///< a read-write fd that is not a socket (a tty, a FIFO opened O_RDWR)
    };

    /// asyncio's max_size: the most one readiness reads.
    static constexpr std::size_t max_read_size = 256 * 1024;
    /// asyncio's default high-water mark.
    static constexpr std::size_t default_high_water = 64 * 1024;

    /// Takes `fd` (non-blocking) and `p`. Nothing happens until start(). `peer`: the peer
    /// address if known (accept gives it), else asked from the socket.
    stream_transport(event_loop& loop, unique_fd fd, std::shared_ptr<protocol> p, kind k,
                     std::shared_ptr<connection_owner> server = nullptr,
                     std::optional<address> peer = std::nullopt)
        : m_loop(&loop), m_fd(std::move(fd)), m_fdnum(m_fd.get()), m_protocol(std::move(p)),
          m_server(std::move(server)), m_kind(k) {
        if (!m_protocol) throw std::invalid_argument("corio: a transport needs a protocol");
        if (m_kind == kind::socket) {
            m_local = socket_local_address(m_fdnum);
            m_peer = peer ? *peer : socket_peer_address(m_fdnum);
        } else {
            m_no_sigpipe = set_pipe_no_sigpipe(m_fdnum);
        }
    }

    stream_transport(const stream_transport&) = delete;
    stream_transport& operator=(const stream_transport&) = delete;

    /// Closes the fd if still open; never touches the loop (see the file comment).
    ~stream_transport() override = default;

    /// The loop takes ownership, the server (if any) counts the connection, the protocol's
    /// connection_made runs, then reading starts. If connection_made throws, the transport is
    /// aborted (connection_lost is not called: the connection was never made) and the
    /// exception is rethrown.
    void start() {
        auto self = shared_self();
        m_registry = &loop_registry::of(*m_loop);
        m_registry->add(self);
        if (m_server) {
            try {
                m_server->connection_attached(*this);
            } catch (...) {
                auto keep = m_registry->remove(this);
                m_registry = nullptr;
                throw;
            }
        }
        m_protocol_connected = true;
        try {
            m_protocol->connection_made(*this);
        } catch (...) {
            m_protocol_connected = false;
            force_close(std::current_exception());
            throw;
        }
        // connection_made may have paused reading (asyncio's _add_reader checks is_reading()).
        if (!m_closing && !m_paused && m_kind != kind::write_pipe) start_reading();
        // The write end of a pipe is watched for reading too: it becomes "readable" (an error
        // or hang-up) when the read end closes (asyncio's trick).
        if (!m_closing && m_kind == kind::write_pipe) set_reader(true);
    }

    // --- base_transport ------------------------------------------------------------------

    void close() override {
        if (m_closing) return;
        m_closing = true;
        set_reader(false);
        if (pending() == 0) {
            m_conn_lost = true;
            set_writer(false);
            schedule_connection_lost(nullptr);
        }
    }

    bool is_closing() const noexcept override { return m_closing; }

    std::any get_extra_info(std::string_view name) const override {
        const bool open = m_fd && !m_conn_lost;
        if (m_kind == kind::socket) {
            if (name == "peername") return m_peer;
            if (name == "sockname") return m_local;
            if (name == "socket" && open) return m_fdnum;
        } else if (name == "pipe" && open) {
            return m_fdnum;
        }
        return {};
    }

    // --- read_transport --------------------------------------------------------------------

    void pause_reading() override {
        if (m_closing || m_paused || m_kind == kind::write_pipe) return;
        m_paused = true;
        set_reader(false);
    }
    void resume_reading() override {
        if (m_closing || !m_paused) return;
        m_paused = false;
        if (!m_read_eof) start_reading();
    }
    bool is_reading() const noexcept override {
        return !m_paused && !m_closing && m_kind != kind::write_pipe;
    }

    // --- write_transport -------------------------------------------------------------------

    void write(std::string_view data) override {
        if (m_eof) throw std::runtime_error("Cannot call write() after write_eof()");
        if (m_kind == kind::read_pipe)
            throw std::logic_error("corio: write() on the read end of a pipe");
        if (data.empty() || m_closing || !live()) return; // dropped, as asyncio (which warns)
        if (pending() == 0) {
            const ssize_t n = send_some(data.data(), data.size());
            if (n < 0) {
                const int e = errno;
                if (!is_would_block(e)) {
                    io_error(e, "Fatal write error on " + what());
                    return;
                }
            } else {
                data.remove_prefix(static_cast<std::size_t>(n));
                if (data.empty()) return;
            }
            set_writer(true);
        }
        if (m_buffer_off > 0 && m_buffer_off >= m_buffer.size() / 2) {
            m_buffer.erase(0, m_buffer_off);
            m_buffer_off = 0;
        }
        m_buffer.append(data);
        maybe_pause_protocol();
    }

    void write_eof() override {
        if (!can_write_eof()) throw std::logic_error("corio: this transport cannot write EOF");
        if (m_closing || m_eof) return;
        m_eof = true;
        if (m_kind != kind::socket) { // a pipe has no half-close: EOF is closing it
            close();
            return;
        }
        if (pending() == 0) shutdown_write();
    }

    bool can_write_eof() const noexcept override {
        return m_kind == kind::socket || m_kind == kind::write_pipe;
    }

    void abort() override { force_close(nullptr); }

    std::size_t get_write_buffer_size() const noexcept override { return pending(); }

    void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                 std::optional<std::size_t> low = std::nullopt) override {
        std::size_t h = high ? *high : (low ? 4 * *low : default_high_water);
        std::size_t l = low ? *low : h / 4;
        if (l > h)
            throw std::invalid_argument("high (" + std::to_string(h) + ") must be >= low (" +
                                        std::to_string(l) + ") must be >= 0");
        m_high = h;
        m_low = l;
        maybe_pause_protocol();
    }

    std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override {
        return {m_low, m_high};
    }

    // --- loop_resource ----------------------------------------------------------------------

    void loop_closed() noexcept override {
        m_loop = nullptr;
        m_registry = nullptr;
        m_closing = m_conn_lost = true;
        m_reader_on = m_writer_on = false; // the loop forgot its callbacks
        m_protocol_connected = false;
        m_fd.reset();
        m_buffer.clear();
        m_buffer_off = 0;
        auto p = std::move(m_protocol); // released last: its destructor may call this object
        auto s = std::move(m_server);
    }

    /// The fd (-1 once closed).
    int fd() const noexcept { return m_fd.get(); }
    /// The protocol (null once the connection is lost).
    const std::shared_ptr<protocol>& get_protocol() const noexcept { return m_protocol; }

private:
    std::shared_ptr<stream_transport> shared_self() {
        return std::shared_ptr<stream_transport>(shared_from_this(), this);
    }

    /// The loop, if this transport may still use it.
    bool live() const noexcept { return m_loop && !m_loop->is_closed() && m_fd; }

    std::size_t pending() const noexcept { return m_buffer.size() - m_buffer_off; }

    std::string what() const { return m_kind == kind::socket ? "socket transport" : "pipe transport"; }

    static bool is_would_block(int e) noexcept {
        return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
    }

    ssize_t send_some(const char* data, std::size_t n) noexcept {
        if (m_kind == kind::socket) return socket_send(m_fd.get(), data, n);
        return pipe_write(m_fd.get(), data, n, m_no_sigpipe);
    }

    void shutdown_write() noexcept {
        if (m_fd) ::shutdown(m_fd.get(), SHUT_WR); // ENOTCONN after a reset: nothing to do
    }

    void start_reading() { set_reader(true); }

    void set_reader(bool on) {
        if (on == m_reader_on) return;
        if (on) {
            if (!live()) return;
            m_loop->add_reader(m_fd.get(), [this] { on_readable(); });
            m_reader_on = true;
        } else {
            m_reader_on = false;
            if (live()) m_loop->remove_reader(m_fd.get());
        }
    }

    void set_writer(bool on) {
        if (on == m_writer_on) return;
        if (on) {
            if (!live()) return;
            m_loop->add_writer(m_fd.get(), [this] { on_writable(); });
            m_writer_on = true;
        } else {
            m_writer_on = false;
            if (live()) m_loop->remove_writer(m_fd.get());
        }
    }

    void on_readable() {
        if (m_conn_lost) return;
        if (m_kind == kind::write_pipe) {
            // The read end closed (asyncio: _UnixWritePipeTransport._read_ready).
            if (pending() > 0)
                force_close(std::make_exception_ptr(
                    std::system_error(EPIPE, std::generic_category(), "Broken pipe")));
            else
                force_close(nullptr);
            return;
        }
        char* buf = stream_read_buffer(max_read_size);
        const ssize_t n = m_kind == kind::socket ? ::recv(m_fd.get(), buf, max_read_size, 0)
                                                 : ::read(m_fd.get(), buf, max_read_size);
        if (n < 0) {
            const int e = errno;
            if (!is_would_block(e)) io_error(e, "Fatal read error on " + what());
            return;
        }
        if (n == 0) {
            on_eof();
            return;
        }
        try {
            m_protocol->data_received(std::string_view(buf, static_cast<std::size_t>(n)));
        } catch (...) {
            fatal_error(std::current_exception(), "Fatal error: protocol.data_received() call failed.");
        }
    }

    void on_eof() {
        m_read_eof = true;
        set_reader(false);
        bool keep_open = false;
        try {
            keep_open = m_protocol->eof_received();
        } catch (...) {
            fatal_error(std::current_exception(), "Fatal error: protocol.eof_received() call failed.");
            return;
        }
        if (!keep_open || m_kind == kind::read_pipe) close();
    }

    void on_writable() {
        if (m_conn_lost || pending() == 0) {
            set_writer(false);
            return;
        }
        const ssize_t n = send_some(m_buffer.data() + m_buffer_off, pending());
        if (n < 0) {
            const int e = errno;
            if (is_would_block(e)) return;
            set_writer(false);
            m_buffer.clear();
            m_buffer_off = 0;
            io_error(e, "Fatal write error on " + what());
            return;
        }
        m_buffer_off += static_cast<std::size_t>(n);
        if (m_buffer_off == m_buffer.size()) {
            m_buffer.clear();
            m_buffer_off = 0;
        }
        maybe_resume_protocol(); // may write more, close or abort
        if (pending() > 0 || m_conn_lost) return;
        set_writer(false);
        if (m_closing) {
            m_conn_lost = true;
            schedule_connection_lost(nullptr);
        } else if (m_eof) {
            shutdown_write();
        }
    }

    /// asyncio's _fatal_error for an exception from a protocol callback: reported, then abort.
    void fatal_error(std::exception_ptr e, const char* message) {
        if (m_loop && !m_loop->is_closed()) m_loop->call_exception_handler({message, e, {}});
        force_close(std::move(e));
    }

    /// asyncio's _fatal_error for an OSError: not reported (debug-level log in asyncio).
    void io_error(int err, const std::string& what) {
        force_close(std::make_exception_ptr(std::system_error(err, std::generic_category(), what)));
    }

    /// asyncio's _force_close.
    void force_close(std::exception_ptr e) {
        if (m_conn_lost) return;
        if (pending() > 0) {
            m_buffer.clear();
            m_buffer_off = 0;
        }
        set_writer(false);
        if (!m_closing) m_closing = true;
        set_reader(false);
        m_conn_lost = true;
        schedule_connection_lost(std::move(e));
    }

    void schedule_connection_lost(std::exception_ptr e) {
        if (!m_loop || m_loop->is_closed()) return;
        auto self = shared_self();
        m_loop->call_soon([self, e] { self->call_connection_lost(e); });
    }

    /// asyncio's _call_connection_lost: the protocol hears of it, then everything is released.
    void call_connection_lost(std::exception_ptr e) {
        if (!m_loop) return; // detached meanwhile
        std::exception_ptr failure;
        if (m_protocol_connected) {
            m_protocol_connected = false;
            try {
                m_protocol->connection_lost(e);
            } catch (...) {
                failure = std::current_exception();
            }
        }
        set_reader(false);
        set_writer(false);
        m_fd.reset();
        auto p = std::move(m_protocol);
        auto s = std::move(m_server);
        if (s) s->connection_detached(*this);
        std::shared_ptr<loop_resource> keep;
        if (m_registry) keep = m_registry->remove(this);
        m_registry = nullptr;
        if (failure && m_loop && !m_loop->is_closed())
            m_loop->call_exception_handler(
                {"Exception in protocol.connection_lost()", failure, {}});
        // p (the protocol), s (the server) and keep (the loop's reference) go here; the
        // caller's `self` keeps this object alive until the callback returns.
    }

    void maybe_pause_protocol() {
        if (pending() <= m_high || m_protocol_paused || !m_protocol) return;
        m_protocol_paused = true;
        try {
            m_protocol->pause_writing();
        } catch (...) {
            if (m_loop && !m_loop->is_closed())
                m_loop->call_exception_handler(
                    {"protocol.pause_writing() failed", std::current_exception(), {}});
        }
    }

    void maybe_resume_protocol() {
        if (!m_protocol_paused || pending() > m_low || !m_protocol) return;
        m_protocol_paused = false;
        try {
            m_protocol->resume_writing();
        } catch (...) {
            if (m_loop && !m_loop->is_closed())
                m_loop->call_exception_handler(
                    {"protocol.resume_writing() failed", std::current_exception(), {}});
        }
    }

    event_loop* m_loop;
    loop_registry* m_registry = nullptr;
    unique_fd m_fd;
    int m_fdnum;
    std::shared_ptr<protocol> m_protocol;
    std::shared_ptr<connection_owner> m_server;
    kind m_kind;
    address m_peer;
    address m_local;
    std::string m_buffer;       ///< bytes not yet sent start at m_buffer_off
    std::size_t m_buffer_off = 0;
    std::size_t m_high = default_high_water;
    std::size_t m_low = default_high_water / 4;
    bool m_closing = false;            ///< close/abort called, or the connection is ending
    bool m_conn_lost = false;          ///< connection_lost is scheduled (or done)
    bool m_eof = false;                ///< write_eof called
    bool m_read_eof = false;           ///< the peer's EOF was read
    bool m_paused = false;             ///< pause_reading
    bool m_reader_on = false;
    bool m_writer_on = false;
    bool m_protocol_paused = false;    ///< pause_writing called, resume_writing not yet
    bool m_protocol_connected = false; ///< connection_made called, connection_lost not yet
    bool m_no_sigpipe = false;         ///< the pipe fd never raises SIGPIPE (F_SETNOSIGPIPE)
};

/// A transport over a pipe (or socketpair) fd, for subprocesses: takes ownership of `fd`
/// (made non-blocking here), calls `p->connection_made` and starts reading if the fd is
/// readable. The kind follows the fd: a socket is a full stream transport; a pipe's read end
/// (O_RDONLY) only reads (writing throws `std::logic_error`, EOF closes); a write end
/// (O_WRONLY) only writes (write_eof closes it, and the transport closes when the read end is
/// closed: with `connection_lost(std::system_error(EPIPE))` if data was still buffered). No
/// write raises SIGPIPE. Extra info: "pipe" (the fd), or for a socket "socket", "peername",
/// "sockname". Throws `std::system_error` if the fd is bad, and what connection_made throws
/// (the fd is then closed).
inline std::shared_ptr<transport> make_pipe_transport(event_loop& loop, int fd,
                                                      std::shared_ptr<protocol> p) {
    unique_fd owned(fd);
    set_nonblocking(fd);
    stream_transport::kind k = stream_transport::kind::socket;
    if (!is_socket(fd)) {
        const int fl = ::fcntl(fd, F_GETFL);
        if (fl < 0) throw_os_error(errno, "fcntl(F_GETFL)");
        switch (fl & O_ACCMODE) {
        case O_RDONLY: k = stream_transport::kind::read_pipe; break;
        case O_WRONLY: k = stream_transport::kind::write_pipe; break;
        default: k = stream_transport::kind::duplex_pipe; break;
        }
    }
    auto t = std::make_shared<stream_transport>(loop, std::move(owned), std::move(p), k);
    t->start();
    return t;
}

} // namespace corio::detail
// ---- end corio/detail/stream_transport.hpp ----
// ---- begin corio/resolver.hpp (included from corio/net.hpp) ----
/// \file corio/resolver.hpp
/// Name resolution: asyncio's `loop.getaddrinfo` and `socket.getservbyname`.
///
/// ```
/// std::vector<corio::address> as = co_await corio::getaddrinfo("localhost", 80);
/// int http = corio::getservbyname("http");            // 80
/// ```
///
/// `getaddrinfo` runs the system's blocking `getaddrinfo(3)` on the default thread pool
/// (`corio::to_thread`), so the loop keeps serving other tasks during a slow DNS query. A
/// numeric host (`"127.0.0.1"`, `"::1"`) with a numeric port is answered at once without a
/// thread, as asyncio's `_ipaddr_info` fast path does. Errors of the resolver come out as
/// `corio::gai_error`, a `std::system_error` (asyncio's `socket.gaierror`, an OSError).



#include <netdb.h>

namespace corio {

/// The error category of `getaddrinfo(3)`'s `EAI_*` codes; `message(code)` is
/// `gai_strerror(code)`.
inline const std::error_category& gai_category() noexcept {
    struct category final : std::error_category {
        const char* name() const noexcept override { return "getaddrinfo"; }
        std::string message(int code) const override { return ::gai_strerror(code); }
    };
    static const category instance;
    return instance;
}

/// A name-resolution failure (asyncio's `socket.gaierror`): `code()` holds the `EAI_*` value
/// (`code().value() == EAI_NONAME` for an unknown host) in `gai_category()`, and `what()` reads
/// "getaddrinfo(HOST, SERVICE): MESSAGE", e.g. "Name or service not known". Derives from
/// `std::system_error`, so a `catch (const std::system_error&)` for connection errors also
/// catches it, as `except OSError` does in Python.
class gai_error : public std::system_error {
public:
    /// An error with the `EAI_*` code `code`; `what` says what was being resolved.
    gai_error(int code, const std::string& what) : std::system_error(code, gai_category(), what) {}
};

/// The hints of `getaddrinfo` (the keyword arguments of asyncio's `loop.getaddrinfo`).
struct addrinfo_options {
    /// AF_INET, AF_INET6, or AF_UNSPEC (the default) for both.
    int family = AF_UNSPEC;
    /// SOCK_STREAM, SOCK_DGRAM, or 0 (the default) for any.
    int type = 0;
    /// IPPROTO_TCP, IPPROTO_UDP, or 0 for any.
    int protocol = 0;
    /// AI_* flags, e.g. AI_PASSIVE (with an empty host: the wildcard addresses, for bind).
    int flags = 0;
};

namespace detail {

/// asyncio's `_ipaddr_info`: the address, without a lookup, when `host` is a numeric IPv4 or
/// IPv6 address of an acceptable family and the port is numeric. Otherwise nothing.
inline std::optional<address> numeric_address(const std::string& host, const port_or_service& port,
                                              int family) {
    if (host.empty()) return std::nullopt; // None: the resolver picks the wildcard or loopback
    const int p = port.str().empty() ? 0 : port.number();
    if (p < 0 || p > 65535) return std::nullopt;
    unsigned char buf[sizeof(in6_addr)];
    int af = AF_UNSPEC;
    if (::inet_pton(AF_INET, host.c_str(), buf) == 1) {
        af = AF_INET;
    } else {
        std::string bare = host.substr(0, host.find('%'));
        if (::inet_pton(AF_INET6, bare.c_str(), buf) == 1) af = AF_INET6;
    }
    if (af == AF_UNSPEC || (family != AF_UNSPEC && family != af)) return std::nullopt;
    try {
        return address(host, p);
    } catch (const std::invalid_argument&) { // an unknown IPv6 scope: let the resolver say so
        return std::nullopt;
    }
}

/// The blocking lookup (runs on a pool thread): every address, in the resolver's order,
/// without the duplicates that one per socket type (stream, datagram, raw) would give.
inline std::vector<address> blocking_getaddrinfo(const std::string& host, const std::string& service,
                                                 const addrinfo_options& opts) {
    addrinfo hints{};
    hints.ai_family = opts.family;
    hints.ai_socktype = opts.type;
    hints.ai_protocol = opts.protocol;
    hints.ai_flags = opts.flags;
    addrinfo* res = nullptr;
    const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                                 service.empty() ? nullptr : service.c_str(), &hints, &res);
    if (rc != 0) {
        const std::string what = "getaddrinfo(" + (host.empty() ? std::string("None") : host) +
                                 ", " + (service.empty() ? std::string("None") : service) + ")";
#ifdef EAI_SYSTEM
        if (rc == EAI_SYSTEM) throw_os_error(errno, what);
#endif
        throw gai_error(rc, what);
    }
    std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, &::freeaddrinfo);
    std::vector<address> out;
    for (const addrinfo* ai = res; ai; ai = ai->ai_next) {
        if (!ai->ai_addr || ai->ai_addrlen > address::capacity()) continue;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        address a = address::from_sockaddr(ai->ai_addr, ai->ai_addrlen);
        if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(std::move(a));
    }
    if (out.empty()) // only families an address cannot hold: as asyncio's "returned empty list"
        throw gai_error(EAI_NONAME, "getaddrinfo(" + host + ", " + service + ") returned no IP address");
    return out;
}

/// getaddrinfo with a copy of everything the pool thread needs (no reference into the
/// awaiting coroutine's frame, which a cancellation may destroy while the lookup runs).
inline task<std::vector<address>> resolve_on_thread(std::string host, std::string service,
                                                   addrinfo_options opts) {
    co_return co_await to_thread(&blocking_getaddrinfo, std::move(host), std::move(service), opts);
}

} // namespace detail

/// asyncio's `loop.getaddrinfo(host, port, family=, type=, proto=, flags=)`: the addresses of
/// `host` (a name or a numeric address; empty means Python's `None`: the wildcard address with
/// `AI_PASSIVE`, the loopback address without) with `port` (a number, or a service name such
/// as "http"), in the resolver's order (IPv6 first for "localhost" on many systems), without
/// duplicates (asyncio returns one 5-tuple per socket type; a `corio::address` has no type).
///
/// Runs `getaddrinfo(3)` on the default executor (corio/executor.hpp), except for a numeric
/// host with a numeric port, which is answered at once. Never returns an empty vector.
///
/// Throws `corio::gai_error` if the name or service is unknown (`EAI_NONAME`,
/// `EAI_SERVICE`, ...), `std::system_error` for `EAI_SYSTEM`, `std::runtime_error` outside a
/// loop or after the default executor was shut down.
///
/// Cancellation: the awaiting task sees `cancelled_error` at once; a lookup already running on
/// the pool thread runs to completion and its result is dropped.
inline task<std::vector<address>> getaddrinfo(std::string host, port_or_service port = 0,
                                              addrinfo_options opts = {}) {
    if (auto a = detail::numeric_address(host, port, opts.family)) co_return std::vector<address>{*a};
    std::string service = port.str();
    co_return co_await detail::resolve_on_thread(std::move(host), std::move(service), opts);
}

/// `socket.getservbyname(name, proto)`: the port of a service in the system's services
/// database (`/etc/services`): `getservbyname("http") == 80`, `getservbyname("domain", "udp")
/// == 53`. Synchronous: a local file lookup. Thread-safe (getservbyname_r where the system has
/// it, a lock otherwise). Throws `std::system_error` (ENOENT, "service/proto not found", as
/// Python's OSError) for an unknown service.
inline int getservbyname(const std::string& name, const std::string& proto = "tcp") {
    const char* p = proto.empty() ? nullptr : proto.c_str();
    int port = -1;
#if defined(__GLIBC__) || defined(__FreeBSD__)
    servent entry{};
    servent* found = nullptr;
    std::vector<char> buf(1024);
    for (;;) {
        const int rc = ::getservbyname_r(name.c_str(), p, &entry, buf.data(), buf.size(), &found);
        if (rc == ERANGE && buf.size() < (1u << 20)) {
            buf.resize(buf.size() * 2);
            continue;
        }
        break;
    }
    if (found) port = ntohs(static_cast<std::uint16_t>(found->s_port));
#else
    static std::mutex lock;
    {
        std::lock_guard guard(lock);
        if (const servent* found = ::getservbyname(name.c_str(), p))
            port = ntohs(static_cast<std::uint16_t>(found->s_port));
    }
#endif
    if (port < 0)
        detail::throw_os_error(ENOENT, "service/proto not found: '" + name + "'/" +
                                           (proto.empty() ? std::string("*") : proto));
    return port;
}

} // namespace corio
// ---- end corio/resolver.hpp ----

#include <unordered_set>


namespace corio {

/// Options of `create_connection` (asyncio's keyword arguments).
struct connection_options {
    /// Bind the socket to this local address before connecting (asyncio's `local_addr`); its
    /// family must match the remote address's (addresses of other families are skipped).
    /// (Initialized explicitly so that `{.family = AF_INET}` draws no
    /// -Wmissing-field-initializers.)
    std::optional<address> local_addr = std::nullopt;
    /// AF_INET or AF_INET6 to resolve `host` to that family only; AF_UNSPEC (the default) for
    /// both.
    int family = AF_UNSPEC;
};

/// Options of `create_server` and `create_unix_server` (asyncio's keyword arguments).
struct server_options {
    /// The listen() backlog; also the most connections accepted per readiness.
    int backlog = 100;
    /// SO_REUSEADDR (TCP only): bind even if a recently closed server's connections linger in
    /// TIME_WAIT. On by default, as asyncio on Unix.
    bool reuse_address = true;
    /// SO_REUSEPORT (TCP only): several servers may bind the same port. Throws
    /// `std::invalid_argument` where the system lacks it.
    bool reuse_port = false;
    /// AF_INET or AF_INET6 to bind only addresses of that family; AF_UNSPEC for both.
    int family = AF_UNSPEC;
    /// Start accepting at once; otherwise call `start_serving()` or `serve_forever()` (the
    /// sockets are bound but not listening until then: connections are refused).
    bool start_serving = true;
};

/// \cond INTERNAL
namespace detail {

/// The protocol factory of a server, type-erased (move-only factories work too).
class protocol_factory_base {
public:
    virtual ~protocol_factory_base() = default;
    virtual std::shared_ptr<protocol> make() = 0;
};

template <class F>
class protocol_factory_impl final : public protocol_factory_base {
public:
    explicit protocol_factory_impl(F f) : m_fn(std::move(f)) {}
    std::shared_ptr<protocol> make() override { return m_fn(); }

private:
    F m_fn;
};

/// The element type of the shared_ptr a protocol factory returns, checked.
template <class Factory>
struct factory_traits {
    using pointer = std::invoke_result_t<Factory&>;
    using element = typename pointer::element_type;
    static_assert(std::is_same_v<pointer, std::shared_ptr<element>>,
                  "corio: the protocol factory must return a std::shared_ptr<P>");
    static_assert(std::is_base_of_v<protocol, element>,
                  "corio: a stream protocol must derive from corio::protocol");
};

/// asyncio's ACCEPT_RETRY_DELAY: how long a server stops accepting after accept() ran out of
/// file descriptors or memory.
inline constexpr std::chrono::seconds accept_retry_delay{1};

/// What a `corio::server` handle shares: asyncio's Server plus the listening sockets' accept
/// loops (selector_events._accept_connection). Owned by the loop (loop_registry) until closed;
/// connections hold it too (to report their end, for wait_closed).
class server_state final : public loop_resource,
                           public connection_owner,
                           public std::enable_shared_from_this<server_state> {
public:
    struct listener {
        unique_fd fd;
        address addr;
        bool reading = false;
        timer_handle retry; ///< the accept retry after EMFILE & co
    };

    server_state(event_loop& loop, std::vector<listener> listeners,
                 std::unique_ptr<protocol_factory_base> factory, int backlog)
        : m_loop(&loop), m_listeners(std::move(listeners)), m_factory(std::move(factory)),
          m_backlog(backlog > 0 ? backlog : 1) {
        if (!m_listeners.empty()) m_port = m_listeners.front().addr.port();
    }
    server_state(const server_state&) = delete;
    server_state& operator=(const server_state&) = delete;

    /// A Unix server removes its socket file when closed, if it is still the one it bound.
    void set_unix_cleanup(std::string path, dev_t dev, ino_t ino) {
        m_unix_path = std::move(path);
        m_unix_dev = dev;
        m_unix_ino = ino;
    }

    /// The loop takes ownership.
    void attach_to_loop() {
        m_registry = &loop_registry::of(*m_loop);
        m_registry->add(shared_from_this());
    }

    bool live() const noexcept { return m_loop && !m_loop->is_closed(); }
    bool closed() const noexcept { return m_closed; }
    bool serving() const noexcept { return m_serving; }
    int port() const noexcept { return m_port; }
    event_loop* loop() const noexcept { return m_loop; }

    std::vector<address> addresses() const {
        std::vector<address> out;
        if (m_closed) return out;
        for (const listener& l : m_listeners) out.push_back(l.addr);
        return out;
    }

    /// asyncio's Server._start_serving: listen() and watch every socket.
    void start_serving() {
        if (m_serving || m_closed || !live()) return;
        for (listener& l : m_listeners)
            if (::listen(l.fd.get(), m_backlog) != 0) throw_os_error(errno, "listen");
        m_serving = true;
        for (std::size_t i = 0; i < m_listeners.size(); ++i) watch(i);
    }

    /// asyncio's Server.close: stop listening; connections stay.
    void close() {
        if (m_closed) return;
        auto keep = shared_from_this(); // the registry may hold the last reference
        m_closed = true;
        m_serving = false;
        for (listener& l : m_listeners) {
            l.retry.cancel();
            if (l.reading && live()) m_loop->remove_reader(l.fd.get());
            l.reading = false;
            l.fd.reset();
        }
        unlink_unix_path();
        if (m_serving_forever) {
            future<void> f = std::move(*m_serving_forever);
            m_serving_forever.reset();
            if (!f.done() && live()) f.cancel();
        }
        if (m_connections.empty()) wake_closed_waiters();
        std::shared_ptr<loop_resource> owned;
        if (m_registry) owned = m_registry->remove(this);
        m_registry = nullptr;
    }

    void close_clients() {
        for (const auto& t : connections()) t->close();
    }
    void abort_clients() {
        for (const auto& t : connections()) t->abort();
    }

    /// asyncio's Server.wait_closed (3.12.1+): until closed and every connection is lost.
    static task<> wait_closed(std::shared_ptr<server_state> s) {
        if (s->m_waiters_done || !s->live()) co_return;
        std::erase_if(s->m_waiters, [](const future<void>& f) { return f.done(); });
        future<void> f(*s->m_loop);
        s->m_waiters.push_back(f);
        co_await f;
    }

    /// asyncio's Server.serve_forever, except that on cancellation it closes the server
    /// without waiting for its connections (see corio::server::serve_forever).
    static task<> serve_forever(std::shared_ptr<server_state> s) {
        if (s->m_serving_forever)
            throw std::runtime_error("server is already being awaited on serve_forever()");
        if (s->m_closed || !s->live()) throw std::runtime_error("server is closed");
        s->start_serving();
        future<void> f(*s->m_loop);
        s->m_serving_forever = f;
        try {
            co_await f; // completes only by cancellation: of this task, or by close()
        } catch (const cancelled_error&) {
            if (s->m_serving_forever && *s->m_serving_forever == f) s->m_serving_forever.reset();
            s->close();
            throw;
        }
    }

    // --- connection_owner -------------------------------------------------------------------

    void connection_attached(stream_transport& t) override { m_connections.insert(&t); }
    void connection_detached(stream_transport& t) noexcept override {
        m_connections.erase(&t);
        if (m_connections.empty() && m_closed) wake_closed_waiters();
    }

    // --- loop_resource ----------------------------------------------------------------------

    void loop_closed() noexcept override {
        m_loop = nullptr;
        m_registry = nullptr;
        m_closed = true;
        m_serving = false;
        for (listener& l : m_listeners) {
            l.reading = false;
            l.fd.reset();
        }
        unlink_unix_path();
        m_serving_forever.reset();
        m_waiters.clear();
        m_waiters_done = true;
        // The registry releases the connections too (they do not detach themselves): keep no
        // pointer to them, or close_clients() on a handle kept past the loop would use them.
        m_connections.clear();
    }

private:
    std::vector<std::shared_ptr<stream_transport>> connections() const {
        std::vector<std::shared_ptr<stream_transport>> out;
        out.reserve(m_connections.size());
        for (stream_transport* t : m_connections)
            out.push_back(std::shared_ptr<stream_transport>(t->shared_from_this(), t));
        return out;
    }

    void wake_closed_waiters() noexcept {
        if (m_waiters_done) return;
        m_waiters_done = true;
        std::vector<future<void>> ws;
        ws.swap(m_waiters);
        if (!live()) return;
        for (future<void>& f : ws)
            if (!f.done()) f.set_result();
    }

    void unlink_unix_path() noexcept {
        if (m_unix_path.empty()) return;
        struct stat st{};
        if (::stat(m_unix_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
            st.st_dev == m_unix_dev && st.st_ino == m_unix_ino)
            ::unlink(m_unix_path.c_str());
        m_unix_path.clear();
    }

    void watch(std::size_t i) {
        listener& l = m_listeners[i];
        if (l.reading || !l.fd || !live()) return;
        m_loop->add_reader(l.fd.get(), [this, i] { on_acceptable(i); });
        l.reading = true;
    }

    /// asyncio's _accept_connection: accept what is pending (at most `backlog` per readiness).
    void on_acceptable(std::size_t i) {
        auto keep = shared_from_this(); // a connection_made may close the server
        for (int n = 0; n < m_backlog && m_serving; ++n) {
            address peer;
            const int fd = accept_socket(m_listeners[i].fd.get(), &peer);
            if (fd < 0) {
                const int e = errno;
                if (is_transient_accept_error(e)) return;
                if (is_resource_accept_error(e)) {
                    out_of_resources(i, e);
                    return;
                }
                throw_os_error(e, "accept"); // reported by the loop ("Exception in callback")
            }
            unique_fd conn(fd);
            if (peer.family() == AF_INET || peer.family() == AF_INET6) set_tcp_nodelay(fd);
            accept_one(std::move(conn), peer);
        }
    }

    /// EMFILE, ENFILE, ENOBUFS, ENOMEM: level-triggered readiness would report the socket again
    /// at once, so stop watching it for a while (existing connections are served meanwhile).
    void out_of_resources(std::size_t i, int err) {
        listener& l = m_listeners[i];
        m_loop->call_exception_handler(
            {"socket.accept() out of system resource",
             std::make_exception_ptr(std::system_error(err, std::generic_category(), "accept")),
             {}});
        if (l.reading) m_loop->remove_reader(l.fd.get());
        l.reading = false;
        std::weak_ptr<server_state> weak = weak_from_this();
        l.retry = m_loop->call_later(accept_retry_delay, [weak, i] {
            if (auto s = weak.lock(); s && s->m_serving) s->watch(i);
        });
    }

    void accept_one(unique_fd conn, const address& peer) noexcept {
        try {
            std::shared_ptr<protocol> p = m_factory->make();
            if (!p) throw std::invalid_argument("corio: the protocol factory returned a null pointer");
            auto t = std::make_shared<stream_transport>(*m_loop, std::move(conn), std::move(p),
                                                        stream_transport::kind::socket,
                                                        shared_from_this(), peer);
            t->start();
        } catch (...) {
            if (live())
                m_loop->call_exception_handler(
                    {"Error on transport creation for incoming connection", std::current_exception(), {}});
        }
    }

    event_loop* m_loop;
    loop_registry* m_registry = nullptr;
    std::vector<listener> m_listeners;
    std::unique_ptr<protocol_factory_base> m_factory;
    int m_backlog;
    int m_port = 0;
    std::unordered_set<stream_transport*> m_connections;
    std::vector<future<void>> m_waiters;
    std::optional<future<void>> m_serving_forever;
    std::string m_unix_path;
    dev_t m_unix_dev = 0;
    ino_t m_unix_ino = 0;
    bool m_serving = false;
    bool m_closed = false;
    bool m_waiters_done = false;
};

/// Suspends until `fd` is writable (the end of a non-blocking connect). The writer is removed
/// however the wait ends (cancellation included).
inline task<> wait_writable(event_loop& loop, int fd) {
    future<void> ready(loop);
    loop.add_writer(fd, [ready]() mutable {
        if (!ready.done()) ready.set_result();
    });
    struct remove_writer_guard {
        event_loop& loop;
        int fd;
        ~remove_writer_guard() {
            if (!loop.is_closed()) loop.remove_writer(fd);
        }
    };
    remove_writer_guard guard{loop, fd};
    co_await ready;
}

/// asyncio's _connect_sock + sock_connect: a new socket of `to`'s family, bound to `local`
/// if given, connected to `to`. The socket lives in this coroutine's frame until returned, so
/// a cancellation (or an error) closes it.
inline task<unique_fd> connect_stream_socket(event_loop& loop, address to, std::optional<address> local) {
    unique_fd fd = open_socket(to.family(), SOCK_STREAM);
    if (local) {
        if (local->family() != to.family())
            throw_os_error(EAFNOSUPPORT, "no matching local address with family " +
                                             std::to_string(to.family()) + " found (local_addr " +
                                             local->to_string() + ")");
        if (::bind(fd.get(), local->data(), local->size()) != 0) {
            const int e = errno; // before the message is built: that may change errno
            throw_os_error(e, "error while attempting to bind on address " + local->to_string());
        }
    }
    if (::connect(fd.get(), to.data(), to.size()) == 0) co_return fd;
    int err = errno;
    if (to.family() == AF_UNIX && err == EAGAIN) {
        // A Unix listener's backlog is full: Linux does not queue the connect (it is not in
        // progress, and the socket reports writable at once), so try again a little later.
        for (auto delay = std::chrono::milliseconds(1);; delay = std::min(delay * 2, std::chrono::milliseconds(100))) {
            co_await sleep(delay);
            if (::connect(fd.get(), to.data(), to.size()) == 0) co_return fd;
            err = errno;
            if (err != EAGAIN) break;
        }
    } else if (err == EINPROGRESS || err == EINTR || err == EAGAIN) {
        co_await wait_writable(loop, fd.get());
        err = socket_error(fd.get());
        if (err == 0) co_return fd;
    }
    throw_os_error(err, "Connect call failed " + to.to_string());
}

/// asyncio's "Multiple exceptions: ..." when every address failed.
[[noreturn]] inline void throw_connect_errors(const std::vector<std::system_error>& errors) {
    if (errors.empty()) throw_os_error(EHOSTUNREACH, "create_connection: no address to connect to");
    const std::string first = errors.front().what();
    bool same = true;
    for (const auto& e : errors) same = same && first == e.what();
    if (same) throw errors.front();
    std::string msg = "Multiple exceptions: ";
    for (std::size_t i = 0; i < errors.size(); ++i) {
        if (i) msg += ", ";
        msg += errors[i].what();
    }
    throw std::system_error(errors.back().code(), msg);
}

/// The transport over a connected socket, started (connection_made has run).
template <class P>
std::pair<std::shared_ptr<transport>, std::shared_ptr<P>> start_connection(event_loop& loop, unique_fd fd,
                                                                           std::shared_ptr<P> proto) {
    if (!proto) throw std::invalid_argument("corio: the protocol factory returned a null pointer");
    auto t = std::make_shared<stream_transport>(loop, std::move(fd), proto, stream_transport::kind::socket);
    t->start();
    return {std::move(t), std::move(proto)};
}

/// Binds one listening socket per address (asyncio's create_server loop): SO_REUSEADDR,
/// SO_REUSEPORT, IPV6_V6ONLY. EADDRNOTAVAIL skips the address (its family is not enabled).
inline std::vector<server_state::listener> bind_stream_listeners(const std::vector<address>& addrs,
                                                                 const server_options& opts) {
    std::vector<server_state::listener> out;
    for (const address& a : addrs) {
        unique_fd fd;
        try {
            fd = open_socket(a.family(), SOCK_STREAM);
        } catch (const std::system_error&) { // a family the system does not support
            continue;
        }
        if (opts.reuse_address)
            set_socket_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)");
        if (opts.reuse_port) {
#ifdef SO_REUSEPORT
            set_socket_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "setsockopt(SO_REUSEPORT)");
#else
            throw std::invalid_argument("corio: reuse_port is not supported on this system");
#endif
        }
        // One socket per family: Linux would otherwise make a v6 wildcard socket take v4 too,
        // and the v4 socket bound next would fail with EADDRINUSE.
        if (a.family() == AF_INET6)
            set_socket_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 1, "setsockopt(IPV6_V6ONLY)");
        if (::bind(fd.get(), a.data(), a.size()) != 0) {
            const int e = errno;
            if (e == EADDRNOTAVAIL) continue;
            throw_os_error(e, "error while attempting to bind on address " + a.to_string());
        }
        server_state::listener l;
        l.addr = socket_local_address(fd.get());
        l.fd = std::move(fd);
        out.push_back(std::move(l));
    }
    if (out.empty()) {
        std::string list;
        for (const address& a : addrs) list += (list.empty() ? "" : ", ") + a.to_string();
        throw_os_error(EADDRNOTAVAIL, "could not bind on any address out of [" + list + "]");
    }
    return out;
}

template <class Factory>
std::shared_ptr<server_state> make_server(event_loop& loop, std::vector<server_state::listener> ls,
                                          Factory factory, const server_options& opts) {
    auto st = std::make_shared<server_state>(
        loop, std::move(ls), std::make_unique<protocol_factory_impl<Factory>>(std::move(factory)),
        opts.backlog);
    return st;
}

/// Starts serving a new server; if that fails (listen), closes it and rethrows.
inline void start_or_close(server_state& st) {
    try {
        st.start_serving();
    } catch (...) {
        st.close();
        throw;
    }
}

} // namespace detail
/// \endcond

/// A listening server (asyncio's `Server`), made by `create_server`, `create_unix_server` (and
/// the streams' `start_server`). A copyable handle: copies refer to the same server. Dropping
/// every handle neither closes the server nor stops it: the loop keeps it until `close()` (or
/// until the loop closes, which releases it and its connections).
///
/// Loop-thread only, like the loop's other objects.
class server {
public:
    /// An empty handle (for members assigned later); only assignment, `operator bool` and
    /// comparison may be used on it.
    server() = default;
    /// Wraps a server's state (corio's own functions make these).
    explicit server(std::shared_ptr<detail::server_state> s) noexcept : m_state(std::move(s)) {}

    /// True unless the handle is empty.
    explicit operator bool() const noexcept { return m_state != nullptr; }

    /// The port of the first listening socket (the real one when port 0 was asked for); still
    /// given after close(). 0 for a Unix server.
    int port() const noexcept { return m_state->port(); }
    /// The addresses the server listens on (asyncio's `[s.getsockname() for s in
    /// server.sockets]`): one per socket, e.g. both `0.0.0.0:P1` and `[::]:P2` for host "".
    /// Empty once closed.
    std::vector<address> addresses() const { return m_state->addresses(); }

    /// Stops listening: the listening sockets are closed (a Unix server's socket file is
    /// removed), `serve_forever()` is cancelled; connections already accepted stay open
    /// (`close_clients()` closes them). Idempotent.
    void close() { m_state->close(); }
    /// True while accepting connections.
    bool is_serving() const noexcept { return m_state->serving(); }
    /// Starts listening and accepting (for a server made with `start_serving = false`).
    /// Does nothing if already serving or closed. Throws `std::system_error` if listen() fails.
    void start_serving() { m_state->start_serving(); }

    /// Closes every connection of the server (asyncio 3.13): each flushes what it buffered,
    /// then its protocol's connection_lost is called.
    void close_clients() { m_state->close_clients(); }
    /// Aborts every connection of the server (asyncio 3.13): buffered data is dropped.
    void abort_clients() { m_state->abort_clients(); }

    /// `co_await srv.wait_closed()`: waits until the server is closed and every connection it
    /// accepted has been lost (asyncio 3.12.1+), at once if that is so already.
    /// Cancellation: only the waiting stops.
    [[nodiscard]] task<> wait_closed() const { return detail::server_state::wait_closed(m_state); }

    /// `co_await srv.serve_forever()`: starts serving if needed and waits until cancelled.
    /// When the awaiting task is cancelled it closes the server and rethrows `cancelled_error`;
    /// `close()` called elsewhere also ends it with `cancelled_error` (as in asyncio). Unlike
    /// asyncio 3.12 it does not then wait for the server's connections to end (which would
    /// hang a SIGTERM shutdown on one idle keep-alive connection): follow it with
    /// `close_clients()` and `co_await wait_closed()` for that. Throws `std::runtime_error` if
    /// the server is closed or another `serve_forever` is already waiting on it.
    [[nodiscard]] task<> serve_forever() const { return detail::server_state::serve_forever(m_state); }

    /// The loop the server runs on. Throws `std::runtime_error` once that loop is closed.
    event_loop& get_loop() const {
        if (!m_state->live()) throw std::runtime_error("Event loop is closed");
        return *m_state->loop();
    }

    /// True if both handles refer to the same server (or both are empty).
    friend bool operator==(const server& a, const server& b) noexcept { return a.m_state == b.m_state; }

private:
    std::shared_ptr<detail::server_state> m_state;
};

/// asyncio's `loop.create_connection(protocol_factory, host, port, family=, local_addr=)`:
/// resolves `host` (`corio::getaddrinfo`, off the loop thread unless numeric), then tries each
/// address in turn (no "happy eyeballs") with a non-blocking connect; on the first success
/// calls `factory()` for the protocol, makes the transport (TCP_NODELAY on), calls the
/// protocol's `connection_made` and starts reading. Gives `{transport, protocol}`; `P` is the
/// element type of the `std::shared_ptr` the factory returns, a `corio::protocol`.
///
/// Throws `std::system_error` when every address fails: the one error (e.g. ECONNREFUSED,
/// "Connect call failed 127.0.0.1:1"), or, when the addresses failed differently, one whose
/// message lists them all ("Multiple exceptions: ...", asyncio's words) and whose code is the
/// last one's; `corio::gai_error` if `host` does not resolve; whatever `factory()` or
/// `connection_made` throws (the connection is then closed, and connection_lost not called).
///
/// Cancellation: at any point before it returns (resolving, connecting) the socket is closed
/// and `cancelled_error` thrown; nothing leaks.
template <class Factory>
auto create_connection(Factory factory, std::string host, port_or_service port, connection_options opts = {})
    -> task<std::pair<std::shared_ptr<transport>, typename detail::factory_traits<Factory>::pointer>> {
    using P = typename detail::factory_traits<Factory>::element;
    event_loop& loop = get_running_loop();
    addrinfo_options hints;
    hints.family = opts.family;
    hints.type = SOCK_STREAM;
    const std::vector<address> addrs = co_await getaddrinfo(std::move(host), std::move(port), hints);
    std::vector<std::system_error> errors;
    detail::unique_fd fd;
    for (const address& a : addrs) {
        try {
            fd = co_await detail::connect_stream_socket(loop, a, opts.local_addr);
            break;
        } catch (const std::system_error& e) {
            errors.push_back(e);
        }
    }
    if (!fd) detail::throw_connect_errors(errors);
    detail::set_tcp_nodelay(fd.get());
    std::shared_ptr<P> proto = factory();
    co_return detail::start_connection(loop, std::move(fd), std::move(proto));
}

/// asyncio's `loop.create_unix_connection(protocol_factory, path)`: as create_connection, to
/// the Unix stream socket at `path` (a path starting with '\0' is a Linux abstract name).
/// Throws `std::system_error` (ENOENT if nothing is there, ECONNREFUSED if nobody listens),
/// `std::invalid_argument` for a path too long for `sockaddr_un`. Cancellation closes the
/// socket.
template <class Factory>
auto create_unix_connection(Factory factory, std::string path)
    -> task<std::pair<std::shared_ptr<transport>, typename detail::factory_traits<Factory>::pointer>> {
    using P = typename detail::factory_traits<Factory>::element;
    event_loop& loop = get_running_loop();
    const address to = address::unix_path(path);
    detail::unique_fd fd = co_await detail::connect_stream_socket(loop, to, std::nullopt);
    std::shared_ptr<P> proto = factory();
    co_return detail::start_connection(loop, std::move(fd), std::move(proto));
}

/// asyncio's `loop.create_server(protocol_factory, host, port, ...)`: binds a listening socket
/// for each address `host` resolves to (with AI_PASSIVE; an empty host means every interface,
/// IPv4 and IPv6, as asyncio's `None` or `''`; "0.0.0.0" means every IPv4 interface), with
/// SO_REUSEADDR (by default) and IPV6_V6ONLY on IPv6 sockets. Port 0 picks a free port (a
/// different one per socket when there are several): read it with `server::port()`. Then,
/// unless `opts.start_serving` is false, listens and accepts: for each connection, the
/// socket is made non-blocking and close-on-exec with TCP_NODELAY, `factory()` gives its
/// protocol, whose `connection_made` is called, and reading starts.
///
/// Errors while serving go to the loop's exception handler: an exception from `factory()` or
/// `connection_made` ("Error on transport creation for incoming connection"; that connection
/// is closed), and accept() running out of file descriptors or memory (EMFILE, ENFILE,
/// ENOBUFS, ENOMEM: "socket.accept() out of system resource"), after which the server stops
/// accepting for one second (asyncio's ACCEPT_RETRY_DELAY) and then resumes, while existing
/// connections are served as usual.
///
/// Throws `std::system_error` if binding fails (EADDRINUSE: "error while attempting to bind on
/// address ..."), `corio::gai_error` if `host` does not resolve. Cancellation: while
/// resolving (names only); nothing is bound yet then.
template <class Factory>
task<server> create_server(Factory factory, std::string host, port_or_service port, server_options opts = {}) {
    (void)sizeof(detail::factory_traits<Factory>);
    event_loop& loop = get_running_loop();
    addrinfo_options hints;
    hints.family = opts.family;
    hints.type = SOCK_STREAM;
    hints.flags = AI_PASSIVE;
    const std::vector<address> addrs = co_await getaddrinfo(std::move(host), std::move(port), hints);
    auto st = detail::make_server(loop, detail::bind_stream_listeners(addrs, opts), std::move(factory), opts);
    st->attach_to_loop();
    if (opts.start_serving) detail::start_or_close(*st);
    co_return server(std::move(st));
}

/// asyncio's `loop.create_unix_server(protocol_factory, path, ...)`: a listening Unix stream
/// socket at `path` (a path starting with '\0' is a Linux abstract name, with no file). A
/// stale socket file left at `path` by an earlier server is removed first (asyncio 3.12;
/// anything else there makes bind fail with EADDRINUSE), and the file is removed again when the
/// server closes, if it is still the one this server made (asyncio 3.13's cleanup_socket).
/// Only `opts.backlog` and `opts.start_serving` apply. Throws `std::system_error`
/// (EADDRINUSE: "Address 'PATH' is already in use"), `std::invalid_argument` for a path too
/// long for `sockaddr_un`. Never suspends.
template <class Factory>
task<server> create_unix_server(Factory factory, std::string path, server_options opts = {}) {
    (void)sizeof(detail::factory_traits<Factory>);
    event_loop& loop = get_running_loop();
    const address at = address::unix_path(path);
    const bool abstract = path[0] == '\0';
    if (!abstract) {
        struct stat st{};
        if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
    }
    detail::unique_fd fd = detail::open_socket(AF_UNIX, SOCK_STREAM);
    if (::bind(fd.get(), at.data(), at.size()) != 0) {
        const int e = errno;
        if (e == EADDRINUSE) detail::throw_os_error(e, "Address '" + at.to_string() + "' is already in use");
        detail::throw_os_error(e, "error while attempting to bind on address '" + at.to_string() + "'");
    }
    std::vector<detail::server_state::listener> ls(1);
    ls[0].addr = at;
    ls[0].fd = std::move(fd);
    auto st = detail::make_server(loop, std::move(ls), std::move(factory), opts);
    if (!abstract) {
        struct stat sb{};
        if (::stat(path.c_str(), &sb) == 0) st->set_unix_cleanup(path, sb.st_dev, sb.st_ino);
    }
    st->attach_to_loop();
    if (opts.start_serving) detail::start_or_close(*st);
    co_return server(std::move(st));
}

/// \cond INTERNAL
template <class Factory, class... Args>
auto event_loop::create_connection(Factory&& factory, Args&&... args) {
    return corio::create_connection(std::forward<Factory>(factory), std::forward<Args>(args)...);
}
template <class Factory, class... Args>
auto event_loop::create_server(Factory&& factory, Args&&... args) {
    return corio::create_server(std::forward<Factory>(factory), std::forward<Args>(args)...);
}
template <class Factory, class... Args>
auto event_loop::create_unix_connection(Factory&& factory, Args&&... args) {
    return corio::create_unix_connection(std::forward<Factory>(factory), std::forward<Args>(args)...);
}
template <class Factory, class... Args>
auto event_loop::create_unix_server(Factory&& factory, Args&&... args) {
    return corio::create_unix_server(std::forward<Factory>(factory), std::forward<Args>(args)...);
}
/// \endcond

} // namespace corio
// ---- end corio/net.hpp ----
// ---- begin corio/pool_executor.hpp (included from corio/corio.hpp) ----
/// \file corio/pool_executor.hpp
/// `corio::async_pool_executor<T>`: the AsyncPoolExecutor of the port-scanner article ("Concurrency
/// in Python: Asyncio"), a ThreadPoolExecutor for coroutines that never runs more than
/// `max_executions` of them at once.
///
///     corio::async_pool_executor<result> runner(250);     // runner = AsyncPoolExecutor(250)
///     for (auto& ip : devices)                            // for ip in devices:
///         for (auto& service : services)                  //     for service in services:
///             runner.add(check_a_port(ip, service));      //         runner.add(check_a_port(ip, service))
///     auto done = runner.as_completed();                  // async for task in runner.as_completed():
///     while (auto f = co_await done.next()) {
///         auto [ip, service, err] = f->result();          //     ip, service, err = task.result()
///         ...
///     }
///
/// `add()` only queues: a `task<T>` is lazy, so a queued item is its coroutine frame and nothing
/// more (a callable is wrapped in a lazy coroutine that calls it when the item starts). A million
/// queued items cost a million frames and a pointer each, and none of them runs before
/// `as_completed()` starts it.
///
/// `as_completed()` is an `async_generator<future<T>>`. Each `next()` starts queued items as
/// tasks until `max_executions` run, waits until one finishes, and gives its future (done: a
/// value, or the error the item threw, which `result()` rethrows). Items come out in the order
/// they finished. A finished item keeps its slot until its future is handed out (so at most
/// `max_executions` items are running or waiting to be handed out); then the slot goes to the
/// next queued item at once, before the consumer has looked at the result.
///
/// Stopping early:
/// - The consumer's task cancelled while `next()` waits: the running items are cancelled, the
///   generator waits for them to finish, then `next()` throws the `cancelled_error`. Queued
///   items are not started (they stay queued; a later `as_completed()` runs them).
/// - The generator destroyed before the end (the consumer stopped reading): the running items
///   are cancelled and finish on the loop by themselves. Queued items stay queued.
///
/// In both cases an item already handed to the loop whose first step had not run yet is not
/// lost: it goes back to the front of the queue, unstarted. An item that finished with an error
/// nobody saw (its future never handed out, or it failed while being cancelled) is reported as
/// "Task exception was never retrieved" through the loop's exception handler, as for any task.



namespace corio {

template <class T>
class async_pool_executor;

namespace detail {

template <class T>
class pool_run;


/// One running item: the task that runs it, and the node by which the task's completion reaches
/// the run. Lives in a deque (stable address) for as long as the run, reused through a free list.
template <class T>
struct pool_slot : future_waiter {
    pool_run<T>* run = nullptr;
    task_handle<T> handle;     ///< the launcher task; empty while the slot is free
    task<T> item;              ///< the item, until the launcher's first step takes it
    std::uint64_t seq = 0;     ///< the order in which items left the queue
    pool_slot* link = nullptr; ///< next in the run's done list or free list
};

/// The task that runs one item. The item stays in its slot until this task's first step takes
/// it: a launcher cancelled before that step never runs (asyncio: a task cancelled before it
/// starts never starts), and its item, never started, goes back to the queue.
template <class T>
task<T> pool_launch(task<T>* slot_item) {
    task<T> item = std::move(*slot_item);
    if constexpr (std::is_void_v<T>) {
        co_await std::move(item);
    } else {
        co_return co_await std::move(item);
    }
}

/// The state of one `as_completed()` run, a local of the generator's frame: the running items,
/// those finished and not handed out yet (in the order they finished), and the generator's
/// task while it waits. Nothing here allocates when an item finishes.
template <class T>
class pool_run {
public:
    pool_run(std::deque<task<T>>& queue, std::size_t max, bool& active)
        : m_queue(queue), m_max(max), m_active(active) {
        if (m_active)
            throw invalid_state_error(
                "corio: async_pool_executor::as_completed() is already running");
        m_active = true;
    }
    pool_run(const pool_run&) = delete;
    pool_run& operator=(const pool_run&) = delete;

    /// Cancels what still runs (it finishes on the loop by itself), puts the items that never
    /// started back at the front of the queue, in their order, and drops the rest.
    ~pool_run() {
        for (pool_slot<T>& s : m_slots) {
            if (!s.handle) continue;
            s.handle.core()->remove_waiter(&s);
            try {
                s.handle.cancel(); // a launcher that has not run yet never will
            } catch (...) {        // only on a closed loop, where every task is done already
            }
        }
        requeue_unstarted();
        m_active = false;
    }

    /// Starts queued items while fewer than the maximum are running or waiting to be handed out.
    void fill() {
        while (!m_queue.empty() && m_occupied < m_max) {
            if (!m_free) { // a new slot, on the free list before anything can throw
                pool_slot<T>& fresh = m_slots.emplace_back();
                fresh.run = this;
                fresh.on_done = &on_item_done;
                m_free = &fresh;
            }
            pool_slot<T>* s = m_free;
            s->item = std::move(m_queue.front());
            m_queue.pop_front();
            task_handle<T> h;
            try {
                h = corio::create_task(pool_launch(&s->item));
            } catch (...) {
                m_queue.push_front(std::move(s->item));
                throw;
            }
            m_free = s->link;
            s->link = nullptr;
            s->seq = m_next_seq++;
            s->handle = std::move(h);
            ++m_occupied;
            ++m_running;
            s->handle.core()->add_waiter(s);
        }
    }

    /// True when nothing runs and nothing waits to be handed out.
    bool empty() const noexcept { return m_occupied == 0; }
    bool has_done() const noexcept { return m_done_head != nullptr; }
    std::size_t running() const noexcept { return m_running; }

    /// The next finished item, in the order they finished; frees its slot.
    future<T> pop_done() noexcept {
        pool_slot<T>* s = m_done_head;
        m_done_head = s->link;
        if (!m_done_head) m_done_tail = nullptr;
        future<T> f(std::move(s->handle)); // leaves the slot's handle empty
        s->link = m_free;
        m_free = s;
        --m_occupied;
        return f;
    }

    /// Cancels every running item.
    void cancel_running() noexcept {
        for (pool_slot<T>& s : m_slots) {
            if (!s.handle || s.handle.done()) continue;
            try {
                s.handle.cancel();
            } catch (...) {
            }
        }
    }

    /// Suspends the generator's task until an item finishes (`until_idle`: until none runs).
    class wait_awaiter : public task_waiter {
    public:
        wait_awaiter(pool_run& run, bool until_idle) noexcept : m_run(run), m_until_idle(until_idle) {
            task_waiter::cancel = &on_cancel;
        }
        wait_awaiter(const wait_awaiter&) = delete;
        wait_awaiter& operator=(const wait_awaiter&) = delete;
        ~wait_awaiter() {
            if (m_run.m_waiter == this) m_run.m_waiter = nullptr;
        }
        bool await_ready() const noexcept { return m_run.satisfied(m_until_idle); }
        void await_suspend(std::coroutine_handle<> h) {
            task_core& t = require_current_task();
            m_task = &t;
            m_run.m_waiter = this;
            t.suspend_on(h, this);
        }
        void await_resume() {
            if (m_task) m_task->throw_if_cancel_delivered();
        }

    private:
        friend class pool_run;
        static bool on_cancel(task_waiter* w, const std::string& msg) {
            auto* self = static_cast<wait_awaiter*>(w);
            self->m_run.m_waiter = nullptr;
            self->m_task->wake_cancelled(msg);
            return true;
        }
        pool_run& m_run;
        bool m_until_idle;
        task_core* m_task = nullptr;
    };

    wait_awaiter wait_for_one() noexcept { return wait_awaiter(*this, false); }
    wait_awaiter wait_for_all() noexcept { return wait_awaiter(*this, true); }

private:
    bool satisfied(bool until_idle) const noexcept {
        return until_idle ? m_running == 0 : has_done();
    }

    /// Items whose launcher never ran go back to the front of the queue, oldest first.
    void requeue_unstarted() noexcept {
        try {
            std::vector<pool_slot<T>*> back;
            for (pool_slot<T>& s : m_slots)
                if (s.item) back.push_back(&s);
            std::sort(back.begin(), back.end(),
                      [](const pool_slot<T>* a, const pool_slot<T>* b) { return a->seq > b->seq; });
            for (pool_slot<T>* s : back) m_queue.push_front(std::move(s->item));
        } catch (...) { // out of memory: those items are dropped unstarted
        }
    }

    /// The future's waiter node fired: called inside the item's completion (in its task's step),
    /// after the node left the future's list.
    static void on_item_done(future_waiter* w) noexcept {
        auto* s = static_cast<pool_slot<T>*>(w);
        pool_run& r = *s->run;
        --r.m_running;
        s->link = nullptr;
        if (r.m_done_tail) r.m_done_tail->link = s;
        else r.m_done_head = s;
        r.m_done_tail = s;
        if (r.m_waiter && r.satisfied(r.m_waiter->m_until_idle))
            std::exchange(r.m_waiter, nullptr)->m_task->wake();
    }

    std::deque<task<T>>& m_queue;
    std::size_t m_max;
    bool& m_active;
    std::deque<pool_slot<T>> m_slots; // grows up to m_max, never shrinks during the run
    pool_slot<T>* m_free = nullptr;
    pool_slot<T>* m_done_head = nullptr;
    pool_slot<T>* m_done_tail = nullptr;
    std::size_t m_occupied = 0; ///< slots holding an item, running or done
    std::size_t m_running = 0;  ///< of those, the ones not done
    std::uint64_t m_next_seq = 0;
    wait_awaiter* m_waiter = nullptr;
};

} // namespace detail

/// asyncio has no task pool; the port-scanner article writes one, AsyncPoolExecutor, and this is
/// it. See the file comment of corio/pool_executor.hpp.
///
/// `T` is the items' result type (`void` allowed). The executor must outlive the generators
/// `as_completed()` returns. A loop-thread object; not copyable or movable (a running
/// `as_completed()` refers to it).
template <class T>
class async_pool_executor {
public:
    /// The items' result type.
    using value_type = T;

    /// An executor that runs at most `max_executions` items at once. Throws
    /// `std::invalid_argument` if `max_executions` is 0.
    explicit async_pool_executor(std::size_t max_executions) : m_max(max_executions) {
        if (max_executions == 0)
            throw std::invalid_argument("corio: async_pool_executor needs max_executions > 0");
    }
    async_pool_executor(const async_pool_executor&) = delete;
    async_pool_executor& operator=(const async_pool_executor&) = delete;

    /// Destroys the queued items without running them.
    ~async_pool_executor() = default;

    /// Queues `aw` without starting it: a `task<T>` (moved in; it is lazy), a callable
    /// returning an awaitable of `T` (moved into a lazy coroutine that calls it when the item
    /// starts), or another awaitable of `T` (e.g. a future). May be called while
    /// `as_completed()` runs: the item is started when a slot is free. Throws what allocating
    /// the queue entry (or the wrapper coroutine) throws.
    template <class Aw>
    void add(Aw&& aw) {
        auto t = detail::as_task(std::forward<Aw>(aw));
        static_assert(std::is_same_v<typename decltype(t)::value_type, T>,
                      "corio: the item's result type must be the executor's T");
        m_queue.push_back(std::move(t));
    }

    /// The article's `as_completed()`: an `async_generator<future<T>>` whose `next()` gives the
    /// future of each item as it finishes (see the file comment), keeping at most
    /// `max_executions()` running; `std::nullopt` once the queue is empty and every item has
    /// been handed out. An item's error is in its future, not thrown by `next()`.
    ///
    /// Cancellation of the consumer's task while `next()` waits: the running items are
    /// cancelled and waited for, then `next()` throws `cancelled_error`. Throws (from the first
    /// `next()`) `invalid_state_error` if another `as_completed()` of this executor is running.
    async_generator<future<T>> as_completed() {
        detail::pool_run<T> run(m_queue, m_max, m_active);
        for (;;) {
            run.fill();
            if (run.empty()) co_return; // and the queue is empty: fill() would have started one
            if (!run.has_done()) {
                std::exception_ptr cancelled;
                try {
                    co_await run.wait_for_one();
                } catch (const cancelled_error&) {
                    cancelled = std::current_exception();
                }
                if (cancelled) {
                    run.cancel_running();
                    while (run.running() > 0) {
                        try {
                            co_await run.wait_for_all();
                        } catch (const cancelled_error&) { // already cancelling: keep waiting
                        }
                    }
                    std::rethrow_exception(cancelled);
                }
            }
            while (run.has_done()) {
                future<T> f = run.pop_done();
                run.fill(); // the freed slot goes to the next item before this one is handed out
                co_yield std::move(f);
            }
        }
    }

    /// The most items that run at once.
    std::size_t max_executions() const noexcept { return m_max; }
    /// How many items are queued and not started.
    std::size_t size() const noexcept { return m_queue.size(); }

private:
    std::size_t m_max;
    std::deque<task<T>> m_queue;
    bool m_active = false;
};

} // namespace corio
// ---- end corio/pool_executor.hpp ----
// ---- begin corio/queue.hpp (included from corio/corio.hpp) ----
/// \file corio/queue.hpp
/// asyncio's queues: `corio::queue<T>` (FIFO), `corio::priority_queue<T>` (smallest first) and
/// `corio::lifo_queue<T>` (last in, first out), for tasks of one loop.
///
///     corio::queue<int> q(10);                // asyncio.Queue(maxsize=10)
///     co_await q.put(1);                      // await q.put(1): waits while the queue is full
///     int v = co_await q.get();               // await q.get(): waits while it is empty
///     q.task_done();
///     co_await q.join();                      // until every item put was task_done()
///
/// ## Fairness and cancellation
/// Tasks waiting in `get()` are served in the order they started waiting, and so are tasks
/// waiting in `put()`; a task that arrives while others wait queues behind them even if an
/// item (a slot) is there for the one just woken (asyncio lets the newcomer take it and sends
/// the woken getter to the back of the line). `get_nowait()`/`put_nowait()` never wait and
/// take what is there, as asyncio's do; a waiter they overtake that way waits again at the head
/// of the line. Cancelling a waiting task throws `cancelled_error` at its `co_await` and loses
/// nothing: a getter woken for an item and cancelled before it ran leaves the item to the next
/// getter; a putter that is cancelled does not enqueue its item (the item is destroyed with the
/// awaiter) and a free slot it had been woken for goes to the next putter.
///
/// ## Shutdown (Python 3.13)
/// After `shutdown()`, `put()`/`put_nowait()` throw `queue_shutdown`, and so do `get()` and
/// `get_nowait()` once the queue is empty; every blocked putter and getter is woken (getters
/// take what is left, then throw). `shutdown(true)` also drains the queue, counting each
/// discarded item as done for `join()`.
///
/// ## Allocation
/// `get()`/`put()` that complete at once allocate nothing; one that has to wait runs a small
/// coroutine (one allocation) whose waiter node lives in its frame.
///
/// ## Lifetime
/// As for the primitives of corio/locks.hpp: a queue destroyed while tasks wait on it (local to
/// a `main` that returned) ends their waits with `cancelled_error`, and they never touch it
/// again; the items it holds are destroyed with it.



namespace corio {

template <class T, class Storage>
class basic_queue;

namespace detail {

/// asyncio.Queue's deque.
template <class T>
class fifo_storage {
public:
    void push(T&& v) { m_items.push_back(std::move(v)); }
    T pop() {
        T v = std::move(m_items.front());
        m_items.pop_front();
        return v;
    }
    std::size_t size() const noexcept { return m_items.size(); }
    bool empty() const noexcept { return m_items.empty(); }
    void clear() noexcept { m_items.clear(); }

private:
    std::deque<T> m_items;
};

/// asyncio.LifoQueue's list.
template <class T>
class lifo_storage {
public:
    void push(T&& v) { m_items.push_back(std::move(v)); }
    T pop() {
        T v = std::move(m_items.back());
        m_items.pop_back();
        return v;
    }
    std::size_t size() const noexcept { return m_items.size(); }
    bool empty() const noexcept { return m_items.empty(); }
    void clear() noexcept { m_items.clear(); }

private:
    std::vector<T> m_items;
};

/// asyncio.PriorityQueue's heapq: the smallest item (by `Compare`) comes out first.
template <class T, class Compare>
class heap_storage {
public:
    explicit heap_storage(Compare comp = Compare()) : m_comp(std::move(comp)) {}
    void push(T&& v) {
        m_items.push_back(std::move(v));
        std::push_heap(m_items.begin(), m_items.end(), greater());
    }
    T pop() {
        std::pop_heap(m_items.begin(), m_items.end(), greater());
        T v = std::move(m_items.back());
        m_items.pop_back();
        return v;
    }
    std::size_t size() const noexcept { return m_items.size(); }
    bool empty() const noexcept { return m_items.empty(); }
    void clear() noexcept { m_items.clear(); }

private:
    /// std::*_heap keep the greatest element on top; reversing the order keeps the smallest.
    auto greater() {
        return [this](const T& a, const T& b) { return m_comp(b, a); };
    }
    std::vector<T> m_items;
    Compare m_comp;
};

/// `co_await q.get()`: takes an item at once if one is there for it; otherwise runs the
/// queue's waiting coroutine inline (trampolined like any awaited task).
template <class Q>
class queue_get_awaiter {
public:
    using value_type = typename Q::value_type;

    explicit queue_get_awaiter(Q& q) noexcept : m_queue(&q) {}
    queue_get_awaiter(queue_get_awaiter&&) noexcept = default; // before it is awaited

    bool await_ready() const noexcept { return m_queue->get_ready(); }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) {
        m_slow = m_queue->get_slow();
        return m_slow.operator co_await().await_suspend(h);
    }
    value_type await_resume() {
        if (m_slow) return m_slow.operator co_await().await_resume();
        return m_queue->get_nowait();
    }

private:
    Q* m_queue;
    task<value_type> m_slow;
};

/// `co_await q.put(v)`: holds the item until it is enqueued (or the put fails or is cancelled,
/// and the item dies with the awaiter).
template <class Q>
class queue_put_awaiter {
public:
    using value_type = typename Q::value_type;

    queue_put_awaiter(Q& q, value_type item) : m_queue(&q), m_item(std::move(item)) {}
    queue_put_awaiter(queue_put_awaiter&&) = default; // before it is awaited

    bool await_ready() const noexcept { return m_queue->put_ready(); }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) {
        m_slow = m_queue->put_slow(m_item);
        return m_slow.operator co_await().await_suspend(h);
    }
    void await_resume() {
        if (m_slow) m_slow.operator co_await().await_resume();
        else m_queue->put_nowait(std::move(m_item));
    }

private:
    Q* m_queue;
    value_type m_item;
    task<> m_slow;
};

/// `co_await q.join()`: the queue's "finished" event, without its `true`.
class queue_join_awaiter : public event_awaiter {
public:
    using event_awaiter::event_awaiter;
    void await_resume() { (void)event_awaiter::await_resume(); }
};

} // namespace detail

/// What `queue`, `priority_queue` and `lifo_queue` share (asyncio's `Queue`, which the other
/// two subclass); `Storage` decides the order items come out in. Use the three names.
///
/// Not copyable or movable (waiting tasks refer to it). `T` must be move-constructible.
template <class T, class Storage>
class basic_queue {
public:
    /// The item type.
    using value_type = T;

    /// A queue holding at most `maxsize` items; 0 (the default) means no limit.
    explicit basic_queue(std::size_t maxsize = 0) : m_maxsize(maxsize) { m_finished.set(); }
    /// As above, with the storage given (it holds a priority_queue's comparator).
    basic_queue(std::size_t maxsize, Storage storage) : m_items(std::move(storage)), m_maxsize(maxsize) {
        m_finished.set();
    }
    basic_queue(const basic_queue&) = delete;
    basic_queue& operator=(const basic_queue&) = delete;

    /// `co_await q.put(item)`: adds `item`, waiting while the queue is full (or earlier putters
    /// wait). Throws `queue_shutdown` if the queue is shut down, or is shut down while this task
    /// waits. Cancellation: `cancelled_error` at the `co_await`, and the item is not enqueued.
    [[nodiscard]] detail::queue_put_awaiter<basic_queue> put(T item) {
        return detail::queue_put_awaiter<basic_queue>(*this, std::move(item));
    }

    /// `T v = co_await q.get();` removes and returns an item, waiting while the queue is empty
    /// (or earlier getters wait). Throws `queue_shutdown` if the queue is shut down and empty,
    /// or becomes so while this task waits. Cancellation: `cancelled_error` at the `co_await`;
    /// no item is taken (one this task had been woken for goes to the next getter).
    [[nodiscard]] detail::queue_get_awaiter<basic_queue> get() noexcept {
        return detail::queue_get_awaiter<basic_queue>(*this);
    }

    /// Adds `item` without waiting. Throws `queue_shutdown` if the queue is shut down,
    /// `queue_full` if it is full.
    void put_nowait(T item) {
        if (m_shutdown) throw queue_shutdown();
        if (full()) throw queue_full();
        push(std::move(item));
    }

    /// Removes and returns an item without waiting. Throws `queue_shutdown` if the queue is
    /// empty and shut down, `queue_empty` if it is empty.
    T get_nowait() {
        if (m_items.empty()) {
            if (m_shutdown) throw queue_shutdown();
            throw queue_empty();
        }
        return take();
    }

    /// Tells the queue that an item taken earlier has been processed: when every item put has
    /// been, join() returns. Throws `std::logic_error` ("task_done() called too many times";
    /// asyncio's ValueError) if called more times than items were put.
    void task_done() {
        if (m_unfinished == 0) throw std::logic_error("task_done() called too many times");
        if (--m_unfinished == 0) m_finished.set();
    }

    /// `co_await q.join()` waits until every item put has been taken and task_done() was called
    /// for it (at once if that is the case already). Cancellation: `cancelled_error` at the
    /// `co_await`.
    [[nodiscard]] detail::queue_join_awaiter join() noexcept { return detail::queue_join_awaiter(m_finished); }

    /// The number of items in the queue.
    std::size_t qsize() const noexcept { return m_items.size(); }
    /// True if the queue holds no item.
    bool empty() const noexcept { return m_items.empty(); }
    /// True if the queue holds `maxsize()` items (never for an unbounded queue).
    bool full() const noexcept { return m_maxsize > 0 && m_items.size() >= m_maxsize; }
    /// The number of items allowed in the queue; 0 means no limit.
    std::size_t maxsize() const noexcept { return m_maxsize; }

    /// Shuts the queue down (Python 3.13): later puts throw `queue_shutdown`, gets throw it once
    /// the queue is empty, and every task blocked in put() or get() is woken (and throws, unless
    /// a getter finds an item left). With `immediate`, the queue is also drained: its items are
    /// destroyed and each counts as task_done() for join() (which returns if nothing else is
    /// unfinished). Calling it again is harmless (a later `immediate` still drains).
    void shutdown(bool immediate = false) noexcept {
        m_shutdown = true;
        if (immediate) {
            const std::size_t drained = m_items.size();
            m_items.clear();
            m_unfinished -= std::min(drained, m_unfinished);
            if (m_unfinished == 0) m_finished.set();
        }
        m_getters.wake_all();
        m_putters.wake_all();
    }

private:
    template <class>
    friend class detail::queue_get_awaiter;
    template <class>
    friend class detail::queue_put_awaiter;

    void push(T&& item) {
        m_items.push(std::move(item));
        ++m_unfinished;
        m_finished.clear();
        wake_getters();
    }
    T take() {
        T v = m_items.pop();
        wake_putters();
        return v;
    }

    // A woken waiter has a claim on an item (a slot) until it runs. Wake as many waiters as
    // there are items (slots) nobody has a claim on.
    void wake_getters() noexcept {
        while (!m_getters.waiting.empty() && m_items.size() > m_getters.woken.size()) m_getters.wake_one();
    }
    void wake_putters() noexcept {
        if (m_maxsize == 0) return;
        while (!m_putters.waiting.empty() && m_items.size() + m_putters.woken.size() < m_maxsize)
            m_putters.wake_one();
    }
    static void on_getter_abandon(void* self, bool) noexcept { static_cast<basic_queue*>(self)->wake_getters(); }
    static void on_putter_abandon(void* self, bool) noexcept { static_cast<basic_queue*>(self)->wake_putters(); }

    /// get() need not wait: shut down (take what is left or throw), or an item is there that no
    /// earlier getter has a claim on.
    bool get_ready() const noexcept {
        return m_shutdown || (m_getters.waiting.empty() && m_items.size() > m_getters.woken.size());
    }
    bool put_ready() const noexcept {
        return m_shutdown || m_maxsize == 0 ||
               (m_putters.waiting.empty() && m_items.size() + m_putters.woken.size() < m_maxsize);
    }

    task<T> get_slow() {
        bool front = false;
        for (;;) {
            detail::park_awaiter park(m_getters, this, &on_getter_abandon, front);
            co_await park; // throws if cancelled (passing a wake-up on) or if the queue died
            if (!m_items.empty()) co_return take();
            if (m_shutdown) throw queue_shutdown();
            front = true; // a get_nowait() took the item first: wait again, first in line
        }
    }

    task<> put_slow(T& item) {
        bool front = false;
        for (;;) {
            detail::park_awaiter park(m_putters, this, &on_putter_abandon, front);
            co_await park;
            if (m_shutdown) throw queue_shutdown();
            if (!full()) {
                push(std::move(item));
                co_return;
            }
            front = true; // a put_nowait() took the slot first
        }
    }

    Storage m_items;
    std::size_t m_maxsize;
    std::size_t m_unfinished = 0;
    bool m_shutdown = false;
    detail::park_queue m_getters;
    detail::park_queue m_putters;
    event m_finished; ///< set while nothing is unfinished (asyncio's _finished)
};

/// asyncio's `Queue`: first in, first out. See basic_queue for the members.
template <class T>
class queue : public basic_queue<T, detail::fifo_storage<T>> {
public:
    /// A queue holding at most `maxsize` items; 0 (the default) means no limit.
    explicit queue(std::size_t maxsize = 0) : basic_queue<T, detail::fifo_storage<T>>(maxsize) {}
};

/// asyncio's `PriorityQueue`: the smallest item comes out first (as heapq orders them; items
/// that compare equal come out in no particular order). `Compare` is a strict weak order, as
/// for std::priority_queue, but the item it ranks lowest comes out first: with the default
/// std::less that is the smallest. Entries are typically `std::pair{priority, data}`.
template <class T, class Compare = std::less<T>>
class priority_queue : public basic_queue<T, detail::heap_storage<T, Compare>> {
public:
    /// A queue holding at most `maxsize` items (0: no limit), ordered by `comp`.
    explicit priority_queue(std::size_t maxsize = 0, Compare comp = Compare())
        : basic_queue<T, detail::heap_storage<T, Compare>>(maxsize,
                                                           detail::heap_storage<T, Compare>(std::move(comp))) {}
};

/// asyncio's `LifoQueue`: the item put last comes out first.
template <class T>
class lifo_queue : public basic_queue<T, detail::lifo_storage<T>> {
public:
    /// A queue holding at most `maxsize` items; 0 (the default) means no limit.
    explicit lifo_queue(std::size_t maxsize = 0) : basic_queue<T, detail::lifo_storage<T>>(maxsize) {}
};

} // namespace corio
// ---- end corio/queue.hpp ----
// ---- begin corio/runners.hpp (included from corio/corio.hpp) ----
/// \file corio/runners.hpp
/// `corio::run(main())`: asyncio.run.
///
/// Creates a new event loop, runs `main` to completion, then cancels every task still pending
/// and waits for them to finish (errors they end with are reported through the exception
/// handler, as "unhandled exception during corio::run() shutdown"), shuts the default executor
/// down and waits for its jobs (`loop.shutdown_default_executor()`, see corio/executor.hpp),
/// closes the loop, and returns main's value or rethrows its exception.
///
/// Throws `std::logic_error` when called from a running loop (asyncio raises RuntimeError;
/// calling it there is a programming error, not a runtime condition).



namespace corio {

/// Options of `corio::run` (asyncio.run's `debug=`, plus the test clock).
struct run_options {
    bool debug = false;        ///< debug mode, see event_loop::set_debug
    bool virtual_time = false; ///< the test clock, see corio/testing.hpp
};

namespace detail {

inline task<> wait_all_done(std::vector<task_ref> tasks) {
    for (const task_ref& t : tasks) co_await t.wait_done();
}

/// asyncio.runners._cancel_all_tasks.
inline void cancel_all_tasks(event_loop& loop) {
    std::vector<task_ref> pending;
    for (task_core* t : loop_ops::pending_tasks(loop)) pending.emplace_back(t);
    if (pending.empty()) return;
    for (task_ref& t : pending) t.cancel();
    loop.run_until_complete(wait_all_done(pending));
    for (task_ref& t : pending) {
        if (t.cancelled()) continue;
        if (std::exception_ptr e = t.exception())
            loop.call_exception_handler(
                {"unhandled exception during corio::run() shutdown", e, t.get_name()});
    }
}

/// asyncio.run's `loop.run_until_complete(loop.shutdown_default_executor())`, skipped (no
/// task, no loop iteration) when no default executor was ever made.
inline void shutdown_default_executor(event_loop& loop) {
    if (!executor_ops::has_default_executor(loop)) return;
    loop.run_until_complete(loop.shutdown_default_executor());
}

} // namespace detail

/// Runs `main` (a `task<T>`, a callable returning an awaitable, or an awaitable) on a new
/// event loop and returns its value; see the file comment.
template <class Aw>
auto run(Aw&& main, run_options options = {}) {
    if (event_loop::running())
        throw std::logic_error("corio::run() cannot be called from a running event loop");
    event_loop loop(loop_options{.debug = options.debug, .virtual_time = options.virtual_time});
    struct finalizer {
        event_loop& loop;
        ~finalizer() {
            try {
                detail::cancel_all_tasks(loop);
            } catch (...) {
                loop.call_exception_handler(
                    {"error while cancelling tasks in corio::run()", std::current_exception(), {}});
            }
            try {
                detail::shutdown_default_executor(loop);
            } catch (...) {
                loop.call_exception_handler({"error while shutting down the default executor in "
                                             "corio::run()",
                                             std::current_exception(), {}});
            }
            loop.close();
        }
    } fin{loop};
    return loop.run_until_complete(std::forward<Aw>(main));
}

} // namespace corio
// ---- end corio/runners.hpp ----
// ---- begin corio/shield.hpp (included from corio/corio.hpp) ----
/// \file corio/shield.hpp
/// `co_await corio::shield(aw)`: asyncio.shield. Waits for `aw` like `co_await aw` would, except
/// that cancelling the waiting task does not cancel `aw`:
///
///     auto save = corio::create_task(save_to_disk(doc));
///     co_await corio::shield(save);     // a cancel() of this task stops the waiting, not the save
///
/// - `aw` runs as a task of its own: a future or task handle is watched as it is; anything else
///   (a `task<T>`, a callable returning an awaitable, an awaitable) is wrapped in a task at the
///   call (asyncio's ensure_future), so it runs whether or not the shield is awaited.
/// - Cancelling the awaiting task: the await throws `cancelled_error` at once (on the task's next
///   step), and `aw` goes on; its result stays in its future for anyone else who awaits it.
/// - If `aw` itself is cancelled (by someone else), the await throws its `cancelled_error`.
/// - An error `aw` ends with after the waiter was cancelled is not retrieved by the shield: if
///   nobody else retrieves it, the loop reports "Task exception was never retrieved" when the
///   task is dropped (asyncio 3.12 does the same).
///
/// Cost: no allocation beyond the task (if one is made); the waiting node lives in the awaiting
/// coroutine's frame, as for `co_await fut`.



namespace corio {
namespace detail {

/// Waits for a future and takes its result like future_awaiter, but a cancellation of the
/// waiting task only detaches it (as completion_awaiter does): the future is left alone.
/// Waiting through a shield is waiting for the future, except that cancellation only detaches.
template <class T>
using shield_awaiter = future_awaiter<T, on_waiter_cancel::detach>;

/// What shield() returns: holds the shielded future until awaited. Movable (so it can itself be
/// handed to create_task or gather); each `co_await` makes a shield_awaiter.
template <class T>
class [[nodiscard]] shield_awaitable {
public:
    explicit shield_awaitable(future<T> inner) noexcept : m_inner(std::move(inner)) {}

    shield_awaiter<T> operator co_await() && noexcept { return shield_awaiter<T>(std::move(m_inner)); }
    shield_awaiter<T> operator co_await() const& noexcept { return shield_awaiter<T>(m_inner); }

    /// The shielded future (or task handle, as a future).
    const future<T>& inner() const noexcept { return m_inner; }

private:
    future<T> m_inner;
};

} // namespace detail

/// asyncio.shield(aw): `co_await corio::shield(aw)` gives what `co_await aw` would, but
/// cancelling the awaiting task does not cancel `aw` (see the file comment).
///
/// `aw` is a future or task handle (watched; copied if an lvalue), or anything create_task
/// accepts (a `task<T>` moved in, a callable returning an awaitable, an awaitable), which is
/// wrapped in a task now, on the running loop.
///
/// Result: `aw`'s value (copied out of a future others hold, moved out of a task the shield
/// made). Throws `aw`'s error; `cancelled_error` if `aw` was cancelled; `cancelled_error` at once
/// if the awaiting task is cancelled (`aw` keeps running). Throws `std::runtime_error` at the
/// call without a running loop when a task must be made, `invalid_state_error` at the await for
/// an empty future handle. Awaiting a future that is already done does not suspend.
template <class Aw>
[[nodiscard]] auto shield(Aw&& aw) {
    auto inner = ensure_future(std::forward<Aw>(aw));
    using T = typename decltype(inner)::value_type;
    return detail::shield_awaitable<T>(future<T>(std::move(inner)));
}

} // namespace corio
// ---- end corio/shield.hpp ----
// ---- begin corio/streams.hpp (included from corio/corio.hpp) ----
/// \file corio/streams.hpp
/// Streams: asyncio's high-level connection API (asyncio.streams).
///
/// | asyncio | corio |
/// |---|---|
/// | `reader, writer = await open_connection(host, port, limit=, local_addr=)` | `auto [reader, writer] = co_await corio::open_connection(host, port, {.limit = ..., .local_addr = ...})` |
/// | `server = await start_server(cb, host, port, limit=, backlog=, ...)` | `corio::server srv = co_await corio::start_server(handler, host, port, {...})` |
/// | `open_unix_connection(path)` / `start_unix_server(cb, path)` | same names |
/// | `StreamReader` | `corio::stream_reader` |
/// | `StreamWriter` | `corio::stream_writer` |
/// | `StreamReaderProtocol` | `corio::stream_protocol` |
/// | `IncompleteReadError` / `LimitOverrunError` | `corio::incomplete_read_error` / `corio::limit_overrun_error` |
///
/// ```
/// corio::task<> handle(corio::stream_reader reader, corio::stream_writer writer) {
///     std::string line = co_await reader.readline();     // data = await reader.readline()
///     writer.write(line);                                 // writer.write(data)
///     co_await writer.drain();                            // await writer.drain()
///     writer.close();                                     // writer.close()
///     co_await writer.wait_closed();                      // await writer.wait_closed()
/// }
/// auto handler = handle;                   // name it first (GCC 12, see below)
/// corio::server srv = co_await corio::start_server(handler, "127.0.0.1", 8888);
/// ```
///
/// ## Handles
/// `stream_reader` and `stream_writer` are copyable handles over shared state (like
/// `corio::future`): copies read from and write to the same connection. They belong to the
/// loop's thread. Every read, drain and wait keeps the shared state alive while it runs, so a
/// handle may go away while an operation it started is pending.
///
/// ## Differences from asyncio 3.12 (on purpose)
/// - **Closing by RAII.** When the last `stream_writer` handle of a connection is destroyed and
///   the transport is not closing yet, the transport is closed (data already written is still
///   sent). asyncio 3.12's `StreamWriter.__del__` does the same, with a ResourceWarning; in C++
///   that is just the expected RAII behaviour, so there is no warning. A server handler that
///   returns therefore closes its connection unless it kept a copy of the writer elsewhere.
/// - **No data is lost to cancellation.** Every read consumes bytes only after its last
///   suspension, so a read cancelled at any `co_await` (by `cancel()`, `wait_for`, a task group)
///   leaves the bytes in the buffer for the next read. asyncio's `read(-1)` loses the blocks it
///   had already collected; corio's keeps them buffered (it waits for EOF and then takes all).
/// - `readline()` over the limit throws `limit_overrun_error` (asyncio: `ValueError`), after
///   consuming exactly what asyncio consumes (the line and its newline if the newline was seen,
///   else the whole buffer).
/// - `incomplete_read_error::expected()` is `incomplete_read_error::unknown_size` when the
///   size was unknown (asyncio: `None`, from `readuntil`).
/// - Misuse asyncio answers with ValueError throws `std::invalid_argument`: a limit of 0, an
///   empty separator. Two coroutines waiting on one reader: `std::runtime_error` ("read() called
///   while another coroutine is already waiting for incoming data"), as asyncio's RuntimeError.
///
/// ## GCC 12 (PR 100611)
/// Do not write a capturing lambda (or a brace-built aggregate holding something with a
/// destructor) inside the statement that `co_await`s `start_server`: name the handler first,
/// as above. The option structs here hold only trivially destructible members, so
/// `co_await open_connection(h, p, {.limit = 1024})` is safe.




namespace corio {

/// The default `limit` of a stream_reader (asyncio's `_DEFAULT_LIMIT`, 64 KiB): the longest
/// line or separated chunk a reader returns, and half the buffer size at which the transport's
/// reading is paused.
inline constexpr std::size_t default_stream_limit = 65536;

class stream_reader;
class stream_writer;
class stream_protocol;

namespace detail {

/// The bytes a reader holds: a string with a consumed prefix, so taking a line from the front
/// does not move the rest each time.
class stream_buffer {
public:
    std::size_t size() const noexcept { return m_data.size() - m_head; }
    bool empty() const noexcept { return size() == 0; }
    std::string_view view() const noexcept { return std::string_view(m_data).substr(m_head); }

    void append(std::string_view d) {
        if (m_head == m_data.size()) clear();
        m_data.append(d);
    }
    /// Removes and returns the first `n` bytes (fewer if there are fewer).
    std::string take(std::size_t n) {
        n = std::min(n, size());
        std::string out;
        if (m_head == 0 && n == m_data.size()) {
            out.swap(m_data);
        } else {
            out.assign(m_data, m_head, n);
            m_head += n;
            compact();
        }
        return out;
    }
    void drop(std::size_t n) noexcept {
        m_head += std::min(n, size());
        compact();
    }
    void clear() noexcept {
        m_data.clear();
        m_head = 0;
    }

private:
    void compact() noexcept {
        if (m_head == m_data.size()) {
            clear();
        } else if (m_head >= 4096 && m_head * 2 >= m_data.size()) {
            m_data.erase(0, m_head); // amortised: at most as many bytes as were consumed
            m_head = 0;
        }
    }

    std::string m_data;
    std::size_t m_head = 0;
};

class data_waiter;

/// What a stream_reader handle shares (asyncio.StreamReader's attributes).
struct reader_state {
    explicit reader_state(std::size_t lim) : limit(lim) {
        if (lim == 0) throw std::invalid_argument("Limit cannot be <= 0");
    }
    reader_state(const reader_state&) = delete;
    reader_state& operator=(const reader_state&) = delete;

    stream_buffer buffer;
    std::size_t limit;
    bool eof = false;
    bool paused = false; ///< we paused the transport's reading
    std::exception_ptr error;
    data_waiter* waiter = nullptr;
    /// The transport to pause and resume. Raw pointer for the calls, weak owner to know it is
    /// still alive: the transport owns the protocol that owns this reader, so a strong
    /// reference here would be a cycle.
    transport* source = nullptr;
    std::weak_ptr<base_transport> source_owner;

    void wakeup(std::exception_ptr e = nullptr) noexcept;

    /// asyncio's _maybe_resume_transport.
    void maybe_resume() {
        if (paused && buffer.size() <= limit) {
            paused = false;
            if (auto keep = source_owner.lock()) source->resume_reading();
        }
    }

    void throw_if_error() const {
        if (error) std::rethrow_exception(error);
    }
};

/// How a read waits for feed_data / feed_eof / set_exception (asyncio's `_wait_for_data`).
/// Lives in the reading coroutine's frame; at most one per reader.
class data_waiter : public task_waiter {
public:
    explicit data_waiter(reader_state& s) noexcept : m_state(&s) { task_waiter::cancel = &on_cancel; }
    data_waiter(const data_waiter&) = delete;
    data_waiter& operator=(const data_waiter&) = delete;
    ~data_waiter() {
        if (m_state->waiter == this) m_state->waiter = nullptr; // the frame died while waiting
    }

    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
        task_core& t = require_current_task();
        m_task = &t;
        m_state->waiter = this;
        t.suspend_on(h, this);
    }
    void await_resume() {
        if (m_task) m_task->throw_if_cancel_delivered();
        if (m_error) std::rethrow_exception(m_error);
    }

    /// Called by the reader (the waiter already left `m_state->waiter`).
    void wake(std::exception_ptr e) noexcept {
        m_error = std::move(e);
        m_task->wake();
    }

private:
    static bool on_cancel(task_waiter* w, const std::string& msg) {
        auto* self = static_cast<data_waiter*>(w);
        if (self->m_state->waiter == self) self->m_state->waiter = nullptr;
        self->m_task->wake_cancelled(msg); // nothing consumed: the bytes stay buffered
        return true;
    }

    reader_state* m_state;
    task_core* m_task = nullptr;
    std::exception_ptr m_error;
};

inline void reader_state::wakeup(std::exception_ptr e) noexcept {
    if (data_waiter* w = std::exchange(waiter, nullptr)) w->wake(std::move(e));
}

/// The checks asyncio's _wait_for_data makes before it waits; then the awaiter.
inline data_waiter wait_for_data(reader_state& s, const char* func_name) {
    if (s.waiter)
        throw std::runtime_error(std::string(func_name) +
                                 "() called while another coroutine is already waiting for "
                                 "incoming data");
    // Waiting while paused would deadlock (readexactly(n) with n > 2 * limit): resume first.
    if (s.paused) {
        s.paused = false;
        if (auto keep = s.source_owner.lock()) s.source->resume_reading();
    }
    return data_waiter(s);
}

// The reads are coroutines over the shared state (not member coroutines over `this`), so they
// keep the state alive whatever happens to the handle that started them.

inline task<std::string> stream_read(std::shared_ptr<reader_state> s, std::ptrdiff_t n) {
    s->throw_if_error();
    if (n == 0) co_return std::string();
    if (n < 0) {
        while (!s->eof) co_await wait_for_data(*s, "read");
        std::string all = s->buffer.take(s->buffer.size());
        s->maybe_resume();
        co_return all;
    }
    if (s->buffer.empty() && !s->eof) co_await wait_for_data(*s, "read");
    std::string data = s->buffer.take(static_cast<std::size_t>(n));
    s->maybe_resume();
    co_return data;
}

inline task<std::string> stream_readexactly(std::shared_ptr<reader_state> s, std::size_t n) {
    s->throw_if_error();
    if (n == 0) co_return std::string();
    while (s->buffer.size() < n) {
        if (s->eof) {
            std::string partial = s->buffer.take(s->buffer.size());
            throw incomplete_read_error(std::move(partial), n);
        }
        co_await wait_for_data(*s, "readexactly");
    }
    std::string data = s->buffer.take(n);
    s->maybe_resume();
    co_return data;
}

inline task<std::string> stream_readuntil(std::shared_ptr<reader_state> s, std::string sep) {
    const std::size_t seplen = sep.size();
    if (seplen == 0) throw std::invalid_argument("Separator should be at least one-byte string");
    s->throw_if_error();
    std::size_t offset = 0; // where the search resumes: no byte is looked at twice
    std::size_t isep = 0;
    for (;;) {
        const std::string_view buf = s->buffer.view();
        if (buf.size() >= offset + seplen) {
            isep = buf.find(sep, offset);
            if (isep != std::string_view::npos) break;
            offset = buf.size() + 1 - seplen;
            if (offset > s->limit)
                throw limit_overrun_error("Separator is not found, and chunk exceed the limit",
                                          offset);
        }
        if (s->eof) {
            std::string partial = s->buffer.take(s->buffer.size());
            throw incomplete_read_error(std::move(partial), incomplete_read_error::unknown_size);
        }
        co_await wait_for_data(*s, "readuntil");
    }
    if (isep > s->limit)
        throw limit_overrun_error("Separator is found, but chunk is longer than limit", isep);
    std::string chunk = s->buffer.take(isep + seplen);
    s->maybe_resume();
    co_return chunk;
}

inline task<std::string> stream_readline(std::shared_ptr<reader_state> s) {
    std::string line;
    try {
        line = co_await stream_readuntil(s, "\n");
    } catch (incomplete_read_error& e) {
        line = e.partial(); // EOF: the partial last line ("" at EOF)
    } catch (const limit_overrun_error& e) {
        // asyncio: drop the line and its newline if the newline was seen, else everything
        // buffered; then raise (ValueError there, limit_overrun_error here).
        const std::string_view buf = s->buffer.view();
        if (buf.size() > e.consumed() && buf[e.consumed()] == '\n') s->buffer.drop(e.consumed() + 1);
        else s->buffer.clear();
        s->maybe_resume();
        throw;
    }
    co_return line;
}

} // namespace detail

// --- stream_reader ---------------------------------------------------------------------------

/// asyncio's StreamReader: bytes arriving on a connection, read by coroutines.
///
/// A copyable handle; copies share one buffer. Bytes come in through `feed_data` (called by
/// the stream_protocol, or by hand in tests), end with `feed_eof`, or fail with
/// `set_exception`. Only one coroutine at a time may wait for data on a reader.
///
/// Flow control (asyncio's): when more than `2 * limit` bytes are buffered the transport's
/// reading is paused; it is resumed once reads bring the buffer down to `limit` bytes or less,
/// and whenever a read has to wait.
///
/// Cancellation: every read consumes bytes only after its last suspension; a read cancelled at
/// any point leaves the buffer as it was (no data is lost).
class stream_reader {
public:
    /// A reader whose `readline`/`readuntil` return at most `limit` bytes before the separator.
    /// Throws `std::invalid_argument` for a limit of 0.
    explicit stream_reader(std::size_t limit = default_stream_limit)
        : m_state(std::make_shared<detail::reader_state>(limit)) {}

    /// Reads up to `n` bytes: at least one, unless EOF came with nothing buffered (then "").
    /// `n == -1` (the default) reads until EOF and returns everything; `n == 0` returns "" at
    /// once. Throws the reader's exception if one was set (`set_exception`, or a connection
    /// error such as `std::system_error` ECONNRESET); `std::runtime_error` if another coroutine
    /// is waiting on this reader. Cancellation: nothing is consumed.
    [[nodiscard]] task<std::string> read(std::ptrdiff_t n = -1) const {
        return detail::stream_read(m_state, n);
    }

    /// Reads exactly `n` bytes. Throws `incomplete_read_error` (with the bytes that did come,
    /// `partial()`, which are consumed) if EOF comes first; the reader's exception; or
    /// `std::runtime_error` as read(). Cancellation: nothing is consumed.
    [[nodiscard]] task<std::string> readexactly(std::size_t n) const {
        return detail::stream_readexactly(m_state, n);
    }

    /// Reads one line, up to and including '\n'. At EOF returns the partial last line without
    /// '\n' ("" when nothing is left). A line longer than `limit()` (not counting '\n') throws
    /// `limit_overrun_error` after dropping that line (with its '\n' if it was seen, else
    /// everything buffered), as asyncio does. Also throws as read(). Cancellation: nothing is
    /// consumed.
    [[nodiscard]] task<std::string> readline() const { return detail::stream_readline(m_state); }

    /// Reads up to and including `separator`. Throws `limit_overrun_error` if no separator is
    /// found within `limit()` bytes, or the chunk before it is longer than `limit()` (the data
    /// stays buffered; `consumed()` says how much to read to get past it);
    /// `incomplete_read_error` at EOF without the separator (`partial()` has what was left,
    /// now consumed; `expected()` is `unknown_size`); `std::invalid_argument` for an empty
    /// separator; else
    /// as read(). Cancellation: nothing is consumed.
    [[nodiscard]] task<std::string> readuntil(std::string separator = "\n") const {
        return detail::stream_readuntil(m_state, std::move(separator));
    }

    /// True once EOF was fed and every buffered byte was read.
    bool at_eof() const noexcept { return m_state->eof && m_state->buffer.empty(); }
    /// The exception set with set_exception (null if none).
    std::exception_ptr exception() const noexcept { return m_state->error; }
    /// The limit given to the constructor.
    std::size_t limit() const noexcept { return m_state->limit; }
    /// Bytes buffered and not read yet.
    std::size_t buffered() const noexcept { return m_state->buffer.size(); }

    /// Appends bytes (the protocol calls this for each chunk received) and wakes the waiting
    /// read; pauses the transport's reading past `2 * limit()` buffered bytes. Throws
    /// `std::logic_error` after feed_eof().
    void feed_data(std::string_view data) {
        detail::reader_state& s = *m_state;
        if (s.eof) throw std::logic_error("corio::stream_reader: feed_data after feed_eof");
        if (data.empty()) return;
        s.buffer.append(data);
        s.wakeup();
        if (!s.paused && s.buffer.size() > 2 * s.limit) {
            if (auto keep = s.source_owner.lock()) {
                s.source->pause_reading();
                s.paused = true;
            }
        }
    }
    /// Marks the end of the stream and wakes the waiting read.
    void feed_eof() noexcept {
        m_state->eof = true;
        m_state->wakeup();
    }
    /// Fails the stream: the waiting read and every later read throw `e` (buffered bytes are
    /// not returned any more, as in asyncio).
    void set_exception(std::exception_ptr e) noexcept {
        m_state->error = e;
        m_state->wakeup(std::move(e));
    }

    /// The transport whose reading this reader pauses and resumes (asyncio's `set_transport`;
    /// stream_protocol calls it in connection_made, and with null in connection_lost). The
    /// transport must be owned by a `std::shared_ptr` (every corio transport is): the reader
    /// keeps a weak reference and never calls a transport that is gone.
    void set_transport(transport* t) noexcept {
        m_state->source = t;
        m_state->source_owner = t ? t->weak_from_this() : std::weak_ptr<base_transport>();
        if (!t) m_state->paused = false;
    }

    /// True if both handles share one reader.
    friend bool operator==(const stream_reader& a, const stream_reader& b) noexcept {
        return a.m_state == b.m_state;
    }

private:
    std::shared_ptr<detail::reader_state> m_state;
};

// --- stream_protocol -------------------------------------------------------------------------

/// asyncio's StreamReaderProtocol (with its FlowControlMixin): the protocol behind streams. It
/// feeds an optional stream_reader with what the transport receives, records the transport's
/// pause_writing/resume_writing for `stream_writer::drain()`, and completes
/// `stream_writer::wait_closed()` when the connection is lost.
///
/// Create it with `std::make_shared<stream_protocol>(reader)` from a protocol factory (it must
/// be owned by a `std::shared_ptr`). With an `on_connected` callback (what start_server uses),
/// connection_made builds the stream_writer and calls `on_connected(reader, writer)`; the
/// callback runs inside connection_made and must not block (start a task).
///
/// EOF from the peer keeps the transport open (half-closed: you may still write), as asyncio.
class stream_protocol : public protocol, public std::enable_shared_from_this<stream_protocol> {
public:
    /// The function called with the new connection's reader and writer (asyncio's
    /// client_connected_cb, without the coroutine part: it starts its own task).
    using connected_callback = std::function<void(stream_reader, stream_writer)>;

    /// A protocol feeding `reader` (none: received bytes are dropped, as for a write-only pipe).
    explicit stream_protocol(std::optional<stream_reader> reader = std::nullopt)
        : m_reader(std::move(reader)) {}
    /// As above, and calls `on_connected(reader, writer)` from connection_made. Throws
    /// `std::invalid_argument` without a reader.
    stream_protocol(std::optional<stream_reader> reader, connected_callback on_connected)
        : m_reader(std::move(reader)), m_on_connected(std::move(on_connected)) {
        if (!m_reader) throw std::invalid_argument("corio::stream_protocol: a connected callback needs a reader");
    }

    /// Remembers the transport, gives it to the reader, and calls on_connected if set.
    void connection_made(transport& t) override;
    /// Feeds the reader.
    void data_received(std::string_view data) override {
        if (m_reader) m_reader->feed_data(data);
    }
    /// Feeds EOF to the reader and keeps the transport open (returns true).
    bool eof_received() override {
        if (m_reader) m_reader->feed_eof();
        return true;
    }
    /// EOF (null) or the error to the reader; wakes drain() and wait_closed() waiters.
    void connection_lost(std::exception_ptr exc) override {
        if (m_reader) {
            if (exc) m_reader->set_exception(exc);
            else m_reader->feed_eof();
            m_reader->set_transport(nullptr);
        }
        m_lost = true;
        m_lost_error = exc;
        m_transport = nullptr;
        wake_all(m_drain_waiters);
        wake_all(m_closed_waiters);
        m_on_connected = nullptr; // drop what the callback captured (a server's handler)
    }
    /// The transport's buffer went over its high-water mark: drain() waits from now on.
    void pause_writing() override { m_paused = true; }
    /// The transport's buffer went below its low-water mark: wakes drain() waiters.
    void resume_writing() override {
        m_paused = false;
        wake_all(m_drain_waiters);
    }

    /// The reader given to the constructor.
    const std::optional<stream_reader>& reader() const noexcept { return m_reader; }
    /// True between pause_writing() and resume_writing().
    bool writing_paused() const noexcept { return m_paused; }
    /// True once connection_lost was called.
    bool is_connection_lost() const noexcept { return m_lost; }
    /// The error connection_lost got (null for a clean close or if not lost yet).
    std::exception_ptr connection_error() const noexcept { return m_lost_error; }

private:
    friend class stream_writer;

    static void wake_all(std::vector<future<void>>& waiters) {
        std::vector<future<void>> ws;
        ws.swap(waiters);
        for (future<void>& f : ws)
            if (!f.done()) f.set_result();
    }

    /// asyncio's FlowControlMixin._drain_helper. The waiters' futures carry no error (the
    /// error is in m_lost_error), so no "Future exception was never retrieved" can come from a
    /// waiter that was cancelled.
    static task<> drain_helper(std::shared_ptr<stream_protocol> self) {
        if (self->m_lost)
            throw std::system_error(ECONNRESET, std::generic_category(), "Connection lost");
        if (!self->m_paused) co_return;
        future<void> f;
        self->m_drain_waiters.push_back(f);
        listed leave{self->m_drain_waiters, f}; // a cancelled drain must not stay listed
        co_await f.wait_done(); // cancelling the drain only stops this wait
        if (self->m_lost && self->m_lost_error) std::rethrow_exception(self->m_lost_error);
    }

    static task<> wait_closed(std::shared_ptr<stream_protocol> self) {
        if (!self->m_lost) {
            future<void> f;
            self->m_closed_waiters.push_back(f);
            listed leave{self->m_closed_waiters, f};
            co_await f.wait_done();
        }
        if (self->m_lost_error) std::rethrow_exception(self->m_lost_error);
    }

    /// Takes a waiter's future out of its list when the wait ends, however it ends (wake_all
    /// has usually emptied the list by then: then there is nothing to do).
    struct listed {
        std::vector<future<void>>& list;
        const future<void>& f;
        ~listed() { std::erase(list, f); }
    };

    std::optional<stream_reader> m_reader;
    connected_callback m_on_connected;
    transport* m_transport = nullptr;
    std::vector<future<void>> m_drain_waiters;
    std::vector<future<void>> m_closed_waiters;
    std::exception_ptr m_lost_error;
    bool m_paused = false;
    bool m_lost = false;
};

// --- stream_writer ---------------------------------------------------------------------------

namespace detail {

/// What stream_writer handles share. The last handle closes the transport (RAII, see the file
/// comment).
struct writer_state {
    std::shared_ptr<corio::transport> tr;
    std::shared_ptr<stream_protocol> proto;
    std::optional<stream_reader> reader;

    writer_state(std::shared_ptr<corio::transport> t, std::shared_ptr<stream_protocol> p,
                 std::optional<stream_reader> r)
        : tr(std::move(t)), proto(std::move(p)), reader(std::move(r)) {}
    writer_state(const writer_state&) = delete;
    writer_state& operator=(const writer_state&) = delete;
    ~writer_state() {
        try {
            if (tr && !tr->is_closing()) tr->close();
        } catch (...) { // closing must not throw from a destructor (a loop already gone)
        }
    }
};

} // namespace detail

/// asyncio's StreamWriter: writes to a connection, with back-pressure through drain().
///
/// A copyable handle; copies write to the same transport. When the last handle goes and the
/// transport is still open, the transport is closed (see the file comment).
class stream_writer {
public:
    /// An empty handle (for members assigned later); only assignment and `operator bool` may be
    /// used on it.
    stream_writer() noexcept = default;
    /// A writer over `t`, whose protocol is `p` (it must be `t`'s protocol), with the reader of
    /// the same connection if any (drain() rethrows its error). Throws `std::invalid_argument`
    /// if `t` or `p` is null.
    stream_writer(std::shared_ptr<corio::transport> t, std::shared_ptr<stream_protocol> p,
                  std::optional<stream_reader> r = std::nullopt) {
        if (!t || !p) throw std::invalid_argument("corio::stream_writer: null transport or protocol");
        m_state = std::make_shared<detail::writer_state>(std::move(t), std::move(p), std::move(r));
    }

    /// True unless the handle is empty.
    explicit operator bool() const noexcept { return m_state != nullptr; }

    /// Queues `data` on the transport and returns at once: never blocks, never suspends. Call
    /// drain() to wait while the transport's buffer is over its high-water mark. Data written
    /// after close() or after the connection was lost is dropped (as asyncio); throws
    /// `std::runtime_error` after write_eof().
    void write(std::string_view data) { m_state->tr->write(data); }

    /// write() for each element of a range of strings or string views, in order.
    template <class Range>
    void writelines(const Range& lines) {
        for (const auto& l : lines) write(std::string_view(l));
    }

    /// Waits until the transport's buffer is below its low-water mark, if it went over the
    /// high-water mark (returns at once otherwise). Throws the reader's exception if the
    /// connection failed (e.g. `std::system_error` ECONNRESET or EPIPE), or
    /// `std::system_error(ECONNRESET, "Connection lost")` once the connection is lost. Any
    /// number of coroutines may drain at once. Cancellation: only the waiting stops; buffered
    /// data stays queued.
    [[nodiscard]] task<> drain() const { return do_drain(m_state); }

    /// Closes the write side once buffered data is sent (shutdown(SHUT_WR)); reading goes on.
    void write_eof() { m_state->tr->write_eof(); }
    /// True if write_eof() is supported.
    bool can_write_eof() const noexcept { return m_state->tr->can_write_eof(); }
    /// Closes the transport (buffered data is still sent). Idempotent.
    void close() { m_state->tr->close(); }
    /// True once close() was called or the connection was lost.
    bool is_closing() const noexcept { return m_state->tr->is_closing(); }
    /// Waits until the connection is closed (connection_lost was called); throws the error it
    /// was lost with, if any (e.g. `std::system_error` ECONNRESET). Cancellation: only the
    /// waiting stops.
    [[nodiscard]] task<> wait_closed() const { return stream_protocol::wait_closed(m_state->proto); }

    /// The remote address (an empty address if unknown, e.g. for a pipe).
    address peername() const {
        return m_state->tr->extra_info<address>("peername").value_or(address{});
    }
    /// The local address (an empty address if unknown).
    address sockname() const {
        return m_state->tr->extra_info<address>("sockname").value_or(address{});
    }
    /// The transport's get_extra_info(name): "peername", "sockname" (corio::address),
    /// "socket", "pipe" (int); an empty std::any for unknown names.
    std::any get_extra_info(std::string_view name) const { return m_state->tr->get_extra_info(name); }

    /// The underlying transport.
    const std::shared_ptr<corio::transport>& transport() const noexcept { return m_state->tr; }
    /// The protocol of the transport.
    const std::shared_ptr<stream_protocol>& protocol() const noexcept { return m_state->proto; }

    /// True if both handles share one writer.
    friend bool operator==(const stream_writer& a, const stream_writer& b) noexcept {
        return a.m_state == b.m_state;
    }

private:
    // A coroutine over the shared state (not over `this`): it lives as long as the drain runs.
    static task<> do_drain(std::shared_ptr<detail::writer_state> w) {
        if (w->reader) {
            if (std::exception_ptr e = w->reader->exception()) std::rethrow_exception(e);
        }
        // Let connection_lost run if the transport is closing, so that a loop of write + drain
        // sees the error instead of spinning (asyncio 3.12).
        if (w->tr->is_closing()) co_await sleep(std::chrono::seconds(0));
        co_await stream_protocol::drain_helper(w->proto);
    }

    std::shared_ptr<detail::writer_state> m_state;
};

inline void stream_protocol::connection_made(transport& t) {
    m_transport = &t;
    if (m_reader) m_reader->set_transport(&t);
    if (m_on_connected) {
        auto tr = std::dynamic_pointer_cast<corio::transport>(t.shared_from_this());
        stream_writer w(std::move(tr), shared_from_this(), m_reader);
        connected_callback cb = std::move(m_on_connected);
        m_on_connected = nullptr;
        cb(*m_reader, std::move(w));
    }
}

// --- Connections and servers ---------------------------------------------------------------------

/// Options of `open_connection` and `open_unix_connection` (asyncio's keyword arguments).
/// Trivially destructible, so `co_await open_connection(h, p, {.limit = 1024})` is safe on
/// GCC 12 (see the file comment).
struct stream_options {
    /// The reader's limit (see stream_reader). Must not be 0.
    std::size_t limit = default_stream_limit;
    /// Bind to this local address before connecting (asyncio's `local_addr`). TCP only.
    /// (Initialized explicitly so that `{.limit = N}` draws no -Wmissing-field-initializers.)
    std::optional<address> local_addr = std::nullopt;
    /// AF_INET or AF_INET6 to resolve the host to that family only; AF_UNSPEC for both. TCP only.
    int family = AF_UNSPEC;
};

/// Options of `start_server` and `start_unix_server`: the readers' limit, and the options of
/// `create_server` (corio/net.hpp). Trivially destructible, as stream_options.
struct stream_server_options {
    /// Each connection's reader limit (see stream_reader). Must not be 0.
    std::size_t limit = default_stream_limit;
    /// The listen() backlog.
    int backlog = 100;
    /// SO_REUSEADDR (TCP only), on by default as asyncio on Unix.
    bool reuse_address = true;
    /// SO_REUSEPORT (TCP only).
    bool reuse_port = false;
    /// AF_INET or AF_INET6 to listen on that family only; AF_UNSPEC for both. TCP only.
    int family = AF_UNSPEC;
    /// Start accepting at once (otherwise `server::start_serving()` or `serve_forever()`).
    bool start_serving = true;
};

namespace detail {

/// The task of one server connection: the handler, then asyncio's done-callback of
/// StreamReaderProtocol (an error is reported and the transport closed; a cancellation closes
/// the transport). Owns a reference to the handler, so a capturing lambda's captures outlive
/// every connection that uses them.
template <class Handler>
task<> run_stream_handler(std::shared_ptr<Handler> handler, stream_reader reader, stream_writer writer) {
    std::exception_ptr error;
    try {
        co_await std::invoke(*handler, reader, writer);
    } catch (const cancelled_error&) {
        writer.close();
        throw;
    } catch (...) {
        error = std::current_exception();
    }
    if (error) {
        get_running_loop().call_exception_handler(
            {"Unhandled exception in client_connected_cb", error, current_task().get_name()});
        writer.close();
    }
}

/// The protocol factory of start_server: a reader and a stream_protocol per connection, whose
/// connection_made starts the handler's task.
template <class Handler>
auto stream_server_factory(std::shared_ptr<Handler> handler, std::size_t limit) {
    return [handler, limit] {
        stream_reader reader(limit);
        stream_protocol::connected_callback on_connected = [handler](stream_reader r, stream_writer w) {
            (void)create_task(run_stream_handler<Handler>(handler, std::move(r), std::move(w)));
        };
        return std::make_shared<stream_protocol>(std::move(reader), std::move(on_connected));
    };
}

template <class Handler>
constexpr void check_stream_handler() {
    static_assert(std::is_invocable_v<Handler&, stream_reader, stream_writer>,
                  "corio: a stream handler is called as handler(stream_reader, stream_writer)");
    static_assert(awaitable<std::invoke_result_t<Handler&, stream_reader, stream_writer>>,
                  "corio: a stream handler must return an awaitable (a corio::task<>)");
}

inline server_options to_server_options(const stream_server_options& o) {
    server_options so;
    so.backlog = o.backlog;
    so.reuse_address = o.reuse_address;
    so.reuse_port = o.reuse_port;
    so.family = o.family;
    so.start_serving = o.start_serving;
    return so;
}

} // namespace detail

/// asyncio's `open_connection(host, port, limit=, local_addr=, family=)`: connects with
/// `create_connection` (corio/net.hpp: name resolution off the loop thread, every address in
/// turn) and gives the connection's reader and writer.
///
/// Throws `std::system_error` when the connection fails (ECONNREFUSED, ETIMEDOUT, ...; see
/// create_connection), `corio::gai_error` if `host` does not resolve, `std::invalid_argument`
/// for a limit of 0. Cancellation: nothing is left open.
inline task<std::pair<stream_reader, stream_writer>> open_connection(std::string host, port_or_service port,
                                                                     stream_options opts = {}) {
    stream_reader reader(opts.limit);
    auto factory = [reader] { return std::make_shared<stream_protocol>(reader); };
    connection_options co;
    co.local_addr = opts.local_addr;
    co.family = opts.family;
    auto [tr, proto] = co_await create_connection(std::move(factory), std::move(host), std::move(port), co);
    stream_writer writer(std::move(tr), std::move(proto), reader);
    co_return std::pair<stream_reader, stream_writer>(std::move(reader), std::move(writer));
}

/// asyncio's `open_unix_connection(path, limit=)`: as open_connection, to the Unix stream
/// socket at `path`. Only `opts.limit` applies: throws `std::invalid_argument` if `local_addr`
/// or `family` is set (or for a path too long), `std::system_error` (ENOENT, ECONNREFUSED) if
/// nobody listens there. Cancellation: nothing is left open.
inline task<std::pair<stream_reader, stream_writer>> open_unix_connection(std::string path,
                                                                          stream_options opts = {}) {
    if (opts.local_addr || opts.family != AF_UNSPEC)
        throw std::invalid_argument("corio::open_unix_connection: local_addr and family do not apply");
    stream_reader reader(opts.limit);
    auto factory = [reader] { return std::make_shared<stream_protocol>(reader); };
    auto [tr, proto] = co_await create_unix_connection(std::move(factory), std::move(path));
    stream_writer writer(std::move(tr), std::move(proto), reader);
    co_return std::pair<stream_reader, stream_writer>(std::move(reader), std::move(writer));
}

/// asyncio's `start_server(client_connected_cb, host, port, limit=, ...)`: a server
/// (`create_server`, corio/net.hpp) that calls `handler(reader, writer)` in a new task
/// (`create_task`) for each connection. `handler` is any callable taking
/// `(stream_reader, stream_writer)` and returning an awaitable, usually a `task<>`; it is kept
/// (once, shared by every connection) as long as the server has connections.
///
/// When the handler's task ends, its writer handles go away and so the connection is closed,
/// unless the handler kept a copy of the writer (see the file comment). An exception escaping
/// the handler is reported through the loop's exception handler ("Unhandled exception in
/// client_connected_cb") and the connection closed; the server goes on serving. A cancelled
/// handler (e.g. at the end of `corio::run`) closes its connection.
///
/// Port 0 picks a free port (`server::port()`). Throws as `create_server` (`std::system_error`
/// EADDRINUSE, `corio::gai_error`), `std::invalid_argument` for a limit of 0. Name a
/// capturing lambda before the statement that awaits this (GCC 12, see the file comment).
template <class Handler>
task<server> start_server(Handler handler, std::string host, port_or_service port, stream_server_options opts = {}) {
    detail::check_stream_handler<Handler>();
    if (opts.limit == 0) throw std::invalid_argument("Limit cannot be <= 0");
    auto factory = detail::stream_server_factory(std::make_shared<Handler>(std::move(handler)), opts.limit);
    const server_options so = detail::to_server_options(opts);
    co_return co_await create_server(std::move(factory), std::move(host), std::move(port), so);
}

/// asyncio's `start_unix_server(client_connected_cb, path, limit=, ...)`: as start_server, on
/// a Unix stream socket at `path` (`create_unix_server`: a stale socket file is replaced and
/// the file is removed when the server closes). Only `limit`, `backlog` and `start_serving`
/// apply. Throws as `create_unix_server` (`std::system_error` EADDRINUSE,
/// `std::invalid_argument` for a path too long) or for a limit of 0.
template <class Handler>
task<server> start_unix_server(Handler handler, std::string path, stream_server_options opts = {}) {
    detail::check_stream_handler<Handler>();
    if (opts.limit == 0) throw std::invalid_argument("Limit cannot be <= 0");
    auto factory = detail::stream_server_factory(std::make_shared<Handler>(std::move(handler)), opts.limit);
    const server_options so = detail::to_server_options(opts);
    co_return co_await create_unix_server(std::move(factory), std::move(path), so);
}

} // namespace corio
// ---- end corio/streams.hpp ----
// ---- begin corio/subprocess.hpp (included from corio/corio.hpp) ----
/// \file corio/subprocess.hpp
/// Subprocesses: asyncio.create_subprocess_exec and asyncio.subprocess.Process.
///
/// ```
/// # Python                                          // C++
/// p = await asyncio.create_subprocess_exec(         auto p = co_await corio::create_subprocess_exec(
///     "sort", "-n",                                     "sort", "-n",
///     stdin=PIPE, stdout=PIPE)                          corio::subprocess_options{.stdin_ = corio::pipe,
///                                                                                 .stdout_ = corio::pipe});
/// out, err = await p.communicate(b"3\n1\n2\n")      auto [out, err] = co_await p.communicate("3\n1\n2\n");
/// print(p.returncode)                               std::printf("%d\n", *p.returncode());
/// ```
///
/// | asyncio | corio |
/// |---|---|
/// | `create_subprocess_exec(prog, *args, stdin=, stdout=, stderr=, limit=, cwd=, env=)` | `create_subprocess_exec(prog, args..., subprocess_options{...})`, or `create_subprocess_exec(std::vector<std::string> argv, {...})` |
/// | `create_subprocess_shell(cmd, ...)` | `create_subprocess_shell(cmd, {...})` (`/bin/sh -c cmd`) |
/// | `PIPE`, `DEVNULL`, `STDOUT`, `None`, a file descriptor | `corio::pipe`, `corio::devnull`, `corio::stdout_`, `corio::inherit`, `corio::stdio::from_fd(fd)` |
/// | `Process.stdin` / `stdout` / `stderr` | `process::stdin_` (`std::optional<stream_writer>`), `stdout_`, `stderr_` (`std::optional<stream_reader>`) |
/// | `pid`, `returncode` | `pid()`, `returncode()` (`std::optional<int>`; `-N` when killed by signal N) |
/// | `await wait()`, `await communicate(input)` | `co_await wait()` → `int`, `co_await communicate(input)` → `std::pair<std::string, std::string>` |
/// | `send_signal`, `terminate`, `kill` | same names |
///
/// ## Semantics worth knowing
/// - **Spawning** uses posix_spawn (vfork-like, safe with threads; only the C library runs in
///   the child). A program name without '/' is searched in `PATH` (the `env` option's PATH if
///   given, as Python's `os.get_exec_path(env)`). A program that cannot be run makes the await
///   throw `std::system_error` with its errno (ENOENT: asyncio's FileNotFoundError, EACCES:
///   PermissionError).
/// - **File descriptors**: the child gets its stdin, stdout and stderr and nothing else. Every
///   fd corio opens is close-on-exec (pipes are made with pipe2(O_CLOEXEC) where it exists),
///   and with glibc >= 2.34 (and FreeBSD >= 13.1) the child also closes every other fd >= 3
///   before exec, Python's `close_fds=True`. Elsewhere a descriptor *you* opened without
///   close-on-exec is inherited.
/// - **Signals**: the child starts with SIGPIPE and SIGXFSZ at their default action, whatever
///   the parent did with them (Python's `restore_signals=True`), so `yes | head` works in a
///   child of a server that ignores SIGPIPE. Signal handlers never carry over an exec.
/// - **Reaping** never races with other children: corio waits only for its own pids, never
///   with `waitpid(-1)`, and installs no SIGCHLD handler. On Linux a pidfd tells the loop when
///   the child exits; elsewhere (or on kernels before 5.3) one thread per child blocks in
///   `waitpid(pid)` (see corio/detail/child_watcher.hpp). A child that someone else reaped
///   anyway (`waitpid(-1)` in other code, SIGCHLD ignored) reports 255, with a report through
///   the loop's exception handler, as asyncio warns.
/// - **wait()** returns once the child has exited, even if a grandchild still holds its
///   stdout open (as trio and uvloop do, and CPython after gh-119710; asyncio 3.12 also waits
///   for the pipes to close). As in asyncio, a child writing more than the pipe buffer and
///   stream limit to a `pipe` nobody reads blocks, and then wait() waits forever: read the
///   pipes, or use communicate().
/// - **Dropping the process**: when the last copy of the `process` handle is gone (and no
///   `wait()` or `communicate()` is pending) while the child still runs, the child is killed
///   with SIGKILL and its pipes are closed, as asyncio does when its subprocess transport is
///   closed or collected; it is then reaped in the background (by the loop while it runs, else
///   by a detached thread), so it never stays a zombie and nothing blocks.
/// - **The loop closing** (end of `corio::run`) while a handle is still alive leaves the child
///   running; nothing watches it any more (`returncode()` stays empty); dropping the handle
///   later kills and reaps it as above.
///
/// All members are loop-thread only, like the rest of the loop's objects.

// ---- begin corio/detail/child_watcher.hpp (included from corio/subprocess.hpp) ----
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



#include <sys/wait.h>

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
// ---- end corio/detail/child_watcher.hpp ----

#include <span>

#include <spawn.h>
#if defined(__FreeBSD__)
#include <sys/param.h> // __FreeBSD_version
#endif

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
#define CORIO_DETAIL_SPAWN_CHDIR 1
#elif defined(__APPLE__) || (defined(__FreeBSD__) && __FreeBSD_version >= 1301000)
#define CORIO_DETAIL_SPAWN_CHDIR 1
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define CORIO_DETAIL_SPAWN_CLOSEFROM 1
#elif defined(__FreeBSD__) && __FreeBSD_version >= 1301000
#define CORIO_DETAIL_SPAWN_CLOSEFROM 1
#endif

/// \cond INTERNAL
#if defined(__APPLE__)
#include <crt_externs.h> // a shared library cannot use `environ` directly on macOS
#else
extern char** environ; // POSIX declares it nowhere; glibc only with _GNU_SOURCE
#endif
/// \endcond

namespace corio {

/// Where one of a child's standard streams goes (asyncio's `stdin=`, `stdout=`, `stderr=`
/// arguments). Use the constants `corio::inherit`, `corio::pipe`, `corio::devnull`,
/// `corio::stdout_`, or `stdio::from_fd(fd)`.
struct stdio {
    /// The kinds of redirection.
    enum class kind : unsigned char {
        inherit, ///< the parent's own stream (asyncio's `None`, the default)
        pipe,    ///< a pipe to the parent: a stream_writer (stdin) or stream_reader (stdout, stderr)
        devnull, ///< /dev/null (asyncio's `DEVNULL`)
        stdout_, ///< stderr only: to wherever stdout goes (asyncio's `STDOUT`)
        fd,      ///< a file descriptor of the parent (dup'ed; the caller keeps and closes it)
    };
    /// The redirection.
    kind how = kind::inherit;
    /// The parent's file descriptor, for kind::fd.
    int fd = -1;

    /// Redirects to (a duplicate of) the parent's file descriptor `fd`, as asyncio accepts a
    /// file object or descriptor. The descriptor must stay open until the process is spawned.
    static constexpr stdio from_fd(int fd) noexcept { return stdio{kind::fd, fd}; }
    /// Same kind (and same fd for kind::fd).
    friend constexpr bool operator==(const stdio&, const stdio&) noexcept = default;
};

/// The child uses the parent's stream (asyncio's `None`; the default).
inline constexpr stdio inherit{stdio::kind::inherit};
/// A pipe to the parent (asyncio.subprocess.PIPE): `process::stdin_` writes to it,
/// `process::stdout_` / `stderr_` read from it. Beware `using namespace corio;` with POSIX
/// `pipe()`: call that one as `::pipe`.
inline constexpr stdio pipe{stdio::kind::pipe};
/// /dev/null (asyncio.subprocess.DEVNULL).
inline constexpr stdio devnull{stdio::kind::devnull};
/// For `stderr_` only: stderr goes where stdout goes (asyncio.subprocess.STDOUT).
inline constexpr stdio stdout_{stdio::kind::stdout_};

/// The keyword arguments of create_subprocess_exec: `corio::subprocess_options{.stdout_ =
/// corio::pipe}`.
///
/// Every member is trivially destructible (views, not strings), so the options may be built
/// with braces inside a `co_await` statement even under GCC 12 (PR 100611, see the README's
/// compiler notes). What `cwd` and `env` view is copied when create_subprocess_exec is called:
/// it only has to live until that call returns.
struct subprocess_options {
    /// The child's stdin: `inherit` (default), `pipe`, `devnull`, or `stdio::from_fd(fd)`.
    stdio stdin_ = inherit;
    /// The child's stdout: `inherit` (default), `pipe`, `devnull`, or `stdio::from_fd(fd)`.
    stdio stdout_ = inherit;
    /// The child's stderr: as stdout_, or `corio::stdout_` (to wherever stdout goes).
    stdio stderr_ = inherit;
    /// The buffer limit of the stdout/stderr stream_readers (asyncio's `limit=`, 64 KiB).
    std::size_t limit = 65536;
    /// The child's working directory (empty: the parent's). A relative program path is
    /// resolved from it. Throws `std::system_error` ENOSYS where posix_spawn cannot chdir
    /// (glibc before 2.29, FreeBSD before 13.1).
    std::string_view cwd{};
    /// The child's whole environment as "NAME=value" strings (none: the parent's).
    std::optional<std::span<const std::string>> env{};
};

static_assert(std::is_trivially_destructible_v<subprocess_options>,
              "subprocess_options is built with braces inside co_await statements (GCC PR 100611)");

class process;

namespace detail::proc {

/// What to spawn: the arguments of create_subprocess_exec, owned.
struct spawn_request {
    std::vector<std::string> argv;
    std::array<stdio, 3> io{};
    std::size_t limit = 65536;
    std::optional<std::string> cwd;
    std::optional<std::vector<std::string>> env;
};

inline spawn_request make_request(std::vector<std::string> argv, const subprocess_options& o) {
    spawn_request r;
    r.argv = std::move(argv);
    r.io = {o.stdin_, o.stdout_, o.stderr_};
    r.limit = o.limit;
    if (!o.cwd.empty()) r.cwd.emplace(o.cwd);
    if (o.env) r.env.emplace(o.env->begin(), o.env->end());
    return r;
}

/// A close-on-exec duplicate of `fd` above the standard streams (so that the child's dup2 onto
/// 0, 1 and 2 never overwrites a source it still needs). Throws `std::system_error`.
inline unique_fd dup_above_stdio(int fd) {
    const int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (d < 0) throw_os_error(errno, "fcntl(F_DUPFD_CLOEXEC)");
    return unique_fd(d);
}

/// `fd` if it is above the standard streams, else dup_above_stdio(fd).
inline unique_fd above_stdio(unique_fd fd) {
    if (fd.get() > 2) return fd;
    return dup_above_stdio(fd.get());
}

/// posix_spawn's file actions and attributes, freed on every path.
struct spawn_setup {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    bool have_actions = false;
    bool have_attr = false;

    spawn_setup() {
        if (int e = ::posix_spawn_file_actions_init(&actions))
            throw std::system_error(e, std::generic_category(), "posix_spawn_file_actions_init");
        have_actions = true;
        if (int e = ::posix_spawnattr_init(&attr))
            throw std::system_error(e, std::generic_category(), "posix_spawnattr_init");
        have_attr = true;
    }
    spawn_setup(const spawn_setup&) = delete;
    spawn_setup& operator=(const spawn_setup&) = delete;
    ~spawn_setup() {
        if (have_actions) ::posix_spawn_file_actions_destroy(&actions);
        if (have_attr) ::posix_spawnattr_destroy(&attr);
    }
};

inline void check_spawn(int e, const char* what) {
    if (e) throw std::system_error(e, std::generic_category(), what);
}

/// posix_spawn, searching `path` (a PATH value) as execvp does when the program has no '/':
/// ENOENT/ENOTDIR go on to the next directory, EACCES is remembered, anything else stops.
inline int spawn_in_path(pid_t* pid, const std::string& program, const std::string& path,
                         const posix_spawn_file_actions_t* fa, const posix_spawnattr_t* attr,
                         char* const argv[], char* const envp[]) {
    int result = ENOENT;
    std::size_t start = 0;
    for (;;) {
        std::size_t end = path.find(':', start);
        std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
        std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + program;
        int e = ::posix_spawn(pid, candidate.c_str(), fa, attr, argv, envp);
        if (e == 0) return 0;
        if (e == EACCES) result = EACCES;
        else if (e != ENOENT && e != ENOTDIR) return e;
        if (end == std::string::npos) return result;
        start = end + 1;
    }
}

/// A spawned child and the parent's ends of its pipes (-1 where there is no pipe).
struct spawned {
    pid_t pid = -1;
    std::array<unique_fd, 3> parent_ends;
};

/// Spawns the child (synchronously). Throws `std::system_error` (spawn errors, with the
/// program's name) or `std::invalid_argument` (bad options).
inline spawned spawn_child(const spawn_request& req) {
    if (req.argv.empty() || req.argv[0].empty())
        throw std::invalid_argument("corio::create_subprocess_exec: no program given");
    if (req.io[0].how == stdio::kind::stdout_ || req.io[1].how == stdio::kind::stdout_)
        throw std::invalid_argument("corio::create_subprocess_exec: corio::stdout_ is for stderr_ only");
    if (req.limit == 0) throw std::invalid_argument("corio::create_subprocess_exec: limit must be > 0");

    spawned out;
    std::array<unique_fd, 3> child_ends; // the child's ends of pipes, or copies of user fds
    for (int target = 0; target < 3; ++target) {
        const stdio& s = req.io[static_cast<std::size_t>(target)];
        if (s.how == stdio::kind::pipe) {
            auto [r, w] = open_pipe(); // close-on-exec, both ends blocking
            unique_fd& parent = target == 0 ? w : r;
            unique_fd& child = target == 0 ? r : w;
            set_nonblocking(parent.get()); // the loop's end; the child's end stays blocking
            out.parent_ends[static_cast<std::size_t>(target)] = std::move(parent);
            child_ends[static_cast<std::size_t>(target)] = above_stdio(std::move(child));
        } else if (s.how == stdio::kind::fd) {
            if (s.fd < 0 || ::fcntl(s.fd, F_GETFD) < 0)
                throw std::system_error(EBADF, std::generic_category(),
                                        "corio::create_subprocess_exec: stdio::from_fd");
            if (s.fd < 3 && s.fd != target) { // may be overwritten by an earlier dup2: copy it
                child_ends[static_cast<std::size_t>(target)] = dup_above_stdio(s.fd);
            }
        }
    }

    spawn_setup setup;
    for (int target = 0; target < 3; ++target) {
        const std::size_t i = static_cast<std::size_t>(target);
        const stdio& s = req.io[i];
        switch (s.how) {
        case stdio::kind::inherit:
            break;
        case stdio::kind::pipe:
            check_spawn(::posix_spawn_file_actions_adddup2(&setup.actions, child_ends[i].get(), target),
                        "posix_spawn_file_actions_adddup2");
            break;
        case stdio::kind::devnull:
            check_spawn(::posix_spawn_file_actions_addopen(&setup.actions, target, "/dev/null",
                                                           target == 0 ? O_RDONLY : O_WRONLY, 0),
                        "posix_spawn_file_actions_addopen");
            break;
        case stdio::kind::stdout_:
            check_spawn(::posix_spawn_file_actions_adddup2(&setup.actions, 1, 2),
                        "posix_spawn_file_actions_adddup2");
            break;
        case stdio::kind::fd: {
            const int src = child_ends[i] ? child_ends[i].get() : s.fd;
            if (src != target) // the same fd: inherited as it is
                check_spawn(::posix_spawn_file_actions_adddup2(&setup.actions, src, target),
                            "posix_spawn_file_actions_adddup2");
            break;
        }
        }
    }
    if (req.cwd) {
#if defined(CORIO_DETAIL_SPAWN_CHDIR)
        check_spawn(::posix_spawn_file_actions_addchdir_np(&setup.actions, req.cwd->c_str()),
                    "posix_spawn_file_actions_addchdir_np");
#else
        throw std::system_error(ENOSYS, std::generic_category(),
                                "corio::create_subprocess_exec: cwd is not supported on this platform");
#endif
    }
#if defined(CORIO_DETAIL_SPAWN_CLOSEFROM)
    // Python's close_fds=True: the child keeps 0, 1 and 2 only.
    check_spawn(::posix_spawn_file_actions_addclosefrom_np(&setup.actions, 3),
                "posix_spawn_file_actions_addclosefrom_np");
#endif
    // Python's restore_signals=True: what the parent ignores, the child must not.
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
#if defined(SIGXFSZ)
    sigaddset(&defaults, SIGXFSZ);
#endif
    check_spawn(::posix_spawnattr_setsigdefault(&setup.attr, &defaults), "posix_spawnattr_setsigdefault");
    check_spawn(::posix_spawnattr_setflags(&setup.attr, POSIX_SPAWN_SETSIGDEF), "posix_spawnattr_setflags");

    std::vector<char*> argv;
    argv.reserve(req.argv.size() + 1);
    for (const std::string& a : req.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    if (req.env) {
        envp.reserve(req.env->size() + 1);
        for (const std::string& e : *req.env) envp.push_back(const_cast<char*>(e.c_str()));
        envp.push_back(nullptr);
    }
#if defined(__APPLE__)
    char* const* env = req.env ? envp.data() : *_NSGetEnviron();
#else
    char* const* env = req.env ? envp.data() : environ;
#endif

    const std::string& program = req.argv[0];
    int e;
    if (program.find('/') != std::string::npos) {
        e = ::posix_spawn(&out.pid, program.c_str(), &setup.actions, &setup.attr, argv.data(), env);
    } else if (!req.env) {
        e = ::posix_spawnp(&out.pid, program.c_str(), &setup.actions, &setup.attr, argv.data(), env);
    } else {
        std::string path = "/bin:/usr/bin"; // Python's os.defpath, for an env without PATH
        for (const std::string& kv : *req.env)
            if (kv.rfind("PATH=", 0) == 0) path = kv.substr(5);
        e = spawn_in_path(&out.pid, program, path, &setup.actions, &setup.attr, argv.data(), env);
    }
    if (e) throw std::system_error(e, std::generic_category(), program);
    return out; // child_ends close here: the child has its copies
}

/// What every copy of a `process` handle shares.
class process_state {
public:
    process_state(event_loop& loop, pid_t pid)
        : m_loop(&loop), m_pid(pid), m_watch(std::make_unique<child_watch>(pid)), m_exited(loop) {}
    process_state(const process_state&) = delete;
    process_state& operator=(const process_state&) = delete;

    /// The last handle is gone: a running child is killed (asyncio closes a running child's
    /// transport so) and reaped in the background; the pipes are closed. Once the loop is
    /// closed (the future's loop pointer is cleared then), the loop is not touched.
    ~process_state() {
        const bool loop_open = m_exited.core()->loop() != nullptr;
        if (!m_returncode && m_watch && !m_watch->collected()) {
            try {
                if (loop_open && m_registered) m_loop->remove_reader(m_watch->fd());
                m_watch->send_signal(SIGKILL);
            } catch (...) { // kill() refused (EPERM): nothing more can be done
            }
            if (loop_open && !m_watch->threaded()) adopt_orphan();
        }
        for (auto& tr : m_pipes) {
            if (!tr || !loop_open) continue;
            try {
                if (!tr->is_closing()) tr->close();
            } catch (...) {
            }
        }
    }

    /// Starts watching for the exit on the loop.
    void start() {
        m_loop->add_reader(m_watch->fd(), [this] { on_exit_ready(); });
        m_registered = true;
    }

    pid_t pid() const noexcept { return m_pid; }
    const std::optional<int>& returncode() const noexcept { return m_returncode; }
    future<void>& exited() noexcept { return m_exited; }
    event_loop& loop() const noexcept { return *m_loop; }
    std::array<std::shared_ptr<transport>, 3>& pipes() noexcept { return m_pipes; }

    void send_signal(int sig) {
        if (m_returncode || !m_watch->send_signal(sig))
            throw std::system_error(ESRCH, std::generic_category(),
                                    "send_signal: the process has exited"); // ProcessLookupError
    }

private:
    void on_exit_ready() {
        std::optional<child_exit> ex = m_watch->try_collect();
        if (!ex) return;
        m_loop->remove_reader(m_watch->fd());
        m_registered = false;
        m_watch->close_fd();
        m_returncode = ex->returncode;
        if (ex->unknown)
            m_loop->call_exception_handler(
                {"Unknown child process pid " + std::to_string(m_pid) +
                     ", will report returncode 255",
                 nullptr,
                 {}});
        if (!m_exited.done()) m_exited.set_result();
    }

    /// The killed child is reaped by the loop when its pidfd fires; if the loop closes first,
    /// the callback is dropped and ~child_watch hands the pid to a detached reaper thread.
    void adopt_orphan() noexcept {
        try {
            std::shared_ptr<child_watch> w(std::move(m_watch));
            event_loop* loop = m_loop;
            loop->add_reader(w->fd(), [w, loop] {
                if (!w->try_collect()) return;
                loop->remove_reader(w->fd()); // destroys this callable once it returns
                w->close_fd();
            });
        } catch (...) { // the watch (if not moved) reaps in the background as it is destroyed
        }
    }

    event_loop* m_loop;
    pid_t m_pid;
    std::unique_ptr<child_watch> m_watch; ///< moved to the loop (adopt_orphan) at the very end
    future<void> m_exited; ///< done at exit; its loop pointer is cleared when the loop closes
    std::optional<int> m_returncode;
    std::array<std::shared_ptr<transport>, 3> m_pipes;
    bool m_registered = false;
};

inline task<int> wait_exit(std::shared_ptr<process_state> st) {
    if (!st->returncode()) co_await st->exited().wait_done(); // cancelling only stops waiting
    co_return *st->returncode();
}

inline bool is_broken_pipe(const std::system_error& e) noexcept {
    return e.code() == std::errc::broken_pipe || e.code() == std::errc::connection_reset;
}

/// asyncio's Process._feed_stdin.
inline task<> feed_stdin(std::optional<stream_writer> w, std::string input) {
    if (!w || !*w) co_return;
    try {
        if (!input.empty()) {
            w->write(input);
            co_await w->drain();
        }
    } catch (const std::system_error& e) {
        if (!is_broken_pipe(e)) { // communicate() ignores BrokenPipeError and ConnectionResetError
            w->close();
            throw;
        }
    }
    w->close();
}

/// asyncio's Process._read_stream: all of it, then the pipe is closed.
inline task<std::string> read_pipe(std::optional<stream_reader> r, std::shared_ptr<transport> tr) {
    if (!r) co_return std::string();
    std::string data = co_await r->read();
    if (tr && !tr->is_closing()) tr->close();
    co_return data;
}

inline task<std::pair<std::string, std::string>> communicate(std::shared_ptr<process_state> st,
                                                            std::optional<stream_writer> in,
                                                            std::optional<stream_reader> out,
                                                            std::optional<stream_reader> err,
                                                            std::string input) {
    auto feed = feed_stdin(std::move(in), std::move(input));
    auto read_out = read_pipe(std::move(out), st->pipes()[1]);
    auto read_err = read_pipe(std::move(err), st->pipes()[2]);
    auto all = gather(std::move(feed), std::move(read_out), std::move(read_err));
    auto results = co_await std::move(all);
    co_await wait_exit(st);
    co_return std::pair<std::string, std::string>(std::move(std::get<1>(results)),
                                                  std::move(std::get<2>(results)));
}

inline task<process> spawn_task(spawn_request req);

template <class T>
concept exec_arg = std::constructible_from<std::string, const T&>;
template <class T>
concept options_arg = std::same_as<std::remove_cvref_t<T>, subprocess_options>;

/// Program and arguments (string-like), optionally ended by a subprocess_options.
template <class... A>
consteval bool valid_exec_args() {
    constexpr std::size_t n = sizeof...(A);
    if constexpr (n == 0) {
        return false;
    } else {
        constexpr bool str[] = {exec_arg<A>...};
        constexpr bool opt[] = {options_arg<A>...};
        if (!str[0]) return false;
        for (std::size_t i = 1; i < n; ++i)
            if (!str[i] && !(opt[i] && i + 1 == n)) return false;
        return true;
    }
}

} // namespace detail::proc

/// A child process (asyncio.subprocess.Process), as create_subprocess_exec gives it.
///
/// A copyable handle: copies share the child. When the last copy is gone (and no wait() or
/// communicate() is pending) while the child still runs, the child is killed (SIGKILL) and
/// reaped in the background, as asyncio does when it collects a running child's transport;
/// keep the handle, or `co_await wait()`, for as long as the child should live.
class process {
public:
    /// An empty handle (only assignment and `operator bool` may be used).
    process() noexcept = default;

    /// Writes to the child's stdin (set if `stdin_ = corio::pipe`). Closing it (`close()` or
    /// `write_eof()`) gives the child EOF.
    std::optional<stream_writer> stdin_;
    /// Reads the child's stdout (set if `stdout_ = corio::pipe`).
    std::optional<stream_reader> stdout_;
    /// Reads the child's stderr (set if `stderr_ = corio::pipe`).
    std::optional<stream_reader> stderr_;

    /// True unless the handle is empty.
    explicit operator bool() const noexcept { return m_state != nullptr; }

    /// The child's process id.
    int pid() const noexcept { return static_cast<int>(m_state->pid()); }

    /// The exit status once the child has exited and the loop noticed (empty before): the exit
    /// code, or `-N` if it was killed by signal N (asyncio's returncode).
    std::optional<int> returncode() const noexcept { return m_state->returncode(); }

    /// Waits for the child to exit and gives its returncode (at once if it already has).
    /// Returns when the child exits, whether or not its pipes are closed (see the file
    /// comment). Cancellation: only the waiting stops; the child keeps running and wait() may
    /// be called again (asyncio). Any number of tasks may wait at once.
    [[nodiscard]] task<int> wait() const { return detail::proc::wait_exit(m_state); }

    /// asyncio's communicate(input): writes `input` to stdin (if it is a pipe) and closes it,
    /// reads stdout and stderr (those that are pipes) until EOF, concurrently, then waits for
    /// the child to exit. Gives `{stdout, stderr}` (empty for a stream that is not a pipe).
    /// A child that exits or closes its stdin before reading all the input is not an error
    /// (EPIPE and ECONNRESET on stdin are ignored, as asyncio does); other I/O errors are
    /// thrown (`std::system_error`). Output is not bounded by the stream limit (read() to EOF).
    /// Cancellation: the reading and writing stop (the pipes stay open, and what was read
    /// stays buffered in `stdout_`/`stderr_`), the child keeps running.
    [[nodiscard]] task<std::pair<std::string, std::string>> communicate(std::string input = {}) const {
        return detail::proc::communicate(m_state, stdin_, stdout_, stderr_, std::move(input));
    }

    /// Sends signal `sig` to the child. Throws `std::system_error` ESRCH once the child has
    /// exited and was reaped (asyncio's ProcessLookupError; corio never signals a pid that
    /// may have been reused), or with kill()'s errno.
    void send_signal(int sig) { m_state->send_signal(sig); }
    /// send_signal(SIGTERM).
    void terminate() { send_signal(SIGTERM); }
    /// send_signal(SIGKILL).
    void kill() { send_signal(SIGKILL); }

private:
    friend task<process> detail::proc::spawn_task(detail::proc::spawn_request req);
    std::shared_ptr<detail::proc::process_state> m_state;
};

namespace detail::proc {

/// Spawns on the running loop when first resumed (create_subprocess_exec is lazy, as every
/// corio coroutine), and wires the pipes to streams.
inline task<process> spawn_task(spawn_request req) {
    event_loop& loop = get_running_loop();
    spawned child = spawn_child(req);
    std::shared_ptr<process_state> st;
    try {
        st = std::make_shared<process_state>(loop, child.pid);
    } catch (...) { // no way to watch it: do not leave it running unwatched
        ::kill(child.pid, SIGKILL);
        (void)blocking_reap(child.pid);
        throw;
    }
    // From here on, an exception destroys `st`, which kills the child and reaps it.
    process p;
    p.m_state = st;
    for (std::size_t i = 0; i < 3; ++i) {
        unique_fd& fd = child.parent_ends[i];
        if (!fd) continue;
        std::optional<stream_reader> reader;
        if (i > 0) reader.emplace(req.limit);
        auto proto = std::make_shared<stream_protocol>(reader);
        auto tr = make_pipe_transport(loop, fd.release(), proto); // owns the fd, even if it throws
        st->pipes()[i] = tr;
        if (i == 0) p.stdin_.emplace(tr, proto);
        else if (i == 1) p.stdout_ = std::move(reader);
        else p.stderr_ = std::move(reader);
    }
    st->start();
    co_return p;
}

} // namespace detail::proc

/// asyncio.create_subprocess_exec(program, *args, ...): starts `program` with `args` and gives
/// the `process`. The arguments are strings (anything a std::string can be made from); the
/// last may be a `subprocess_options`:
///
///     auto p = co_await corio::create_subprocess_exec("ls", "-l", dir,
///                                                      corio::subprocess_options{.stdout_ = corio::pipe});
///
/// Lazy, as every corio coroutine: the child starts when the task is awaited (or scheduled).
/// Throws `std::system_error` if it cannot be started (ENOENT for a program that does not
/// exist, EACCES, EMFILE...), `std::invalid_argument` for invalid options. Must run in a task
/// (it uses the running loop). Cancellation: spawning does not suspend, so a cancelled
/// task never runs it or already has the process.
template <class... A>
    requires(detail::proc::valid_exec_args<A...>())
[[nodiscard]] task<process> create_subprocess_exec(A&&... args) {
    std::vector<std::string> argv;
    argv.reserve(sizeof...(A));
    subprocess_options opts;
    auto add = [&]<class T>(T&& a) {
        if constexpr (detail::proc::options_arg<T>) opts = a;
        else argv.emplace_back(std::forward<T>(a));
    };
    (add(std::forward<A>(args)), ...);
    return detail::proc::spawn_task(detail::proc::make_request(std::move(argv), opts));
}

/// create_subprocess_exec with the program and its arguments in one vector (`argv[0]` is the
/// program): `co_await corio::create_subprocess_exec(argv, {.stdin_ = corio::pipe})`. (GCC 12
/// rejects a braced list such as `{"sort", "-n"}` inside a co_await statement, "array used as
/// initializer": name the vector first.) Throws as the variadic form; `std::invalid_argument`
/// for an empty argv.
[[nodiscard]] inline task<process> create_subprocess_exec(std::vector<std::string> argv,
                                                          subprocess_options opts = {}) {
    return detail::proc::spawn_task(detail::proc::make_request(std::move(argv), opts));
}

/// create_subprocess_exec with the options written in place, as asyncio's keyword arguments
/// (API.md's spelling): `co_await corio::create_subprocess_exec("cat", {.stdin_ = corio::pipe})`,
/// for a program and up to three arguments. (A braced list cannot be deduced into the
/// variadic form's parameter pack, hence these overloads.) `subprocess_options` is trivially
/// destructible, so building it inside the co_await statement is safe from GCC PR 100611.
/// Throws as the variadic form.
///@{
[[nodiscard]] inline task<process> create_subprocess_exec(std::string_view program,
                                                          subprocess_options opts) {
    return create_subprocess_exec(std::vector<std::string>{std::string(program)}, opts);
}
[[nodiscard]] inline task<process> create_subprocess_exec(std::string_view program,
                                                          std::string_view a1,
                                                          subprocess_options opts) {
    return create_subprocess_exec(std::vector<std::string>{std::string(program), std::string(a1)},
                                  opts);
}
[[nodiscard]] inline task<process> create_subprocess_exec(std::string_view program,
                                                          std::string_view a1, std::string_view a2,
                                                          subprocess_options opts) {
    return create_subprocess_exec(
        std::vector<std::string>{std::string(program), std::string(a1), std::string(a2)}, opts);
}
[[nodiscard]] inline task<process> create_subprocess_exec(std::string_view program,
                                                          std::string_view a1, std::string_view a2,
                                                          std::string_view a3,
                                                          subprocess_options opts) {
    return create_subprocess_exec(std::vector<std::string>{std::string(program), std::string(a1),
                                                           std::string(a2), std::string(a3)},
                                  opts);
}
///@}

/// asyncio.create_subprocess_shell(cmd): runs `cmd` with `/bin/sh -c`. The shell interprets
/// it: never pass untrusted input. Throws as create_subprocess_exec.
[[nodiscard]] inline task<process> create_subprocess_shell(std::string_view cmd,
                                                           subprocess_options opts = {}) {
    return create_subprocess_exec(std::vector<std::string>{"/bin/sh", "-c", std::string(cmd)}, opts);
}

} // namespace corio
// ---- end corio/subprocess.hpp ----
// ---- begin corio/task_group.hpp (included from corio/corio.hpp) ----
/// \file corio/task_group.hpp
/// `corio::task_group`: asyncio's TaskGroup, with `join()` in place of `async with`.
///
///     corio::task_group tg;                       // async with asyncio.TaskGroup() as tg:
///     auto a = tg.create_task(fetch("a"));        //     a = tg.create_task(fetch("a"))
///     auto b = tg.create_task(fetch("b"));        //     b = tg.create_task(fetch("b"))
///     co_await tg.join();                         // (the end of the async with block)
///     use(a.result(), b.result());
///
/// ## Semantics (asyncio 3.12's, where C++ allows)
/// - The first child that fails (ends with an exception other than `cancelled_error`) cancels
///   every other child still running. `join()` waits for every child to finish, then throws
///   `corio::exception_group` holding every error, in the order the children failed
///   (`what()`: "unhandled errors in a TaskGroup (N sub-exceptions)"). Children that end
///   cancelled are not errors.
/// - The task awaiting `join()` being cancelled cancels every child; `join()` still waits for all
///   of them, then rethrows the `cancelled_error` (unless a child failed meanwhile: errors take
///   priority, as in asyncio, and `exception_group` is thrown; the task's `cancelling()` count
///   still says it was cancelled).
/// - Children may be added while `join()` waits (from the children themselves, say). Adding
///   one after a child failed (or the joiner was cancelled) throws
///   `std::runtime_error("TaskGroup is shutting down")`; after `join()` finished,
///   `std::runtime_error("TaskGroup is finished")`.
///
/// ## What differs from asyncio, and why
/// asyncio cancels the task running the `async with` body when a child fails, so that the
/// body's current await is interrupted. C++ has no asynchronous scope exit: a body interrupted
/// that way could not wait for the children before leaving, so corio does not cancel the
/// parent. A failure cancels the siblings; the parent learns of it from `join()`.
///
/// Always `co_await tg.join()`. A `task_group` destroyed without it (the parent threw or was
/// cancelled before reaching `join()`) cannot wait in its destructor: it cancels the children
/// still running and lets them finish on the loop by themselves. Their errors (and those of
/// children that failed before) are then nobody's: each is reported as "Task exception was never
/// retrieved" when the last handle of its task goes, as for any task. Children that refer to the
/// parent's locals must not outlive it this way: reach `join()`.



namespace corio {

namespace detail {

/// What a task_group shares with the done callbacks of its children. Kept by shared_ptr: the
/// callbacks of children still running hold it after an unjoined group is destroyed.
struct task_group_state {
    event_loop* loop = nullptr;
    std::list<task_ref> running;  ///< children not done yet (removed by their done callback)
    std::vector<task_ref> failed; ///< children that failed, in the order they did
    std::optional<future<void>> on_completed; ///< set when `running` empties, while join() waits
    bool aborting = false;        ///< a child failed, or the joiner was cancelled
    bool joining = false;         ///< join() is running
    bool finished = false;        ///< join() has returned (or thrown)
    bool orphaned = false;        ///< the group was destroyed without finishing join()

    /// asyncio's TaskGroup._abort: cancels every child still running. (Cancelling one child
    /// never finishes another synchronously in a way that runs its done callback now: done
    /// callbacks go through call_soon, so the list does not change under the loop.)
    void abort() noexcept {
        aborting = true;
        for (task_ref& t : running) {
            try {
                t.cancel();
            } catch (...) { // only on a closed loop, where every task is done already
            }
        }
    }

    /// asyncio's TaskGroup._on_task_done: a child finished (`failed`: with an error other than
    /// a cancellation). The child's error is not taken (retrieved) here but by join(), so the
    /// errors of a group destroyed unjoined are reported like those of any lost task.
    void on_child_done(std::list<task_ref>::iterator it, bool child_failed) {
        task_ref t = std::move(*it);
        running.erase(it);
        if (running.empty() && on_completed && !on_completed->done()) on_completed->set_result();
        if (!child_failed || orphaned) return;
        failed.push_back(std::move(t));
        if (!aborting) abort();
    }
};

inline std::string task_group_message(std::size_t n) {
    return "unhandled errors in a TaskGroup (" + std::to_string(n) +
           (n == 1 ? " sub-exception)" : " sub-exceptions)");
}

} // namespace detail

/// asyncio's TaskGroup: runs tasks together; `co_await join()` waits for all of them. The first
/// child to fail cancels the others, and `join()` throws every error in a `corio::exception_group`.
/// The file comment of corio/task_group.hpp has the details, and what differs from asyncio.
///
/// Not copyable or movable (children's bookkeeping and a pending `join()` refer to it). Bound to
/// the loop on which its first task is created. A loop-thread object.
class task_group {
public:
    /// An empty group.
    task_group() : m_state(std::make_shared<detail::task_group_state>()) {}
    task_group(const task_group&) = delete;
    task_group& operator=(const task_group&) = delete;

    /// If `join()` has not finished: cancels the children still running (they finish on the loop
    /// by themselves, later) and gives up the errors collected so far, which are then reported
    /// as "Task exception was never retrieved" as for any task nobody looked at. Never throws.
    ~task_group() {
        detail::task_group_state& st = *m_state;
        if (st.finished) return;
        st.orphaned = true;
        st.failed.clear();
        st.abort();
    }

    /// Schedules `aw` (a `task<T>` moved in, a callable returning an awaitable, or any awaitable;
    /// as `corio::create_task`) on the running loop as a child of this group, and returns its
    /// handle (`task_handle<T>`).
    ///
    /// Throws `std::runtime_error("TaskGroup is finished")` once `join()` has finished,
    /// `std::runtime_error("TaskGroup is shutting down")` once a child has failed or the task
    /// awaiting `join()` was cancelled, `std::runtime_error` outside a running loop or on a loop
    /// other than the group's. `aw` is not started then.
    template <class Aw>
    auto create_task(Aw&& aw, std::string name = {},
                     std::source_location where = std::source_location::current()) {
        detail::task_group_state& st = *m_state;
        if (st.finished) throw std::runtime_error("TaskGroup is finished");
        if (st.aborting) throw std::runtime_error("TaskGroup is shutting down");
        event_loop& loop = get_running_loop();
        if (st.loop && st.loop != &loop)
            throw std::runtime_error("corio: the task_group belongs to a different event loop");
        st.loop = &loop;
        // The list node first: once the task exists, nothing may fail before it is tracked.
        auto it = st.running.emplace(st.running.end());
        struct unlink_on_error {
            std::list<task_ref>& list;
            std::list<task_ref>::iterator it;
            bool armed = true;
            ~unlink_on_error() {
                if (armed) list.erase(it);
            }
        } guard{st.running, it};
        auto h = loop.create_task(std::forward<Aw>(aw), std::move(name), where);
        using T = typename decltype(h)::value_type;
        *it = task_ref(h);
        try {
            h.add_done_callback([st = m_state, it](const future<T>& f) {
                st->on_child_done(it, !f.cancelled() && !f.state()->has_value());
            });
        } catch (...) {
            h.cancel(); // not supervised: do not leave it running
            throw;
        }
        guard.armed = false;
        return h;
    }

    /// `co_await tg.join()` waits until every child has finished (children added meanwhile
    /// included). Then throws `corio::exception_group` with the error of every child that
    /// failed, in the order they failed, if any did; returns otherwise.
    ///
    /// Cancellation: cancelling the awaiting task cancels every child; join() goes on waiting
    /// until they have all finished, then rethrows the `cancelled_error` (or throws the
    /// `exception_group` if a child failed: errors take priority, as in asyncio).
    ///
    /// Await it once: a second `join()` while one is pending throws `invalid_state_error`; one
    /// after the first finished returns at once (the errors were delivered already).
    task<> join() {
        std::shared_ptr<detail::task_group_state> st = m_state;
        if (st->joining)
            throw invalid_state_error("corio: task_group::join() is already being awaited");
        if (st->finished) co_return;
        st->joining = true;
        std::exception_ptr cancelled;
        while (!st->running.empty()) {
            future<void> all_done(*st->loop);
            st->on_completed = all_done;
            try {
                co_await all_done.wait_done(); // cancelling us does not cancel it
            } catch (const cancelled_error&) {
                if (!cancelled) cancelled = std::current_exception();
                if (!st->aborting) st->abort();
            }
            st->on_completed.reset();
        }
        st->joining = false;
        st->finished = true;
        if (!st->failed.empty()) {
            std::vector<std::exception_ptr> errors;
            errors.reserve(st->failed.size());
            for (task_ref& t : st->failed) errors.push_back(t.exception()); // now retrieved
            st->failed.clear();
            const std::size_t n = errors.size();
            throw exception_group(detail::task_group_message(n), std::move(errors));
        }
        if (cancelled) std::rethrow_exception(cancelled);
    }

private:
    std::shared_ptr<detail::task_group_state> m_state;
};

} // namespace corio
// ---- end corio/task_group.hpp ----
// ---- begin corio/testing.hpp (included from corio/corio.hpp) ----
/// \file corio/testing.hpp
/// The test clock: event loops whose time is virtual.
///
/// Under virtual time, `loop.time()` stands still while anything is ready to run; when every
/// task is idle (nothing ready, no I/O ready, no work outstanding on other threads) the clock
/// jumps straight to the next timer. A test of a one-hour timeout takes microseconds, and timers
/// fire in exactly the same order on every run. I/O still happens for real: when nothing but
/// I/O is pending, the loop waits for it.
///
///     TEST_CASE("the timeout fires after an hour of loop time") {
///         corio::testing::run([]() -> corio::task<> {
///             auto& loop = corio::get_running_loop();
///             double t0 = loop.time();
///             co_await corio::sleep(std::chrono::hours(1));
///             CHECK(loop.time() - t0 == doctest::Approx(3600.0));
///         });
///     }
///
/// Work on other threads: a virtual-time loop with work outstanding elsewhere (bracketed by
/// `event_loop::begin_external_work`/`end_external_work`, as `to_thread` and `run_in_executor`
/// do) blocks for it instead of jumping ahead. A running subprocess or a socket peer counts
/// as I/O, not as such work: a timer can fire before it answers. Without that bracket,
/// the clock jumps to the next timer even while another thread is about to call
/// `call_soon_threadsafe`.



/// The test clock: `run` and `virtual_event_loop` on virtual time.
namespace corio::testing {

/// An event loop on virtual time.
class virtual_event_loop : public event_loop {
public:
    virtual_event_loop() : event_loop(loop_options{.virtual_time = true}) {}
};

/// `corio::run` on virtual time.
template <class Aw>
auto run(Aw&& main, run_options options = {}) {
    options.virtual_time = true;
    return corio::run(std::forward<Aw>(main), options);
}

} // namespace corio::testing
// ---- end corio/testing.hpp ----
// ---- begin corio/timeouts.hpp (included from corio/corio.hpp) ----
/// \file corio/timeouts.hpp
/// Deadlines on an awaitable: asyncio's `wait_for`, `timeout` and `timeout_at`.
///
///     int v = co_await corio::wait_for(fetch(), 5s);           // asyncio.wait_for(fetch(), 5)
///     int w = co_await corio::with_timeout(5s, fetch());       // async with asyncio.timeout(5)
///     int x = co_await corio::timeout_at(loop.time() + 5, fetch());
///
/// All three run the awaitable and give its value (or rethrow its exception). If it is not done
/// by the deadline it is cancelled, and they WAIT until it has finished (its cleanup runs
/// first), then:
/// - it ended cancelled: they throw `corio::timeout_error`;
/// - it swallowed the cancellation and returned a value: that value is returned (asyncio);
/// - it ended with another exception: that exception is rethrown.
///
/// What runs: a `task<T>` (or a callable returning an awaitable, or another awaitable) runs as
/// a task of its own, created when the `co_await` starts (asyncio 3.12 runs the coroutine in
/// the awaiting task instead; the observable difference is `current_task()` inside it). A
/// `future<T>` or `task_handle<T>` is waited on as it is, and cancelled at the deadline.
///
/// Cancellation: cancelling the task that awaits cancels the awaitable too (with the same
/// message), waits for it to finish, and throws `cancelled_error`, never `timeout_error`, even
/// if the deadline passed as well (asyncio compares `cancelling()` counts for that). If the
/// awaitable swallows that cancellation and returns a value, the value is returned, as in
/// asyncio. Once the awaiting task is cancelled, the deadline no longer matters.
///
/// A result that arrives together with the deadline is not lost. When the deadline fires, an
/// awaitable that is already done gives its outcome; one whose task is already queued to run
/// (woken in that same iteration, say by its own timer due at the same time, or yielding with
/// `sleep(0s)`) takes that one step first, and is cancelled only if it is still not done.
/// (asyncio 3.11's wait_for kept such results too; 3.12's, built on `timeout()`, cancels and
/// loses them: checked with CPython 3.12.1.)
///
/// A deadline already passed: `wait_for` does what asyncio 3.12's `wait_for(aw, 0)` does (a
/// future that is done gives its result; anything else is cancelled at once: a coroutine never
/// starts), while `with_timeout` and `timeout_at` do what `asyncio.timeout(0)` does (the
/// awaitable runs until its first suspension, then is cancelled).
///
/// The clock starts when the `co_await` starts (these return lazy `task<T>`s).



namespace corio {
namespace detail {

/// Waits until a future is done, or until a deadline, or (yield mode) for one trip through the
/// ready queue. Cancelling the awaiting task cancels the future (asyncio: the awaited future
/// is cancelled with the task) and keeps waiting for it to finish, so that the awaitable's
/// cleanup has run when the combinator reports the cancellation. A cancellation delivered when
/// the task resumes (it was cancelled while queued) is recorded instead of thrown, for the
/// same reason.
class deadline_awaiter final : public future_waiter, public timer_node, public task_waiter {
public:
    /// `deadline_ns`: absolute loop time, or none. `yield_once`: just go to the back of the
    /// ready queue (lets a task that is already woken run its step first).
    deadline_awaiter(future_core& f, std::optional<std::int64_t> deadline_ns, bool yield_once) noexcept
        : m_future(&f), m_deadline(deadline_ns), m_yield(yield_once) {
        future_waiter::on_done = &on_future_done;
        timer_node::fire = &on_fire;
        task_waiter::cancel = &on_cancel;
    }
    deadline_awaiter(const deadline_awaiter&) = delete;
    deadline_awaiter& operator=(const deadline_awaiter&) = delete;
    ~deadline_awaiter() { unregister(); }

    bool await_ready() const noexcept { return !m_yield && m_future->done(); }

    void await_suspend(std::coroutine_handle<> h) {
        task_core& t = require_current_task();
        if (&t.as_future() == m_future) throw std::runtime_error("Task cannot await on itself");
        if (t.as_future().loop() != m_future->loop())
            throw std::runtime_error("corio: the future is attached to a different loop");
        m_task = &t;
        m_loop = t.as_future().loop();
        if (m_yield) {
            t.suspend_on(h, nullptr); // a cancellation is delivered at the resume (recorded)
            t.wake();
            return;
        }
        if (m_deadline) loop_ops::add_timer(*m_loop, this, *m_deadline); // may throw: first
        m_future->add_waiter(this);
        t.suspend_on(h, this);
    }

    void await_resume() {
        if (!m_task) return;
        try {
            m_task->throw_if_cancel_delivered();
        } catch (const cancelled_error& e) {
            // Cancelled while queued: pass it on like an in-place cancellation.
            m_cancelled = true;
            m_message = e.message();
            if (m_future->done()) m_after_done = true;
            else m_future->cancel(m_message);
        }
    }

    /// The deadline passed before the future was done.
    bool expired() const noexcept { return m_expired; }
    /// The awaiting task was cancelled (the future was cancelled in turn, unless done).
    bool cancelled() const noexcept { return m_cancelled; }
    /// The cancellation arrived when the future was already done: it must be thrown as is.
    bool cancelled_after_done() const noexcept { return m_after_done; }
    /// The cancellation's message.
    std::string& message() noexcept { return m_message; }

private:
    void unregister() noexcept {
        m_future->remove_waiter(this);
        if (in_heap()) loop_ops::remove_timer(*m_loop, this);
    }

    static void on_future_done(future_waiter* w) noexcept {
        auto* self = static_cast<deadline_awaiter*>(w);
        if (self->in_heap()) loop_ops::remove_timer(*self->m_loop, self);
        self->m_task->wake();
    }
    static void on_fire(timer_node* n) noexcept {
        auto* self = static_cast<deadline_awaiter*>(n);
        self->m_expired = true;
        self->m_future->remove_waiter(self);
        self->m_task->wake(); // the awaiting task cancels the future, on the ready queue
    }
    static bool on_cancel(task_waiter* w, const std::string& msg) {
        auto* self = static_cast<deadline_awaiter*>(w);
        self->m_cancelled = true;
        self->m_message = msg;
        if (self->in_heap()) loop_ops::remove_timer(*self->m_loop, self); // moot now
        if (self->m_future->cancel(msg)) return true; // wakes us when it has finished
        self->unregister();                           // (not reached: a done future woke us)
        self->m_after_done = true;
        self->m_task->wake();
        return true;
    }

    future_core* m_future;
    std::optional<std::int64_t> m_deadline;
    task_core* m_task = nullptr;
    event_loop* m_loop = nullptr;
    std::string m_message;
    bool m_yield;
    bool m_expired = false;
    bool m_cancelled = false;
    bool m_after_done = false;
};

/// A deadline: nanoseconds of loop time, relative to the start of the await or absolute.
struct deadline_spec {
    std::int64_t ns;
    bool absolute;
};

/// True if `f` is a task that is queued to run (woken, its step not run yet).
inline bool queued_task(const future_base& f) noexcept {
    task_core* t = f.core()->as_task();
    return t && t->queued();
}

/// Marks the outcome of `f` as retrieved (it is discarded for a cancellation).
inline void discard_outcome(const future_base& f) noexcept {
    if (f.done() && !f.cancelled()) (void)f.core()->exception();
}

/// The body of wait_for / with_timeout / timeout_at. `f` is the future to wait on; if `work`
/// is not empty, it is started as a task and `f` becomes that task. `never_start`: a deadline
/// already passed cancels at once (wait_for), instead of letting the work run to its first
/// suspension (asyncio.timeout).
template <class T>
task<T> run_with_deadline(future<T> f, task<T> work, deadline_spec d, bool never_start) {
    event_loop& loop = get_running_loop();
    const std::int64_t now = loop_ops::now_ns(loop);
    const std::int64_t deadline = d.absolute ? d.ns : now + d.ns;
    if (work) f = create_task(std::move(work));
    if (!f) throw invalid_state_error("corio: awaiting an empty future handle");

    bool expired = false;
    bool cancelled = false;  // the awaiting task was cancelled
    bool after_done = false; // ... when `f` was already done
    std::string message;
    const auto note = [&](deadline_awaiter& a) {
        expired = expired || a.expired();
        if (a.cancelled()) {
            cancelled = true;
            after_done = after_done || a.cancelled_after_done();
            message = std::move(a.message());
        }
    };

    if (deadline <= now) { // passed already
        expired = true;
        if (!never_start && !f.done()) {
            // asyncio.timeout(0): the work takes its first step before the cancellation.
            deadline_awaiter a(*f.core(), std::nullopt, true);
            co_await a;
            note(a);
        }
    } else {
        {
            deadline_awaiter a(*f.core(), deadline, false);
            co_await a;
            note(a);
        }
        if (expired && !cancelled && !f.done() && queued_task(f)) {
            // Woken in the iteration where the deadline passed: let it take that step, so a
            // result that arrives together with the timeout is not lost.
            deadline_awaiter a(*f.core(), std::nullopt, true);
            co_await a;
            note(a);
        }
    }
    if (!f.done() && !cancelled) f.cancel(); // the deadline passed
    while (!f.done()) {                      // wait for its cleanup
        deadline_awaiter a(*f.core(), std::nullopt, false);
        co_await a;
        note(a);
    }
    if (after_done || (cancelled && f.cancelled())) {
        discard_outcome(f);
        throw cancelled_error(std::move(message));
    }
    if (expired && f.cancelled()) throw timeout_error();
    co_return std::move(f).result(); // its value, its exception, or a cancellation from elsewhere
}

template <class Aw>
auto start_with_deadline(Aw&& aw, deadline_spec d, bool never_start) {
    if constexpr (is_future_v<Aw>) {
        using T = typename std::remove_cvref_t<Aw>::value_type;
        return run_with_deadline<T>(future<T>(std::forward<Aw>(aw)), task<T>(), d, never_start);
    } else {
        auto t = as_task(std::forward<Aw>(aw));
        using T = typename decltype(t)::value_type;
        return run_with_deadline<T>(future<T>::adopt(nullptr), std::move(t), d, never_start);
    }
}

/// Loop time in seconds to nanoseconds, saturating as `saturating_ns` does.
inline std::int64_t loop_time_ns(double when) noexcept {
    constexpr double hi = static_cast<double>(std::numeric_limits<std::int64_t>::max() / 4);
    const double ns = when * 1e9;
    if (std::isnan(ns)) return 0;
    if (ns >= hi) return static_cast<std::int64_t>(hi);
    if (ns <= -hi) return -static_cast<std::int64_t>(hi);
    return static_cast<std::int64_t>(std::llround(ns));
}

} // namespace detail

/// asyncio.wait_for: `co_await corio::wait_for(aw, 5s)` gives `aw`'s value if it finishes
/// within `timeout` (counted from the start of the `co_await`).
///
/// `aw` is a `task<T>` (moved in), a callable returning an awaitable, another awaitable (each
/// runs as a task of its own), or a `future<T>` / `task_handle<T>` (waited on as it is).
/// At the deadline `aw` is cancelled and waited for; then this throws `timeout_error` if it
/// ended cancelled, returns its value if it swallowed the cancellation, or rethrows its error.
/// A timeout <= 0 cancels `aw` at once (a coroutine never starts), unless it is a future that
/// is already done, whose result is returned (asyncio 3.12).
/// Cancellation: cancelling the awaiting task cancels `aw`, waits for it to finish and throws
/// `cancelled_error` (not `timeout_error`). The file comment of corio/timeouts.hpp has the
/// details (a result arriving together with the deadline is kept).
template <class Aw, class Rep, class Period>
auto wait_for(Aw&& aw, std::chrono::duration<Rep, Period> timeout) {
    return detail::start_with_deadline(std::forward<Aw>(aw), {detail::saturating_ns(timeout), false}, true);
}

/// `async with asyncio.timeout(timeout): return await aw`, as one awaitable:
/// `co_await corio::with_timeout(5s, aw)`. The same as `wait_for(aw, timeout)` except for a
/// timeout <= 0: like asyncio.timeout(0), `aw` runs until its first suspension and is then
/// cancelled (so it may still finish, and its value is returned). Throws `timeout_error` when
/// the deadline cancelled `aw`; cancellation as `wait_for`.
template <class Rep, class Period, class Aw>
auto with_timeout(std::chrono::duration<Rep, Period> timeout, Aw&& aw) {
    return detail::start_with_deadline(std::forward<Aw>(aw), {detail::saturating_ns(timeout), false}, false);
}

/// `async with asyncio.timeout_at(when): return await aw`: as `with_timeout`, with an absolute
/// deadline in loop time (`loop.time()`, seconds), e.g. `timeout_at(loop.time() + 5, aw)`. A
/// deadline already passed lets `aw` run until its first suspension, then cancels it.
template <class Aw>
auto timeout_at(double when, Aw&& aw) {
    return detail::start_with_deadline(std::forward<Aw>(aw), {detail::loop_time_ns(when), true}, false);
}

} // namespace corio
// ---- end corio/timeouts.hpp ----
// ---- end corio/corio.hpp ----
