#pragma once
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

#include <corio/future.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/wait.hpp> // detail::distinct_futures

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

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
