#pragma once
/// \file corio/resolver.hpp
/// Name resolution: asyncio's `loop.getaddrinfo` and `socket.getservbyname`.
///
/// ```
/// std::vector<corio::address> as = co_await corio::getaddrinfo("localhost", 80);
/// int http = corio::getservbyname("http");            // 80
/// ```
///
/// `getaddrinfo` runs the system's blocking `getaddrinfo(3)` on the default thread pool
/// (`corio::to_thread`), so the loop keeps serving other tasks during a slow DNS query. A
/// numeric host (`"127.0.0.1"`, `"::1"`) with a numeric port is answered at once without a
/// thread, as asyncio's `_ipaddr_info` fast path does. Errors of the resolver come out as
/// `corio::gai_error`, a `std::system_error` (asyncio's `socket.gaierror`, an OSError).

#include <corio/address.hpp>
#include <corio/detail/socket.hpp>
#include <corio/executor.hpp>
#include <corio/task.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace corio {

/// The error category of `getaddrinfo(3)`'s `EAI_*` codes; `message(code)` is
/// `gai_strerror(code)`.
inline const std::error_category& gai_category() noexcept {
    struct category final : std::error_category {
        const char* name() const noexcept override { return "getaddrinfo"; }
        std::string message(int code) const override { return ::gai_strerror(code); }
    };
    static const category instance;
    return instance;
}

/// A name-resolution failure (asyncio's `socket.gaierror`): `code()` holds the `EAI_*` value
/// (`code().value() == EAI_NONAME` for an unknown host) in `gai_category()`, and `what()` reads
/// "getaddrinfo(HOST, SERVICE): MESSAGE", e.g. "Name or service not known". Derives from
/// `std::system_error`, so a `catch (const std::system_error&)` for connection errors also
/// catches it, as `except OSError` does in Python.
class gai_error : public std::system_error {
public:
    /// An error with the `EAI_*` code `code`; `what` says what was being resolved.
    gai_error(int code, const std::string& what) : std::system_error(code, gai_category(), what) {}
};

/// The hints of `getaddrinfo` (the keyword arguments of asyncio's `loop.getaddrinfo`).
struct addrinfo_options {
    /// AF_INET, AF_INET6, or AF_UNSPEC (the default) for both.
    int family = AF_UNSPEC;
    /// SOCK_STREAM, SOCK_DGRAM, or 0 (the default) for any.
    int type = 0;
    /// IPPROTO_TCP, IPPROTO_UDP, or 0 for any.
    int protocol = 0;
    /// AI_* flags, e.g. AI_PASSIVE (with an empty host: the wildcard addresses, for bind).
    int flags = 0;
};

namespace detail {

/// asyncio's `_ipaddr_info`: the address, without a lookup, when `host` is a numeric IPv4 or
/// IPv6 address of an acceptable family and the port is numeric. Otherwise nothing.
inline std::optional<address> numeric_address(const std::string& host, const port_or_service& port,
                                              int family) {
    if (host.empty()) return std::nullopt; // None: the resolver picks the wildcard or loopback
    const int p = port.str().empty() ? 0 : port.number();
    if (p < 0 || p > 65535) return std::nullopt;
    unsigned char buf[sizeof(in6_addr)];
    int af = AF_UNSPEC;
    if (::inet_pton(AF_INET, host.c_str(), buf) == 1) {
        af = AF_INET;
    } else {
        std::string bare = host.substr(0, host.find('%'));
        if (::inet_pton(AF_INET6, bare.c_str(), buf) == 1) af = AF_INET6;
    }
    if (af == AF_UNSPEC || (family != AF_UNSPEC && family != af)) return std::nullopt;
    try {
        return address(host, p);
    } catch (const std::invalid_argument&) { // an unknown IPv6 scope: let the resolver say so
        return std::nullopt;
    }
}

/// The blocking lookup (runs on a pool thread): every address, in the resolver's order,
/// without the duplicates that one per socket type (stream, datagram, raw) would give.
inline std::vector<address> blocking_getaddrinfo(const std::string& host, const std::string& service,
                                                 const addrinfo_options& opts) {
    addrinfo hints{};
    hints.ai_family = opts.family;
    hints.ai_socktype = opts.type;
    hints.ai_protocol = opts.protocol;
    hints.ai_flags = opts.flags;
    addrinfo* res = nullptr;
    const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                                 service.empty() ? nullptr : service.c_str(), &hints, &res);
    if (rc != 0) {
        const std::string what = "getaddrinfo(" + (host.empty() ? std::string("None") : host) +
                                 ", " + (service.empty() ? std::string("None") : service) + ")";
#ifdef EAI_SYSTEM
        if (rc == EAI_SYSTEM) throw_os_error(errno, what);
#endif
        throw gai_error(rc, what);
    }
    std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, &::freeaddrinfo);
    std::vector<address> out;
    for (const addrinfo* ai = res; ai; ai = ai->ai_next) {
        if (!ai->ai_addr || ai->ai_addrlen > address::capacity()) continue;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        address a = address::from_sockaddr(ai->ai_addr, ai->ai_addrlen);
        if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(std::move(a));
    }
    if (out.empty()) // only families an address cannot hold: as asyncio's "returned empty list"
        throw gai_error(EAI_NONAME, "getaddrinfo(" + host + ", " + service + ") returned no IP address");
    return out;
}

/// getaddrinfo with a copy of everything the pool thread needs (no reference into the
/// awaiting coroutine's frame, which a cancellation may destroy while the lookup runs).
inline task<std::vector<address>> resolve_on_thread(std::string host, std::string service,
                                                   addrinfo_options opts) {
    co_return co_await to_thread(&blocking_getaddrinfo, std::move(host), std::move(service), opts);
}

} // namespace detail

/// asyncio's `loop.getaddrinfo(host, port, family=, type=, proto=, flags=)`: the addresses of
/// `host` (a name or a numeric address; empty means Python's `None`: the wildcard address with
/// `AI_PASSIVE`, the loopback address without) with `port` (a number, or a service name such
/// as "http"), in the resolver's order (IPv6 first for "localhost" on many systems), without
/// duplicates (asyncio returns one 5-tuple per socket type; a `corio::address` has no type).
///
/// Runs `getaddrinfo(3)` on the default executor (corio/executor.hpp), except for a numeric
/// host with a numeric port, which is answered at once. Never returns an empty vector.
///
/// Throws `corio::gai_error` if the name or service is unknown (`EAI_NONAME`,
/// `EAI_SERVICE`, ...), `std::system_error` for `EAI_SYSTEM`, `std::runtime_error` outside a
/// loop or after the default executor was shut down.
///
/// Cancellation: the awaiting task sees `cancelled_error` at once; a lookup already running on
/// the pool thread runs to completion and its result is dropped.
inline task<std::vector<address>> getaddrinfo(std::string host, port_or_service port = 0,
                                              addrinfo_options opts = {}) {
    if (auto a = detail::numeric_address(host, port, opts.family)) co_return std::vector<address>{*a};
    std::string service = port.str();
    co_return co_await detail::resolve_on_thread(std::move(host), std::move(service), opts);
}

/// `socket.getservbyname(name, proto)`: the port of a service in the system's services
/// database (`/etc/services`): `getservbyname("http") == 80`, `getservbyname("domain", "udp")
/// == 53`. Synchronous: a local file lookup. Thread-safe (getservbyname_r where the system has
/// it, a lock otherwise). Throws `std::system_error` (ENOENT, "service/proto not found", as
/// Python's OSError) for an unknown service.
inline int getservbyname(const std::string& name, const std::string& proto = "tcp") {
    const char* p = proto.empty() ? nullptr : proto.c_str();
    int port = -1;
#if defined(__GLIBC__) || defined(__FreeBSD__)
    servent entry{};
    servent* found = nullptr;
    std::vector<char> buf(1024);
    for (;;) {
        const int rc = ::getservbyname_r(name.c_str(), p, &entry, buf.data(), buf.size(), &found);
        if (rc == ERANGE && buf.size() < (1u << 20)) {
            buf.resize(buf.size() * 2);
            continue;
        }
        break;
    }
    if (found) port = ntohs(static_cast<std::uint16_t>(found->s_port));
#else
    static std::mutex lock;
    {
        std::lock_guard guard(lock);
        if (const servent* found = ::getservbyname(name.c_str(), p))
            port = ntohs(static_cast<std::uint16_t>(found->s_port));
    }
#endif
    if (port < 0)
        detail::throw_os_error(ENOENT, "service/proto not found: '" + name + "'/" +
                                           (proto.empty() ? std::string("*") : proto));
    return port;
}

} // namespace corio
