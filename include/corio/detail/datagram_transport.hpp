#pragma once
/// \file corio/detail/datagram_transport.hpp
/// The datagram transport behind `corio::create_datagram_endpoint` (corio/datagram.hpp): a
/// UDP or Unix datagram socket driven by the loop's add_reader/add_writer, with the semantics
/// of CPython's `_SelectorDatagramTransport`:
///
/// - Reading: each readiness receives datagrams until EAGAIN, at most `max_reads_per_ready`
///   of them (the fd is level-triggered: what is left is read on the next iteration, after the
///   other ready callbacks: fairness). A datagram larger than the 64 KiB receive buffer is
///   delivered truncated, as asyncio does. A failed receive (ECONNREFUSED from an ICMP "port
///   unreachable" on a connected socket, ...) goes to `error_received`; the endpoint stays open.
/// - Writing: `sendto` sends at once when nothing is queued; on EAGAIN the datagram is queued
///   and the queue is flushed when the socket becomes writable. Send errors go to
///   `error_received` (synchronously, from inside `sendto`, when the immediate send fails).
///   Flow control as asyncio's `_FlowControlMixin`: `pause_writing()` when the queued size goes
///   over the high-water mark, `resume_writing()` once it drains to the low-water mark.
/// - Exceptions escaping `datagram_received` / `error_received` go to the loop's exception
///   handler and the endpoint keeps working (in CPython they escape `_read_ready` into the
///   loop's handler, the transport stays open). Exceptions escaping `connection_lost`,
///   `pause_writing` and `resume_writing` are reported too.
/// - close(): stops reading, sends what is queued, then calls `connection_lost(nullptr)` on a
///   later iteration (exactly once) and closes the socket. abort(): drops the queue, same end.
///
/// Ownership: while the endpoint is open the loop owns a reference, through the reader
/// (and writer) callbacks and the scheduled connection_lost call. Closing the loop with an
/// endpoint still open drops those callbacks, which destroys the transport and closes the
/// socket (without a connection_lost call, as asyncio). The destructor never touches the loop.

#include <corio/address.hpp>
#include <corio/detail/loop_registry.hpp>
#include <corio/detail/socket.hpp>
#include <corio/event_loop.hpp>
#include <corio/exceptions.hpp>
#include <corio/protocols.hpp>
#include <corio/transports.hpp>

#include <algorithm>
#include <any>
#include <cerrno>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

namespace corio::detail {

// --- Helpers (the fd/socket plumbing itself is detail/socket.hpp's) ----------------------

/// asyncio removes a stale Unix socket file before binding a datagram endpoint to its path
/// (a leftover of an earlier run); anything else at that path is left alone (bind then fails
/// with EADDRINUSE).
inline void remove_stale_unix_socket(const address& a) {
    const std::string path = a.host();
    if (path.empty() || path[0] == '\0') return; // abstract namespace: no file
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
}

/// The receive buffer, one per thread (one loop per thread, and a buffer is only in use during
/// a datagram_received call, which cannot start another receive on the same thread).
inline char* datagram_read_buffer(std::size_t size) {
    thread_local std::unique_ptr<char[]> buf;
    if (!buf) buf.reset(new char[size]);
    return buf.get();
}

// --- The transport -------------------------------------------------------------------------

/// A UDP or Unix datagram endpoint: see the file comment.
class datagram_socket_transport final : public datagram_transport, public loop_resource {
public:
    /// Receive buffer size: every UDP payload fits (65507 bytes over IPv4, 65527 over IPv6).
    static constexpr std::size_t read_buffer_size = 65536;
    /// At most this many datagrams per readiness, then the loop runs other callbacks.
    static constexpr int max_reads_per_ready = 32;
    /// Counted per queued datagram on top of its payload in get_write_buffer_size(), so that
    /// a flood of empty datagrams still reaches the high-water mark.
    static constexpr std::size_t datagram_overhead = 8;

    /// Takes ownership of `fd` (non-blocking). `peer` is the remote address the socket is
    /// connected to, if any. Nothing happens until start().
    datagram_socket_transport(event_loop& loop, unique_fd fd,
                              std::shared_ptr<datagram_protocol> protocol,
                              std::optional<address> peer)
        : m_loop(&loop), m_fd(fd.release()), m_protocol(std::move(protocol)),
          m_peer(std::move(peer)) {
        m_sockname = query_sockname();
    }
    datagram_socket_transport(const datagram_socket_transport&) = delete;
    datagram_socket_transport& operator=(const datagram_socket_transport&) = delete;

    /// Never touches the loop: it may run while the loop closes, or after.
    ~datagram_socket_transport() override {
        if (m_fd >= 0) ::close(m_fd);
    }

    /// Calls connection_made (its exception propagates: the caller drops the transport, which
    /// closes the socket, and connection_lost is not called), then starts reading.
    void start() {
        // The loop owns the endpoint while it is open; if the loop closes first, loop_closed()
        // detaches it, so a handle kept past the loop never touches the loop.
        m_registry = &loop_registry::of(*m_loop);
        m_registry->add(shared_self());
        try {
            m_protocol->connection_made(*this);
        } catch (...) {
            // Undo whatever connection_made started (a queued send registers a writer that
            // would keep the transport alive): the socket closes when the caller drops us.
            m_closing = m_conn_lost = true;
            m_queue.clear();
            m_buffer_size = 0;
            stop_writing();
            m_protocol.reset();
            leave_registry();
            throw;
        }
        if (!m_closing) {
            auto self = shared_self();
            m_loop->add_reader(m_fd, [self] { self->read_ready(); });
            m_reading = true;
        }
    }

    // --- datagram_transport -------------------------------------------------------------

    void sendto(std::string_view data, const address& to) override {
        if (m_peer && to && !(to == *m_peer))
            throw std::invalid_argument("corio: invalid address: must be empty or " +
                                        m_peer->to_string() + " (the connected peer)");
        send_or_queue(data, to);
    }

    void sendto(std::string_view data) override {
        if (!m_peer)
            throw std::logic_error(
                "corio: sendto(data) without an address needs a connected endpoint "
                "(create_datagram_endpoint with a remote_addr)");
        send_or_queue(data, address{});
    }

    void close() override {
        if (m_closing) return;
        auto keep = shared_self(); // removing the reader may drop the loop's reference
        m_closing = true;
        stop_reading();
        if (m_queue.empty()) {
            m_conn_lost = true;
            stop_writing();
            schedule_connection_lost(nullptr);
        }
    }

    void abort() override { force_close(nullptr); }

    bool is_closing() const noexcept override { return m_closing; }

    std::any get_extra_info(std::string_view name) const override {
        if (name == "sockname") {
            if (m_fd >= 0) {
                if (address a = query_sockname()) return a;
            }
            if (m_sockname) return m_sockname;
            return {};
        }
        if (name == "peername") {
            if (m_peer) return *m_peer;
            return {};
        }
        if (name == "socket") {
            if (m_fd >= 0) return m_fd;
            return {};
        }
        return {};
    }

    std::size_t get_write_buffer_size() const noexcept override { return m_buffer_size; }

    // --- Flow control (asyncio's _FlowControlMixin; not yet in the datagram_transport base) ---

    /// Sets the water marks; see write_transport::set_write_buffer_limits.
    void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                 std::optional<std::size_t> low = std::nullopt) override {
        std::size_t h = high ? *high : (low ? 4 * *low : std::size_t{64 * 1024});
        std::size_t l = low ? *low : h / 4;
        if (l > h) throw std::invalid_argument("corio: high must be >= low must be >= 0");
        m_high = h;
        m_low = l;
        maybe_pause_protocol();
    }
    /// `{low, high}`.
    std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override {
        return {m_low, m_high};
    }

    /// The protocol (null once connection_lost has run).
    const std::shared_ptr<datagram_protocol>& protocol() const noexcept { return m_protocol; }

private:
    struct queued {
        std::string data;
        address to;
    };

    std::shared_ptr<datagram_socket_transport> shared_self() {
        return std::shared_ptr<datagram_socket_transport>(shared_from_this(), this);
    }

    address query_sockname() const {
        address a;
        socklen_t len = address::capacity();
        if (::getsockname(m_fd, a.data(), &len) != 0) return {};
        a.resize(len);
        return a;
    }

    void report(const char* what, std::exception_ptr e) noexcept {
        if (m_loop && !m_loop->is_closed()) m_loop->call_exception_handler({what, std::move(e), {}});
        else event_loop::print_report({what, std::move(e), {}});
    }

    /// error_received from inside the loop's callbacks: its exception is reported.
    void deliver_error(int err, const char* what) noexcept {
        if (!m_protocol) return;
        try {
            m_protocol->error_received(
                std::make_exception_ptr(std::system_error(err, std::generic_category(), what)));
        } catch (...) {
            report("Exception in callback datagram_protocol::error_received",
                   std::current_exception());
        }
    }

    void read_ready() {
        if (m_conn_lost || m_closing) return;
        auto keep = shared_self();
        char* buf = datagram_read_buffer(read_buffer_size);
        for (int i = 0; i < max_reads_per_ready && !m_closing; ++i) {
            address from;
            socklen_t len = address::capacity();
            const ssize_t n = ::recvfrom(m_fd, buf, read_buffer_size, 0, from.data(), &len);
            if (n < 0) {
                const int err = errno;
                if (err == EINTR) continue;
                if (err == EAGAIN || err == EWOULDBLOCK) return;
                deliver_error(err, "recvfrom");
                continue;
            }
            from.resize(len);
            const std::size_t size = std::min(static_cast<std::size_t>(n), read_buffer_size);
            try {
                m_protocol->datagram_received(std::string_view(buf, size), from);
            } catch (...) {
                report("Exception in callback datagram_protocol::datagram_received",
                       std::current_exception());
            }
        }
    }

    /// Sends one datagram now: 0 on success, else the errno (EAGAIN: try later).
    int send_one(std::string_view data, const address& to) noexcept {
#ifdef MSG_NOSIGNAL
        constexpr int flags = MSG_NOSIGNAL;
#else
        constexpr int flags = 0;
#endif
        for (;;) {
            const ssize_t n = m_peer ? ::send(m_fd, data.data(), data.size(), flags)
                                     : ::sendto(m_fd, data.data(), data.size(), flags, to.data(),
                                                to.size());
            if (n >= 0) return 0;
            if (errno != EINTR) return errno == EWOULDBLOCK ? EAGAIN : errno;
        }
    }

    void send_or_queue(std::string_view data, const address& to) {
        if (m_closing) return; // asyncio drops (and after a few, logs) sends on a closed transport
        if (m_queue.empty()) {
            const int err = send_one(data, to);
            if (err == 0) return;
            if (err != EAGAIN) {
                // As asyncio: called from inside sendto; what it throws reaches the caller.
                m_protocol->error_received(std::make_exception_ptr(
                    std::system_error(err, std::generic_category(), m_peer ? "send" : "sendto")));
                return;
            }
            auto self = shared_self();
            m_loop->add_writer(m_fd, [self] { self->write_ready(); });
            m_writing = true;
        }
        m_queue.push_back(queued{std::string(data), to});
        m_buffer_size += data.size() + datagram_overhead;
        maybe_pause_protocol();
    }

    void write_ready() {
        if (m_conn_lost) return;
        auto keep = shared_self();
        while (!m_queue.empty()) {
            queued& q = m_queue.front();
            const int err = send_one(q.data, q.to);
            if (err == EAGAIN) break;
            m_buffer_size -= q.data.size() + datagram_overhead;
            m_queue.pop_front();
            if (err != 0) {
                // As asyncio: report, then resume on the next writability (still watched).
                deliver_error(err, m_peer ? "send" : "sendto");
                return;
            }
        }
        maybe_resume_protocol(); // may queue more
        if (m_queue.empty()) {
            stop_writing();
            if (m_closing && !m_conn_lost) {
                m_conn_lost = true;
                call_connection_lost(nullptr); // inside a writer callback: not inside close()
            }
        }
    }

    void maybe_pause_protocol() {
        if (m_buffer_size <= m_high || m_protocol_paused || !m_protocol) return;
        m_protocol_paused = true;
        try {
            m_protocol->pause_writing();
        } catch (...) {
            report("protocol.pause_writing() failed", std::current_exception());
        }
    }

    void maybe_resume_protocol() {
        if (!m_protocol_paused || m_buffer_size > m_low || !m_protocol) return;
        m_protocol_paused = false;
        try {
            m_protocol->resume_writing();
        } catch (...) {
            report("protocol.resume_writing() failed", std::current_exception());
        }
    }

    void stop_reading() noexcept {
        if (!m_reading) return;
        m_reading = false;
        if (m_loop && !m_loop->is_closed()) m_loop->remove_reader(m_fd);
    }
    void stop_writing() noexcept {
        if (!m_writing) return;
        m_writing = false;
        if (m_loop && !m_loop->is_closed()) m_loop->remove_writer(m_fd);
    }

    void force_close(std::exception_ptr exc) {
        if (m_conn_lost) return;
        auto keep = shared_self();
        if (!m_queue.empty()) {
            m_queue.clear();
            m_buffer_size = 0;
        }
        stop_writing();
        m_closing = true;
        stop_reading();
        m_conn_lost = true;
        schedule_connection_lost(std::move(exc));
    }

    void schedule_connection_lost(std::exception_ptr exc) {
        if (!m_loop || m_loop->is_closed()) { // nothing can be called back any more: let go
            close_socket();
            m_protocol.reset();
            leave_registry();
            return;
        }
        auto self = shared_self();
        m_loop->call_soon([self, exc] { self->call_connection_lost(exc); });
    }

    void call_connection_lost(std::exception_ptr exc) noexcept {
        std::shared_ptr<datagram_protocol> p = std::move(m_protocol);
        if (p) {
            try {
                p->connection_lost(std::move(exc));
            } catch (...) {
                report("Exception in callback datagram_protocol::connection_lost",
                       std::current_exception());
            }
        }
        close_socket();
        leave_registry();
        // `p` is released here: the transport no longer keeps its protocol (breaks a
        // protocol -> transport reference cycle, as asyncio's `self._protocol = None`).
    }

    /// The loop no longer owns the endpoint (the caller still holds a reference to it).
    void leave_registry() noexcept {
        if (m_registry) {
            std::shared_ptr<loop_resource> keep = m_registry->remove(this);
            m_registry = nullptr;
            // `keep` may be the last reference: callers hold their own (`self`) around this.
            (void)keep;
        }
    }

    // --- loop_resource ------------------------------------------------------------------

    /// The loop is closing with the endpoint still open: drop everything without callbacks,
    /// and forget the loop (a handle kept past it must never touch it).
    void loop_closed() noexcept override {
        m_loop = nullptr;
        m_registry = nullptr;
        m_closing = m_conn_lost = true;
        m_reading = m_writing = false;
        m_queue.clear();
        m_buffer_size = 0;
        close_socket();
        m_protocol.reset();
    }

    void close_socket() noexcept {
        if (m_fd >= 0) {
            m_sockname = query_sockname();
            ::close(std::exchange(m_fd, -1));
        }
    }

    event_loop* m_loop; ///< null once the loop closed (loop_closed)
    loop_registry* m_registry = nullptr;
    int m_fd;
    std::shared_ptr<datagram_protocol> m_protocol;
    std::optional<address> m_peer;
    address m_sockname;
    std::deque<queued> m_queue;
    std::size_t m_buffer_size = 0;
    std::size_t m_high = 64 * 1024;
    std::size_t m_low = 16 * 1024;
    bool m_reading = false;
    bool m_writing = false;
    bool m_closing = false;         ///< close() or abort() was called
    bool m_conn_lost = false;       ///< connection_lost is scheduled (or done)
    bool m_protocol_paused = false; ///< pause_writing() was called, resume_writing() not yet
};

} // namespace corio::detail
