#pragma once
/// \file corio/executor.hpp
/// Executors: asyncio's `loop.run_in_executor`, `asyncio.to_thread` and
/// `concurrent.futures.ThreadPoolExecutor`, for blocking or CPU-heavy calls that must not freeze
/// the event loop.
///
///     long heavy_calculus();               // def heavy_calculus(): ...   (CPU work)
///
///     corio::task<> handler() {            // async def handler():
///         auto& loop = corio::get_running_loop();
///         // nullptr: the default pool     //     # executor=None: the default pool
///         long r = co_await loop.run_in_executor(nullptr, heavy_calculus);
///                                          //     r = await loop.run_in_executor(None, heavy_calculus)
///         long s = co_await corio::to_thread(heavy_calculus);
///                                          //     s = await asyncio.to_thread(heavy_calculus)
///     }
///
/// While the call runs on a worker thread, the loop keeps running every other task; the result
/// (or the exception the function threw) comes back on the loop's thread, where the awaiting
/// coroutine resumes. C++ has no GIL, so where asyncio programs reach for a ProcessPoolExecutor
/// for CPU work, corio's thread pool is the counterpart.
///
/// ## What runs where
/// - `fn` and its arguments are decay-copied (moved from rvalues) into the job, as `std::thread`
///   does: pass `std::ref(x)` to hand a reference over (and keep `x` alive until the job ends).
///   They are called, and destroyed, on a worker thread.
/// - The `future<R>` run_in_executor returns belongs to the loop; only the loop's thread touches
///   it. A worker posts the outcome with `call_soon_threadsafe`.
/// - A virtual-time loop (corio/testing.hpp) waits for outstanding jobs for real instead of
///   jumping to its next timer (the jobs are bracketed by `begin_external_work` /
///   `end_external_work`).
///
/// ## Cancellation (as asyncio's wrap_future does it)
/// Cancelling the returned future, or the task awaiting it (`co_await` cancels the awaited
/// future), cancels the call at once on the loop side: the awaiting task sees `cancelled_error`.
/// A job that has not started yet then never runs (its function and arguments are just
/// destroyed); a job already running cannot be interrupted: it runs to completion on its worker
/// and its result (or exception) is dropped unseen when it reaches the loop. Nothing leaks
/// either way.
///
/// ## The loop closes while jobs still run
/// `loop.close()` shuts the default executor down *without waiting* (asyncio's
/// `BaseEventLoop.close` does `shutdown(wait=False)`): queued jobs still run, and a job still
/// running finishes. Workers never hold the loop itself: they post through a shared token whose
/// pointer to the loop `close()` clears under a mutex, so a job that finishes after `close()`
/// (or after the loop was destroyed) has its outcome dropped silently. The loop keeps its
/// reference to the default executor until it is destroyed; if it is the last owner, the pool's
/// destructor then waits for the jobs still running (a C++ thread cannot be abandoned safely).
/// `corio::run` does not get there: like asyncio.run, it awaits `shutdown_default_executor()`
/// (which waits for the jobs) before closing the loop.

#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/task.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio {

/// \cond INTERNAL
namespace detail {

/// What executor_job holds: the work, and what to do if it is dropped without running.
struct job_base {
    virtual ~job_base() = default;
    /// Runs the work (once).
    virtual void run() = 0;
    /// The executor dropped the job unrun (shutdown with cancel_futures): tell whoever waits.
    virtual void discard() noexcept {}
};

template <class F>
struct plain_job final : job_base {
    template <class G>
    explicit plain_job(G&& g) : fn(std::forward<G>(g)) {}
    void run() override { fn(); }
    F fn;
};

/// executor::submit's job: the function and arguments live here, not in the std::future's
/// shared state, so they are destroyed as soon as the job has run or was dropped.
template <class R, class F, class... A>
struct submit_job final : job_base {
    template <class G, class... B>
    explicit submit_job(G&& g, B&&... b) : fn(std::forward<G>(g)), args(std::forward<B>(b)...) {}
    void run() override {
        try {
            if constexpr (std::is_void_v<R>) {
                std::apply([this](auto&... a) { std::invoke(std::move(fn), std::move(a)...); }, args);
                promise.set_value();
            } else {
                promise.set_value(std::apply(
                    [this](auto&... a) -> R { return std::invoke(std::move(fn), std::move(a)...); },
                    args));
            }
        } catch (...) {
            promise.set_exception(std::current_exception());
        }
    }
    // discard(): destroying the promise unset gives the future broken_promise.
    std::promise<R> promise;
    F fn;
    std::tuple<A...> args;
};

} // namespace detail
/// \endcond

/// One unit of work for an executor: a type-erased, move-only `void()` callable.
///
/// An executor either calls it once (on any thread) or destroys it without calling it. For the
/// jobs `run_in_executor` and `to_thread` make, destroying one unrun cancels the loop's future of
/// that call (as `ThreadPoolExecutor.shutdown(cancel_futures=True)` cancels the futures of queued
/// work); for `executor::submit`, its `std::future` gets `std::future_error` (broken_promise).
class executor_job {
public:
    /// An empty job.
    executor_job() noexcept = default;
    /// Wraps any callable `fn()` (moved or copied in). Throws what allocating it throws.
    template <class F>
        requires(!std::is_same_v<std::remove_cvref_t<F>, executor_job> &&
                 std::is_invocable_v<std::decay_t<F>&>)
    explicit executor_job(F&& fn)
        : m_job(std::make_unique<detail::plain_job<std::decay_t<F>>>(std::forward<F>(fn))) {}
    ///@{
    /// Moves the work; the source becomes empty.
    executor_job(executor_job&& o) noexcept = default;
    executor_job& operator=(executor_job&& o) noexcept {
        if (this != &o) {
            reset();
            m_job = std::move(o.m_job);
        }
        return *this;
    }
    ///@}
    executor_job(const executor_job&) = delete;
    executor_job& operator=(const executor_job&) = delete;
    /// Destroys the work; a job that never ran counts as cancelled (see the class comment).
    ~executor_job() { reset(); }

    /// Runs the work, once: the job is empty afterwards (its callable is destroyed before this
    /// returns). Rethrows what the callable throws (the jobs of `run_in_executor` and `submit`
    /// never throw: they keep the exception for their future). Throws `std::bad_function_call`
    /// on an empty job.
    void operator()() {
        std::unique_ptr<detail::job_base> j = std::move(m_job);
        if (!j) throw std::bad_function_call();
        j->run();
    }

    /// Drops the work without running it (as destroying the job does).
    void reset() noexcept {
        if (std::unique_ptr<detail::job_base> j = std::move(m_job)) j->discard();
    }

    /// True unless empty (moved from, run or reset).
    explicit operator bool() const noexcept { return m_job != nullptr; }

    /// \cond INTERNAL
    explicit executor_job(std::unique_ptr<detail::job_base> j) noexcept : m_job(std::move(j)) {}
    /// \endcond

private:
    std::unique_ptr<detail::job_base> m_job;
};

/// The interface `run_in_executor` takes (asyncio's `concurrent.futures.Executor`): something
/// that runs jobs on other threads. Implement `execute` and `shutdown` to plug in your own;
/// `thread_pool_executor` is corio's.
///
/// Every member must be safe to call from any thread.
class executor {
public:
    virtual ~executor() = default;

    /// Queues `job` to run on some thread: it must eventually be called once, or destroyed
    /// unrun (which cancels what waits for it). Throws `std::runtime_error("cannot schedule new
    /// futures after shutdown")` once `shutdown` was called (then `job` is not run).
    virtual void execute(executor_job job) = 0;

    /// Stops accepting jobs (asyncio's `Executor.shutdown`). Jobs already queued still run,
    /// unless `cancel_futures` is true: then queued jobs that have not started are dropped
    /// unrun. With `wait`, returns once every job has finished and the threads have exited.
    /// Idempotent (a later call may still wait, or cancel what is queued).
    virtual void shutdown(bool wait = true, bool cancel_futures = false) = 0;

    /// Runs `fn(args...)` as a job and returns a `std::future` of its result, usable from any
    /// thread without a loop (asyncio's `Executor.submit`). `fn` and `args` are decay-copied as
    /// std::thread does (use `std::ref` for references). The future rethrows what `fn` throws;
    /// it throws `std::future_error` (broken_promise) if the job was dropped unrun by
    /// `shutdown(..., cancel_futures = true)`. Throws what `execute` throws (after shutdown:
    /// `std::runtime_error`).
    template <class F, class... A>
    auto submit(F&& fn, A&&... args)
        -> std::future<std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>> {
        using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>;
        using job_t = detail::submit_job<R, std::decay_t<F>, std::decay_t<A>...>;
        auto job = std::make_unique<job_t>(std::forward<F>(fn), std::forward<A>(args)...);
        std::future<R> result = job->promise.get_future();
        execute(executor_job(std::unique_ptr<detail::job_base>(std::move(job))));
        return result;
    }

protected:
    /// \cond INTERNAL
    executor() = default;
    /// \endcond
};

/// \cond INTERNAL
namespace detail {

/// A thread_pool_executor's state, shared with its worker threads (so a worker never depends on
/// the executor object, which may be destroyed by one of its own jobs).
struct pool_state {
    explicit pool_state(std::size_t max) : max_workers(max) {}
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<executor_job> queue;  // guarded by mutex
    std::vector<std::thread> threads; // guarded by mutex
    std::size_t idle = 0;             // workers waiting for a job; guarded by mutex
    std::size_t max_workers;
    bool shut_down = false; // guarded by mutex
    std::mutex join_mutex;  // one joiner at a time; later ones wait for it
};

/// The pool whose worker is the calling thread, if any (a job calling shutdown(wait) on its
/// own pool cannot wait for itself).
inline thread_local const pool_state* t_current_pool = nullptr;

} // namespace detail
/// \endcond

/// asyncio's (concurrent.futures') `ThreadPoolExecutor`: a pool of up to `max_workers` threads
/// running jobs in the order they were queued.
///
/// Threads are started lazily, as CPython does: a job queued while no worker is idle starts a
/// new thread, until there are `max_workers`; idle threads wait for the next job and live until
/// shutdown. Thread safe: any thread may submit, execute and shut down. The destructor is
/// `shutdown(true)`: it waits for every queued and running job.
///
/// A job that throws when run (only a plain `executor_job` made from a callable can: `submit`
/// and `run_in_executor` keep exceptions for their futures) is reported on stderr as "corio:
/// Exception in executor job: ..." and the worker carries on.
class thread_pool_executor final : public executor {
public:
    /// CPython's default: min(32, number of CPUs + 4).
    static std::size_t default_max_workers() noexcept {
        const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
        return std::min<std::size_t>(32, std::size_t{cpus} + 4);
    }

    /// A pool of at most `max_workers` threads (none started yet). Throws
    /// `std::invalid_argument` for 0 (asyncio's ValueError).
    explicit thread_pool_executor(std::size_t max_workers = default_max_workers())
        : m_state(make_state(max_workers)) {}
    thread_pool_executor(const thread_pool_executor&) = delete;
    thread_pool_executor& operator=(const thread_pool_executor&) = delete;

    /// `shutdown(true)`: waits for every queued and running job. (Destroyed by one of its own
    /// jobs, it cannot wait for itself: its threads then finish the queue and exit on their own.)
    ~thread_pool_executor() override {
        try {
            stop(true, false, true);
        } catch (...) {
            // join() failing is a broken system; nothing sensible to do in a destructor.
        }
    }

    /// See executor::execute. Starts a thread if no worker is idle and fewer than
    /// `max_workers()` exist. Throws `std::runtime_error("cannot schedule new futures after
    /// shutdown")` after shutdown, or the `std::system_error` of starting the first thread.
    void execute(executor_job job) override {
        detail::pool_state& s = *m_state;
        {
            std::lock_guard lock(s.mutex);
            if (s.shut_down) throw std::runtime_error("cannot schedule new futures after shutdown");
            // After queueing, more jobs than idle workers: start one more thread if allowed.
            if (s.queue.size() >= s.idle && s.threads.size() < s.max_workers) {
                try {
                    s.threads.emplace_back(&thread_pool_executor::worker_main, m_state);
                } catch (...) {
                    if (s.threads.empty()) throw; // nobody would ever run the job
                }
            }
            s.queue.push_back(std::move(job));
            // Under the lock: once it is released, the job may run, destroy this executor and
            // let the last worker exit, freeing `s` (a job may own its executor).
            s.wake.notify_one();
        }
    }

    /// See executor::shutdown. Called from one of this pool's own jobs, it never waits.
    void shutdown(bool wait = true, bool cancel_futures = false) override {
        stop(wait, cancel_futures, false);
    }

    /// The limit given to the constructor.
    std::size_t max_workers() const noexcept { return m_state->max_workers; }

    /// How many worker threads exist now (started lazily; 0 before the first job, and once a
    /// shutdown that waited has joined them).
    std::size_t thread_count() const {
        std::lock_guard lock(m_state->mutex);
        return m_state->threads.size();
    }

private:
    static std::shared_ptr<detail::pool_state> make_state(std::size_t max_workers) {
        if (max_workers == 0) throw std::invalid_argument("max_workers must be greater than 0");
        return std::make_shared<detail::pool_state>(max_workers);
    }

    static void worker_main(std::shared_ptr<detail::pool_state> s) {
        detail::t_current_pool = s.get();
        std::unique_lock lock(s->mutex);
        for (;;) {
            if (!s->queue.empty()) {
                executor_job job = std::move(s->queue.front());
                s->queue.pop_front();
                lock.unlock();
                try {
                    job();
                } catch (...) {
                    event_loop::print_report({"Exception in executor job", std::current_exception(), {}});
                }
                lock.lock();
                continue;
            }
            if (s->shut_down) return;
            ++s->idle;
            s->wake.wait(lock);
            --s->idle;
        }
    }

    void stop(bool wait, bool cancel_futures, bool destroying) {
        detail::pool_state& s = *m_state;
        std::deque<executor_job> dropped;
        {
            std::lock_guard lock(s.mutex);
            s.shut_down = true;
            if (cancel_futures) dropped.swap(s.queue);
        }
        s.wake.notify_all();
        dropped.clear(); // unrun: their futures are cancelled
        if (!wait) return;
        if (detail::t_current_pool == &s) {
            // A job of this pool: waiting would wait for itself. If the executor object is going
            // away, its threads must not be left joinable: they finish the queue and exit alone
            // (they own the shared state).
            if (destroying) {
                std::vector<std::thread> threads;
                {
                    std::lock_guard lock(s.mutex);
                    threads.swap(s.threads);
                }
                for (std::thread& t : threads) t.detach();
            }
            return;
        }
        std::lock_guard join_lock(s.join_mutex);
        std::vector<std::thread> threads;
        {
            std::lock_guard lock(s.mutex);
            threads.swap(s.threads);
        }
        for (std::thread& t : threads) t.join();
    }

    std::shared_ptr<detail::pool_state> m_state;
};

/// \cond INTERNAL
namespace detail {

/// What workers post through: the loop, until close() clears it (under the mutex, so a worker
/// is either done with call_soon_threadsafe or never starts it).
struct executor_link {
    explicit executor_link(event_loop* l) noexcept : loop(l) {}
    std::mutex mutex;
    event_loop* loop; // guarded by mutex; null once the loop is closed

    /// Schedules `fn` on the loop; false if the loop is closed (then `fn` never runs, and is
    /// destroyed on the calling thread).
    template <class F>
    bool post(F&& fn) noexcept {
        std::lock_guard lock(mutex);
        if (!loop) return false;
        try {
            loop->call_soon_threadsafe(std::forward<F>(fn));
            return true;
        } catch (...) { // closed meanwhile, or out of memory: nobody can be told
            return false;
        }
    }
};

/// One run_in_executor call, shared by the loop's future and the worker's job. Only `cancelled`
/// is touched by workers; the rest belongs to the loop's thread.
struct executor_call {
    explicit executor_call(event_loop& l) noexcept : loop(&l) {}

    /// Set on the loop thread when the future is cancelled; a worker skips the job if set.
    std::atomic<bool> cancelled{false};

    event_loop* loop;              ///< used on the loop thread only, while it is open
    future_core* target = nullptr; ///< the future, while it exists
    bool external_open = false;    ///< begin_external_work called, end_external_work not yet

    void close_external() noexcept {
        if (external_open) {
            external_open = false;
            loop->end_external_work();
        }
    }
};

/// The future run_in_executor returns: cancelling it stops a job that has not started.
template <class V>
class executor_future_state final : public future_state<V> {
public:
    executor_future_state(event_loop& loop, std::shared_ptr<executor_call> call)
        : future_state<V>(&loop), m_call(std::move(call)) {
        m_call->target = this;
    }
    ~executor_future_state() override { m_call->target = nullptr; }

    bool cancel(std::string msg) override {
        if (this->done()) return false;
        if (!this->loop()) return future_state<V>::cancel(std::move(msg)); // closed: throws
        m_call->cancelled.store(true, std::memory_order_release);
        const bool r = future_state<V>::cancel(std::move(msg));
        m_call->close_external(); // the loop no longer waits for the job
        return r;
    }

private:
    std::shared_ptr<executor_call> m_call;
};

/// The job of one run_in_executor call.
template <class V, class F, class... A>
class call_job final : public job_base {
public:
    template <class G, class... B>
    call_job(std::shared_ptr<executor_link> link, std::shared_ptr<executor_call> call, G&& fn,
             B&&... args)
        : m_link(std::move(link)), m_call(std::move(call)), m_fn(std::forward<G>(fn)),
          m_args(std::forward<B>(args)...) {}

    void run() override {
        if (m_call->cancelled.load(std::memory_order_acquire)) return; // cancelled before start
        std::optional<slot> value;
        std::exception_ptr error;
        try {
            if constexpr (std::is_void_v<V>) {
                std::apply([this](auto&... a) { std::invoke(std::move(m_fn), std::move(a)...); },
                           m_args);
                value.emplace(true);
            } else {
                value.emplace(std::apply(
                    [this](auto&... a) -> decltype(auto) {
                        return std::invoke(std::move(m_fn), std::move(a)...);
                    },
                    m_args));
            }
        } catch (...) {
            error = std::current_exception();
        }
        // Runs on the loop thread, if the loop is still open.
        m_link->post([c = std::move(m_call), v = std::move(value), e = std::move(error)]() mutable {
            deliver(*c, v, e);
        });
    }

    void discard() noexcept override {
        if (m_call->cancelled.load(std::memory_order_acquire)) return;
        m_link->post([c = std::move(m_call)] {
            c->close_external();
            if (c->target && !c->target->done()) c->target->cancel();
        });
    }

private:
    using slot = std::conditional_t<std::is_void_v<V>, bool, V>;

    /// On the loop thread: completes the future, unless it was cancelled or nobody holds it.
    static void deliver(executor_call& c, std::optional<slot>& v, std::exception_ptr& e) {
        c.close_external();
        auto* st = static_cast<executor_future_state<V>*>(c.target);
        if (!st || st->done()) return;
        if (e) {
            st->set_exception(std::move(e));
        } else if constexpr (std::is_void_v<V>) {
            st->set_value();
        } else {
            st->set_value(std::move(*v));
        }
    }

    std::shared_ptr<executor_link> m_link;
    std::shared_ptr<executor_call> m_call;
    F m_fn;
    std::tuple<A...> m_args;
};

/// What run_in_executor's future holds for `fn(args...)` (a reference result is copied).
template <class F, class... A>
using executor_result_t =
    std::remove_cvref_t<std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>>;

/// A prepared call: its future, and the job to hand to an executor.
template <class V>
struct prepared_call {
    future<V> fut;
    executor_job job;
    std::shared_ptr<executor_call> call;
};

/// The loop's executor members (friend of event_loop).
struct executor_ops {
    /// close()'s hook: cut the workers off the loop, then shut the default executor down
    /// without waiting (asyncio's BaseEventLoop.close).
    static void on_close(event_loop& loop) noexcept {
        if (loop.m_executor_link) {
            std::lock_guard lock(loop.m_executor_link->mutex);
            loop.m_executor_link->loop = nullptr;
        }
        loop.m_executor_shutdown_called = true;
        if (loop.m_default_executor) {
            try {
                loop.m_default_executor->shutdown(false);
            } catch (...) {
                loop.call_exception_handler(
                    {"error while shutting down the default executor", std::current_exception(), {}});
            }
        }
    }

    static const std::shared_ptr<executor_link>& link(event_loop& loop) {
        if (!loop.m_executor_link) {
            loop.m_executor_link = std::make_shared<executor_link>(&loop);
            loop.m_close_executors = &on_close;
        }
        return loop.m_executor_link;
    }

    static executor& default_executor(event_loop& loop) {
        if (loop.m_executor_shutdown_called)
            throw std::runtime_error("Executor shutdown has been called");
        if (!loop.m_default_executor) {
            loop.m_default_executor = std::make_shared<thread_pool_executor>();
            loop.m_close_executors = &on_close;
        }
        return *loop.m_default_executor;
    }

    static bool has_default_executor(const event_loop& loop) noexcept {
        return loop.m_default_executor != nullptr;
    }

    /// The future and job of `fn(args...)`; the loop waits (virtual time) until the job reports.
    template <class F, class... A>
    static auto prepare(event_loop& loop, F&& fn, A&&... args) {
        using V = executor_result_t<F, A...>;
        using job_t = call_job<V, std::decay_t<F>, std::decay_t<A>...>;
        const std::shared_ptr<executor_link>& l = link(loop);
        auto call = std::make_shared<executor_call>(loop);
        auto fut = future<V>::adopt(new executor_future_state<V>(loop, call));
        executor_job job(std::unique_ptr<job_base>(
            new job_t(l, call, std::forward<F>(fn), std::forward<A>(args)...)));
        loop.begin_external_work();
        call->external_open = true;
        return prepared_call<V>{std::move(fut), std::move(job), std::move(call)};
    }

    /// Hands the job to `ex`; if that throws, the loop stops waiting for it.
    template <class V>
    static void submit(executor& ex, prepared_call<V>& p) {
        try {
            ex.execute(std::move(p.job));
        } catch (...) {
            p.call->close_external();
            throw;
        }
    }

    /// asyncio's loop.shutdown_default_executor(): executor.shutdown(wait=True) on a thread of
    /// its own, while the loop keeps running.
    static task<> shutdown_default(event_loop& loop) {
        loop.m_executor_shutdown_called = true;
        std::shared_ptr<executor> ex = loop.m_default_executor;
        if (!ex) co_return;
        auto shut = [ex] { ex->shutdown(true); };
        prepared_call<void> p = prepare(loop, std::move(shut));
        // Joined once it has reported; left to finish alone (detached) if we are cancelled
        // first: it holds the executor and the token, never the loop.
        struct thread_guard {
            std::thread t;
            bool reported = false;
            ~thread_guard() {
                if (!t.joinable()) return;
                if (reported) t.join();
                else t.detach();
            }
        } guard;
        guard.t = std::thread([job = std::move(p.job)]() mutable { job(); });
        co_await p.fut.wait_done(); // cancelling us does not cancel the shutdown
        guard.reported = true;
        guard.t.join();
        p.fut.result(); // rethrows what shutdown threw
    }
};

} // namespace detail
/// \endcond

// --- Loop members -----------------------------------------------------------------------------

/// asyncio's `loop.run_in_executor(executor, func, *args)`: runs `fn(args...)` on `ex` (on the
/// loop's default `thread_pool_executor` if `ex` is null, created on first use) and returns a
/// `future<R>` of this loop, `R` being what `fn` returns (`void` gives `future<void>`; a
/// reference result is copied). The future gets the result or the exception `fn` threw, on the
/// loop's thread.
///
/// `fn` and `args` are decay-copied into the job (use `std::ref` for references) and called and
/// destroyed on a worker thread; `ex` must outlive the job. Cancelling the future (or the task
/// awaiting it) before the job starts means it never runs; a running job finishes and its
/// result is dropped (see the file comment of corio/executor.hpp).
///
/// Throws `std::runtime_error` if the loop is closed, if `ex` is null after
/// `shutdown_default_executor()` or `close()` ("Executor shutdown has been called"), and what
/// `ex->execute` throws (after `ex->shutdown`: "cannot schedule new futures after shutdown").
template <class F, class... A>
auto event_loop::run_in_executor(executor* ex, F&& fn, A&&... args) {
    using V = detail::executor_result_t<F, A...>;
    static_assert(!detail::is_task<V>::value,
                  "corio: run_in_executor runs a plain function on another thread; await a "
                  "coroutine (task) on the loop instead");
    check_usable();
    executor& target = ex ? *ex : detail::executor_ops::default_executor(*this);
    detail::prepared_call<V> p =
        detail::executor_ops::prepare(*this, std::forward<F>(fn), std::forward<A>(args)...);
    detail::executor_ops::submit(target, p);
    return std::move(p.fut);
}

/// asyncio's `loop.set_default_executor(executor)`: the executor `run_in_executor(nullptr, ...)`
/// and `to_thread` use from now on. The loop shares ownership; the executor it replaces is
/// released, not shut down (if the loop was its last owner, its destructor waits for its
/// jobs). `close()` shuts the default executor down without waiting. Throws
/// `std::invalid_argument` for a null pointer.
inline void event_loop::set_default_executor(std::shared_ptr<executor> ex) {
    if (!ex) throw std::invalid_argument("corio: set_default_executor needs an executor");
    std::shared_ptr<executor> old = std::exchange(m_default_executor, std::move(ex));
    m_close_executors = &detail::executor_ops::on_close;
}

/// asyncio's `loop.shutdown_default_executor()` (3.9): `co_await` it to shut the default
/// executor down and wait for its jobs; the loop keeps running meanwhile (the waiting happens on
/// a thread of its own). Afterwards `run_in_executor(nullptr, ...)` and `to_thread` throw
/// `std::runtime_error("Executor shutdown has been called")`. Does nothing more if no default
/// executor was ever made. Cancelling the awaiting task stops the waiting, not the shutdown.
/// `corio::run` calls it before closing its loop. (asyncio's `timeout=` is not supported.)
inline auto event_loop::shutdown_default_executor() {
    return detail::executor_ops::shutdown_default(*this);
}

// --- to_thread ----------------------------------------------------------------------------------

/// `co_await corio::to_thread(fn, args...)`: asyncio.to_thread. Runs `fn(args...)` on the
/// running loop's default executor and gives its result (rethrows its exception). Lazy, like a
/// coroutine: nothing is submitted until it is awaited (or scheduled with create_task).
///
/// `fn` and `args` are copied (moved from rvalues) as by std::thread: pass `std::ref(x)` to hand
/// over a reference. Cancellation: a job that has not started never runs; a running one runs to
/// completion and its result is dropped; the awaiting task sees `cancelled_error` at once.
/// Throws `std::runtime_error` outside a loop, or after the default executor was shut down.
template <class F, class... A>
task<detail::executor_result_t<F, A...>> to_thread(F fn, A... args) {
    auto fut = get_running_loop().run_in_executor(nullptr, std::move(fn), std::move(args)...);
    if constexpr (std::is_void_v<detail::executor_result_t<F, A...>>) {
        co_await std::move(fut);
    } else {
        co_return co_await std::move(fut);
    }
}

} // namespace corio
