#pragma once
// dns_message.hpp: the small DNS codec behind examples/dns_server.cpp (RFC 1035, plus RFC 6891's
// EDNS OPT record). No sockets, no corio: bytes in, bytes out, so tests/test_dns_codec.cpp can
// check exact bytes and throw random packets at it.
//
// The article's lookup_dns/create_response read the name from byte 12 without any check and
// copy the query back with an answer glued on; this does the same job, but never reads outside
// the packet, whatever arrives:
// - shorter than a header (12 bytes): dropped (nothing to answer to);
// - a response (QR set): dropped (answering answers invites loops);
// - an opcode other than QUERY: NOTIMP;
// - QDCOUNT other than 1, a name running past the end, a label longer than 63, a compression
//   pointer that does not point backwards (which is what makes loops impossible), a name
//   longer than 255 bytes, a record cut short, two OPT records: FORMERR;
// - an EDNS version other than 0: BADVERS; a class other than IN/ANY: REFUSED;
// - otherwise authoritative (AA) answers: NOERROR with the A record for a known name (also for
//   qtype ANY), NOERROR with no answer (NODATA) for other types of a known name, NXDOMAIN for
//   an unknown name. Names compare case-insensitively; RD is copied; the question is echoed;
//   a query with an OPT record gets one back (UDP payload 1232).

#include <array>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace dns {

inline constexpr std::uint16_t type_a = 1;
inline constexpr std::uint16_t type_aaaa = 28;
inline constexpr std::uint16_t type_opt = 41;
inline constexpr std::uint16_t type_any = 255;
inline constexpr std::uint16_t class_in = 1;
inline constexpr std::uint16_t class_any = 255;
inline constexpr std::uint32_t answer_ttl = 60; // the article's TTL
inline constexpr std::uint16_t edns_udp_size = 1232;
inline constexpr std::size_t header_size = 12;
inline constexpr std::size_t max_name_length = 255; // wire form, RFC 1035 2.3.4

/// Response codes (RFC 1035 4.1.1, RFC 6891 BADVERS).
enum rcode : int {
    noerror = 0,
    formerr = 1,
    servfail = 2,
    nxdomain = 3,
    notimp = 4,
    refused = 5,
    badvers = 16,
};

inline const char* rcode_name(int rc) {
    switch (rc) {
    case noerror: return "NOERROR";
    case formerr: return "FORMERR";
    case servfail: return "SERVFAIL";
    case nxdomain: return "NXDOMAIN";
    case notimp: return "NOTIMP";
    case refused: return "REFUSED";
    case badvers: return "BADVERS";
    default: return "RCODE?";
    }
}

using ipv4 = std::array<std::uint8_t, 4>;

/// A dotted quad ("127.0.0.1"), strictly: four decimal parts 0..255 of 1 to 3 digits.
inline std::optional<ipv4> parse_ipv4(std::string_view s) {
    ipv4 out{};
    std::size_t part = 0, digits = 0;
    unsigned value = 0;
    for (std::size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || s[i] == '.') {
            if (digits == 0 || value > 255 || part > 3) return std::nullopt;
            out[part++] = static_cast<std::uint8_t>(value);
            digits = 0;
            value = 0;
        } else if (s[i] >= '0' && s[i] <= '9' && digits < 3) {
            value = value * 10 + static_cast<unsigned>(s[i] - '0');
            ++digits;
        } else {
            return std::nullopt;
        }
    }
    if (part != 4) return std::nullopt;
    return out;
}

inline std::string to_string(const ipv4& a) {
    return std::to_string(a[0]) + '.' + std::to_string(a[1]) + '.' + std::to_string(a[2]) + '.' +
           std::to_string(a[3]);
}

/// The names the server answers for: lowercase, without the trailing dot.
class zone {
public:
    /// "WWW.Example.COM." -> "www.example.com" (one trailing dot is dropped; "." is the root, "").
    static std::string normalize(std::string_view name) {
        if (!name.empty() && name.back() == '.') name.remove_suffix(1);
        std::string out(name);
        for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return out;
    }

    /// Adds (or replaces) a record; false if `address` is not a dotted quad or the name is empty.
    bool add(std::string_view name, std::string_view address) {
        auto a = parse_ipv4(address);
        std::string key = normalize(name);
        if (!a || key.empty()) return false;
        m_records[std::move(key)] = *a;
        return true;
    }

    /// Loads lines `NAME IPV4` ('#' starts a comment; blank lines are skipped). Returns an
    /// error message naming the line, or nothing on success.
    std::optional<std::string> load(std::istream& in) {
        std::string line;
        for (int n = 1; std::getline(in, line); ++n) {
            if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
            std::string fields[3];
            std::size_t count = 0, i = 0;
            while (i < line.size()) {
                while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
                if (i == line.size()) break;
                std::size_t j = i;
                while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
                if (count < 3) fields[count] = line.substr(i, j - i);
                ++count;
                i = j;
            }
            if (count == 0) continue;
            if (count != 2 || !add(fields[0], fields[1]))
                return "line " + std::to_string(n) + ": expected 'NAME IPV4', got '" + line + "'";
        }
        return std::nullopt;
    }

    /// The address of a normalized name, or null.
    const ipv4* find(const std::string& normalized) const {
        auto it = m_records.find(normalized);
        return it == m_records.end() ? nullptr : &it->second;
    }
    const std::map<std::string, ipv4>& records() const noexcept { return m_records; }

private:
    std::map<std::string, ipv4> m_records;
};

// --- Reading ---------------------------------------------------------------------------------

/// A bounds-checked reader over a packet.
class reader {
public:
    explicit reader(std::string_view packet) noexcept : m_p(packet) {}
    std::size_t pos() const noexcept { return m_pos; }
    std::size_t size() const noexcept { return m_p.size(); }
    bool u8(std::uint8_t& v) noexcept {
        if (m_pos + 1 > m_p.size()) return false;
        v = byte(m_pos++);
        return true;
    }
    bool u16(std::uint16_t& v) noexcept {
        if (m_pos + 2 > m_p.size()) return false;
        v = static_cast<std::uint16_t>(byte(m_pos) << 8 | byte(m_pos + 1));
        m_pos += 2;
        return true;
    }
    bool u32(std::uint32_t& v) noexcept {
        std::uint16_t hi, lo;
        if (!u16(hi) || !u16(lo)) return false;
        v = static_cast<std::uint32_t>(hi) << 16 | lo;
        return true;
    }
    bool skip(std::size_t n) noexcept {
        if (n > m_p.size() - m_pos) return false;
        m_pos += n;
        return true;
    }

    /// Reads a (possibly compressed) domain name at the current position. `wire` gets it
    /// uncompressed (labels and the final zero byte), `text` in presentation form without the
    /// trailing dot ("" for the root), with bytes other than letters, digits, '-', '_' and
    /// '*' written as \DDD. False if malformed (see the file comment).
    bool name(std::string& wire, std::string& text) {
        wire.clear();
        text.clear();
        std::size_t p = m_pos;
        bool jumped = false;
        for (int hops = 0;; ) {
            if (p >= m_p.size()) return false;
            const std::uint8_t len = byte(p);
            if ((len & 0xC0) == 0xC0) {
                if (p + 1 >= m_p.size()) return false;
                const std::size_t target = static_cast<std::size_t>(len & 0x3F) << 8 | byte(p + 1);
                if (target >= p || ++hops > 127) return false; // only backwards: no loops
                if (!jumped) m_pos = p + 2;
                jumped = true;
                p = target;
                continue;
            }
            if (len & 0xC0) return false; // 0x40, 0x80: reserved label types
            if (wire.size() + 1 + len > max_name_length) return false;
            if (len == 0) {
                wire.push_back('\0');
                if (!jumped) m_pos = p + 1;
                return true;
            }
            if (p + 1 + len > m_p.size()) return false;
            wire.push_back(static_cast<char>(len));
            if (!text.empty()) text.push_back('.');
            for (std::size_t i = p + 1; i < p + 1 + len; ++i) {
                const std::uint8_t c = byte(i);
                wire.push_back(static_cast<char>(c));
                if (std::isalnum(c) || c == '-' || c == '_' || c == '*') {
                    text.push_back(static_cast<char>(c));
                } else {
                    text.push_back('\\');
                    text.push_back(static_cast<char>('0' + c / 100));
                    text.push_back(static_cast<char>('0' + c / 10 % 10));
                    text.push_back(static_cast<char>('0' + c % 10));
                }
            }
            p += 1 + len;
        }
    }

private:
    std::uint8_t byte(std::size_t i) const noexcept { return static_cast<std::uint8_t>(m_p[i]); }
    std::string_view m_p;
    std::size_t m_pos = 0;
};

// --- Writing ---------------------------------------------------------------------------------

inline void put16(std::string& out, std::uint16_t v) {
    out.push_back(static_cast<char>(v >> 8));
    out.push_back(static_cast<char>(v & 0xFF));
}
inline void put32(std::string& out, std::uint32_t v) {
    put16(out, static_cast<std::uint16_t>(v >> 16));
    put16(out, static_cast<std::uint16_t>(v & 0xFFFF));
}

/// "www.example.com" (or with a trailing dot) in wire form; nothing if a label is empty or
/// longer than 63 bytes, or the name longer than 255.
inline std::optional<std::string> encode_name(std::string_view name) {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    std::string wire;
    while (!name.empty()) {
        const std::size_t dot = name.find('.');
        const std::string_view label = name.substr(0, dot);
        if (label.empty() || label.size() > 63) return std::nullopt;
        wire.push_back(static_cast<char>(label.size()));
        wire.append(label);
        if (dot == std::string_view::npos) break;
        name.remove_prefix(dot + 1);
        if (name.empty()) return std::nullopt; // "a..": an empty label
    }
    wire.push_back('\0');
    if (wire.size() > max_name_length) return std::nullopt;
    return wire;
}

/// A standard query (what dig sends): id, RD as asked, one question, optionally an EDNS OPT
/// record (version 0, UDP payload 1232). For tests and clients.
inline std::optional<std::string> make_query(std::uint16_t id, std::string_view name,
                                             std::uint16_t qtype = type_a, bool rd = true,
                                             bool edns = false) {
    auto wire = encode_name(name);
    if (!wire) return std::nullopt;
    std::string q;
    put16(q, id);
    put16(q, rd ? 0x0100 : 0);
    put16(q, 1);
    put16(q, 0);
    put16(q, 0);
    put16(q, edns ? 1 : 0);
    q += *wire;
    put16(q, qtype);
    put16(q, class_in);
    if (edns) {
        q.push_back('\0');
        put16(q, type_opt);
        put16(q, edns_udp_size);
        put32(q, 0);
        put16(q, 0);
    }
    return q;
}

// --- Answering -------------------------------------------------------------------------------

/// What `respond` did with a packet: a reply to send (or none: drop it), and what the server
/// logs about it.
struct outcome {
    std::optional<std::string> reply; ///< the response bytes; empty: drop the packet silently
    int rc = -1;                      ///< the response code, -1 if dropped
    std::string name;                 ///< the question's name (presentation form), if parsed
    std::uint16_t qtype = 0;          ///< the question's type, if parsed
    std::optional<ipv4> answer;       ///< the A record given, if any
    std::string why;                  ///< why it was dropped or refused (for the log)
};

/// Answers one query from `z` (see the file comment). Never throws on any input other than
/// std::bad_alloc, never reads outside `packet`.
inline outcome respond(std::string_view packet, const zone& z) {
    outcome out;
    if (packet.size() < header_size) {
        out.why = "shorter than a DNS header";
        return out;
    }
    reader r(packet);
    std::uint16_t id = 0, flags = 0, qd = 0, an = 0, ns = 0, ar = 0;
    r.u16(id);
    r.u16(flags);
    r.u16(qd);
    r.u16(an);
    r.u16(ns);
    r.u16(ar);
    if (flags & 0x8000) {
        out.why = "a response, not a query";
        return out;
    }
    const int opcode = (flags >> 11) & 0xF;

    std::string qwire, qtext;
    std::uint16_t qtype = 0, qclass = 0;
    bool question_ok = false;
    bool opt_seen = false;
    std::uint8_t edns_version = 0;
    int rc = noerror;

    if (opcode != 0) {
        rc = notimp;
        out.why = "opcode " + std::to_string(opcode) + " is not QUERY";
    } else if (qd != 1) {
        rc = formerr;
        out.why = "QDCOUNT is " + std::to_string(qd) + ", not 1";
    } else if (!r.name(qwire, qtext) || !r.u16(qtype) || !r.u16(qclass)) {
        rc = formerr;
        out.why = "malformed question";
    } else {
        question_ok = true;
        // Walk the other sections (a query normally has only the OPT record): every record must
        // fit in the packet. Each takes at least 11 bytes, so huge counts end at the packet's
        // end, quickly.
        const unsigned records = unsigned{an} + ns + ar;
        std::string wire, text;
        for (unsigned i = 0; i < records && rc == noerror; ++i) {
            std::uint16_t type = 0, cls = 0, rdlen = 0;
            std::uint32_t ttl = 0;
            if (!r.name(wire, text) || !r.u16(type) || !r.u16(cls) || !r.u32(ttl) ||
                !r.u16(rdlen) || !r.skip(rdlen)) {
                rc = formerr;
                out.why = "malformed resource record";
            } else if (type == type_opt) {
                if (i < unsigned{an} + ns || opt_seen || wire.size() != 1) {
                    rc = formerr;
                    out.why = "misplaced or repeated OPT record";
                } else {
                    opt_seen = true;
                    edns_version = static_cast<std::uint8_t>(ttl >> 16);
                }
            }
        }
    }
    if (rc == noerror && opt_seen && edns_version != 0) {
        rc = badvers;
        out.why = "EDNS version " + std::to_string(edns_version);
    }
    if (rc == noerror && qclass != class_in && qclass != class_any) {
        rc = refused;
        out.why = "class " + std::to_string(qclass);
    }
    const ipv4* found = nullptr;
    if (rc == noerror) {
        found = z.find(zone::normalize(qtext));
        if (!found) rc = nxdomain;
    }
    const bool give_a = found && (qtype == type_a || qtype == type_any);
    const bool authoritative = rc == noerror || rc == nxdomain;
    const bool with_opt = opt_seen && (rc == noerror || rc == nxdomain || rc == badvers ||
                                       rc == refused);

    std::string& reply = out.reply.emplace();
    put16(reply, id);
    put16(reply, static_cast<std::uint16_t>(0x8000 | (opcode << 11) | (authoritative ? 0x0400 : 0) |
                                            (flags & 0x0100) | (rc & 0xF)));
    put16(reply, question_ok ? 1 : 0);
    put16(reply, give_a ? 1 : 0);
    put16(reply, 0);
    put16(reply, with_opt ? 1 : 0);
    if (question_ok) {
        reply += qwire;
        put16(reply, qtype);
        put16(reply, qclass);
    }
    if (give_a) {
        put16(reply, 0xC000 | header_size); // the name: a pointer to the question's
        put16(reply, type_a);
        put16(reply, class_in);
        put32(reply, answer_ttl);
        put16(reply, 4);
        reply.append(reinterpret_cast<const char*>(found->data()), 4);
        out.answer = *found;
    }
    if (with_opt) {
        reply.push_back('\0');
        put16(reply, type_opt);
        put16(reply, edns_udp_size);
        put32(reply, static_cast<std::uint32_t>(rc >> 4) << 24); // extended RCODE, version 0
        put16(reply, 0);
    }
    out.rc = rc;
    if (question_ok) {
        out.name = qtext.empty() ? "." : qtext;
        out.qtype = qtype;
    }
    return out;
}

} // namespace dns
