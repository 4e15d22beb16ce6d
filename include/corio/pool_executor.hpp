#pragma once
/// \file corio/pool_executor.hpp
/// `corio::async_pool_executor<T>`: the AsyncPoolExecutor of the port-scanner article ("Concurrency
/// in Python: Asyncio"), a ThreadPoolExecutor for coroutines that never runs more than
/// `max_executions` of them at once.
///
///     corio::async_pool_executor<result> runner(250);     // runner = AsyncPoolExecutor(250)
///     for (auto& ip : devices)                            // for ip in devices:
///         for (auto& service : services)                  //     for service in services:
///             runner.add(check_a_port(ip, service));      //         runner.add(check_a_port(ip, service))
///     auto done = runner.as_completed();                  // async for task in runner.as_completed():
///     while (auto f = co_await done.next()) {
///         auto [ip, service, err] = f->result();          //     ip, service, err = task.result()
///         ...
///     }
///
/// `add()` only queues: a `task<T>` is lazy, so a queued item is its coroutine frame and nothing
/// more (a callable is wrapped in a lazy coroutine that calls it when the item starts). A million
/// queued items cost a million frames and a pointer each, and none of them runs before
/// `as_completed()` starts it.
///
/// `as_completed()` is an `async_generator<future<T>>`. Each `next()` starts queued items as
/// tasks until `max_executions` run, waits until one finishes, and gives its future (done: a
/// value, or the error the item threw, which `result()` rethrows). Items come out in the order
/// they finished. A finished item keeps its slot until its future is handed out (so at most
/// `max_executions` items are running or waiting to be handed out); then the slot goes to the
/// next queued item at once, before the consumer has looked at the result.
///
/// Stopping early:
/// - The consumer's task cancelled while `next()` waits: the running items are cancelled, the
///   generator waits for them to finish, then `next()` throws the `cancelled_error`. Queued
///   items are not started (they stay queued; a later `as_completed()` runs them).
/// - The generator destroyed before the end (the consumer stopped reading): the running items
///   are cancelled and finish on the loop by themselves. Queued items stay queued.
///
/// In both cases an item already handed to the loop whose first step had not run yet is not
/// lost: it goes back to the front of the queue, unstarted. An item that finished with an error
/// nobody saw (its future never handed out, or it failed while being cancelled) is reported as
/// "Task exception was never retrieved" through the loop's exception handler, as for any task.

#include <corio/async_generator.hpp>
#include <corio/event_loop.hpp>
#include <corio/exceptions.hpp>
#include <corio/future.hpp>
#include <corio/task.hpp>

#include <algorithm>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio {

template <class T>
class async_pool_executor;

namespace detail {

template <class T>
class pool_run;


/// One running item: the task that runs it, and the node by which the task's completion reaches
/// the run. Lives in a deque (stable address) for as long as the run, reused through a free list.
template <class T>
struct pool_slot : future_waiter {
    pool_run<T>* run = nullptr;
    task_handle<T> handle;     ///< the launcher task; empty while the slot is free
    task<T> item;              ///< the item, until the launcher's first step takes it
    std::uint64_t seq = 0;     ///< the order in which items left the queue
    pool_slot* link = nullptr; ///< next in the run's done list or free list
};

/// The task that runs one item. The item stays in its slot until this task's first step takes
/// it: a launcher cancelled before that step never runs (asyncio: a task cancelled before it
/// starts never starts), and its item, never started, goes back to the queue.
template <class T>
task<T> pool_launch(task<T>* slot_item) {
    task<T> item = std::move(*slot_item);
    if constexpr (std::is_void_v<T>) {
        co_await std::move(item);
    } else {
        co_return co_await std::move(item);
    }
}

/// The state of one `as_completed()` run, a local of the generator's frame: the running items,
/// those finished and not handed out yet (in the order they finished), and the generator's
/// task while it waits. Nothing here allocates when an item finishes.
template <class T>
class pool_run {
public:
    pool_run(std::deque<task<T>>& queue, std::size_t max, bool& active)
        : m_queue(queue), m_max(max), m_active(active) {
        if (m_active)
            throw invalid_state_error(
                "corio: async_pool_executor::as_completed() is already running");
        m_active = true;
    }
    pool_run(const pool_run&) = delete;
    pool_run& operator=(const pool_run&) = delete;

    /// Cancels what still runs (it finishes on the loop by itself), puts the items that never
    /// started back at the front of the queue, in their order, and drops the rest.
    ~pool_run() {
        for (pool_slot<T>& s : m_slots) {
            if (!s.handle) continue;
            s.handle.core()->remove_waiter(&s);
            try {
                s.handle.cancel(); // a launcher that has not run yet never will
            } catch (...) {        // only on a closed loop, where every task is done already
            }
        }
        requeue_unstarted();
        m_active = false;
    }

    /// Starts queued items while fewer than the maximum are running or waiting to be handed out.
    void fill() {
        while (!m_queue.empty() && m_occupied < m_max) {
            if (!m_free) { // a new slot, on the free list before anything can throw
                pool_slot<T>& fresh = m_slots.emplace_back();
                fresh.run = this;
                fresh.on_done = &on_item_done;
                m_free = &fresh;
            }
            pool_slot<T>* s = m_free;
            s->item = std::move(m_queue.front());
            m_queue.pop_front();
            task_handle<T> h;
            try {
                h = corio::create_task(pool_launch(&s->item));
            } catch (...) {
                m_queue.push_front(std::move(s->item));
                throw;
            }
            m_free = s->link;
            s->link = nullptr;
            s->seq = m_next_seq++;
            s->handle = std::move(h);
            ++m_occupied;
            ++m_running;
            s->handle.core()->add_waiter(s);
        }
    }

    /// True when nothing runs and nothing waits to be handed out.
    bool empty() const noexcept { return m_occupied == 0; }
    bool has_done() const noexcept { return m_done_head != nullptr; }
    std::size_t running() const noexcept { return m_running; }

    /// The next finished item, in the order they finished; frees its slot.
    future<T> pop_done() noexcept {
        pool_slot<T>* s = m_done_head;
        m_done_head = s->link;
        if (!m_done_head) m_done_tail = nullptr;
        future<T> f(std::move(s->handle)); // leaves the slot's handle empty
        s->link = m_free;
        m_free = s;
        --m_occupied;
        return f;
    }

    /// Cancels every running item.
    void cancel_running() noexcept {
        for (pool_slot<T>& s : m_slots) {
            if (!s.handle || s.handle.done()) continue;
            try {
                s.handle.cancel();
            } catch (...) {
            }
        }
    }

    /// Suspends the generator's task until an item finishes (`until_idle`: until none runs).
    class wait_awaiter : public task_waiter {
    public:
        wait_awaiter(pool_run& run, bool until_idle) noexcept : m_run(run), m_until_idle(until_idle) {
            task_waiter::cancel = &on_cancel;
        }
        wait_awaiter(const wait_awaiter&) = delete;
        wait_awaiter& operator=(const wait_awaiter&) = delete;
        ~wait_awaiter() {
            if (m_run.m_waiter == this) m_run.m_waiter = nullptr;
        }
        bool await_ready() const noexcept { return m_run.satisfied(m_until_idle); }
        void await_suspend(std::coroutine_handle<> h) {
            task_core& t = require_current_task();
            m_task = &t;
            m_run.m_waiter = this;
            t.suspend_on(h, this);
        }
        void await_resume() {
            if (m_task) m_task->throw_if_cancel_delivered();
        }

    private:
        friend class pool_run;
        static bool on_cancel(task_waiter* w, const std::string& msg) {
            auto* self = static_cast<wait_awaiter*>(w);
            self->m_run.m_waiter = nullptr;
            self->m_task->wake_cancelled(msg);
            return true;
        }
        pool_run& m_run;
        bool m_until_idle;
        task_core* m_task = nullptr;
    };

    wait_awaiter wait_for_one() noexcept { return wait_awaiter(*this, false); }
    wait_awaiter wait_for_all() noexcept { return wait_awaiter(*this, true); }

private:
    bool satisfied(bool until_idle) const noexcept {
        return until_idle ? m_running == 0 : has_done();
    }

    /// Items whose launcher never ran go back to the front of the queue, oldest first.
    void requeue_unstarted() noexcept {
        try {
            std::vector<pool_slot<T>*> back;
            for (pool_slot<T>& s : m_slots)
                if (s.item) back.push_back(&s);
            std::sort(back.begin(), back.end(),
                      [](const pool_slot<T>* a, const pool_slot<T>* b) { return a->seq > b->seq; });
            for (pool_slot<T>* s : back) m_queue.push_front(std::move(s->item));
        } catch (...) { // out of memory: those items are dropped unstarted
        }
    }

    /// The future's waiter node fired: called inside the item's completion (in its task's step),
    /// after the node left the future's list.
    static void on_item_done(future_waiter* w) noexcept {
        auto* s = static_cast<pool_slot<T>*>(w);
        pool_run& r = *s->run;
        --r.m_running;
        s->link = nullptr;
        if (r.m_done_tail) r.m_done_tail->link = s;
        else r.m_done_head = s;
        r.m_done_tail = s;
        if (r.m_waiter && r.satisfied(r.m_waiter->m_until_idle))
            std::exchange(r.m_waiter, nullptr)->m_task->wake();
    }

    std::deque<task<T>>& m_queue;
    std::size_t m_max;
    bool& m_active;
    std::deque<pool_slot<T>> m_slots; // grows up to m_max, never shrinks during the run
    pool_slot<T>* m_free = nullptr;
    pool_slot<T>* m_done_head = nullptr;
    pool_slot<T>* m_done_tail = nullptr;
    std::size_t m_occupied = 0; ///< slots holding an item, running or done
    std::size_t m_running = 0;  ///< of those, the ones not done
    std::uint64_t m_next_seq = 0;
    wait_awaiter* m_waiter = nullptr;
};

} // namespace detail

/// asyncio has no task pool; the port-scanner article writes one, AsyncPoolExecutor, and this is
/// it. See the file comment of corio/pool_executor.hpp.
///
/// `T` is the items' result type (`void` allowed). The executor must outlive the generators
/// `as_completed()` returns. A loop-thread object; not copyable or movable (a running
/// `as_completed()` refers to it).
template <class T>
class async_pool_executor {
public:
    /// The items' result type.
    using value_type = T;

    /// An executor that runs at most `max_executions` items at once. Throws
    /// `std::invalid_argument` if `max_executions` is 0.
    explicit async_pool_executor(std::size_t max_executions) : m_max(max_executions) {
        if (max_executions == 0)
            throw std::invalid_argument("corio: async_pool_executor needs max_executions > 0");
    }
    async_pool_executor(const async_pool_executor&) = delete;
    async_pool_executor& operator=(const async_pool_executor&) = delete;

    /// Destroys the queued items without running them.
    ~async_pool_executor() = default;

    /// Queues `aw` without starting it: a `task<T>` (moved in; it is lazy), a callable
    /// returning an awaitable of `T` (moved into a lazy coroutine that calls it when the item
    /// starts), or another awaitable of `T` (e.g. a future). May be called while
    /// `as_completed()` runs: the item is started when a slot is free. Throws what allocating
    /// the queue entry (or the wrapper coroutine) throws.
    template <class Aw>
    void add(Aw&& aw) {
        auto t = detail::as_task(std::forward<Aw>(aw));
        static_assert(std::is_same_v<typename decltype(t)::value_type, T>,
                      "corio: the item's result type must be the executor's T");
        m_queue.push_back(std::move(t));
    }

    /// The article's `as_completed()`: an `async_generator<future<T>>` whose `next()` gives the
    /// future of each item as it finishes (see the file comment), keeping at most
    /// `max_executions()` running; `std::nullopt` once the queue is empty and every item has
    /// been handed out. An item's error is in its future, not thrown by `next()`.
    ///
    /// Cancellation of the consumer's task while `next()` waits: the running items are
    /// cancelled and waited for, then `next()` throws `cancelled_error`. Throws (from the first
    /// `next()`) `invalid_state_error` if another `as_completed()` of this executor is running.
    async_generator<future<T>> as_completed() {
        detail::pool_run<T> run(m_queue, m_max, m_active);
        for (;;) {
            run.fill();
            if (run.empty()) co_return; // and the queue is empty: fill() would have started one
            if (!run.has_done()) {
                std::exception_ptr cancelled;
                try {
                    co_await run.wait_for_one();
                } catch (const cancelled_error&) {
                    cancelled = std::current_exception();
                }
                if (cancelled) {
                    run.cancel_running();
                    while (run.running() > 0) {
                        try {
                            co_await run.wait_for_all();
                        } catch (const cancelled_error&) { // already cancelling: keep waiting
                        }
                    }
                    std::rethrow_exception(cancelled);
                }
            }
            while (run.has_done()) {
                future<T> f = run.pop_done();
                run.fill(); // the freed slot goes to the next item before this one is handed out
                co_yield std::move(f);
            }
        }
    }

    /// The most items that run at once.
    std::size_t max_executions() const noexcept { return m_max; }
    /// How many items are queued and not started.
    std::size_t size() const noexcept { return m_queue.size(); }

private:
    std::size_t m_max;
    std::deque<task<T>> m_queue;
    bool m_active = false;
};

} // namespace corio
