// The HTTP/1.1 toolkit of the hello_http and fetch_http examples (examples/http_parser.hpp):
// request framing, keep-alive rules, limits and every rejection the server answers with a
// status, the client's status line / chunk / URL parsers, and the response writer.
#include "../examples/http_parser.hpp"

#include <doctest/doctest.h>

#include <string>

using http::parse_request;
using http::parse_result;

namespace {

parse_result parse(const std::string& s, http::request& r, const http::limits& lim = {}) {
    return parse_request(s, r, lim);
}

int error_status(const std::string& s, const http::limits& lim = {}) {
    http::request r;
    parse_result p = parse(s, r, lim);
    if (p.kind != parse_result::error) return 0;
    return p.status;
}

} // namespace

TEST_CASE("a GET request: method, target, path, query, headers, keep-alive by default") {
    http::request r;
    std::string s = "GET /John?x=1&y HTTP/1.1\r\nHost: localhost:8001\r\nUser-Agent: curl/7.88\r\n"
                    "Accept: */*\r\n\r\n";
    parse_result p = parse(s, r);
    REQUIRE(p.kind == parse_result::complete);
    CHECK(p.consumed == s.size());
    CHECK(r.method == "GET");
    CHECK(r.target == "/John?x=1&y");
    CHECK(r.path == "/John");
    CHECK(r.query == "x=1&y");
    CHECK(r.minor == 1);
    CHECK(r.keep_alive);
    REQUIRE(r.headers.size() == 3);
    CHECK(*http::find_header(r.headers, "user-agent") == "curl/7.88");
    CHECK(http::find_header(r.headers, "cookie") == nullptr);
    CHECK(r.body.empty());
}

TEST_CASE("every prefix of a request needs more; pipelined requests come out one by one") {
    std::string one = "GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
    std::string two = "HEAD /b HTTP/1.1\r\nHost: h\r\n\r\n";
    std::string buf = one + two;
    for (std::size_t n = 0; n < one.size(); ++n) {
        http::request r;
        CHECK(parse(buf.substr(0, n), r).kind == parse_result::need_more);
    }
    http::request r;
    parse_result p = parse(buf, r);
    REQUIRE(p.kind == parse_result::complete);
    CHECK(p.consumed == one.size());
    CHECK(r.path == "/a");
    CHECK(r.body == "abc");
    p = parse(buf.substr(p.consumed), r);
    REQUIRE(p.kind == parse_result::complete);
    CHECK(p.consumed == two.size());
    CHECK(r.method == "HEAD");
    CHECK(r.path == "/b");
}

TEST_CASE("keep-alive: Connection: close in HTTP/1.1, HTTP/1.0 closes unless keep-alive") {
    http::request r;
    REQUIRE(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n", r).kind == parse_result::complete);
    CHECK(!r.keep_alive);
    REQUIRE(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: TE, close\r\n\r\n", r).kind == parse_result::complete);
    CHECK(!r.keep_alive);
    REQUIRE(parse("GET / HTTP/1.0\r\n\r\n", r).kind == parse_result::complete); // no Host needed
    CHECK(r.minor == 0);
    CHECK(!r.keep_alive);
    REQUIRE(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", r).kind == parse_result::complete);
    CHECK(r.keep_alive);
    REQUIRE(parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", r).kind == parse_result::complete);
    CHECK(!r.keep_alive);
}

TEST_CASE("tolerated: bare LF line ends, empty lines before the request, absolute-form") {
    http::request r;
    parse_result p = parse("\r\n\r\nGET /x HTTP/1.1\nHost: h\n\n", r);
    REQUIRE(p.kind == parse_result::complete);
    CHECK(r.path == "/x");
    p = parse("GET http://example.com:8001/John?q HTTP/1.1\r\nHost: example.com\r\n\r\n", r);
    REQUIRE(p.kind == parse_result::complete);
    CHECK(r.path == "/John");
    CHECK(r.query == "q");
    p = parse("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", r);
    REQUIRE(p.kind == parse_result::complete);
    CHECK(r.path == "/");
    p = parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", r);
    REQUIRE(p.kind == parse_result::complete);
    CHECK(r.path == "*");
}

TEST_CASE("garbage and malformed requests get 400, other versions 505") {
    CHECK(error_status(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)) == 400); // TLS
    CHECK(error_status("GET") == 0);   // incomplete, and may still be a request
    CHECK(error_status("GE\x01") == 400); // already not a method
    CHECK(error_status("hello\r\n") == 400);
    CHECK(error_status("GET /\r\n") == 400);                       // HTTP/0.9
    CHECK(error_status("GET  / HTTP/1.1\r\n") == 400);             // two spaces
    CHECK(error_status("GET / HTTP/1.1 x\r\n") == 400);
    CHECK(error_status("G(T / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(error_status("GET / HTTP/1.1\r\n\r\n") == 400);           // no Host
    CHECK(error_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == 400);
    CHECK(error_status("GET / HTTP/1.1\r\nHost : h\r\n\r\n") == 400); // space before the colon
    CHECK(error_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  folded\r\n\r\n") == 400);
    CHECK(error_status("GET / HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n") == 400);
    CHECK(error_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n") == 400);
    CHECK(error_status("GET x HTTP/1.1\r\nHost: h\r\n\r\n") == 400); // not origin-form
    CHECK(error_status("GET / HTTP/1.x\r\n") == 400);
    CHECK(error_status("GET / http/1.1\r\n") == 400);
    CHECK(error_status("GET / HTTP/2.0\r\nHost: h\r\n\r\n") == 505);
    CHECK(error_status("GET / HTTP/1.2\r\nHost: h\r\n\r\n") == 505);
    CHECK(error_status("GET / HTTP/0.9\r\nHost: h\r\n\r\n") == 505);
}

TEST_CASE("limits: a long request line gets 400 (aiohttp), long or many headers 431") {
    http::limits lim;
    lim.max_line = 100;
    lim.max_head = 400;
    lim.max_headers = 5;
    std::string long_target = "GET /" + std::string(200, 'a') + " HTTP/1.1\r\n";
    CHECK(error_status(long_target, lim) == 400);
    // Detected before the line end arrives: the peer cannot make the buffer grow forever.
    CHECK(error_status("GET /" + std::string(200, 'a'), lim) == 400);
    CHECK(error_status("GET / HTTP/1.1\r\nX: " + std::string(200, 'b') + "\r\n\r\n", lim) == 431);
    CHECK(error_status("GET / HTTP/1.1\r\nX: " + std::string(200, 'b'), lim) == 431);
    std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (int i = 0; i < 5; ++i) many += "X" + std::to_string(i) + ": v\r\n";
    CHECK(error_status(many + "\r\n", lim) == 431);
    std::string big = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (int i = 0; i < 4; ++i) big += "X" + std::to_string(i) + ": " + std::string(90, 'c') + "\r\n";
    CHECK(error_status(big + "\r\n", lim) == 431);
    CHECK(error_status(big, lim) == 431); // still incomplete, already too large
    // Within the limits: fine.
    http::request r;
    CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(80, 'b') + "\r\n\r\n", r, lim).kind ==
          parse_result::complete);
}

TEST_CASE("bodies: Content-Length, chunked with extensions and trailers, and the conflicts") {
    http::request r;
    std::string chunked = "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
    for (std::size_t n = 0; n < chunked.size(); ++n)
        CHECK(parse(chunked.substr(0, n), r).kind == parse_result::need_more);
    parse_result p = parse(chunked + "GET", r);
    REQUIRE(p.kind == parse_result::complete);
    CHECK(p.consumed == chunked.size());
    CHECK(r.body == "hello world");
    CHECK(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", r).kind ==
          parse_result::complete);
    CHECK(error_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n") == 400);
    CHECK(error_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n") == 400);
    CHECK(error_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n") == 400);
    CHECK(error_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n") == 400);
    CHECK(error_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n") == 400);
    CHECK(error_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") == 501);
    CHECK(error_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n") == 400);
    CHECK(error_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX") == 400);
    http::limits lim;
    lim.max_body = 10;
    CHECK(error_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", lim) == 413);
    CHECK(error_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n", lim) == 413);
}

TEST_CASE("responses: Content-Length always, HEAD without body, Connection as needed") {
    std::string r = http::make_response(200, "Hello, John");
    CHECK(r.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(r.find("\r\nContent-Type: text/plain; charset=utf-8\r\n") != std::string::npos);
    CHECK(r.find("\r\nContent-Length: 11\r\n") != std::string::npos);
    CHECK(r.find("\r\nDate: ") != std::string::npos);
    CHECK(r.find("Connection") == std::string::npos);
    CHECK(r.substr(r.size() - 15) == "\r\n\r\nHello, John");
    http::response_options head;
    head.head_only = true;
    std::string h = http::make_response(200, "Hello, John", head);
    CHECK(h.find("\r\nContent-Length: 11\r\n") != std::string::npos);
    CHECK(h.substr(h.size() - 4) == "\r\n\r\n");
    http::response_options closing;
    closing.keep_alive = false;
    closing.extra_headers = "Allow: GET, HEAD\r\n";
    std::string c = http::make_response(405, "405: Method Not Allowed", closing);
    CHECK(c.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0) == 0);
    CHECK(c.find("\r\nConnection: close\r\nAllow: GET, HEAD\r\n\r\n") != std::string::npos);
    http::response_options old;
    old.minor = 0;
    std::string o = http::make_response(200, "x", old);
    CHECK(o.rfind("HTTP/1.0 200 OK\r\n", 0) == 0);
    CHECK(o.find("\r\nConnection: keep-alive\r\n") != std::string::npos);
    CHECK(http::http_date().size() == 29);
}

TEST_CASE("the client's parsers: status line, chunk sizes, headers, bodiless responses") {
    auto s = http::parse_status_line("HTTP/1.1 404 Not Found");
    REQUIRE(s);
    CHECK(s->status == 404);
    CHECK(s->reason == "Not Found");
    CHECK(s->minor == 1);
    s = http::parse_status_line("HTTP/1.0 200");
    REQUIRE(s);
    CHECK(s->status == 200);
    CHECK(s->reason.empty());
    CHECK(!http::parse_status_line("HTTP/1.1 20 OK"));
    CHECK(!http::parse_status_line("HTTP/2 200 OK"));
    CHECK(!http::parse_status_line("ICY 200 OK"));
    CHECK(!http::parse_status_line("HTTP/1.1 200OK"));
    CHECK(http::parse_chunk_size("1a") == 26u);
    CHECK(http::parse_chunk_size("FF ;name=value") == 255u);
    CHECK(http::parse_chunk_size("0") == 0u);
    CHECK(!http::parse_chunk_size(""));
    CHECK(!http::parse_chunk_size("x1"));
    CHECK(!http::parse_chunk_size("-1"));
    CHECK(!http::parse_chunk_size("1111111111111111")); // 16 hex digits: too large
    std::string n, v;
    CHECK(http::parse_header_line("Content-Length:  12 ", n, v));
    CHECK(n == "Content-Length");
    CHECK(v == "12");
    CHECK(!http::parse_header_line(" X: y", n, v));
    CHECK(http::list_contains("keep-alive, Upgrade", "upgrade"));
    CHECK(!http::list_contains("keep-alive-ish", "keep-alive"));
    CHECK(http::response_has_no_body("HEAD", 200));
    CHECK(http::response_has_no_body("GET", 204));
    CHECK(http::response_has_no_body("GET", 304));
    CHECK(!http::response_has_no_body("GET", 200));
    CHECK(http::parse_content_length("0") == 0u);
    CHECK(!http::parse_content_length("+1"));
}

TEST_CASE("URLs: http only, host forms, ports, targets, and clear errors") {
    http::url u = http::parse_url("http://127.0.0.1:8001/John?x=1#frag");
    CHECK(u.host == "127.0.0.1");
    CHECK(u.port == 8001);
    CHECK(u.target == "/John?x=1");
    CHECK(u.authority == "127.0.0.1:8001");
    u = http::parse_url("HTTP://example.com");
    CHECK(u.host == "example.com");
    CHECK(u.port == 80);
    CHECK(u.target == "/");
    u = http::parse_url("http://example.com:80?q");
    CHECK(u.authority == "example.com");
    CHECK(u.target == "/?q");
    u = http::parse_url("http://[::1]:8080/a");
    CHECK(u.host == "::1");
    CHECK(u.port == 8080);
    CHECK(u.authority == "[::1]:8080");
    CHECK_THROWS_WITH_AS(http::parse_url("https://example.com/"),
                         "https:// is not supported (TLS is out of scope): use http://",
                         std::invalid_argument);
    CHECK_THROWS_AS(http::parse_url("ftp://x/"), std::invalid_argument);
    CHECK_THROWS_AS(http::parse_url("example.com/x"), std::invalid_argument);
    CHECK_THROWS_AS(http::parse_url("http:///x"), std::invalid_argument);
    CHECK_THROWS_AS(http::parse_url("http://h:99999/"), std::invalid_argument);
    CHECK_THROWS_AS(http::parse_url("http://h:x/"), std::invalid_argument);
    CHECK_THROWS_AS(http::parse_url("http://user@h/"), std::invalid_argument);
    CHECK_THROWS_AS(http::parse_url("http://[::1/"), std::invalid_argument);
    http::url base = http::parse_url("http://h:81/dir/page?q");
    CHECK(http::resolve_location(base, "http://other/x") == "http://other/x");
    CHECK(http::resolve_location(base, "/abs") == "http://h:81/abs");
    CHECK(http::resolve_location(base, "rel") == "http://h:81/dir/rel");
    CHECK(http::resolve_location(base, "//cdn/x") == "http://cdn/x");
}

TEST_CASE("percent-decoding of a path segment") {
    CHECK(http::percent_decode("John") == "John");
    CHECK(http::percent_decode("J%C3%B6rg") == "J\xc3\xb6rg");
    CHECK(http::percent_decode("a%20b+c") == "a b+c");
    CHECK(http::percent_decode("%2F") == "/");
    CHECK(!http::percent_decode("%"));
    CHECK(!http::percent_decode("%4"));
    CHECK(!http::percent_decode("%zz"));
    CHECK(http::percent_decode("") == "");
}
