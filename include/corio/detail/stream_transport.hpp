#pragma once
/// \file corio/detail/stream_transport.hpp
/// The stream transport behind create_connection, create_server and their Unix variants
/// (corio/net.hpp), and behind subprocess pipes (`make_pipe_transport`): a socket or pipe fd
/// driven by the loop's add_reader/add_writer, with the semantics of CPython's
/// `_SelectorSocketTransport` (selector_events.py) and, for pipes, `_UnixReadPipeTransport` /
/// `_UnixWritePipeTransport` (unix_events.py).
///
/// ## Reading
/// A reader is registered while reading is wanted (not paused, no EOF seen, not closing). Each
/// readiness reads once, up to 256 KiB (asyncio's max_size), into a per-thread buffer, and
/// hands the bytes to `data_received` (a view valid only during the call). EOF calls
/// `eof_received`: the transport closes unless it returns true (half-close; a read-only pipe
/// always closes).
///
/// ## Writing
/// `write` sends at once while nothing is buffered ("write-through"); what the kernel does
/// not take is buffered and a writer is registered until the buffer is empty (never while it is
/// empty: a level-triggered writable fd would spin). Flow control as asyncio: over the high-water
/// mark (64 KiB) the protocol's `pause_writing` is called once, and `resume_writing` once the
/// buffer drains to the low-water mark (16 KiB). `write_eof` shuts the write side
/// (`shutdown(SHUT_WR)`) once the buffer is empty; on a pipe it closes the transport.
///
/// ## Ending
/// `close` stops reading, flushes the buffer, then schedules `connection_lost(nullptr)`;
/// `abort` drops the buffer and does the same at once. `connection_lost` is called exactly
/// once, always from a loop callback on a later iteration (never from inside the call that
/// ended the connection), and then the fd is closed and the protocol released (which breaks a
/// protocol -> transport reference cycle).
///
/// Errors: an I/O error (ECONNRESET, EPIPE, ...) ends the connection with
/// `connection_lost(std::system_error)`, without a report (asyncio logs those only in debug
/// mode); an exception escaping a protocol callback goes to the loop's exception handler and
/// aborts the transport, and connection_lost gets that exception. A write after close/abort or
/// after the connection was lost is dropped silently. No write ever raises SIGPIPE
/// (detail/socket.hpp).
///
/// ## Ownership
/// While open, a transport is owned by its loop (the `loop_registry` below) whatever the
/// user keeps: a server's connections live on when nobody holds their transport. The reader
/// and writer callbacks point at the transport without owning it; they are removed before the
/// loop lets go. After connection_lost the loop lets go, and the transport lives as long as
/// shared_ptrs to it do. If the loop closes while transports are open, each is detached: the fd
/// is closed and the protocol released without any callback (asyncio just drops such
/// transports), so nothing leaks even when the protocol holds a shared_ptr to its transport.
/// A detached or lost transport never touches the loop again: its members are no-ops.
///
/// All members are loop-thread only.

#include <corio/address.hpp>
#include <corio/detail/loop_registry.hpp>
#include <corio/detail/socket.hpp>
#include <corio/event_loop.hpp>
#include <corio/protocols.hpp>
#include <corio/transports.hpp>

#include <any>
#include <cerrno>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace corio::detail {

class stream_transport;

/// What a server's connection reports to its server (the server counts its connections for
/// wait_closed, and can close them all).
class connection_owner {
public:
    virtual ~connection_owner() = default;
    /// A connection started (before connection_made).
    virtual void connection_attached(stream_transport& t) = 0;
    /// A connection ended (after connection_lost).
    virtual void connection_detached(stream_transport& t) noexcept = 0;
};

/// The read buffer, one per thread: one loop per thread, and the bytes are only lent to
/// data_received, which cannot start another read on the same thread.
inline char* stream_read_buffer(std::size_t size) {
    thread_local std::unique_ptr<char[]> buf;
    if (!buf) buf.reset(new char[size]);
    return buf.get();
}

// --- The transport -----------------------------------------------------------------------------

/// A stream transport over a socket or pipe fd: see the file comment.
class stream_transport final : public transport, public loop_resource {
public:
    /// What the fd is.
    enum class kind {
        socket,      ///< a connected stream socket (TCP, Unix): reads, writes, shutdown
        read_pipe,   ///< the read end of a pipe: reads only; EOF closes
        write_pipe,  ///< the write end of a pipe: writes only; write_eof closes
        duplex_pipe, ///< a read-write fd that is not a socket (a tty, a FIFO opened O_RDWR)
    };

    /// asyncio's max_size: the most one readiness reads.
    static constexpr std::size_t max_read_size = 256 * 1024;
    /// asyncio's default high-water mark.
    static constexpr std::size_t default_high_water = 64 * 1024;

    /// Takes `fd` (non-blocking) and `p`. Nothing happens until start(). `peer`: the peer
    /// address if known (accept gives it), else asked from the socket.
    stream_transport(event_loop& loop, unique_fd fd, std::shared_ptr<protocol> p, kind k,
                     std::shared_ptr<connection_owner> server = nullptr,
                     std::optional<address> peer = std::nullopt)
        : m_loop(&loop), m_fd(std::move(fd)), m_fdnum(m_fd.get()), m_protocol(std::move(p)),
          m_server(std::move(server)), m_kind(k) {
        if (!m_protocol) throw std::invalid_argument("corio: a transport needs a protocol");
        if (m_kind == kind::socket) {
            m_local = socket_local_address(m_fdnum);
            m_peer = peer ? *peer : socket_peer_address(m_fdnum);
        } else {
            m_no_sigpipe = set_pipe_no_sigpipe(m_fdnum);
        }
    }

    stream_transport(const stream_transport&) = delete;
    stream_transport& operator=(const stream_transport&) = delete;

    /// Closes the fd if still open; never touches the loop (see the file comment).
    ~stream_transport() override = default;

    /// The loop takes ownership, the server (if any) counts the connection, the protocol's
    /// connection_made runs, then reading starts. If connection_made throws, the transport is
    /// aborted (connection_lost is not called: the connection was never made) and the
    /// exception is rethrown.
    void start() {
        auto self = shared_self();
        m_registry = &loop_registry::of(*m_loop);
        m_registry->add(self);
        if (m_server) {
            try {
                m_server->connection_attached(*this);
            } catch (...) {
                auto keep = m_registry->remove(this);
                m_registry = nullptr;
                throw;
            }
        }
        m_protocol_connected = true;
        try {
            m_protocol->connection_made(*this);
        } catch (...) {
            m_protocol_connected = false;
            force_close(std::current_exception());
            throw;
        }
        // connection_made may have paused reading (asyncio's _add_reader checks is_reading()).
        if (!m_closing && !m_paused && m_kind != kind::write_pipe) start_reading();
        // The write end of a pipe is watched for reading too: it becomes "readable" (an error
        // or hang-up) when the read end closes (asyncio's trick).
        if (!m_closing && m_kind == kind::write_pipe) set_reader(true);
    }

    // --- base_transport ------------------------------------------------------------------

    void close() override {
        if (m_closing) return;
        m_closing = true;
        set_reader(false);
        if (pending() == 0) {
            m_conn_lost = true;
            set_writer(false);
            schedule_connection_lost(nullptr);
        }
    }

    bool is_closing() const noexcept override { return m_closing; }

    std::any get_extra_info(std::string_view name) const override {
        const bool open = m_fd && !m_conn_lost;
        if (m_kind == kind::socket) {
            if (name == "peername") return m_peer;
            if (name == "sockname") return m_local;
            if (name == "socket" && open) return m_fdnum;
        } else if (name == "pipe" && open) {
            return m_fdnum;
        }
        return {};
    }

    // --- read_transport --------------------------------------------------------------------

    void pause_reading() override {
        if (m_closing || m_paused || m_kind == kind::write_pipe) return;
        m_paused = true;
        set_reader(false);
    }
    void resume_reading() override {
        if (m_closing || !m_paused) return;
        m_paused = false;
        if (!m_read_eof) start_reading();
    }
    bool is_reading() const noexcept override {
        return !m_paused && !m_closing && m_kind != kind::write_pipe;
    }

    // --- write_transport -------------------------------------------------------------------

    void write(std::string_view data) override {
        if (m_eof) throw std::runtime_error("Cannot call write() after write_eof()");
        if (m_kind == kind::read_pipe)
            throw std::logic_error("corio: write() on the read end of a pipe");
        if (data.empty() || m_closing || !live()) return; // dropped, as asyncio (which warns)
        if (pending() == 0) {
            const ssize_t n = send_some(data.data(), data.size());
            if (n < 0) {
                const int e = errno;
                if (!is_would_block(e)) {
                    io_error(e, "Fatal write error on " + what());
                    return;
                }
            } else {
                data.remove_prefix(static_cast<std::size_t>(n));
                if (data.empty()) return;
            }
            set_writer(true);
        }
        if (m_buffer_off > 0 && m_buffer_off >= m_buffer.size() / 2) {
            m_buffer.erase(0, m_buffer_off);
            m_buffer_off = 0;
        }
        m_buffer.append(data);
        maybe_pause_protocol();
    }

    void write_eof() override {
        if (!can_write_eof()) throw std::logic_error("corio: this transport cannot write EOF");
        if (m_closing || m_eof) return;
        m_eof = true;
        if (m_kind != kind::socket) { // a pipe has no half-close: EOF is closing it
            close();
            return;
        }
        if (pending() == 0) shutdown_write();
    }

    bool can_write_eof() const noexcept override {
        return m_kind == kind::socket || m_kind == kind::write_pipe;
    }

    void abort() override { force_close(nullptr); }

    std::size_t get_write_buffer_size() const noexcept override { return pending(); }

    void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                 std::optional<std::size_t> low = std::nullopt) override {
        std::size_t h = high ? *high : (low ? 4 * *low : default_high_water);
        std::size_t l = low ? *low : h / 4;
        if (l > h)
            throw std::invalid_argument("high (" + std::to_string(h) + ") must be >= low (" +
                                        std::to_string(l) + ") must be >= 0");
        m_high = h;
        m_low = l;
        maybe_pause_protocol();
    }

    std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override {
        return {m_low, m_high};
    }

    // --- loop_resource ----------------------------------------------------------------------

    void loop_closed() noexcept override {
        m_loop = nullptr;
        m_registry = nullptr;
        m_closing = m_conn_lost = true;
        m_reader_on = m_writer_on = false; // the loop forgot its callbacks
        m_protocol_connected = false;
        m_fd.reset();
        m_buffer.clear();
        m_buffer_off = 0;
        auto p = std::move(m_protocol); // released last: its destructor may call this object
        auto s = std::move(m_server);
    }

    /// The fd (-1 once closed).
    int fd() const noexcept { return m_fd.get(); }
    /// The protocol (null once the connection is lost).
    const std::shared_ptr<protocol>& get_protocol() const noexcept { return m_protocol; }

private:
    std::shared_ptr<stream_transport> shared_self() {
        return std::shared_ptr<stream_transport>(shared_from_this(), this);
    }

    /// The loop, if this transport may still use it.
    bool live() const noexcept { return m_loop && !m_loop->is_closed() && m_fd; }

    std::size_t pending() const noexcept { return m_buffer.size() - m_buffer_off; }

    std::string what() const { return m_kind == kind::socket ? "socket transport" : "pipe transport"; }

    static bool is_would_block(int e) noexcept {
        return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
    }

    ssize_t send_some(const char* data, std::size_t n) noexcept {
        if (m_kind == kind::socket) return socket_send(m_fd.get(), data, n);
        return pipe_write(m_fd.get(), data, n, m_no_sigpipe);
    }

    void shutdown_write() noexcept {
        if (m_fd) ::shutdown(m_fd.get(), SHUT_WR); // ENOTCONN after a reset: nothing to do
    }

    void start_reading() { set_reader(true); }

    void set_reader(bool on) {
        if (on == m_reader_on) return;
        if (on) {
            if (!live()) return;
            m_loop->add_reader(m_fd.get(), [this] { on_readable(); });
            m_reader_on = true;
        } else {
            m_reader_on = false;
            if (live()) m_loop->remove_reader(m_fd.get());
        }
    }

    void set_writer(bool on) {
        if (on == m_writer_on) return;
        if (on) {
            if (!live()) return;
            m_loop->add_writer(m_fd.get(), [this] { on_writable(); });
            m_writer_on = true;
        } else {
            m_writer_on = false;
            if (live()) m_loop->remove_writer(m_fd.get());
        }
    }

    void on_readable() {
        if (m_conn_lost) return;
        if (m_kind == kind::write_pipe) {
            // The read end closed (asyncio: _UnixWritePipeTransport._read_ready).
            if (pending() > 0)
                force_close(std::make_exception_ptr(
                    std::system_error(EPIPE, std::generic_category(), "Broken pipe")));
            else
                force_close(nullptr);
            return;
        }
        char* buf = stream_read_buffer(max_read_size);
        const ssize_t n = m_kind == kind::socket ? ::recv(m_fd.get(), buf, max_read_size, 0)
                                                 : ::read(m_fd.get(), buf, max_read_size);
        if (n < 0) {
            const int e = errno;
            if (!is_would_block(e)) io_error(e, "Fatal read error on " + what());
            return;
        }
        if (n == 0) {
            on_eof();
            return;
        }
        try {
            m_protocol->data_received(std::string_view(buf, static_cast<std::size_t>(n)));
        } catch (...) {
            fatal_error(std::current_exception(), "Fatal error: protocol.data_received() call failed.");
        }
    }

    void on_eof() {
        m_read_eof = true;
        set_reader(false);
        bool keep_open = false;
        try {
            keep_open = m_protocol->eof_received();
        } catch (...) {
            fatal_error(std::current_exception(), "Fatal error: protocol.eof_received() call failed.");
            return;
        }
        if (!keep_open || m_kind == kind::read_pipe) close();
    }

    void on_writable() {
        if (m_conn_lost || pending() == 0) {
            set_writer(false);
            return;
        }
        const ssize_t n = send_some(m_buffer.data() + m_buffer_off, pending());
        if (n < 0) {
            const int e = errno;
            if (is_would_block(e)) return;
            set_writer(false);
            m_buffer.clear();
            m_buffer_off = 0;
            io_error(e, "Fatal write error on " + what());
            return;
        }
        m_buffer_off += static_cast<std::size_t>(n);
        if (m_buffer_off == m_buffer.size()) {
            m_buffer.clear();
            m_buffer_off = 0;
        }
        maybe_resume_protocol(); // may write more, close or abort
        if (pending() > 0 || m_conn_lost) return;
        set_writer(false);
        if (m_closing) {
            m_conn_lost = true;
            schedule_connection_lost(nullptr);
        } else if (m_eof) {
            shutdown_write();
        }
    }

    /// asyncio's _fatal_error for an exception from a protocol callback: reported, then abort.
    void fatal_error(std::exception_ptr e, const char* message) {
        if (m_loop && !m_loop->is_closed()) m_loop->call_exception_handler({message, e, {}});
        force_close(std::move(e));
    }

    /// asyncio's _fatal_error for an OSError: not reported (debug-level log in asyncio).
    void io_error(int err, const std::string& what) {
        force_close(std::make_exception_ptr(std::system_error(err, std::generic_category(), what)));
    }

    /// asyncio's _force_close.
    void force_close(std::exception_ptr e) {
        if (m_conn_lost) return;
        if (pending() > 0) {
            m_buffer.clear();
            m_buffer_off = 0;
        }
        set_writer(false);
        if (!m_closing) m_closing = true;
        set_reader(false);
        m_conn_lost = true;
        schedule_connection_lost(std::move(e));
    }

    void schedule_connection_lost(std::exception_ptr e) {
        if (!m_loop || m_loop->is_closed()) return;
        auto self = shared_self();
        m_loop->call_soon([self, e] { self->call_connection_lost(e); });
    }

    /// asyncio's _call_connection_lost: the protocol hears of it, then everything is released.
    void call_connection_lost(std::exception_ptr e) {
        if (!m_loop) return; // detached meanwhile
        std::exception_ptr failure;
        if (m_protocol_connected) {
            m_protocol_connected = false;
            try {
                m_protocol->connection_lost(e);
            } catch (...) {
                failure = std::current_exception();
            }
        }
        set_reader(false);
        set_writer(false);
        m_fd.reset();
        auto p = std::move(m_protocol);
        auto s = std::move(m_server);
        if (s) s->connection_detached(*this);
        std::shared_ptr<loop_resource> keep;
        if (m_registry) keep = m_registry->remove(this);
        m_registry = nullptr;
        if (failure && m_loop && !m_loop->is_closed())
            m_loop->call_exception_handler(
                {"Exception in protocol.connection_lost()", failure, {}});
        // p (the protocol), s (the server) and keep (the loop's reference) go here; the
        // caller's `self` keeps this object alive until the callback returns.
    }

    void maybe_pause_protocol() {
        if (pending() <= m_high || m_protocol_paused || !m_protocol) return;
        m_protocol_paused = true;
        try {
            m_protocol->pause_writing();
        } catch (...) {
            if (m_loop && !m_loop->is_closed())
                m_loop->call_exception_handler(
                    {"protocol.pause_writing() failed", std::current_exception(), {}});
        }
    }

    void maybe_resume_protocol() {
        if (!m_protocol_paused || pending() > m_low || !m_protocol) return;
        m_protocol_paused = false;
        try {
            m_protocol->resume_writing();
        } catch (...) {
            if (m_loop && !m_loop->is_closed())
                m_loop->call_exception_handler(
                    {"protocol.resume_writing() failed", std::current_exception(), {}});
        }
    }

    event_loop* m_loop;
    loop_registry* m_registry = nullptr;
    unique_fd m_fd;
    int m_fdnum;
    std::shared_ptr<protocol> m_protocol;
    std::shared_ptr<connection_owner> m_server;
    kind m_kind;
    address m_peer;
    address m_local;
    std::string m_buffer;       ///< bytes not yet sent start at m_buffer_off
    std::size_t m_buffer_off = 0;
    std::size_t m_high = default_high_water;
    std::size_t m_low = default_high_water / 4;
    bool m_closing = false;            ///< close/abort called, or the connection is ending
    bool m_conn_lost = false;          ///< connection_lost is scheduled (or done)
    bool m_eof = false;                ///< write_eof called
    bool m_read_eof = false;           ///< the peer's EOF was read
    bool m_paused = false;             ///< pause_reading
    bool m_reader_on = false;
    bool m_writer_on = false;
    bool m_protocol_paused = false;    ///< pause_writing called, resume_writing not yet
    bool m_protocol_connected = false; ///< connection_made called, connection_lost not yet
    bool m_no_sigpipe = false;         ///< the pipe fd never raises SIGPIPE (F_SETNOSIGPIPE)
};

/// A transport over a pipe (or socketpair) fd, for subprocesses: takes ownership of `fd`
/// (made non-blocking here), calls `p->connection_made` and starts reading if the fd is
/// readable. The kind follows the fd: a socket is a full stream transport; a pipe's read end
/// (O_RDONLY) only reads (writing throws `std::logic_error`, EOF closes); a write end
/// (O_WRONLY) only writes (write_eof closes it, and the transport closes when the read end is
/// closed: with `connection_lost(std::system_error(EPIPE))` if data was still buffered). No
/// write raises SIGPIPE. Extra info: "pipe" (the fd), or for a socket "socket", "peername",
/// "sockname". Throws `std::system_error` if the fd is bad, and what connection_made throws
/// (the fd is then closed).
inline std::shared_ptr<transport> make_pipe_transport(event_loop& loop, int fd,
                                                      std::shared_ptr<protocol> p) {
    unique_fd owned(fd);
    set_nonblocking(fd);
    stream_transport::kind k = stream_transport::kind::socket;
    if (!is_socket(fd)) {
        const int fl = ::fcntl(fd, F_GETFL);
        if (fl < 0) throw_os_error(errno, "fcntl(F_GETFL)");
        switch (fl & O_ACCMODE) {
        case O_RDONLY: k = stream_transport::kind::read_pipe; break;
        case O_WRONLY: k = stream_transport::kind::write_pipe; break;
        default: k = stream_transport::kind::duplex_pipe; break;
        }
    }
    auto t = std::make_shared<stream_transport>(loop, std::move(owned), std::move(p), k);
    t->start();
    return t;
}

} // namespace corio::detail
