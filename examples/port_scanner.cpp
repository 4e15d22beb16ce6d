// port_scanner: "Concurrency in Python: Asyncio" (seeds/000). Check every (host, port)
// combination for an open TCP port, at most `--limit` connection attempts at once, through the
// article's AsyncPoolExecutor (corio::async_pool_executor).
//
//   async def async_check_a_port(ip, service, timeout=5):   | corio::task<check> async_check_a_port(
//                                                           |         std::string ip, int port, seconds timeout) {
//       port = socket.getservbyname(service, "tcp")         |   (once per service, in main: corio::getservbyname)
//       loop = asyncio.get_event_loop()                     |
//       conn = loop.create_connection(asyncio.Protocol,     |   // open_connection: the streams form of
//                                     host=ip, port=port)   |   // create_connection(asyncio.Protocol, ...)
//       try:                                                |   try {
//           connection = await asyncio.wait_for(            |       auto [reader, writer] = co_await corio::wait_for(
//                            conn, timeout=timeout)         |           corio::open_connection(ip, port), timeout);
//           return ip, service, None                        |       writer.close();        // (the article's text closes it)
//       except asyncio.TimeoutError as oops:                |   } catch (const corio::timeout_error&) {
//           return ip, service, type(oops).__name__         |       result.failure = "TimeoutError";
//       except socket.error as oops:                        |   } catch (const std::system_error& oops) {
//           return ip, service, f"{oops}: errno={oops.errno}"      result.failure = ... + ": errno=" + ...;
//                                                           |   }
//                                                           |   co_return result;
//
//   async def scan_em_all(services, devices):               | corio::task<scan_answer> scan_em_all(hosts, ports, ...) {
//       runner = AsyncPoolExecutor(250)                     |   corio::async_pool_executor<check> runner(limit);
//       answer = {}                                         |   scan_answer answer(hosts.size());
//       for ip in devices:                                  |   for (...) // every host
//           for service in services:                        |       for (...) // every port
//               runner.add(async_check_a_port(ip, service)) |           runner.add(async_check_a_port(ip, port, timeout));
//       async for task in runner.as_completed():            |   auto done = runner.as_completed();
//                                                           |   while (auto task = co_await done.next()) {
//           ip, service, err = task.result()                |       check c = task->result();
//           if err is None:                                 |       if (!c.failure)
//               if ip not in answer: answer[ip] = []        |           answer[c.host_index].insert(c.port);
//               answer[ip].append(service)                  |   }
//       return {key: sorted(answer[key])                    |   co_return answer;   // std::set: already sorted
//               for key in sorted(answer.keys())}           |
//
// Output: one line per host, in the order given (a repeated host once): `HOST: P1,P2,...`, the
// open ports ascending; a host with no open port prints `HOST:` (the article's dict leaves such
// hosts out; a line for each host tells "scanned, nothing open" from "not scanned"). With
// --services the names are turned into port numbers first and the output lists port numbers
// too, so that both forms print the same thing. With --verbose each closed port's reason (the
// article's `err`) goes to stderr.
//
// Usage: port_scanner --hosts H1,H2 (--ports A-B[,C...] | --services ssh,http)
//                     [--limit 250] [--timeout 5] [--verbose]
//        port_scanner --demo    opens listeners on 127.0.0.1 and finds them (the tour's mode)

#include <corio/corio.hpp>
#include <corio/resolver.hpp>
#include <corio/streams.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <sys/resource.h>

namespace {

using seconds = std::chrono::duration<double>;

/// The article's (ip, service, err) triple.
struct check {
    std::size_t host_index = 0;         ///< which of --hosts
    int port = 0;
    std::optional<std::string> failure; ///< why it is closed; empty when open
};

struct options {
    std::vector<std::string> hosts;
    std::vector<int> ports; // ascending, no duplicates
    std::size_t limit = 250;
    double timeout = 5;
    bool verbose = false;
    bool demo = false;
};

corio::task<check> async_check_a_port(std::vector<std::string>* hosts, std::size_t host_index,
                                      int port, seconds timeout) {
    check result;
    result.host_index = host_index;
    result.port = port;
    try {
        auto [reader, writer] =
            co_await corio::wait_for(corio::open_connection((*hosts)[host_index], port), timeout);
        writer.close(); // open: that is all we wanted to know
    } catch (const corio::cancelled_error&) {
        throw; // the scan is being stopped: not a closed port
    } catch (const corio::timeout_error&) {
        result.failure = "TimeoutError";
    } catch (const std::system_error& oops) { // refused, unreachable, ...: asyncio's OSError
        result.failure = std::string(oops.what()) + ": errno=" + std::to_string(oops.code().value());
    } catch (const std::exception& oops) { // a host name that does not resolve, for instance
        result.failure = oops.what();
    }
    co_return result;
}

/// For each host (by index), its open ports, ascending.
using scan_answer = std::vector<std::set<int>>;

/// `hosts` must outlive the scan (the checks read their host from it).
corio::task<scan_answer> scan_em_all(std::vector<std::string>* hosts, std::vector<int> ports,
                                     std::size_t limit, seconds timeout, bool verbose) {
    corio::async_pool_executor<check> runner(limit);
    scan_answer answer(hosts->size());
    for (std::size_t ip = 0; ip < hosts->size(); ++ip)
        for (int port : ports) runner.add(async_check_a_port(hosts, ip, port, timeout));
    auto done = runner.as_completed();
    while (auto task = co_await done.next()) {
        check c = task->result();
        if (!c.failure) {
            answer[c.host_index].insert(c.port);
        } else if (verbose) {
            std::fprintf(stderr, "%s:%d closed: %s\n", (*hosts)[c.host_index].c_str(), c.port,
                         c.failure->c_str());
        }
    }
    co_return answer;
}

/// "HOST: 22,80" (or "HOST:" when nothing is open).
void print_answer(const std::vector<std::string>& hosts, const scan_answer& answer) {
    for (std::size_t i = 0; i < hosts.size(); ++i) {
        std::string line = hosts[i] + ":";
        const char* sep = " ";
        for (int port : answer[i]) {
            line += sep + std::to_string(port);
            sep = ",";
        }
        std::printf("%s\n", line.c_str());
    }
}

corio::task<int> scan(options o) {
    scan_answer answer =
        co_await scan_em_all(&o.hosts, o.ports, o.limit, seconds(o.timeout), o.verbose);
    print_answer(o.hosts, answer);
    co_return 0;
}

// --- the tour's mode -------------------------------------------------------------------------

/// The listeners' connection handler: the scanner only connects and closes.
corio::task<> hang_up(corio::stream_reader, corio::stream_writer writer) {
    writer.close();
    co_return;
}

/// Opens 4 listeners on 127.0.0.1 (the system picks free ports), closes one of them again,
/// then scans those 4 ports and their neighbours. Only what concerns our own ports is printed
/// (their numbers, and whatever else listens nearby, change from run to run), so that the output
/// is the same every time.
corio::task<int> demo() {
    std::vector<corio::server> servers;
    for (int i = 0; i < 4; ++i) {
        corio::server s = co_await corio::start_server(hang_up, "127.0.0.1", 0);
        servers.push_back(s);
    }
    std::vector<int> ours;
    for (corio::server& s : servers) ours.push_back(s.port());
    const int closed_port = ours.back();
    ours.pop_back();
    servers.back().close();
    co_await servers.back().wait_closed();
    servers.pop_back();
    std::printf("Opened 3 listeners on 127.0.0.1 (the system chose their ports), and a fourth "
                "that is closed again\n");

    std::set<int> wanted;
    for (int p : {ours[0], ours[1], ours[2], closed_port})
        for (int q = p - 1; q <= p + 1; ++q)
            if (q >= 1 && q <= 65535) wanted.insert(q);
    std::vector<std::string> hosts{"127.0.0.1"};
    std::printf("Scanning 127.0.0.1: those 4 ports and their neighbours, at most 250 at once\n");
    scan_answer answer = co_await scan_em_all(&hosts, std::vector<int>(wanted.begin(), wanted.end()),
                                              250, seconds(2), false);
    const std::set<int>& open = answer[0];
    int found = 0;
    for (int p : ours) found += open.count(p) ? 1 : 0;
    const bool closed_seen = open.count(closed_port) != 0;
    std::printf("found %d of the 3 listeners we opened\n", found);
    std::printf("the port we closed again: %s\n", closed_seen ? "open (?!)" : "closed");

    for (corio::server& s : servers) s.close();
    for (corio::server& s : servers) co_await s.wait_closed();
    co_return found == 3 && !closed_seen ? 0 : 1;
}

// --- command line ----------------------------------------------------------------------------

const char* const usage =
    "usage: port_scanner --hosts H1,H2 (--ports A-B[,C...] | --services ssh,http)\n"
    "                    [--limit 250] [--timeout 5] [--verbose]\n"
    "       port_scanner --demo\n"
    "\n"
    "Tries a TCP connection to every (host, port), at most --limit at once (kept under the\n"
    "open-file limit), each given up after --timeout seconds, and prints one line per host,\n"
    "in the order given: `HOST: P1,P2,...`, its open ports ascending (`HOST:` if none is\n"
    "open). --services takes names from the services database (/etc/services), printed as\n"
    "their port numbers. --verbose tells on stderr why each closed port is closed. --demo\n"
    "opens 3 listeners on 127.0.0.1 and finds them (the tour's mode).\n";

[[noreturn]] void bad_usage(const std::string& why) {
    std::fprintf(stderr, "port_scanner: %s\n%s", why.c_str(), usage);
    std::exit(2);
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
        const std::size_t end = s.find(sep, start);
        parts.push_back(s.substr(start, end - start));
        if (end == std::string::npos) return parts;
        start = end + 1;
    }
}

/// A whole decimal number in [lo, hi], or bad_usage.
long parse_number(const std::string& s, long lo, long hi, const char* what) {
    char* end = nullptr;
    errno = 0;
    const long v = s.empty() ? 0 : std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno == ERANGE || v < lo || v > hi ||
        !(s[0] >= '0' && s[0] <= '9'))
        bad_usage(std::string("bad ") + what + " '" + s + "' (expected " + std::to_string(lo) +
                  ".." + std::to_string(hi) + ")");
    return v;
}

/// "22,80-82" → {22, 80, 81, 82}.
void add_ports(std::set<int>& ports, const std::string& spec) {
    for (const std::string& item : split(spec, ',')) {
        const std::size_t dash = item.find('-');
        if (dash == std::string::npos) {
            ports.insert(static_cast<int>(parse_number(item, 1, 65535, "port")));
            continue;
        }
        const long a = parse_number(item.substr(0, dash), 1, 65535, "port");
        const long b = parse_number(item.substr(dash + 1), 1, 65535, "port");
        if (a > b) bad_usage("bad port range '" + item + "' (A-B with A <= B)");
        for (long p = a; p <= b; ++p) ports.insert(static_cast<int>(p));
    }
}

options parse_args(int argc, char** argv) {
    options o;
    std::set<int> ports;
    bool have_ports = false, have_services = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) bad_usage(arg + " needs a value");
            return argv[++i];
        };
        if (arg == "--help" || arg == "-h") {
            std::fputs(usage, stdout);
            std::exit(0);
        } else if (arg == "--hosts") {
            for (const std::string& h : split(value(), ',')) {
                if (h.empty()) bad_usage("empty host name in --hosts");
                bool seen = false;
                for (const std::string& k : o.hosts) seen = seen || k == h;
                if (!seen) o.hosts.push_back(h);
            }
        } else if (arg == "--ports") {
            have_ports = true;
            add_ports(ports, value());
        } else if (arg == "--services") {
            have_services = true;
            for (const std::string& name : split(value(), ',')) {
                if (name.empty()) bad_usage("empty service name in --services");
                int port = 0;
                try {
                    port = static_cast<int>(corio::getservbyname(name, "tcp"));
                } catch (const std::exception& e) {
                    bad_usage("unknown TCP service '" + name + "': " + e.what());
                }
                ports.insert(port);
            }
        } else if (arg == "--limit") {
            o.limit = static_cast<std::size_t>(parse_number(value(), 1, 1000000, "--limit"));
        } else if (arg == "--timeout") {
            const std::string v = value();
            char* end = nullptr;
            o.timeout = std::strtod(v.c_str(), &end);
            if (v.empty() || *end != '\0' || !(o.timeout > 0) || o.timeout > 1e6)
                bad_usage("bad --timeout '" + v + "' (seconds, > 0)");
        } else if (arg == "--verbose" || arg == "-v") {
            o.verbose = true;
        } else if (arg == "--demo") {
            o.demo = true;
        } else {
            bad_usage("unknown argument '" + arg + "'");
        }
    }
    if (o.demo) return o;
    if (o.hosts.empty()) bad_usage("--hosts is required");
    if (!have_ports && !have_services) bad_usage("give --ports or --services");
    o.ports.assign(ports.begin(), ports.end());
    // Each attempt in flight holds a socket: stay under the open-file limit, as the article
    // advises, or attempts beyond it would fail with EMFILE and read as closed ports.
    rlimit files{};
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY &&
        files.rlim_cur > 64 && o.limit > files.rlim_cur - 32) {
        const auto lowered = static_cast<std::size_t>(files.rlim_cur - 32);
        std::fprintf(stderr, "port_scanner: --limit %zu lowered to %zu (the open-file limit is %llu)\n",
                     o.limit, lowered, static_cast<unsigned long long>(files.rlim_cur));
        o.limit = lowered;
    }
    return o;
}

} // namespace

int main(int argc, char** argv) {
    options o = parse_args(argc, argv);
    try {
        return o.demo ? corio::run(demo()) : corio::run(scan(std::move(o)));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "port_scanner: %s\n", e.what());
        return 1;
    }
}
