#pragma once
/// \file corio/address.hpp
/// `corio::address`: a socket address (IPv4, IPv6 or Unix path), the value asyncio spells as a
/// `(host, port)` tuple or a path, and `corio::port_or_service`, the "port" argument of the
/// connection functions (`8080` or `"http"`).
///
/// ```
/// corio::address a{"127.0.0.1", 8080};      // asyncio: ('127.0.0.1', 8080)
/// corio::address b{"::1", 53};              // asyncio: ('::1', 53, 0, 0)
/// auto u = corio::address::unix_path("/tmp/s");
/// a.host(); a.port(); a.to_string();        // "127.0.0.1", 8080, "127.0.0.1:8080"
/// ```
///
/// An address holds numeric hosts only; names are resolved with `corio::getaddrinfo`
/// (corio/resolver.hpp), off the loop thread.

#include <cerrno>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

namespace corio {

/// A socket address: IPv4 or IPv6 host and port, or a Unix-domain path. A value type
/// (copyable, comparable); the default address is empty (`family() == AF_UNSPEC`).
class address {
public:
    /// The empty address (family AF_UNSPEC).
    address() noexcept { std::memset(&m_storage, 0, sizeof m_storage); }

    /// A numeric IPv4 or IPv6 host and a port: `{"127.0.0.1", 80}`, `{"::1", 80}`,
    /// `{"fe80::1%eth0", 80}`. An empty host or "0.0.0.0" means any IPv4 address.
    /// Throws `std::invalid_argument` if `host` is not a numeric address (use getaddrinfo for
    /// names) or `port` is outside 0..65535.
    address(std::string_view host, int port) : address() {
        if (port < 0 || port > 65535)
            throw std::invalid_argument("corio::address: port out of range: " +
                                        std::to_string(port));
        const std::string h(host.empty() ? std::string_view("0.0.0.0") : host);
        auto* v4 = reinterpret_cast<sockaddr_in*>(&m_storage);
        if (::inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
            v4->sin_family = AF_INET;
            v4->sin_port = htons(static_cast<std::uint16_t>(port));
            m_size = sizeof(sockaddr_in);
            return;
        }
        std::string bare = h;
        std::uint32_t scope = 0;
        if (auto pct = bare.find('%'); pct != std::string::npos) {
            scope = parse_scope(bare.substr(pct + 1));
            bare.resize(pct);
        }
        if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']')
            bare = bare.substr(1, bare.size() - 2);
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&m_storage);
        if (::inet_pton(AF_INET6, bare.c_str(), &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons(static_cast<std::uint16_t>(port));
            v6->sin6_scope_id = scope;
            m_size = sizeof(sockaddr_in6);
            return;
        }
        std::memset(&m_storage, 0, sizeof m_storage);
        throw std::invalid_argument("corio::address: not a numeric IPv4 or IPv6 address: '" + h +
                                    "' (resolve names with corio::getaddrinfo)");
    }

    /// A Unix-domain socket path. Throws `std::invalid_argument` if it does not fit in
    /// `sockaddr_un` (about 107 bytes) or is empty. A path starting with '\0' is a Linux
    /// abstract-namespace name.
    static address unix_path(std::string_view path) {
        address a;
        auto* un = reinterpret_cast<sockaddr_un*>(&a.m_storage);
        if (path.empty() || path.size() >= sizeof un->sun_path)
            throw std::invalid_argument("corio::address: bad Unix socket path length " +
                                        std::to_string(path.size()));
        un->sun_family = AF_UNIX;
        std::memcpy(un->sun_path, path.data(), path.size());
        a.m_size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                          (path[0] == '\0' ? 0 : 1));
        return a;
    }

    /// Copies a `sockaddr` the system returned (accept, getpeername, recvfrom, getaddrinfo).
    /// Throws `std::invalid_argument` if `len` is larger than `sockaddr_storage`.
    static address from_sockaddr(const sockaddr* sa, socklen_t len) {
        address a;
        if (len > static_cast<socklen_t>(sizeof a.m_storage))
            throw std::invalid_argument("corio::address: sockaddr too large");
        if (sa && len > 0) std::memcpy(&a.m_storage, sa, static_cast<std::size_t>(len));
        a.m_size = len;
        return a;
    }

    /// AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC for the empty address.
    int family() const noexcept { return m_size == 0 ? AF_UNSPEC : m_storage.ss_family; }
    /// True unless this is the empty address.
    explicit operator bool() const noexcept { return m_size != 0; }

    /// The numeric host ("127.0.0.1", "::1"), or the path of a Unix address, or "" if empty.
    std::string host() const {
        char buf[INET6_ADDRSTRLEN] = {};
        switch (family()) {
        case AF_INET:
            ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&m_storage)->sin_addr, buf,
                        sizeof buf);
            return buf;
        case AF_INET6:
            ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&m_storage)->sin6_addr,
                        buf, sizeof buf);
            return buf;
        case AF_UNIX: {
            const auto* un = reinterpret_cast<const sockaddr_un*>(&m_storage);
            const std::size_t off = offsetof(sockaddr_un, sun_path);
            if (static_cast<std::size_t>(m_size) <= off) return {}; // unnamed socket
            std::size_t n = static_cast<std::size_t>(m_size) - off;
            if (un->sun_path[0] != '\0') n = ::strnlen(un->sun_path, n);
            return std::string(un->sun_path, n);
        }
        default:
            return {};
        }
    }

    /// The port (host byte order); 0 for Unix and empty addresses.
    int port() const noexcept {
        switch (family()) {
        case AF_INET:
            return ntohs(reinterpret_cast<const sockaddr_in*>(&m_storage)->sin_port);
        case AF_INET6:
            return ntohs(reinterpret_cast<const sockaddr_in6*>(&m_storage)->sin6_port);
        default:
            return 0;
        }
    }

    /// "127.0.0.1:80", "[::1]:80", the path of a Unix address, or "" if empty.
    std::string to_string() const {
        switch (family()) {
        case AF_INET:
            return host() + ':' + std::to_string(port());
        case AF_INET6:
            return '[' + host() + "]:" + std::to_string(port());
        default:
            return host();
        }
    }

    /// The raw address, for system calls.
    const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&m_storage); }
    /// The raw address, for system calls that fill it in (set size() with resize()).
    sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&m_storage); }
    /// The length of the raw address.
    socklen_t size() const noexcept { return m_size; }
    /// The largest raw address this type holds (for accept/recvfrom buffers).
    static constexpr socklen_t capacity() noexcept {
        return static_cast<socklen_t>(sizeof(sockaddr_storage));
    }
    /// Sets the length after a system call filled data(); clamps to capacity().
    void resize(socklen_t len) noexcept { m_size = len > capacity() ? capacity() : len; }

    /// Same family, host and port (IPv6: and scope), or the same Unix path. Compared field by
    /// field, not byte by byte: on the BSDs and macOS the kernel fills in `sin_len`, which an
    /// address built here leaves at 0.
    friend bool operator==(const address& a, const address& b) noexcept {
        if (a.family() != b.family()) return false;
        switch (a.family()) {
        case AF_UNSPEC:
            return true;
        case AF_INET: {
            const auto& x = *reinterpret_cast<const sockaddr_in*>(&a.m_storage);
            const auto& y = *reinterpret_cast<const sockaddr_in*>(&b.m_storage);
            return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
        }
        case AF_INET6: {
            const auto& x = *reinterpret_cast<const sockaddr_in6*>(&a.m_storage);
            const auto& y = *reinterpret_cast<const sockaddr_in6*>(&b.m_storage);
            return x.sin6_port == y.sin6_port && x.sin6_scope_id == y.sin6_scope_id &&
                   std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
        }
        case AF_UNIX: {
            // The path part only (an abstract name's length is significant).
            const std::size_t off = offsetof(sockaddr_un, sun_path);
            const std::size_t na = a.m_size > off ? static_cast<std::size_t>(a.m_size) - off : 0;
            const std::size_t nb = b.m_size > off ? static_cast<std::size_t>(b.m_size) - off : 0;
            const auto* pa = reinterpret_cast<const sockaddr_un*>(&a.m_storage)->sun_path;
            const auto* pb = reinterpret_cast<const sockaddr_un*>(&b.m_storage)->sun_path;
            if (na > 0 && pa[0] != '\0' && nb > 0 && pb[0] != '\0')
                return a.host() == b.host(); // a path: up to its NUL, whatever the length says
            return na == nb && std::memcmp(pa, pb, na) == 0;
        }
        default:
            return a.m_size == b.m_size &&
                   std::memcmp(&a.m_storage, &b.m_storage, static_cast<std::size_t>(a.m_size)) == 0;
        }
    }

private:
    static std::uint32_t parse_scope(const std::string& s) {
        if (s.empty()) return 0;
        std::uint32_t v = 0;
        for (char c : s) {
            if (c < '0' || c > '9') {
                unsigned idx = ::if_nametoindex(s.c_str());
                if (idx == 0)
                    throw std::invalid_argument("corio::address: unknown IPv6 scope '" + s + "'");
                return idx;
            }
            v = v * 10 + static_cast<std::uint32_t>(c - '0');
        }
        return v;
    }

    sockaddr_storage m_storage;
    socklen_t m_size = 0;
};

/// The port argument of the connection functions: a number (`8080`) or a service name
/// (`"http"`, resolved by getaddrinfo). Implicit from both, so `open_connection(host, 80)` and
/// `open_connection(host, "http")` both read naturally.
class port_or_service {
public:
    /// A port number (0..65535; checked when used).
    port_or_service(int port) : m_text(std::to_string(port)), m_port(port) {}
    /// A service name or a port in decimal ("80").
    port_or_service(std::string_view service) : m_text(service) {}
    /// As the string_view form.
    port_or_service(const char* service) : m_text(service ? service : "") {}
    /// As the string_view form.
    port_or_service(std::string service) : m_text(std::move(service)) {}

    /// The text getaddrinfo gets ("80" or "http").
    const std::string& str() const noexcept { return m_text; }
    /// The number if given as one (or as decimal text), else -1.
    int number() const noexcept {
        if (m_port >= 0) return m_port;
        if (m_text.empty() || m_text.size() > 5) return -1;
        int v = 0;
        for (char c : m_text) {
            if (c < '0' || c > '9') return -1;
            v = v * 10 + (c - '0');
        }
        return v;
    }

private:
    std::string m_text;
    int m_port = -1;
};

} // namespace corio
