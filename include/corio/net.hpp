#pragma once
/// \file corio/net.hpp
/// Stream connections and servers with transports and protocols: asyncio's
/// `loop.create_connection`, `loop.create_server`, `loop.create_unix_connection`,
/// `loop.create_unix_server` and `asyncio.Server`.
///
/// ```
/// struct echo : corio::protocol {                              // class Echo(asyncio.Protocol):
///     corio::transport* t = nullptr;
///     void connection_made(corio::transport& tr) override { t = &tr; }
///     void data_received(std::string_view d) override { t->write(d); }
/// };
/// auto factory = [] { return std::make_shared<echo>(); };
/// corio::server srv = co_await corio::create_server(factory, "127.0.0.1", 8888);
/// co_await srv.serve_forever();                                // until cancelled
/// ```
///
/// The same functions are members of the loop (`loop.create_server(factory, host, port)`).
/// The transports behave as asyncio's selector transports: see corio/detail/stream_transport.hpp
/// for reading, writing, flow control, errors and ownership. In short: the loop owns every open
/// transport and every server that is not closed, so dropping all handles neither closes nor
/// leaks them; closing the loop (the end of `corio::run`) releases whatever is still open.
///
/// | asyncio | corio |
/// |---|---|
/// | `await loop.create_connection(f, host, port)` | `co_await corio::create_connection(f, host, port)` → `{transport, protocol}` |
/// | `await loop.create_server(f, host, port)` | `co_await corio::create_server(f, host, port)` → `corio::server` |
/// | `await loop.create_unix_connection(f, path)` | `co_await corio::create_unix_connection(f, path)` |
/// | `await loop.create_unix_server(f, path)` | `co_await corio::create_unix_server(f, path)` |
/// | `server.close()`, `await server.wait_closed()` | `srv.close()`, `co_await srv.wait_closed()` |
/// | `await server.serve_forever()` | `co_await srv.serve_forever()` |
/// | `server.sockets[0].getsockname()[1]` | `srv.port()` |
///
/// GCC 12 (PR 100611): a factory lambda that captures something with a destructor (a
/// shared_ptr, a string) must be named before the statement with the `co_await`, not written
/// inside it.

#include <corio/address.hpp>
#include <corio/detail/socket.hpp>
#include <corio/detail/stream_transport.hpp>
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/protocols.hpp>
#include <corio/resolver.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/transports.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace corio {

/// Options of `create_connection` (asyncio's keyword arguments).
struct connection_options {
    /// Bind the socket to this local address before connecting (asyncio's `local_addr`); its
    /// family must match the remote address's (addresses of other families are skipped).
    /// (Initialized explicitly so that `{.family = AF_INET}` draws no
    /// -Wmissing-field-initializers.)
    std::optional<address> local_addr = std::nullopt;
    /// AF_INET or AF_INET6 to resolve `host` to that family only; AF_UNSPEC (the default) for
    /// both.
    int family = AF_UNSPEC;
};

/// Options of `create_server` and `create_unix_server` (asyncio's keyword arguments).
struct server_options {
    /// The listen() backlog; also the most connections accepted per readiness.
    int backlog = 100;
    /// SO_REUSEADDR (TCP only): bind even if a recently closed server's connections linger in
    /// TIME_WAIT. On by default, as asyncio on Unix.
    bool reuse_address = true;
    /// SO_REUSEPORT (TCP only): several servers may bind the same port. Throws
    /// `std::invalid_argument` where the system lacks it.
    bool reuse_port = false;
    /// AF_INET or AF_INET6 to bind only addresses of that family; AF_UNSPEC for both.
    int family = AF_UNSPEC;
    /// Start accepting at once; otherwise call `start_serving()` or `serve_forever()` (the
    /// sockets are bound but not listening until then: connections are refused).
    bool start_serving = true;
};

/// \cond INTERNAL
namespace detail {

/// The protocol factory of a server, type-erased (move-only factories work too).
class protocol_factory_base {
public:
    virtual ~protocol_factory_base() = default;
    virtual std::shared_ptr<protocol> make() = 0;
};

template <class F>
class protocol_factory_impl final : public protocol_factory_base {
public:
    explicit protocol_factory_impl(F f) : m_fn(std::move(f)) {}
    std::shared_ptr<protocol> make() override { return m_fn(); }

private:
    F m_fn;
};

/// The element type of the shared_ptr a protocol factory returns, checked.
template <class Factory>
struct factory_traits {
    using pointer = std::invoke_result_t<Factory&>;
    using element = typename pointer::element_type;
    static_assert(std::is_same_v<pointer, std::shared_ptr<element>>,
                  "corio: the protocol factory must return a std::shared_ptr<P>");
    static_assert(std::is_base_of_v<protocol, element>,
                  "corio: a stream protocol must derive from corio::protocol");
};

/// asyncio's ACCEPT_RETRY_DELAY: how long a server stops accepting after accept() ran out of
/// file descriptors or memory.
inline constexpr std::chrono::seconds accept_retry_delay{1};

/// What a `corio::server` handle shares: asyncio's Server plus the listening sockets' accept
/// loops (selector_events._accept_connection). Owned by the loop (loop_registry) until closed;
/// connections hold it too (to report their end, for wait_closed).
class server_state final : public loop_resource,
                           public connection_owner,
                           public std::enable_shared_from_this<server_state> {
public:
    struct listener {
        unique_fd fd;
        address addr;
        bool reading = false;
        timer_handle retry; ///< the accept retry after EMFILE & co
    };

    server_state(event_loop& loop, std::vector<listener> listeners,
                 std::unique_ptr<protocol_factory_base> factory, int backlog)
        : m_loop(&loop), m_listeners(std::move(listeners)), m_factory(std::move(factory)),
          m_backlog(backlog > 0 ? backlog : 1) {
        if (!m_listeners.empty()) m_port = m_listeners.front().addr.port();
    }
    server_state(const server_state&) = delete;
    server_state& operator=(const server_state&) = delete;

    /// A Unix server removes its socket file when closed, if it is still the one it bound.
    void set_unix_cleanup(std::string path, dev_t dev, ino_t ino) {
        m_unix_path = std::move(path);
        m_unix_dev = dev;
        m_unix_ino = ino;
    }

    /// The loop takes ownership.
    void attach_to_loop() {
        m_registry = &loop_registry::of(*m_loop);
        m_registry->add(shared_from_this());
    }

    bool live() const noexcept { return m_loop && !m_loop->is_closed(); }
    bool closed() const noexcept { return m_closed; }
    bool serving() const noexcept { return m_serving; }
    int port() const noexcept { return m_port; }
    event_loop* loop() const noexcept { return m_loop; }

    std::vector<address> addresses() const {
        std::vector<address> out;
        if (m_closed) return out;
        for (const listener& l : m_listeners) out.push_back(l.addr);
        return out;
    }

    /// asyncio's Server._start_serving: listen() and watch every socket.
    void start_serving() {
        if (m_serving || m_closed || !live()) return;
        for (listener& l : m_listeners)
            if (::listen(l.fd.get(), m_backlog) != 0) throw_os_error(errno, "listen");
        m_serving = true;
        for (std::size_t i = 0; i < m_listeners.size(); ++i) watch(i);
    }

    /// asyncio's Server.close: stop listening; connections stay.
    void close() {
        if (m_closed) return;
        auto keep = shared_from_this(); // the registry may hold the last reference
        m_closed = true;
        m_serving = false;
        for (listener& l : m_listeners) {
            l.retry.cancel();
            if (l.reading && live()) m_loop->remove_reader(l.fd.get());
            l.reading = false;
            l.fd.reset();
        }
        unlink_unix_path();
        if (m_serving_forever) {
            future<void> f = std::move(*m_serving_forever);
            m_serving_forever.reset();
            if (!f.done() && live()) f.cancel();
        }
        if (m_connections.empty()) wake_closed_waiters();
        std::shared_ptr<loop_resource> owned;
        if (m_registry) owned = m_registry->remove(this);
        m_registry = nullptr;
    }

    void close_clients() {
        for (const auto& t : connections()) t->close();
    }
    void abort_clients() {
        for (const auto& t : connections()) t->abort();
    }

    /// asyncio's Server.wait_closed (3.12.1+): until closed and every connection is lost.
    static task<> wait_closed(std::shared_ptr<server_state> s) {
        if (s->m_waiters_done || !s->live()) co_return;
        std::erase_if(s->m_waiters, [](const future<void>& f) { return f.done(); });
        future<void> f(*s->m_loop);
        s->m_waiters.push_back(f);
        co_await f;
    }

    /// asyncio's Server.serve_forever, except that on cancellation it closes the server
    /// without waiting for its connections (see corio::server::serve_forever).
    static task<> serve_forever(std::shared_ptr<server_state> s) {
        if (s->m_serving_forever)
            throw std::runtime_error("server is already being awaited on serve_forever()");
        if (s->m_closed || !s->live()) throw std::runtime_error("server is closed");
        s->start_serving();
        future<void> f(*s->m_loop);
        s->m_serving_forever = f;
        try {
            co_await f; // completes only by cancellation: of this task, or by close()
        } catch (const cancelled_error&) {
            if (s->m_serving_forever && *s->m_serving_forever == f) s->m_serving_forever.reset();
            s->close();
            throw;
        }
    }

    // --- connection_owner -------------------------------------------------------------------

    void connection_attached(stream_transport& t) override { m_connections.insert(&t); }
    void connection_detached(stream_transport& t) noexcept override {
        m_connections.erase(&t);
        if (m_connections.empty() && m_closed) wake_closed_waiters();
    }

    // --- loop_resource ----------------------------------------------------------------------

    void loop_closed() noexcept override {
        m_loop = nullptr;
        m_registry = nullptr;
        m_closed = true;
        m_serving = false;
        for (listener& l : m_listeners) {
            l.reading = false;
            l.fd.reset();
        }
        unlink_unix_path();
        m_serving_forever.reset();
        m_waiters.clear();
        m_waiters_done = true;
        // The registry releases the connections too (they do not detach themselves): keep no
        // pointer to them, or close_clients() on a handle kept past the loop would use them.
        m_connections.clear();
    }

private:
    std::vector<std::shared_ptr<stream_transport>> connections() const {
        std::vector<std::shared_ptr<stream_transport>> out;
        out.reserve(m_connections.size());
        for (stream_transport* t : m_connections)
            out.push_back(std::shared_ptr<stream_transport>(t->shared_from_this(), t));
        return out;
    }

    void wake_closed_waiters() noexcept {
        if (m_waiters_done) return;
        m_waiters_done = true;
        std::vector<future<void>> ws;
        ws.swap(m_waiters);
        if (!live()) return;
        for (future<void>& f : ws)
            if (!f.done()) f.set_result();
    }

    void unlink_unix_path() noexcept {
        if (m_unix_path.empty()) return;
        struct stat st{};
        if (::stat(m_unix_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
            st.st_dev == m_unix_dev && st.st_ino == m_unix_ino)
            ::unlink(m_unix_path.c_str());
        m_unix_path.clear();
    }

    void watch(std::size_t i) {
        listener& l = m_listeners[i];
        if (l.reading || !l.fd || !live()) return;
        m_loop->add_reader(l.fd.get(), [this, i] { on_acceptable(i); });
        l.reading = true;
    }

    /// asyncio's _accept_connection: accept what is pending (at most `backlog` per readiness).
    void on_acceptable(std::size_t i) {
        auto keep = shared_from_this(); // a connection_made may close the server
        for (int n = 0; n < m_backlog && m_serving; ++n) {
            address peer;
            const int fd = accept_socket(m_listeners[i].fd.get(), &peer);
            if (fd < 0) {
                const int e = errno;
                if (is_transient_accept_error(e)) return;
                if (is_resource_accept_error(e)) {
                    out_of_resources(i, e);
                    return;
                }
                throw_os_error(e, "accept"); // reported by the loop ("Exception in callback")
            }
            unique_fd conn(fd);
            if (peer.family() == AF_INET || peer.family() == AF_INET6) set_tcp_nodelay(fd);
            accept_one(std::move(conn), peer);
        }
    }

    /// EMFILE, ENFILE, ENOBUFS, ENOMEM: level-triggered readiness would report the socket again
    /// at once, so stop watching it for a while (existing connections are served meanwhile).
    void out_of_resources(std::size_t i, int err) {
        listener& l = m_listeners[i];
        m_loop->call_exception_handler(
            {"socket.accept() out of system resource",
             std::make_exception_ptr(std::system_error(err, std::generic_category(), "accept")),
             {}});
        if (l.reading) m_loop->remove_reader(l.fd.get());
        l.reading = false;
        std::weak_ptr<server_state> weak = weak_from_this();
        l.retry = m_loop->call_later(accept_retry_delay, [weak, i] {
            if (auto s = weak.lock(); s && s->m_serving) s->watch(i);
        });
    }

    void accept_one(unique_fd conn, const address& peer) noexcept {
        try {
            std::shared_ptr<protocol> p = m_factory->make();
            if (!p) throw std::invalid_argument("corio: the protocol factory returned a null pointer");
            auto t = std::make_shared<stream_transport>(*m_loop, std::move(conn), std::move(p),
                                                        stream_transport::kind::socket,
                                                        shared_from_this(), peer);
            t->start();
        } catch (...) {
            if (live())
                m_loop->call_exception_handler(
                    {"Error on transport creation for incoming connection", std::current_exception(), {}});
        }
    }

    event_loop* m_loop;
    loop_registry* m_registry = nullptr;
    std::vector<listener> m_listeners;
    std::unique_ptr<protocol_factory_base> m_factory;
    int m_backlog;
    int m_port = 0;
    std::unordered_set<stream_transport*> m_connections;
    std::vector<future<void>> m_waiters;
    std::optional<future<void>> m_serving_forever;
    std::string m_unix_path;
    dev_t m_unix_dev = 0;
    ino_t m_unix_ino = 0;
    bool m_serving = false;
    bool m_closed = false;
    bool m_waiters_done = false;
};

/// Suspends until `fd` is writable (the end of a non-blocking connect). The writer is removed
/// however the wait ends (cancellation included).
inline task<> wait_writable(event_loop& loop, int fd) {
    future<void> ready(loop);
    loop.add_writer(fd, [ready]() mutable {
        if (!ready.done()) ready.set_result();
    });
    struct remove_writer_guard {
        event_loop& loop;
        int fd;
        ~remove_writer_guard() {
            if (!loop.is_closed()) loop.remove_writer(fd);
        }
    };
    remove_writer_guard guard{loop, fd};
    co_await ready;
}

/// asyncio's _connect_sock + sock_connect: a new socket of `to`'s family, bound to `local`
/// if given, connected to `to`. The socket lives in this coroutine's frame until returned, so
/// a cancellation (or an error) closes it.
inline task<unique_fd> connect_stream_socket(event_loop& loop, address to, std::optional<address> local) {
    unique_fd fd = open_socket(to.family(), SOCK_STREAM);
    if (local) {
        if (local->family() != to.family())
            throw_os_error(EAFNOSUPPORT, "no matching local address with family " +
                                             std::to_string(to.family()) + " found (local_addr " +
                                             local->to_string() + ")");
        if (::bind(fd.get(), local->data(), local->size()) != 0) {
            const int e = errno; // before the message is built: that may change errno
            throw_os_error(e, "error while attempting to bind on address " + local->to_string());
        }
    }
    if (::connect(fd.get(), to.data(), to.size()) == 0) co_return fd;
    int err = errno;
    if (to.family() == AF_UNIX && err == EAGAIN) {
        // A Unix listener's backlog is full: Linux does not queue the connect (it is not in
        // progress, and the socket reports writable at once), so try again a little later.
        for (auto delay = std::chrono::milliseconds(1);; delay = std::min(delay * 2, std::chrono::milliseconds(100))) {
            co_await sleep(delay);
            if (::connect(fd.get(), to.data(), to.size()) == 0) co_return fd;
            err = errno;
            if (err != EAGAIN) break;
        }
    } else if (err == EINPROGRESS || err == EINTR || err == EAGAIN) {
        co_await wait_writable(loop, fd.get());
        err = socket_error(fd.get());
        if (err == 0) co_return fd;
    }
    throw_os_error(err, "Connect call failed " + to.to_string());
}

/// asyncio's "Multiple exceptions: ..." when every address failed.
[[noreturn]] inline void throw_connect_errors(const std::vector<std::system_error>& errors) {
    if (errors.empty()) throw_os_error(EHOSTUNREACH, "create_connection: no address to connect to");
    const std::string first = errors.front().what();
    bool same = true;
    for (const auto& e : errors) same = same && first == e.what();
    if (same) throw errors.front();
    std::string msg = "Multiple exceptions: ";
    for (std::size_t i = 0; i < errors.size(); ++i) {
        if (i) msg += ", ";
        msg += errors[i].what();
    }
    throw std::system_error(errors.back().code(), msg);
}

/// The transport over a connected socket, started (connection_made has run).
template <class P>
std::pair<std::shared_ptr<transport>, std::shared_ptr<P>> start_connection(event_loop& loop, unique_fd fd,
                                                                           std::shared_ptr<P> proto) {
    if (!proto) throw std::invalid_argument("corio: the protocol factory returned a null pointer");
    auto t = std::make_shared<stream_transport>(loop, std::move(fd), proto, stream_transport::kind::socket);
    t->start();
    return {std::move(t), std::move(proto)};
}

/// Binds one listening socket per address (asyncio's create_server loop): SO_REUSEADDR,
/// SO_REUSEPORT, IPV6_V6ONLY. EADDRNOTAVAIL skips the address (its family is not enabled).
inline std::vector<server_state::listener> bind_stream_listeners(const std::vector<address>& addrs,
                                                                 const server_options& opts) {
    std::vector<server_state::listener> out;
    for (const address& a : addrs) {
        unique_fd fd;
        try {
            fd = open_socket(a.family(), SOCK_STREAM);
        } catch (const std::system_error&) { // a family the system does not support
            continue;
        }
        if (opts.reuse_address)
            set_socket_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)");
        if (opts.reuse_port) {
#ifdef SO_REUSEPORT
            set_socket_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "setsockopt(SO_REUSEPORT)");
#else
            throw std::invalid_argument("corio: reuse_port is not supported on this system");
#endif
        }
        // One socket per family: Linux would otherwise make a v6 wildcard socket take v4 too,
        // and the v4 socket bound next would fail with EADDRINUSE.
        if (a.family() == AF_INET6)
            set_socket_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 1, "setsockopt(IPV6_V6ONLY)");
        if (::bind(fd.get(), a.data(), a.size()) != 0) {
            const int e = errno;
            if (e == EADDRNOTAVAIL) continue;
            throw_os_error(e, "error while attempting to bind on address " + a.to_string());
        }
        server_state::listener l;
        l.addr = socket_local_address(fd.get());
        l.fd = std::move(fd);
        out.push_back(std::move(l));
    }
    if (out.empty()) {
        std::string list;
        for (const address& a : addrs) list += (list.empty() ? "" : ", ") + a.to_string();
        throw_os_error(EADDRNOTAVAIL, "could not bind on any address out of [" + list + "]");
    }
    return out;
}

template <class Factory>
std::shared_ptr<server_state> make_server(event_loop& loop, std::vector<server_state::listener> ls,
                                          Factory factory, const server_options& opts) {
    auto st = std::make_shared<server_state>(
        loop, std::move(ls), std::make_unique<protocol_factory_impl<Factory>>(std::move(factory)),
        opts.backlog);
    return st;
}

/// Starts serving a new server; if that fails (listen), closes it and rethrows.
inline void start_or_close(server_state& st) {
    try {
        st.start_serving();
    } catch (...) {
        st.close();
        throw;
    }
}

} // namespace detail
/// \endcond

/// A listening server (asyncio's `Server`), made by `create_server`, `create_unix_server` (and
/// the streams' `start_server`). A copyable handle: copies refer to the same server. Dropping
/// every handle neither closes the server nor stops it: the loop keeps it until `close()` (or
/// until the loop closes, which releases it and its connections).
///
/// Loop-thread only, like the loop's other objects.
class server {
public:
    /// An empty handle (for members assigned later); only assignment, `operator bool` and
    /// comparison may be used on it.
    server() = default;
    /// Wraps a server's state (corio's own functions make these).
    explicit server(std::shared_ptr<detail::server_state> s) noexcept : m_state(std::move(s)) {}

    /// True unless the handle is empty.
    explicit operator bool() const noexcept { return m_state != nullptr; }

    /// The port of the first listening socket (the real one when port 0 was asked for); still
    /// given after close(). 0 for a Unix server.
    int port() const noexcept { return m_state->port(); }
    /// The addresses the server listens on (asyncio's `[s.getsockname() for s in
    /// server.sockets]`): one per socket, e.g. both `0.0.0.0:P1` and `[::]:P2` for host "".
    /// Empty once closed.
    std::vector<address> addresses() const { return m_state->addresses(); }

    /// Stops listening: the listening sockets are closed (a Unix server's socket file is
    /// removed), `serve_forever()` is cancelled; connections already accepted stay open
    /// (`close_clients()` closes them). Idempotent.
    void close() { m_state->close(); }
    /// True while accepting connections.
    bool is_serving() const noexcept { return m_state->serving(); }
    /// Starts listening and accepting (for a server made with `start_serving = false`).
    /// Does nothing if already serving or closed. Throws `std::system_error` if listen() fails.
    void start_serving() { m_state->start_serving(); }

    /// Closes every connection of the server (asyncio 3.13): each flushes what it buffered,
    /// then its protocol's connection_lost is called.
    void close_clients() { m_state->close_clients(); }
    /// Aborts every connection of the server (asyncio 3.13): buffered data is dropped.
    void abort_clients() { m_state->abort_clients(); }

    /// `co_await srv.wait_closed()`: waits until the server is closed and every connection it
    /// accepted has been lost (asyncio 3.12.1+), at once if that is so already.
    /// Cancellation: only the waiting stops.
    [[nodiscard]] task<> wait_closed() const { return detail::server_state::wait_closed(m_state); }

    /// `co_await srv.serve_forever()`: starts serving if needed and waits until cancelled.
    /// When the awaiting task is cancelled it closes the server and rethrows `cancelled_error`;
    /// `close()` called elsewhere also ends it with `cancelled_error` (as in asyncio). Unlike
    /// asyncio 3.12 it does not then wait for the server's connections to end (which would
    /// hang a SIGTERM shutdown on one idle keep-alive connection): follow it with
    /// `close_clients()` and `co_await wait_closed()` for that. Throws `std::runtime_error` if
    /// the server is closed or another `serve_forever` is already waiting on it.
    [[nodiscard]] task<> serve_forever() const { return detail::server_state::serve_forever(m_state); }

    /// The loop the server runs on. Throws `std::runtime_error` once that loop is closed.
    event_loop& get_loop() const {
        if (!m_state->live()) throw std::runtime_error("Event loop is closed");
        return *m_state->loop();
    }

    /// True if both handles refer to the same server (or both are empty).
    friend bool operator==(const server& a, const server& b) noexcept { return a.m_state == b.m_state; }

private:
    std::shared_ptr<detail::server_state> m_state;
};

/// asyncio's `loop.create_connection(protocol_factory, host, port, family=, local_addr=)`:
/// resolves `host` (`corio::getaddrinfo`, off the loop thread unless numeric), then tries each
/// address in turn (no "happy eyeballs") with a non-blocking connect; on the first success
/// calls `factory()` for the protocol, makes the transport (TCP_NODELAY on), calls the
/// protocol's `connection_made` and starts reading. Gives `{transport, protocol}`; `P` is the
/// element type of the `std::shared_ptr` the factory returns, a `corio::protocol`.
///
/// Throws `std::system_error` when every address fails: the one error (e.g. ECONNREFUSED,
/// "Connect call failed 127.0.0.1:1"), or, when the addresses failed differently, one whose
/// message lists them all ("Multiple exceptions: ...", asyncio's words) and whose code is the
/// last one's; `corio::gai_error` if `host` does not resolve; whatever `factory()` or
/// `connection_made` throws (the connection is then closed, and connection_lost not called).
///
/// Cancellation: at any point before it returns (resolving, connecting) the socket is closed
/// and `cancelled_error` thrown; nothing leaks.
template <class Factory>
auto create_connection(Factory factory, std::string host, port_or_service port, connection_options opts = {})
    -> task<std::pair<std::shared_ptr<transport>, typename detail::factory_traits<Factory>::pointer>> {
    using P = typename detail::factory_traits<Factory>::element;
    event_loop& loop = get_running_loop();
    addrinfo_options hints;
    hints.family = opts.family;
    hints.type = SOCK_STREAM;
    const std::vector<address> addrs = co_await getaddrinfo(std::move(host), std::move(port), hints);
    std::vector<std::system_error> errors;
    detail::unique_fd fd;
    for (const address& a : addrs) {
        try {
            fd = co_await detail::connect_stream_socket(loop, a, opts.local_addr);
            break;
        } catch (const std::system_error& e) {
            errors.push_back(e);
        }
    }
    if (!fd) detail::throw_connect_errors(errors);
    detail::set_tcp_nodelay(fd.get());
    std::shared_ptr<P> proto = factory();
    co_return detail::start_connection(loop, std::move(fd), std::move(proto));
}

/// asyncio's `loop.create_unix_connection(protocol_factory, path)`: as create_connection, to
/// the Unix stream socket at `path` (a path starting with '\0' is a Linux abstract name).
/// Throws `std::system_error` (ENOENT if nothing is there, ECONNREFUSED if nobody listens),
/// `std::invalid_argument` for a path too long for `sockaddr_un`. Cancellation closes the
/// socket.
template <class Factory>
auto create_unix_connection(Factory factory, std::string path)
    -> task<std::pair<std::shared_ptr<transport>, typename detail::factory_traits<Factory>::pointer>> {
    using P = typename detail::factory_traits<Factory>::element;
    event_loop& loop = get_running_loop();
    const address to = address::unix_path(path);
    detail::unique_fd fd = co_await detail::connect_stream_socket(loop, to, std::nullopt);
    std::shared_ptr<P> proto = factory();
    co_return detail::start_connection(loop, std::move(fd), std::move(proto));
}

/// asyncio's `loop.create_server(protocol_factory, host, port, ...)`: binds a listening socket
/// for each address `host` resolves to (with AI_PASSIVE; an empty host means every interface,
/// IPv4 and IPv6, as asyncio's `None` or `''`; "0.0.0.0" means every IPv4 interface), with
/// SO_REUSEADDR (by default) and IPV6_V6ONLY on IPv6 sockets. Port 0 picks a free port (a
/// different one per socket when there are several): read it with `server::port()`. Then,
/// unless `opts.start_serving` is false, listens and accepts: for each connection, the
/// socket is made non-blocking and close-on-exec with TCP_NODELAY, `factory()` gives its
/// protocol, whose `connection_made` is called, and reading starts.
///
/// Errors while serving go to the loop's exception handler: an exception from `factory()` or
/// `connection_made` ("Error on transport creation for incoming connection"; that connection
/// is closed), and accept() running out of file descriptors or memory (EMFILE, ENFILE,
/// ENOBUFS, ENOMEM: "socket.accept() out of system resource"), after which the server stops
/// accepting for one second (asyncio's ACCEPT_RETRY_DELAY) and then resumes, while existing
/// connections are served as usual.
///
/// Throws `std::system_error` if binding fails (EADDRINUSE: "error while attempting to bind on
/// address ..."), `corio::gai_error` if `host` does not resolve. Cancellation: while
/// resolving (names only); nothing is bound yet then.
template <class Factory>
task<server> create_server(Factory factory, std::string host, port_or_service port, server_options opts = {}) {
    (void)sizeof(detail::factory_traits<Factory>);
    event_loop& loop = get_running_loop();
    addrinfo_options hints;
    hints.family = opts.family;
    hints.type = SOCK_STREAM;
    hints.flags = AI_PASSIVE;
    const std::vector<address> addrs = co_await getaddrinfo(std::move(host), std::move(port), hints);
    auto st = detail::make_server(loop, detail::bind_stream_listeners(addrs, opts), std::move(factory), opts);
    st->attach_to_loop();
    if (opts.start_serving) detail::start_or_close(*st);
    co_return server(std::move(st));
}

/// asyncio's `loop.create_unix_server(protocol_factory, path, ...)`: a listening Unix stream
/// socket at `path` (a path starting with '\0' is a Linux abstract name, with no file). A
/// stale socket file left at `path` by an earlier server is removed first (asyncio 3.12;
/// anything else there makes bind fail with EADDRINUSE), and the file is removed again when the
/// server closes, if it is still the one this server made (asyncio 3.13's cleanup_socket).
/// Only `opts.backlog` and `opts.start_serving` apply. Throws `std::system_error`
/// (EADDRINUSE: "Address 'PATH' is already in use"), `std::invalid_argument` for a path too
/// long for `sockaddr_un`. Never suspends.
template <class Factory>
task<server> create_unix_server(Factory factory, std::string path, server_options opts = {}) {
    (void)sizeof(detail::factory_traits<Factory>);
    event_loop& loop = get_running_loop();
    const address at = address::unix_path(path);
    const bool abstract = path[0] == '\0';
    if (!abstract) {
        struct stat st{};
        if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
    }
    detail::unique_fd fd = detail::open_socket(AF_UNIX, SOCK_STREAM);
    if (::bind(fd.get(), at.data(), at.size()) != 0) {
        const int e = errno;
        if (e == EADDRINUSE) detail::throw_os_error(e, "Address '" + at.to_string() + "' is already in use");
        detail::throw_os_error(e, "error while attempting to bind on address '" + at.to_string() + "'");
    }
    std::vector<detail::server_state::listener> ls(1);
    ls[0].addr = at;
    ls[0].fd = std::move(fd);
    auto st = detail::make_server(loop, std::move(ls), std::move(factory), opts);
    if (!abstract) {
        struct stat sb{};
        if (::stat(path.c_str(), &sb) == 0) st->set_unix_cleanup(path, sb.st_dev, sb.st_ino);
    }
    st->attach_to_loop();
    if (opts.start_serving) detail::start_or_close(*st);
    co_return server(std::move(st));
}

/// \cond INTERNAL
template <class Factory, class... Args>
auto event_loop::create_connection(Factory&& factory, Args&&... args) {
    return corio::create_connection(std::forward<Factory>(factory), std::forward<Args>(args)...);
}
template <class Factory, class... Args>
auto event_loop::create_server(Factory&& factory, Args&&... args) {
    return corio::create_server(std::forward<Factory>(factory), std::forward<Args>(args)...);
}
template <class Factory, class... Args>
auto event_loop::create_unix_connection(Factory&& factory, Args&&... args) {
    return corio::create_unix_connection(std::forward<Factory>(factory), std::forward<Args>(args)...);
}
template <class Factory, class... Args>
auto event_loop::create_unix_server(Factory&& factory, Args&&... args) {
    return corio::create_unix_server(std::forward<Factory>(factory), std::forward<Args>(args)...);
}
/// \endcond

} // namespace corio
