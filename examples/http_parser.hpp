#pragma once
// A small HTTP/1.1 toolkit for the hello_http and fetch_http examples (and
// tests/test_http_parser.cpp): a request parser for the server, the status line, header and
// chunk-size parsers the client reads a response with, a response writer, and URL and
// percent-decoding helpers. It implements what the examples need of RFC 9112, strictly enough
// to be safe in front of real clients (curl, wrk, python's http.server), and nothing more: no
// multipart bodies, no compression, no TLS.
//
// Pure functions over strings: no I/O, no corio. The examples feed them from corio streams.

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace http {

// --- Characters and tokens ------------------------------------------------------------------

/// ASCII case-insensitive equality (header names, tokens).
inline bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

/// RFC 9110 tchar: what methods, header names and transfer codings are made of.
inline bool is_tchar(char c) noexcept {
    if (std::isalnum(static_cast<unsigned char>(c))) return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

inline bool is_token(std::string_view s) noexcept {
    if (s.empty()) return false;
    for (char c : s)
        if (!is_tchar(c)) return false;
    return true;
}

/// Strips spaces and tabs at both ends (OWS).
inline std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

/// True if the comma-separated list `value` (Connection, Transfer-Encoding) holds `token`.
inline bool list_contains(std::string_view value, std::string_view token) noexcept {
    while (!value.empty()) {
        std::size_t comma = value.find(',');
        std::string_view item = trim(value.substr(0, comma));
        if (iequals(item, token)) return true;
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
    return false;
}

/// A field value: visible characters, spaces, tabs and obs-text; no other control characters.
inline bool is_field_value(std::string_view v) noexcept {
    for (char ch : v) {
        auto c = static_cast<unsigned char>(ch);
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    }
    return true;
}

// --- Numbers ----------------------------------------------------------------------------------

/// A Content-Length value: decimal digits only, at most 18 of them; nullopt otherwise.
inline std::optional<std::uint64_t> parse_content_length(std::string_view v) noexcept {
    v = trim(v);
    if (v.empty() || v.size() > 18) return std::nullopt;
    std::uint64_t n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return n;
}

/// A chunk-size line ("1a", "1A;ext=1", without the line end): the size, or nullopt if it is
/// not hexadecimal or too large (more than 15 hex digits).
inline std::optional<std::uint64_t> parse_chunk_size(std::string_view line) noexcept {
    std::size_t semi = line.find(';');
    std::string_view digits = line.substr(0, semi);
    // Spaces before the extension are tolerated (RFC 9112: BWS), not inside the number.
    while (!digits.empty() && (digits.back() == ' ' || digits.back() == '\t')) digits.remove_suffix(1);
    if (digits.empty() || digits.size() > 15) return std::nullopt;
    std::uint64_t n = 0;
    for (char c : digits) {
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return std::nullopt;
        n = n * 16 + static_cast<std::uint64_t>(d);
    }
    return n;
}

// --- Headers ----------------------------------------------------------------------------------

using header_list = std::vector<std::pair<std::string, std::string>>;

/// Splits "Name: value" (without the line end) into name and trimmed value. False if the
/// name is not a token (which also rejects whitespace before the colon, RFC 9112 5.1, and
/// obsolete line folding) or the value holds control characters.
inline bool parse_header_line(std::string_view line, std::string& name, std::string& value) {
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return false;
    std::string_view n = line.substr(0, colon);
    std::string_view v = trim(line.substr(colon + 1));
    if (!is_token(n) || !is_field_value(v)) return false;
    name.assign(n);
    value.assign(v);
    return true;
}

/// The value of the first header called `name` (case-insensitive), or nullptr.
inline const std::string* find_header(const header_list& h, std::string_view name) noexcept {
    for (const auto& [n, v] : h)
        if (iequals(n, name)) return &v;
    return nullptr;
}

// --- Requests (the server side) -----------------------------------------------------------------

/// Limits of the request parser. The defaults are aiohttp's (8190 bytes per line) plus a bound
/// on the whole head and on bodies, which hello_http never needs.
struct limits {
    std::size_t max_line = 8190;             ///< request line or one header line
    std::size_t max_head = 64 * 1024;        ///< request line + all headers
    std::size_t max_headers = 100;           ///< number of header fields
    std::uint64_t max_body = 1024 * 1024;    ///< Content-Length or decoded chunked body
};

/// A parsed request.
struct request {
    std::string method;      ///< "GET"
    std::string target;      ///< as sent: "/John?x=1" (or absolute-form "http://h/John")
    std::string path;        ///< the path of the target, still percent-encoded: "/John"
    std::string query;       ///< after '?', without it; empty if none
    int minor = 1;           ///< HTTP/1.<minor>
    header_list headers;     ///< in order, names as sent
    std::string body;        ///< the body (decoded if it was chunked)
    bool keep_alive = true;  ///< whether the connection stays open after the response
};

/// What parse_request says.
struct parse_result {
    enum kind_t { need_more, complete, error } kind = need_more;
    std::size_t consumed = 0; ///< complete: bytes of the request (head and body) to drop
    int status = 0;           ///< error: the status to answer with (400, 431, 501, 505, 413)
    std::string reason;       ///< error: why, for logs and the response body
};

namespace detail {

/// The next line of `buf` from `pos`: its text without "\r\n" or "\n", and where the next
/// line starts. nullopt if no line end is there yet.
inline std::optional<std::pair<std::string_view, std::size_t>> next_line(std::string_view buf,
                                                                          std::size_t pos) {
    std::size_t lf = buf.find('\n', pos);
    if (lf == std::string_view::npos) return std::nullopt;
    std::string_view line = buf.substr(pos, lf - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return std::pair{line, lf + 1};
}

inline parse_result fail(int status, std::string reason) {
    parse_result r;
    r.kind = parse_result::error;
    r.status = status;
    r.reason = std::move(reason);
    return r;
}

/// Decodes a chunked body starting at `pos`. need_more until the last chunk and the trailer
/// section are complete; `consumed` is then the end of the message.
inline parse_result parse_chunked(std::string_view buf, std::size_t pos, const limits& lim,
                                  std::string& body) {
    body.clear();
    for (;;) {
        auto size_line = next_line(buf, pos);
        if (!size_line) {
            if (buf.size() - pos > lim.max_line) return fail(400, "chunk size line too long");
            return {};
        }
        auto size = parse_chunk_size(size_line->first);
        if (!size) return fail(400, "bad chunk size");
        pos = size_line->second;
        if (*size == 0) break;
        if (body.size() + *size > lim.max_body) return fail(413, "body too large");
        if (buf.size() - pos < *size + 1) return {}; // the data and at least the '\n'
        body.append(buf.substr(pos, static_cast<std::size_t>(*size)));
        pos += static_cast<std::size_t>(*size);
        if (buf[pos] == '\n') {
            pos += 1;
        } else if (buf[pos] == '\r') {
            if (pos + 1 >= buf.size()) return {};
            if (buf[pos + 1] != '\n') return fail(400, "chunk not followed by CRLF");
            pos += 2;
        } else {
            return fail(400, "chunk not followed by CRLF");
        }
    }
    // Trailer fields, then an empty line. Trailers are read and ignored.
    for (std::size_t n = 0;; ++n) {
        auto line = next_line(buf, pos);
        if (!line) {
            if (buf.size() - pos > lim.max_line) return fail(431, "trailer line too long");
            return {};
        }
        pos = line->second;
        if (line->first.empty()) break;
        std::string name, value;
        if (!parse_header_line(line->first, name, value)) return fail(400, "bad trailer field");
        if (n >= lim.max_headers) return fail(431, "too many trailer fields");
    }
    parse_result r;
    r.kind = parse_result::complete;
    r.consumed = pos;
    return r;
}

} // namespace detail

/// Parses one request from the front of `buf` into `out`. need_more if it is not complete yet
/// (read more and call again with the longer buffer: parsing starts over, which is cheap for
/// heads and bodies within `lim`); complete with the bytes it took; or error with the status
/// to answer (the connection must then be closed: what follows cannot be trusted).
///
/// Accepts HTTP/1.0 and HTTP/1.1 (505 for other versions), bare LF line ends, and empty lines
/// before the request line (RFC 9112 2.2). Rejects with 400: a malformed request line, a bad
/// header line (including whitespace before the colon and obsolete line folding), an
/// HTTP/1.1 request without exactly one Host, a bad or conflicting Content-Length,
/// Content-Length together with Transfer-Encoding, chunked not last in Transfer-Encoding.
/// 501 for a transfer coding other than chunked; 431 for a header line or head over the
/// limits; 400 for a request line over `max_line` (as aiohttp); 413 for a body over `max_body`.
inline parse_result parse_request(std::string_view buf, request& out, const limits& lim = {}) {
    using detail::fail;
    std::size_t pos = 0;
    // Request line (skipping leading empty lines).
    std::string_view line;
    for (;;) {
        auto l = detail::next_line(buf, pos);
        if (!l) {
            if (buf.size() - pos > lim.max_line) return fail(400, "request line too long");
            // Garbage (a TLS hello, binary) is answered at once, not when a line end comes.
            std::string_view partial = buf.substr(pos);
            std::string_view method = partial.substr(0, partial.find(' '));
            if (!method.empty() && method.back() == '\r') method.remove_suffix(1);
            if (!method.empty() && !is_token(method)) return fail(400, "bad method");
            return {};
        }
        pos = l->second;
        if (!l->first.empty()) {
            line = l->first;
            break;
        }
        if (pos > 64) return fail(400, "too many empty lines before the request");
    }
    if (line.size() > lim.max_line) return fail(400, "request line too long");
    std::size_t sp1 = line.find(' ');
    std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        return fail(400, "malformed request line");
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    if (!is_token(method)) return fail(400, "bad method");
    if (target.empty()) return fail(400, "empty request target");
    for (char ch : target) {
        auto c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c == 0x7f) return fail(400, "bad character in the request target");
    }
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
        !std::isdigit(static_cast<unsigned char>(version[5])) ||
        !std::isdigit(static_cast<unsigned char>(version[7])))
        return fail(400, "bad HTTP version");
    if (version[5] != '1' || (version[7] != '0' && version[7] != '1'))
        return fail(505, "HTTP version not supported");
    out = request{};
    out.method.assign(method);
    out.target.assign(target);
    out.minor = version[7] - '0';

    // Header fields, up to the empty line.
    const std::size_t head_start = 0;
    for (;;) {
        auto l = detail::next_line(buf, pos);
        if (!l) {
            if (buf.size() - pos > lim.max_line) return fail(431, "header line too long");
            if (buf.size() - head_start > lim.max_head) return fail(431, "request head too large");
            return {};
        }
        if (l->first.size() > lim.max_line) return fail(431, "header line too long");
        pos = l->second;
        if (pos - head_start > lim.max_head) return fail(431, "request head too large");
        if (l->first.empty()) break;
        if (out.headers.size() >= lim.max_headers) return fail(431, "too many header fields");
        std::string name, value;
        if (!parse_header_line(l->first, name, value)) return fail(400, "bad header field");
        out.headers.emplace_back(std::move(name), std::move(value));
    }

    // Framing and connection management (RFC 9112 6 and 9.3).
    int hosts = 0;
    std::optional<std::uint64_t> length;
    const std::string* te = nullptr;
    bool close_token = false, keep_alive_token = false;
    for (const auto& [name, value] : out.headers) {
        if (iequals(name, "host")) {
            ++hosts;
        } else if (iequals(name, "content-length")) {
            auto n = parse_content_length(value);
            if (!n || (length && *length != *n)) return fail(400, "bad Content-Length");
            length = n;
        } else if (iequals(name, "transfer-encoding")) {
            if (te) return fail(501, "several Transfer-Encoding fields");
            te = &value;
        } else if (iequals(name, "connection")) {
            if (list_contains(value, "close")) close_token = true;
            if (list_contains(value, "keep-alive")) keep_alive_token = true;
        }
    }
    if (out.minor == 1 && hosts != 1) return fail(400, hosts ? "several Host fields" : "no Host field");
    // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless asked not to.
    out.keep_alive = !close_token && (out.minor == 1 || keep_alive_token);

    // The target: origin-form "/path?query", absolute-form "http://host/path?query".
    std::string_view t = target;
    if (t.front() != '/') {
        std::size_t scheme = t.find("://");
        if (scheme != std::string_view::npos && scheme > 0) {
            std::size_t slash = t.find('/', scheme + 3);
            t = slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
        } else if (!(t == "*" && method == "OPTIONS")) {
            return fail(400, "bad request target");
        }
    }
    std::size_t q = t.find('?');
    out.path.assign(t.substr(0, q));
    if (q != std::string_view::npos) out.query.assign(t.substr(q + 1));

    // The body.
    if (te) {
        if (length) return fail(400, "both Content-Length and Transfer-Encoding");
        if (out.minor == 0) return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
        // The last coding must be chunked, and corio's examples know no other.
        std::string_view v = trim(*te);
        std::size_t last_comma = v.rfind(',');
        std::string_view last = trim(last_comma == std::string_view::npos ? v : v.substr(last_comma + 1));
        if (!iequals(last, "chunked")) return fail(400, "chunked is not the last transfer coding");
        if (last_comma != std::string_view::npos) return fail(501, "unsupported transfer coding");
        return detail::parse_chunked(buf, pos, lim, out.body);
    }
    std::uint64_t n = length.value_or(0);
    if (n > lim.max_body) return fail(413, "body too large");
    if (buf.size() - pos < n) return {};
    out.body.assign(buf.substr(pos, static_cast<std::size_t>(n)));
    parse_result r;
    r.kind = parse_result::complete;
    r.consumed = pos + static_cast<std::size_t>(n);
    return r;
}

// --- Responses --------------------------------------------------------------------------------

/// The reason phrase of the statuses the examples send.
inline std::string_view reason_phrase(int status) noexcept {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/// An IMF-fixdate for the Date header ("Sun, 06 Nov 1994 08:49:37 GMT"), recomputed at most
/// once a second.
inline const std::string& http_date() {
    static std::time_t cached_at = -1;
    static std::string cached;
    std::time_t now = std::time(nullptr);
    if (now != cached_at) {
        static const char* const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static const char* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        std::tm tm{};
        gmtime_r(&now, &tm);
        char buf[64];
        std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
                      tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                      tm.tm_sec);
        cached = buf;
        cached_at = now;
    }
    return cached;
}

/// What a response says besides its status and body.
struct response_options {
    int minor = 1;                  ///< answer in the request's version
    bool keep_alive = true;         ///< false: "Connection: close" (and the caller closes)
    bool head_only = false;         ///< a HEAD request: headers only, Content-Length of the body
    std::string_view extra_headers; ///< more "Name: value\r\n" lines (e.g. "Allow: GET, HEAD\r\n")
};

/// A complete response: status line, Date, Server, Content-Type (text/plain; charset=utf-8),
/// Content-Length (always), Connection when it differs from the version's default, the extra
/// headers, then the body (not for HEAD).
inline std::string make_response(int status, std::string_view body, const response_options& o = {}) {
    std::string r;
    r.reserve(180 + body.size());
    r += o.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ";
    r += std::to_string(status);
    r += ' ';
    r += reason_phrase(status);
    r += "\r\nDate: ";
    r += http_date();
    r += "\r\nServer: corio-hello_http\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ";
    r += std::to_string(body.size());
    r += "\r\n";
    if (!o.keep_alive) r += "Connection: close\r\n";
    else if (o.minor == 0) r += "Connection: keep-alive\r\n";
    r += o.extra_headers;
    r += "\r\n";
    if (!o.head_only) r += body;
    return r;
}

// --- Responses (the client side) ----------------------------------------------------------------

/// A parsed status line.
struct status_line {
    int minor = 1;      ///< HTTP/1.<minor>
    int status = 0;     ///< 200
    std::string reason; ///< "OK" (may be empty)
};

/// Parses "HTTP/1.1 200 OK" (without the line end); nullopt if malformed.
inline std::optional<status_line> parse_status_line(std::string_view line) {
    if (line.size() < 12 || line.substr(0, 5) != "HTTP/" || line[6] != '.' || line[8] != ' ')
        return std::nullopt;
    if (line[5] != '1' || !std::isdigit(static_cast<unsigned char>(line[7]))) return std::nullopt;
    status_line s;
    s.minor = line[7] - '0';
    for (int i = 9; i < 12; ++i) {
        if (!std::isdigit(static_cast<unsigned char>(line[static_cast<std::size_t>(i)])))
            return std::nullopt;
        s.status = s.status * 10 + (line[static_cast<std::size_t>(i)] - '0');
    }
    if (s.status < 100) return std::nullopt;
    if (line.size() > 12) {
        if (line[12] != ' ') return std::nullopt;
        s.reason.assign(line.substr(13));
    }
    return s;
}

/// Whether a response to `method` with `status` has no body whatever its headers say
/// (RFC 9112 6.3: HEAD, 1xx, 204, 304).
inline bool response_has_no_body(std::string_view method, int status) noexcept {
    return method == "HEAD" || (status >= 100 && status < 200) || status == 204 || status == 304;
}

// --- URLs ---------------------------------------------------------------------------------------

/// An http:// URL, split for a request.
struct url {
    std::string host;   ///< "example.com", "127.0.0.1" or "::1" (without brackets)
    int port = 80;      ///< 80 unless given
    std::string target; ///< "/path?query" (at least "/"); the fragment is dropped
    std::string authority; ///< for the Host header: "host" or "host:port", "[::1]:8080"
};

/// Parses an http:// URL. Throws std::invalid_argument with a message a user can act on:
/// another scheme ("https:// is not supported (TLS is out of scope): use http://"), a missing
/// host, a bad port, user info.
inline url parse_url(std::string_view s) {
    std::size_t colon = s.find("://");
    if (colon == std::string_view::npos)
        throw std::invalid_argument("not an absolute URL (expected http://HOST[:PORT]/PATH): '" +
                                    std::string(s) + "'");
    std::string scheme(s.substr(0, colon));
    for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme == "https")
        throw std::invalid_argument("https:// is not supported (TLS is out of scope): use http://");
    if (scheme != "http")
        throw std::invalid_argument("unsupported scheme '" + scheme + "' (only http:// is)");
    std::string_view rest = s.substr(colon + 3);
    std::size_t end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, end);
    std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    if (std::size_t hash = tail.find('#'); hash != std::string_view::npos) tail = tail.substr(0, hash);
    if (authority.find('@') != std::string_view::npos)
        throw std::invalid_argument("user information in URLs is not supported");
    url u;
    std::string_view port_text;
    if (!authority.empty() && authority.front() == '[') {
        std::size_t close = authority.find(']');
        if (close == std::string_view::npos) throw std::invalid_argument("bad IPv6 address in URL");
        u.host.assign(authority.substr(1, close - 1));
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') throw std::invalid_argument("bad URL authority");
            port_text = after.substr(1);
        }
    } else {
        std::size_t pc = authority.rfind(':');
        u.host.assign(authority.substr(0, pc));
        if (pc != std::string_view::npos) port_text = authority.substr(pc + 1);
    }
    if (u.host.empty()) throw std::invalid_argument("no host in URL '" + std::string(s) + "'");
    if (!port_text.empty()) {
        auto p = parse_content_length(port_text); // decimal digits
        if (!p || *p > 65535 || *p == 0) throw std::invalid_argument("bad port in URL: '" + std::string(port_text) + "'");
        u.port = static_cast<int>(*p);
    }
    u.authority.assign(authority);
    if (u.port == 80 && !port_text.empty()) { // Host without the default port, as curl sends it
        u.authority.resize(u.authority.size() - port_text.size() - 1);
    }
    u.target = tail.empty() || tail.front() != '/' ? "/" + std::string(tail) : std::string(tail);
    return u;
}

/// Resolves a redirect's Location against the URL it came from: an absolute http:// URL, an
/// absolute path ("/x"), or a relative path ("x", against the base's directory).
inline std::string resolve_location(const url& base, std::string_view location) {
    if (location.find("://") != std::string_view::npos) return std::string(location);
    if (location.substr(0, 2) == "//") return "http:" + std::string(location);
    std::string path;
    if (!location.empty() && location.front() == '/') {
        path.assign(location);
    } else {
        std::string dir = base.target.substr(0, base.target.find('?'));
        dir.resize(dir.rfind('/') + 1);
        path = dir + std::string(location);
    }
    return "http://" + base.authority + path;
}

/// Percent-decoding of a path segment ("J%C3%B6rg" -> "Jörg"). nullopt on a malformed escape
/// ("%4", "%zz"). '+' stays '+' (it means space only in query strings).
inline std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size()) return std::nullopt;
        int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

} // namespace http
