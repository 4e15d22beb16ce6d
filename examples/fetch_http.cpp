// fetch_http: "Dive into Python's asyncio, part 2" (seeds/004), the article's fetch(url): an
// HTTP GET with a timeout. aiohttp's ClientSession becomes an HTTP/1.1 request written on a
// corio stream and a response read with readline / readexactly / read (http_parser.hpp
// parses the lines); async_timeout.timeout(10) becomes corio::wait_for.
//
//   async def fetch(url):                               | corio::task<std::string> fetch(std::string url) {
//       connector = TCPConnector(verify_ssl=False)      |     http::url u = http::parse_url(url); // http:// only
//       async with ClientSession(                       |     auto [reader, writer] =
//               connector=connector) as session:        |         co_await corio::open_connection(u.host, u.port);
//           with async_timeout.timeout(10):             |     // (main: co_await corio::wait_for(fetch(url), 10s))
//               async with session.get(url) as response:|     writer.write("GET " + u.target + " HTTP/1.1\r\n...");
//                   return await response.text()        |     response r = co_await read_response(reader, "GET");
//                                                       |     co_return r.body;
//                                                       | }
//
// Like aiohttp's session.get: redirects (301, 302, 303, 307, 308) are followed, up to 10; the
// body is framed by Content-Length, chunked transfer-encoding, or the end of the connection.
// Unlike the article's caller, the program checks the status: the body goes to stdout and the
// exit status is 0 for a 2xx answer; anything else (another status, a timeout, a refused
// connection, a bad or https:// URL, a malformed response) prints one line on stderr and exits 1.
//
// Usage: fetch_http URL [--timeout SECONDS]    (10 by default, as the article)
// fetch_http --demo: the tour's mode: starts a tiny HTTP server on a free port in the same
//   process, fetches a page from it (a redirect, then a chunked body) with the fetch above and
//   prints the status and body; then fetches a page the server never answers with a 0.2 s
//   timeout, which prints the "timed out" message; exits 0.

#include "http_parser.hpp"

#include <corio/corio.hpp>
#include <corio/streams.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace {

/// A failure worth one line on stderr (the message says it all).
struct fetch_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct response {
    http::status_line status;
    http::header_list headers;
    std::string body;
};

/// One line of the response head, without its line end. Throws fetch_error at EOF.
corio::task<std::string> read_head_line(corio::stream_reader reader) {
    std::string line = co_await reader.readline();
    if (line.empty()) throw fetch_error("the server closed the connection before answering");
    if (line.back() != '\n') throw fetch_error("the response head was cut short");
    line.pop_back();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    co_return line;
}

/// Reads a response to `method` (RFC 9112 6.3 says how long its body is).
corio::task<response> read_response(corio::stream_reader reader, std::string method) {
    response r;
    for (;;) { // interim 1xx responses (100 Continue) come before the real one
        std::string line = co_await read_head_line(reader);
        auto status = http::parse_status_line(line);
        if (!status) throw fetch_error("not an HTTP/1.x response: '" + line.substr(0, 80) + "'");
        r.status = std::move(*status);
        r.headers.clear();
        for (;;) {
            line = co_await read_head_line(reader);
            if (line.empty()) break;
            std::string name, value;
            if (!http::parse_header_line(line, name, value) || r.headers.size() >= 100)
                throw fetch_error("bad header field in the response: '" + line.substr(0, 80) + "'");
            r.headers.emplace_back(std::move(name), std::move(value));
        }
        if (r.status.status >= 200 || r.status.status == 101) break;
    }
    if (http::response_has_no_body(method, r.status.status)) co_return r;

    const std::string* te = http::find_header(r.headers, "transfer-encoding");
    const std::string* cl = http::find_header(r.headers, "content-length");
    if (te && http::list_contains(*te, "chunked")) {
        for (;;) {
            std::string size_line = co_await read_head_line(reader);
            auto size = http::parse_chunk_size(size_line);
            if (!size) throw fetch_error("bad chunk size: '" + size_line.substr(0, 40) + "'");
            if (*size == 0) break;
            r.body += co_await reader.readexactly(static_cast<std::size_t>(*size));
            if (!(co_await read_head_line(reader)).empty())
                throw fetch_error("a chunk is not followed by CRLF");
        }
        while (!(co_await read_head_line(reader)).empty()) {
        } // trailer fields: ignored
    } else if (cl) {
        auto n = http::parse_content_length(*cl);
        if (!n) throw fetch_error("bad Content-Length: '" + *cl + "'");
        r.body = co_await reader.readexactly(static_cast<std::size_t>(*n));
    } else {
        r.body = co_await reader.read(); // until the server closes the connection
    }
    co_return r;
}

/// One request/response exchange on a fresh connection.
corio::task<response> get(http::url u) {
    std::optional<std::pair<corio::stream_reader, corio::stream_writer>> conn;
    std::string failure;
    try {
        conn = co_await corio::open_connection(u.host, u.port);
    } catch (const corio::cancelled_error&) {
        throw; // the timeout: not a connection error
    } catch (const std::system_error& e) {
        failure = e.code().message();
    } catch (const std::exception& e) {
        failure = e.what(); // name resolution
    }
    if (!conn) throw fetch_error("cannot connect to " + u.authority + ": " + failure);
    auto& [reader, writer] = *conn;
    writer.write("GET " + u.target + " HTTP/1.1\r\nHost: " + u.authority +
                 "\r\nUser-Agent: corio-fetch_http\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    co_await writer.drain();
    response r = co_await read_response(reader, "GET");
    writer.close();
    co_return r;
}

/// The article's fetch(url), following redirects as aiohttp does.
corio::task<response> fetch(std::string url) {
    for (int redirects = 0;; ++redirects) {
        http::url u = http::parse_url(url);
        response r = co_await get(u);
        const int s = r.status.status;
        const std::string* location = http::find_header(r.headers, "location");
        if ((s == 301 || s == 302 || s == 303 || s == 307 || s == 308) && location) {
            if (redirects == 10) throw fetch_error("too many redirects");
            url = http::resolve_location(u, *location);
            continue;
        }
        co_return r;
    }
}

/// The program: fetch(url) within `timeout` seconds, then the body on stdout (exit status 0)
/// or one line on stderr (1). `shown` is the URL as the messages name it.
corio::task<int> main_coro(std::string url, double timeout, std::string shown) {
    try {
        response r = co_await corio::wait_for(fetch(url), std::chrono::duration<double>(timeout));
        if (r.status.status < 200 || r.status.status >= 300) {
            std::fprintf(stderr, "fetch_http: HTTP %d %s\n", r.status.status, r.status.reason.c_str());
            co_return 1;
        }
        std::fwrite(r.body.data(), 1, r.body.size(), stdout);
        std::fflush(stdout);
        co_return 0;
    } catch (const corio::timeout_error&) {
        std::fprintf(stderr, "fetch_http: %s: timed out after %g seconds\n", shown.c_str(), timeout);
    } catch (const std::invalid_argument& e) { // from parse_url
        std::fprintf(stderr, "fetch_http: %s\n", e.what());
    } catch (const corio::incomplete_read_error& e) {
        std::fprintf(stderr, "fetch_http: the response was cut short (%s)\n", e.what());
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "fetch_http: %s\n", e.code().message().c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fetch_http: %s\n", e.what());
    }
    co_return 1;
}

// --- the tour's mode -------------------------------------------------------------------------

/// The demo's server: GET / redirects to /hello, /hello answers with a chunked body, /never
/// is never answered (the handler waits until the client hangs up).
corio::task<> demo_handler(corio::stream_reader reader, corio::stream_writer writer) {
    std::string head;
    try {
        head = co_await reader.readuntil("\r\n\r\n");
    } catch (const std::exception&) {
        co_return; // the client hung up before sending a whole request
    }
    http::request request;
    if (http::parse_request(head, request).kind != http::parse_result::complete) co_return;
    if (request.path == "/") {
        std::printf("server: GET %s -> 302 Found, Location: /hello\n", request.path.c_str());
        writer.write("HTTP/1.1 302 Found\r\nLocation: /hello\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n");
    } else if (request.path == "/hello") {
        std::printf("server: GET %s -> 200 OK, the body in 3 chunks\n", request.path.c_str());
        writer.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        for (std::string_view chunk : {"Hello from corio,\n", "sent in ", "three chunks.\n"}) {
            char size[32];
            std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
            writer.write(size);
            writer.write(chunk);
            writer.write("\r\n");
        }
        writer.write("0\r\n\r\n");
    } else {
        co_await reader.read(); // /never: say nothing until the client gives up (EOF)
        co_return;
    }
    try {
        co_await writer.drain();
    } catch (const std::system_error&) {
        // the client went away: nothing more to do
    }
    writer.close();
}

/// The server on a free port and the client in one process. The output names the port PORT,
/// so that it is the same on every run.
corio::task<int> demo() {
    using namespace std::chrono_literals;
    auto handler = demo_handler;
    corio::server server = co_await corio::start_server(handler, "127.0.0.1", 0);
    const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
    std::printf("server: listening on 127.0.0.1:PORT (a free port)\n");

    std::printf("client: fetch_http http://127.0.0.1:PORT/\n");
    response r = co_await corio::wait_for(fetch(base + "/"), 2s);
    std::printf("client: HTTP %d %s, body:\n", r.status.status, r.status.reason.c_str());
    std::fwrite(r.body.data(), 1, r.body.size(), stdout);

    std::printf("client: fetch_http http://127.0.0.1:PORT/never --timeout 0.2\n");
    const int status = co_await main_coro(base + "/never", 0.2, "http://127.0.0.1:PORT/never");
    std::printf("client: exit status %d\n", status);

    server.close();
    server.close_clients(); // the /never handler sees EOF and ends
    co_await server.wait_closed();
    co_return 0;
}

[[noreturn]] void usage(int code) {
    std::fprintf(code ? stderr : stdout,
                 "usage: fetch_http URL [--timeout SECONDS] | --demo\n"
                 "  GETs an http:// URL (HTTP/1.1, redirects followed) and prints the body.\n"
                 "  Exit status 0 for a 2xx answer; otherwise a message on stderr and 1.\n"
                 "  --timeout: for the whole fetch, 10 seconds by default.\n"
                 "  --demo: fetch from a tiny server in the same process (a redirect, a\n"
                 "  chunked body), then time out on a page it never answers (the tour's mode).\n");
    std::exit(code);
}

} // namespace

int main(int argc, char** argv) {
    std::string url;
    double timeout = 10;
    bool demo_mode = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") usage(0);
        if (arg == "--demo") {
            demo_mode = true;
        } else if (arg == "--timeout") {
            if (i + 1 >= argc) usage(2);
            char* end = nullptr;
            timeout = std::strtod(argv[++i], &end);
            if (*end || !(timeout > 0)) usage(2);
        } else if (url.empty() && !arg.empty() && arg[0] != '-') {
            url = arg;
        } else {
            usage(2);
        }
    }
    if (demo_mode) {
        if (!url.empty()) usage(2);
        // One line at a time, so that stdout and stderr (the timeout message) interleave in
        // the order they are written, even into a pipe.
        std::setvbuf(stdout, nullptr, _IOLBF, 0);
        try {
            return corio::run(demo());
        } catch (const std::exception& e) {
            std::fprintf(stderr, "fetch_http: %s\n", e.what());
            return 1;
        }
    }
    if (url.empty()) usage(2);
    return corio::run(main_coro(url, timeout, url));
}
