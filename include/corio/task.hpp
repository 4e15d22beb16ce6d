#pragma once
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

#include <corio/event_loop.hpp>
#include <corio/future.hpp>

#include <concepts>
#include <coroutine>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <source_location>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

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
