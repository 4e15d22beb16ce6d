#pragma once
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

#include <corio/future.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>

#include <chrono>
#include <cmath>
#include <coroutine>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

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
