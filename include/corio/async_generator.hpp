#pragma once
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

#include <corio/event_loop.hpp>
#include <corio/exceptions.hpp>
#include <corio/task.hpp>

#include <concepts>
#include <coroutine>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

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
