#pragma once
/// \file corio/datagram.hpp
/// Datagram endpoints: asyncio's `loop.create_datagram_endpoint`, for UDP (IPv4, IPv6) and Unix
/// datagram sockets.
///
/// ```
/// struct echo : corio::datagram_protocol {
///     corio::datagram_transport* t = nullptr;
///     void connection_made(corio::datagram_transport& tr) override { t = &tr; }
///     void datagram_received(std::string_view data, const corio::address& from) override {
///         t->sendto(data, from);
///     }
/// };
/// auto [transport, proto] = co_await corio::create_datagram_endpoint(
///     [] { return std::make_shared<echo>(); }, corio::address{"127.0.0.1", 9999});
/// ```
///
/// | asyncio | corio |
/// |---|---|
/// | `loop.create_datagram_endpoint(P, local_addr=('127.0.0.1', 0))` | `create_datagram_endpoint(factory, corio::address{"127.0.0.1", 0})` (or `loop.create_datagram_endpoint(...)`) |
/// | `remote_addr=('127.0.0.1', 53)` | third argument: `create_datagram_endpoint(factory, {}, corio::address{"127.0.0.1", 53})` |
/// | `family=socket.AF_UNIX`, `local_addr='/tmp/s'` | `corio::address::unix_path("/tmp/s")` (the family follows the address) |
/// | `reuse_port=True`, `allow_broadcast=True` | `corio::datagram_options{.reuse_port = true, .allow_broadcast = true}` |
/// | `transport.sendto(data, addr)` / `sendto(data)` | same (the second for a connected endpoint) |
/// | `transport.get_extra_info('sockname')` | `transport->extra_info<corio::address>("sockname")` |
///
/// Behaviour (as CPython's selector datagram transport; details in
/// corio/detail/datagram_transport.hpp):
/// - `datagram_received(data, from)` once per datagram, in arrival order; a datagram larger than
///   64 KiB (possible on Unix sockets only) arrives truncated. Empty datagrams are sent and
///   received (asyncio before 3.13 silently skipped sending them).
/// - `sendto` never blocks: it sends at once if nothing is queued, else queues (a full socket
///   buffer, EAGAIN) and sends on writability; `pause_writing()` / `resume_writing()` at the
///   water marks (64 KiB / 16 KiB). A send that fails (EMSGSIZE, ECONNREFUSED, ...) goes to
///   `error_received` and the endpoint stays open; so does a receive that fails (an ICMP "port
///   unreachable" after a send on a connected endpoint shows up as ECONNREFUSED).
/// - `sendto` after `close()` is dropped silently. `close()` sends what is queued, then calls
///   `connection_lost(nullptr)` once, on a later loop iteration; `abort()` drops the queue.
/// - An exception escaping `datagram_received` or `error_received` goes to the loop's
///   exception handler and the endpoint keeps receiving (CPython's behaviour for datagram
///   transports; stream transports abort instead).
/// - Closing the loop with endpoints still open closes their sockets (no connection_lost).
/// - Unix paths: a stale socket file at the local path is removed before binding (as asyncio);
///   the file is NOT removed when the endpoint closes (asyncio does not either): unlink it
///   yourself.
/// - Hosts are numeric (`corio::address`); resolve names first with `corio::getaddrinfo`.

#include <corio/address.hpp>
#include <corio/detail/datagram_transport.hpp>
#include <corio/event_loop.hpp>
#include <corio/protocols.hpp>
#include <corio/task.hpp>
#include <corio/transports.hpp>

#include <cerrno>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include <sys/socket.h>

namespace corio {

/// Options of `create_datagram_endpoint` (asyncio's keyword arguments).
struct datagram_options {
    /// AF_INET, AF_INET6 or AF_UNIX; AF_UNSPEC (the default) takes the family of `local_addr`
    /// or `remote_addr`. Needed only to make an endpoint with neither address.
    int family = AF_UNSPEC;
    /// SO_REUSEPORT: several endpoints may bind the same address and port (the kernel spreads
    /// the datagrams). Throws `std::invalid_argument` where the system has no SO_REUSEPORT.
    bool reuse_port = false;
    /// SO_BROADCAST: allow sending to broadcast addresses.
    bool allow_broadcast = false;
};

/// asyncio's `loop.create_datagram_endpoint(protocol_factory, local_addr, remote_addr, ...)`:
/// creates a datagram socket of the family of the addresses (UDP over IPv4/IPv6, or a Unix
/// datagram socket for `address::unix_path`), binds it to `local_addr` if given (port 0 picks
/// a free port: read it back with `get_extra_info("sockname")`), connects it to
/// `remote_addr` if given (then only that peer's datagrams arrive and `sendto(data)` works),
/// calls `factory()` for the protocol, then the protocol's `connection_made(transport)`, and
/// starts receiving. See the file comment for the transport's behaviour.
///
/// Returns (the task gives) `{transport, protocol}`, as asyncio's tuple; `P` is the element
/// type of the `std::shared_ptr` the factory returns, a `datagram_protocol`. The transport
/// stays alive while open (the loop holds it) even if the caller drops both pointers.
///
/// Throws `std::invalid_argument` if neither address nor `opts.family` gives a family, or the
/// two addresses' families differ; `std::system_error` if socket, bind or connect fails (e.g.
/// EADDRINUSE), the socket then being closed; whatever `factory()` or `connection_made`
/// throws (the socket is closed, connection_lost is not called).
///
/// Cancellation: the task never suspends (binding and connecting a datagram socket do not
/// block), so it completes once started; a task cancelled before it starts creates nothing.
///
/// GCC 12 (PR 100611): a factory lambda that captures something non-trivially destructible
/// (a shared_ptr, a string) must be named before the `co_await` statement, not written inside
/// it.
template <class Factory>
auto create_datagram_endpoint(Factory factory, std::optional<address> local_addr = std::nullopt,
                              std::optional<address> remote_addr = std::nullopt,
                              datagram_options opts = {})
    -> task<std::pair<std::shared_ptr<datagram_transport>,
                      typename std::invoke_result_t<Factory&>>> {
    using protocol_ptr = std::invoke_result_t<Factory&>;
    using P = typename protocol_ptr::element_type;
    static_assert(std::is_same_v<protocol_ptr, std::shared_ptr<P>>,
                  "corio: the protocol factory must return a std::shared_ptr<P>");
    static_assert(std::is_base_of_v<datagram_protocol, P>,
                  "corio: a datagram endpoint's protocol must derive from corio::datagram_protocol");

    event_loop& loop = get_running_loop();
    if (local_addr && !*local_addr) local_addr.reset(); // an empty address means "none"
    if (remote_addr && !*remote_addr) remote_addr.reset();

    int family = opts.family;
    for (const std::optional<address>* a : {&local_addr, &remote_addr}) {
        if (!*a) continue;
        if (family == AF_UNSPEC) family = (*a)->family();
        else if ((*a)->family() != family)
            throw std::invalid_argument("corio: create_datagram_endpoint: address " +
                                        (*a)->to_string() + " is not of the endpoint's family");
    }
    if (family == AF_UNSPEC)
        throw std::invalid_argument(
            "corio: create_datagram_endpoint: unexpected address family (give local_addr, "
            "remote_addr or datagram_options::family)");

    detail::unique_fd fd = detail::open_socket(family, SOCK_DGRAM);
    if (opts.reuse_port) {
#ifdef SO_REUSEPORT
        detail::set_socket_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "setsockopt(SO_REUSEPORT)");
#else
        throw std::invalid_argument("corio: reuse_port is not supported on this system");
#endif
    }
    if (opts.allow_broadcast)
        detail::set_socket_option(fd.get(), SOL_SOCKET, SO_BROADCAST, 1, "setsockopt(SO_BROADCAST)");
    if (local_addr) {
        if (family == AF_UNIX) detail::remove_stale_unix_socket(*local_addr);
        if (::bind(fd.get(), local_addr->data(), local_addr->size()) != 0) {
            const int e = errno; // before the message is built: that may change errno
            detail::throw_os_error(e, "error while attempting to bind on address " +
                                          local_addr->to_string());
        }
    }
    if (remote_addr) {
        int rc;
        do {
            rc = ::connect(fd.get(), remote_addr->data(), remote_addr->size());
        } while (rc != 0 && errno == EINTR);
        if (rc != 0) {
            const int e = errno;
            detail::throw_os_error(e, "connect to " + remote_addr->to_string());
        }
    }

    protocol_ptr proto = factory();
    if (!proto) throw std::invalid_argument("corio: the protocol factory returned a null pointer");
    auto tr = std::make_shared<detail::datagram_socket_transport>(loop, std::move(fd), proto,
                                                                  std::move(remote_addr));
    tr->start();
    co_return std::pair<std::shared_ptr<datagram_transport>, protocol_ptr>(std::move(tr),
                                                                           std::move(proto));
}

/// \cond INTERNAL
template <class Factory, class... Args>
auto event_loop::create_datagram_endpoint(Factory&& factory, Args&&... args) {
    return corio::create_datagram_endpoint(std::forward<Factory>(factory),
                                           std::forward<Args>(args)...);
}
/// \endcond

} // namespace corio
