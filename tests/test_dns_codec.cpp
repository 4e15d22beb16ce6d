// The DNS codec of examples/dns_server (examples/dns_message.hpp): exact bytes of known
// queries and answers, every malformed-packet rule, and 100,000 random and mutated packets that
// must never crash or read out of bounds (run under ASan in CI).
#include "../examples/dns_message.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::string bytes(std::initializer_list<int> v) {
    std::string s;
    for (int b : v) s.push_back(static_cast<char>(b));
    return s;
}

struct header {
    std::uint16_t id, flags, qd, an, ns, ar;
    int rcode() const { return flags & 0xF; }
    bool qr() const { return flags & 0x8000; }
    bool aa() const { return flags & 0x0400; }
    bool rd() const { return flags & 0x0100; }
};

header read_header(const std::string& p) {
    REQUIRE(p.size() >= 12);
    auto u16 = [&](std::size_t i) {
        return static_cast<std::uint16_t>(static_cast<std::uint8_t>(p[i]) << 8 |
                                          static_cast<std::uint8_t>(p[i + 1]));
    };
    return {u16(0), u16(2), u16(4), u16(6), u16(8), u16(10)};
}

dns::zone test_zone() {
    dns::zone z;
    REQUIRE(z.add("example.com", "93.184.216.34"));
    REQUIRE(z.add("Mixed.Case.ORG.", "10.0.0.1"));
    return z;
}

/// The header of a query with the given counts and flags, then `rest`.
std::string packet(std::uint16_t flags, std::uint16_t qd, std::uint16_t an, std::uint16_t ns,
                   std::uint16_t ar, std::string_view rest) {
    std::string p;
    dns::put16(p, 0xBEEF);
    dns::put16(p, flags);
    dns::put16(p, qd);
    dns::put16(p, an);
    dns::put16(p, ns);
    dns::put16(p, ar);
    p += rest;
    return p;
}

const std::string example_q = bytes({7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
                                     0, 1, 0, 1}); // example.com A IN

/// A reply parses exactly: header, the question if any, the A record if any, the OPT if any.
bool well_formed(const std::string& reply) {
    const header h = read_header(reply);
    dns::reader r(reply);
    std::string wire, text;
    std::uint16_t type = 0, cls = 0;
    if (!r.skip(12)) return false;
    if (h.qd == 1 && (!r.name(wire, text) || !r.u16(type) || !r.u16(cls))) return false;
    if (h.an == 1 && !r.skip(16)) return false;
    if (h.ar == 1 && (!r.name(wire, text) || wire.size() != 1 || !r.u16(type) ||
                      type != dns::type_opt || !r.skip(8)))
        return false;
    return r.pos() == r.size();
}

} // namespace

TEST_CASE("exact bytes: an A query and its answer") {
    const dns::zone z = test_zone();
    const auto q = dns::make_query(0x1234, "example.com", dns::type_a, true);
    REQUIRE(q);
    CHECK(*q == bytes({0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}) + example_q);

    const dns::outcome o = dns::respond(*q, z);
    REQUIRE(o.reply);
    const std::string expected =
        bytes({0x12, 0x34, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 0}) + example_q +
        bytes({0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34});
    CHECK(*o.reply == expected);
    CHECK(o.rc == dns::noerror);
    CHECK(o.name == "example.com");
    REQUIRE(o.answer);
    CHECK(dns::to_string(*o.answer) == "93.184.216.34");
}

TEST_CASE("exact bytes: an EDNS query (as dig sends, with a cookie option) gets an OPT back") {
    const dns::zone z = test_zone();
    // dig's default: OPT with UDP size 1232 and a COOKIE option (code 10, 8 bytes).
    const std::string q = packet(0x0120, 1, 0, 0, 1, example_q) +
                          bytes({0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8, 1, 2, 3, 4,
                                 5, 6, 7, 8});
    const dns::outcome o = dns::respond(q, z);
    REQUIRE(o.reply);
    const std::string expected =
        bytes({0xBE, 0xEF, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 1}) + example_q +
        bytes({0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34}) +
        bytes({0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0});
    CHECK(*o.reply == expected);
}

TEST_CASE("NXDOMAIN, NODATA, ANY, case and the trailing dot") {
    const dns::zone z = test_zone();
    auto ask = [&](std::string_view name, std::uint16_t type) {
        auto q = dns::make_query(7, name, type, false);
        REQUIRE(q);
        return dns::respond(*q, z);
    };
    dns::outcome o = ask("nothere.example", dns::type_a);
    REQUIRE(o.reply);
    header h = read_header(*o.reply);
    CHECK(h.rcode() == dns::nxdomain);
    CHECK(h.qr());
    CHECK(h.aa());
    CHECK(!h.rd()); // copied: not asked
    CHECK(h.qd == 1);
    CHECK(h.an == 0);

    o = ask("example.com", dns::type_aaaa);
    h = read_header(*o.reply);
    CHECK(h.rcode() == dns::noerror);
    CHECK(h.an == 0); // NODATA
    CHECK(!o.answer);

    o = ask("EXAMPLE.com.", dns::type_any);
    h = read_header(*o.reply);
    CHECK(h.rcode() == dns::noerror);
    CHECK(h.an == 1);

    o = ask("mixed.case.org", dns::type_a);
    REQUIRE(o.answer);
    CHECK(dns::to_string(*o.answer) == "10.0.0.1");
    CHECK(o.name == "mixed.case.org");

    // The root name: unknown here.
    const std::string root = packet(0, 1, 0, 0, 0, bytes({0, 0, 1, 0, 1}));
    o = dns::respond(root, z);
    CHECK(o.rc == dns::nxdomain);
    CHECK(o.name == ".");
}

TEST_CASE("dropped silently: shorter than a header, or a response") {
    const dns::zone z = test_zone();
    for (std::size_t n = 0; n < 12; ++n) {
        const dns::outcome o = dns::respond(std::string(n, '\0'), z);
        CHECK(!o.reply);
        CHECK(o.rc == -1);
    }
    const dns::outcome o = dns::respond(packet(0x8000, 1, 0, 0, 0, example_q), z);
    CHECK(!o.reply);
}

TEST_CASE("NOTIMP for opcodes other than QUERY; FORMERR for a bad question count") {
    const dns::zone z = test_zone();
    dns::outcome o = dns::respond(packet(2 << 11 | 0x0100, 1, 0, 0, 0, example_q), z); // STATUS
    REQUIRE(o.reply);
    header h = read_header(*o.reply);
    CHECK(h.rcode() == dns::notimp);
    CHECK(((h.flags >> 11) & 0xF) == 2); // opcode echoed
    CHECK(h.rd());
    CHECK(h.id == 0xBEEF);
    CHECK(o.reply->size() == 12);

    for (std::uint16_t qd : {0, 2, 65535}) {
        o = dns::respond(packet(0, qd, 0, 0, 0, example_q + example_q), z);
        REQUIRE(o.reply);
        h = read_header(*o.reply);
        CHECK(h.rcode() == dns::formerr);
        CHECK(h.qd == 0);
        CHECK(o.reply->size() == 12);
    }
}

TEST_CASE("FORMERR for malformed names; compression pointers only go backwards") {
    const dns::zone z = test_zone();
    auto rc_of = [&](const std::string& rest, std::uint16_t ar = 0) {
        const dns::outcome o = dns::respond(packet(0, 1, 0, 0, ar, rest), z);
        REQUIRE(o.reply);
        return read_header(*o.reply).rcode();
    };
    CHECK(rc_of(bytes({7, 'e', 'x', 'a'})) == dns::formerr);            // label past the end
    CHECK(rc_of(bytes({3, 'c', 'o', 'm'})) == dns::formerr);            // no terminating zero
    CHECK(rc_of(bytes({3, 'c', 'o', 'm', 0, 0, 1})) == dns::formerr);   // qclass cut short
    CHECK(rc_of(bytes({0x40, 'a', 0, 0, 1, 0, 1})) == dns::formerr);    // reserved label type
    CHECK(rc_of(bytes({0xC0, 12, 0, 1, 0, 1})) == dns::formerr);        // points at itself
    CHECK(rc_of(bytes({0xC0, 14, 0, 0, 1, 0, 1})) == dns::formerr);     // points forwards
    CHECK(rc_of(bytes({0xC0})) == dns::formerr);                        // half a pointer
    CHECK(rc_of(bytes({1, 'a', 0xC0, 12, 0, 1, 0, 1})) == dns::formerr); // a loop through a label
    // A pointer back into the header: offset 4 holds QDCOUNT's high byte, 0: the root name.
    CHECK(rc_of(bytes({0xC0, 4, 0, 1, 0, 1})) == dns::nxdomain);

    // 128 labels of 1 byte: a 257-byte name, longer than 255.
    std::string longname;
    for (int i = 0; i < 128; ++i) longname += bytes({1, 'a'});
    CHECK(rc_of(longname + bytes({0, 0, 1, 0, 1})) == dns::formerr);
    // 127 labels: 255 bytes, the longest legal name (unknown: NXDOMAIN).
    CHECK(rc_of(longname.substr(2) + bytes({0, 0, 1, 0, 1})) == dns::nxdomain);

    // Odd bytes in a label never match a zone name (and come out escaped).
    const dns::outcome o =
        dns::respond(packet(0, 1, 0, 0, 0, bytes({3, 'a', '.', 'b', 0, 0, 1, 0, 1})), z);
    CHECK(o.rc == dns::nxdomain);
    CHECK(o.name == "a\\046b");
}

TEST_CASE("other sections: huge counts, EDNS versions, repeated OPT, classes") {
    const dns::zone z = test_zone();
    auto respond = [&](std::uint16_t an, std::uint16_t ns, std::uint16_t ar, const std::string& rest) {
        return dns::respond(packet(0x0100, 1, an, ns, ar, rest), z);
    };
    const std::string opt0 = bytes({0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0});
    const std::string opt1 = bytes({0, 0, 41, 0x10, 0x00, 0, 1, 0, 0, 0, 0}); // version 1

    dns::outcome o = respond(65535, 65535, 65535, example_q);
    CHECK(o.rc == dns::formerr);
    REQUIRE(o.reply);
    CHECK(read_header(*o.reply).qd == 1); // the question parsed: echoed

    o = respond(0, 0, 1, example_q + opt1);
    CHECK(o.rc == dns::badvers);
    header h = read_header(*o.reply);
    CHECK(h.rcode() == 0); // BADVERS = 16: the low 4 bits in the header, the rest in the OPT
    CHECK(h.ar == 1);
    CHECK(o.reply->substr(o.reply->size() - 11) ==
          bytes({0, 0, 41, 0x04, 0xD0, 1, 0, 0, 0, 0, 0}));

    o = respond(0, 0, 2, example_q + opt0 + opt0);
    CHECK(o.rc == dns::formerr);
    o = respond(1, 0, 0, example_q + opt0); // OPT in the answer section
    CHECK(o.rc == dns::formerr);
    o = respond(0, 0, 1, example_q + bytes({1, 'x', 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0}));
    CHECK(o.rc == dns::formerr); // OPT with a non-root owner
    o = respond(0, 0, 1, example_q + bytes({0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 5, 1, 2}));
    CHECK(o.rc == dns::formerr); // RDATA past the end

    // A TSIG-like other record in the additional section is skipped; trailing bytes ignored.
    o = respond(0, 0, 2, example_q + bytes({0xC0, 12, 0, 250, 0, 255, 0, 0, 0, 0, 0, 2, 9, 9}) + opt0 +
                              "junk");
    CHECK(o.rc == dns::noerror);
    CHECK(o.answer);

    // CHAOS class: REFUSED (not authoritative).
    const std::string chaos = bytes({7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 4, 'b', 'i', 'n', 'd',
                                     0, 0, 16, 0, 3});
    o = respond(0, 0, 0, chaos);
    CHECK(o.rc == dns::refused);
    CHECK(!read_header(*o.reply).aa());
}

TEST_CASE("zone files: NAME IPV4 lines, comments, errors") {
    dns::zone z;
    std::istringstream good("# a comment\n\nfoo.test 1.2.3.4\n  BAR.test.\t5.6.7.8  # trailing\n");
    CHECK(!z.load(good));
    REQUIRE(z.find("foo.test"));
    CHECK(dns::to_string(*z.find("bar.test")) == "5.6.7.8");
    CHECK(z.records().size() == 2);

    for (const char* bad : {"foo 1.2.3\n", "foo 1.2.3.256\n", "foo\n", "foo 1.2.3.4 extra\n",
                            "foo 1.2.3.4.5\n", "foo 01234.1.1.1\n", ". 1.2.3.4\n", "foo a.b.c.d\n"}) {
        dns::zone e;
        std::istringstream in(std::string("ok.test 1.1.1.1\n") + bad);
        auto err = e.load(in);
        REQUIRE(err);
        CHECK(err->find("line 2") != std::string::npos);
    }
    CHECK(dns::parse_ipv4("0.0.0.0"));
    CHECK(dns::parse_ipv4("255.255.255.255"));
    CHECK(!dns::parse_ipv4(""));
    CHECK(!dns::parse_ipv4("1..2.3"));
    CHECK(!dns::encode_name("a..b"));
    CHECK(!dns::encode_name(std::string(64, 'a')));
    CHECK(dns::encode_name(std::string(63, 'a')));
    CHECK(dns::encode_name(".") == std::string(1, '\0'));
}

TEST_CASE("100,000 random and mutated packets: no crash, no out-of-bounds read, sane replies") {
    const dns::zone z = test_zone();
    std::mt19937 rng(20240607);
    auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };

    std::vector<std::string> seeds;
    for (const char* n : {"example.com", "mixed.case.org", "a.b.c.d.e.f", "nothere.example"})
        for (std::uint16_t t : {dns::type_a, dns::type_aaaa, dns::type_any})
            for (bool edns : {false, true}) seeds.push_back(*dns::make_query(1, n, t, true, edns));
    seeds.push_back(packet(0, 1, 0, 0, 0, bytes({0xC0, 4, 0, 1, 0, 1})));

    int replies = 0, drops = 0;
    for (int iter = 0; iter < 100000; ++iter) {
        std::string p;
        if (iter % 3 == 0) { // pure noise, mostly short
            p.resize(pick(iter % 30 == 0 ? 600 : 64));
            for (char& c : p) c = static_cast<char>(pick(256));
        } else { // a valid query, mutated
            p = seeds[pick(seeds.size())];
            const std::size_t edits = 1 + pick(6);
            for (std::size_t e = 0; e < edits && !p.empty(); ++e) {
                switch (pick(6)) {
                case 0: p[pick(p.size())] = static_cast<char>(pick(256)); break;
                case 1: p.resize(pick(p.size() + 1)); break;                      // truncate
                case 2: p.insert(pick(p.size() + 1), 1, static_cast<char>(pick(256))); break;
                case 3: { // a compression pointer anywhere, to anywhere
                    const std::size_t at = pick(p.size());
                    p[at] = static_cast<char>(0xC0 | pick(4));
                    if (at + 1 < p.size()) p[at + 1] = static_cast<char>(pick(256));
                    break;
                }
                case 4: { // a count byte
                    const std::size_t at = 4 + pick(8);
                    if (at < p.size()) p[at] = static_cast<char>(pick(256));
                    break;
                }
                default: p += std::string(pick(16), static_cast<char>(pick(256))); break;
                }
            }
        }
        // An exact-size heap copy: ASan catches any read past its end.
        const std::unique_ptr<char[]> exact(new char[p.size() + 1]);
        std::copy(p.begin(), p.end(), exact.get());
        const dns::outcome o = dns::respond(std::string_view(exact.get(), p.size()), z);
        if (!o.reply) {
            ++drops;
            CHECK(o.rc == -1);
            continue;
        }
        ++replies;
        const header h = read_header(*o.reply);
        REQUIRE(h.qr());
        REQUIRE(h.id == read_header(p).id);
        REQUIRE(h.qd <= 1);
        REQUIRE(h.an <= 1);
        REQUIRE(o.reply->size() <= 12 + 255 + 4 + 16 + 11);
        REQUIRE(well_formed(*o.reply));
        REQUIRE(!dns::respond(*o.reply, z).reply); // a response is never answered
    }
    CHECK(replies > 10000);
    CHECK(drops > 1000);
}
