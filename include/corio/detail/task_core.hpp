#pragma once
/// \file corio/detail/task_core.hpp
/// What makes a coroutine a task: the step the loop runs, the trampoline that replaces
/// symmetric transfer, and the cancellation protocol.
///
/// ## Stepping, and why there is a trampoline
/// The loop runs a task by calling `step()`. Inside a step, awaiting a `task<T>` does not resume
/// the child from `await_suspend` (symmetric transfer); it stores the child in `next` and
/// returns to `step()`, which resumes it. GCC does not turn symmetric transfer into a tail call
/// at -O0/-Og/-O1 or under ASan (GCC PR 94794), so a long run of synchronously completing awaits
/// would grow the stack by a frame each time and overflow; with the trampoline the stack depth
/// stays constant in every build mode, for a store and a load per transfer.
///
/// ## One thread
/// A task is only ever resumed by its loop's thread, from `step()`. Other threads reach the loop
/// through `call_soon_threadsafe`, whose callbacks run later on the loop thread. So a coroutine
/// never resumes on a thread other than the one it suspended on, and a handle is never resumed
/// while its `await_suspend` is still running: the Clang bugs about frame writes racing with a
/// resumer on another thread (llvm #56301) and thread_local values cached across a suspension
/// (llvm #47179) cannot arise from corio's own awaitables.
///
/// ## Cancellation (asyncio's Task.cancel, in C++)
/// - Suspended on a waiter: the waiter propagates the request (a sleep leaves the timer heap, an
///   awaited future is itself cancelled) and the task wakes to find `cancelled_error` thrown at
///   that `co_await`.
/// - Queued or running: `must_cancel` is set; the next step throws `cancelled_error` at the await
///   it resumes (or, if the task never started, finishes it cancelled without running it).

#include <corio/detail/future_core.hpp>
#include <corio/detail/ready_queue.hpp>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <source_location>
#include <stdexcept>
#include <string>
#include <utility>

namespace corio::detail {

class task_core;

/// The task whose step is running on this thread, or null.
inline thread_local constinit task_core* t_current_task = nullptr;

/// Something a task is suspended on.
struct task_waiter {
    /// Propagates a cancellation request to what is awaited. Returns true if the request was
    /// absorbed: the task will be woken and see the cancellation at its `co_await`.
    bool (*cancel)(task_waiter*, const std::string& msg) = nullptr;
};

/// asyncio names tasks "Task-1", "Task-2", ... per process; loops on other threads count too.
inline std::uint64_t next_task_id() noexcept {
    static std::atomic<std::uint64_t> counter{0};
    return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

class task_core : public ready_node {
public:
    task_core(std::coroutine_handle<> frame, std::string name, std::source_location where)
        : m_frame(frame), m_id(next_task_id()), m_created(where) {
        ready_node::run = &run_step;
        if (!name.empty()) {
            try {
                extras().name = std::move(name);
            } catch (...) {
                m_frame.destroy(); // ~task_core does not run for a throwing constructor
                throw;
            }
        }
    }
    task_core(const task_core&) = delete;
    task_core& operator=(const task_core&) = delete;

    /// The innermost coroutine of a task transfers to another through this slot (trampoline).
    std::coroutine_handle<> next;

    /// Called by an awaiter that parks the task on the loop.
    void suspend_on(std::coroutine_handle<> h, task_waiter* w) noexcept {
        m_resume = h;
        m_waiting = w;
    }
    /// Called by what the task waited for: resume it on a later loop iteration.
    void wake() noexcept {
        m_waiting = nullptr;
        schedule();
    }
    /// Wakes the task so that its current `co_await` throws `cancelled_error(msg)`.
    void wake_cancelled(const std::string& msg) {
        m_deliver_cancel = true;
        if (!msg.empty() || m_extras) extras().cancel_message = msg;
        wake();
    }
    /// Every suspending awaiter calls this first in await_resume.
    void throw_if_cancel_delivered() {
        if (m_deliver_cancel) {
            m_deliver_cancel = false;
            throw cancelled_error(m_extras ? m_extras->cancel_message : std::string());
        }
    }

    /// asyncio's Task.cancel().
    bool request_cancel(std::string msg) {
        if (as_future().done()) return false;
        ++m_num_cancels_requested;
        if (m_waiting && m_waiting->cancel(m_waiting, msg)) return true;
        m_must_cancel = true;
        if (!msg.empty() || m_extras) extras().cancel_message = std::move(msg);
        return true;
    }
    /// asyncio's Task.cancelling() / uncancel().
    int cancelling() const noexcept { return m_num_cancels_requested; }
    int uncancel() noexcept {
        if (m_num_cancels_requested > 0) --m_num_cancels_requested;
        return m_num_cancels_requested;
    }

    std::string get_name() const {
        if (m_extras && !m_extras->name.empty()) return m_extras->name;
        return "Task-" + std::to_string(m_id);
    }
    void set_name(std::string name) { extras().name = std::move(name); }
    const std::source_location& created_at() const noexcept { return m_created; }
    bool started() const noexcept { return m_started; }

    virtual future_core& as_future() noexcept = 0;

    /// Used by the loop's close(): destroys the frame of a task that is still pending.
    void destroy_pending() noexcept {
        m_waiting = nullptr;
        if (m_frame) std::exchange(m_frame, {}).destroy();
        finish_cancelled();
    }

    /// True if a ready-queue node is a task step (rather than a callback).
    static bool is_step(const ready_node* n) noexcept { return n->run == &run_step; }

    bool queued() const noexcept { return m_queued; }
    void unqueue() noexcept { m_queued = false; }

protected:
    ~task_core() {
        if (m_frame) m_frame.destroy();
    }

    void schedule() noexcept {
        if (!m_queued) {
            m_queued = true;
            loop_ops::enqueue(*as_future().loop(), this);
        }
    }

    /// Moves the outcome out of the finished frame and completes the future.
    virtual void complete_from_frame() noexcept = 0;
    /// Completes the future as cancelled (with the pending cancel message).
    virtual void finish_cancelled() noexcept = 0;

    std::string cancel_message() const { return m_extras ? m_extras->cancel_message : ""; }
    /// A cancellation was requested that no await has delivered yet.
    bool cancel_pending() const noexcept { return m_must_cancel; }

    std::coroutine_handle<> m_frame; ///< the outermost coroutine, owned

private:
    struct task_extras {
        std::string name;
        std::string cancel_message;
    };
    task_extras& extras() {
        if (!m_extras) m_extras = std::make_unique<task_extras>();
        return *m_extras;
    }

    static void run_step(ready_node* n) { static_cast<task_core*>(n)->step(); }

    void step() noexcept {
        m_queued = false;
        if (as_future().done()) return;
        if (!m_started) {
            m_started = true;
            if (m_must_cancel) { // cancelled before it ran: its body never runs
                std::exchange(m_frame, {}).destroy();
                finish_cancelled();
                return;
            }
            m_resume = m_frame;
        } else if (m_must_cancel) {
            m_must_cancel = false;
            m_deliver_cancel = true;
        }
        m_waiting = nullptr;
        task_core* const outer = std::exchange(t_current_task, this);
        std::coroutine_handle<> h = std::exchange(m_resume, {});
        while (h) {
            next = {};
            h.resume();
            h = next;
        }
        t_current_task = outer;
        m_deliver_cancel = false;
        if (m_frame.done()) {
            complete_from_frame(); // may release the last reference: `this` is gone after it
        } else if (m_must_cancel && m_waiting && m_waiting->cancel(m_waiting, cancel_message())) {
            m_must_cancel = false; // cancelled itself while running: hand it to what it awaits
        }
    }

    std::coroutine_handle<> m_resume;
    task_waiter* m_waiting = nullptr;
    std::unique_ptr<task_extras> m_extras;
    std::uint64_t m_id;
    std::source_location m_created;
    int m_num_cancels_requested = 0;
    bool m_started = false;
    bool m_queued = false;
    bool m_must_cancel = false;
    bool m_deliver_cancel = false;
};

/// The task being stepped on this thread; throws if a corio awaitable is used outside one.
inline task_core& require_current_task() {
    if (!t_current_task)
        throw std::logic_error(
            "corio: this awaitable must be awaited inside a task (run it with corio::run, "
            "run_until_complete or create_task)");
    return *t_current_task;
}

} // namespace corio::detail
