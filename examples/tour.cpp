// tour: runs the short examples one after another, each as its own program, so that what you
// see is exactly what running it yourself prints. Add new examples to `stops` below.
//
// Usage: tour [--list]

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace {

struct stop {
    const char* program;
    std::vector<const char*> args;
    const char* what;
};

const std::vector<stop> stops = {
    {"hello", {}, "asyncio's hello world: run + sleep"},
    {"display_date", {"--seconds", "1", "--interval", "0.25"},
     "seeds/002: print the date on a timer (shortened from 5 s)"},
    {"loop_stop", {}, "seeds/002: loop.stop() inside a task; asyncio.run raises"},
    {"factorial", {"--delay", "0.2"}, "seeds/002: three factorials at once with gather (1 s steps, shortened)"},
    {"sync_async", {}, "seeds/001: explicit context switches with sleep(0) and gather"},
    {"cooperative", {}, "seeds/001: gr3 works while gr1 and gr2 are blocked"},
    {"determinism", {}, "seeds/001: the same tasks, in order and then in random order"},
    {"five_sleepers", {"--scale", "0.1"}, "seeds/003: five tasks, sleep, then wait (delays x0.1)"},
    {"fetch_first", {}, "seeds/001: wait(first_completed), cancel the rest, no warning"},
    {"fetch_exceptions", {}, "seeds/001: errors from futures, handled as they complete"},
    {"timeouts", {"-t", "0.01"}, "seeds/001: wait with a timeout that is too short..."},
    {"timeouts", {"-t", "5"}, "...and one that is long enough"},
    {"offload", {}, "seeds/004: do not block the loop: CPU work in the executor, the loop keeps serving"},
    {"port_scanner", {"--demo"}, "seeds/000: scan_em_all over async_pool_executor, finding its own listeners"},
    {"sort_service", {"--demo"}, "seeds/003: sorting as a service, the sort in the executor"},
    {"hello_http", {"--demo"}, "seeds/004: the aiohttp hello server: keep-alive, pipelining, a bad request"},
    {"dns_server", {"--demo"}, "seeds/003: the DNS server on UDP, asked by its own client: known, unknown, malformed"},
    {"fetch_http", {"--demo"}, "seeds/004: fetch(url) from a tiny in-process server: a redirect, chunks, a timeout"},
};

std::string directory_of(const char* path) {
    std::string p = path;
    auto slash = p.rfind('/');
    return slash == std::string::npos ? std::string(".") : p.substr(0, slash);
}

int run(const std::string& dir, const stop& s) {
    std::string exe = dir + "/" + s.program;
    std::vector<char*> argv{const_cast<char*>(exe.c_str())};
    for (const char* a : s.args) argv.push_back(const_cast<char*>(a));
    argv.push_back(nullptr);
    std::fflush(stdout);
    pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        ::execv(exe.c_str(), argv.data());
        std::perror(exe.c_str());
        ::_exit(127);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

} // namespace

int main(int argc, char** argv) {
    if (argc > 1 && !std::strcmp(argv[1], "--list")) {
        for (const stop& s : stops) std::printf("%-14s %s\n", s.program, s.what);
        return 0;
    }
    const std::string dir = directory_of(argv[0]);
    int failures = 0;
    for (const stop& s : stops) {
        std::printf("\n=== %s: %s\n", s.program, s.what);
        int rc = run(dir, s);
        if (rc != 0) {
            std::printf("=== %s FAILED (exit %d)\n", s.program, rc);
            ++failures;
        }
    }
    std::printf("\n=== tour finished: %zu examples, %d failed\n", stops.size(), failures);
    return failures ? 1 : 0;
}
