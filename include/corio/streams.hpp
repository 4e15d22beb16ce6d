#pragma once
/// \file corio/streams.hpp
/// Streams: asyncio's high-level connection API (asyncio.streams).
///
/// | asyncio | corio |
/// |---|---|
/// | `reader, writer = await open_connection(host, port, limit=, local_addr=)` | `auto [reader, writer] = co_await corio::open_connection(host, port, {.limit = ..., .local_addr = ...})` |
/// | `server = await start_server(cb, host, port, limit=, backlog=, ...)` | `corio::server srv = co_await corio::start_server(handler, host, port, {...})` |
/// | `open_unix_connection(path)` / `start_unix_server(cb, path)` | same names |
/// | `StreamReader` | `corio::stream_reader` |
/// | `StreamWriter` | `corio::stream_writer` |
/// | `StreamReaderProtocol` | `corio::stream_protocol` |
/// | `IncompleteReadError` / `LimitOverrunError` | `corio::incomplete_read_error` / `corio::limit_overrun_error` |
///
/// ```
/// corio::task<> handle(corio::stream_reader reader, corio::stream_writer writer) {
///     std::string line = co_await reader.readline();     // data = await reader.readline()
///     writer.write(line);                                 // writer.write(data)
///     co_await writer.drain();                            // await writer.drain()
///     writer.close();                                     // writer.close()
///     co_await writer.wait_closed();                      // await writer.wait_closed()
/// }
/// auto handler = handle;                   // name it first (GCC 12, see below)
/// corio::server srv = co_await corio::start_server(handler, "127.0.0.1", 8888);
/// ```
///
/// ## Handles
/// `stream_reader` and `stream_writer` are copyable handles over shared state (like
/// `corio::future`): copies read from and write to the same connection. They belong to the
/// loop's thread. Every read, drain and wait keeps the shared state alive while it runs, so a
/// handle may go away while an operation it started is pending.
///
/// ## Differences from asyncio 3.12 (on purpose)
/// - **Closing by RAII.** When the last `stream_writer` handle of a connection is destroyed and
///   the transport is not closing yet, the transport is closed (data already written is still
///   sent). asyncio 3.12's `StreamWriter.__del__` does the same, with a ResourceWarning; in C++
///   that is just the expected RAII behaviour, so there is no warning. A server handler that
///   returns therefore closes its connection unless it kept a copy of the writer elsewhere.
/// - **No data is lost to cancellation.** Every read consumes bytes only after its last
///   suspension, so a read cancelled at any `co_await` (by `cancel()`, `wait_for`, a task group)
///   leaves the bytes in the buffer for the next read. asyncio's `read(-1)` loses the blocks it
///   had already collected; corio's keeps them buffered (it waits for EOF and then takes all).
/// - `readline()` over the limit throws `limit_overrun_error` (asyncio: `ValueError`), after
///   consuming exactly what asyncio consumes (the line and its newline if the newline was seen,
///   else the whole buffer).
/// - `incomplete_read_error::expected()` is `incomplete_read_error::unknown_size` when the
///   size was unknown (asyncio: `None`, from `readuntil`).
/// - Misuse asyncio answers with ValueError throws `std::invalid_argument`: a limit of 0, an
///   empty separator. Two coroutines waiting on one reader: `std::runtime_error` ("read() called
///   while another coroutine is already waiting for incoming data"), as asyncio's RuntimeError.
///
/// ## GCC 12 (PR 100611)
/// Do not write a capturing lambda (or a brace-built aggregate holding something with a
/// destructor) inside the statement that `co_await`s `start_server`: name the handler first,
/// as above. The option structs here hold only trivially destructible members, so
/// `co_await open_connection(h, p, {.limit = 1024})` is safe.

#include <corio/address.hpp>
#include <corio/event_loop.hpp>
#include <corio/exceptions.hpp>
#include <corio/future.hpp>
#include <corio/net.hpp>
#include <corio/protocols.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/transports.hpp>

#include <algorithm>
#include <any>
#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/socket.h>

namespace corio {

/// The default `limit` of a stream_reader (asyncio's `_DEFAULT_LIMIT`, 64 KiB): the longest
/// line or separated chunk a reader returns, and half the buffer size at which the transport's
/// reading is paused.
inline constexpr std::size_t default_stream_limit = 65536;

class stream_reader;
class stream_writer;
class stream_protocol;

namespace detail {

/// The bytes a reader holds: a string with a consumed prefix, so taking a line from the front
/// does not move the rest each time.
class stream_buffer {
public:
    std::size_t size() const noexcept { return m_data.size() - m_head; }
    bool empty() const noexcept { return size() == 0; }
    std::string_view view() const noexcept { return std::string_view(m_data).substr(m_head); }

    void append(std::string_view d) {
        if (m_head == m_data.size()) clear();
        m_data.append(d);
    }
    /// Removes and returns the first `n` bytes (fewer if there are fewer).
    std::string take(std::size_t n) {
        n = std::min(n, size());
        std::string out;
        if (m_head == 0 && n == m_data.size()) {
            out.swap(m_data);
        } else {
            out.assign(m_data, m_head, n);
            m_head += n;
            compact();
        }
        return out;
    }
    void drop(std::size_t n) noexcept {
        m_head += std::min(n, size());
        compact();
    }
    void clear() noexcept {
        m_data.clear();
        m_head = 0;
    }

private:
    void compact() noexcept {
        if (m_head == m_data.size()) {
            clear();
        } else if (m_head >= 4096 && m_head * 2 >= m_data.size()) {
            m_data.erase(0, m_head); // amortised: at most as many bytes as were consumed
            m_head = 0;
        }
    }

    std::string m_data;
    std::size_t m_head = 0;
};

class data_waiter;

/// What a stream_reader handle shares (asyncio.StreamReader's attributes).
struct reader_state {
    explicit reader_state(std::size_t lim) : limit(lim) {
        if (lim == 0) throw std::invalid_argument("Limit cannot be <= 0");
    }
    reader_state(const reader_state&) = delete;
    reader_state& operator=(const reader_state&) = delete;

    stream_buffer buffer;
    std::size_t limit;
    bool eof = false;
    bool paused = false; ///< we paused the transport's reading
    std::exception_ptr error;
    data_waiter* waiter = nullptr;
    /// The transport to pause and resume. Raw pointer for the calls, weak owner to know it is
    /// still alive: the transport owns the protocol that owns this reader, so a strong
    /// reference here would be a cycle.
    transport* source = nullptr;
    std::weak_ptr<base_transport> source_owner;

    void wakeup(std::exception_ptr e = nullptr) noexcept;

    /// asyncio's _maybe_resume_transport.
    void maybe_resume() {
        if (paused && buffer.size() <= limit) {
            paused = false;
            if (auto keep = source_owner.lock()) source->resume_reading();
        }
    }

    void throw_if_error() const {
        if (error) std::rethrow_exception(error);
    }
};

/// How a read waits for feed_data / feed_eof / set_exception (asyncio's `_wait_for_data`).
/// Lives in the reading coroutine's frame; at most one per reader.
class data_waiter : public task_waiter {
public:
    explicit data_waiter(reader_state& s) noexcept : m_state(&s) { task_waiter::cancel = &on_cancel; }
    data_waiter(const data_waiter&) = delete;
    data_waiter& operator=(const data_waiter&) = delete;
    ~data_waiter() {
        if (m_state->waiter == this) m_state->waiter = nullptr; // the frame died while waiting
    }

    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
        task_core& t = require_current_task();
        m_task = &t;
        m_state->waiter = this;
        t.suspend_on(h, this);
    }
    void await_resume() {
        if (m_task) m_task->throw_if_cancel_delivered();
        if (m_error) std::rethrow_exception(m_error);
    }

    /// Called by the reader (the waiter already left `m_state->waiter`).
    void wake(std::exception_ptr e) noexcept {
        m_error = std::move(e);
        m_task->wake();
    }

private:
    static bool on_cancel(task_waiter* w, const std::string& msg) {
        auto* self = static_cast<data_waiter*>(w);
        if (self->m_state->waiter == self) self->m_state->waiter = nullptr;
        self->m_task->wake_cancelled(msg); // nothing consumed: the bytes stay buffered
        return true;
    }

    reader_state* m_state;
    task_core* m_task = nullptr;
    std::exception_ptr m_error;
};

inline void reader_state::wakeup(std::exception_ptr e) noexcept {
    if (data_waiter* w = std::exchange(waiter, nullptr)) w->wake(std::move(e));
}

/// The checks asyncio's _wait_for_data makes before it waits; then the awaiter.
inline data_waiter wait_for_data(reader_state& s, const char* func_name) {
    if (s.waiter)
        throw std::runtime_error(std::string(func_name) +
                                 "() called while another coroutine is already waiting for "
                                 "incoming data");
    // Waiting while paused would deadlock (readexactly(n) with n > 2 * limit): resume first.
    if (s.paused) {
        s.paused = false;
        if (auto keep = s.source_owner.lock()) s.source->resume_reading();
    }
    return data_waiter(s);
}

// The reads are coroutines over the shared state (not member coroutines over `this`), so they
// keep the state alive whatever happens to the handle that started them.

inline task<std::string> stream_read(std::shared_ptr<reader_state> s, std::ptrdiff_t n) {
    s->throw_if_error();
    if (n == 0) co_return std::string();
    if (n < 0) {
        while (!s->eof) co_await wait_for_data(*s, "read");
        std::string all = s->buffer.take(s->buffer.size());
        s->maybe_resume();
        co_return all;
    }
    if (s->buffer.empty() && !s->eof) co_await wait_for_data(*s, "read");
    std::string data = s->buffer.take(static_cast<std::size_t>(n));
    s->maybe_resume();
    co_return data;
}

inline task<std::string> stream_readexactly(std::shared_ptr<reader_state> s, std::size_t n) {
    s->throw_if_error();
    if (n == 0) co_return std::string();
    while (s->buffer.size() < n) {
        if (s->eof) {
            std::string partial = s->buffer.take(s->buffer.size());
            throw incomplete_read_error(std::move(partial), n);
        }
        co_await wait_for_data(*s, "readexactly");
    }
    std::string data = s->buffer.take(n);
    s->maybe_resume();
    co_return data;
}

inline task<std::string> stream_readuntil(std::shared_ptr<reader_state> s, std::string sep) {
    const std::size_t seplen = sep.size();
    if (seplen == 0) throw std::invalid_argument("Separator should be at least one-byte string");
    s->throw_if_error();
    std::size_t offset = 0; // where the search resumes: no byte is looked at twice
    std::size_t isep = 0;
    for (;;) {
        const std::string_view buf = s->buffer.view();
        if (buf.size() >= offset + seplen) {
            isep = buf.find(sep, offset);
            if (isep != std::string_view::npos) break;
            offset = buf.size() + 1 - seplen;
            if (offset > s->limit)
                throw limit_overrun_error("Separator is not found, and chunk exceed the limit",
                                          offset);
        }
        if (s->eof) {
            std::string partial = s->buffer.take(s->buffer.size());
            throw incomplete_read_error(std::move(partial), incomplete_read_error::unknown_size);
        }
        co_await wait_for_data(*s, "readuntil");
    }
    if (isep > s->limit)
        throw limit_overrun_error("Separator is found, but chunk is longer than limit", isep);
    std::string chunk = s->buffer.take(isep + seplen);
    s->maybe_resume();
    co_return chunk;
}

inline task<std::string> stream_readline(std::shared_ptr<reader_state> s) {
    std::string line;
    try {
        line = co_await stream_readuntil(s, "\n");
    } catch (incomplete_read_error& e) {
        line = e.partial(); // EOF: the partial last line ("" at EOF)
    } catch (const limit_overrun_error& e) {
        // asyncio: drop the line and its newline if the newline was seen, else everything
        // buffered; then raise (ValueError there, limit_overrun_error here).
        const std::string_view buf = s->buffer.view();
        if (buf.size() > e.consumed() && buf[e.consumed()] == '\n') s->buffer.drop(e.consumed() + 1);
        else s->buffer.clear();
        s->maybe_resume();
        throw;
    }
    co_return line;
}

} // namespace detail

// --- stream_reader ---------------------------------------------------------------------------

/// asyncio's StreamReader: bytes arriving on a connection, read by coroutines.
///
/// A copyable handle; copies share one buffer. Bytes come in through `feed_data` (called by
/// the stream_protocol, or by hand in tests), end with `feed_eof`, or fail with
/// `set_exception`. Only one coroutine at a time may wait for data on a reader.
///
/// Flow control (asyncio's): when more than `2 * limit` bytes are buffered the transport's
/// reading is paused; it is resumed once reads bring the buffer down to `limit` bytes or less,
/// and whenever a read has to wait.
///
/// Cancellation: every read consumes bytes only after its last suspension; a read cancelled at
/// any point leaves the buffer as it was (no data is lost).
class stream_reader {
public:
    /// A reader whose `readline`/`readuntil` return at most `limit` bytes before the separator.
    /// Throws `std::invalid_argument` for a limit of 0.
    explicit stream_reader(std::size_t limit = default_stream_limit)
        : m_state(std::make_shared<detail::reader_state>(limit)) {}

    /// Reads up to `n` bytes: at least one, unless EOF came with nothing buffered (then "").
    /// `n == -1` (the default) reads until EOF and returns everything; `n == 0` returns "" at
    /// once. Throws the reader's exception if one was set (`set_exception`, or a connection
    /// error such as `std::system_error` ECONNRESET); `std::runtime_error` if another coroutine
    /// is waiting on this reader. Cancellation: nothing is consumed.
    [[nodiscard]] task<std::string> read(std::ptrdiff_t n = -1) const {
        return detail::stream_read(m_state, n);
    }

    /// Reads exactly `n` bytes. Throws `incomplete_read_error` (with the bytes that did come,
    /// `partial()`, which are consumed) if EOF comes first; the reader's exception; or
    /// `std::runtime_error` as read(). Cancellation: nothing is consumed.
    [[nodiscard]] task<std::string> readexactly(std::size_t n) const {
        return detail::stream_readexactly(m_state, n);
    }

    /// Reads one line, up to and including '\n'. At EOF returns the partial last line without
    /// '\n' ("" when nothing is left). A line longer than `limit()` (not counting '\n') throws
    /// `limit_overrun_error` after dropping that line (with its '\n' if it was seen, else
    /// everything buffered), as asyncio does. Also throws as read(). Cancellation: nothing is
    /// consumed.
    [[nodiscard]] task<std::string> readline() const { return detail::stream_readline(m_state); }

    /// Reads up to and including `separator`. Throws `limit_overrun_error` if no separator is
    /// found within `limit()` bytes, or the chunk before it is longer than `limit()` (the data
    /// stays buffered; `consumed()` says how much to read to get past it);
    /// `incomplete_read_error` at EOF without the separator (`partial()` has what was left,
    /// now consumed; `expected()` is `unknown_size`); `std::invalid_argument` for an empty
    /// separator; else
    /// as read(). Cancellation: nothing is consumed.
    [[nodiscard]] task<std::string> readuntil(std::string separator = "\n") const {
        return detail::stream_readuntil(m_state, std::move(separator));
    }

    /// True once EOF was fed and every buffered byte was read.
    bool at_eof() const noexcept { return m_state->eof && m_state->buffer.empty(); }
    /// The exception set with set_exception (null if none).
    std::exception_ptr exception() const noexcept { return m_state->error; }
    /// The limit given to the constructor.
    std::size_t limit() const noexcept { return m_state->limit; }
    /// Bytes buffered and not read yet.
    std::size_t buffered() const noexcept { return m_state->buffer.size(); }

    /// Appends bytes (the protocol calls this for each chunk received) and wakes the waiting
    /// read; pauses the transport's reading past `2 * limit()` buffered bytes. Throws
    /// `std::logic_error` after feed_eof().
    void feed_data(std::string_view data) {
        detail::reader_state& s = *m_state;
        if (s.eof) throw std::logic_error("corio::stream_reader: feed_data after feed_eof");
        if (data.empty()) return;
        s.buffer.append(data);
        s.wakeup();
        if (!s.paused && s.buffer.size() > 2 * s.limit) {
            if (auto keep = s.source_owner.lock()) {
                s.source->pause_reading();
                s.paused = true;
            }
        }
    }
    /// Marks the end of the stream and wakes the waiting read.
    void feed_eof() noexcept {
        m_state->eof = true;
        m_state->wakeup();
    }
    /// Fails the stream: the waiting read and every later read throw `e` (buffered bytes are
    /// not returned any more, as in asyncio).
    void set_exception(std::exception_ptr e) noexcept {
        m_state->error = e;
        m_state->wakeup(std::move(e));
    }

    /// The transport whose reading this reader pauses and resumes (asyncio's `set_transport`;
    /// stream_protocol calls it in connection_made, and with null in connection_lost). The
    /// transport must be owned by a `std::shared_ptr` (every corio transport is): the reader
    /// keeps a weak reference and never calls a transport that is gone.
    void set_transport(transport* t) noexcept {
        m_state->source = t;
        m_state->source_owner = t ? t->weak_from_this() : std::weak_ptr<base_transport>();
        if (!t) m_state->paused = false;
    }

    /// True if both handles share one reader.
    friend bool operator==(const stream_reader& a, const stream_reader& b) noexcept {
        return a.m_state == b.m_state;
    }

private:
    std::shared_ptr<detail::reader_state> m_state;
};

// --- stream_protocol -------------------------------------------------------------------------

/// asyncio's StreamReaderProtocol (with its FlowControlMixin): the protocol behind streams. It
/// feeds an optional stream_reader with what the transport receives, records the transport's
/// pause_writing/resume_writing for `stream_writer::drain()`, and completes
/// `stream_writer::wait_closed()` when the connection is lost.
///
/// Create it with `std::make_shared<stream_protocol>(reader)` from a protocol factory (it must
/// be owned by a `std::shared_ptr`). With an `on_connected` callback (what start_server uses),
/// connection_made builds the stream_writer and calls `on_connected(reader, writer)`; the
/// callback runs inside connection_made and must not block (start a task).
///
/// EOF from the peer keeps the transport open (half-closed: you may still write), as asyncio.
class stream_protocol : public protocol, public std::enable_shared_from_this<stream_protocol> {
public:
    /// The function called with the new connection's reader and writer (asyncio's
    /// client_connected_cb, without the coroutine part: it starts its own task).
    using connected_callback = std::function<void(stream_reader, stream_writer)>;

    /// A protocol feeding `reader` (none: received bytes are dropped, as for a write-only pipe).
    explicit stream_protocol(std::optional<stream_reader> reader = std::nullopt)
        : m_reader(std::move(reader)) {}
    /// As above, and calls `on_connected(reader, writer)` from connection_made. Throws
    /// `std::invalid_argument` without a reader.
    stream_protocol(std::optional<stream_reader> reader, connected_callback on_connected)
        : m_reader(std::move(reader)), m_on_connected(std::move(on_connected)) {
        if (!m_reader) throw std::invalid_argument("corio::stream_protocol: a connected callback needs a reader");
    }

    /// Remembers the transport, gives it to the reader, and calls on_connected if set.
    void connection_made(transport& t) override;
    /// Feeds the reader.
    void data_received(std::string_view data) override {
        if (m_reader) m_reader->feed_data(data);
    }
    /// Feeds EOF to the reader and keeps the transport open (returns true).
    bool eof_received() override {
        if (m_reader) m_reader->feed_eof();
        return true;
    }
    /// EOF (null) or the error to the reader; wakes drain() and wait_closed() waiters.
    void connection_lost(std::exception_ptr exc) override {
        if (m_reader) {
            if (exc) m_reader->set_exception(exc);
            else m_reader->feed_eof();
            m_reader->set_transport(nullptr);
        }
        m_lost = true;
        m_lost_error = exc;
        m_transport = nullptr;
        wake_all(m_drain_waiters);
        wake_all(m_closed_waiters);
        m_on_connected = nullptr; // drop what the callback captured (a server's handler)
    }
    /// The transport's buffer went over its high-water mark: drain() waits from now on.
    void pause_writing() override { m_paused = true; }
    /// The transport's buffer went below its low-water mark: wakes drain() waiters.
    void resume_writing() override {
        m_paused = false;
        wake_all(m_drain_waiters);
    }

    /// The reader given to the constructor.
    const std::optional<stream_reader>& reader() const noexcept { return m_reader; }
    /// True between pause_writing() and resume_writing().
    bool writing_paused() const noexcept { return m_paused; }
    /// True once connection_lost was called.
    bool is_connection_lost() const noexcept { return m_lost; }
    /// The error connection_lost got (null for a clean close or if not lost yet).
    std::exception_ptr connection_error() const noexcept { return m_lost_error; }

private:
    friend class stream_writer;

    static void wake_all(std::vector<future<void>>& waiters) {
        std::vector<future<void>> ws;
        ws.swap(waiters);
        for (future<void>& f : ws)
            if (!f.done()) f.set_result();
    }

    /// asyncio's FlowControlMixin._drain_helper. The waiters' futures carry no error (the
    /// error is in m_lost_error), so no "Future exception was never retrieved" can come from a
    /// waiter that was cancelled.
    static task<> drain_helper(std::shared_ptr<stream_protocol> self) {
        if (self->m_lost)
            throw std::system_error(ECONNRESET, std::generic_category(), "Connection lost");
        if (!self->m_paused) co_return;
        future<void> f;
        self->m_drain_waiters.push_back(f);
        listed leave{self->m_drain_waiters, f}; // a cancelled drain must not stay listed
        co_await f.wait_done(); // cancelling the drain only stops this wait
        if (self->m_lost && self->m_lost_error) std::rethrow_exception(self->m_lost_error);
    }

    static task<> wait_closed(std::shared_ptr<stream_protocol> self) {
        if (!self->m_lost) {
            future<void> f;
            self->m_closed_waiters.push_back(f);
            listed leave{self->m_closed_waiters, f};
            co_await f.wait_done();
        }
        if (self->m_lost_error) std::rethrow_exception(self->m_lost_error);
    }

    /// Takes a waiter's future out of its list when the wait ends, however it ends (wake_all
    /// has usually emptied the list by then: then there is nothing to do).
    struct listed {
        std::vector<future<void>>& list;
        const future<void>& f;
        ~listed() { std::erase(list, f); }
    };

    std::optional<stream_reader> m_reader;
    connected_callback m_on_connected;
    transport* m_transport = nullptr;
    std::vector<future<void>> m_drain_waiters;
    std::vector<future<void>> m_closed_waiters;
    std::exception_ptr m_lost_error;
    bool m_paused = false;
    bool m_lost = false;
};

// --- stream_writer ---------------------------------------------------------------------------

namespace detail {

/// What stream_writer handles share. The last handle closes the transport (RAII, see the file
/// comment).
struct writer_state {
    std::shared_ptr<corio::transport> tr;
    std::shared_ptr<stream_protocol> proto;
    std::optional<stream_reader> reader;

    writer_state(std::shared_ptr<corio::transport> t, std::shared_ptr<stream_protocol> p,
                 std::optional<stream_reader> r)
        : tr(std::move(t)), proto(std::move(p)), reader(std::move(r)) {}
    writer_state(const writer_state&) = delete;
    writer_state& operator=(const writer_state&) = delete;
    ~writer_state() {
        try {
            if (tr && !tr->is_closing()) tr->close();
        } catch (...) { // closing must not throw from a destructor (a loop already gone)
        }
    }
};

} // namespace detail

/// asyncio's StreamWriter: writes to a connection, with back-pressure through drain().
///
/// A copyable handle; copies write to the same transport. When the last handle goes and the
/// transport is still open, the transport is closed (see the file comment).
class stream_writer {
public:
    /// An empty handle (for members assigned later); only assignment and `operator bool` may be
    /// used on it.
    stream_writer() noexcept = default;
    /// A writer over `t`, whose protocol is `p` (it must be `t`'s protocol), with the reader of
    /// the same connection if any (drain() rethrows its error). Throws `std::invalid_argument`
    /// if `t` or `p` is null.
    stream_writer(std::shared_ptr<corio::transport> t, std::shared_ptr<stream_protocol> p,
                  std::optional<stream_reader> r = std::nullopt) {
        if (!t || !p) throw std::invalid_argument("corio::stream_writer: null transport or protocol");
        m_state = std::make_shared<detail::writer_state>(std::move(t), std::move(p), std::move(r));
    }

    /// True unless the handle is empty.
    explicit operator bool() const noexcept { return m_state != nullptr; }

    /// Queues `data` on the transport and returns at once: never blocks, never suspends. Call
    /// drain() to wait while the transport's buffer is over its high-water mark. Data written
    /// after close() or after the connection was lost is dropped (as asyncio); throws
    /// `std::runtime_error` after write_eof().
    void write(std::string_view data) { m_state->tr->write(data); }

    /// write() for each element of a range of strings or string views, in order.
    template <class Range>
    void writelines(const Range& lines) {
        for (const auto& l : lines) write(std::string_view(l));
    }

    /// Waits until the transport's buffer is below its low-water mark, if it went over the
    /// high-water mark (returns at once otherwise). Throws the reader's exception if the
    /// connection failed (e.g. `std::system_error` ECONNRESET or EPIPE), or
    /// `std::system_error(ECONNRESET, "Connection lost")` once the connection is lost. Any
    /// number of coroutines may drain at once. Cancellation: only the waiting stops; buffered
    /// data stays queued.
    [[nodiscard]] task<> drain() const { return do_drain(m_state); }

    /// Closes the write side once buffered data is sent (shutdown(SHUT_WR)); reading goes on.
    void write_eof() { m_state->tr->write_eof(); }
    /// True if write_eof() is supported.
    bool can_write_eof() const noexcept { return m_state->tr->can_write_eof(); }
    /// Closes the transport (buffered data is still sent). Idempotent.
    void close() { m_state->tr->close(); }
    /// True once close() was called or the connection was lost.
    bool is_closing() const noexcept { return m_state->tr->is_closing(); }
    /// Waits until the connection is closed (connection_lost was called); throws the error it
    /// was lost with, if any (e.g. `std::system_error` ECONNRESET). Cancellation: only the
    /// waiting stops.
    [[nodiscard]] task<> wait_closed() const { return stream_protocol::wait_closed(m_state->proto); }

    /// The remote address (an empty address if unknown, e.g. for a pipe).
    address peername() const {
        return m_state->tr->extra_info<address>("peername").value_or(address{});
    }
    /// The local address (an empty address if unknown).
    address sockname() const {
        return m_state->tr->extra_info<address>("sockname").value_or(address{});
    }
    /// The transport's get_extra_info(name): "peername", "sockname" (corio::address),
    /// "socket", "pipe" (int); an empty std::any for unknown names.
    std::any get_extra_info(std::string_view name) const { return m_state->tr->get_extra_info(name); }

    /// The underlying transport.
    const std::shared_ptr<corio::transport>& transport() const noexcept { return m_state->tr; }
    /// The protocol of the transport.
    const std::shared_ptr<stream_protocol>& protocol() const noexcept { return m_state->proto; }

    /// True if both handles share one writer.
    friend bool operator==(const stream_writer& a, const stream_writer& b) noexcept {
        return a.m_state == b.m_state;
    }

private:
    // A coroutine over the shared state (not over `this`): it lives as long as the drain runs.
    static task<> do_drain(std::shared_ptr<detail::writer_state> w) {
        if (w->reader) {
            if (std::exception_ptr e = w->reader->exception()) std::rethrow_exception(e);
        }
        // Let connection_lost run if the transport is closing, so that a loop of write + drain
        // sees the error instead of spinning (asyncio 3.12).
        if (w->tr->is_closing()) co_await sleep(std::chrono::seconds(0));
        co_await stream_protocol::drain_helper(w->proto);
    }

    std::shared_ptr<detail::writer_state> m_state;
};

inline void stream_protocol::connection_made(transport& t) {
    m_transport = &t;
    if (m_reader) m_reader->set_transport(&t);
    if (m_on_connected) {
        auto tr = std::dynamic_pointer_cast<corio::transport>(t.shared_from_this());
        stream_writer w(std::move(tr), shared_from_this(), m_reader);
        connected_callback cb = std::move(m_on_connected);
        m_on_connected = nullptr;
        cb(*m_reader, std::move(w));
    }
}

// --- Connections and servers ---------------------------------------------------------------------

/// Options of `open_connection` and `open_unix_connection` (asyncio's keyword arguments).
/// Trivially destructible, so `co_await open_connection(h, p, {.limit = 1024})` is safe on
/// GCC 12 (see the file comment).
struct stream_options {
    /// The reader's limit (see stream_reader). Must not be 0.
    std::size_t limit = default_stream_limit;
    /// Bind to this local address before connecting (asyncio's `local_addr`). TCP only.
    /// (Initialized explicitly so that `{.limit = N}` draws no -Wmissing-field-initializers.)
    std::optional<address> local_addr = std::nullopt;
    /// AF_INET or AF_INET6 to resolve the host to that family only; AF_UNSPEC for both. TCP only.
    int family = AF_UNSPEC;
};

/// Options of `start_server` and `start_unix_server`: the readers' limit, and the options of
/// `create_server` (corio/net.hpp). Trivially destructible, as stream_options.
struct stream_server_options {
    /// Each connection's reader limit (see stream_reader). Must not be 0.
    std::size_t limit = default_stream_limit;
    /// The listen() backlog.
    int backlog = 100;
    /// SO_REUSEADDR (TCP only), on by default as asyncio on Unix.
    bool reuse_address = true;
    /// SO_REUSEPORT (TCP only).
    bool reuse_port = false;
    /// AF_INET or AF_INET6 to listen on that family only; AF_UNSPEC for both. TCP only.
    int family = AF_UNSPEC;
    /// Start accepting at once (otherwise `server::start_serving()` or `serve_forever()`).
    bool start_serving = true;
};

namespace detail {

/// The task of one server connection: the handler, then asyncio's done-callback of
/// StreamReaderProtocol (an error is reported and the transport closed; a cancellation closes
/// the transport). Owns a reference to the handler, so a capturing lambda's captures outlive
/// every connection that uses them.
template <class Handler>
task<> run_stream_handler(std::shared_ptr<Handler> handler, stream_reader reader, stream_writer writer) {
    std::exception_ptr error;
    try {
        co_await std::invoke(*handler, reader, writer);
    } catch (const cancelled_error&) {
        writer.close();
        throw;
    } catch (...) {
        error = std::current_exception();
    }
    if (error) {
        get_running_loop().call_exception_handler(
            {"Unhandled exception in client_connected_cb", error, current_task().get_name()});
        writer.close();
    }
}

/// The protocol factory of start_server: a reader and a stream_protocol per connection, whose
/// connection_made starts the handler's task.
template <class Handler>
auto stream_server_factory(std::shared_ptr<Handler> handler, std::size_t limit) {
    return [handler, limit] {
        stream_reader reader(limit);
        stream_protocol::connected_callback on_connected = [handler](stream_reader r, stream_writer w) {
            (void)create_task(run_stream_handler<Handler>(handler, std::move(r), std::move(w)));
        };
        return std::make_shared<stream_protocol>(std::move(reader), std::move(on_connected));
    };
}

template <class Handler>
constexpr void check_stream_handler() {
    static_assert(std::is_invocable_v<Handler&, stream_reader, stream_writer>,
                  "corio: a stream handler is called as handler(stream_reader, stream_writer)");
    static_assert(awaitable<std::invoke_result_t<Handler&, stream_reader, stream_writer>>,
                  "corio: a stream handler must return an awaitable (a corio::task<>)");
}

inline server_options to_server_options(const stream_server_options& o) {
    server_options so;
    so.backlog = o.backlog;
    so.reuse_address = o.reuse_address;
    so.reuse_port = o.reuse_port;
    so.family = o.family;
    so.start_serving = o.start_serving;
    return so;
}

} // namespace detail

/// asyncio's `open_connection(host, port, limit=, local_addr=, family=)`: connects with
/// `create_connection` (corio/net.hpp: name resolution off the loop thread, every address in
/// turn) and gives the connection's reader and writer.
///
/// Throws `std::system_error` when the connection fails (ECONNREFUSED, ETIMEDOUT, ...; see
/// create_connection), `corio::gai_error` if `host` does not resolve, `std::invalid_argument`
/// for a limit of 0. Cancellation: nothing is left open.
inline task<std::pair<stream_reader, stream_writer>> open_connection(std::string host, port_or_service port,
                                                                     stream_options opts = {}) {
    stream_reader reader(opts.limit);
    auto factory = [reader] { return std::make_shared<stream_protocol>(reader); };
    connection_options co;
    co.local_addr = opts.local_addr;
    co.family = opts.family;
    auto [tr, proto] = co_await create_connection(std::move(factory), std::move(host), std::move(port), co);
    stream_writer writer(std::move(tr), std::move(proto), reader);
    co_return std::pair<stream_reader, stream_writer>(std::move(reader), std::move(writer));
}

/// asyncio's `open_unix_connection(path, limit=)`: as open_connection, to the Unix stream
/// socket at `path`. Only `opts.limit` applies: throws `std::invalid_argument` if `local_addr`
/// or `family` is set (or for a path too long), `std::system_error` (ENOENT, ECONNREFUSED) if
/// nobody listens there. Cancellation: nothing is left open.
inline task<std::pair<stream_reader, stream_writer>> open_unix_connection(std::string path,
                                                                          stream_options opts = {}) {
    if (opts.local_addr || opts.family != AF_UNSPEC)
        throw std::invalid_argument("corio::open_unix_connection: local_addr and family do not apply");
    stream_reader reader(opts.limit);
    auto factory = [reader] { return std::make_shared<stream_protocol>(reader); };
    auto [tr, proto] = co_await create_unix_connection(std::move(factory), std::move(path));
    stream_writer writer(std::move(tr), std::move(proto), reader);
    co_return std::pair<stream_reader, stream_writer>(std::move(reader), std::move(writer));
}

/// asyncio's `start_server(client_connected_cb, host, port, limit=, ...)`: a server
/// (`create_server`, corio/net.hpp) that calls `handler(reader, writer)` in a new task
/// (`create_task`) for each connection. `handler` is any callable taking
/// `(stream_reader, stream_writer)` and returning an awaitable, usually a `task<>`; it is kept
/// (once, shared by every connection) as long as the server has connections.
///
/// When the handler's task ends, its writer handles go away and so the connection is closed,
/// unless the handler kept a copy of the writer (see the file comment). An exception escaping
/// the handler is reported through the loop's exception handler ("Unhandled exception in
/// client_connected_cb") and the connection closed; the server goes on serving. A cancelled
/// handler (e.g. at the end of `corio::run`) closes its connection.
///
/// Port 0 picks a free port (`server::port()`). Throws as `create_server` (`std::system_error`
/// EADDRINUSE, `corio::gai_error`), `std::invalid_argument` for a limit of 0. Name a
/// capturing lambda before the statement that awaits this (GCC 12, see the file comment).
template <class Handler>
task<server> start_server(Handler handler, std::string host, port_or_service port, stream_server_options opts = {}) {
    detail::check_stream_handler<Handler>();
    if (opts.limit == 0) throw std::invalid_argument("Limit cannot be <= 0");
    auto factory = detail::stream_server_factory(std::make_shared<Handler>(std::move(handler)), opts.limit);
    const server_options so = detail::to_server_options(opts);
    co_return co_await create_server(std::move(factory), std::move(host), std::move(port), so);
}

/// asyncio's `start_unix_server(client_connected_cb, path, limit=, ...)`: as start_server, on
/// a Unix stream socket at `path` (`create_unix_server`: a stale socket file is replaced and
/// the file is removed when the server closes). Only `limit`, `backlog` and `start_serving`
/// apply. Throws as `create_unix_server` (`std::system_error` EADDRINUSE,
/// `std::invalid_argument` for a path too long) or for a limit of 0.
template <class Handler>
task<server> start_unix_server(Handler handler, std::string path, stream_server_options opts = {}) {
    detail::check_stream_handler<Handler>();
    if (opts.limit == 0) throw std::invalid_argument("Limit cannot be <= 0");
    auto factory = detail::stream_server_factory(std::make_shared<Handler>(std::move(handler)), opts.limit);
    const server_options so = detail::to_server_options(opts);
    co_return co_await create_unix_server(std::move(factory), std::move(path), so);
}

} // namespace corio
