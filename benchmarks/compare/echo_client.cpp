// The load generator of the side-by-side networking benchmark (run_net.sh): TCP echo
// ping-pong on loopback. Plain C++ over raw epoll, single-threaded, so that it favours no
// runtime under test. Not part of the CMake/meson build.
//
//   g++ -std=c++20 -O2 echo_client.cpp -o echo_client
//   echo_client --port P [--host 127.0.0.1] [--connections 100] [--duration 3]
//               [--warmup 0.5] [--size 64] [--server-pid PID]
//
// It opens C connections to the echo server; on each one it sends a `size`-byte message,
// waits until the same `size` bytes came back (checked), and sends the next one at once.
// Round trips completed during the `warmup` seconds are not counted; then, for `duration`
// seconds, it counts round trips and records each one's latency (send of the message to the
// arrival of its last byte). With --server-pid it also reads the server's CPU time (all its
// threads, from /proc/PID/task/*/schedstat) at the start and the end of the measured window.
//
// Output, one line on stdout (run_net.sh parses it):
//   echo C=100 size=64 3.00 s: 123456 rt/s, mean 801.2 us, p99 1502.3 us, server_cpu 12.34 us/rt, client_cpu 97%
// server_cpu is the server's CPU time per round trip ("-" without --server-pid); µs per round
// trip is also seconds per million round trips. client_cpu is this client's own CPU time over
// the window, in % of one core: near 100% the client, not the server, limits the rate.
// Errors go to stderr, exit status 1.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "echo_client: %s\n", what.c_str());
    std::exit(1);
}

[[noreturn]] void die_errno(const std::string& what) { die(what + ": " + std::strerror(errno)); }

std::int64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The server's CPU time in seconds, summed over its threads: the time each thread ran, in ns,
// from /proc/PID/task/TID/schedstat (exact, where utime + stime in /proc/PID/stat are sampled
// at the clock tick, 10 ms); utime + stime as a fallback. -1 if neither is readable.
double process_cpu_seconds(int pid) {
    if (!pid) return -1;
    const std::string dir = "/proc/" + std::to_string(pid);
    if (DIR* d = opendir((dir + "/task").c_str())) {
        unsigned long long ns = 0;
        bool any = false;
        while (dirent* e = readdir(d)) {
            if (e->d_name[0] == '.') continue;
            std::ifstream f(dir + "/task/" + e->d_name + "/schedstat");
            unsigned long long run = 0;
            if (f >> run) {
                ns += run;
                any = true;
            }
        }
        closedir(d);
        if (any) return static_cast<double>(ns) / 1e9;
    }
    std::ifstream f(dir + "/stat");
    std::string line;
    if (!std::getline(f, line)) return -1;
    // Field 2 (comm) is in parentheses and may hold spaces: start after the last ')'.
    auto close = line.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::stoull(field);
        if (i == 15) stime = std::stoull(field);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// This process's CPU time in seconds (user + system).
double own_cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto sec = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
    return sec(ru.ru_utime) + sec(ru.ru_stime);
}

struct connection {
    int fd = -1;
    std::size_t sent = 0;      // bytes of the current message written so far
    std::size_t received = 0;  // bytes of its echo received so far
    std::int64_t sent_at = 0;  // when its first byte was written
    bool want_out = false;     // EPOLLOUT registered (a short write is pending)
};

struct options {
    std::string host = "127.0.0.1";
    int port = 0;
    int connections = 100;
    double duration = 3.0;
    double warmup = 0.5;
    std::size_t size = 64;
    int server_pid = 0;
};

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) die("missing value after " + a);
            return argv[++i];
        };
        if (a == "--host") o.host = value();
        else if (a == "--port") o.port = std::stoi(value());
        else if (a == "--connections" || a == "-c") o.connections = std::stoi(value());
        else if (a == "--duration") o.duration = std::stod(value());
        else if (a == "--warmup") o.warmup = std::stod(value());
        else if (a == "--size") o.size = static_cast<std::size_t>(std::stoul(value()));
        else if (a == "--server-pid") o.server_pid = std::stoi(value());
        else if (a == "--help" || a == "-h") {
            std::puts("usage: echo_client --port P [--host 127.0.0.1] [--connections 100] [--duration 3]\n"
                      "                   [--warmup 0.5] [--size 64] [--server-pid PID]");
            std::exit(0);
        } else die("unknown argument " + a + " (try --help)");
    }
    if (o.port <= 0 || o.port > 65535) die("--port is required (1..65535)");
    if (o.connections < 1 || o.size < 1 || o.duration <= 0 || o.warmup < 0) die("bad option value");
    return o;
}

} // namespace

int main(int argc, char** argv) {
    const options opt = parse(argc, argv);

    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(opt.port));
    if (inet_pton(AF_INET, opt.host.c_str(), &to.sin_addr) != 1) die("--host must be a numeric IPv4 address");

    // The message: `size` bytes of a repeating pattern; its echo is compared with it.
    std::string message(opt.size, '\0');
    for (std::size_t i = 0; i < opt.size; ++i) message[i] = static_cast<char>('a' + i % 26);
    std::vector<char> buf(std::max<std::size_t>(opt.size, 65536));

    const int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die_errno("epoll_create1");

    // Connect every connection (blocking connect: the kernel completes the handshake from the
    // listen backlog, whether or not the server has accepted yet), then make it non-blocking.
    std::vector<connection> conns(static_cast<std::size_t>(opt.connections));
    for (std::size_t i = 0; i < conns.size(); ++i) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) die_errno("socket");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0)
            die_errno("connect to " + opt.host + ":" + std::to_string(opt.port));
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        conns[i].fd = fd;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die_errno("epoll_ctl");
    }

    auto set_out = [&](std::size_t i, bool on) {
        connection& c = conns[i];
        if (c.want_out == on) return;
        epoll_event ev{};
        ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
        ev.data.u64 = i;
        if (epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev) != 0) die_errno("epoll_ctl");
        c.want_out = on;
    };
    // Writes (the rest of) the current message; registers EPOLLOUT on a short write.
    auto send_more = [&](std::size_t i) {
        connection& c = conns[i];
        while (c.sent < message.size()) {
            ssize_t n = send(c.fd, message.data() + c.sent, message.size() - c.sent, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                if (errno == EINTR) continue;
                die_errno("send");
            }
            c.sent += static_cast<std::size_t>(n);
        }
        set_out(i, c.sent < message.size());
    };
    auto start_message = [&](std::size_t i, std::int64_t t) {
        conns[i].sent = conns[i].received = 0;
        conns[i].sent_at = t;
        send_more(i);
    };

    const std::int64_t t_begin = now_ns();
    const std::int64_t t_measure = t_begin + static_cast<std::int64_t>(opt.warmup * 1e9);
    std::int64_t t_end = t_measure + static_cast<std::int64_t>(opt.duration * 1e9);  // reset below

    for (std::size_t i = 0; i < conns.size(); ++i) start_message(i, t_begin);

    std::vector<std::uint32_t> latencies_ns;  // of the round trips completed while measuring
    latencies_ns.reserve(1 << 20);
    bool measuring = false;
    double cpu_start = -1, cpu_end = -1;
    double own_start = 0;
    std::int64_t measured_from = 0;
    std::vector<epoll_event> events(conns.size());

    for (;;) {
        std::int64_t t = now_ns();
        if (!measuring && t >= t_measure) {
            measuring = true;
            measured_from = t;
            t_end = t + static_cast<std::int64_t>(opt.duration * 1e9);
            cpu_start = process_cpu_seconds(opt.server_pid);
            own_start = own_cpu_seconds();
        }
        if (t >= t_end) break;
        int timeout_ms = static_cast<int>(((measuring ? t_end : t_measure) - t) / 1'000'000) + 1;
        int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            die_errno("epoll_wait");
        }
        for (int k = 0; k < n; ++k) {
            const epoll_event& e = events[static_cast<std::size_t>(k)];
            const std::size_t i = e.data.u64;
            connection& c = conns[i];
            if (e.events & EPOLLOUT) send_more(i);
            if (!(e.events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
            ssize_t got = recv(c.fd, buf.data(), buf.size(), 0);
            if (got < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
                die_errno("recv");
            }
            if (got == 0) die("the server closed a connection");
            std::size_t g = static_cast<std::size_t>(got);
            if (c.received + g > message.size()) die("the server sent more than it was sent");
            if (std::memcmp(buf.data(), message.data() + c.received, g) != 0) die("the echo differs from the message");
            c.received += g;
            if (c.received < message.size()) continue;
            std::int64_t done = now_ns();
            if (measuring && done < t_end) latencies_ns.push_back(static_cast<std::uint32_t>(
                                                 std::min<std::int64_t>(done - c.sent_at, UINT32_MAX)));
            start_message(i, done);
        }
    }
    const double seconds = static_cast<double>(t_end - measured_from) / 1e9;  // the window counted
    cpu_end = process_cpu_seconds(opt.server_pid);
    const double own_busy = (own_cpu_seconds() - own_start) / seconds;  // share of one core

    for (connection& c : conns) close(c.fd);
    close(ep);

    if (latencies_ns.empty()) die("no round trip completed while measuring");
    const std::size_t count = latencies_ns.size();
    double sum = 0;
    for (std::uint32_t l : latencies_ns) sum += l;
    std::size_t p99_index = std::min(count - 1, static_cast<std::size_t>(0.99 * static_cast<double>(count)));
    std::nth_element(latencies_ns.begin(), latencies_ns.begin() + static_cast<std::ptrdiff_t>(p99_index),
                     latencies_ns.end());
    const double p99_us = latencies_ns[p99_index] / 1e3;
    const double mean_us = sum / static_cast<double>(count) / 1e3;

    char cpu[64] = "-";
    if (cpu_start >= 0 && cpu_end >= 0)
        std::snprintf(cpu, sizeof cpu, "%.2f us/rt", (cpu_end - cpu_start) / static_cast<double>(count) * 1e6);
    std::printf("echo C=%d size=%zu %.2f s: %.0f rt/s, mean %.1f us, p99 %.1f us, server_cpu %s, client_cpu %.0f%%\n",
                opt.connections, opt.size, seconds, static_cast<double>(count) / seconds, mean_us, p99_us, cpu,
                own_busy * 100);
    return 0;
}
