// hello_http: "Dive into Python's asyncio, part 2" (seeds/004), the aiohttp server that greets
// everyone who tells it their name. aiohttp is a whole web framework; here the same server is
// corio's streams (start_server, stream_reader, stream_writer) plus a small HTTP/1.1 parser,
// http_parser.hpp.
//
//   from aiohttp import web                             | #include <corio/corio.hpp>
//                                                       | #include "http_parser.hpp"
//   async def handle(request):                          | std::string handle(const http::request& request,
//       name = request.match_info.get('name',           |                    std::string name) {
//                                     "Anonymous")      |     // name: from route(), "Anonymous" for "/"
//       text = "Hello, " + name                         |     std::string text = "Hello, " + name;
//       return web.Response(text=text)                  |     return text;
//                                                       | }
//   app = web.Application()                             | // route(): the two routes, GET and HEAD
//   app.router.add_get('/', handle)                     | //   "/"       -> handle(request, "Anonymous")
//   app.router.add_get('/{name}', handle)               | //   "/{name}" -> handle(request, name)
//                                                       |
//   web.run_app(app, host='', port=8001)                | corio::server server = co_await
//                                                       |     corio::start_server(serve_connection, host, 8001);
//
// What aiohttp does for the article and this server does too:
// - GET / -> "Hello, Anonymous"; GET /NAME -> "Hello, NAME" (NAME percent-decoded: /J%C3%B6rg
//   greets Jörg); HEAD gives the same headers without the body (add_get also routes HEAD);
//   another method on those paths -> 405 with "Allow: GET, HEAD"; any other path -> 404.
//   Responses are text/plain; charset=utf-8 and always carry Content-Length.
// - HTTP/1.1 keep-alive by default ("Connection: close" honoured); HTTP/1.0 closes unless the
//   client asks for keep-alive. Pipelining: several requests in one packet are answered in
//   order. A connection idle for 75 s (aiohttp's keepalive_timeout) is closed.
// - Garbage, a malformed request or header -> "400 Bad Request" and the connection is closed; a
//   request line over 8190 bytes -> 400 and a header line over 8190 bytes (or a head over
//   64 KiB, or over 100 fields) -> 431, as aiohttp's limits; other versions than 1.0/1.1 -> 505.
// Where it differs: host '' (every interface) in the article; 127.0.0.1 by default here, as the
// other corio servers (--host 0.0.0.0 for every interface).
//
// Usage: hello_http [--host 127.0.0.1] [--port 8001]
//   Prints "Serving on HOST:PORT" once it accepts (--port 0: a free port), serves until
//   SIGINT/SIGTERM, then closes its connections and exits 0.
// hello_http --demo: the tour's mode: serves on a free port, sends itself two pipelined
//   requests on one keep-alive connection, prints the answers and exits.

#include "http_parser.hpp"

#include <corio/corio.hpp>
#include <corio/streams.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

namespace {

using namespace std::chrono_literals;

/// aiohttp's keepalive_timeout: a connection with no request in progress is closed after this.
constexpr auto keepalive_timeout = 75s;

// --- The application: the article's handler and its two routes -------------------------------

/// The article's handler.
std::string handle(const http::request& request, std::string name) {
    (void)request;
    std::string text = "Hello, " + name;
    return text;
}

/// The routing of `app.router.add_get('/', ...)` and `add_get('/{name}', ...)`: the response
/// to one request (status and body), as aiohttp gives it.
std::pair<int, std::string> route(const http::request& request, std::string& extra_headers) {
    std::optional<std::string> name;
    if (request.path == "/") {
        name = "Anonymous";
    } else if (request.path.size() > 1 && request.path[0] == '/' &&
               request.path.find('/', 1) == std::string::npos) {
        name = http::percent_decode(std::string_view(request.path).substr(1));
        if (!name) return {400, "400: Bad Request"}; // a malformed %-escape
    }
    if (!name) return {404, "404: Not Found"};
    if (request.method != "GET" && request.method != "HEAD") {
        extra_headers = "Allow: GET, HEAD\r\n";
        return {405, "405: Method Not Allowed"};
    }
    return {200, handle(request, std::move(*name))};
}

// --- The connection: HTTP/1.1 on a stream ------------------------------------------------------

/// The whole response to one parsed request.
std::string respond(const http::request& request) {
    std::string extra;
    auto [status, body] = route(request, extra);
    http::response_options o;
    o.minor = request.minor;
    o.keep_alive = request.keep_alive;
    o.head_only = request.method == "HEAD";
    o.extra_headers = extra;
    return http::make_response(status, body, o);
}

/// The response to a request that could not be parsed; the connection closes after it.
std::string reject(const http::parse_result& p) {
    http::response_options o;
    o.keep_alive = false;
    return http::make_response(p.status, std::to_string(p.status) + ": " +
                                             std::string(http::reason_phrase(p.status)), o);
}

/// One connection (asyncio's client_connected_cb): read requests, answer each in order.
corio::task<> serve_connection(corio::stream_reader reader, corio::stream_writer writer) {
    corio::event_loop& loop = corio::get_running_loop();
    std::weak_ptr<corio::transport> weak = writer.transport();
    std::string buffer; // received bytes not parsed into a request yet
    try {
        for (;;) {
            // Answer every complete request buffered (pipelining: in order), in one write.
            std::string out;
            bool close = false;
            for (;;) {
                http::request request;
                http::parse_result p = http::parse_request(buffer, request);
                if (p.kind == http::parse_result::need_more) break;
                if (p.kind == http::parse_result::error) {
                    out += reject(p);
                    close = true;
                    break;
                }
                buffer.erase(0, p.consumed);
                out += respond(request);
                if (!request.keep_alive) {
                    close = true;
                    break;
                }
            }
            if (!out.empty()) {
                writer.write(out);
                co_await writer.drain(); // a slow reader holds us here, not in memory
            }
            if (close) break;
            // Wait for more, closing the connection if nothing comes for a while (a timer, as
            // aiohttp's keep-alive handle, rather than a wait_for task per read).
            corio::timer_handle idle = loop.call_later(keepalive_timeout, [weak] {
                if (auto t = weak.lock()) t->close();
            });
            std::string data = co_await reader.read(65536);
            idle.cancel();
            if (data.empty()) break; // EOF: the client is done (a partial request is dropped)
            buffer += data;
        }
    } catch (const std::system_error&) {
        // The peer reset the connection or went away mid-write: nothing to answer.
    }
    writer.close();
}

// --- The program ---------------------------------------------------------------------------------

struct options {
    std::string host = "127.0.0.1";
    int port = 8001;
};

corio::task<> serve(options o) {
    corio::event_loop& loop = corio::get_running_loop();
    auto handler = serve_connection;
    corio::server server = co_await corio::start_server(handler, o.host, o.port);
    corio::event stop;
    auto on_signal = [&stop] { stop.set(); };
    loop.add_signal_handler(SIGINT, on_signal);
    loop.add_signal_handler(SIGTERM, on_signal);
    std::printf("Serving on %s:%d\n", o.host.c_str(), static_cast<int>(server.port()));
    std::fflush(stdout);

    co_await stop.wait();
    loop.remove_signal_handler(SIGINT);
    loop.remove_signal_handler(SIGTERM);
    server.close();         // stop accepting
    server.close_clients(); // each handler sees EOF and ends
    co_await server.wait_closed();
}

/// The tour's mode: the server on a free port, and a client sending it two pipelined requests
/// on one keep-alive connection, which prints the answers.
corio::task<> demo() {
    auto handler = serve_connection;
    corio::server server = co_await corio::start_server(handler, "127.0.0.1", 0);
    std::printf("Serving on a free port of 127.0.0.1\n"); // the port changes: keep it out
    auto [reader, writer] = co_await corio::open_connection("127.0.0.1", server.port());
    writer.write("GET / HTTP/1.1\r\nHost: demo\r\n\r\n"       // two requests in one packet
                 "GET /John HTTP/1.1\r\nHost: demo\r\n\r\n");
    for (const char* target : {"/", "/John"}) {
        std::string head = co_await reader.readuntil("\r\n\r\n");
        auto status = http::parse_status_line(head.substr(0, head.find("\r\n")));
        std::size_t length = 0; // from the Content-Length header
        for (std::size_t at = head.find("\r\n") + 2; at + 2 < head.size();) {
            const std::size_t end = head.find("\r\n", at);
            std::string name, value;
            if (http::parse_header_line(std::string_view(head).substr(at, end - at), name, value) &&
                http::iequals(name, "content-length"))
                length = static_cast<std::size_t>(http::parse_content_length(value).value_or(0));
            at = end + 2;
        }
        std::string body = co_await reader.readexactly(length);
        std::printf("GET %-5s -> %d %s: %s\n", target, status ? status->status : 0,
                    status ? status->reason.c_str() : "?", body.c_str());
    }
    writer.close();
    co_await writer.wait_closed();
    server.close();
    server.close_clients();
    co_await server.wait_closed();
}

[[noreturn]] void usage(int code) {
    std::fprintf(code ? stderr : stdout,
                 "usage: hello_http [--host HOST] [--port PORT] | --demo\n"
                 "  The aiohttp hello server of 'Dive into Python's asyncio, part 2':\n"
                 "  GET / -> 'Hello, Anonymous', GET /NAME -> 'Hello, NAME' (HTTP/1.1,\n"
                 "  keep-alive, pipelining). --host: 127.0.0.1 by default; --port: 8001 by\n"
                 "  default, 0 for a free one. Prints 'Serving on HOST:PORT', serves until\n"
                 "  SIGINT or SIGTERM, exits 0. --demo: serve, send two pipelined requests\n"
                 "  to itself on one connection, print the answers, exit (the tour's mode).\n");
    std::exit(code);
}

} // namespace

int main(int argc, char** argv) {
    options o;
    bool demo_mode = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") usage(0);
        if (arg == "--demo") {
            demo_mode = true;
            continue;
        }
        if (i + 1 >= argc) usage(2);
        if (arg == "--host") {
            o.host = argv[++i];
        } else if (arg == "--port") {
            char* end = nullptr;
            long p = std::strtol(argv[++i], &end, 10);
            if (*end || p < 0 || p > 65535) usage(2);
            o.port = static_cast<int>(p);
        } else {
            usage(2);
        }
    }
    try {
        if (demo_mode) corio::run(demo());
        else corio::run(serve(o));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "hello_http: %s\n", e.what());
        return 1;
    }
    return 0;
}
