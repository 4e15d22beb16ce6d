// Subprocesses: create_subprocess_exec, pipes as streams, wait/communicate, signals, and child
// reaping that never races with other children. Most cases run twice: with the pidfd watcher
// (Linux) and with the threaded watcher (the portable path), forced through a test switch.
#include <corio/subprocess.hpp>

#include <doctest/doctest.h>

#include "support/helpers.hpp"

#include <corio/gather.hpp>
#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/testing.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <string>
#include <sys/wait.h>
#include <system_error>
#include <thread>
#include <time.h>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using corio::task;

namespace {

/// Selects the child watcher for the processes spawned while it lives.
struct watcher_mode {
    explicit watcher_mode(bool threaded) {
        corio::detail::proc::force_threaded_child_watcher.store(threaded);
    }
    ~watcher_mode() { corio::detail::proc::force_threaded_child_watcher.store(false); }
};

/// The open fds and what they are (Linux), for failure messages.
std::string describe_fds() {
    std::string out;
    for (int fd = 0; fd < 1024; ++fd) {
        if (::fcntl(fd, F_GETFD) < 0) continue;
        char link[256] = {};
        const std::string path = "/proc/self/fd/" + std::to_string(fd);
        ssize_t n = ::readlink(path.c_str(), link, sizeof link - 1);
        out += std::to_string(fd) + "=" + (n > 0 ? std::string(link, static_cast<std::size_t>(n)) : "?") + " ";
    }
    return out;
}

/// Threads of this process (Linux: /proc/self/task), or -1 where that is unknown.
int count_threads() {
    DIR* d = ::opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n;
}

/// Polls `pred` for up to two seconds of real time (for what happens on other threads or in
/// other processes: a reaper thread, a killed child).
template <class Pred>
bool eventually(Pred pred) {
    for (int i = 0; i < 400; ++i) {
        if (pred()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return pred();
}

/// True while `pid` exists (running or a zombie not yet reaped).
bool pid_exists(int pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

const corio::subprocess_options out_pipe{.stdout_ = corio::pipe};
const corio::subprocess_options all_pipes{
    .stdin_ = corio::pipe, .stdout_ = corio::pipe, .stderr_ = corio::pipe};

} // namespace

TEST_CASE("API.md's spelling: options written in place, as asyncio's keyword arguments") {
    corio::run([]() -> task<> {
        auto p = co_await corio::create_subprocess_exec("/bin/echo", "in", "place",
                                                        {.stdout_ = corio::pipe});
        CHECK(co_await p.stdout_->read() == "in place\n");
        CHECK(co_await p.wait() == 0);
        auto q = co_await corio::create_subprocess_exec(
            "cat", {.stdin_ = corio::pipe, .stdout_ = corio::pipe});
        auto [out, err] = co_await q.communicate("meow");
        CHECK(out == "meow");
        CHECK(err.empty());
        CHECK(q.returncode() == 0);
    });
}

TEST_CASE("echo: stdout through a pipe, then exit code 0") {
    for (bool threaded : {false, true}) {
        CAPTURE(threaded);
        watcher_mode mode(threaded);
        corio::run([]() -> task<> {
            auto p = co_await corio::create_subprocess_exec("/bin/echo", "hello", "world", out_pipe);
            CHECK(p.pid() > 0);
            CHECK_FALSE(p.stdin_);
            CHECK(p.stdout_);
            CHECK_FALSE(p.stderr_);
            CHECK(co_await p.stdout_->read() == "hello world\n");
            CHECK(co_await p.wait() == 0);
            CHECK(p.returncode() == 0);
            CHECK(co_await p.wait() == 0); // again: at once
        });
    }
}

TEST_CASE("exit codes, and the program found in PATH") {
    for (bool threaded : {false, true}) {
        CAPTURE(threaded);
        watcher_mode mode(threaded);
        corio::run([]() -> task<> {
            auto p = co_await corio::create_subprocess_exec("sh", "-c", "exit 3");
            CHECK_FALSE(p.returncode());
            CHECK(co_await p.wait() == 3);
            CHECK(p.returncode() == 3);
            auto q = co_await corio::create_subprocess_exec("false");
            CHECK(co_await q.wait() == 1);
        });
    }
}

TEST_CASE("a child killed by a signal reports minus the signal number") {
    for (bool threaded : {false, true}) {
        CAPTURE(threaded);
        watcher_mode mode(threaded);
        corio::run([]() -> task<> {
            auto p = co_await corio::create_subprocess_exec("sleep", "10");
            p.terminate();
            CHECK(co_await p.wait() == -SIGTERM);
            auto q = co_await corio::create_subprocess_exec("sleep", "10");
            q.kill();
            CHECK(co_await q.wait() == -SIGKILL);
            auto r = co_await corio::create_subprocess_exec("sleep", "10");
            r.send_signal(SIGINT);
            CHECK(co_await r.wait() == -SIGINT);
            // Once reaped, the pid may belong to someone else: asyncio's ProcessLookupError.
            try {
                r.kill();
                FAIL("kill after exit must throw");
            } catch (const std::system_error& e) {
                CHECK(e.code() == std::errc::no_such_process);
            }
        });
    }
}

TEST_CASE("a program that does not exist throws std::system_error ENOENT, leaking nothing") {
    corio::run([]() -> task<> {
        const int fds = corio_test::open_fd_count();
        for (const char* prog : {"corio-no-such-program", "/nonexistent/corio-prog"}) {
            CAPTURE(prog);
            bool thrown = false;
            try {
                auto p = co_await corio::create_subprocess_exec(prog, "x", all_pipes);
            } catch (const std::system_error& e) {
                thrown = true;
                CHECK(e.code() == std::errc::no_such_file_or_directory);
                CHECK(std::string(e.what()).find(prog) != std::string::npos);
            }
            CHECK(thrown);
        }
        // Not executable: EACCES (asyncio's PermissionError).
        char path[] = "/tmp/corio-test-noexec-XXXXXX";
        int tmp = ::mkstemp(path); // mode 0600
        REQUIRE(tmp >= 0);
        ::close(tmp);
        bool thrown = false;
        try {
            auto p = co_await corio::create_subprocess_exec(path);
        } catch (const std::system_error& e) {
            thrown = true;
            CHECK(e.code() == std::errc::permission_denied);
        }
        ::unlink(path);
        CHECK(thrown);
        CHECK(corio_test::open_fd_count() == fds);
    });
}

TEST_CASE("invalid options throw std::invalid_argument") {
    corio::run([]() -> task<> {
        CHECK_THROWS_AS(co_await corio::create_subprocess_exec(std::vector<std::string>{}),
                        std::invalid_argument);
        CHECK_THROWS_AS(co_await corio::create_subprocess_exec(
                            "true", corio::subprocess_options{.stdout_ = corio::stdout_}),
                        std::invalid_argument);
        CHECK_THROWS_AS(co_await corio::create_subprocess_exec(
                            "true", corio::subprocess_options{.stdin_ = corio::stdio::from_fd(987)}),
                        std::system_error);
    });
}

TEST_CASE("communicate: 1 MiB through cat, more than any pipe buffer, without deadlock") {
    for (bool threaded : {false, true}) {
        CAPTURE(threaded);
        watcher_mode mode(threaded);
        corio::run([]() -> task<> {
            std::string input(1 << 20, '\0');
            for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<char>('a' + i % 26);
            auto p = co_await corio::create_subprocess_exec("cat", all_pipes);
            auto [out, err] = co_await p.communicate(input);
            CHECK(out.size() == input.size());
            CHECK(out == input);
            CHECK(err.empty());
            CHECK(p.returncode() == 0);
        });
    }
}

TEST_CASE("communicate without input, and with streams that are not pipes") {
    corio::run([]() -> task<> {
        auto p = co_await corio::create_subprocess_exec("cat", all_pipes);
        auto [out, err] = co_await p.communicate(); // closes stdin: cat sees EOF
        CHECK(out.empty());
        CHECK(err.empty());
        CHECK(p.returncode() == 0);

        auto q = co_await corio::create_subprocess_exec("sh", "-c", "exit 4");
        auto [o2, e2] = co_await q.communicate("ignored: stdin is not a pipe");
        CHECK(o2.empty());
        CHECK(e2.empty());
        CHECK(q.returncode() == 4);
    });
}

TEST_CASE("communicate ignores a child that exits without reading its input (EPIPE)") {
    corio::run([]() -> task<> {
        auto p = co_await corio::create_subprocess_exec(
            "sh", "-c", "echo bye; exit 5",
            corio::subprocess_options{.stdin_ = corio::pipe, .stdout_ = corio::pipe});
        co_await p.wait(); // gone: its stdin is closed
        auto [out, err] = co_await p.communicate(std::string(1 << 20, 'x'));
        CHECK(out == "bye\n");
        CHECK(p.returncode() == 5);
    });
}

TEST_CASE("stderr: captured apart, sent to stdout, or to /dev/null") {
    corio::run([]() -> task<> {
        const char* script = "echo out; echo err >&2; echo out2";
        {
            auto p = co_await corio::create_subprocess_exec("sh", "-c", script, all_pipes);
            auto [out, err] = co_await p.communicate();
            CHECK(out == "out\nout2\n");
            CHECK(err == "err\n");
        }
        {
            auto p = co_await corio::create_subprocess_exec(
                "sh", "-c", script,
                corio::subprocess_options{.stdout_ = corio::pipe, .stderr_ = corio::stdout_});
            CHECK_FALSE(p.stderr_);
            auto [out, err] = co_await p.communicate();
            CHECK(out == "out\nerr\nout2\n");
            CHECK(err.empty());
        }
        {
            auto p = co_await corio::create_subprocess_exec(
                "sh", "-c", script,
                corio::subprocess_options{.stdout_ = corio::devnull, .stderr_ = corio::pipe});
            auto [out, err] = co_await p.communicate();
            CHECK(out.empty());
            CHECK(err == "err\n");
        }
        {
            // stdin from /dev/null: cat sees EOF at once.
            auto p = co_await corio::create_subprocess_exec(
                "cat", corio::subprocess_options{.stdin_ = corio::devnull, .stdout_ = corio::pipe});
            CHECK(co_await p.stdout_->read() == "");
            CHECK(co_await p.wait() == 0);
        }
    });
}

TEST_CASE("wait() returns at the child's exit even while a grandchild holds its stdout") {
    for (bool threaded : {false, true}) {
        CAPTURE(threaded);
        watcher_mode mode(threaded);
        corio::run([]() -> task<> {
            auto p = co_await corio::create_subprocess_exec("/bin/sh", "-c", "sleep 10 & echo $!", out_pipe);
            const int grandchild = std::stoi(co_await p.stdout_->readline());
            CHECK(co_await p.wait() == 0);
            CHECK_FALSE(p.stdout_->at_eof()); // the grandchild still has the pipe
            ::kill(grandchild, SIGKILL);
            CHECK(co_await p.stdout_->read() == "");
        });
    }
}

TEST_CASE("stdin: write, drain, write_eof, then read the echo") {
    corio::run([]() -> task<> {
        auto p = co_await corio::create_subprocess_exec("cat", all_pipes);
        p.stdin_->write("line one\n");
        co_await p.stdin_->drain();
        CHECK(co_await p.stdout_->readline() == "line one\n");
        p.stdin_->write("line two\n");
        co_await p.stdin_->drain();
        p.stdin_->write_eof();
        CHECK(co_await p.stdout_->read() == "line two\n");
        CHECK(co_await p.wait() == 0);
    });
}

TEST_CASE("stdio::from_fd redirects to the caller's descriptor") {
    corio::run([]() -> task<> {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        auto p = co_await corio::create_subprocess_exec(
            "sh", "-c", "echo to-fd; echo err-to-fd >&2",
            corio::subprocess_options{.stdout_ = corio::stdio::from_fd(fds[1]),
                                      .stderr_ = corio::stdout_});
        CHECK(co_await p.wait() == 0);
        ::close(fds[1]);
        std::string got;
        char buf[256];
        for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
        ::close(fds[0]);
        CHECK(got == "to-fd\nerr-to-fd\n");
    });
}

TEST_CASE("the vector form, create_subprocess_shell, cwd and env") {
    corio::run([]() -> task<> {
        {
            // GCC 12 cannot compile a braced list inside a co_await statement ("array used as
            // initializer"): name the vector first.
            std::vector<std::string> argv{"printf", "%s-%s", "a b", "c"};
            auto p = co_await corio::create_subprocess_exec(argv, {.stdout_ = corio::pipe});
            auto [out, err] = co_await p.communicate();
            CHECK(out == "a b-c");
        }
        {
            auto p = co_await corio::create_subprocess_shell("echo $((6 * 7)) | tr 4 X",
                                                             {.stdout_ = corio::pipe});
            auto [out, err] = co_await p.communicate();
            CHECK(out == "X2\n");
        }
        {
            auto p = co_await corio::create_subprocess_exec(
                "pwd", corio::subprocess_options{.stdout_ = corio::pipe, .cwd = "/"});
            auto [out, err] = co_await p.communicate();
            CHECK(out == "/\n");
        }
        {
            // The program is searched in the given environment's PATH (Python's
            // os.get_exec_path(env)), and the child sees only that environment.
            std::vector<std::string> env{"CORIO_TEST_VAR=forty two", "PATH=/nonexistent:/usr/bin:/bin"};
            auto p = co_await corio::create_subprocess_exec(
                "sh", "-c", "echo \"$CORIO_TEST_VAR\"; echo \"${HOME:-unset}\"",
                corio::subprocess_options{.stdout_ = corio::pipe, .env = env});
            auto [out, err] = co_await p.communicate();
            CHECK(out == "forty two\nunset\n");
        }
        {
            std::vector<std::string> env{"PATH=/nonexistent"};
            bool thrown = false;
            try {
                auto p = co_await corio::create_subprocess_exec(
                    "sh", corio::subprocess_options{.env = env});
            } catch (const std::system_error& e) {
                thrown = e.code() == std::errc::no_such_file_or_directory;
            }
            CHECK(thrown);
        }
    });
}

TEST_CASE("cancelling wait() leaves the child running; it can be waited for again") {
    for (bool threaded : {false, true}) {
        CAPTURE(threaded);
        watcher_mode mode(threaded);
        corio::run([]() -> task<> {
            auto p = co_await corio::create_subprocess_exec("sleep", "10");
            auto w = corio_test::spawn([p]() -> task<int> { co_return co_await p.wait(); });
            co_await corio::sleep(10ms);
            CHECK(w.cancel());
            co_await w.wait_done();
            CHECK(w.cancelled());
            CHECK_FALSE(p.returncode());
            CHECK(pid_exists(p.pid()));
            auto w2 = corio_test::spawn([p]() -> task<int> { co_return co_await p.wait(); });
            co_await corio::sleep(0s);
            p.kill();
            CHECK(co_await w2 == -SIGKILL);
        });
    }
}

TEST_CASE("cancelling communicate() stops reading; the child is then killed, nothing leaks") {
    const int fds = corio_test::open_fd_count();
    const std::string before = describe_fds();
    corio::run([]() -> task<> {
        {
            auto p = co_await corio::create_subprocess_exec("sh", "-c", "echo partial; exec sleep 10",
                                                            all_pipes);
            auto c = corio_test::spawn([p]() -> task<std::pair<std::string, std::string>> {
                co_return co_await p.communicate("input");
            });
            co_await corio::sleep(50ms);
            CHECK(c.cancel());
            co_await c.wait_done();
            CHECK(c.cancelled());
            CHECK_FALSE(p.returncode());
            p.kill();
            CHECK(co_await p.wait() == -SIGKILL);
        }
    });
    CHECK_MESSAGE(corio_test::open_fd_count() == fds, before << " -> " << describe_fds());
}

TEST_CASE("50 concurrent children all report their own exit code") {
    for (bool threaded : {false, true}) {
        CAPTURE(threaded);
        watcher_mode mode(threaded);
        corio::run([]() -> task<> {
            const int fds = corio_test::open_fd_count();
            std::vector<corio::process> procs;
            for (int i = 0; i < 50; ++i) {
                const std::string script = "exit " + std::to_string(i * 5);
                procs.push_back(co_await corio::create_subprocess_exec("/bin/sh", "-c", script));
            }
            std::vector<task<int>> waits;
            for (auto& p : procs) waits.push_back(p.wait());
            std::vector<int> codes = co_await corio::gather(std::move(waits));
            for (int i = 0; i < 50; ++i) {
                CAPTURE(i);
                CHECK(codes[static_cast<std::size_t>(i)] == i * 5);
                CHECK(procs[static_cast<std::size_t>(i)].returncode() == i * 5);
            }
            procs.clear();
            CHECK(corio_test::open_fd_count() == fds);
        });
    }
}

TEST_CASE("no fd leaks: pipes, watchers and transports are all closed") {
    for (bool threaded : {false, true}) {
        CAPTURE(threaded);
        watcher_mode mode(threaded);
        const int fds = corio_test::open_fd_count();
        const std::string before = describe_fds();
        corio::run([]() -> task<> {
            for (int i = 0; i < 10; ++i) {
                auto p = co_await corio::create_subprocess_exec("cat", all_pipes);
                auto [out, err] = co_await p.communicate("x");
                CHECK(out == "x");
            }
            auto q = co_await corio::create_subprocess_exec("cat", all_pipes);
            q.stdin_->write("y");
            q.stdin_->write_eof();
            CHECK(co_await q.stdout_->read() == "y");
            CHECK(co_await q.wait() == 0); // stderr never read: closed with the process
        });
        CHECK_MESSAGE(corio_test::open_fd_count() == fds, before << " -> " << describe_fds());
    }
}

TEST_CASE("a child forked outside corio is never reaped by corio (no waitpid(-1))") {
    for (bool threaded : {false, true}) {
        CAPTURE(threaded);
        watcher_mode mode(threaded);
        // One that exits before corio's children do, one while they run.
        pid_t early = ::fork();
        REQUIRE(early >= 0);
        if (early == 0) ::_exit(7);
        pid_t late = ::fork();
        REQUIRE(late >= 0);
        if (late == 0) {
            timespec ts{0, 50'000'000};
            ::nanosleep(&ts, nullptr);
            ::_exit(9);
        }
        corio::run([]() -> task<> {
            std::vector<corio::process> procs;
            for (int i = 0; i < 5; ++i)
                procs.push_back(co_await corio::create_subprocess_exec("/bin/sh", "-c", "sleep 0.1; exit 1"));
            for (auto& p : procs) CHECK(co_await p.wait() == 1);
        });
        int status = 0;
        CHECK(::waitpid(early, &status, 0) == early);
        CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 7));
        CHECK(::waitpid(late, &status, 0) == late);
        CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 9));
    }
}

TEST_CASE("the pidfd watcher is used on Linux, without a thread") {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) ::_exit(0);
    {
        corio::detail::proc::child_watch w(pid);
#if defined(__linux__)
        CHECK_FALSE(w.threaded());
#endif
        // Collected by hand, as the loop would once fd() is readable.
        CHECK(eventually([&] { return w.try_collect().has_value(); }));
        CHECK(w.collected());
    }
    CHECK_FALSE(pid_exists(pid));
}

TEST_CASE("dropping a running process kills it and reaps it") {
    for (bool threaded : {false, true}) {
        CAPTURE(threaded);
        watcher_mode mode(threaded);
        const int fds = corio_test::open_fd_count();
        int pid = corio::run([]() -> task<int> {
            int pid = 0;
            {
                auto p = co_await corio::create_subprocess_exec("sleep", "10", all_pipes);
                pid = p.pid();
            } // killed here
            co_await corio::sleep(50ms); // the loop reaps it (pidfd) or the thread does
            co_return pid;
        });
        CHECK(eventually([&] { return !pid_exists(pid); })); // neither running nor a zombie
        CHECK(eventually([&] { return corio_test::open_fd_count() == fds; }));
    }
}

TEST_CASE("a copy of the handle keeps the child: only the last one kills it") {
    corio::run([]() -> task<> {
        corio::process copy;
        int pid = 0;
        {
            auto p = co_await corio::create_subprocess_exec("sleep", "10");
            pid = p.pid();
            copy = p;
        }
        co_await corio::sleep(20ms);
        CHECK(pid_exists(pid));
        CHECK_FALSE(copy.returncode());
        copy.terminate();
        CHECK(co_await copy.wait() == -SIGTERM);
    });
}

TEST_CASE("virtual time: a child is I/O, waited for as a socket peer would be") {
    for (bool threaded : {false, true}) {
        CAPTURE(threaded);
        watcher_mode mode(threaded);
        corio::testing::run([]() -> task<> {
            auto& loop = corio::get_running_loop();
            const double t0 = loop.time();
            auto p = co_await corio::create_subprocess_exec("/bin/sh", "-c", "sleep 0.05; echo done",
                                                            out_pipe);
            auto [out, err] = co_await p.communicate();
            CHECK(out == "done\n");
            CHECK(p.returncode() == 0);
            co_await corio::sleep(1h); // the clock still jumps once nothing else is pending
            CHECK(loop.time() - t0 >= 3599.9);
        });
    }
}

TEST_CASE("a process that outlives corio::run: the child is left running, killed and reaped when dropped") {
    for (bool threaded : {false, true}) {
        CAPTURE(threaded);
        watcher_mode mode(threaded);
        const int fds = corio_test::open_fd_count();
        const int threads = count_threads();
        corio::process kept;
        corio::run([&kept]() -> task<> {
            kept = co_await corio::create_subprocess_exec("sleep", "10", all_pipes);
        });
        const int pid = kept.pid();
        CHECK(pid_exists(pid));
        CHECK_FALSE(kept.returncode());
        kept = corio::process(); // no loop any more: killed, reaped by a thread
        CHECK(eventually([&] { return !pid_exists(pid); }));
        CHECK(eventually([&] { return corio_test::open_fd_count() == fds; }));
        if (threads > 0) CHECK(eventually([&] { return count_threads() <= threads; }));
    }
}

TEST_CASE("threaded watcher: no thread outlives its child") {
    watcher_mode mode(true);
    const int threads = count_threads();
    if (threads < 0) return; // no /proc here
    corio::run([threads]() -> task<> {
        std::vector<corio::process> procs;
        for (int i = 0; i < 10; ++i) procs.push_back(co_await corio::create_subprocess_exec("sleep", "10"));
        CHECK(count_threads() >= threads + 10); // one per running child
        for (auto& p : procs) p.kill();
        for (auto& p : procs) CHECK(co_await p.wait() == -SIGKILL);
    });
    CHECK(eventually([&] { return count_threads() <= threads; }));
}

TEST_CASE("the child gets only stdin, stdout and stderr") {
    corio::run([]() -> task<> {
        // corio's own fds (epoll, pidfds, pipes) are close-on-exec; with glibc >= 2.34 even an
        // inheritable fd of the caller is closed (Python's close_fds=True).
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        REQUIRE(::dup2(fds[0], 100) == 100);
        auto other = co_await corio::create_subprocess_exec("sleep", "10", all_pipes);
        auto p = co_await corio::create_subprocess_exec("ls", "/proc/self/fd", out_pipe);
        auto [out, err] = co_await p.communicate();
        std::vector<std::string> names;
        for (std::size_t b = 0, e; (e = out.find('\n', b)) != std::string::npos; b = e + 1)
            names.push_back(out.substr(b, e - b));
        CHECK(std::count(names.begin(), names.end(), "0") == 1);
        CHECK(std::count(names.begin(), names.end(), "1") == 1);
        CHECK(std::count(names.begin(), names.end(), "2") == 1);
        CHECK(names.size() <= 4); // plus the directory ls reads
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
        CHECK(std::count(names.begin(), names.end(), "100") == 0);
#endif
        other.kill();
        co_await other.wait();
        ::close(100);
        ::close(fds[0]);
        ::close(fds[1]);
    });
}

TEST_CASE("the child starts with SIGPIPE at its default action even if the parent ignores it") {
    struct sigaction ign{}, old{};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    ::sigaction(SIGPIPE, &ign, &old);
    corio::run([]() -> task<> {
        // `yes` dies of SIGPIPE quietly; with SIGPIPE ignored it would complain on stderr.
        auto p = co_await corio::create_subprocess_exec(
            "sh", "-c", "yes | head -n 1",
            corio::subprocess_options{.stdout_ = corio::pipe, .stderr_ = corio::pipe});
        auto [out, err] = co_await p.communicate();
        CHECK(out.rfind("y\n", 0) == 0);
        CHECK(err.empty());
    });
    ::sigaction(SIGPIPE, &old, nullptr);
}

TEST_CASE("a child reaped by someone else reports 255, through the exception handler") {
    for (bool threaded : {false, true}) {
        CAPTURE(threaded);
        watcher_mode mode(threaded);
        // With SIGCHLD ignored the kernel reaps children itself: waitpid fails with ECHILD.
        struct sigaction ign{}, old{};
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        ::sigaction(SIGCHLD, &ign, &old);
        corio_test::report_recorder rec;
        corio::run([&rec]() -> task<> {
            rec.attach(corio::get_running_loop());
            auto p = co_await corio::create_subprocess_exec("sh", "-c", "exit 3");
            CHECK(co_await p.wait() == 255);
        });
        ::sigaction(SIGCHLD, &old, nullptr);
        CHECK(rec.count("Unknown child process pid") == 1);
    }
}
