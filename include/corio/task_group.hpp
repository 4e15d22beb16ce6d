#pragma once
/// \file corio/task_group.hpp
/// `corio::task_group`: asyncio's TaskGroup, with `join()` in place of `async with`.
///
///     corio::task_group tg;                       // async with asyncio.TaskGroup() as tg:
///     auto a = tg.create_task(fetch("a"));        //     a = tg.create_task(fetch("a"))
///     auto b = tg.create_task(fetch("b"));        //     b = tg.create_task(fetch("b"))
///     co_await tg.join();                         // (the end of the async with block)
///     use(a.result(), b.result());
///
/// ## Semantics (asyncio 3.12's, where C++ allows)
/// - The first child that fails (ends with an exception other than `cancelled_error`) cancels
///   every other child still running. `join()` waits for every child to finish, then throws
///   `corio::exception_group` holding every error, in the order the children failed
///   (`what()`: "unhandled errors in a TaskGroup (N sub-exceptions)"). Children that end
///   cancelled are not errors.
/// - The task awaiting `join()` being cancelled cancels every child; `join()` still waits for all
///   of them, then rethrows the `cancelled_error` (unless a child failed meanwhile: errors take
///   priority, as in asyncio, and `exception_group` is thrown; the task's `cancelling()` count
///   still says it was cancelled).
/// - Children may be added while `join()` waits (from the children themselves, say). Adding
///   one after a child failed (or the joiner was cancelled) throws
///   `std::runtime_error("TaskGroup is shutting down")`; after `join()` finished,
///   `std::runtime_error("TaskGroup is finished")`.
///
/// ## What differs from asyncio, and why
/// asyncio cancels the task running the `async with` body when a child fails, so that the
/// body's current await is interrupted. C++ has no asynchronous scope exit: a body interrupted
/// that way could not wait for the children before leaving, so corio does not cancel the
/// parent. A failure cancels the siblings; the parent learns of it from `join()`.
///
/// Always `co_await tg.join()`. A `task_group` destroyed without it (the parent threw or was
/// cancelled before reaching `join()`) cannot wait in its destructor: it cancels the children
/// still running and lets them finish on the loop by themselves. Their errors (and those of
/// children that failed before) are then nobody's: each is reported as "Task exception was never
/// retrieved" when the last handle of its task goes, as for any task. Children that refer to the
/// parent's locals must not outlive it this way: reach `join()`.

#include <corio/event_loop.hpp>
#include <corio/exceptions.hpp>
#include <corio/future.hpp>
#include <corio/task.hpp>

#include <cstddef>
#include <exception>
#include <list>
#include <memory>
#include <optional>
#include <source_location>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace corio {

namespace detail {

/// What a task_group shares with the done callbacks of its children. Kept by shared_ptr: the
/// callbacks of children still running hold it after an unjoined group is destroyed.
struct task_group_state {
    event_loop* loop = nullptr;
    std::list<task_ref> running;  ///< children not done yet (removed by their done callback)
    std::vector<task_ref> failed; ///< children that failed, in the order they did
    std::optional<future<void>> on_completed; ///< set when `running` empties, while join() waits
    bool aborting = false;        ///< a child failed, or the joiner was cancelled
    bool joining = false;         ///< join() is running
    bool finished = false;        ///< join() has returned (or thrown)
    bool orphaned = false;        ///< the group was destroyed without finishing join()

    /// asyncio's TaskGroup._abort: cancels every child still running. (Cancelling one child
    /// never finishes another synchronously in a way that runs its done callback now: done
    /// callbacks go through call_soon, so the list does not change under the loop.)
    void abort() noexcept {
        aborting = true;
        for (task_ref& t : running) {
            try {
                t.cancel();
            } catch (...) { // only on a closed loop, where every task is done already
            }
        }
    }

    /// asyncio's TaskGroup._on_task_done: a child finished (`failed`: with an error other than
    /// a cancellation). The child's error is not taken (retrieved) here but by join(), so the
    /// errors of a group destroyed unjoined are reported like those of any lost task.
    void on_child_done(std::list<task_ref>::iterator it, bool child_failed) {
        task_ref t = std::move(*it);
        running.erase(it);
        if (running.empty() && on_completed && !on_completed->done()) on_completed->set_result();
        if (!child_failed || orphaned) return;
        failed.push_back(std::move(t));
        if (!aborting) abort();
    }
};

inline std::string task_group_message(std::size_t n) {
    return "unhandled errors in a TaskGroup (" + std::to_string(n) +
           (n == 1 ? " sub-exception)" : " sub-exceptions)");
}

} // namespace detail

/// asyncio's TaskGroup: runs tasks together; `co_await join()` waits for all of them. The first
/// child to fail cancels the others, and `join()` throws every error in a `corio::exception_group`.
/// The file comment of corio/task_group.hpp has the details, and what differs from asyncio.
///
/// Not copyable or movable (children's bookkeeping and a pending `join()` refer to it). Bound to
/// the loop on which its first task is created. A loop-thread object.
class task_group {
public:
    /// An empty group.
    task_group() : m_state(std::make_shared<detail::task_group_state>()) {}
    task_group(const task_group&) = delete;
    task_group& operator=(const task_group&) = delete;

    /// If `join()` has not finished: cancels the children still running (they finish on the loop
    /// by themselves, later) and gives up the errors collected so far, which are then reported
    /// as "Task exception was never retrieved" as for any task nobody looked at. Never throws.
    ~task_group() {
        detail::task_group_state& st = *m_state;
        if (st.finished) return;
        st.orphaned = true;
        st.failed.clear();
        st.abort();
    }

    /// Schedules `aw` (a `task<T>` moved in, a callable returning an awaitable, or any awaitable;
    /// as `corio::create_task`) on the running loop as a child of this group, and returns its
    /// handle (`task_handle<T>`).
    ///
    /// Throws `std::runtime_error("TaskGroup is finished")` once `join()` has finished,
    /// `std::runtime_error("TaskGroup is shutting down")` once a child has failed or the task
    /// awaiting `join()` was cancelled, `std::runtime_error` outside a running loop or on a loop
    /// other than the group's. `aw` is not started then.
    template <class Aw>
    auto create_task(Aw&& aw, std::string name = {},
                     std::source_location where = std::source_location::current()) {
        detail::task_group_state& st = *m_state;
        if (st.finished) throw std::runtime_error("TaskGroup is finished");
        if (st.aborting) throw std::runtime_error("TaskGroup is shutting down");
        event_loop& loop = get_running_loop();
        if (st.loop && st.loop != &loop)
            throw std::runtime_error("corio: the task_group belongs to a different event loop");
        st.loop = &loop;
        // The list node first: once the task exists, nothing may fail before it is tracked.
        auto it = st.running.emplace(st.running.end());
        struct unlink_on_error {
            std::list<task_ref>& list;
            std::list<task_ref>::iterator it;
            bool armed = true;
            ~unlink_on_error() {
                if (armed) list.erase(it);
            }
        } guard{st.running, it};
        auto h = loop.create_task(std::forward<Aw>(aw), std::move(name), where);
        using T = typename decltype(h)::value_type;
        *it = task_ref(h);
        try {
            h.add_done_callback([st = m_state, it](const future<T>& f) {
                st->on_child_done(it, !f.cancelled() && !f.state()->has_value());
            });
        } catch (...) {
            h.cancel(); // not supervised: do not leave it running
            throw;
        }
        guard.armed = false;
        return h;
    }

    /// `co_await tg.join()` waits until every child has finished (children added meanwhile
    /// included). Then throws `corio::exception_group` with the error of every child that
    /// failed, in the order they failed, if any did; returns otherwise.
    ///
    /// Cancellation: cancelling the awaiting task cancels every child; join() goes on waiting
    /// until they have all finished, then rethrows the `cancelled_error` (or throws the
    /// `exception_group` if a child failed: errors take priority, as in asyncio).
    ///
    /// Await it once: a second `join()` while one is pending throws `invalid_state_error`; one
    /// after the first finished returns at once (the errors were delivered already).
    task<> join() {
        std::shared_ptr<detail::task_group_state> st = m_state;
        if (st->joining)
            throw invalid_state_error("corio: task_group::join() is already being awaited");
        if (st->finished) co_return;
        st->joining = true;
        std::exception_ptr cancelled;
        while (!st->running.empty()) {
            future<void> all_done(*st->loop);
            st->on_completed = all_done;
            try {
                co_await all_done.wait_done(); // cancelling us does not cancel it
            } catch (const cancelled_error&) {
                if (!cancelled) cancelled = std::current_exception();
                if (!st->aborting) st->abort();
            }
            st->on_completed.reset();
        }
        st->joining = false;
        st->finished = true;
        if (!st->failed.empty()) {
            std::vector<std::exception_ptr> errors;
            errors.reserve(st->failed.size());
            for (task_ref& t : st->failed) errors.push_back(t.exception()); // now retrieved
            st->failed.clear();
            const std::size_t n = errors.size();
            throw exception_group(detail::task_group_message(n), std::move(errors));
        }
        if (cancelled) std::rethrow_exception(cancelled);
    }

private:
    std::shared_ptr<detail::task_group_state> m_state;
};

} // namespace corio
