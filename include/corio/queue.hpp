#pragma once
/// \file corio/queue.hpp
/// asyncio's queues: `corio::queue<T>` (FIFO), `corio::priority_queue<T>` (smallest first) and
/// `corio::lifo_queue<T>` (last in, first out), for tasks of one loop.
///
///     corio::queue<int> q(10);                // asyncio.Queue(maxsize=10)
///     co_await q.put(1);                      // await q.put(1): waits while the queue is full
///     int v = co_await q.get();               // await q.get(): waits while it is empty
///     q.task_done();
///     co_await q.join();                      // until every item put was task_done()
///
/// ## Fairness and cancellation
/// Tasks waiting in `get()` are served in the order they started waiting, and so are tasks
/// waiting in `put()`; a task that arrives while others wait queues behind them even if an
/// item (a slot) is there for the one just woken (asyncio lets the newcomer take it and sends
/// the woken getter to the back of the line). `get_nowait()`/`put_nowait()` never wait and
/// take what is there, as asyncio's do; a waiter they overtake that way waits again at the head
/// of the line. Cancelling a waiting task throws `cancelled_error` at its `co_await` and loses
/// nothing: a getter woken for an item and cancelled before it ran leaves the item to the next
/// getter; a putter that is cancelled does not enqueue its item (the item is destroyed with the
/// awaiter) and a free slot it had been woken for goes to the next putter.
///
/// ## Shutdown (Python 3.13)
/// After `shutdown()`, `put()`/`put_nowait()` throw `queue_shutdown`, and so do `get()` and
/// `get_nowait()` once the queue is empty; every blocked putter and getter is woken (getters
/// take what is left, then throw). `shutdown(true)` also drains the queue, counting each
/// discarded item as done for `join()`.
///
/// ## Allocation
/// `get()`/`put()` that complete at once allocate nothing; one that has to wait runs a small
/// coroutine (one allocation) whose waiter node lives in its frame.
///
/// ## Lifetime
/// As for the primitives of corio/locks.hpp: a queue destroyed while tasks wait on it (local to
/// a `main` that returned) ends their waits with `cancelled_error`, and they never touch it
/// again; the items it holds are destroyed with it.

#include <corio/exceptions.hpp>
#include <corio/locks.hpp>
#include <corio/task.hpp>

#include <algorithm>
#include <coroutine>
#include <cstddef>
#include <deque>
#include <functional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio {

template <class T, class Storage>
class basic_queue;

namespace detail {

/// asyncio.Queue's deque.
template <class T>
class fifo_storage {
public:
    void push(T&& v) { m_items.push_back(std::move(v)); }
    T pop() {
        T v = std::move(m_items.front());
        m_items.pop_front();
        return v;
    }
    std::size_t size() const noexcept { return m_items.size(); }
    bool empty() const noexcept { return m_items.empty(); }
    void clear() noexcept { m_items.clear(); }

private:
    std::deque<T> m_items;
};

/// asyncio.LifoQueue's list.
template <class T>
class lifo_storage {
public:
    void push(T&& v) { m_items.push_back(std::move(v)); }
    T pop() {
        T v = std::move(m_items.back());
        m_items.pop_back();
        return v;
    }
    std::size_t size() const noexcept { return m_items.size(); }
    bool empty() const noexcept { return m_items.empty(); }
    void clear() noexcept { m_items.clear(); }

private:
    std::vector<T> m_items;
};

/// asyncio.PriorityQueue's heapq: the smallest item (by `Compare`) comes out first.
template <class T, class Compare>
class heap_storage {
public:
    explicit heap_storage(Compare comp = Compare()) : m_comp(std::move(comp)) {}
    void push(T&& v) {
        m_items.push_back(std::move(v));
        std::push_heap(m_items.begin(), m_items.end(), greater());
    }
    T pop() {
        std::pop_heap(m_items.begin(), m_items.end(), greater());
        T v = std::move(m_items.back());
        m_items.pop_back();
        return v;
    }
    std::size_t size() const noexcept { return m_items.size(); }
    bool empty() const noexcept { return m_items.empty(); }
    void clear() noexcept { m_items.clear(); }

private:
    /// std::*_heap keep the greatest element on top; reversing the order keeps the smallest.
    auto greater() {
        return [this](const T& a, const T& b) { return m_comp(b, a); };
    }
    std::vector<T> m_items;
    Compare m_comp;
};

/// `co_await q.get()`: takes an item at once if one is there for it; otherwise runs the
/// queue's waiting coroutine inline (trampolined like any awaited task).
template <class Q>
class queue_get_awaiter {
public:
    using value_type = typename Q::value_type;

    explicit queue_get_awaiter(Q& q) noexcept : m_queue(&q) {}
    queue_get_awaiter(queue_get_awaiter&&) noexcept = default; // before it is awaited

    bool await_ready() const noexcept { return m_queue->get_ready(); }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) {
        m_slow = m_queue->get_slow();
        return m_slow.operator co_await().await_suspend(h);
    }
    value_type await_resume() {
        if (m_slow) return m_slow.operator co_await().await_resume();
        return m_queue->get_nowait();
    }

private:
    Q* m_queue;
    task<value_type> m_slow;
};

/// `co_await q.put(v)`: holds the item until it is enqueued (or the put fails or is cancelled,
/// and the item dies with the awaiter).
template <class Q>
class queue_put_awaiter {
public:
    using value_type = typename Q::value_type;

    queue_put_awaiter(Q& q, value_type item) : m_queue(&q), m_item(std::move(item)) {}
    queue_put_awaiter(queue_put_awaiter&&) = default; // before it is awaited

    bool await_ready() const noexcept { return m_queue->put_ready(); }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) {
        m_slow = m_queue->put_slow(m_item);
        return m_slow.operator co_await().await_suspend(h);
    }
    void await_resume() {
        if (m_slow) m_slow.operator co_await().await_resume();
        else m_queue->put_nowait(std::move(m_item));
    }

private:
    Q* m_queue;
    value_type m_item;
    task<> m_slow;
};

/// `co_await q.join()`: the queue's "finished" event, without its `true`.
class queue_join_awaiter : public event_awaiter {
public:
    using event_awaiter::event_awaiter;
    void await_resume() { (void)event_awaiter::await_resume(); }
};

} // namespace detail

/// What `queue`, `priority_queue` and `lifo_queue` share (asyncio's `Queue`, which the other
/// two subclass); `Storage` decides the order items come out in. Use the three names.
///
/// Not copyable or movable (waiting tasks refer to it). `T` must be move-constructible.
template <class T, class Storage>
class basic_queue {
public:
    /// The item type.
    using value_type = T;

    /// A queue holding at most `maxsize` items; 0 (the default) means no limit.
    explicit basic_queue(std::size_t maxsize = 0) : m_maxsize(maxsize) { m_finished.set(); }
    /// As above, with the storage given (it holds a priority_queue's comparator).
    basic_queue(std::size_t maxsize, Storage storage) : m_items(std::move(storage)), m_maxsize(maxsize) {
        m_finished.set();
    }
    basic_queue(const basic_queue&) = delete;
    basic_queue& operator=(const basic_queue&) = delete;

    /// `co_await q.put(item)`: adds `item`, waiting while the queue is full (or earlier putters
    /// wait). Throws `queue_shutdown` if the queue is shut down, or is shut down while this task
    /// waits. Cancellation: `cancelled_error` at the `co_await`, and the item is not enqueued.
    [[nodiscard]] detail::queue_put_awaiter<basic_queue> put(T item) {
        return detail::queue_put_awaiter<basic_queue>(*this, std::move(item));
    }

    /// `T v = co_await q.get();` removes and returns an item, waiting while the queue is empty
    /// (or earlier getters wait). Throws `queue_shutdown` if the queue is shut down and empty,
    /// or becomes so while this task waits. Cancellation: `cancelled_error` at the `co_await`;
    /// no item is taken (one this task had been woken for goes to the next getter).
    [[nodiscard]] detail::queue_get_awaiter<basic_queue> get() noexcept {
        return detail::queue_get_awaiter<basic_queue>(*this);
    }

    /// Adds `item` without waiting. Throws `queue_shutdown` if the queue is shut down,
    /// `queue_full` if it is full.
    void put_nowait(T item) {
        if (m_shutdown) throw queue_shutdown();
        if (full()) throw queue_full();
        push(std::move(item));
    }

    /// Removes and returns an item without waiting. Throws `queue_shutdown` if the queue is
    /// empty and shut down, `queue_empty` if it is empty.
    T get_nowait() {
        if (m_items.empty()) {
            if (m_shutdown) throw queue_shutdown();
            throw queue_empty();
        }
        return take();
    }

    /// Tells the queue that an item taken earlier has been processed: when every item put has
    /// been, join() returns. Throws `std::logic_error` ("task_done() called too many times";
    /// asyncio's ValueError) if called more times than items were put.
    void task_done() {
        if (m_unfinished == 0) throw std::logic_error("task_done() called too many times");
        if (--m_unfinished == 0) m_finished.set();
    }

    /// `co_await q.join()` waits until every item put has been taken and task_done() was called
    /// for it (at once if that is the case already). Cancellation: `cancelled_error` at the
    /// `co_await`.
    [[nodiscard]] detail::queue_join_awaiter join() noexcept { return detail::queue_join_awaiter(m_finished); }

    /// The number of items in the queue.
    std::size_t qsize() const noexcept { return m_items.size(); }
    /// True if the queue holds no item.
    bool empty() const noexcept { return m_items.empty(); }
    /// True if the queue holds `maxsize()` items (never for an unbounded queue).
    bool full() const noexcept { return m_maxsize > 0 && m_items.size() >= m_maxsize; }
    /// The number of items allowed in the queue; 0 means no limit.
    std::size_t maxsize() const noexcept { return m_maxsize; }

    /// Shuts the queue down (Python 3.13): later puts throw `queue_shutdown`, gets throw it once
    /// the queue is empty, and every task blocked in put() or get() is woken (and throws, unless
    /// a getter finds an item left). With `immediate`, the queue is also drained: its items are
    /// destroyed and each counts as task_done() for join() (which returns if nothing else is
    /// unfinished). Calling it again is harmless (a later `immediate` still drains).
    void shutdown(bool immediate = false) noexcept {
        m_shutdown = true;
        if (immediate) {
            const std::size_t drained = m_items.size();
            m_items.clear();
            m_unfinished -= std::min(drained, m_unfinished);
            if (m_unfinished == 0) m_finished.set();
        }
        m_getters.wake_all();
        m_putters.wake_all();
    }

private:
    template <class>
    friend class detail::queue_get_awaiter;
    template <class>
    friend class detail::queue_put_awaiter;

    void push(T&& item) {
        m_items.push(std::move(item));
        ++m_unfinished;
        m_finished.clear();
        wake_getters();
    }
    T take() {
        T v = m_items.pop();
        wake_putters();
        return v;
    }

    // A woken waiter has a claim on an item (a slot) until it runs. Wake as many waiters as
    // there are items (slots) nobody has a claim on.
    void wake_getters() noexcept {
        while (!m_getters.waiting.empty() && m_items.size() > m_getters.woken.size()) m_getters.wake_one();
    }
    void wake_putters() noexcept {
        if (m_maxsize == 0) return;
        while (!m_putters.waiting.empty() && m_items.size() + m_putters.woken.size() < m_maxsize)
            m_putters.wake_one();
    }
    static void on_getter_abandon(void* self, bool) noexcept { static_cast<basic_queue*>(self)->wake_getters(); }
    static void on_putter_abandon(void* self, bool) noexcept { static_cast<basic_queue*>(self)->wake_putters(); }

    /// get() need not wait: shut down (take what is left or throw), or an item is there that no
    /// earlier getter has a claim on.
    bool get_ready() const noexcept {
        return m_shutdown || (m_getters.waiting.empty() && m_items.size() > m_getters.woken.size());
    }
    bool put_ready() const noexcept {
        return m_shutdown || m_maxsize == 0 ||
               (m_putters.waiting.empty() && m_items.size() + m_putters.woken.size() < m_maxsize);
    }

    task<T> get_slow() {
        bool front = false;
        for (;;) {
            detail::park_awaiter park(m_getters, this, &on_getter_abandon, front);
            co_await park; // throws if cancelled (passing a wake-up on) or if the queue died
            if (!m_items.empty()) co_return take();
            if (m_shutdown) throw queue_shutdown();
            front = true; // a get_nowait() took the item first: wait again, first in line
        }
    }

    task<> put_slow(T& item) {
        bool front = false;
        for (;;) {
            detail::park_awaiter park(m_putters, this, &on_putter_abandon, front);
            co_await park;
            if (m_shutdown) throw queue_shutdown();
            if (!full()) {
                push(std::move(item));
                co_return;
            }
            front = true; // a put_nowait() took the slot first
        }
    }

    Storage m_items;
    std::size_t m_maxsize;
    std::size_t m_unfinished = 0;
    bool m_shutdown = false;
    detail::park_queue m_getters;
    detail::park_queue m_putters;
    event m_finished; ///< set while nothing is unfinished (asyncio's _finished)
};

/// asyncio's `Queue`: first in, first out. See basic_queue for the members.
template <class T>
class queue : public basic_queue<T, detail::fifo_storage<T>> {
public:
    /// A queue holding at most `maxsize` items; 0 (the default) means no limit.
    explicit queue(std::size_t maxsize = 0) : basic_queue<T, detail::fifo_storage<T>>(maxsize) {}
};

/// asyncio's `PriorityQueue`: the smallest item comes out first (as heapq orders them; items
/// that compare equal come out in no particular order). `Compare` is a strict weak order, as
/// for std::priority_queue, but the item it ranks lowest comes out first: with the default
/// std::less that is the smallest. Entries are typically `std::pair{priority, data}`.
template <class T, class Compare = std::less<T>>
class priority_queue : public basic_queue<T, detail::heap_storage<T, Compare>> {
public:
    /// A queue holding at most `maxsize` items (0: no limit), ordered by `comp`.
    explicit priority_queue(std::size_t maxsize = 0, Compare comp = Compare())
        : basic_queue<T, detail::heap_storage<T, Compare>>(maxsize,
                                                           detail::heap_storage<T, Compare>(std::move(comp))) {}
};

/// asyncio's `LifoQueue`: the item put last comes out first.
template <class T>
class lifo_queue : public basic_queue<T, detail::lifo_storage<T>> {
public:
    /// A queue holding at most `maxsize` items; 0 (the default) means no limit.
    explicit lifo_queue(std::size_t maxsize = 0) : basic_queue<T, detail::lifo_storage<T>>(maxsize) {}
};

} // namespace corio
