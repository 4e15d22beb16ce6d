#pragma once
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
#include <cstdint>

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
