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
/// | corio/testing.hpp      | test_utils (virtual time)        |

/// \namespace corio
/// Everything corio has: asyncio's names, in C++. `corio::detail` is the implementation, not API.

// ---- begin corio/event_loop.hpp (included from corio/corio.hpp) ----
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
// ---- end corio/backend/concept.hpp ----

#if defined(__linux__)
// ---- begin corio/backend/epoll.hpp (included from corio/backend/backend.hpp) ----
/// \file corio/backend/epoll.hpp
/// The Linux backend: level-triggered epoll plus an eventfd for wake-ups.

#if defined(__linux__)


#include <array>
#include <cerrno>
#include <climits>
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
// ---- end corio/backend/epoll.hpp ----
namespace corio::backend {
/// The default backend of this platform.
using default_backend = epoll_backend;
} // namespace corio::backend
#else
#error "corio: no event-loop backend for this platform yet (epoll on Linux; kqueue is planned)"
#endif
// ---- end corio/backend/backend.hpp ----
// ---- begin corio/detail/callback.hpp (included from corio/event_loop.hpp) ----
/// \file corio/detail/callback.hpp
/// Type-erased, reference-counted callbacks: what `call_soon`, `call_later`, `add_reader`,
/// signal handlers and done callbacks schedule. One allocation holds the node and the callable.

// ---- begin corio/detail/ready_queue.hpp (included from corio/detail/callback.hpp) ----
/// \file corio/detail/ready_queue.hpp
/// The loop's FIFO of runnable work. Nodes are intrusive: a task or a callback carries its own
/// link and entry point, so scheduling never allocates.

#include <cstddef>

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
#include <utility>

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
/// Of these, corio throws `cancelled_error` and `invalid_state_error` today; the others are
/// declared for the APIs still to come (timeouts, streams, queues, task groups: see
/// docs/porting.md).

#include <exception>
#include <stdexcept>
#include <string>

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

/// An operation exceeded its deadline (`wait_for`, `with_timeout`, `timeout_at`: planned).
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

/// `readexactly(n)` met end of stream before `n` bytes (streams: planned).
class incomplete_read_error : public std::runtime_error {
public:
    /// what() reads "P bytes read on a total of N expected bytes", as asyncio's message.
    incomplete_read_error(std::string partial, std::size_t expected)
        : std::runtime_error(std::to_string(partial.size()) + " bytes read on a total of " +
                             std::to_string(expected) + " expected bytes"),
          m_partial(std::move(partial)), m_expected(expected) {}

    /// The bytes read before end of stream.
    const std::string& partial() const noexcept { return m_partial; }
    /// How many bytes were asked for.
    std::size_t expected() const noexcept { return m_expected; }

private:
    std::string m_partial;
    std::size_t m_expected;
};

/// A separator was not found within the reader's `limit` (streams: planned).
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

/// `get_nowait()` on an empty queue (queues: planned).
class queue_empty : public std::runtime_error {
public:
    queue_empty() : std::runtime_error("queue is empty") {}
};

/// `put_nowait()` on a full queue (queues: planned).
class queue_full : public std::runtime_error {
public:
    queue_full() : std::runtime_error("queue is full") {}
};

/// `put`/`get` on a queue that was `shutdown()` (queues: planned).
class queue_shutdown : public std::runtime_error {
public:
    queue_shutdown() : std::runtime_error("queue is shut down") {}
};

/// Several errors at once (from a `task_group`: planned): every one is kept.
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
};

} // namespace corio::detail
// ---- end corio/detail/loop_ops.hpp ----

#include <memory>
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
        if (m_status == status::done && m_exception && !m_retrieved) {
            loop_ops::report(m_loop, {m_is_task ? "Task exception was never retrieved"
                                                : "Future exception was never retrieved",
                                      m_exception, report_name()});
        }
        if (m_loop) loop_ops::unlink(*m_loop, this);
    }

    /// The name used in reports; tasks override.
    virtual std::string report_name() const { return {}; }

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

#include <cerrno>
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
#include <cstring>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <typeinfo>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#endif

namespace corio {

template <class T>
class future;

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
// ---- begin corio/future.hpp (included from corio/event_loop.hpp) ----
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



namespace corio {

template <class T = void>
class future;

namespace detail {

/// How a coroutine waits for a future: the node in the future's waiter list lives in the
/// coroutine's frame, so waiting allocates nothing.
template <class T>
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
        } else if constexpr (std::is_copy_constructible_v<T>) {
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
        // asyncio: cancelling a task that awaits a future cancels the future too.
        return static_cast<future_awaiter*>(w)->state().cancel(msg);
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
        else if constexpr (std::is_copy_constructible_v<T>) {
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
    /// without that (`shield` is planned).
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

    bool cancel(std::string msg) override { return request_cancel(std::move(msg)); }
    future_core& as_future() noexcept override { return *this; }
    task_core* as_task() noexcept override { return this; }

    /// Schedules the first step (asyncio: create_task calls the coroutine's first step soon).
    void start() noexcept { schedule(); }

private:
    std::string report_name() const override { return get_name(); }

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
    std::string get_name() const { return core().get_name(); }
    /// Renames the task.
    void set_name(std::string name) { core().set_name(std::move(name)); }
    /// How many cancellation requests are pending (asyncio's Task.cancelling()).
    int cancelling() const noexcept { return core().cancelling(); }
    /// Withdraws one cancellation request and returns how many remain (asyncio's
    /// Task.uncancel()).
    int uncancel() noexcept { return core().uncancel(); }

private:
    detail::task_core& core() const noexcept { return *m_core->as_task(); }
};

/// What `create_task` returns: a `future<T>` (await it, cancel it, read its result) with a name.
template <class T>
class task_handle : public future<T> {
public:
    /// An empty handle.
    task_handle() noexcept : future<T>(nullptr, typename future<T>::adopt_tag{}) {}

    /// As task_ref::get_name.
    std::string get_name() const { return core().get_name(); }
    /// Renames the task.
    void set_name(std::string name) { core().set_name(std::move(name)); }
    /// How many cancellation requests are pending (asyncio's Task.cancelling()).
    int cancelling() const noexcept { return core().cancelling(); }
    /// Withdraws one cancellation request and returns how many remain (asyncio's
    /// Task.uncancel()).
    int uncancel() noexcept { return core().uncancel(); }

    /// The same task, as a handle that does not know its result type.
    operator task_ref() const noexcept { return task_ref(&core()); }

    /// Wraps a task's state, adopting one reference.
    static task_handle adopt(detail::task_state<T>* st) noexcept { return task_handle(st); }

private:
    explicit task_handle(detail::task_state<T>* st) noexcept
        : future<T>(st, typename future<T>::adopt_tag{}) {}
    detail::task_core& core() const noexcept { return *this->m_core->as_task(); }
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
// ---- end corio/event_loop.hpp ----
// ---- begin corio/runners.hpp (included from corio/corio.hpp) ----
/// \file corio/runners.hpp
/// `corio::run(main())`: asyncio.run.
///
/// Creates a new event loop, runs `main` to completion, then cancels every task still pending
/// and waits for them to finish (errors they end with are reported through the exception
/// handler, as "unhandled exception during corio::run() shutdown"), closes the loop, and
/// returns main's value or rethrows its exception.
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
            loop.close();
        }
    } fin{loop};
    return loop.run_until_complete(std::forward<Aw>(main));
}

} // namespace corio
// ---- end corio/runners.hpp ----
// ---- begin corio/sleep.hpp (included from corio/corio.hpp) ----
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
    sleep_awaiter(const sleep_awaiter&) = delete;
    sleep_awaiter& operator=(const sleep_awaiter&) = delete;
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
/// `event_loop::begin_external_work`/`end_external_work`; the planned executors, to_thread and
/// run_in_executor, will do that) blocks for it instead of jumping ahead. Without that bracket,
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
// ---- end corio/corio.hpp ----
