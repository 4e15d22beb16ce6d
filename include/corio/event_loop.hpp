#pragma once
/// \file corio/event_loop.hpp
/// `corio::event_loop`: asyncio's event loop. One per thread; it runs callbacks and task steps
/// from a FIFO ready queue, fires timers from a heap, and waits for I/O, wake-ups from other
/// threads and signals through its backend (epoll on Linux).
///
/// ## One iteration (as asyncio's _run_once)
/// 1. Wait for I/O: not at all if work is ready, until the next timer otherwise (forever if
///    there is none). Ready fds queue their reader/writer callbacks.
/// 2. Queue callbacks posted from other threads, and handlers of signals that arrived.
/// 3. Queue the callbacks of timers whose deadline passed, earliest first.
/// 4. Run exactly the callbacks queued so far, in order; what they schedule runs next iteration.
///
/// ## Thread safety
/// Every member must be called on the thread running the loop, except `call_soon_threadsafe`
/// (and `handle::cancel` of the handle it returns), which any thread may call at any time.
///
/// ## Exceptions
/// An exception escaping a callback goes to the exception handler and the loop carries on.
/// System errors of the backend (`std::system_error`) escape `run_forever`.

#include <corio/backend/backend.hpp>
#include <corio/detail/callback.hpp>
#include <corio/detail/future_core.hpp>
#include <corio/detail/loop_ops.hpp>
#include <corio/detail/ready_queue.hpp>
#include <corio/detail/signals.hpp>
#include <corio/detail/task_core.hpp>
#include <corio/detail/timer_heap.hpp>
#include <corio/exceptions.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <source_location>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include <csignal>
#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#endif

namespace corio {

template <class T>
class future;
class executor; // corio/executor.hpp
/// \cond INTERNAL
namespace detail {
struct executor_ops;
struct executor_link;
} // namespace detail
/// \endcond

/// What the loop calls for errors it cannot give to anyone else (an exception escaping a
/// callback, a task exception nobody retrieved, a task destroyed while pending, slow callbacks
/// in debug mode). It must not throw; if it does, the default handler reports that too.
using exception_handler = std::function<void(event_loop&, const exception_context&)>;

/// How to build a loop.
struct loop_options {
    /// Debug mode (also switched on by the environment variable CORIO_DEBUG=1).
    bool debug = false;
    /// Virtual time (the test clock, see corio/testing.hpp): `time()` stands still while any
    /// work is ready and jumps straight to the next timer when every task is idle, so sleeps and
    /// timeouts of hours take microseconds and always happen in the same order.
    bool virtual_time = false;
};

/// A scheduled callback (`call_soon`, `call_soon_threadsafe`); asyncio's `Handle`.
/// Copyable; the callback lives as long as the loop needs it, whatever happens to handles.
class handle {
public:
    /// An empty handle (refers to no callback).
    handle() = default;
    ///@{
    /// Copies refer to the same callback.
    handle(const handle& o) noexcept : m_node(o.m_node) {
        if (m_node) m_node->add_ref();
    }
    handle(handle&& o) noexcept : m_node(std::exchange(o.m_node, nullptr)) {}
    handle& operator=(handle o) noexcept {
        std::swap(m_node, o.m_node);
        return *this;
    }
    ///@}
    /// Releases this reference; the callback itself stays scheduled.
    ~handle() {
        if (m_node) m_node->release();
    }

    /// The callback will not run (if it has not yet). Idempotent. For a timer handle this must be
    /// called on the loop's thread; a `call_soon_threadsafe` handle may be cancelled anywhere.
    void cancel() noexcept;
    /// True once cancel() was called on a handle of this callback.
    bool cancelled() const noexcept { return m_node && m_node->cancelled(); }
    /// True unless the handle is empty.
    explicit operator bool() const noexcept { return m_node != nullptr; }

    /// \cond INTERNAL
protected:
    explicit handle(detail::callback_node* adopt) noexcept : m_node(adopt) {}
    detail::callback_node* m_node = nullptr;
    friend class event_loop;
    /// \endcond
};

/// A callback scheduled for a time (`call_later`, `call_at`); asyncio's `TimerHandle`.
class timer_handle : public handle {
public:
    /// An empty handle.
    timer_handle() = default;
    /// When it is (or was) due, in loop time (seconds).
    double when() const noexcept {
        return m_node ? static_cast<double>(m_node->when) / 1e9 : 0.0;
    }

private:
    using handle::handle;
    friend class event_loop;
};

/// The event loop (asyncio's `AbstractEventLoop`). The file comment of corio/event_loop.hpp
/// says what one iteration does, and which members other threads may call (only
/// `call_soon_threadsafe`).
///
/// Programs rarely build one: `corio::run` makes a loop, runs `main` on it and closes it, and
/// code running on a loop reaches it with `get_running_loop()`.
class event_loop {
public:
    ///@{
    /// A new loop, not running. Debug mode is on if `opts.debug` is set or the environment
    /// variable CORIO_DEBUG is set to anything but "" or "0".
    event_loop() : event_loop(loop_options{}) {}
    explicit event_loop(loop_options opts) : m_virtual(opts.virtual_time), m_debug(opts.debug) {
        if (const char* env = std::getenv("CORIO_DEBUG"); env && env[0] && std::strcmp(env, "0"))
            m_debug = true;
        if (m_virtual) m_virtual_now = real_now_ns();
    }
    ///@}
    event_loop(const event_loop&) = delete;
    event_loop& operator=(const event_loop&) = delete;

    /// Closes the loop if it is not closed (see close()). Destroying a running loop is a
    /// programming error and terminates.
    ~event_loop() {
        if (m_running) std::terminate();
        close();
    }

    // --- Running and stopping -------------------------------------------------------------

    /// Runs until `aw` completes and returns its value (or rethrows its exception). A `task`,
    /// coroutine or awaitable is wrapped in a task first. Throws `std::runtime_error` if the loop
    /// stopped before `aw` finished, if it is closed, or if a loop already runs on this thread.
    template <class Aw>
    auto run_until_complete(Aw&& aw);

    /// Runs until `stop()` is called. The callbacks already queued when `stop()` is called
    /// still run (asyncio's semantics).
    void run_forever() {
        detail::loop_ops::check_open(this);
        if (m_running) throw std::runtime_error("This event loop is already running");
        if (t_running_loop)
            throw std::runtime_error("Cannot run the event loop while another loop is running");
        struct running_guard {
            event_loop& loop;
            explicit running_guard(event_loop& l) : loop(l) {
                loop.m_running = true;
                loop.m_thread_id.store(std::this_thread::get_id(), std::memory_order_relaxed);
                t_running_loop = &loop;
            }
            ~running_guard() {
                loop.m_stopping = false;
                loop.m_running = false;
                loop.m_thread_id.store(std::thread::id(), std::memory_order_relaxed);
                t_running_loop = nullptr;
            }
        } guard(*this);
        for (;;) {
            run_once();
            if (m_stopping) break;
        }
    }

    /// Asks `run_forever` to return after the current iteration.
    void stop() noexcept { m_stopping = true; }
    /// True while `run_forever` (or `run_until_complete`) runs.
    bool is_running() const noexcept { return m_running; }
    /// True once `close()` was called.
    bool is_closed() const noexcept { return m_closed; }

    /// Closes the loop: drops scheduled callbacks and timers, destroys still-pending tasks
    /// (reporting "Task was destroyed but it is pending!" for each), restores signal
    /// dispositions, and detaches remaining futures. Idempotent. Throws `std::runtime_error`
    /// if the loop is running. `corio::run` cancels and finishes leftover tasks before this.
    /// The default executor is shut down without waiting; jobs finishing later are dropped
    /// (see corio/executor.hpp).
    void close();

    /// Monotonic time in seconds (virtual under the test clock).
    double time() const noexcept { return static_cast<double>(now_ns()) / 1e9; }

    /// The loop of the calling thread's running `run_forever`, or null.
    static event_loop* running() noexcept { return t_running_loop; }

    // --- Callbacks ------------------------------------------------------------------------

    /// Schedules `fn()` for the next iteration, after everything already scheduled (FIFO).
    template <class F>
    handle call_soon(F&& fn) {
        check_usable();
        detail::callback_node* n = detail::make_callback(std::forward<F>(fn));
        enqueue_callback(n);
        return handle(n);
    }

    /// Schedules `fn()` after `delay` (a `std::chrono::duration`). Callbacks due at the same
    /// time run in the order they were scheduled.
    template <class Rep, class Period, class F>
    timer_handle call_later(std::chrono::duration<Rep, Period> delay, F&& fn) {
        return call_at_ns(
            now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(delay).count(),
            std::forward<F>(fn));
    }

    /// Schedules `fn()` at loop time `when` (seconds, as `time()` returns).
    template <class F>
    timer_handle call_at(double when, F&& fn) {
        return call_at_ns(static_cast<std::int64_t>(std::llround(when * 1e9)),
                          std::forward<F>(fn));
    }

    /// The one member safe from any thread: schedules `fn()` on the loop's thread and wakes the
    /// loop if it is waiting. Throws `std::runtime_error` once the loop is closed.
    template <class F>
    handle call_soon_threadsafe(F&& fn) {
        detail::callback_node* n = detail::make_callback(std::forward<F>(fn));
        n->add_ref(); // the queue's reference
        {
            std::lock_guard lock(m_ts_mutex);
            if (m_ts_closed) {
                n->release();
                n->release();
                throw std::runtime_error("Event loop is closed");
            }
            m_ts_queue.push_back(n);
        }
        if (!m_ts_pending.exchange(true, std::memory_order_acq_rel)) m_backend.notify();
        return handle(n);
    }

    // --- Tasks and futures ----------------------------------------------------------------

    /// Wraps `aw` (a `task<T>`, a callable returning an awaitable, or any awaitable) in a task
    /// scheduled on this loop, and returns its handle (`task_handle<T>`). See task.hpp.
    template <class Aw>
    auto create_task(Aw&& aw, std::string name = {},
                     std::source_location where = std::source_location::current());

    /// A new pending future of this loop.
    template <class T = void>
    future<T> create_future();

    // --- Executors ------------------------------------------------------------------------
    // Declared here so that they read as asyncio's loop methods; defined (with their full
    // documentation) in corio/executor.hpp, which must be included to use them (corio/corio.hpp
    // and corio/runners.hpp include it).

    /// asyncio's `loop.run_in_executor(executor, func, *args)`: runs `fn(args...)` on `ex` (the
    /// default thread pool if null) and returns a `future<R>` of this loop; see
    /// corio/executor.hpp.
    template <class F, class... A>
    auto run_in_executor(executor* ex, F&& fn, A&&... args);
    /// asyncio's `loop.set_default_executor(executor)`: see corio/executor.hpp.
    void set_default_executor(std::shared_ptr<executor> ex);
    /// asyncio's `loop.shutdown_default_executor()`, to `co_await`: see corio/executor.hpp.
    auto shutdown_default_executor();

    // --- I/O readiness --------------------------------------------------------------------

    /// Calls `fn()` whenever `fd` is readable, until remove_reader(fd); replaces an earlier
    /// reader of `fd`. Throws `std::system_error` if the fd cannot be watched (e.g. a regular
    /// file), `std::invalid_argument` for a negative fd.
    template <class F>
    void add_reader(int fd, F&& fn) {
        watch(fd, &fd_watch::reader, backend::io_events::read, std::forward<F>(fn));
    }
    /// Stops watching `fd` for reading; false if no reader was registered.
    bool remove_reader(int fd) { return unwatch(fd, &fd_watch::reader, backend::io_events::read); }

    /// As add_reader, for writability.
    template <class F>
    void add_writer(int fd, F&& fn) {
        watch(fd, &fd_watch::writer, backend::io_events::write, std::forward<F>(fn));
    }
    /// Stops watching `fd` for writing; false if no writer was registered.
    bool remove_writer(int fd) { return unwatch(fd, &fd_watch::writer, backend::io_events::write); }

    // --- Networking: transports and protocols ---------------------------------------------
    // Declared here so that they read as asyncio's loop methods; each forwards to the free
    // function of the same name, defined (with its full documentation) in corio/net.hpp or
    // corio/datagram.hpp, which must be included to use it (corio/corio.hpp includes both).
    // The returned task runs on the loop that awaits it.

    /// asyncio's `loop.create_connection(factory, host, port, ...)`: see corio/net.hpp.
    template <class Factory, class... Args>
    auto create_connection(Factory&& factory, Args&&... args);
    /// asyncio's `loop.create_server(factory, host, port, ...)`: see corio/net.hpp.
    template <class Factory, class... Args>
    auto create_server(Factory&& factory, Args&&... args);
    /// asyncio's `loop.create_unix_connection(factory, path)`: see corio/net.hpp.
    template <class Factory, class... Args>
    auto create_unix_connection(Factory&& factory, Args&&... args);
    /// asyncio's `loop.create_unix_server(factory, path)`: see corio/net.hpp.
    template <class Factory, class... Args>
    auto create_unix_server(Factory&& factory, Args&&... args);
    /// asyncio's `loop.create_datagram_endpoint(factory, local_addr, remote_addr, ...)`: see
    /// corio/datagram.hpp.
    template <class Factory, class... Args>
    auto create_datagram_endpoint(Factory&& factory, Args&&... args);

    // --- Signals --------------------------------------------------------------------------

    /// Calls `fn()` on this loop (as a callback, never inside the signal handler) each time
    /// `signum` arrives. Replaces an earlier handler of this loop. Throws
    /// `std::invalid_argument` for a signal that cannot be caught, `std::runtime_error` if
    /// another loop handles it.
    template <class F>
    void add_signal_handler(int signum, F&& fn) {
        detail::loop_ops::check_open(this);
        check_signal(signum);
        detail::signal_slot& slot = detail::g_signal_slots[signum];
        const int mine = m_backend.notify_fd();
        int owner = slot.wake_fd.load();
        if (owner != -1 && owner != mine)
            throw std::runtime_error("corio: signal " + std::to_string(signum) +
                                     " is already handled by another event loop");
        detail::callback_ref node(detail::make_callback(std::forward<F>(fn)));
        node->persistent = true;
        if (m_signals.empty()) m_signals.resize(detail::signal_limit);
        signal_entry& e = m_signals[static_cast<std::size_t>(signum)];
        if (!e.handler) {
            struct sigaction sa{};
            sa.sa_handler = &detail::corio_signal_handler;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = SA_RESTART;
            slot.pending.store(false);
            slot.wake_fd.store(mine);
            if (::sigaction(signum, &sa, &e.previous) != 0) {
                int err = errno;
                slot.wake_fd.store(-1);
                throw std::system_error(err, std::generic_category(), "sigaction");
            }
            ++m_signal_count;
        } else {
            e.handler->mark_cancelled();
        }
        e.handler = std::move(node);
    }

    /// Restores the disposition the signal had before; false if this loop did not handle it.
    bool remove_signal_handler(int signum) {
        if (signum <= 0 || signum >= detail::signal_limit || m_signals.empty()) return false;
        signal_entry& e = m_signals[static_cast<std::size_t>(signum)];
        if (!e.handler) return false;
        ::sigaction(signum, &e.previous, nullptr);
        detail::g_signal_slots[signum].wake_fd.store(-1);
        detail::g_signal_slots[signum].pending.store(false);
        e.handler->mark_cancelled();
        e.handler.reset();
        --m_signal_count;
        return true;
    }

    // --- Errors and debugging -------------------------------------------------------------

    /// Replaces the exception handler (an empty function restores the default).
    void set_exception_handler(exception_handler h) { m_handler = std::move(h); }
    /// The handler set with set_exception_handler; empty while the default one is in use.
    const exception_handler& get_exception_handler() const noexcept { return m_handler; }

    /// Gives `ctx` to the exception handler (the default one if none is set).
    void call_exception_handler(const exception_context& ctx) noexcept {
        if (m_handler) {
            try {
                m_handler(*this, ctx);
                return;
            } catch (...) {
                default_exception_handler(
                    {"Unhandled error in exception handler", std::current_exception(), {}});
            }
        }
        default_exception_handler(ctx);
    }

    /// Writes one line to stderr: "corio: MESSAGE [task NAME]: EXCEPTION-TYPE: WHAT".
    void default_exception_handler(const exception_context& ctx) noexcept { print_report(ctx); }

    /// Debug mode: reports slow callbacks and steps (see slow_callback_duration), says where
    /// leaked tasks were created, and makes call_soon, call_later, call_at, create_task and
    /// add_reader/add_writer throw `std::runtime_error` when called from a thread other than the
    /// one running the loop.
    void set_debug(bool on) noexcept { m_debug = on; }
    /// True in debug mode.
    bool get_debug() const noexcept { return m_debug; }

    /// In debug mode, callbacks and task steps taking longer than this are reported.
    std::chrono::nanoseconds slow_callback_duration = std::chrono::milliseconds(100);

    /// True for a loop built with `loop_options::virtual_time`.
    bool uses_virtual_time() const noexcept { return m_virtual; }

    ///@{
    /// For executors (thread-safe): while work submitted to another thread is outstanding, a
    /// virtual-time loop waits for it for real instead of jumping to the next timer.
    void begin_external_work() noexcept { m_external.fetch_add(1, std::memory_order_acq_rel); }
    void end_external_work() noexcept { m_external.fetch_sub(1, std::memory_order_acq_rel); }
    ///@}

    /// The default handler's output: writes `ctx` as one line to stderr (also used for reports
    /// that come after the loop is gone).
    static void print_report(const exception_context& ctx) noexcept;

private:
    friend struct detail::loop_ops;
    friend class handle;

    struct fd_watch {
        detail::callback_ref reader;
        detail::callback_ref writer;
        backend::io_events registered = backend::io_events::none;
    };
    struct signal_entry {
        detail::callback_ref handler;
        struct sigaction previous{};
    };

    static inline thread_local constinit event_loop* t_running_loop = nullptr;

    static std::int64_t real_now_ns() noexcept {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }
    std::int64_t now_ns() const noexcept { return m_virtual ? m_virtual_now : real_now_ns(); }

    template <class F>
    timer_handle call_at_ns(std::int64_t when, F&& fn) {
        check_usable();
        detail::callback_node* n = detail::make_callback(std::forward<F>(fn));
        n->loop = this;
        n->add_ref(); // the heap's reference
        m_timers.push(n, when);
        return timer_handle(n);
    }

    /// The loop is open, and (in debug mode, as asyncio's _check_thread) the caller is on the
    /// thread running it, if it runs.
    void check_usable() const {
        detail::loop_ops::check_open(this);
        if (m_debug) {
            const std::thread::id owner = m_thread_id.load(std::memory_order_relaxed);
            if (owner != std::thread::id() && owner != std::this_thread::get_id())
                throw std::runtime_error("Non-thread-safe operation invoked on an event loop other "
                                         "than the current one");
        }
    }

    /// Queues a callback node; the queue takes a reference, released when it has run.
    void enqueue_callback(detail::callback_node* n) noexcept {
        if (n->queued) return;
        n->queued = true;
        n->add_ref();
        m_ready.push(n);
    }

    template <class F>
    void watch(int fd, detail::callback_ref fd_watch::*slot, backend::io_events ev, F&& fn) {
        check_usable();
        if (fd < 0) throw std::invalid_argument("corio: invalid file descriptor");
        detail::callback_ref node(detail::make_callback(std::forward<F>(fn)));
        node->persistent = true;
        if (static_cast<std::size_t>(fd) >= m_fds.size()) m_fds.resize(static_cast<std::size_t>(fd) + 1);
        fd_watch& w = m_fds[static_cast<std::size_t>(fd)];
        const backend::io_events want = w.registered | ev;
        m_backend.set_interest(fd, w.registered, want); // throws before anything changed
        if (!backend::any(w.registered)) ++m_watched_fds;
        w.registered = want;
        if (w.*slot) (w.*slot)->mark_cancelled();
        w.*slot = std::move(node);
    }

    bool unwatch(int fd, detail::callback_ref fd_watch::*slot, backend::io_events ev) {
        if (fd < 0 || static_cast<std::size_t>(fd) >= m_fds.size()) return false;
        fd_watch& w = m_fds[static_cast<std::size_t>(fd)];
        if (!(w.*slot)) return false;
        (w.*slot)->mark_cancelled();
        (w.*slot).reset();
        const backend::io_events want = w.registered & ~ev;
        const backend::io_events old = w.registered;
        w.registered = want;
        if (!backend::any(want)) --m_watched_fds;
        if (!m_closed) m_backend.set_interest(fd, old, want);
        return true;
    }

    static void check_signal(int signum) {
        if (signum <= 0 || signum >= detail::signal_limit)
            throw std::invalid_argument("corio: invalid signal number " + std::to_string(signum));
        if (signum == SIGKILL || signum == SIGSTOP)
            throw std::invalid_argument("corio: signal " + std::to_string(signum) +
                                        " cannot be caught");
    }

    void on_io(int fd, backend::io_events ready) noexcept {
        if (fd < 0 || static_cast<std::size_t>(fd) >= m_fds.size()) return;
        fd_watch& w = m_fds[static_cast<std::size_t>(fd)];
        if (backend::any(ready & backend::io_events::read) && w.reader) enqueue_callback(w.reader.get());
        if (backend::any(ready & backend::io_events::write) && w.writer) enqueue_callback(w.writer.get());
    }

    void drain_threadsafe() {
        if (!m_ts_pending.load(std::memory_order_acquire)) return;
        m_ts_pending.store(false, std::memory_order_release);
        {
            std::lock_guard lock(m_ts_mutex);
            m_ts_queue.swap(m_ts_taken);
        }
        for (detail::callback_node* n : m_ts_taken) {
            n->queued = true; // its queue reference was taken by call_soon_threadsafe
            m_ready.push(n);
        }
        m_ts_taken.clear();
    }

    void dispatch_signals() noexcept {
        if (m_signal_count == 0) return;
        for (int sig = 1; sig < detail::signal_limit; ++sig) {
            signal_entry& e = m_signals[static_cast<std::size_t>(sig)];
            if (e.handler && detail::g_signal_slots[sig].pending.exchange(false))
                enqueue_callback(e.handler.get());
        }
    }

    void run_once() {
        std::int64_t timeout = -1;
        if (!m_ready.empty() || m_stopping) timeout = 0;
        else if (!m_timers.empty()) timeout = std::max<std::int64_t>(0, m_timers.top_when() - now_ns());

        bool jump = false; // virtual time: jump to the next timer if nothing else happens
        if (m_virtual && timeout > 0) {
            if (m_external.load(std::memory_order_acquire) == 0) {
                timeout = 0;
                jump = true;
            } else {
                timeout = -1; // wait for the other thread's call_soon_threadsafe
            }
        }
        // Without watched fds, only a blocking wait needs the kernel: wake-ups and signals are
        // also flagged in memory, so a busy loop makes no syscall per iteration.
        if (timeout != 0 || m_watched_fds > 0)
            m_backend.poll(timeout, [this](int fd, backend::io_events ev) { on_io(fd, ev); });
        drain_threadsafe();
        dispatch_signals();

        if (jump && m_ready.empty()) m_virtual_now = std::max(m_virtual_now, m_timers.top_when());
        if (!m_timers.empty()) {
            const std::int64_t now = now_ns();
            while (!m_timers.empty() && m_timers.top_when() <= now) {
                detail::timer_node* t = m_timers.pop();
                t->fire(t);
            }
        }

        for (std::size_t n = m_ready.size(); n > 0 && !m_ready.empty(); --n) run_node(m_ready.pop());
    }

    void run_node(detail::ready_node* n) noexcept {
        if (!m_debug) {
            run_guarded(n);
            return;
        }
        const bool is_task = detail::task_core::is_step(n);
        std::string name = is_task ? static_cast<detail::task_core*>(n)->get_name() : "callback";
        const std::int64_t t0 = real_now_ns();
        run_guarded(n); // a task may be gone after its last step: only `name` is used below
        const std::int64_t dt = real_now_ns() - t0;
        if (dt >= slow_callback_duration.count()) {
            char secs[32];
            std::snprintf(secs, sizeof secs, "%.3f", static_cast<double>(dt) / 1e9);
            call_exception_handler({"Executing " + name + " took " + secs + " seconds", nullptr,
                                    is_task ? name : std::string()});
        }
    }

    void run_guarded(detail::ready_node* n) noexcept {
        try {
            n->run(n);
        } catch (...) {
            call_exception_handler({"Exception in callback", std::current_exception(), {}});
        }
    }

    /// Empties the ready queue without running anything (close()).
    void clear_ready() noexcept {
        while (!m_ready.empty()) {
            detail::ready_node* n = m_ready.pop();
            if (detail::task_core::is_step(n)) {
                static_cast<detail::task_core*>(n)->unqueue();
            } else {
                auto* c = static_cast<detail::callback_node*>(n);
                c->queued = false;
                c->drop_callable(); // free captures now, even if a handle keeps the node
                c->release();
            }
        }
    }

    std::vector<detail::task_core*> pending_tasks() const {
        std::vector<detail::task_core*> out;
        for (detail::future_core* f = m_live_head; f; f = f->live_next)
            if (detail::task_core* t = f->as_task(); t && !f->done()) out.push_back(t);
        return out;
    }

    backend::default_backend m_backend;
    detail::ready_queue m_ready;
    detail::timer_heap m_timers;
    std::vector<fd_watch> m_fds;
    std::size_t m_watched_fds = 0;
    std::vector<signal_entry> m_signals;
    int m_signal_count = 0;
    detail::future_core* m_live_head = nullptr;

    std::mutex m_ts_mutex;
    std::vector<detail::callback_node*> m_ts_queue; // guarded by m_ts_mutex
    bool m_ts_closed = false;                        // guarded by m_ts_mutex
    std::vector<detail::callback_node*> m_ts_taken;
    std::atomic<bool> m_ts_pending{false};
    std::atomic<int> m_external{0};
    std::atomic<std::thread::id> m_thread_id{}; ///< the thread in run_forever, if any

    exception_handler m_handler;
    std::int64_t m_virtual_now = 0;
    bool m_virtual = false;
    bool m_debug = false;
    bool m_running = false;
    bool m_stopping = false;
    bool m_closed = false;

    // Executors (corio/executor.hpp; set only once one is used). Workers post through
    // m_executor_link, whose loop pointer close() clears: a job finishing after close() (or
    // after the loop is gone) never touches the loop. m_close_executors is close()'s hook.
    friend struct detail::executor_ops;
    std::shared_ptr<executor> m_default_executor;
    std::shared_ptr<detail::executor_link> m_executor_link;
    void (*m_close_executors)(event_loop&) noexcept = nullptr;
    bool m_executor_shutdown_called = false;

    // Per-loop objects of corio's layers (see loop_ops::add_attachment), destroyed by close().
    struct attachment {
        const void* key;
        std::shared_ptr<void> value;
    };
    std::vector<attachment> m_attachments;
};

// --- get_running_loop ------------------------------------------------------------------------

/// The loop running in this thread; throws `std::runtime_error("no running event loop")`
/// outside one (asyncio's RuntimeError).
inline event_loop& get_running_loop() {
    event_loop* loop = event_loop::running();
    if (!loop) throw std::runtime_error("no running event loop");
    return *loop;
}

// --- Implementation ---------------------------------------------------------------------------

inline void handle::cancel() noexcept {
    if (!m_node) return;
    m_node->mark_cancelled();
    if (m_node->in_heap()) { // a pending timer leaves the heap now, and frees its callable
        detail::loop_ops::remove_timer(*m_node->loop, m_node);
        m_node->drop_callable();
        m_node->release(); // the heap's reference (ours keeps the node alive)
    }
}

inline void event_loop::close() {
    if (m_running) throw std::runtime_error("Cannot close a running event loop");
    if (m_closed) return;
    if (m_close_executors) m_close_executors(*this); // executors: see corio/executor.hpp
    {
        std::lock_guard lock(m_ts_mutex);
        m_ts_closed = true;
        m_ts_queue.swap(m_ts_taken);
    }
    for (detail::callback_node* n : m_ts_taken) {
        n->drop_callable();
        n->release();
    }
    m_ts_taken.clear();
    clear_ready();

    // Destroy the frames of tasks still pending while the loop is intact: their awaiters leave
    // the timer heap, futures' waiter lists and fd table as they go. A destructor may wake or
    // create other tasks, so repeat until none is pending.
    for (auto pending = pending_tasks(); !pending.empty(); pending = pending_tasks()) {
        for (detail::task_core* t : pending) t->as_future().add_ref();
        for (detail::task_core* t : pending) {
            if (t->as_future().done()) continue;
            std::string msg = "Task was destroyed but it is pending!";
            if (m_debug) {
                const auto& at = t->created_at();
                msg += std::string(" (created at ") + at.file_name() + ":" +
                       std::to_string(at.line()) + ")";
            }
            call_exception_handler({std::move(msg), nullptr, t->get_name()});
            t->destroy_pending();
        }
        clear_ready();
        for (detail::task_core* t : pending) t->as_future().release();
    }
    clear_ready();

    while (!m_timers.empty()) {
        detail::timer_node* t = m_timers.pop();
        if (detail::callback_node::is_callback_timer(t)) {
            auto* c = static_cast<detail::callback_node*>(t);
            c->drop_callable();
            c->release();
        }
    }
    for (int sig = 1; sig < detail::signal_limit && m_signal_count > 0; ++sig) remove_signal_handler(sig);
    m_closed = true;
    m_fds.clear();
    m_watched_fds = 0;
    // Newest first; a destructor may look for its siblings, so each leaves the list first.
    while (!m_attachments.empty()) {
        std::shared_ptr<void> last = std::move(m_attachments.back().value);
        m_attachments.pop_back();
        last.reset();
    }
    while (detail::future_core* f = m_live_head) {
        detail::loop_ops::unlink(*this, f);
        f->detach_loop();
    }
}

inline void event_loop::print_report(const exception_context& ctx) noexcept {
    try {
        std::string line = "corio: " + ctx.message;
        if (!ctx.task_name.empty()) line += " [task " + ctx.task_name + "]";
        if (ctx.exception) {
            try {
                std::rethrow_exception(ctx.exception);
            } catch (const std::exception& e) {
                std::string type = typeid(e).name();
#if __has_include(<cxxabi.h>)
                int status = 0;
                if (char* d = abi::__cxa_demangle(type.c_str(), nullptr, nullptr, &status)) {
                    type = d;
                    std::free(d);
                }
#endif
                line += ": " + type + ": " + e.what();
            } catch (...) {
                line += ": unknown exception";
            }
        }
        line += '\n';
        std::fputs(line.c_str(), stderr);
    } catch (...) {
        std::fputs("corio: (failed to format an error report)\n", stderr);
    }
}

} // namespace corio

/// \cond INTERNAL
namespace corio::detail {

inline void loop_ops::enqueue(event_loop& loop, ready_node* n) noexcept { loop.m_ready.push(n); }

inline std::vector<task_core*> loop_ops::pending_tasks(const event_loop& loop) {
    std::vector<task_core*> out = loop.pending_tasks();
    std::reverse(out.begin(), out.end()); // creation order (the live list is newest first)
    return out;
}

inline void loop_ops::link(event_loop& loop, future_core* f) noexcept {
    f->live_prev = nullptr;
    f->live_next = loop.m_live_head;
    if (loop.m_live_head) loop.m_live_head->live_prev = f;
    loop.m_live_head = f;
}

inline void loop_ops::unlink(event_loop& loop, future_core* f) noexcept {
    (f->live_prev ? f->live_prev->live_next : loop.m_live_head) = f->live_next;
    if (f->live_next) f->live_next->live_prev = f->live_prev;
    f->live_prev = f->live_next = nullptr;
}

inline void loop_ops::report(event_loop* loop, const exception_context& ctx) noexcept {
    if (loop) loop->call_exception_handler(ctx);
    else event_loop::print_report(ctx);
}

inline void loop_ops::check_open(const event_loop* loop) {
    if (!loop || loop->m_closed) throw std::runtime_error("Event loop is closed");
}

inline std::int64_t loop_ops::now_ns(const event_loop& loop) noexcept { return loop.now_ns(); }

inline void* loop_ops::find_attachment(const event_loop& loop, const void* key) noexcept {
    for (const auto& a : loop.m_attachments)
        if (a.key == key) return a.value.get();
    return nullptr;
}

inline void loop_ops::add_attachment(event_loop& loop, const void* key, std::shared_ptr<void> value) {
    check_open(&loop);
    loop.m_attachments.push_back({key, std::move(value)});
}

inline void loop_ops::add_timer(event_loop& loop, timer_node* n, std::int64_t when_ns) {
    loop.m_timers.push(n, when_ns);
}

inline void loop_ops::remove_timer(event_loop& loop, timer_node* n) noexcept {
    loop.m_timers.erase(n);
}

inline void callback_node::run_thunk(ready_node* n) {
    auto* c = static_cast<callback_node*>(n);
    c->queued = false;
    callback_ref queue_ref(c); // released when done, even if the callable throws
    if (c->persistent) {
        c->invoke_if_live();
        return;
    }
    struct drop_after {
        callback_node* c;
        ~drop_after() { c->drop_callable(); }
    } drop{c};
    c->invoke_if_live();
}

inline void callback_node::fire_thunk(timer_node* n) {
    auto* c = static_cast<callback_node*>(n);
    // The heap's reference becomes the queue's.
    if (c->cancelled()) {
        c->release();
        return;
    }
    c->queued = true;
    loop_ops::enqueue(*c->loop, c);
}

} // namespace corio::detail
/// \endcond

// The loop's member templates that make futures and tasks are defined with those types. The
// headers form a chain (event_loop -> future -> task), each including the next at its end, so
// that whichever one a user includes first, every definition is complete.
#include <corio/future.hpp>
