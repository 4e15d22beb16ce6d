#pragma once
/// \file corio/detail/loop_ops.hpp
/// The loop's internal services, for corio's own futures, tasks and awaitables. Declared here so
/// the pieces below the loop can name them; defined in event_loop.hpp once the loop is complete.

#include <corio/exceptions.hpp>

#include <cstdint>
#include <memory>
#include <vector>

namespace corio {
class event_loop;
}

namespace corio::detail {

struct ready_node;
struct timer_node;
class future_core;
class task_core;

struct loop_ops {
    /// Appends to the ready queue (loop thread only).
    static void enqueue(event_loop& loop, ready_node* n) noexcept;
    /// The loop's list of live futures.
    static void link(event_loop& loop, future_core* f) noexcept;
    static void unlink(event_loop& loop, future_core* f) noexcept;
    /// Through the loop's exception handler; to stderr if the loop is gone.
    static void report(event_loop* loop, const exception_context& ctx) noexcept;
    /// Throws `std::runtime_error("Event loop is closed")` if it is (or is null).
    static void check_open(const event_loop* loop);
    /// Loop time in nanoseconds (virtual under the test clock).
    static std::int64_t now_ns(const event_loop& loop) noexcept;
    static void add_timer(event_loop& loop, timer_node* n, std::int64_t when_ns);
    /// Takes `n` out of the heap if it is there (the heap owns no reference to it).
    static void remove_timer(event_loop& loop, timer_node* n) noexcept;
    /// Tasks of the loop that are not done, oldest first.
    static std::vector<task_core*> pending_tasks(const event_loop& loop);
    /// Per-loop objects of corio's own layers (the networking registry, ...), found by the
    /// address of a key object: null if there is none. close() destroys them, newest first,
    /// once it has dropped the fd watches (the loop is closed by then).
    static void* find_attachment(const event_loop& loop, const void* key) noexcept;
    /// Adds one (see find_attachment). Throws `std::runtime_error` if the loop is closed.
    static void add_attachment(event_loop& loop, const void* key, std::shared_ptr<void> value);
};

} // namespace corio::detail
