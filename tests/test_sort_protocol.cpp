// sort_service's wire format (examples/sort_protocol.hpp): the JSON array of numbers as Python's
// json module reads and writes it, the exact int/float comparison, the article's gnome sort, the
// 8-byte big-endian framing, and clear errors for everything else.
#include "../examples/sort_protocol.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

using sort_protocol::number;
using sort_protocol::parse_array;
using sort_protocol::protocol_error;
using sort_protocol::serialize;

namespace {

/// The message of the protocol_error `text` raises (fails the test if none).
std::string error_of(const std::string& text) {
    try {
        parse_array(text);
    } catch (const protocol_error& e) {
        return e.what();
    }
    FAIL("no error for: " << text);
    return {};
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

/// parse then serialize.
std::string roundtrip(const std::string& text) { return serialize(parse_array(text)); }

} // namespace

TEST_CASE("integers, negatives, decimals and exponents are read as Python's json reads them") {
    auto v = parse_array("[5, 3, 9, 1, -2.5, 1e3, 0, -0, 12.50, 1E+2, 2e-3, -7]");
    REQUIRE(v.size() == 12);
    CHECK(v[0].is_integer());
    CHECK(v[0].as_integer() == 5);
    CHECK(v[4].as_double() == -2.5);
    CHECK_FALSE(v[5].is_integer()); // 1e3 is a float in Python: 1000.0
    CHECK(v[5].as_double() == 1000.0);
    CHECK(v[7].is_integer()); // -0 is the int 0
    CHECK(v[7].as_integer() == 0);
    CHECK(v[8].as_double() == 12.5);
    CHECK(v[9].as_double() == 100.0);
    CHECK(v[10].as_double() == 0.002);
    CHECK(v[11].as_integer() == -7);
    // json.dumps of what json.loads read:
    CHECK(serialize(v) == "[5, 3, 9, 1, -2.5, 1000.0, 0, 0, 12.5, 100.0, 0.002, -7]");
}

TEST_CASE("whitespace around every token; the empty array") {
    CHECK(roundtrip(" \t\r\n[ \n1 ,\t2\r, 3 ]\n ") == "[1, 2, 3]");
    CHECK(roundtrip("[]") == "[]");
    CHECK(roundtrip("  [ \n ]  ") == "[]");
    CHECK(parse_array("[]").empty());
    CHECK(roundtrip("[42]") == "[42]");
}

TEST_CASE("doubles are written as Python's repr") {
    using sort_protocol::python_float_repr;
    CHECK(python_float_repr(1000.0) == "1000.0");
    CHECK(python_float_repr(0.1) == "0.1");
    CHECK(python_float_repr(-2.5) == "-2.5");
    CHECK(python_float_repr(0.0) == "0.0");
    CHECK(python_float_repr(-0.0) == "-0.0");
    CHECK(python_float_repr(1e-4) == "0.0001");
    CHECK(python_float_repr(1e-5) == "1e-05");
    CHECK(python_float_repr(1.5e-7) == "1.5e-07");
    CHECK(python_float_repr(1e15) == "1000000000000000.0");
    CHECK(python_float_repr(1e16) == "1e+16");
    CHECK(python_float_repr(1.2345e100) == "1.2345e+100");
    CHECK(python_float_repr(123456789012345680.0) == "1.2345678901234568e+17");
    CHECK(python_float_repr(std::numeric_limits<double>::max()) == "1.7976931348623157e+308");
    CHECK(python_float_repr(5e-324) == "5e-324");
    CHECK(python_float_repr(1.0 / 3) == "0.3333333333333333");
    CHECK(roundtrip("[1e-400, -1e-400, 1e-310]") == "[0.0, -0.0, 1e-310]"); // underflow: 0.0
}

TEST_CASE("64-bit integers are exact at both ends") {
    CHECK(roundtrip("[9223372036854775807, -9223372036854775808]") ==
          "[9223372036854775807, -9223372036854775808]");
}

TEST_CASE("ints and floats compare exactly, as in Python") {
    auto i = [](std::int64_t v) { return number::integer(v); };
    auto d = [](double v) { return number::real(v); };
    CHECK(i(1) < d(1.5));
    CHECK(d(0.5) < i(1));
    CHECK(i(1) == d(1.0));
    CHECK(i(-1) < d(-0.5));
    CHECK(d(-1.5) < i(-1));
    // 2**53 + 1 is not a double: a comparison through double would call these equal.
    const std::int64_t big = (std::int64_t{1} << 53) + 1;
    CHECK(d(9007199254740992.0) < i(big));
    CHECK_FALSE(i(big) == d(9007199254740992.0));
    CHECK(i(std::numeric_limits<std::int64_t>::max()) < d(9223372036854775808.0));
    CHECK(d(-9223372036854775808.0) == i(std::numeric_limits<std::int64_t>::min()));
    CHECK(d(-1e300) < i(std::numeric_limits<std::int64_t>::min()));
    CHECK(i(0) == d(-0.0));
    CHECK(compare(d(2.0), i(3)) == -1);
    CHECK(compare(i(3), d(2.0)) == 1);
}

TEST_CASE("the article's example is sorted as Python sorts it") {
    CHECK(sort_protocol::sort_json("[5, 3, 9, 1, -2.5, 1e3]") == "[-2.5, 1, 3, 5, 9, 1000.0]");
    CHECK(sort_protocol::sort_json("[]") == "[]");
    CHECK(sort_protocol::sort_json("[1]") == "[1]");
    CHECK(sort_protocol::sort_json("[2,1]") == "[1, 2]");
    // stable, like sorted(): 1 and 1.0 keep their order, and so do 2.0 and 2
    CHECK(sort_protocol::sort_json("[2.0, 1.0, 2, 1]") == "[1.0, 1, 2.0, 2]");
    CHECK(sort_protocol::sort_json("[1, 1.0, 0.5]") == "[0.5, 1, 1.0]");
}

TEST_CASE("gnome sort agrees with std::stable_sort on random mixed input") {
    std::mt19937 rng(12345);
    for (int round = 0; round < 20; ++round) {
        std::vector<number> v;
        const int n = static_cast<int>(rng() % 400);
        for (int k = 0; k < n; ++k) {
            if (rng() % 2) v.push_back(number::integer(static_cast<int>(rng() % 200) - 100));
            else v.push_back(number::real((static_cast<int>(rng() % 400) - 200) / 2.0));
        }
        std::vector<number> expected = v;
        std::stable_sort(expected.begin(), expected.end());
        sort_protocol::gnome_sort(v);
        // same values, same int/float kinds, in the same order
        CHECK(serialize(v) == serialize(expected));
    }
}

TEST_CASE("a very long array parses, sorts (already sorted: linear) and serializes") {
    std::string text = "[";
    const int n = 200000;
    for (int k = 0; k < n; ++k) {
        if (k) text += ',';
        text += std::to_string(k - n / 2);
        if (k % 3 == 0) text += ".5";
    }
    text += ']';
    auto v = parse_array(text);
    REQUIRE(v.size() == static_cast<std::size_t>(n));
    CHECK(v.front().as_double() == -100000.5); // "-100000" + ".5"
    CHECK(v.back().as_integer() == n / 2 - 1);
    sort_protocol::gnome_sort(v);
    const std::string out = serialize(v);
    CHECK(out.substr(0, 28) == "[-100000.5, -99999, -99998, ");
    CHECK(parse_array(out).size() == static_cast<std::size_t>(n));
}

TEST_CASE("a set stop flag abandons a long sort") {
    std::vector<number> v;
    for (int k = 5000; k > 0; --k) v.push_back(number::integer(k)); // ~12.5 M swaps
    std::atomic<bool> stop{true};
    CHECK_THROWS_AS(sort_protocol::gnome_sort(v, &stop), sort_protocol::sort_abandoned);
    std::vector<number> w{number::integer(2), number::integer(1)};
    sort_protocol::gnome_sort(w, &stop); // too short to look at the flag
    CHECK(serialize(w) == "[1, 2]");
}

TEST_CASE("nested arrays, other JSON values and garbage are refused with a clear message") {
    CHECK(contains(error_of("[1, [2, 3]]"), "offset 4: expected a number, found '['"));
    CHECK(contains(error_of("[1, \"2\"]"), "expected a number, found '\"'"));
    CHECK(contains(error_of("{\"a\": 1}"), "offset 0: expected a JSON array '[', found '{'"));
    CHECK(contains(error_of("42"), "expected a JSON array"));
    CHECK(contains(error_of(""), "empty request"));
    CHECK(contains(error_of("   "), "empty request"));
    CHECK(contains(error_of("[1, 2"), "expected ',' or ']', found end of input"));
    CHECK(contains(error_of("[1 2]"), "expected ',' or ']', found '2'"));
    CHECK(contains(error_of("[1,]"), "expected a number, found ']'"));
    CHECK(contains(error_of("[,1]"), "expected a number, found ','"));
    CHECK(contains(error_of("[1] x"), "unexpected data after the array: 'x'"));
    CHECK(contains(error_of("[1][2]"), "unexpected data after the array"));
    CHECK(contains(error_of("[true]"), "expected a number, found 't'"));
    CHECK(contains(error_of("[null]"), "expected a number"));
    CHECK(contains(error_of("[\xc3\xa9]"), "found byte 0xc3"));
    CHECK(contains(error_of("hello\x01"), "found 'h'"));
}

TEST_CASE("malformed numbers are refused") {
    CHECK(contains(error_of("[01]"), "leading zero"));
    CHECK(contains(error_of("[-]"), "expected a number, found ']'"));
    CHECK(contains(error_of("[1.]"), "expected a digit after '.'"));
    CHECK(contains(error_of("[.5]"), "expected a number, found '.'"));
    CHECK(contains(error_of("[+1]"), "expected a number, found '+'"));
    CHECK(contains(error_of("[1e]"), "expected a digit in the exponent"));
    CHECK(contains(error_of("[1e+]"), "expected a digit in the exponent"));
    CHECK(contains(error_of("[0x10]"), "expected ',' or ']', found 'x'"));
    CHECK(contains(error_of("[NaN]"), "NaN and Infinity cannot be sorted"));
    CHECK(contains(error_of("[-Infinity]"), "NaN and Infinity cannot be sorted"));
    CHECK(contains(error_of("[1e400]"), "out of the double range"));
    CHECK(contains(error_of("[-1.5e309]"), "out of the double range"));
    CHECK(contains(error_of("[9223372036854775808]"), "out of the 64-bit range"));
    CHECK(contains(error_of("[-9223372036854775809]"), "out of the 64-bit range"));
}

TEST_CASE("framing: 8-byte big-endian length, then the payload") {
    using sort_protocol::decode_length;
    using sort_protocol::encode_length;
    CHECK(encode_length(0) == std::string(8, '\0'));
    CHECK(encode_length(0x0102030405060708ULL) == "\x01\x02\x03\x04\x05\x06\x07\x08");
    CHECK(encode_length(300) == std::string("\0\0\0\0\0\0\x01\x2c", 8));
    CHECK(decode_length(std::string("\0\0\0\0\0\0\x01\x2c", 8)) == 300);
    CHECK(decode_length("\xff\xff\xff\xff\xff\xff\xff\xff") == UINT64_MAX);
    for (std::uint64_t n : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{255},
                            std::uint64_t{256}, sort_protocol::default_max_size, UINT64_MAX})
        CHECK(decode_length(encode_length(n)) == n);
    CHECK_THROWS_AS(decode_length("1234567"), protocol_error);
    CHECK_THROWS_AS(decode_length("123456789"), protocol_error);
    const std::string f = sort_protocol::frame("[1, 2]");
    CHECK(f.size() == 8 + 6);
    CHECK(decode_length(std::string_view(f).substr(0, 8)) == 6);
    CHECK(f.substr(8) == "[1, 2]");
    CHECK(sort_protocol::frame("") == std::string(8, '\0'));
}
