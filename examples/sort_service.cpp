// sort_service: "sorting as a service" from the AsyncIO chapter of seeds/003, and its client. A
// request is an 8-byte big-endian length, then that many bytes of JSON, an array of numbers; the
// answer is framed the same way and holds the array sorted (examples/sort_protocol.hpp).
//
//   def sort_in_process(data):                              | std::string sort_in_executor(std::string data) {
//       nums = json.loads(data.decode())                    |     // sort_protocol::sort_json: the same
//       curr = 1                                            |     // json.loads, gnome sort (the same loop, in
//       while curr < len(nums):                             |     // sort_protocol::gnome_sort) and json.dumps
//           if nums[curr] >= nums[curr-1]:                  |     return sort_protocol::sort_json(data, &g_stopping);
//               curr += 1                                   | }
//           else:                                           |
//               nums[curr], nums[curr-1] = \                |
//                   nums[curr-1], nums[curr]                |
//               if curr > 1:                                |
//                   curr -= 1                               |
//       return json.dumps(nums).encode()                    |
//                                                           |
//   @asyncio.coroutine                                      | corio::task<> sort_request(corio::stream_reader reader,
//   def sort_request(reader, writer):                       |                            corio::stream_writer writer) {
//       print("Received connection")                        |     std::printf("Received connection\n");
//       length = yield from reader.read(8)                  |     std::string length = co_await reader.readexactly(8);
//       data = yield from reader.readexactly(               |     std::string data = co_await reader.readexactly(
//           int.from_bytes(length, 'big'))                  |         sort_protocol::decode_length(length));
//       result = yield from asyncio.get_event_loop() \      |     std::string result = co_await corio::get_running_loop()
//           .run_in_executor(None, sort_in_process, data)   |         .run_in_executor(nullptr, sort_in_executor, data);
//       print("Sorted list")                                |     std::printf("Sorted list\n");
//       writer.write(                                       |     writer.write(sort_protocol::frame(result));
//           len(result).to_bytes(8, 'big'))                 |
//       writer.write(result)                                |
//       writer.close()                                      |     writer.close();
//       print("Connection closed")                          |     std::printf("Connection closed\n");
//                                                           | }
//   loop = asyncio.get_event_loop()                         | corio::task<int> serve(options o) {
//   loop.set_default_executor(ProcessPoolExecutor())        |     // the loop's default thread pool: see below
//   server = loop.run_until_complete(                       |     corio::server server = co_await
//       asyncio.start_server(sort_request, '127.0.0.1', 2015))    corio::start_server(sort_request, o.host, o.port);
//   print("Sort Service running")                           |     std::printf("Serving on %s:%d\n", ...);
//   loop.run_forever()                                      |     co_await stop.wait(); // SIGINT or SIGTERM
//   server.close()                                          |     server.close(); server.close_clients();
//   loop.run_until_complete(server.wait_closed())           |     co_await server.wait_closed();
//   loop.close()                                            | }
//
// Where it differs, and why:
// - The sort runs on the loop's default executor, a thread pool, where the article sets a
//   ProcessPoolExecutor. Python needs processes to get around the GIL; C++ threads run in
//   parallel, and they share memory, so the request's bytes need no pickling on the way. The
//   loop keeps serving other connections meanwhile: the gnome sort is O(n²), instant for the
//   article's handful of numbers, seconds for 10^5 of them.
// - The article reads the length with `read(8)`, which may return fewer bytes; readexactly(8)
//   does not.
// - What the article leaves to chance is decided: a request longer than --max-size (16 MiB by
//   default) or not a flat JSON array of numbers (sort_protocol.hpp says exactly what is
//   accepted), and a client that hangs up early, each get an error line on stderr and the
//   connection closed without an answer — as asyncio does when the handler raises —, and the
//   server keeps serving. One request per connection, as in the article.
// - SIGINT/SIGTERM: stop accepting, close the open connections, abandon sorts still running
//   (the sort checks a flag now and then: a thread cannot be interrupted), exit 0.
//
// Usage: sort_service [--host 127.0.0.1] [--port 2015] [--max-size BYTES]
//        sort_service --client [--host 127.0.0.1] [--port 2015] < numbers.json
//        sort_service --demo     the server and a client in one process (the tour's mode)

#include "sort_protocol.hpp"

#include <corio/corio.hpp>
#include <corio/executor.hpp>
#include <corio/streams.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <system_error>
#include <utility>

namespace {

struct options {
    std::string host = "127.0.0.1";
    int port = 2015;
    std::uint64_t max_size = sort_protocol::default_max_size;
    bool client = false;
    bool demo = false;
};

std::uint64_t g_max_size = sort_protocol::default_max_size;

/// Set when the server shuts down: sorts still running give up (see gnome_sort).
std::atomic<bool> g_stopping{false};

/// Set (if not null) each time a connection has been handled (the demo waits on it).
corio::event* g_connection_done = nullptr;

// --- the server ------------------------------------------------------------------------------

/// The article's sort_in_process. Runs on a worker thread of the loop's default executor.
std::string sort_in_executor(std::string data) {
    return sort_protocol::sort_json(data, &g_stopping);
}

std::string peer_of(const corio::stream_writer& writer) {
    try {
        return writer.peername().to_string();
    } catch (const std::exception&) {
        return "a client";
    }
}

corio::task<> sort_request(corio::stream_reader reader, corio::stream_writer writer) {
    std::printf("Received connection\n");
    const std::string peer = peer_of(writer);

    std::string failure;
    std::exception_ptr cancelled;
    try {
        std::string length = co_await reader.readexactly(sort_protocol::header_size);
        const std::uint64_t n = sort_protocol::decode_length(length);
        if (n > g_max_size)
            throw sort_protocol::protocol_error(
                "request of " + std::to_string(n) + " bytes refused: the limit is " +
                std::to_string(g_max_size) + " (--max-size)");
        std::string data = co_await reader.readexactly(static_cast<std::size_t>(n));
        corio::event_loop& loop = corio::get_running_loop();
        std::string result = co_await loop.run_in_executor(nullptr, sort_in_executor, std::move(data));
        writer.write(sort_protocol::frame(result));
        std::printf("Sorted list\n");
        co_await writer.drain();
    } catch (const corio::cancelled_error&) {
        cancelled = std::current_exception();
    } catch (const corio::incomplete_read_error& e) {
        failure = e.partial().empty() && e.expected() == sort_protocol::header_size
                      ? std::string("the client hung up without sending a request")
                      : "the client hung up in the middle of its request (" +
                            std::string(e.what()) + ")";
    } catch (const std::exception& e) { // a bad request, a reset, a sort abandoned
        failure = e.what();
    }
    if (!failure.empty()) std::fprintf(stderr, "sort_service: %s: %s\n", peer.c_str(), failure.c_str());
    writer.close();
    std::printf("Connection closed\n");
    if (g_connection_done) g_connection_done->set();
    if (cancelled) std::rethrow_exception(cancelled);
}

corio::task<int> serve(options o) {
    corio::event_loop& loop = corio::get_running_loop();
    corio::server server = co_await corio::start_server(sort_request, o.host, o.port);
    corio::event stop;
    auto on_signal = [&stop] { stop.set(); };
    loop.add_signal_handler(SIGINT, on_signal);
    loop.add_signal_handler(SIGTERM, on_signal);
    std::printf("Serving on %s:%d\n", o.host.c_str(), static_cast<int>(server.port()));
    std::fflush(stdout);

    co_await stop.wait();
    loop.remove_signal_handler(SIGINT);
    loop.remove_signal_handler(SIGTERM);
    g_stopping = true;
    server.close();
    server.close_clients(); // their handlers see the end of their connection
    co_await server.wait_closed();
    co_return 0;
}

// --- the client ------------------------------------------------------------------------------

/// Sends `json` to the server and returns its answer, the sorted array. Throws what the
/// connection throws (std::system_error), `incomplete_read_error` if the server hangs up
/// without a whole answer, `protocol_error` for an answer over `max_size`.
corio::task<std::string> request_sort(std::string host, int port, std::string json,
                                      std::uint64_t max_size, const char** stage) {
    *stage = "connecting to";
    auto [reader, writer] = co_await corio::open_connection(host, port);
    *stage = "sending the request to";
    writer.write(sort_protocol::frame(json));
    co_await writer.drain();
    *stage = "reading the answer from";
    std::string length = co_await reader.readexactly(sort_protocol::header_size);
    const std::uint64_t n = sort_protocol::decode_length(length);
    if (n > max_size)
        throw sort_protocol::protocol_error("an answer of " + std::to_string(n) +
                                            " bytes is over the limit (--max-size)");
    std::string answer = co_await reader.readexactly(static_cast<std::size_t>(n));
    writer.close();
    co_await writer.wait_closed();
    co_return answer;
}

corio::task<int> client(options o, std::string input) {
    const char* stage = "connecting to";
    std::string answer;
    std::string failure;
    try {
        answer = co_await request_sort(o.host, o.port, std::move(input), o.max_size, &stage);
    } catch (const corio::incomplete_read_error& e) {
        failure = e.partial().empty() && e.expected() == sort_protocol::header_size
                      ? std::string("the server closed the connection without answering "
                                    "(a refused request? see the server's stderr)")
                      : "the server hung up in the middle of its answer (" +
                            std::string(e.what()) + ")";
    } catch (const std::exception& e) {
        failure = e.what();
    }
    if (!failure.empty()) {
        std::fprintf(stderr, "sort_service: error while %s %s:%d: %s\n", stage, o.host.c_str(),
                     o.port, failure.c_str());
        co_return 1;
    }
    std::fwrite(answer.data(), 1, answer.size(), stdout);
    std::fputc('\n', stdout);
    co_return 0;
}

// --- the tour's mode -------------------------------------------------------------------------

/// The server on a free port, and one client request, in the same process. The client's line
/// is printed once the server's handler is done, so the output is the same every time.
corio::task<int> demo() {
    corio::event done;
    g_connection_done = &done;
    corio::server server = co_await corio::start_server(sort_request, "127.0.0.1", 0);
    std::printf("Sort Service running (on a free port of 127.0.0.1)\n");
    const std::string request = "[5, 3, 9, 1, -2.5, 1e3]";
    std::printf("client sends    %s\n", request.c_str());
    const char* stage = "";
    std::string answer = co_await request_sort("127.0.0.1", static_cast<int>(server.port()),
                                               request, sort_protocol::default_max_size, &stage);
    co_await done.wait();
    std::printf("client receives %s\n", answer.c_str());
    server.close();
    co_await server.wait_closed();
    g_connection_done = nullptr;
    co_return 0;
}

// --- command line ----------------------------------------------------------------------------

const char* const usage =
    "usage: sort_service [--host 127.0.0.1] [--port 2015] [--max-size BYTES]\n"
    "       sort_service --client [--host 127.0.0.1] [--port 2015] < numbers.json\n"
    "       sort_service --demo\n"
    "\n"
    "Sorting as a service (the AsyncIO chapter of seeds/003). A request is an 8-byte big-endian\n"
    "length, then a JSON array of numbers; the answer, framed the same way, is the array sorted\n"
    "by the article's gnome sort, which runs in the loop's thread pool. The server prints\n"
    "`Serving on HOST:PORT` (--port 0: a free port), serves until SIGINT or SIGTERM, then exits\n"
    "0. Requests over --max-size bytes (default 16 MiB) or that are not a flat JSON array of\n"
    "numbers are answered by closing the connection (the reason goes to stderr).\n"
    "--client reads a JSON array from stdin, sends it, and prints the sorted array (exit 1 and a\n"
    "message on stderr if that fails). --demo runs the server and one client in one process.\n";

[[noreturn]] void bad_usage(const std::string& why) {
    std::fprintf(stderr, "sort_service: %s\n%s", why.c_str(), usage);
    std::exit(2);
}

options parse_args(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) bad_usage(arg + " needs a value");
            return argv[++i];
        };
        auto number = [&](long long lo, long long hi) -> long long {
            const std::string v = value();
            char* end = nullptr;
            errno = 0;
            const long long n = std::strtoll(v.c_str(), &end, 10);
            if (v.empty() || *end != '\0' || errno == ERANGE || n < lo || n > hi ||
                !(v[0] >= '0' && v[0] <= '9'))
                bad_usage("bad " + arg + " '" + v + "' (expected " + std::to_string(lo) + ".." +
                          std::to_string(hi) + ")");
            return n;
        };
        if (arg == "--help" || arg == "-h") {
            std::fputs(usage, stdout);
            std::exit(0);
        } else if (arg == "--host") {
            o.host = value();
        } else if (arg == "--port") {
            o.port = static_cast<int>(number(0, 65535));
        } else if (arg == "--max-size") {
            o.max_size = static_cast<std::uint64_t>(number(0, 1LL << 40));
        } else if (arg == "--client") {
            o.client = true;
        } else if (arg == "--demo") {
            o.demo = true;
        } else {
            bad_usage("unknown argument '" + arg + "'");
        }
    }
    if (o.client && o.demo) bad_usage("--client and --demo do not go together");
    return o;
}

/// All of stdin (the client reads it before the loop starts: a blocking read is fine there).
std::string read_stdin() {
    std::string all;
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) all.append(buf, n);
    return all;
}

} // namespace

int main(int argc, char** argv) {
    options o = parse_args(argc, argv);
    g_max_size = o.max_size;
    // Line-buffered even into a pipe, so that a script reading our stdout sees each line as it
    // is printed ("Serving on ..." first of all).
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    try {
        if (o.demo) return corio::run(demo());
        if (o.client) {
            std::string input = read_stdin();
            try {
                sort_protocol::parse_array(input); // refuse locally what the server would refuse
            } catch (const sort_protocol::protocol_error& e) {
                std::fprintf(stderr, "sort_service: stdin is not a JSON array of numbers: %s\n",
                             e.what());
                return 1;
            }
            return corio::run(client(o, std::move(input)));
        }
        return corio::run(serve(o));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sort_service: %s\n", e.what());
        return 1;
    }
}
