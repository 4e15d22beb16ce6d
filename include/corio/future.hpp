#pragma once
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

#include <corio/event_loop.hpp>

#include <coroutine>
#include <deque>
#include <list>
#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

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

#include <corio/task.hpp> // see the end of event_loop.hpp
