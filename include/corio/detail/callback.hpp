#pragma once
/// \file corio/detail/callback.hpp
/// Type-erased, reference-counted callbacks: what `call_soon`, `call_later`, `add_reader`,
/// signal handlers and done callbacks schedule. One allocation holds the node and the callable.

#include <corio/detail/ready_queue.hpp>
#include <corio/detail/timer_heap.hpp>

#include <atomic>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

namespace corio {
class event_loop;
}

namespace corio::detail {

/// Reference counting is atomic because `call_soon_threadsafe` hands a node (and its handle)
/// across threads; everything else about a node is touched on the loop thread only, except the
/// `cancelled` flag, which a handle may set from any thread.
///
/// References: each `corio::handle`, each place the loop holds it (ready queue, timer heap,
/// fd table, signal table) owns one.
class callback_node : public ready_node, public timer_node {
public:
    callback_node() noexcept {
        ready_node::run = &run_thunk;
        timer_node::fire = &fire_thunk;
    }
    callback_node(const callback_node&) = delete;
    callback_node& operator=(const callback_node&) = delete;
    virtual ~callback_node() = default;

    void add_ref() noexcept { m_refs.fetch_add(1, std::memory_order_relaxed); }
    void release() noexcept {
        if (m_refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
    }

    bool cancelled() const noexcept { return m_cancelled.load(std::memory_order_acquire); }
    void mark_cancelled() noexcept { m_cancelled.store(true, std::memory_order_release); }

    /// Runs the callable (unless cancelled). Persistent nodes (readers, signal handlers) run
    /// again and again; one-shot nodes are released by whoever queued them.
    void invoke_if_live() {
        if (!cancelled()) invoke();
    }
    /// Frees what the callable captured, early (asyncio drops a cancelled handle's callback).
    virtual void drop_callable() noexcept = 0;

    /// True if the timer node belongs to a callback (not, say, a sleeping task's awaiter).
    static bool is_callback_timer(const timer_node* t) noexcept { return t->fire == &fire_thunk; }

    event_loop* loop = nullptr; ///< set for timers, whose cancel must leave the heap
    bool queued = false;        ///< in the ready queue (persistent nodes are queued once at a time)
    /// Readers, writers and signal handlers run many times; every other callback runs once and
    /// its callable is destroyed right after, on the loop thread, whoever holds the last
    /// reference (a handle kept by another thread must not destroy loop-owned captures).
    bool persistent = false;

protected:
    virtual void invoke() = 0;

private:
    static void run_thunk(ready_node* n); // defined in event_loop.hpp
    static void fire_thunk(timer_node* n);

    std::atomic<std::uint32_t> m_refs{1};
    std::atomic<bool> m_cancelled{false};
};

template <class F>
class callback_impl final : public callback_node {
public:
    template <class G>
    explicit callback_impl(G&& g) : m_fn(std::in_place, std::forward<G>(g)) {}
    void drop_callable() noexcept override { m_fn.reset(); }

protected:
    void invoke() override {
        if (m_fn) (*m_fn)();
    }

private:
    std::optional<F> m_fn;
};

/// Allocates a node owning a decayed copy of `fn`; the caller owns the one reference it has.
template <class F>
callback_node* make_callback(F&& fn) {
    static_assert(std::is_invocable_v<std::decay_t<F>&>,
                  "corio: a callback must be callable with no arguments");
    return new callback_impl<std::decay_t<F>>(std::forward<F>(fn));
}

/// Owns one reference to a node; the loop's internal bookkeeping uses it.
class callback_ref {
public:
    callback_ref() = default;
    explicit callback_ref(callback_node* n) noexcept : m_node(n) {} // adopts a reference
    callback_ref(callback_ref&& o) noexcept : m_node(std::exchange(o.m_node, nullptr)) {}
    callback_ref& operator=(callback_ref&& o) noexcept {
        if (this != &o) {
            reset();
            m_node = std::exchange(o.m_node, nullptr);
        }
        return *this;
    }
    ~callback_ref() { reset(); }
    void reset() noexcept {
        if (m_node) std::exchange(m_node, nullptr)->release();
    }
    callback_node* get() const noexcept { return m_node; }
    callback_node* operator->() const noexcept { return m_node; }
    explicit operator bool() const noexcept { return m_node != nullptr; }

private:
    callback_node* m_node = nullptr;
};

} // namespace corio::detail
