#pragma once
/// \file corio/runners.hpp
/// `corio::run(main())`: asyncio.run.
///
/// Creates a new event loop, runs `main` to completion, then cancels every task still pending
/// and waits for them to finish (errors they end with are reported through the exception
/// handler, as "unhandled exception during corio::run() shutdown"), shuts the default executor
/// down and waits for its jobs (`loop.shutdown_default_executor()`, see corio/executor.hpp),
/// closes the loop, and returns main's value or rethrows its exception.
///
/// Throws `std::logic_error` when called from a running loop (asyncio raises RuntimeError;
/// calling it there is a programming error, not a runtime condition).

#include <corio/event_loop.hpp>
#include <corio/executor.hpp>
#include <corio/task.hpp>

#include <exception>
#include <stdexcept>
#include <utility>
#include <vector>

namespace corio {

/// Options of `corio::run` (asyncio.run's `debug=`, plus the test clock).
struct run_options {
    bool debug = false;        ///< debug mode, see event_loop::set_debug
    bool virtual_time = false; ///< the test clock, see corio/testing.hpp
};

namespace detail {

inline task<> wait_all_done(std::vector<task_ref> tasks) {
    for (const task_ref& t : tasks) co_await t.wait_done();
}

/// asyncio.runners._cancel_all_tasks.
inline void cancel_all_tasks(event_loop& loop) {
    std::vector<task_ref> pending;
    for (task_core* t : loop_ops::pending_tasks(loop)) pending.emplace_back(t);
    if (pending.empty()) return;
    for (task_ref& t : pending) t.cancel();
    loop.run_until_complete(wait_all_done(pending));
    for (task_ref& t : pending) {
        if (t.cancelled()) continue;
        if (std::exception_ptr e = t.exception())
            loop.call_exception_handler(
                {"unhandled exception during corio::run() shutdown", e, t.get_name()});
    }
}

/// asyncio.run's `loop.run_until_complete(loop.shutdown_default_executor())`, skipped (no
/// task, no loop iteration) when no default executor was ever made.
inline void shutdown_default_executor(event_loop& loop) {
    if (!executor_ops::has_default_executor(loop)) return;
    loop.run_until_complete(loop.shutdown_default_executor());
}

} // namespace detail

/// Runs `main` (a `task<T>`, a callable returning an awaitable, or an awaitable) on a new
/// event loop and returns its value; see the file comment.
template <class Aw>
auto run(Aw&& main, run_options options = {}) {
    if (event_loop::running())
        throw std::logic_error("corio::run() cannot be called from a running event loop");
    event_loop loop(loop_options{.debug = options.debug, .virtual_time = options.virtual_time});
    struct finalizer {
        event_loop& loop;
        ~finalizer() {
            try {
                detail::cancel_all_tasks(loop);
            } catch (...) {
                loop.call_exception_handler(
                    {"error while cancelling tasks in corio::run()", std::current_exception(), {}});
            }
            try {
                detail::shutdown_default_executor(loop);
            } catch (...) {
                loop.call_exception_handler({"error while shutting down the default executor in "
                                             "corio::run()",
                                             std::current_exception(), {}});
            }
            loop.close();
        }
    } fin{loop};
    return loop.run_until_complete(std::forward<Aw>(main));
}

} // namespace corio
