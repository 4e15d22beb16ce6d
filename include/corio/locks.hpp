#pragma once
/// \file corio/locks.hpp
/// Synchronization primitives for tasks of one loop: asyncio's `Lock`, `Event`, `Condition`,
/// `Semaphore`, `BoundedSemaphore` and `Barrier`, as `corio::lock`, `event`, `condition`,
/// `semaphore`, `bounded_semaphore` and `barrier`.
///
///     corio::lock lk;
///     auto g = co_await lk.acquire();         // async with lock:  (g releases it when it dies)
///     co_await ev.wait();                     // await event.wait()
///     std::size_t i = co_await b.wait();      // await barrier.wait()
///
/// Like asyncio's, they are not thread-safe: use them from the tasks of one loop.
///
/// ## Fairness
/// Waiters are served first come, first served. A task that arrives while others wait queues
/// behind them, even if the primitive happens to be free at that instant (a lock just released
/// to a waiter that has not run yet is not taken by a newcomer), as asyncio 3.12 does.
///
/// ## Cancellation never loses a wake-up
/// Cancelling a waiting task throws `cancelled_error` at its `co_await` and takes it out of the
/// queue of waiters. If the task had already been woken (handed the lock, a semaphore unit, a
/// notification) and is cancelled before it runs, what it was handed goes to the next waiter.
///
/// ## Misuse
/// Releasing a lock that is not held, releasing a `bounded_semaphore` beyond its initial
/// value, `condition::wait`/`notify` without holding the lock throw `std::logic_error` (asyncio
/// answers the first and the last with RuntimeError, the second with ValueError: corio uses
/// `std::logic_error` for every misuse).
///
/// ## Lifetime
/// A primitive should outlive the tasks that use it, but the shape `corio::run` produces is
/// safe: a lock local to `main`, which returns while workers wait on it or hold it. When a
/// primitive is destroyed, every task waiting on it gets `cancelled_error` at its `co_await` (as
/// when an awaited future is cancelled; its `what()` says the primitive was destroyed) and never
/// touches it again, and its guards are disarmed: they hold nothing from then on.
///
/// ## Allocation
/// Waiting in `lock::acquire`, `semaphore::acquire` and `event::wait` allocates nothing (the
/// waiter's node lives in the awaiting frame). `condition::wait`/`wait_for` and `barrier::wait`
/// are coroutines: a frame each.
///
/// ## Differences from asyncio
/// `barrier::reset()` and `abort()` are plain functions (asyncio's are coroutines that take the
/// barrier's lock: on one loop there is nothing to wait for). asyncio binds a primitive to the
/// first loop that waits on it for good; corio only requires the tasks waiting at the same time
/// to share a loop (`std::runtime_error` otherwise), so a primitive may serve one `corio::run`
/// after another.

#include <corio/event_loop.hpp>
#include <corio/exceptions.hpp>
#include <corio/task.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace corio {

namespace detail {

// --- Parking a task: the intrusive waiter queue shared by queues and locks --------------------

/// Base of the error thrown at an await whose primitive was destroyed while the task waited:
/// corio's own coroutines (condition::wait, barrier::wait) let it through without touching the
/// dead primitive.
struct orphaned_marker {};

/// The cancellation a wait ends with when its primitive is destroyed (as awaiting a future
/// that is cancelled): a `cancelled_error`, so the task ends cancelled unless it catches it.
class orphaned_cancel final : public cancelled_error, public orphaned_marker {
public:
    explicit orphaned_cancel(std::string msg) : cancelled_error(std::move(msg)) {}
};

inline constexpr const char* orphaned_message = "corio: the queue or lock this task waited on was destroyed";

/// Throws orphaned_cancel, keeping the message of `err` if it is a cancellation.
[[noreturn]] inline void throw_orphaned(std::exception_ptr err) {
    std::string msg = orphaned_message;
    if (err) {
        try {
            std::rethrow_exception(err);
        } catch (const cancelled_error& e) {
            msg = e.message();
        } catch (...) {
        }
    }
    throw orphaned_cancel(std::move(msg));
}

class park_list;

/// A parked task's node, in the awaiting coroutine's frame (waiting allocates nothing).
struct park_node : task_waiter {
    park_node* prev = nullptr;
    park_node* next = nullptr;
    park_list* list = nullptr; ///< the list it is in, null if none
    task_core* task = nullptr;
    bool orphaned = false; ///< its list died with the primitive
};

/// An intrusive FIFO of parked nodes. Destroying it marks the nodes still in it orphaned.
class park_list {
public:
    park_list() noexcept = default;
    park_list(const park_list&) = delete;
    park_list& operator=(const park_list&) = delete;
    ~park_list() {
        while (park_node* n = m_head) {
            remove(n);
            n->orphaned = true;
        }
    }

    bool empty() const noexcept { return m_head == nullptr; }
    std::size_t size() const noexcept { return m_size; }
    park_node* front() const noexcept { return m_head; }

    void push_back(park_node* n) noexcept {
        n->list = this;
        n->next = nullptr;
        n->prev = m_tail;
        (m_tail ? m_tail->next : m_head) = n;
        m_tail = n;
        ++m_size;
    }
    void push_front(park_node* n) noexcept {
        n->list = this;
        n->prev = nullptr;
        n->next = m_head;
        (m_head ? m_head->prev : m_tail) = n;
        m_head = n;
        ++m_size;
    }
    void remove(park_node* n) noexcept {
        if (n->list != this) return;
        (n->prev ? n->prev->next : m_head) = n->next;
        (n->next ? n->next->prev : m_tail) = n->prev;
        n->prev = n->next = nullptr;
        n->list = nullptr;
        --m_size;
    }

private:
    park_node* m_head = nullptr;
    park_node* m_tail = nullptr;
    std::size_t m_size = 0;
};

/// The waiters of one primitive. A wake-up moves a node from `waiting` to `woken` and
/// schedules its task; the node leaves `woken` when the task resumes. Keeping the woken nodes
/// lets the primitive count wake-ups in flight (and reserve what they were woken for), and
/// lets its destructor reach them too.
struct park_queue {
    park_list waiting; ///< parked, in the order they are to be woken
    park_list woken;   ///< handed a wake-up, not resumed yet

    park_queue() noexcept = default;
    park_queue(const park_queue&) = delete;
    park_queue& operator=(const park_queue&) = delete;
    /// The primitive dies: every wait on it ends with a cancellation (see orphaned_cancel).
    ~park_queue() {
        orphan_all(waiting);
        orphan_all(woken);
    }

    bool has_waiters() const noexcept { return !waiting.empty() || !woken.empty(); }

    /// Wakes the first waiting task; false if none waits.
    bool wake_one() noexcept {
        park_node* n = waiting.front();
        if (!n) return false;
        waiting.remove(n);
        woken.push_back(n);
        n->task->wake();
        return true;
    }
    void wake_all() noexcept {
        while (wake_one()) {
        }
    }

    static void orphan_all(park_list& l) noexcept {
        while (park_node* n = l.front()) {
            l.remove(n);
            n->orphaned = true;
            try {
                n->task->wake_cancelled(orphaned_message);
            } catch (...) { // no memory for the message: the cancellation is flagged already
                n->task->wake();
            }
        }
    }

    /// asyncio binds a primitive to the loop it is used on; here the tasks parked at once must
    /// share a loop (they are woken from it).
    void check_loop(task_core& t) const {
        const park_node* other = waiting.front() ? waiting.front() : woken.front();
        if (other && other->task->as_future().loop() != t.as_future().loop())
            throw std::runtime_error("corio: the queue or lock is bound to a different event loop");
    }
};

/// Called when a parked task gives up: it was cancelled while waiting (`was_woken` false), or
/// after it was woken but before it ran (`was_woken` true: the wake-up must be passed on).
using abandon_fn = void (*)(void* owner, bool was_woken) noexcept;

/// `co_await park` suspends the task in a park_queue until it is woken. Throws
/// `cancelled_error` if the task is cancelled (calling `abandon` first, so the primitive can
/// pass a wake-up on), `orphaned_cancel` if the primitive died.
class park_awaiter : public park_node {
public:
    park_awaiter(park_queue& q, void* owner, abandon_fn abandon, bool front = false) noexcept
        : m_queue(&q), m_owner(owner), m_abandon(abandon), m_front(front) {
        task_waiter::cancel = &on_cancel;
    }
    /// Only before it is awaited (awaitables are moved into tasks by create_task).
    park_awaiter(park_awaiter&& o) noexcept : park_awaiter(*o.m_queue, o.m_owner, o.m_abandon, o.m_front) {}
    park_awaiter(const park_awaiter&) = delete;
    park_awaiter& operator=(const park_awaiter&) = delete;
    park_awaiter& operator=(park_awaiter&&) = delete;

    /// The frame dies while parked (its loop closes): leave, passing on a wake-up received.
    ~park_awaiter() {
        if (!list) return;
        const bool was_woken = list == &m_queue->woken;
        list->remove(this);
        if (was_woken && m_abandon) m_abandon(m_owner, true);
    }

    bool await_ready() const noexcept { return false; }

    void await_suspend(std::coroutine_handle<> h) {
        task_core& t = require_current_task();
        m_queue->check_loop(t);
        task = &t;
        if (m_front) m_queue->waiting.push_front(this);
        else m_queue->waiting.push_back(this);
        t.suspend_on(h, this);
    }

    void await_resume() {
        // Here the node is in `woken` (woken normally, perhaps cancelled since) or in no list
        // (cancelled while waiting, or orphaned).
        bool was_woken = false;
        if (list) {
            was_woken = true;
            list->remove(this);
        }
        try {
            task->throw_if_cancel_delivered();
        } catch (const cancelled_error& e) {
            if (orphaned) throw orphaned_cancel(e.message());
            if (m_abandon) m_abandon(m_owner, was_woken);
            throw;
        }
        if (orphaned) throw orphaned_cancel(orphaned_message); // (its cancellation was not delivered)
    }

private:
    static bool on_cancel(task_waiter* w, const std::string& msg) {
        auto* self = static_cast<park_awaiter*>(w);
        self->task->wake_cancelled(msg); // first: it may throw, and then nothing has changed
        if (self->list) self->list->remove(self);
        return true;
    }

    park_queue* m_queue;
    void* m_owner;
    abandon_fn m_abandon;
    bool m_front;
};

template <bool WithGuard>
class lock_awaiter;
class semaphore_awaiter;
class event_awaiter;

} // namespace detail

// --- guard ------------------------------------------------------------------------------------

namespace detail {

class guard_list;

/// A guard's link in the list of guards of its primitive (so the primitive's destructor can
/// disarm the guards that outlive it).
struct guard_link {
    guard_link* prev = nullptr;
    guard_link* next = nullptr;
    guard_list* list = nullptr; ///< null: holds nothing
};

/// The live guards of a primitive. Destroying it disarms them: they will not release.
class guard_list {
public:
    guard_list() noexcept = default;
    guard_list(const guard_list&) = delete;
    guard_list& operator=(const guard_list&) = delete;
    ~guard_list() {
        while (guard_link* g = m_head) remove(g);
    }
    void push(guard_link* g) noexcept {
        g->list = this;
        g->prev = nullptr;
        g->next = m_head;
        if (m_head) m_head->prev = g;
        m_head = g;
    }
    void remove(guard_link* g) noexcept {
        if (g->list != this) return;
        (g->prev ? g->prev->next : m_head) = g->next;
        if (g->next) g->next->prev = g->prev;
        g->prev = g->next = nullptr;
        g->list = nullptr;
    }
    /// `to` takes the place of `from` (a guard moved).
    void replace(guard_link* from, guard_link* to) noexcept {
        to->list = this;
        to->prev = from->prev;
        to->next = from->next;
        (from->prev ? from->prev->next : m_head) = to;
        if (from->next) from->next->prev = to;
        from->prev = from->next = nullptr;
        from->list = nullptr;
    }

private:
    guard_link* m_head = nullptr;
};

} // namespace detail

/// What `co_await lk.acquire()` (and `semaphore::acquire`, `condition::acquire`) gives: holds
/// the acquisition and releases it when destroyed (`async with lock:` in asyncio).
///
/// Movable (to hand the lock to another scope or task), not copyable. `release()` (or its alias
/// `unlock()`) releases early; the destructor then does nothing. An exception thrown by the
/// release in the destructor (the primitive was released by hand meanwhile) goes to the running
/// loop's exception handler instead of terminating. If the primitive is destroyed first, the
/// guard holds nothing from then on (see "Lifetime" in corio/locks.hpp).
template <class M>
class [[nodiscard]] guard : private detail::guard_link {
public:
    /// A guard that holds nothing.
    guard() noexcept = default;
    /// Adopts an acquisition of `m` already made: the guard will release it.
    explicit guard(M& m) noexcept : m_held(&m) { m.m_guards.push(this); }
    /// Takes over the acquisition `o` holds; `o` holds nothing afterwards.
    guard(guard&& o) noexcept { take(o); }
    /// Releases what this guard holds, then takes over the acquisition `o` holds.
    guard& operator=(guard&& o) noexcept {
        if (this != &o) {
            release_quietly();
            take(o);
        }
        return *this;
    }
    guard(const guard&) = delete;
    guard& operator=(const guard&) = delete;
    /// Releases the acquisition if it still holds one.
    ~guard() { release_quietly(); }

    /// Releases the acquisition now. Throws `std::logic_error` if the guard holds nothing
    /// (released already, moved from), and whatever the primitive's `release()` throws.
    void release() {
        M* m = detach();
        if (!m) throw std::logic_error("corio: the guard holds nothing (released or moved from)");
        m->release();
    }
    /// Same as release() (the name std::unique_lock uses).
    void unlock() { release(); }

    /// True while it holds an acquisition.
    bool owns_lock() const noexcept { return list != nullptr; }
    /// Same as owns_lock().
    explicit operator bool() const noexcept { return list != nullptr; }

private:
    void take(guard& o) noexcept {
        if (o.list) {
            o.list->replace(&o, this);
            m_held = std::exchange(o.m_held, nullptr);
        }
    }
    M* detach() noexcept {
        if (!list) return nullptr; // released, moved from, or the primitive is gone
        list->remove(this);
        return std::exchange(m_held, nullptr);
    }
    void release_quietly() noexcept {
        if (M* m = detach()) {
            try {
                m->release();
            } catch (...) {
                detail::loop_ops::report(event_loop::running(),
                                         {"Exception in corio::guard release", std::current_exception(), {}});
            }
        }
    }

    M* m_held = nullptr;
};

// --- lock -------------------------------------------------------------------------------------

/// asyncio's `Lock`: a mutual-exclusion lock for tasks. Not owned by a task: any task may
/// release it, as in asyncio. FIFO-fair.
class lock {
public:
    /// An unlocked lock.
    lock() noexcept = default;
    lock(const lock&) = delete;
    lock& operator=(const lock&) = delete;

    /// `auto g = co_await lk.acquire();` takes the lock, waiting while it is held (or while
    /// earlier waiters are in line), and gives a `guard<lock>` that releases it. Does not
    /// suspend if the lock is free and nobody waits. Cancellation: `cancelled_error` at the
    /// `co_await`, without the lock; if the lock had just been handed to this task, it goes to
    /// the next waiter. Keep the guard: `co_await lk.acquire();` alone releases the lock at
    /// once (where asyncio code pairs `await lock.acquire()` with `lock.release()`, hold the
    /// guard and call its `release()`).
    [[nodiscard]] detail::lock_awaiter<true> acquire() noexcept;

    /// True if the lock is held.
    bool locked() const noexcept { return m_locked; }

    /// Releases the lock and wakes the first waiter. Throws `std::logic_error("Lock is not
    /// acquired.")` if it is not held (asyncio raises RuntimeError). Usually a `guard` calls it.
    void release() {
        if (!m_locked) throw std::logic_error("Lock is not acquired.");
        m_locked = false;
        wake_if_free();
    }

private:
    template <bool>
    friend class detail::lock_awaiter;
    friend class guard<lock>;

    bool free_now() const noexcept { return !m_locked && !m_waiters.has_waiters(); }
    /// asyncio's _wake_up_first: if the lock is free and nobody is on the way to take it, wake
    /// the first waiter (which takes the lock when it runs).
    void wake_if_free() noexcept {
        if (!m_locked && m_waiters.woken.empty()) m_waiters.wake_one();
    }
    static void on_abandon(void* self, bool) noexcept { static_cast<lock*>(self)->wake_if_free(); }

    detail::park_queue m_waiters;
    detail::guard_list m_guards;
    bool m_locked = false;
};

namespace detail {

/// `co_await lk.acquire()`; `WithGuard` false is the raw acquisition corio uses inside.
template <bool WithGuard>
class lock_awaiter {
public:
    explicit lock_awaiter(lock& l) noexcept : m_lock(&l), m_park(l.m_waiters, &l, &lock::on_abandon) {}
    lock_awaiter(lock_awaiter&& o) noexcept : m_lock(o.m_lock), m_park(std::move(o.m_park)) {}

    bool await_ready() const noexcept { return m_lock->free_now(); }
    void await_suspend(std::coroutine_handle<> h) {
        m_park.await_suspend(h);
        m_parked = true;
    }
    auto await_resume() {
        if (m_parked) m_park.await_resume(); // throws if cancelled (the lock passed on)
        m_lock->m_locked = true;
        if constexpr (WithGuard) return guard<lock>(*m_lock);
    }

private:
    lock* m_lock;
    park_awaiter m_park;
    bool m_parked = false;
};

} // namespace detail

inline detail::lock_awaiter<true> lock::acquire() noexcept { return detail::lock_awaiter<true>(*this); }

// --- event ------------------------------------------------------------------------------------

/// asyncio's `Event`: a flag tasks can wait for. `set()` wakes every waiter; waiters woken by
/// it return even if `clear()` is called before they run.
class event {
public:
    /// An event that is not set.
    event() noexcept = default;
    event(const event&) = delete;
    event& operator=(const event&) = delete;

    /// True if the flag is set.
    bool is_set() const noexcept { return m_set; }
    /// Sets the flag and wakes every task waiting for it.
    void set() noexcept {
        if (!m_set) {
            m_set = true;
            m_waiters.wake_all();
        }
    }
    /// Clears the flag: later wait()s block until set() is called again.
    void clear() noexcept { m_set = false; }

    /// `co_await ev.wait()` returns `true` (as asyncio) at once if the flag is set, else when
    /// set() is called. Cancellation: `cancelled_error` at the `co_await`.
    [[nodiscard]] detail::event_awaiter wait() noexcept;

private:
    friend class detail::event_awaiter;
    detail::park_queue m_waiters;
    bool m_set = false;
};

namespace detail {

class event_awaiter {
public:
    explicit event_awaiter(event& e) noexcept : m_event(&e), m_park(e.m_waiters, &e, nullptr) {}
    event_awaiter(event_awaiter&& o) noexcept : m_event(o.m_event), m_park(std::move(o.m_park)) {}

    bool await_ready() const noexcept { return m_event->m_set; }
    void await_suspend(std::coroutine_handle<> h) {
        m_park.await_suspend(h);
        m_parked = true;
    }
    bool await_resume() {
        if (m_parked) m_park.await_resume();
        return true;
    }

private:
    event* m_event;
    park_awaiter m_park;
    bool m_parked = false;
};

} // namespace detail

inline detail::event_awaiter event::wait() noexcept { return detail::event_awaiter(*this); }

// --- condition --------------------------------------------------------------------------------

class barrier;

/// asyncio's `Condition`: a lock (its own, or one given) plus notifications.
///
///     auto g = co_await cond.acquire();
///     auto ready = [&] { return !items.empty(); };
///     co_await cond.wait_for(ready);          // releases the lock while it waits
///
/// (Name a capturing lambda before the statement that awaits, see GCC PR 100611 in task.hpp.)
class condition {
public:
    /// A condition with a lock of its own.
    condition() noexcept : m_lock(&m_own_lock) {}
    /// A condition on `lk`, which must outlive it (asyncio's `Condition(lock)`). A task waiting
    /// when the condition is destroyed re-acquires `lk` before its wait ends (cancelled).
    explicit condition(lock& lk) noexcept : m_lock(&lk) {}
    condition(const condition&) = delete;
    condition& operator=(const condition&) = delete;

    /// Acquires the underlying lock: `auto g = co_await cond.acquire();` (see lock::acquire).
    [[nodiscard]] detail::lock_awaiter<true> acquire() noexcept { return m_lock->acquire(); }
    /// True if the underlying lock is held.
    bool locked() const noexcept { return m_lock->locked(); }
    /// Releases the underlying lock (see lock::release).
    void release() { m_lock->release(); }

    /// `co_await cond.wait()`: releases the lock, waits until notified, re-acquires the lock
    /// and returns `true`. The caller must hold the lock: otherwise throws `std::logic_error`
    /// ("cannot wait on un-acquired lock"; asyncio's RuntimeError). Cancellation: the lock is
    /// re-acquired before `cancelled_error` leaves the `co_await` (as asyncio; further
    /// cancellations while re-acquiring are absorbed until the lock is held, the last one is
    /// thrown); a notification this wait had received is passed to another waiter.
    task<bool> wait();

    /// `co_await cond.wait_for(pred)`: while `pred()` is false, wait(). Returns the last value
    /// of `pred()`. The caller must hold the lock (checked when it has to wait). Cancellation
    /// as wait(). `pred` is moved into the coroutine.
    template <class Predicate>
    auto wait_for(Predicate pred) -> task<std::remove_cvref_t<std::invoke_result_t<Predicate&>>>;

    /// Wakes up to `n` waiting tasks (the longest waiting first). The caller must hold the
    /// lock: otherwise throws `std::logic_error` ("cannot notify on un-acquired lock").
    void notify(std::size_t n = 1) {
        if (!locked()) throw std::logic_error("cannot notify on un-acquired lock");
        do_notify(n);
    }
    /// Wakes every waiting task. The caller must hold the lock (as notify).
    void notify_all() { notify(std::numeric_limits<std::size_t>::max()); }

private:
    friend class barrier;

    void do_notify(std::size_t n) noexcept {
        for (std::size_t i = 0; i < n && m_waiters.wake_one(); ++i) {
        }
    }
    /// A notified waiter that was cancelled before it ran passes its notification on.
    static void on_abandon(void* self, bool was_woken) noexcept {
        if (was_woken) static_cast<condition*>(self)->do_notify(1);
    }

    lock m_own_lock;
    lock* m_lock;
    detail::park_queue m_waiters;
    detail::park_list m_reacquiring; ///< waits re-acquiring the lock (to see this die meanwhile)
};

inline task<bool> condition::wait() {
    if (!m_lock->locked()) throw std::logic_error("cannot wait on un-acquired lock");
    lock& lk = *m_lock;
    const bool own_lock = &lk == &m_own_lock;
    lk.release();
    std::exception_ptr err;
    bool notified = false;
    detail::park_awaiter park(m_waiters, this, &condition::on_abandon);
    try {
        co_await park;
        notified = true;
    } catch (...) {
        err = std::current_exception();
    }
    if (park.orphaned) {
        // The condition was destroyed: touch nothing of it. Its own lock died with it; a lock
        // of the caller's is re-acquired below, as the caller's guard expects.
        if (own_lock) std::rethrow_exception(err);
    } else {
        m_reacquiring.push_back(&park);
    }
    // Re-acquire the lock whatever happened, as asyncio does; a cancellation meanwhile is kept
    // and waited through.
    for (;;) {
        detail::lock_awaiter<false> reacquire(lk);
        try {
            co_await reacquire;
            break;
        } catch (const detail::orphaned_marker&) {
            throw; // the lock is gone
        } catch (const cancelled_error&) {
            err = std::current_exception();
        }
    }
    if (park.orphaned) detail::throw_orphaned(err); // the condition died meanwhile
    m_reacquiring.remove(&park);
    if (err) {
        // A notification this wait received but will not act on goes to someone else.
        if (notified) do_notify(1);
        std::rethrow_exception(err);
    }
    co_return true;
}

template <class Predicate>
auto condition::wait_for(Predicate pred) -> task<std::remove_cvref_t<std::invoke_result_t<Predicate&>>> {
    auto result = pred();
    while (!result) {
        co_await wait();
        result = pred();
    }
    co_return result;
}

// --- semaphore --------------------------------------------------------------------------------

/// asyncio's `Semaphore`: a counter of available units; `acquire()` takes one, waiting while
/// none is left; `release()` gives one back. FIFO-fair (asyncio 3.12 semantics).
class semaphore {
public:
    /// A semaphore with `value` units. Throws `std::invalid_argument` (a `std::logic_error`) if
    /// `value` is negative (asyncio's ValueError).
    explicit semaphore(int value = 1) : semaphore(value, false) {}
    semaphore(const semaphore&) = delete;
    semaphore& operator=(const semaphore&) = delete;

    /// `auto g = co_await sem.acquire();` takes a unit, waiting while none is free or earlier
    /// waiters are in line; the `guard<semaphore>` gives it back. Cancellation:
    /// `cancelled_error` at the `co_await`, without a unit; a unit just handed to this task goes
    /// to the next waiter.
    [[nodiscard]] detail::semaphore_awaiter acquire() noexcept;

    /// True if acquire() would wait: no unit is free, or tasks wait already.
    bool locked() const noexcept { return m_value == 0 || m_waiters.has_waiters(); }

    /// Gives a unit back and wakes the first waiter. For a bounded_semaphore, throws
    /// `std::logic_error` ("BoundedSemaphore released too many times") if that would exceed its
    /// initial value.
    void release() {
        if (m_bounded && m_value >= m_bound)
            throw std::logic_error("BoundedSemaphore released too many times");
        ++m_value;
        wake_next();
    }

protected:
    /// A semaphore with `value` units that, if `bounded`, cannot be released above `value`.
    semaphore(int value, bool bounded) : m_value(value), m_bound(value), m_bounded(bounded) {
        if (value < 0) throw std::invalid_argument("Semaphore initial value must be >= 0");
    }

private:
    friend class detail::semaphore_awaiter;
    friend class guard<semaphore>;

    /// Hands a unit to the first waiter (asyncio's _wake_up_next).
    bool wake_next() noexcept {
        if (m_waiters.waiting.empty()) return false;
        --m_value;
        m_waiters.wake_one();
        return true;
    }
    void wake_while_free() noexcept {
        while (m_value > 0 && wake_next()) {
        }
    }
    /// A waiter gives up: a unit it was handed comes back, and goes to whoever is next.
    static void on_abandon(void* self, bool was_woken) noexcept {
        auto* s = static_cast<semaphore*>(self);
        if (was_woken) ++s->m_value;
        s->wake_while_free();
    }

    detail::park_queue m_waiters;
    detail::guard_list m_guards;
    int m_value;
    int m_bound;
    bool m_bounded;
};

/// asyncio's `BoundedSemaphore`: a semaphore whose `release()` throws `std::logic_error` if it
/// would raise the count above the initial value (asyncio's ValueError).
class bounded_semaphore : public semaphore {
public:
    /// A bounded semaphore with `value` units (`std::invalid_argument` if negative).
    explicit bounded_semaphore(int value = 1) : semaphore(value, true) {}
};

namespace detail {

class semaphore_awaiter {
public:
    explicit semaphore_awaiter(semaphore& s) noexcept
        : m_sem(&s), m_park(s.m_waiters, &s, &semaphore::on_abandon) {}
    semaphore_awaiter(semaphore_awaiter&& o) noexcept : m_sem(o.m_sem), m_park(std::move(o.m_park)) {}

    bool await_ready() const noexcept { return !m_sem->locked(); }
    void await_suspend(std::coroutine_handle<> h) {
        m_park.await_suspend(h);
        m_parked = true;
    }
    guard<semaphore> await_resume() {
        if (!m_parked) {
            --m_sem->m_value;
        } else {
            m_park.await_resume(); // the unit was taken for us when we were woken
            // Newcomers may have queued behind us while units were free: wake as many as fit.
            m_sem->wake_while_free();
        }
        return guard<semaphore>(*m_sem);
    }

private:
    semaphore* m_sem;
    park_awaiter m_park;
    bool m_parked = false;
};

} // namespace detail

inline detail::semaphore_awaiter semaphore::acquire() noexcept { return detail::semaphore_awaiter(*this); }

// --- barrier ----------------------------------------------------------------------------------

/// asyncio's `BrokenBarrierError`: thrown by `barrier::wait()` when the barrier is aborted, or
/// reset while the task waits.
class broken_barrier_error : public std::runtime_error {
public:
    /// `what` is asyncio's message ("Barrier aborted", "Abort or reset of barrier").
    explicit broken_barrier_error(const std::string& what = "Barrier aborted") : std::runtime_error(what) {}
};

/// asyncio's `Barrier` (3.11): `parties` tasks wait for each other; when the last arrives all
/// are released, and the barrier can be used again (a new round starts once every task of the
/// previous round has left).
class barrier {
public:
    /// A barrier for `parties` tasks. Throws `std::invalid_argument` if `parties` is 0
    /// (asyncio's ValueError "parties must be > 0").
    explicit barrier(std::size_t parties) : m_parties(parties) {
        if (parties == 0) throw std::invalid_argument("parties must be > 0");
    }
    barrier(const barrier&) = delete;
    barrier& operator=(const barrier&) = delete;

    /// `std::size_t i = co_await b.wait();` waits until `parties()` tasks wait, then returns
    /// this task's arrival index in the round (0 for the first, `parties() - 1` for the one
    /// that released the others). Throws `broken_barrier_error` if the barrier is broken
    /// (aborted), or is aborted or reset while this task waits. A task arriving while the
    /// previous round drains or resets waits for that to end first. Cancellation:
    /// `cancelled_error` at the `co_await`; the task leaves the round (the others keep waiting
    /// for a full count, the barrier is not broken: asyncio's behaviour).
    task<std::size_t> wait();

    /// Returns the barrier to its initial state: tasks waiting in the round get
    /// `broken_barrier_error`; a broken barrier works again. Unlike asyncio's (a coroutine that
    /// takes the barrier's lock), it acts at once: on one loop there is nothing to wait for.
    void reset() noexcept {
        if (m_count > 0) m_state = state::resetting;
        else m_state = state::filling;
        m_cond.do_notify(std::numeric_limits<std::size_t>::max());
    }

    /// Breaks the barrier: waiting and later wait()s throw `broken_barrier_error` until
    /// reset(). Acts at once (asyncio's is a coroutine, see reset()).
    void abort() noexcept {
        m_state = state::broken;
        m_cond.do_notify(std::numeric_limits<std::size_t>::max());
    }

    /// How many tasks it takes to pass the barrier.
    std::size_t parties() const noexcept { return m_parties; }
    /// How many tasks wait in the current round (0 while draining or resetting).
    std::size_t n_waiting() const noexcept { return m_state == state::filling ? m_count : 0; }
    /// True if the barrier is broken (aborted and not reset).
    bool broken() const noexcept { return m_state == state::broken; }

private:
    enum class state { filling, draining, resetting, broken };

    /// Waits while the previous round drains or resets; throws if broken.
    task<> block() {
        auto passable = [this] { return m_state != state::draining && m_state != state::resetting; };
        co_await m_cond.wait_for(passable);
        if (m_state == state::broken) throw broken_barrier_error("Barrier aborted");
    }
    /// Waits in the round until it is released; throws if aborted or reset meanwhile.
    task<> wait_released() {
        auto released = [this] { return m_state != state::filling; };
        co_await m_cond.wait_for(released);
        if (m_state == state::broken || m_state == state::resetting)
            throw broken_barrier_error("Abort or reset of barrier");
    }
    /// The last task of the round has left: the next round may start.
    void exit() noexcept {
        if (m_count == 0) {
            if (m_state == state::resetting || m_state == state::draining) m_state = state::filling;
            m_cond.do_notify(std::numeric_limits<std::size_t>::max());
        }
    }

    condition m_cond; // on its own lock: a barrier destroyed while tasks wait is left alone by them
    std::size_t m_parties;
    state m_state = state::filling;
    std::size_t m_count = 0;
};

inline task<std::size_t> barrier::wait() {
    {
        detail::lock_awaiter<false> enter(m_cond.m_own_lock);
        co_await enter; // on error nothing is held yet
    }
    std::exception_ptr err;
    std::size_t index = 0;
    bool counted = false;
    try {
        co_await block();
        index = m_count++;
        counted = true;
        if (index + 1 == m_parties) {
            m_state = state::draining; // release the round
            m_cond.do_notify(std::numeric_limits<std::size_t>::max());
        } else {
            co_await wait_released();
        }
    } catch (const detail::orphaned_marker&) {
        throw; // the barrier was destroyed: touch nothing
    } catch (...) {
        err = std::current_exception();
    }
    // Here the lock is held again (condition::wait re-acquires it even when cancelled).
    if (counted) {
        --m_count;
        exit();
    }
    m_cond.m_own_lock.release();
    if (err) std::rethrow_exception(err);
    co_return index;
}

} // namespace corio
