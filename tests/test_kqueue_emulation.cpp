// kqueue: the semantics of Linux's kqueue emulation (tests/support/kqueue/sys/event.h), written
// from FreeBSD's kqueue(2) manual so that on a BSD the same checks hold for the real kqueue; then
// corio's kqueue backend on top of it (the whole suite runs with that backend when built with
// CORIO_KQUEUE_EMULATION=ON).
#include <corio/backend/kqueue.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <ctime>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

const struct timespec no_wait{0, 0};

/// Any of `bits` set in `flags` (doctest cannot decompose `a & b`).
bool has(long flags, long bits) { return (flags & bits) != 0; }

void set_nonblocking(int fd) {
    REQUIRE(::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
}

struct kq_fd {
    int fd = ::kqueue();
    kq_fd() { REQUIRE(fd >= 0); }
    ~kq_fd() { ::close(fd); }
};

/// A non-blocking pipe; either end may be closed early.
struct pipe_fds {
    int r = -1, w = -1;
    pipe_fds() {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        r = fds[0];
        w = fds[1];
        set_nonblocking(r);
        set_nonblocking(w);
    }
    ~pipe_fds() {
        close_r();
        close_w();
    }
    void close_r() {
        if (r >= 0) ::close(r);
        r = -1;
    }
    void close_w() {
        if (w >= 0) ::close(w);
        w = -1;
    }
    void put(const std::string& s) const { REQUIRE(::write(w, s.data(), s.size()) == static_cast<ssize_t>(s.size())); }
};

/// A connected pair of non-blocking Unix stream sockets.
struct sock_pair {
    int a = -1, b = -1;
    sock_pair() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
        a = fds[0];
        b = fds[1];
        set_nonblocking(a);
        set_nonblocking(b);
    }
    ~sock_pair() {
        close_a();
        close_b();
    }
    void close_a() {
        if (a >= 0) ::close(a);
        a = -1;
    }
    void close_b() {
        if (b >= 0) ::close(b);
        b = -1;
    }
};

struct kevent make_change(int fd, short filter, unsigned short flags, void* udata = nullptr) {
    struct kevent ev;
    EV_SET(&ev, static_cast<std::uintptr_t>(fd), filter, flags, 0, 0, udata);
    return ev;
}

/// Applies one change with no room for results: 0, or the errno of the failure.
int change(int kq, int fd, short filter, unsigned short flags, void* udata = nullptr) {
    struct kevent ev = make_change(fd, filter, flags, udata);
    errno = 0;
    return ::kevent(kq, &ev, 1, nullptr, 0, &no_wait) == 0 ? 0 : errno;
}

/// Collects what is pending now.
std::vector<struct kevent> pending(int kq, int room = 16) {
    std::vector<struct kevent> out(static_cast<std::size_t>(room));
    const int n = ::kevent(kq, nullptr, 0, out.data(), room, &no_wait);
    REQUIRE(n >= 0);
    out.resize(static_cast<std::size_t>(n));
    return out;
}

int open_fd_count() {
    int n = 0;
    for (int fd = 0; fd < 1024; ++fd)
        if (::fcntl(fd, F_GETFD) >= 0) ++n;
    return n;
}

extern "C" void note_signal(int) {}

/// Installs a handler for SIGUSR1 without SA_RESTART for the scope, so that blocking calls
/// return EINTR.
struct interrupting_signal {
    struct sigaction previous{};
    interrupting_signal() {
        struct sigaction sa{};
        sa.sa_handler = &note_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;
        REQUIRE(::sigaction(SIGUSR1, &sa, &previous) == 0);
    }
    ~interrupting_signal() { ::sigaction(SIGUSR1, &previous, nullptr); }

    /// Signals `t` until `done` is set (the signal may come before `t` blocks).
    static void until(std::thread& t, const std::atomic<bool>& done) {
        while (!done.load()) {
            ::pthread_kill(t.native_handle(), SIGUSR1);
            std::this_thread::sleep_for(5ms);
        }
        t.join();
    }
};

} // namespace

// --- The emulation (or the real kqueue), from the kqueue(2) manual -------------------------------

TEST_CASE("kevent on something that is not a kqueue fails with EBADF") {
    struct kevent ev;
    CHECK(::kevent(-1, nullptr, 0, &ev, 1, &no_wait) == -1);
    CHECK(errno == EBADF);
    pipe_fds p;
    CHECK(::kevent(p.r, nullptr, 0, &ev, 1, &no_wait) == -1);
    CHECK(errno == EBADF);
    {
        kq_fd closed;
        ::close(closed.fd);
        CHECK(::kevent(closed.fd, nullptr, 0, &ev, 1, &no_wait) == -1);
        CHECK(errno == EBADF);
        closed.fd = -1;
    }
}

TEST_CASE("EV_ADD reports a preexisting condition; level-triggered: reported while it holds") {
    kq_fd kq;
    pipe_fds p;
    p.put("hello");
    int marker = 0;
    REQUIRE(change(kq.fd, p.r, EVFILT_READ, EV_ADD, &marker) == 0);

    auto evs = pending(kq.fd);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].ident == static_cast<std::uintptr_t>(p.r));
    CHECK(evs[0].filter == EVFILT_READ);
    CHECK(evs[0].data == 5); // bytes available
    CHECK(evs[0].udata == &marker);
    CHECK_FALSE(has(evs[0].flags, EV_EOF | EV_ERROR));

    evs = pending(kq.fd); // not consumed: still reported
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].data == 5);

    char buf[8];
    REQUIRE(::read(p.r, buf, 2) == 2);
    evs = pending(kq.fd);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].data == 3);

    REQUIRE(::read(p.r, buf, 3) == 3);
    CHECK(pending(kq.fd).empty()); // the condition went away
    p.put("x");
    evs = pending(kq.fd); // and came back
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].data == 1);
}

TEST_CASE("EV_ADD on an existing knote updates it instead of adding a second one") {
    kq_fd kq;
    pipe_fds p;
    p.put("a");
    int first = 0, second = 0;
    REQUIRE(change(kq.fd, p.r, EVFILT_READ, EV_ADD, &first) == 0);
    REQUIRE(change(kq.fd, p.r, EVFILT_READ, EV_ADD, &second) == 0);
    auto evs = pending(kq.fd);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].udata == &second);
}

TEST_CASE("EV_CLEAR: reported once per state change, not while the condition merely holds") {
    kq_fd kq;
    sock_pair s;
    REQUIRE(change(kq.fd, s.a, EVFILT_READ, EV_ADD | EV_CLEAR) == 0);
    CHECK(pending(kq.fd).empty());

    REQUIRE(::write(s.b, "1", 1) == 1);
    auto evs = pending(kq.fd);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].data == 1);
    CHECK(pending(kq.fd).empty()); // state reset on retrieval, although the byte is unread

    REQUIRE(::write(s.b, "2", 1) == 1); // new data: a new event
    evs = pending(kq.fd);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].data == 2);
    CHECK(pending(kq.fd).empty());
}

TEST_CASE("EV_ONESHOT: returned once, then deleted") {
    kq_fd kq;
    pipe_fds p;
    p.put("abc");
    REQUIRE(change(kq.fd, p.r, EVFILT_READ, EV_ADD | EV_ONESHOT) == 0);
    auto evs = pending(kq.fd);
    REQUIRE(evs.size() == 1);
    CHECK(has(evs[0].flags, EV_ONESHOT));
    CHECK(pending(kq.fd).empty()); // the data is still there, the knote is not
    CHECK(change(kq.fd, p.r, EVFILT_READ, EV_DELETE) == ENOENT);
}

TEST_CASE("EV_DISABLE keeps the registration but reports nothing; EV_ENABLE reports again") {
    kq_fd kq;
    pipe_fds p;
    p.put("abc");
    REQUIRE(change(kq.fd, p.r, EVFILT_READ, EV_ADD) == 0);
    REQUIRE(change(kq.fd, p.r, EVFILT_READ, EV_DISABLE) == 0);
    CHECK(pending(kq.fd).empty());
    REQUIRE(change(kq.fd, p.r, EVFILT_READ, EV_ENABLE) == 0);
    CHECK(pending(kq.fd).size() == 1);

    pipe_fds q; // added disabled
    q.put("z");
    REQUIRE(change(kq.fd, q.r, EVFILT_READ, EV_ADD | EV_DISABLE) == 0);
    auto evs = pending(kq.fd);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].ident == static_cast<std::uintptr_t>(p.r));
    REQUIRE(change(kq.fd, q.r, EVFILT_READ, EV_ENABLE) == 0);
    CHECK(pending(kq.fd).size() == 2);

    // A disabled knote exists: it can be deleted; enabling or disabling a missing one fails.
    REQUIRE(change(kq.fd, q.r, EVFILT_READ, EV_DISABLE) == 0);
    CHECK(change(kq.fd, q.r, EVFILT_READ, EV_DELETE) == 0);
    CHECK(change(kq.fd, q.r, EVFILT_READ, EV_ENABLE) == ENOENT);
    CHECK(change(kq.fd, q.r, EVFILT_READ, EV_DISABLE) == ENOENT);
}

TEST_CASE("EV_DELETE stops the reports; deleting an unknown knote is ENOENT") {
    kq_fd kq;
    pipe_fds p;
    p.put("abc");
    REQUIRE(change(kq.fd, p.r, EVFILT_READ, EV_ADD) == 0);
    REQUIRE(pending(kq.fd).size() == 1);
    CHECK(change(kq.fd, p.r, EVFILT_READ, EV_DELETE) == 0);
    CHECK(pending(kq.fd).empty());
    CHECK(change(kq.fd, p.r, EVFILT_READ, EV_DELETE) == ENOENT);
    CHECK(change(kq.fd, p.w, EVFILT_WRITE, EV_DELETE) == ENOENT);
}

TEST_CASE("a change that fails: an EV_ERROR entry when the eventlist has room, else -1 and errno") {
    kq_fd kq;
    pipe_fds p;
    p.put("abc");
    int marker = 0;

    SUBCASE("with room: the entry echoes the change, data is the errno; later changes still apply") {
        struct kevent changes[2] = {make_change(p.r, EVFILT_WRITE, EV_DELETE, &marker),
                                    make_change(p.r, EVFILT_READ, EV_ADD)};
        struct kevent out[4];
        REQUIRE(::kevent(kq.fd, changes, 2, out, 4, &no_wait) == 1); // no events collected
        CHECK(out[0].flags == EV_ERROR);
        CHECK(out[0].data == ENOENT);
        CHECK(out[0].ident == static_cast<std::uintptr_t>(p.r));
        CHECK(out[0].filter == EVFILT_WRITE);
        CHECK(out[0].udata == &marker);
        auto evs = pending(kq.fd); // the second change was applied
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].filter == EVFILT_READ);
    }
    SUBCASE("without room: -1, errno, and the changes after it are not applied") {
        struct kevent changes[2] = {make_change(p.r, EVFILT_WRITE, EV_DELETE),
                                    make_change(p.r, EVFILT_READ, EV_ADD)};
        errno = 0;
        CHECK(::kevent(kq.fd, changes, 2, nullptr, 0, &no_wait) == -1);
        CHECK(errno == ENOENT);
        CHECK(pending(kq.fd).empty());
    }
    SUBCASE("the changelist and the eventlist may be one array") {
        struct kevent list[2] = {make_change(p.r, EVFILT_READ, EV_ADD),
                                 make_change(p.r, EVFILT_WRITE, EV_DELETE)};
        REQUIRE(::kevent(kq.fd, list, 2, list, 2, &no_wait) == 1);
        CHECK(list[0].flags == EV_ERROR);
        CHECK(list[0].filter == EVFILT_WRITE);
        CHECK(list[0].data == ENOENT);
        REQUIRE(::kevent(kq.fd, nullptr, 0, list, 2, &no_wait) == 1);
        CHECK(list[0].filter == EVFILT_READ);
    }
}

TEST_CASE("errors: an unknown filter is EINVAL, a closed fd EBADF, a bad timeout EINVAL") {
    kq_fd kq;
    pipe_fds p;
    CHECK(change(kq.fd, p.r, -99, EV_ADD) == EINVAL);
    const int closed = ::dup(p.r);
    ::close(closed);
    CHECK(change(kq.fd, closed, EVFILT_READ, EV_ADD) == EBADF);
    CHECK(change(kq.fd, closed, EVFILT_READ, EV_DELETE) == EBADF);
    struct kevent ev;
    const struct timespec bad{0, 1'000'000'000};
    CHECK(::kevent(kq.fd, nullptr, 0, &ev, 1, &bad) == -1);
    CHECK(errno == EINVAL);
    const struct timespec negative{-1, 0};
    CHECK(::kevent(kq.fd, nullptr, 0, &ev, 1, &negative) == -1);
    CHECK(errno == EINVAL);
#if defined(__linux__)
    // The emulation only: epoll refuses regular files (the BSDs accept them as vnodes, and
    // corio's backend refuses them itself before asking).
    const int file = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    REQUIRE(file >= 0);
    CHECK(change(kq.fd, file, EVFILT_READ, EV_ADD) == EPERM);
    ::close(file);
#endif
}

TEST_CASE("EV_RECEIPT: every change reports back, successes with data 0, and no event is drained") {
    kq_fd kq;
    pipe_fds p;
    p.put("abc");
    struct kevent changes[2] = {make_change(p.r, EVFILT_READ, EV_ADD | EV_RECEIPT),
                                make_change(p.w, EVFILT_READ, EV_DELETE | EV_RECEIPT)};
    struct kevent out[4];
    REQUIRE(::kevent(kq.fd, changes, 2, out, 4, &no_wait) == 2);
    CHECK(out[0].flags == EV_ERROR);
    CHECK(out[0].ident == static_cast<std::uintptr_t>(p.r));
    CHECK(out[0].data == 0);
    CHECK(out[1].flags == EV_ERROR);
    CHECK(out[1].ident == static_cast<std::uintptr_t>(p.w));
    CHECK(out[1].data == ENOENT);
    auto evs = pending(kq.fd); // the readable pipe was not drained into `out`
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].ident == static_cast<std::uintptr_t>(p.r));
    CHECK_FALSE(has(evs[0].flags, EV_ERROR));
}

TEST_CASE("EV_EOF on pipes: the last writer gone (read), the reader gone (write)") {
    kq_fd kq;
    SUBCASE("read side, with data still buffered") {
        pipe_fds p;
        p.put("ab");
        REQUIRE(change(kq.fd, p.r, EVFILT_READ, EV_ADD) == 0);
        auto evs = pending(kq.fd);
        REQUIRE(evs.size() == 1);
        CHECK_FALSE(has(evs[0].flags, EV_EOF));
        p.close_w();
        evs = pending(kq.fd);
        REQUIRE(evs.size() == 1);
        CHECK(has(evs[0].flags, EV_EOF));
        CHECK(evs[0].data == 2);
    }
    SUBCASE("read side, empty pipe: EOF alone makes it ready") {
        pipe_fds p;
        REQUIRE(change(kq.fd, p.r, EVFILT_READ, EV_ADD) == 0);
        CHECK(pending(kq.fd).empty());
        p.close_w();
        auto evs = pending(kq.fd);
        REQUIRE(evs.size() == 1);
        CHECK(has(evs[0].flags, EV_EOF));
        CHECK(evs[0].data == 0);
    }
    SUBCASE("write side") {
        pipe_fds p;
        REQUIRE(change(kq.fd, p.w, EVFILT_WRITE, EV_ADD) == 0);
        auto evs = pending(kq.fd);
        REQUIRE(evs.size() == 1);
        CHECK_FALSE(has(evs[0].flags, EV_EOF));
        p.close_r();
        evs = pending(kq.fd);
        REQUIRE(evs.size() == 1);
        CHECK(evs[0].filter == EVFILT_WRITE);
        CHECK(has(evs[0].flags, EV_EOF));
    }
}

TEST_CASE("EV_EOF on sockets: a half-close ends reading only; a close ends both") {
    kq_fd kq;
    sock_pair s;
    REQUIRE(change(kq.fd, s.a, EVFILT_READ, EV_ADD) == 0);
    REQUIRE(change(kq.fd, s.a, EVFILT_WRITE, EV_ADD) == 0);
    auto evs = pending(kq.fd); // writable, nothing to read
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].filter == EVFILT_WRITE);
    CHECK(evs[0].data > 0); // space in the send buffer
    CHECK_FALSE(has(evs[0].flags, EV_EOF));

    REQUIRE(::shutdown(s.b, SHUT_WR) == 0);
    evs = pending(kq.fd);
    REQUIRE(evs.size() == 2); // read and write of one fd: two events
    for (const auto& ev : evs) {
        if (ev.filter == EVFILT_READ) CHECK(has(ev.flags, EV_EOF));
        else CHECK_FALSE(has(ev.flags, EV_EOF)); // the peer still receives
    }

    s.close_b();
    evs = pending(kq.fd);
    REQUIRE(evs.size() == 2);
    for (const auto& ev : evs) CHECK(has(ev.flags, EV_EOF));
}

TEST_CASE("EVFILT_WRITE: data is the free space; a full pipe is not writable until read") {
    kq_fd kq;
    pipe_fds p;
    REQUIRE(change(kq.fd, p.w, EVFILT_WRITE, EV_ADD) == 0);
    auto evs = pending(kq.fd);
    REQUIRE(evs.size() == 1);
    const auto empty_space = evs[0].data;
    CHECK(empty_space > 0);
    p.put("0123456789");
    evs = pending(kq.fd);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].data == empty_space - 10);

    char block[4096] = {};
    while (::write(p.w, block, sizeof block) > 0) {}
    CHECK(pending(kq.fd).empty());
    while (::read(p.r, block, sizeof block) > 0) {}
    evs = pending(kq.fd);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].data == empty_space);
}

TEST_CASE("a listening socket is readable with a connection pending; data counts them") {
    kq_fd kq;
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listener >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    REQUIRE(::listen(listener, 8) == 0);
    REQUIRE(change(kq.fd, listener, EVFILT_READ, EV_ADD) == 0);
    CHECK(pending(kq.fd).empty());

    int clients[2];
    for (int& c : clients) {
        c = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(c >= 0);
        REQUIRE(::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    }
    std::int64_t seen = 0;
    for (int i = 0; i < 200 && seen < 2; ++i) { // the handshakes finish asynchronously
        const struct timespec ten_ms{0, 10'000'000};
        struct kevent ev;
        if (::kevent(kq.fd, nullptr, 0, &ev, 1, &ten_ms) == 1) seen = ev.data;
    }
    CHECK(seen == 2);
    for (int c : clients) ::close(c);
    ::close(listener);
}

TEST_CASE("close() removes the fd's knotes, also when the number is reused") {
    kq_fd kq;
    auto* p = new pipe_fds;
    p->put("abc");
    const int number = p->r;
    REQUIRE(change(kq.fd, number, EVFILT_READ, EV_ADD) == 0);
    REQUIRE(pending(kq.fd).size() == 1);
    delete p; // closes both ends
    CHECK(pending(kq.fd).empty());
    CHECK(change(kq.fd, number, EVFILT_READ, EV_DELETE) == EBADF);

    pipe_fds again; // most likely the same numbers: not registered, so never reported
    again.put("xyz");
    CHECK(pending(kq.fd).empty());
    if (again.r == number) CHECK(change(kq.fd, number, EVFILT_READ, EV_DELETE) == ENOENT);
}

TEST_CASE("a short eventlist is served round-robin among level-triggered events") {
    kq_fd kq;
    pipe_fds p[3];
    for (auto& x : p) {
        x.put("data");
        REQUIRE(change(kq.fd, x.r, EVFILT_READ, EV_ADD) == 0);
    }
    std::vector<std::uintptr_t> seen;
    for (int i = 0; i < 3; ++i) {
        auto evs = pending(kq.fd, 1);
        REQUIRE(evs.size() == 1);
        seen.push_back(evs[0].ident);
    }
    std::sort(seen.begin(), seen.end());
    CHECK(std::unique(seen.begin(), seen.end()) == seen.end()); // three different fds
}

TEST_CASE("timeouts: {0,0} polls, a timeout expires with 0, NULL waits for an event") {
    kq_fd kq;
    pipe_fds p;
    REQUIRE(change(kq.fd, p.r, EVFILT_READ, EV_ADD) == 0);
    struct kevent ev;
    CHECK(::kevent(kq.fd, nullptr, 0, &ev, 1, &no_wait) == 0);

    const struct timespec thirty_ms{0, 30'000'000};
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(::kevent(kq.fd, nullptr, 0, &ev, 1, &thirty_ms) == 0);
    CHECK(std::chrono::steady_clock::now() - t0 >= 30ms); // never early

    // nevents == 0 returns at once, whatever the timeout.
    const struct timespec hour{3600, 0};
    CHECK(::kevent(kq.fd, nullptr, 0, nullptr, 0, &hour) == 0);

    std::thread writer([&] {
        std::this_thread::sleep_for(20ms);
        p.put("!");
    });
    CHECK(::kevent(kq.fd, nullptr, 0, &ev, 1, nullptr) == 1);
    CHECK(ev.ident == static_cast<std::uintptr_t>(p.r));
    writer.join();
}

TEST_CASE("a signal ends a wait with EINTR") {
    kq_fd kq;
    interrupting_signal sig;
    std::atomic<bool> done{false};
    int result = 0, error = 0;
    std::thread waiter([&] {
        struct kevent ev;
        result = ::kevent(kq.fd, nullptr, 0, &ev, 1, nullptr);
        error = errno;
        done = true;
    });
    interrupting_signal::until(waiter, done);
    CHECK(result == -1);
    CHECK(error == EINTR);
}

TEST_CASE("a change by one thread wakes another thread waiting on the same kqueue") {
    kq_fd kq;
    pipe_fds p;
    p.put("ready");
    bool enable = false;
    SUBCASE("EV_ADD") {}
    SUBCASE("EV_ENABLE of a knote added disabled") {
        enable = true;
        REQUIRE(change(kq.fd, p.r, EVFILT_READ, EV_ADD | EV_DISABLE) == 0);
    }
    int result = 0;
    struct kevent ev{};
    std::thread waiter([&] { result = ::kevent(kq.fd, nullptr, 0, &ev, 1, nullptr); });
    std::this_thread::sleep_for(20ms); // most likely blocked by now; either way it must see it
    REQUIRE(change(kq.fd, p.r, EVFILT_READ, enable ? EV_ENABLE : EV_ADD) == 0);
    waiter.join();
    CHECK(result == 1);
    CHECK(ev.ident == static_cast<std::uintptr_t>(p.r));
}

TEST_CASE("four kqueues on four threads") {
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&failures] {
            const int kq = ::kqueue();
            int fds[2];
            if (kq < 0 || ::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
                ++failures;
                return;
            }
            struct kevent ch;
            EV_SET(&ch, static_cast<std::uintptr_t>(fds[0]), EVFILT_READ, EV_ADD, 0, 0, nullptr);
            if (::kevent(kq, &ch, 1, nullptr, 0, nullptr) != 0) ++failures;
            for (int i = 0; i < 300; ++i) {
                char c = static_cast<char>(i);
                if (::write(fds[1], &c, 1) != 1) ++failures;
                struct kevent ev;
                if (::kevent(kq, nullptr, 0, &ev, 1, nullptr) != 1 || ev.data != 1) ++failures;
                if (::read(fds[0], &c, 1) != 1 || c != static_cast<char>(i)) ++failures;
            }
            ::close(fds[0]);
            ::close(fds[1]);
            ::close(kq);
        });
    }
    for (auto& t : threads) t.join();
    CHECK(failures == 0);
}

// --- corio's kqueue backend on top of it -------------------------------------------------------

namespace {

using corio::backend::io_events;
using corio::backend::kqueue_backend;

struct sink_log {
    std::vector<std::pair<int, io_events>> calls;
    auto sink() {
        return [this](int fd, io_events ev) { calls.emplace_back(fd, ev); };
    }
};

} // namespace

TEST_CASE("kqueue_backend: notify() and a write to notify_fd() wake a blocked poll") {
    const int fds_before = open_fd_count();
    {
        kqueue_backend b;
        CHECK(open_fd_count() == fds_before + 3); // the kqueue and the pipe
        CHECK(has(::fcntl(b.notify_fd(), F_GETFD), FD_CLOEXEC));
        CHECK(has(::fcntl(b.notify_fd(), F_GETFL), O_NONBLOCK));
        sink_log log;
        std::thread other([&] {
            std::this_thread::sleep_for(20ms);
            b.notify();
        });
        CHECK(b.poll(-1, log.sink()) == 0); // woken, nothing to report
        other.join();

        const std::uint64_t one = 1; // what a signal handler does
        REQUIRE(::write(b.notify_fd(), &one, sizeof one) == sizeof one);
        CHECK(b.poll(-1, log.sink()) == 0);
        for (int i = 0; i < 10000; ++i) b.notify(); // more than a pipe holds: never blocks
        CHECK(b.poll(-1, log.sink()) == 0);
        CHECK(b.poll(0, log.sink()) == 0); // drained
        CHECK(log.calls.empty());
    }
    CHECK(open_fd_count() == fds_before);
}

TEST_CASE("kqueue_backend: read and write of one fd make one sink call") {
    kqueue_backend b;
    sock_pair s;
    REQUIRE(::write(s.b, "x", 1) == 1);
    b.set_interest(s.a, io_events::none, io_events::both);
    sink_log log;
    CHECK(b.poll(0, log.sink()) == 1);
    REQUIRE(log.calls.size() == 1);
    CHECK(log.calls[0] == std::pair{s.a, io_events::both});

    log.calls.clear();
    b.set_interest(s.a, io_events::both, io_events::write);
    CHECK(b.poll(0, log.sink()) == 1);
    CHECK(log.calls == std::vector{std::pair{s.a, io_events::write}});

    log.calls.clear();
    b.set_interest(s.a, io_events::write, io_events::read);
    CHECK(b.poll(0, log.sink()) == 1);
    CHECK(log.calls == std::vector{std::pair{s.a, io_events::read}});

    log.calls.clear();
    b.set_interest(s.a, io_events::read, io_events::none);
    CHECK(b.poll(0, log.sink()) == 0);
    CHECK(log.calls.empty());
}

TEST_CASE("kqueue_backend: refuses closed fds, regular files and directories, as epoll does") {
    kqueue_backend b;
    const auto code_of = [&](int fd) {
        try {
            b.set_interest(fd, io_events::none, io_events::read);
        } catch (const std::system_error& e) {
            return e.code().value();
        }
        return 0;
    };
    pipe_fds p;
    const int closed = ::dup(p.r);
    ::close(closed);
    CHECK(code_of(closed) == EBADF);
    const int file = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    const int dir = ::open("/", O_RDONLY | O_CLOEXEC);
    REQUIRE(file >= 0);
    REQUIRE(dir >= 0);
    CHECK(code_of(file) == EPERM);
    CHECK(code_of(dir) == EPERM);
    ::close(file);
    ::close(dir);
    CHECK(code_of(p.r) == 0);
}

TEST_CASE("kqueue_backend: a closed fd is forgotten quietly; a reused number gets what the loop asks") {
    kqueue_backend b;
    sink_log log;
    {
        sock_pair gone;
        b.set_interest(gone.a, io_events::none, io_events::read);
        const int number = gone.a;
        gone.close_a();
        CHECK_NOTHROW(b.set_interest(number, io_events::read, io_events::none)); // EBADF: ignored
    }
    sock_pair first;
    const int number = first.a;
    b.set_interest(number, io_events::none, io_events::read);
    first.close_a();
    first.close_b();
    sock_pair second; // takes the lowest free numbers again
    const int fd = second.a == number ? second.a : second.b;
    const int peer = fd == second.a ? second.b : second.a;
    REQUIRE(fd == number);
    REQUIRE(::write(peer, "x", 1) == 1);
    // The loop believes `read` is registered (close() removed it) and adds `write`: both must
    // be watched now, as with epoll.
    b.set_interest(fd, io_events::read, io_events::both);
    CHECK(b.poll(0, log.sink()) == 1);
    CHECK(log.calls == std::vector{std::pair{fd, io_events::both}});
    b.set_interest(fd, io_events::both, io_events::none);
}

TEST_CASE("kqueue_backend: hang-ups and errors") {
    kqueue_backend b;
    sink_log log;
    SUBCASE("a half-close is readable only") {
        sock_pair s;
        b.set_interest(s.a, io_events::none, io_events::read);
        REQUIRE(::shutdown(s.b, SHUT_WR) == 0);
        CHECK(b.poll(0, log.sink()) == 1);
        CHECK(log.calls == std::vector{std::pair{s.a, io_events::read}});
        b.set_interest(s.a, io_events::read, io_events::none);
    }
    SUBCASE("a peer that cannot receive any more is reported as read and write") {
        sock_pair s;
        b.set_interest(s.a, io_events::none, io_events::write);
        s.close_b();
        CHECK(b.poll(0, log.sink()) == 1);
        CHECK(log.calls == std::vector{std::pair{s.a, io_events::both}});
        b.set_interest(s.a, io_events::write, io_events::none);
    }
    SUBCASE("a pipe whose reader is gone is reported as read and write") {
        pipe_fds p;
        b.set_interest(p.w, io_events::none, io_events::write);
        p.close_r();
        CHECK(b.poll(0, log.sink()) == 1);
        CHECK(log.calls == std::vector{std::pair{p.w, io_events::both}});
        b.set_interest(p.w, io_events::write, io_events::none);
    }
}

TEST_CASE("kqueue_backend: timeouts, and a signal ends a wait early with 0") {
    kqueue_backend b;
    sink_log log;
    CHECK(b.poll(0, log.sink()) == 0);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(b.poll(20'000'000, log.sink()) == 0);
    CHECK(std::chrono::steady_clock::now() - t0 >= 20ms);

    interrupting_signal sig;
    std::atomic<bool> done{false};
    int result = -1;
    std::thread waiter([&] {
        result = b.poll(-1, log.sink());
        done = true;
    });
    interrupting_signal::until(waiter, done);
    CHECK(result == 0);
    CHECK(log.calls.empty());
}
