#pragma once
/// \file corio/subprocess.hpp
/// Subprocesses: asyncio.create_subprocess_exec and asyncio.subprocess.Process.
///
/// ```
/// # Python                                          // C++
/// p = await asyncio.create_subprocess_exec(         auto p = co_await corio::create_subprocess_exec(
///     "sort", "-n",                                     "sort", "-n",
///     stdin=PIPE, stdout=PIPE)                          corio::subprocess_options{.stdin_ = corio::pipe,
///                                                                                 .stdout_ = corio::pipe});
/// out, err = await p.communicate(b"3\n1\n2\n")      auto [out, err] = co_await p.communicate("3\n1\n2\n");
/// print(p.returncode)                               std::printf("%d\n", *p.returncode());
/// ```
///
/// | asyncio | corio |
/// |---|---|
/// | `create_subprocess_exec(prog, *args, stdin=, stdout=, stderr=, limit=, cwd=, env=)` | `create_subprocess_exec(prog, args..., subprocess_options{...})`, or `create_subprocess_exec(std::vector<std::string> argv, {...})` |
/// | `create_subprocess_shell(cmd, ...)` | `create_subprocess_shell(cmd, {...})` (`/bin/sh -c cmd`) |
/// | `PIPE`, `DEVNULL`, `STDOUT`, `None`, a file descriptor | `corio::pipe`, `corio::devnull`, `corio::stdout_`, `corio::inherit`, `corio::stdio::from_fd(fd)` |
/// | `Process.stdin` / `stdout` / `stderr` | `process::stdin_` (`std::optional<stream_writer>`), `stdout_`, `stderr_` (`std::optional<stream_reader>`) |
/// | `pid`, `returncode` | `pid()`, `returncode()` (`std::optional<int>`; `-N` when killed by signal N) |
/// | `await wait()`, `await communicate(input)` | `co_await wait()` → `int`, `co_await communicate(input)` → `std::pair<std::string, std::string>` |
/// | `send_signal`, `terminate`, `kill` | same names |
///
/// ## Semantics worth knowing
/// - **Spawning** uses posix_spawn (vfork-like, safe with threads; only the C library runs in
///   the child). A program name without '/' is searched in `PATH` (the `env` option's PATH if
///   given, as Python's `os.get_exec_path(env)`). A program that cannot be run makes the await
///   throw `std::system_error` with its errno (ENOENT: asyncio's FileNotFoundError, EACCES:
///   PermissionError).
/// - **File descriptors**: the child gets its stdin, stdout and stderr and nothing else. Every
///   fd corio opens is close-on-exec (pipes are made with pipe2(O_CLOEXEC) where it exists),
///   and with glibc >= 2.34 (and FreeBSD >= 13.1) the child also closes every other fd >= 3
///   before exec, Python's `close_fds=True`. Elsewhere a descriptor *you* opened without
///   close-on-exec is inherited.
/// - **Signals**: the child starts with SIGPIPE and SIGXFSZ at their default action, whatever
///   the parent did with them (Python's `restore_signals=True`), so `yes | head` works in a
///   child of a server that ignores SIGPIPE. Signal handlers never carry over an exec.
/// - **Reaping** never races with other children: corio waits only for its own pids, never
///   with `waitpid(-1)`, and installs no SIGCHLD handler. On Linux a pidfd tells the loop when
///   the child exits; elsewhere (or on kernels before 5.3) one thread per child blocks in
///   `waitpid(pid)` (see corio/detail/child_watcher.hpp). A child that someone else reaped
///   anyway (`waitpid(-1)` in other code, SIGCHLD ignored) reports 255, with a report through
///   the loop's exception handler, as asyncio warns.
/// - **wait()** returns once the child has exited, even if a grandchild still holds its
///   stdout open (as trio and uvloop do, and CPython after gh-119710; asyncio 3.12 also waits
///   for the pipes to close). As in asyncio, a child writing more than the pipe buffer and
///   stream limit to a `pipe` nobody reads blocks, and then wait() waits forever: read the
///   pipes, or use communicate().
/// - **Dropping the process**: when the last copy of the `process` handle is gone (and no
///   `wait()` or `communicate()` is pending) while the child still runs, the child is killed
///   with SIGKILL and its pipes are closed, as asyncio does when its subprocess transport is
///   closed or collected; it is then reaped in the background (by the loop while it runs, else
///   by a detached thread), so it never stays a zombie and nothing blocks.
/// - **The loop closing** (end of `corio::run`) while a handle is still alive leaves the child
///   running; nothing watches it any more (`returncode()` stays empty); dropping the handle
///   later kills and reaps it as above.
///
/// All members are loop-thread only, like the rest of the loop's objects.

#include <corio/detail/child_watcher.hpp>
#include <corio/detail/socket.hpp>
#include <corio/detail/stream_transport.hpp>
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/gather.hpp>
#include <corio/protocols.hpp>
#include <corio/streams.hpp>
#include <corio/task.hpp>
#include <corio/transports.hpp>

#include <array>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <csignal>
#include <fcntl.h>
#include <spawn.h>
#include <sys/types.h>
#include <unistd.h>
#if defined(__FreeBSD__)
#include <sys/param.h> // __FreeBSD_version
#endif

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
#define CORIO_DETAIL_SPAWN_CHDIR 1
#elif defined(__APPLE__) || (defined(__FreeBSD__) && __FreeBSD_version >= 1301000)
#define CORIO_DETAIL_SPAWN_CHDIR 1
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define CORIO_DETAIL_SPAWN_CLOSEFROM 1
#elif defined(__FreeBSD__) && __FreeBSD_version >= 1301000
#define CORIO_DETAIL_SPAWN_CLOSEFROM 1
#endif

/// \cond INTERNAL
#if defined(__APPLE__)
#include <crt_externs.h> // a shared library cannot use `environ` directly on macOS
#else
extern char** environ; // POSIX declares it nowhere; glibc only with _GNU_SOURCE
#endif
/// \endcond

namespace corio {

/// Where one of a child's standard streams goes (asyncio's `stdin=`, `stdout=`, `stderr=`
/// arguments). Use the constants `corio::inherit`, `corio::pipe`, `corio::devnull`,
/// `corio::stdout_`, or `stdio::from_fd(fd)`.
struct stdio {
    /// The kinds of redirection.
    enum class kind : unsigned char {
        inherit, ///< the parent's own stream (asyncio's `None`, the default)
        pipe,    ///< a pipe to the parent: a stream_writer (stdin) or stream_reader (stdout, stderr)
        devnull, ///< /dev/null (asyncio's `DEVNULL`)
        stdout_, ///< stderr only: to wherever stdout goes (asyncio's `STDOUT`)
        fd,      ///< a file descriptor of the parent (dup'ed; the caller keeps and closes it)
    };
    /// The redirection.
    kind how = kind::inherit;
    /// The parent's file descriptor, for kind::fd.
    int fd = -1;

    /// Redirects to (a duplicate of) the parent's file descriptor `fd`, as asyncio accepts a
    /// file object or descriptor. The descriptor must stay open until the process is spawned.
    static constexpr stdio from_fd(int fd) noexcept { return stdio{kind::fd, fd}; }
    /// Same kind (and same fd for kind::fd).
    friend constexpr bool operator==(const stdio&, const stdio&) noexcept = default;
};

/// The child uses the parent's stream (asyncio's `None`; the default).
inline constexpr stdio inherit{stdio::kind::inherit};
/// A pipe to the parent (asyncio.subprocess.PIPE): `process::stdin_` writes to it,
/// `process::stdout_` / `stderr_` read from it. Beware `using namespace corio;` with POSIX
/// `pipe()`: call that one as `::pipe`.
inline constexpr stdio pipe{stdio::kind::pipe};
/// /dev/null (asyncio.subprocess.DEVNULL).
inline constexpr stdio devnull{stdio::kind::devnull};
/// For `stderr_` only: stderr goes where stdout goes (asyncio.subprocess.STDOUT).
inline constexpr stdio stdout_{stdio::kind::stdout_};

/// The keyword arguments of create_subprocess_exec: `corio::subprocess_options{.stdout_ =
/// corio::pipe}`.
///
/// Every member is trivially destructible (views, not strings), so the options may be built
/// with braces inside a `co_await` statement even under GCC 12 (PR 100611, see the README's
/// compiler notes). What `cwd` and `env` view is copied when create_subprocess_exec is called:
/// it only has to live until that call returns.
struct subprocess_options {
    /// The child's stdin: `inherit` (default), `pipe`, `devnull`, or `stdio::from_fd(fd)`.
    stdio stdin_ = inherit;
    /// The child's stdout: `inherit` (default), `pipe`, `devnull`, or `stdio::from_fd(fd)`.
    stdio stdout_ = inherit;
    /// The child's stderr: as stdout_, or `corio::stdout_` (to wherever stdout goes).
    stdio stderr_ = inherit;
    /// The buffer limit of the stdout/stderr stream_readers (asyncio's `limit=`, 64 KiB).
    std::size_t limit = 65536;
    /// The child's working directory (empty: the parent's). A relative program path is
    /// resolved from it. Throws `std::system_error` ENOSYS where posix_spawn cannot chdir
    /// (glibc before 2.29, FreeBSD before 13.1).
    std::string_view cwd{};
    /// The child's whole environment as "NAME=value" strings (none: the parent's).
    std::optional<std::span<const std::string>> env{};
};

static_assert(std::is_trivially_destructible_v<subprocess_options>,
              "subprocess_options is built with braces inside co_await statements (GCC PR 100611)");

class process;

namespace detail::proc {

/// What to spawn: the arguments of create_subprocess_exec, owned.
struct spawn_request {
    std::vector<std::string> argv;
    std::array<stdio, 3> io{};
    std::size_t limit = 65536;
    std::optional<std::string> cwd;
    std::optional<std::vector<std::string>> env;
};

inline spawn_request make_request(std::vector<std::string> argv, const subprocess_options& o) {
    spawn_request r;
    r.argv = std::move(argv);
    r.io = {o.stdin_, o.stdout_, o.stderr_};
    r.limit = o.limit;
    if (!o.cwd.empty()) r.cwd.emplace(o.cwd);
    if (o.env) r.env.emplace(o.env->begin(), o.env->end());
    return r;
}

/// A close-on-exec duplicate of `fd` above the standard streams (so that the child's dup2 onto
/// 0, 1 and 2 never overwrites a source it still needs). Throws `std::system_error`.
inline unique_fd dup_above_stdio(int fd) {
    const int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (d < 0) throw_os_error(errno, "fcntl(F_DUPFD_CLOEXEC)");
    return unique_fd(d);
}

/// `fd` if it is above the standard streams, else dup_above_stdio(fd).
inline unique_fd above_stdio(unique_fd fd) {
    if (fd.get() > 2) return fd;
    return dup_above_stdio(fd.get());
}

/// posix_spawn's file actions and attributes, freed on every path.
struct spawn_setup {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    bool have_actions = false;
    bool have_attr = false;

    spawn_setup() {
        if (int e = ::posix_spawn_file_actions_init(&actions))
            throw std::system_error(e, std::generic_category(), "posix_spawn_file_actions_init");
        have_actions = true;
        if (int e = ::posix_spawnattr_init(&attr))
            throw std::system_error(e, std::generic_category(), "posix_spawnattr_init");
        have_attr = true;
    }
    spawn_setup(const spawn_setup&) = delete;
    spawn_setup& operator=(const spawn_setup&) = delete;
    ~spawn_setup() {
        if (have_actions) ::posix_spawn_file_actions_destroy(&actions);
        if (have_attr) ::posix_spawnattr_destroy(&attr);
    }
};

inline void check_spawn(int e, const char* what) {
    if (e) throw std::system_error(e, std::generic_category(), what);
}

/// posix_spawn, searching `path` (a PATH value) as execvp does when the program has no '/':
/// ENOENT/ENOTDIR go on to the next directory, EACCES is remembered, anything else stops.
inline int spawn_in_path(pid_t* pid, const std::string& program, const std::string& path,
                         const posix_spawn_file_actions_t* fa, const posix_spawnattr_t* attr,
                         char* const argv[], char* const envp[]) {
    int result = ENOENT;
    std::size_t start = 0;
    for (;;) {
        std::size_t end = path.find(':', start);
        std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
        std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + program;
        int e = ::posix_spawn(pid, candidate.c_str(), fa, attr, argv, envp);
        if (e == 0) return 0;
        if (e == EACCES) result = EACCES;
        else if (e != ENOENT && e != ENOTDIR) return e;
        if (end == std::string::npos) return result;
        start = end + 1;
    }
}

/// A spawned child and the parent's ends of its pipes (-1 where there is no pipe).
struct spawned {
    pid_t pid = -1;
    std::array<unique_fd, 3> parent_ends;
};

/// Spawns the child (synchronously). Throws `std::system_error` (spawn errors, with the
/// program's name) or `std::invalid_argument` (bad options).
inline spawned spawn_child(const spawn_request& req) {
    if (req.argv.empty() || req.argv[0].empty())
        throw std::invalid_argument("corio::create_subprocess_exec: no program given");
    if (req.io[0].how == stdio::kind::stdout_ || req.io[1].how == stdio::kind::stdout_)
        throw std::invalid_argument("corio::create_subprocess_exec: corio::stdout_ is for stderr_ only");
    if (req.limit == 0) throw std::invalid_argument("corio::create_subprocess_exec: limit must be > 0");

    spawned out;
    std::array<unique_fd, 3> child_ends; // the child's ends of pipes, or copies of user fds
    for (int target = 0; target < 3; ++target) {
        const stdio& s = req.io[static_cast<std::size_t>(target)];
        if (s.how == stdio::kind::pipe) {
            auto [r, w] = open_pipe(); // close-on-exec, both ends blocking
            unique_fd& parent = target == 0 ? w : r;
            unique_fd& child = target == 0 ? r : w;
            set_nonblocking(parent.get()); // the loop's end; the child's end stays blocking
            out.parent_ends[static_cast<std::size_t>(target)] = std::move(parent);
            child_ends[static_cast<std::size_t>(target)] = above_stdio(std::move(child));
        } else if (s.how == stdio::kind::fd) {
            if (s.fd < 0 || ::fcntl(s.fd, F_GETFD) < 0)
                throw std::system_error(EBADF, std::generic_category(),
                                        "corio::create_subprocess_exec: stdio::from_fd");
            if (s.fd < 3 && s.fd != target) { // may be overwritten by an earlier dup2: copy it
                child_ends[static_cast<std::size_t>(target)] = dup_above_stdio(s.fd);
            }
        }
    }

    spawn_setup setup;
    for (int target = 0; target < 3; ++target) {
        const std::size_t i = static_cast<std::size_t>(target);
        const stdio& s = req.io[i];
        switch (s.how) {
        case stdio::kind::inherit:
            break;
        case stdio::kind::pipe:
            check_spawn(::posix_spawn_file_actions_adddup2(&setup.actions, child_ends[i].get(), target),
                        "posix_spawn_file_actions_adddup2");
            break;
        case stdio::kind::devnull:
            check_spawn(::posix_spawn_file_actions_addopen(&setup.actions, target, "/dev/null",
                                                           target == 0 ? O_RDONLY : O_WRONLY, 0),
                        "posix_spawn_file_actions_addopen");
            break;
        case stdio::kind::stdout_:
            check_spawn(::posix_spawn_file_actions_adddup2(&setup.actions, 1, 2),
                        "posix_spawn_file_actions_adddup2");
            break;
        case stdio::kind::fd: {
            const int src = child_ends[i] ? child_ends[i].get() : s.fd;
            if (src != target) // the same fd: inherited as it is
                check_spawn(::posix_spawn_file_actions_adddup2(&setup.actions, src, target),
                            "posix_spawn_file_actions_adddup2");
            break;
        }
        }
    }
    if (req.cwd) {
#if defined(CORIO_DETAIL_SPAWN_CHDIR)
        check_spawn(::posix_spawn_file_actions_addchdir_np(&setup.actions, req.cwd->c_str()),
                    "posix_spawn_file_actions_addchdir_np");
#else
        throw std::system_error(ENOSYS, std::generic_category(),
                                "corio::create_subprocess_exec: cwd is not supported on this platform");
#endif
    }
#if defined(CORIO_DETAIL_SPAWN_CLOSEFROM)
    // Python's close_fds=True: the child keeps 0, 1 and 2 only.
    check_spawn(::posix_spawn_file_actions_addclosefrom_np(&setup.actions, 3),
                "posix_spawn_file_actions_addclosefrom_np");
#endif
    // Python's restore_signals=True: what the parent ignores, the child must not.
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
#if defined(SIGXFSZ)
    sigaddset(&defaults, SIGXFSZ);
#endif
    check_spawn(::posix_spawnattr_setsigdefault(&setup.attr, &defaults), "posix_spawnattr_setsigdefault");
    check_spawn(::posix_spawnattr_setflags(&setup.attr, POSIX_SPAWN_SETSIGDEF), "posix_spawnattr_setflags");

    std::vector<char*> argv;
    argv.reserve(req.argv.size() + 1);
    for (const std::string& a : req.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    if (req.env) {
        envp.reserve(req.env->size() + 1);
        for (const std::string& e : *req.env) envp.push_back(const_cast<char*>(e.c_str()));
        envp.push_back(nullptr);
    }
#if defined(__APPLE__)
    char* const* env = req.env ? envp.data() : *_NSGetEnviron();
#else
    char* const* env = req.env ? envp.data() : environ;
#endif

    const std::string& program = req.argv[0];
    int e;
    if (program.find('/') != std::string::npos) {
        e = ::posix_spawn(&out.pid, program.c_str(), &setup.actions, &setup.attr, argv.data(), env);
    } else if (!req.env) {
        e = ::posix_spawnp(&out.pid, program.c_str(), &setup.actions, &setup.attr, argv.data(), env);
    } else {
        std::string path = "/bin:/usr/bin"; // Python's os.defpath, for an env without PATH
        for (const std::string& kv : *req.env)
            if (kv.rfind("PATH=", 0) == 0) path = kv.substr(5);
        e = spawn_in_path(&out.pid, program, path, &setup.actions, &setup.attr, argv.data(), env);
    }
    if (e) throw std::system_error(e, std::generic_category(), program);
    return out; // child_ends close here: the child has its copies
}

/// What every copy of a `process` handle shares.
class process_state {
public:
    process_state(event_loop& loop, pid_t pid)
        : m_loop(&loop), m_pid(pid), m_watch(std::make_unique<child_watch>(pid)), m_exited(loop) {}
    process_state(const process_state&) = delete;
    process_state& operator=(const process_state&) = delete;

    /// The last handle is gone: a running child is killed (asyncio closes a running child's
    /// transport so) and reaped in the background; the pipes are closed. Once the loop is
    /// closed (the future's loop pointer is cleared then), the loop is not touched.
    ~process_state() {
        const bool loop_open = m_exited.core()->loop() != nullptr;
        if (!m_returncode && m_watch && !m_watch->collected()) {
            try {
                if (loop_open && m_registered) m_loop->remove_reader(m_watch->fd());
                m_watch->send_signal(SIGKILL);
            } catch (...) { // kill() refused (EPERM): nothing more can be done
            }
            if (loop_open && !m_watch->threaded()) adopt_orphan();
        }
        for (auto& tr : m_pipes) {
            if (!tr || !loop_open) continue;
            try {
                if (!tr->is_closing()) tr->close();
            } catch (...) {
            }
        }
    }

    /// Starts watching for the exit on the loop.
    void start() {
        m_loop->add_reader(m_watch->fd(), [this] { on_exit_ready(); });
        m_registered = true;
    }

    pid_t pid() const noexcept { return m_pid; }
    const std::optional<int>& returncode() const noexcept { return m_returncode; }
    future<void>& exited() noexcept { return m_exited; }
    event_loop& loop() const noexcept { return *m_loop; }
    std::array<std::shared_ptr<transport>, 3>& pipes() noexcept { return m_pipes; }

    void send_signal(int sig) {
        if (m_returncode || !m_watch->send_signal(sig))
            throw std::system_error(ESRCH, std::generic_category(),
                                    "send_signal: the process has exited"); // ProcessLookupError
    }

private:
    void on_exit_ready() {
        std::optional<child_exit> ex = m_watch->try_collect();
        if (!ex) return;
        m_loop->remove_reader(m_watch->fd());
        m_registered = false;
        m_watch->close_fd();
        m_returncode = ex->returncode;
        if (ex->unknown)
            m_loop->call_exception_handler(
                {"Unknown child process pid " + std::to_string(m_pid) +
                     ", will report returncode 255",
                 nullptr,
                 {}});
        if (!m_exited.done()) m_exited.set_result();
    }

    /// The killed child is reaped by the loop when its pidfd fires; if the loop closes first,
    /// the callback is dropped and ~child_watch hands the pid to a detached reaper thread.
    void adopt_orphan() noexcept {
        try {
            std::shared_ptr<child_watch> w(std::move(m_watch));
            event_loop* loop = m_loop;
            loop->add_reader(w->fd(), [w, loop] {
                if (!w->try_collect()) return;
                loop->remove_reader(w->fd()); // destroys this callable once it returns
                w->close_fd();
            });
        } catch (...) { // the watch (if not moved) reaps in the background as it is destroyed
        }
    }

    event_loop* m_loop;
    pid_t m_pid;
    std::unique_ptr<child_watch> m_watch; ///< moved to the loop (adopt_orphan) at the very end
    future<void> m_exited; ///< done at exit; its loop pointer is cleared when the loop closes
    std::optional<int> m_returncode;
    std::array<std::shared_ptr<transport>, 3> m_pipes;
    bool m_registered = false;
};

inline task<int> wait_exit(std::shared_ptr<process_state> st) {
    if (!st->returncode()) co_await st->exited().wait_done(); // cancelling only stops waiting
    co_return *st->returncode();
}

inline bool is_broken_pipe(const std::system_error& e) noexcept {
    return e.code() == std::errc::broken_pipe || e.code() == std::errc::connection_reset;
}

/// asyncio's Process._feed_stdin.
inline task<> feed_stdin(std::optional<stream_writer> w, std::string input) {
    if (!w || !*w) co_return;
    try {
        if (!input.empty()) {
            w->write(input);
            co_await w->drain();
        }
    } catch (const std::system_error& e) {
        if (!is_broken_pipe(e)) { // communicate() ignores BrokenPipeError and ConnectionResetError
            w->close();
            throw;
        }
    }
    w->close();
}

/// asyncio's Process._read_stream: all of it, then the pipe is closed.
inline task<std::string> read_pipe(std::optional<stream_reader> r, std::shared_ptr<transport> tr) {
    if (!r) co_return std::string();
    std::string data = co_await r->read();
    if (tr && !tr->is_closing()) tr->close();
    co_return data;
}

inline task<std::pair<std::string, std::string>> communicate(std::shared_ptr<process_state> st,
                                                            std::optional<stream_writer> in,
                                                            std::optional<stream_reader> out,
                                                            std::optional<stream_reader> err,
                                                            std::string input) {
    auto feed = feed_stdin(std::move(in), std::move(input));
    auto read_out = read_pipe(std::move(out), st->pipes()[1]);
    auto read_err = read_pipe(std::move(err), st->pipes()[2]);
    auto all = gather(std::move(feed), std::move(read_out), std::move(read_err));
    auto results = co_await std::move(all);
    co_await wait_exit(st);
    co_return std::pair<std::string, std::string>(std::move(std::get<1>(results)),
                                                  std::move(std::get<2>(results)));
}

inline task<process> spawn_task(spawn_request req);

template <class T>
concept exec_arg = std::constructible_from<std::string, const T&>;
template <class T>
concept options_arg = std::same_as<std::remove_cvref_t<T>, subprocess_options>;

/// Program and arguments (string-like), optionally ended by a subprocess_options.
template <class... A>
consteval bool valid_exec_args() {
    constexpr std::size_t n = sizeof...(A);
    if constexpr (n == 0) {
        return false;
    } else {
        constexpr bool str[] = {exec_arg<A>...};
        constexpr bool opt[] = {options_arg<A>...};
        if (!str[0]) return false;
        for (std::size_t i = 1; i < n; ++i)
            if (!str[i] && !(opt[i] && i + 1 == n)) return false;
        return true;
    }
}

} // namespace detail::proc

/// A child process (asyncio.subprocess.Process), as create_subprocess_exec gives it.
///
/// A copyable handle: copies share the child. When the last copy is gone (and no wait() or
/// communicate() is pending) while the child still runs, the child is killed (SIGKILL) and
/// reaped in the background, as asyncio does when it collects a running child's transport;
/// keep the handle, or `co_await wait()`, for as long as the child should live.
class process {
public:
    /// An empty handle (only assignment and `operator bool` may be used).
    process() noexcept = default;

    /// Writes to the child's stdin (set if `stdin_ = corio::pipe`). Closing it (`close()` or
    /// `write_eof()`) gives the child EOF.
    std::optional<stream_writer> stdin_;
    /// Reads the child's stdout (set if `stdout_ = corio::pipe`).
    std::optional<stream_reader> stdout_;
    /// Reads the child's stderr (set if `stderr_ = corio::pipe`).
    std::optional<stream_reader> stderr_;

    /// True unless the handle is empty.
    explicit operator bool() const noexcept { return m_state != nullptr; }

    /// The child's process id.
    int pid() const noexcept { return static_cast<int>(m_state->pid()); }

    /// The exit status once the child has exited and the loop noticed (empty before): the exit
    /// code, or `-N` if it was killed by signal N (asyncio's returncode).
    std::optional<int> returncode() const noexcept { return m_state->returncode(); }

    /// Waits for the child to exit and gives its returncode (at once if it already has).
    /// Returns when the child exits, whether or not its pipes are closed (see the file
    /// comment). Cancellation: only the waiting stops; the child keeps running and wait() may
    /// be called again (asyncio). Any number of tasks may wait at once.
    [[nodiscard]] task<int> wait() const { return detail::proc::wait_exit(m_state); }

    /// asyncio's communicate(input): writes `input` to stdin (if it is a pipe) and closes it,
    /// reads stdout and stderr (those that are pipes) until EOF, concurrently, then waits for
    /// the child to exit. Gives `{stdout, stderr}` (empty for a stream that is not a pipe).
    /// A child that exits or closes its stdin before reading all the input is not an error
    /// (EPIPE and ECONNRESET on stdin are ignored, as asyncio does); other I/O errors are
    /// thrown (`std::system_error`). Output is not bounded by the stream limit (read() to EOF).
    /// Cancellation: the reading and writing stop (the pipes stay open, and what was read
    /// stays buffered in `stdout_`/`stderr_`), the child keeps running.
    [[nodiscard]] task<std::pair<std::string, std::string>> communicate(std::string input = {}) const {
        return detail::proc::communicate(m_state, stdin_, stdout_, stderr_, std::move(input));
    }

    /// Sends signal `sig` to the child. Throws `std::system_error` ESRCH once the child has
    /// exited and was reaped (asyncio's ProcessLookupError; corio never signals a pid that
    /// may have been reused), or with kill()'s errno.
    void send_signal(int sig) { m_state->send_signal(sig); }
    /// send_signal(SIGTERM).
    void terminate() { send_signal(SIGTERM); }
    /// send_signal(SIGKILL).
    void kill() { send_signal(SIGKILL); }

private:
    friend task<process> detail::proc::spawn_task(detail::proc::spawn_request req);
    std::shared_ptr<detail::proc::process_state> m_state;
};

namespace detail::proc {

/// Spawns on the running loop when first resumed (create_subprocess_exec is lazy, as every
/// corio coroutine), and wires the pipes to streams.
inline task<process> spawn_task(spawn_request req) {
    event_loop& loop = get_running_loop();
    spawned child = spawn_child(req);
    std::shared_ptr<process_state> st;
    try {
        st = std::make_shared<process_state>(loop, child.pid);
    } catch (...) { // no way to watch it: do not leave it running unwatched
        ::kill(child.pid, SIGKILL);
        (void)blocking_reap(child.pid);
        throw;
    }
    // From here on, an exception destroys `st`, which kills the child and reaps it.
    process p;
    p.m_state = st;
    for (std::size_t i = 0; i < 3; ++i) {
        unique_fd& fd = child.parent_ends[i];
        if (!fd) continue;
        std::optional<stream_reader> reader;
        if (i > 0) reader.emplace(req.limit);
        auto proto = std::make_shared<stream_protocol>(reader);
        auto tr = make_pipe_transport(loop, fd.release(), proto); // owns the fd, even if it throws
        st->pipes()[i] = tr;
        if (i == 0) p.stdin_.emplace(tr, proto);
        else if (i == 1) p.stdout_ = std::move(reader);
        else p.stderr_ = std::move(reader);
    }
    st->start();
    co_return p;
}

} // namespace detail::proc

/// asyncio.create_subprocess_exec(program, *args, ...): starts `program` with `args` and gives
/// the `process`. The arguments are strings (anything a std::string can be made from); the
/// last may be a `subprocess_options`:
///
///     auto p = co_await corio::create_subprocess_exec("ls", "-l", dir,
///                                                      corio::subprocess_options{.stdout_ = corio::pipe});
///
/// Lazy, as every corio coroutine: the child starts when the task is awaited (or scheduled).
/// Throws `std::system_error` if it cannot be started (ENOENT for a program that does not
/// exist, EACCES, EMFILE...), `std::invalid_argument` for invalid options. Must run in a task
/// (it uses the running loop). Cancellation: spawning does not suspend, so a cancelled
/// task never runs it or already has the process.
template <class... A>
    requires(detail::proc::valid_exec_args<A...>())
[[nodiscard]] task<process> create_subprocess_exec(A&&... args) {
    std::vector<std::string> argv;
    argv.reserve(sizeof...(A));
    subprocess_options opts;
    auto add = [&]<class T>(T&& a) {
        if constexpr (detail::proc::options_arg<T>) opts = a;
        else argv.emplace_back(std::forward<T>(a));
    };
    (add(std::forward<A>(args)), ...);
    return detail::proc::spawn_task(detail::proc::make_request(std::move(argv), opts));
}

/// create_subprocess_exec with the program and its arguments in one vector (`argv[0]` is the
/// program): `co_await corio::create_subprocess_exec(argv, {.stdin_ = corio::pipe})`. (GCC 12
/// rejects a braced list such as `{"sort", "-n"}` inside a co_await statement, "array used as
/// initializer": name the vector first.) Throws as the variadic form; `std::invalid_argument`
/// for an empty argv.
[[nodiscard]] inline task<process> create_subprocess_exec(std::vector<std::string> argv,
                                                          subprocess_options opts = {}) {
    return detail::proc::spawn_task(detail::proc::make_request(std::move(argv), opts));
}

/// create_subprocess_exec with the options written in place, as asyncio's keyword arguments
/// (API.md's spelling): `co_await corio::create_subprocess_exec("cat", {.stdin_ = corio::pipe})`,
/// for a program and up to three arguments. (A braced list cannot be deduced into the
/// variadic form's parameter pack, hence these overloads.) `subprocess_options` is trivially
/// destructible, so building it inside the co_await statement is safe from GCC PR 100611.
/// Throws as the variadic form.
///@{
[[nodiscard]] inline task<process> create_subprocess_exec(std::string_view program,
                                                          subprocess_options opts) {
    return create_subprocess_exec(std::vector<std::string>{std::string(program)}, opts);
}
[[nodiscard]] inline task<process> create_subprocess_exec(std::string_view program,
                                                          std::string_view a1,
                                                          subprocess_options opts) {
    return create_subprocess_exec(std::vector<std::string>{std::string(program), std::string(a1)},
                                  opts);
}
[[nodiscard]] inline task<process> create_subprocess_exec(std::string_view program,
                                                          std::string_view a1, std::string_view a2,
                                                          subprocess_options opts) {
    return create_subprocess_exec(
        std::vector<std::string>{std::string(program), std::string(a1), std::string(a2)}, opts);
}
[[nodiscard]] inline task<process> create_subprocess_exec(std::string_view program,
                                                          std::string_view a1, std::string_view a2,
                                                          std::string_view a3,
                                                          subprocess_options opts) {
    return create_subprocess_exec(std::vector<std::string>{std::string(program), std::string(a1),
                                                           std::string(a2), std::string(a3)},
                                  opts);
}
///@}

/// asyncio.create_subprocess_shell(cmd): runs `cmd` with `/bin/sh -c`. The shell interprets
/// it: never pass untrusted input. Throws as create_subprocess_exec.
[[nodiscard]] inline task<process> create_subprocess_shell(std::string_view cmd,
                                                           subprocess_options opts = {}) {
    return create_subprocess_exec(std::vector<std::string>{"/bin/sh", "-c", std::string(cmd)}, opts);
}

} // namespace corio
