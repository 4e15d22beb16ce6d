#pragma once
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

#include <corio/future.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

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
