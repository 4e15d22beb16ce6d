#pragma once
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

#include <corio/event_loop.hpp>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

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
