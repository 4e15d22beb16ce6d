#pragma once
/// \file corio/detail/socket.hpp
/// File-descriptor and socket helpers for the stream transports and servers (corio/net.hpp):
/// an RAII fd, non-blocking close-on-exec sockets and pipes, accept, sends and pipe writes that
/// never raise SIGPIPE, and errno-to-exception helpers.
///
/// ## Portability
/// Linux has `accept4`, `pipe2`, `SOCK_NONBLOCK | SOCK_CLOEXEC` and `MSG_NOSIGNAL`; each is used
/// under `#ifdef`, with an `fcntl` fallback (and `SO_NOSIGPIPE` / `F_SETNOSIGPIPE` where the
/// system has them instead of MSG_NOSIGNAL, as macOS). The fallbacks leave a window between
/// creating an fd and marking it close-on-exec in which a fork+exec on another thread inherits
/// it; that is what every portable library accepts.
///
/// ## SIGPIPE
/// Writing to a socket or pipe whose reading end is gone raises SIGPIPE, whose default action
/// kills the process. A library must neither die nor change the process's signal dispositions,
/// so:
/// - sockets: `send(..., MSG_NOSIGNAL)`; where that flag does not exist, `SO_NOSIGPIPE` is set
///   on every socket corio creates or accepts;
/// - pipes (no per-call flag exists): where `F_SETNOSIGPIPE` exists (macOS) it is set on the
///   fd; elsewhere `pipe_write` blocks SIGPIPE for the calling thread around `write()` and,
///   if the write failed with EPIPE, consumes the SIGPIPE it generated (`sigtimedwait` with a
///   zero timeout), unless one was already pending before the write, which it leaves for its
///   owner. The write then fails with EPIPE like any other error.

#include <corio/address.hpp>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <ctime>
#include <string>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

namespace corio::detail {

/// Owns a file descriptor: closes it when destroyed unless released. Move-only.
class unique_fd {
public:
    unique_fd() = default;
    /// Adopts `fd` (-1: empty).
    explicit unique_fd(int fd) noexcept : m_fd(fd) {}
    unique_fd(unique_fd&& o) noexcept : m_fd(std::exchange(o.m_fd, -1)) {}
    unique_fd& operator=(unique_fd&& o) noexcept {
        if (this != &o) reset(std::exchange(o.m_fd, -1));
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    int get() const noexcept { return m_fd; }
    explicit operator bool() const noexcept { return m_fd >= 0; }
    /// Gives up ownership.
    int release() noexcept { return std::exchange(m_fd, -1); }
    /// Closes the fd it owns (if any) and adopts `fd`. close() errors are ignored: the fd is
    /// released whatever close() says (POSIX leaves its state unspecified on EINTR, and Linux
    /// always frees it, so retrying could close someone else's fd).
    void reset(int fd = -1) noexcept {
        if (m_fd >= 0) ::close(m_fd);
        m_fd = fd;
    }

private:
    int m_fd = -1;
};

/// asyncio's OSError: `std::system_error(err, std::generic_category(), what)`.
[[noreturn]] inline void throw_os_error(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

/// Sets or clears O_NONBLOCK. Throws `std::system_error`.
inline void set_nonblocking(int fd, bool on = true) {
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0) throw_os_error(errno, "fcntl(F_GETFL)");
    const int want = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    if (want != fl && ::fcntl(fd, F_SETFL, want) < 0) throw_os_error(errno, "fcntl(O_NONBLOCK)");
}

/// Sets FD_CLOEXEC. Throws `std::system_error`.
inline void set_cloexec(int fd) {
    const int fl = ::fcntl(fd, F_GETFD);
    if (fl < 0 || ::fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) throw_os_error(errno, "fcntl(FD_CLOEXEC)");
}

/// An int socket option. Throws `std::system_error` with `what`.
inline void set_socket_option(int fd, int level, int name, int value, const char* what) {
    if (::setsockopt(fd, level, name, &value, sizeof value) != 0) throw_os_error(errno, what);
}

/// Where send() has no MSG_NOSIGNAL, the socket itself must be told not to raise SIGPIPE.
inline void set_no_sigpipe([[maybe_unused]] int fd) noexcept {
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
}

/// A non-blocking, close-on-exec socket. Throws `std::system_error`.
inline unique_fd open_socket(int family, int type, int protocol = 0) {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
    unique_fd fd(::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol));
    if (!fd) throw_os_error(errno, "socket");
#else
    unique_fd fd(::socket(family, type, protocol));
    if (!fd) throw_os_error(errno, "socket");
    set_cloexec(fd.get());
    set_nonblocking(fd.get());
#endif
    set_no_sigpipe(fd.get());
    return fd;
}

/// accept() giving a non-blocking, close-on-exec socket (accept4 where available). Returns the
/// new fd, or -1 with errno set (never throws: the accept loop sorts the errors). Fills `peer`
/// if not null.
inline int accept_socket(int listen_fd, address* peer) noexcept {
    address tmp;
    address& a = peer ? *peer : tmp;
    socklen_t len = address::capacity();
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || \
    defined(__DragonFly__)
    const int fd = ::accept4(listen_fd, a.data(), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return -1;
#else
    const int fd = ::accept(listen_fd, a.data(), &len);
    if (fd < 0) return -1;
    if (::fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
        const int e = errno;
        ::close(fd);
        errno = e;
        return -1;
    }
#endif
    a.resize(len);
    set_no_sigpipe(fd);
    return fd;
}

/// A close-on-exec pipe `{read end, write end}` (blocking: set_nonblocking the ends the loop
/// watches). Throws `std::system_error`.
inline std::pair<unique_fd, unique_fd> open_pipe() {
    int fds[2];
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || \
    defined(__DragonFly__)
    if (::pipe2(fds, O_CLOEXEC) != 0) throw_os_error(errno, "pipe2");
    return {unique_fd(fds[0]), unique_fd(fds[1])};
#else
    if (::pipe(fds) != 0) throw_os_error(errno, "pipe");
    std::pair<unique_fd, unique_fd> p{unique_fd(fds[0]), unique_fd(fds[1])};
    set_cloexec(fds[0]);
    set_cloexec(fds[1]);
    return p;
#endif
}

/// Where the system can (macOS: F_SETNOSIGPIPE), marks a pipe fd so that writes to it never
/// raise SIGPIPE; returns false elsewhere, where pipe_write does the blocking dance instead.
inline bool set_pipe_no_sigpipe([[maybe_unused]] int fd) noexcept {
#if defined(F_SETNOSIGPIPE)
    return ::fcntl(fd, F_SETNOSIGPIPE, 1) == 0;
#else
    return false;
#endif
}

/// send() that never raises SIGPIPE: returns what send returns (errno set on -1).
inline ssize_t socket_send(int fd, const char* data, std::size_t n) noexcept {
#if defined(MSG_NOSIGNAL)
    return ::send(fd, data, n, MSG_NOSIGNAL);
#else
    return ::send(fd, data, n, 0); // SO_NOSIGPIPE was set on the socket
#endif
}

/// write() to a pipe that never raises SIGPIPE (see the file comment): returns what write
/// returns (errno set on -1). `no_sigpipe_fd`: the fd was marked with set_pipe_no_sigpipe.
inline ssize_t pipe_write(int fd, const char* data, std::size_t n, bool no_sigpipe_fd) noexcept {
    if (no_sigpipe_fd) return ::write(fd, data, n);
#if !defined(_POSIX_REALTIME_SIGNALS) || _POSIX_REALTIME_SIGNALS <= 0
    // No sigtimedwait to take a generated SIGPIPE back: such systems must mark the fd with
    // set_pipe_no_sigpipe (macOS has F_SETNOSIGPIPE), or ignore SIGPIPE.
    return ::write(fd, data, n);
#else
    sigset_t pipe_set, old_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    // Block first, then look: a SIGPIPE pending now (for this thread or the process) belongs
    // to someone else and must not be consumed.
    const bool blocked = ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set) == 0;
    bool was_pending = false;
    if (blocked) {
        sigset_t pending;
        sigemptyset(&pending);
        if (::sigpending(&pending) == 0) was_pending = sigismember(&pending, SIGPIPE) == 1;
    }
    ssize_t r = ::write(fd, data, n);
    const int err = errno;
    if (blocked) {
        if (r < 0 && err == EPIPE && !was_pending) {
            // The write queued a SIGPIPE for this thread: take it back before unblocking.
            const timespec zero{0, 0};
            while (::sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
            }
        }
        if (sigismember(&old_set, SIGPIPE) != 1) ::pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
    }
    errno = err;
    return r;
#endif
}

/// Disables Nagle's algorithm on a TCP socket, as asyncio does for every stream socket. Errors
/// (not a TCP socket: a Unix socket) are ignored.
inline void set_tcp_nodelay(int fd) noexcept {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/// getsockname; the empty address on failure.
inline address socket_local_address(int fd) {
    address a;
    socklen_t len = address::capacity();
    if (::getsockname(fd, a.data(), &len) != 0) return address{};
    a.resize(len);
    return a;
}

/// getpeername; the empty address on failure (not connected).
inline address socket_peer_address(int fd) {
    address a;
    socklen_t len = address::capacity();
    if (::getpeername(fd, a.data(), &len) != 0) return address{};
    a.resize(len);
    return a;
}

/// The pending error of a socket (SO_ERROR), 0 if none; errno if getsockopt itself fails.
inline int socket_error(int fd) noexcept {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}

/// True if `fd` is a socket.
inline bool is_socket(int fd) noexcept {
    struct stat st{};
    return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/// accept() errors that mean "nothing (more) to accept now": asyncio ignores them.
inline bool is_transient_accept_error(int err) noexcept {
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED
#ifdef EPROTO
           || err == EPROTO
#endif
        ;
}

/// accept() errors that mean "out of a resource": asyncio stops accepting for a while.
inline bool is_resource_accept_error(int err) noexcept {
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

} // namespace corio::detail
