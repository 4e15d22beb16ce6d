#pragma once
/// \file corio/detail/future_core.hpp
/// The shared state behind `future<T>` and spawned tasks.
///
/// Lifetime: reference counted, single-threaded (a future belongs to its loop's thread). Each
/// handle (`future<T>`, `task_handle<T>`) owns a reference; a pending task is also owned by its
/// loop. Waiters are intrusive nodes: a suspended coroutine's awaiter lives in its own frame, so
/// awaiting a future allocates nothing.
///
/// States: pending -> done (value or exception) | cancelled. Never back.

#include <corio/detail/loop_ops.hpp>
#include <corio/detail/ready_queue.hpp>
#include <corio/exceptions.hpp>

#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

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
