#pragma once
// A kqueue emulation for Linux, for tests only: <sys/event.h> as the BSDs declare it, with
// kqueue() and kevent() built on epoll, so that corio's kqueue backend
// (include/corio/backend/kqueue.hpp) runs unchanged on Linux and the whole test suite can run
// once per backend (build option CORIO_KQUEUE_EMULATION, meson -Dkqueue_emulation=true).
// tests/test_kqueue_emulation.cpp pins the semantics below; they follow FreeBSD's kqueue(2)
// manual, and that test runs against the real kqueue on a BSD.
//
// What is emulated
// - Filters: EVFILT_READ and EVFILT_WRITE on pipes, FIFOs, sockets, and anything else epoll
//   accepts (eventfds, ttys). Any other filter is refused with EINVAL. Regular files and
//   directories, which the BSDs accept (vnodes), are refused with EPERM, as epoll does: the
//   backend refuses them itself before calling kevent(), so nothing depends on them.
// - Flags: EV_ADD (re-adding updates udata and flags and re-enables), EV_DELETE, EV_ENABLE,
//   EV_DISABLE (the registration stays, nothing is reported), EV_ONESHOT (deleted once
//   retrieved), EV_CLEAR (reported once per state change, i.e. when new data or space
//   arrives), EV_RECEIPT, and on output EV_EOF and EV_ERROR. Not EV_DISPATCH.
// - Level-triggered by default: a knote stays reported while its condition holds; several
//   ready knotes are returned in activation order, a level-triggered one going back to the
//   end of the queue once returned, so a short eventlist is served round-robin.
// - `data`: EVFILT_READ gives the bytes readable (FIONREAD), or for a listening TCP socket
//   the number of pending connections (FreeBSD's "size of the listen backlog"); for a UDP
//   socket Linux counts the next datagram only, not the whole buffer. EVFILT_WRITE gives the
//   free space of the pipe or of the socket's send buffer.
// - EV_EOF: EVFILT_READ when the peer shut down its writing or the last writer of a pipe
//   went away (data may still be readable); EVFILT_WRITE when the peer can no longer
//   receive (hang-up, error, reader of a pipe gone). `fflags` stays 0: the BSDs put the
//   socket error there, but Linux can only read it by clearing it (SO_ERROR), which would
//   steal it from the program.
// - Changelist errors as the manual says: with room in the eventlist, an EV_ERROR entry
//   (the change itself with flags = EV_ERROR and data = errno; with EV_RECEIPT also for a
//   success, data = 0) and kevent() returns the number of such entries without collecting
//   events; without room, -1 and errno, and the remaining changes are not applied.
//   EBADF for a closed fd, ENOENT for a knote that does not exist, EINVAL for an unknown
//   filter or a bad timeout.
// - close(fd) forgets the fd's knotes (noticed lazily: a knote whose fd was closed, or whose
//   number now names another file, is dropped instead of being reported).
// - Timeouts: NULL waits forever, {0, 0} polls; others are rounded up to milliseconds
//   (epoll_wait's resolution). nevents == 0 returns at once. A signal ends a wait with EINTR
//   (changes applied).
// - Threads: any number of kqueues used from any threads; one kqueue from several threads
//   is safe too (each kqueue's state has its own mutex, never held while blocking), and a
//   change that activates a knote wakes a thread blocked on the same kqueue.
// - Known differences, none of which corio's backend meets: the remaining EV_* flags and
//   filters (EV_DISPATCH, EVFILT_USER/TIMER/SIGNAL/PROC/VNODE...) do not exist; a change by
//   one thread while another blocks on the same kqueue may report an EV_CLEAR knote of the
//   same fd once more; kqueues are inherited by fork() (the BSDs' are not).
//
// How: the kqueue is an epoll fd (no close-on-exec flag, as kqueue() has none). Each watched
// fd is registered once, edge-triggered, for input, output and hang-up; an epoll edge only
// *activates* the fd's knotes (puts them on a FIFO queue), and kevent() evaluates each
// active knote with poll() (and FIONREAD etc. for `data`) at retrieval time, as the kqueue
// kernel code runs its filters: a level-triggered knote goes back on the queue while ready,
// an EV_CLEAR one waits for the next edge, an EV_ONESHOT one is deleted. Per-kqueue state
// lives in a map keyed by the kqueue fd; nothing sees close(), so kevent() checks that the
// fd is still an epoll instance (/proc/self/fd) and the state of a closed kqueue is dropped
// when kqueue() reuses its number. That state holds no fd, so no descriptor leaks.
//
// Header-only; C++ (it is compiled into corio's tests and examples, never shipped).

#include <sys/types.h>

#include <cstdint>
#include <ctime>

/// One change or event, as the BSDs define it (FreeBSD's layout without `ext`).
struct kevent {
    std::uintptr_t ident;  // identifier: a file descriptor for the filters emulated here
    short filter;          // EVFILT_*
    unsigned short flags;  // EV_*
    unsigned int fflags;   // filter-specific flags (always 0 here)
    std::int64_t data;     // filter-specific data, or the errno of an EV_ERROR entry
    void* udata;           // opaque, passed through unchanged
};

#define EVFILT_READ (-1)
#define EVFILT_WRITE (-2)

#define EV_ADD 0x0001
#define EV_DELETE 0x0002
#define EV_ENABLE 0x0004
#define EV_DISABLE 0x0008
#define EV_ONESHOT 0x0010
#define EV_CLEAR 0x0020
#define EV_RECEIPT 0x0040
#define EV_ERROR 0x4000
#define EV_EOF 0x8000

#define EV_SET(kevp, a, b, c, d, e, f)                                                              \
    do {                                                                                           \
        struct kevent* ev_set_kevp_ = (kevp);                                                      \
        ev_set_kevp_->ident = (a);                                                                 \
        ev_set_kevp_->filter = (b);                                                                \
        ev_set_kevp_->flags = (c);                                                                 \
        ev_set_kevp_->fflags = (d);                                                                \
        ev_set_kevp_->data = (e);                                                                  \
        ev_set_kevp_->udata = (f);                                                                 \
    } while (0)

inline int kqueue() noexcept;
inline int kevent(int kq, const struct kevent* changelist, int nchanges, struct kevent* eventlist,
                  int nevents, const struct timespec* timeout) noexcept;

// ---- implementation --------------------------------------------------------------------------

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace corio_kqueue_emulation {

inline constexpr int n_filters = 2; // index 0: EVFILT_READ, 1: EVFILT_WRITE
// Every watched fd is in epoll with the same mask: edges of the filters it has no knote for
// are ignored, which keeps epoll_ctl out of the knote changes (a MOD would re-arm the edge of
// the fd's other knote).
inline constexpr std::uint32_t epoll_mask = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

struct knote {
    bool present = false;
    bool enabled = false;
    bool queued = false;       // on the active queue (kept across delete/re-add: see remove_knote)
    unsigned short flags = 0;  // as registered, minus the action flags
    unsigned int fflags = 0;
    void* udata = nullptr;
};

struct watched_fd {
    std::uint32_t gen = 0;     // tells this registration from an earlier one of the same number
    dev_t dev = 0;             // identity of the file, to notice a closed-and-reused number
    ino_t ino = 0;
    knote kn[n_filters];
};

struct active_entry {
    int fd;
    int idx;
    std::uint32_t gen;
};

struct queue_state {
    std::mutex mu;
    int epfd = -1;
    std::uint32_t next_gen = 1;
    int waiters = 0;           // threads blocked in epoll_wait on this kqueue
    std::unordered_map<int, watched_fd> fds;
    std::deque<active_entry> active;
};

struct registry {
    std::mutex mu;
    std::unordered_map<int, std::shared_ptr<queue_state>> queues;
};

inline registry& queues() {
    static registry r; // constructed on first use, never before main's statics need it
    return r;
}

inline std::shared_ptr<queue_state> find_queue(int kq) {
    registry& r = queues();
    std::lock_guard lock(r.mu);
    auto it = r.queues.find(kq);
    return it == r.queues.end() ? nullptr : it->second;
}

/// `fd` is open and an epoll instance (a kqueue's number may since have been closed and
/// reused by a pipe or a socket, and the registry cannot see close()).
inline bool is_kqueue_fd(int fd) {
    char path[48];
    std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char target[64];
    const ssize_t n = ::readlink(path, target, sizeof target - 1);
    if (n < 0) return ::fcntl(fd, F_GETFD) >= 0; // no /proc: trust the registry
    target[n] = '\0';
    return std::strcmp(target, "anon_inode:[eventpoll]") == 0;
}

inline int filter_index(short filter) noexcept {
    return filter == EVFILT_READ ? 0 : filter == EVFILT_WRITE ? 1 : -1;
}

inline std::uint64_t epoll_key(int fd, std::uint32_t gen) noexcept {
    return (std::uint64_t{gen} << 32) | static_cast<std::uint32_t>(fd);
}

inline void activate(queue_state& q, int fd, watched_fd& w, int idx) {
    knote& k = w.kn[idx];
    if (k.queued) return;
    k.queued = true;
    q.active.push_back({fd, idx, w.gen});
}

/// Registers `fd` with epoll if it is not (an ADD that says EEXIST proves the registration of
/// this very file is there; a closed-and-reused number gets a fresh one). 0 or an errno.
inline int ensure_registered(queue_state& q, int fd, const watched_fd& w) {
    epoll_event ev{};
    ev.events = epoll_mask;
    ev.data.u64 = epoll_key(fd, w.gen);
    if (::epoll_ctl(q.epfd, EPOLL_CTL_ADD, fd, &ev) == 0 || errno == EEXIST) return 0;
    return errno;
}

/// Another thread blocks in epoll_wait on this kqueue and a change activated a knote: an
/// epoll MOD re-arms the fd's edge, which wakes that thread if the fd is ready (the real
/// kqueue wakes its waiters on activation). Only then: the re-armed edge also reaches the
/// fd's other knote, a spurious report if that one is EV_CLEAR.
inline void wake_waiters(queue_state& q, int fd, const watched_fd& w) {
    if (q.waiters == 0) return;
    epoll_event ev{};
    ev.events = epoll_mask;
    ev.data.u64 = epoll_key(fd, w.gen);
    ::epoll_ctl(q.epfd, EPOLL_CTL_MOD, fd, &ev);
}

/// Forgets everything about `fd`; `unregister`: also take it out of epoll (it is still open).
inline void forget_fd(queue_state& q, int fd, bool unregister) {
    if (unregister) {
        epoll_event ev{};
        ::epoll_ctl(q.epfd, EPOLL_CTL_DEL, fd, &ev); // ENOENT/EBADF: nothing to undo
    }
    q.fds.erase(fd); // queued entries carry the generation and are skipped
}

/// Deletes one knote; the fd's entry goes when its last knote does. `w` may be gone after.
inline void remove_knote(queue_state& q, int fd, watched_fd& w, int idx) {
    const bool queued = w.kn[idx].queued; // its queue entry stays: do not queue it twice
    w.kn[idx] = knote{};
    w.kn[idx].queued = queued;
    for (const knote& k : w.kn)
        if (k.present) return;
    forget_fd(q, fd, true);
}

/// Applies one change; returns 0 or the errno that the BSDs would report for it.
inline int apply_change(queue_state& q, const struct kevent& c) {
    const int idx = filter_index(c.filter);
    if (idx < 0) return EINVAL;
    if (c.ident > static_cast<std::uintptr_t>(INT_MAX)) return EBADF;
    const int fd = static_cast<int>(c.ident);
    struct stat st{};
    if (::fstat(fd, &st) != 0) {
        forget_fd(q, fd, false); // closed: close() deletes its knotes
        return EBADF;
    }
    auto it = q.fds.find(fd);
    if (it != q.fds.end() && (it->second.dev != st.st_dev || it->second.ino != st.st_ino)) {
        forget_fd(q, fd, false); // the number names another file now
        it = q.fds.end();
    }
    watched_fd* w = it == q.fds.end() ? nullptr : &it->second;
    knote* kn = w && w->kn[idx].present ? &w->kn[idx] : nullptr;
    const unsigned short fl = c.flags;

    if (fl & EV_DELETE) {
        if (!kn) return (fl & EV_ADD) ? 0 : ENOENT;
        remove_knote(q, fd, *w, idx);
        return 0;
    }
    if (fl & EV_ADD) {
        const bool new_fd = !w;
        if (new_fd) {
            w = &q.fds[fd];
            w->gen = q.next_gen++;
            w->dev = st.st_dev;
            w->ino = st.st_ino;
        }
        if (const int e = ensure_registered(q, fd, *w); e != 0) {
            if (new_fd) q.fds.erase(fd);
            return e; // e.g. EPERM: a regular file
        }
        knote& k = w->kn[idx];
        k.present = true;
        k.flags = static_cast<unsigned short>(fl & ~(EV_ADD | EV_DELETE | EV_ENABLE | EV_DISABLE));
        k.fflags = c.fflags;
        k.udata = c.udata;
        k.enabled = !(fl & EV_DISABLE);
        // The filter runs at registration: queue it, retrieval evaluates it.
        if (k.enabled) {
            activate(q, fd, *w, idx);
            wake_waiters(q, fd, *w);
        }
        return 0;
    }
    if (!(fl & (EV_ENABLE | EV_DISABLE))) return kn ? 0 : ENOENT;
    if (!kn) return ENOENT;
    if (fl & EV_DISABLE) kn->enabled = false;
    if (fl & EV_ENABLE) {
        if (const int e = ensure_registered(q, fd, *w); e != 0) return e;
        kn->enabled = true;
        activate(q, fd, *w, idx);
        wake_waiters(q, fd, *w);
    }
    return 0;
}

/// Turns epoll edges into activations.
inline void on_edges(queue_state& q, const epoll_event* evs, int n) {
    for (int i = 0; i < n; ++i) {
        const int fd = static_cast<int>(static_cast<std::uint32_t>(evs[i].data.u64));
        const auto gen = static_cast<std::uint32_t>(evs[i].data.u64 >> 32);
        auto it = q.fds.find(fd);
        if (it == q.fds.end() || it->second.gen != gen) continue; // a forgotten registration
        watched_fd& w = it->second;
        const std::uint32_t e = evs[i].events;
        static constexpr std::uint32_t wakes[n_filters] = {
            EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR, EPOLLOUT | EPOLLHUP | EPOLLERR};
        for (int idx = 0; idx < n_filters; ++idx)
            if (w.kn[idx].present && w.kn[idx].enabled && (e & wakes[idx])) activate(q, fd, w, idx);
    }
}

/// Collects what epoll has without waiting.
inline void harvest(queue_state& q) {
    epoll_event evs[64];
    for (;;) {
        const int n = ::epoll_wait(q.epfd, evs, 64, 0);
        if (n > 0) on_edges(q, evs, n);
        if (n < 64) return;
    }
}

struct evaluation {
    bool gone = false; // the fd was closed or names another file: its knotes are dropped
    bool ready = false;
    bool eof = false;
    std::int64_t data = 0;
};

/// Runs the filter now, as kqueue does when the user retrieves an event.
inline evaluation evaluate(int fd, int idx, const watched_fd& w) {
    evaluation r;
    struct stat st{};
    if (::fstat(fd, &st) != 0 || st.st_dev != w.dev || st.st_ino != w.ino) {
        r.gone = true;
        return r;
    }
    pollfd p{fd, static_cast<short>(idx == 0 ? (POLLIN | POLLRDHUP) : POLLOUT), 0};
    int n;
    do n = ::poll(&p, 1, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) return r;
    if (p.revents & POLLNVAL) {
        r.gone = true;
        return r;
    }
    if (idx == 0) {
        r.ready = p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR);
        r.eof = p.revents & (POLLRDHUP | POLLHUP);
        if (!r.ready) return r;
        int avail = 0;
        if (::ioctl(fd, FIONREAD, &avail) == 0) {
            r.data = avail;
        } else if (S_ISSOCK(st.st_mode)) {
            // A listening socket: FreeBSD reports the pending connections.
            tcp_info ti{};
            socklen_t len = sizeof ti;
            if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == TCP_LISTEN)
                r.data = ti.tcpi_unacked; // Linux keeps the accept queue's length there
            else
                r.data = 1; // e.g. a listening Unix socket: at least one is pending
        }
    } else {
        r.ready = p.revents & (POLLOUT | POLLHUP | POLLERR);
        r.eof = p.revents & (POLLHUP | POLLERR);
        if (!r.ready) return r;
        std::int64_t space = 0;
        if (S_ISFIFO(st.st_mode)) {
#if defined(F_GETPIPE_SZ)
            const int size = ::fcntl(fd, F_GETPIPE_SZ);
#else
            const int size = 65536;
#endif
            int queued = 0;
            if (size > 0 && ::ioctl(fd, FIONREAD, &queued) == 0) space = size - queued;
        } else if (S_ISSOCK(st.st_mode)) {
            int sndbuf = 0, queued = 0;
            socklen_t len = sizeof sndbuf;
            if (::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) == 0 &&
                ::ioctl(fd, TIOCOUTQ, &queued) == 0)
                space = sndbuf - queued;
        }
        r.data = space > 0 ? space : 0;
    }
    return r;
}

/// Retrieves up to `max` events from the active queue, each knote at most once per call.
inline int scan(queue_state& q, struct kevent* out, int max) {
    int n = 0;
    for (std::size_t budget = q.active.size(); budget > 0 && n < max; --budget) {
        const active_entry e = q.active.front();
        q.active.pop_front();
        auto it = q.fds.find(e.fd);
        if (it == q.fds.end() || it->second.gen != e.gen) continue;
        watched_fd& w = it->second;
        knote& k = w.kn[e.idx];
        k.queued = false;
        if (!k.present || !k.enabled) continue; // re-activated by EV_ENABLE / EV_ADD
        const evaluation r = evaluate(e.fd, e.idx, w);
        if (r.gone) {
            forget_fd(q, e.fd, false);
            continue;
        }
        if (!r.ready) continue; // the condition went away: wait for the next edge
        struct kevent& ev = out[n++];
        ev.ident = static_cast<std::uintptr_t>(e.fd);
        ev.filter = e.idx == 0 ? EVFILT_READ : EVFILT_WRITE;
        ev.flags = static_cast<unsigned short>(k.flags | (r.eof ? EV_EOF : 0));
        ev.fflags = 0;
        ev.data = r.data;
        ev.udata = k.udata;
        if (k.flags & EV_ONESHOT) remove_knote(q, e.fd, w, e.idx);
        else if (!(k.flags & EV_CLEAR)) activate(q, e.fd, w, e.idx); // level: still active
    }
    return n;
}

} // namespace corio_kqueue_emulation

inline int kqueue() noexcept {
    using namespace corio_kqueue_emulation;
    const int fd = ::epoll_create1(0);
    if (fd < 0) return -1;
    try {
        auto q = std::make_shared<queue_state>();
        q->epfd = fd;
        registry& r = queues();
        std::lock_guard lock(r.mu);
        r.queues[fd] = std::move(q); // replaces the state of a closed kqueue of that number
    } catch (const std::bad_alloc&) {
        ::close(fd);
        errno = ENOMEM;
        return -1;
    }
    return fd;
}

inline int kevent(int kq, const struct kevent* changelist, int nchanges, struct kevent* eventlist,
                  int nevents, const struct timespec* timeout) noexcept {
    using namespace corio_kqueue_emulation;
    if (nchanges < 0 || nevents < 0) {
        errno = EINVAL;
        return -1;
    }
    if (timeout && (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1'000'000'000)) {
        errno = EINVAL;
        return -1;
    }
    std::shared_ptr<queue_state> qp = is_kqueue_fd(kq) ? find_queue(kq) : nullptr;
    if (!qp) {
        errno = EBADF;
        return -1;
    }
    queue_state& q = *qp;
    try {
        std::unique_lock lock(q.mu);

        // Changes first, reporting errors (and receipts) into the eventlist while it has room.
        int reported = 0;
        for (int i = 0; i < nchanges; ++i) {
            const struct kevent c = changelist[i]; // a copy: the two lists may be one array
            const int err = apply_change(q, c);
            if (err == 0 && !(c.flags & EV_RECEIPT)) continue;
            if (reported == nevents) {
                if (err == 0) return reported; // a receipt with no room: stop here
                errno = err;
                return -1;
            }
            struct kevent& out = eventlist[reported++];
            out = c;
            out.flags = EV_ERROR;
            out.data = err;
        }
        if (reported > 0 || nevents == 0) return reported;

        using clock = std::chrono::steady_clock;
        const auto deadline =
            timeout ? clock::now() + std::chrono::seconds(timeout->tv_sec) +
                          std::chrono::nanoseconds(timeout->tv_nsec)
                    : clock::time_point::max();
        for (;;) {
            harvest(q);
            const int n = scan(q, eventlist, nevents);
            if (n > 0) return n;
            int wait_ms = -1;
            if (timeout) {
                const auto left = deadline - clock::now();
                if (left <= clock::duration::zero()) return 0;
                const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
                wait_ms = ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
            }
            epoll_event evs[64];
            ++q.waiters;
            lock.unlock();
            const int got = ::epoll_wait(q.epfd, evs, 64, wait_ms);
            const int wait_errno = errno;
            lock.lock();
            --q.waiters;
            if (got < 0) {
                errno = wait_errno; // EINTR: the changes above stay applied
                return -1;
            }
            on_edges(q, evs, got);
        }
    } catch (const std::bad_alloc&) {
        errno = ENOMEM;
        return -1;
    }
}
