#pragma once
// The wire format of sort_service (seeds/003, "sorting as a service"), kept apart from the
// networking so that tests/test_sort_protocol.cpp can test it on its own:
//
//   request and answer = an 8-byte big-endian length, then that many bytes of JSON: an array of
//   numbers, e.g. [5, 3, 9, 1, -2.5, 1e3] -> [-2.5, 1, 3, 5, 9, 1000.0]
//
// The article's Python does `json.loads`, a gnome sort, `json.dumps`; this header does the same,
// as Python does it, so that a Python client sees exactly what the Python server would send:
// - a number without fraction or exponent is an integer (64-bit here; Python's are unbounded, a
//   larger one is refused rather than silently rounded), anything else a double;
// - integers and doubles compare exactly (1 < 1.5, 2**53 + 1 > 2.0**53), and the gnome sort is
//   stable, as Python's is, so 1 and 1.0 keep their order;
// - the answer is `json.dumps(nums)`: ", " between numbers, doubles written as Python's repr
//   (1000.0, 1e-05, 1e+16, -0.0).
// Strict JSON only: NaN and Infinity (which Python's json accepts) are refused — a NaN would make
// the article's gnome sort loop forever — and so is anything that is not a flat array of numbers.

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace sort_protocol {

/// Size of the length header of every frame.
inline constexpr std::size_t header_size = 8;
/// The largest request the server accepts by default (its `--max-size`): 16 MiB.
inline constexpr std::uint64_t default_max_size = std::uint64_t{16} << 20;

/// A request that is not a flat JSON array of numbers, or a bad frame. The message says what
/// and where ("offset 12: expected a number, found '['").
class protocol_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// The sort was abandoned because the server is shutting down.
class sort_abandoned : public std::runtime_error {
public:
    sort_abandoned() : std::runtime_error("sort abandoned: the server is shutting down") {}
};

/// A JSON number as Python's json module keeps it: an int or a float. Never NaN or infinite.
/// (Two plain members rather than a std::variant: the gnome sort compares a lot, and this keeps
/// a Debug build's comparisons cheap.)
class number {
public:
    /// An integer, as `json.loads("3")` gives.
    static number integer(std::int64_t v) noexcept { return number(true, v, 0); }
    /// A float, as `json.loads("3.0")` gives. `v` must be finite.
    static number real(double v) noexcept { return number(false, 0, v); }

    bool is_integer() const noexcept { return m_is_integer; }
    /// The integer (0 for a float).
    std::int64_t as_integer() const noexcept { return m_integer; }
    /// The value as a double (rounded for an integer beyond 2**53).
    double as_double() const noexcept {
        return m_is_integer ? static_cast<double>(m_integer) : m_double;
    }

    /// -1, 0 or 1 as `a` is less than, equal to or greater than `b`, compared exactly (as
    /// Python compares an int with a float: no rounding of either).
    friend int compare(const number& a, const number& b) noexcept {
        if (a.m_is_integer == b.m_is_integer) {
            if (a.m_is_integer) return three_way(a.m_integer, b.m_integer);
            return three_way(a.m_double, b.m_double);
        }
        if (a.m_is_integer) return compare_int_double(a.m_integer, b.m_double);
        return -compare_int_double(b.m_integer, a.m_double);
    }
    friend bool operator<(const number& a, const number& b) noexcept { return compare(a, b) < 0; }
    friend bool operator>=(const number& a, const number& b) noexcept { return compare(a, b) >= 0; }
    /// Numeric equality (1 == 1.0), as in Python.
    friend bool operator==(const number& a, const number& b) noexcept { return compare(a, b) == 0; }

private:
    number(bool is_integer, std::int64_t i, double d) noexcept
        : m_is_integer(is_integer), m_integer(i), m_double(d) {}

    template <class T>
    static int three_way(T a, T b) noexcept {
        return a < b ? -1 : (b < a ? 1 : 0);
    }
    /// i <=> d for a finite d, exactly: split d into its integral part (exact in int64 when it
    /// is in range) and its fraction.
    static int compare_int_double(std::int64_t i, double d) noexcept {
        constexpr double two_63 = 9223372036854775808.0; // 2**63, exact as a double
        if (d >= two_63) return -1;
        if (d < -two_63) return 1;
        const double whole = std::trunc(d);
        const auto w = static_cast<std::int64_t>(whole); // exact: -2**63 <= whole < 2**63
        if (i != w) return i < w ? -1 : 1;
        const double frac = d - whole; // exact
        return frac > 0 ? -1 : (frac < 0 ? 1 : 0);
    }

    bool m_is_integer;
    std::int64_t m_integer;
    double m_double;
};

namespace detail {

inline bool is_json_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
inline bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

/// "'['", "end of input", "byte 0xc3": what was found where something else was expected.
inline std::string describe(std::string_view text, std::size_t pos) {
    if (pos >= text.size()) return "end of input";
    const auto c = static_cast<unsigned char>(text[pos]);
    if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
    static const char hex[] = "0123456789abcdef";
    return std::string("byte 0x") + hex[c >> 4] + hex[c & 15];
}

[[noreturn]] inline void fail(std::size_t pos, const std::string& what) {
    throw protocol_error("bad request at offset " + std::to_string(pos) + ": " + what);
}

inline void skip_space(std::string_view text, std::size_t& pos) noexcept {
    while (pos < text.size() && is_json_space(text[pos])) ++pos;
}

/// The decimal exponent of the first significant digit of a well-formed JSON number (2 for
/// "123", -3 for "0.00123", 400 for "1e400"), saturated; only its sign is used.
inline long decimal_magnitude(std::string_view num) {
    if (num.front() == '-') num.remove_prefix(1);
    const std::size_t e = std::min(num.find_first_of("eE"), num.size());
    const std::string_view mantissa = num.substr(0, e);
    const std::size_t point = std::min(mantissa.find('.'), mantissa.size());
    long place = static_cast<long>(point) - 1; // the place of the mantissa's first digit
    for (char c : mantissa) {
        if (c == '.') continue;
        if (c != '0') break;
        --place;
    }
    long exp = 0;
    if (e < num.size()) {
        std::string_view ev = num.substr(e + 1);
        const bool negative = ev.front() == '-';
        if (ev.front() == '+' || ev.front() == '-') ev.remove_prefix(1);
        for (char c : ev) exp = std::min(exp * 10 + (c - '0'), 1000000L);
        if (negative) exp = -exp;
    }
    return place + exp;
}

/// One JSON number at `pos` (RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?).
inline number parse_number(std::string_view text, std::size_t& pos) {
    const std::size_t start = pos;
    bool integral = true;
    if (pos < text.size() && text[pos] == '-') ++pos;
    if (pos >= text.size() || !is_digit(text[pos])) {
        const std::string_view rest = text.substr(start);
        if (rest.starts_with("NaN") || rest.starts_with("Infinity") ||
            rest.starts_with("-Infinity"))
            fail(start, "NaN and Infinity cannot be sorted");
        fail(start, "expected a number, found " + describe(text, pos));
    }
    if (text[pos] == '0') {
        ++pos;
        if (pos < text.size() && is_digit(text[pos])) fail(start, "a number has a leading zero");
    } else {
        while (pos < text.size() && is_digit(text[pos])) ++pos;
    }
    if (pos < text.size() && text[pos] == '.') {
        integral = false;
        ++pos;
        if (pos >= text.size() || !is_digit(text[pos]))
            fail(pos, "expected a digit after '.', found " + describe(text, pos));
        while (pos < text.size() && is_digit(text[pos])) ++pos;
    }
    if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
        integral = false;
        ++pos;
        if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) ++pos;
        if (pos >= text.size() || !is_digit(text[pos]))
            fail(pos, "expected a digit in the exponent, found " + describe(text, pos));
        while (pos < text.size() && is_digit(text[pos])) ++pos;
    }
    const char* first = text.data() + start;
    const char* last = text.data() + pos;
    if (integral) {
        std::int64_t v = 0;
        auto [end, ec] = std::from_chars(first, last, v);
        if (ec != std::errc() || end != last)
            fail(start, "integer out of the 64-bit range: " + std::string(first, last));
        return number::integer(v);
    }
    double v = 0;
    auto [end, ec] = std::from_chars(first, last, v);
    if (end != last || (ec != std::errc() && ec != std::errc::result_out_of_range))
        fail(start, "unreadable number: " + std::string(first, last));
    // result_out_of_range leaves `v` alone and means an overflow (refused: it would be inf) or an
    // underflow (Python reads 1e-400 as 0.0, and so do we); the decimal magnitude tells which.
    if (ec == std::errc::result_out_of_range) {
        if (decimal_magnitude(std::string_view(first, pos - start)) > 0)
            fail(start, "number out of the double range: " + std::string(first, last));
        v = text[start] == '-' ? -0.0 : 0.0;
    }
    if (!std::isfinite(v)) fail(start, "number out of the double range: " + std::string(first, last));
    return number::real(v);
}

} // namespace detail

/// `json.loads(text)` for a flat array of numbers (whitespace allowed around every token, as
/// Python's json allows). Throws `protocol_error` for anything else: another JSON value, a
/// nested array, a string, NaN/Infinity, a trailing comma, data after the array, an integer
/// beyond 64 bits, a number beyond the double range.
inline std::vector<number> parse_array(std::string_view text) {
    std::size_t pos = 0;
    detail::skip_space(text, pos);
    if (pos >= text.size()) detail::fail(pos, "empty request, expected a JSON array");
    if (text[pos] != '[')
        detail::fail(pos, "expected a JSON array '[', found " + detail::describe(text, pos));
    ++pos;
    std::vector<number> nums;
    detail::skip_space(text, pos);
    if (pos < text.size() && text[pos] == ']') {
        ++pos;
    } else {
        for (;;) {
            detail::skip_space(text, pos);
            nums.push_back(detail::parse_number(text, pos));
            detail::skip_space(text, pos);
            if (pos < text.size() && text[pos] == ',') {
                ++pos;
                continue;
            }
            if (pos < text.size() && text[pos] == ']') {
                ++pos;
                break;
            }
            detail::fail(pos, "expected ',' or ']', found " + detail::describe(text, pos));
        }
    }
    detail::skip_space(text, pos);
    if (pos != text.size())
        detail::fail(pos, "unexpected data after the array: " + detail::describe(text, pos));
    return nums;
}

/// Python's `repr(float)` of a finite double: the shortest digits that read back as the same
/// double, in fixed notation with at least one decimal ("1000.0", "0.0001") when the decimal
/// exponent is in [-4, 16), otherwise in scientific notation ("1e-05", "1.5e+16").
inline std::string python_float_repr(double d) {
    if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
    (void)ec; // 64 bytes always suffice for a double
    const std::string_view s(buf, static_cast<std::size_t>(end - buf)); // "-1.2345e+17"
    const bool negative = s.front() == '-';
    const std::size_t e_pos = s.find('e');
    std::string digits;
    for (char c : s.substr(negative ? 1 : 0, e_pos - (negative ? 1 : 0)))
        if (c != '.') digits += c;
    int exp = 0;
    std::string_view e = s.substr(e_pos + 1);
    if (e.front() == '+') e.remove_prefix(1);
    std::from_chars(e.data(), e.data() + e.size(), exp);

    std::string out = negative ? "-" : "";
    const auto n = static_cast<int>(digits.size());
    if (exp >= -4 && exp < 16) {
        const int point = exp + 1; // digits before the decimal point
        if (point <= 0) {
            out += "0." + std::string(static_cast<std::size_t>(-point), '0') + digits;
        } else if (point >= n) {
            out += digits + std::string(static_cast<std::size_t>(point - n), '0') + ".0";
        } else {
            out += digits.substr(0, static_cast<std::size_t>(point)) + "." +
                   digits.substr(static_cast<std::size_t>(point));
        }
    } else {
        out += digits.substr(0, 1);
        if (n > 1) out += "." + digits.substr(1);
        out += exp < 0 ? "e-" : "e+";
        const int a = exp < 0 ? -exp : exp;
        if (a < 10) out += '0';
        out += std::to_string(a);
    }
    return out;
}

/// `json.dumps(nums)`: "[1, 2.5, 1000.0]", "[]".
inline std::string serialize(const std::vector<number>& nums) {
    std::string out = "[";
    for (std::size_t i = 0; i < nums.size(); ++i) {
        if (i) out += ", ";
        if (nums[i].is_integer()) out += std::to_string(nums[i].as_integer());
        else out += python_float_repr(nums[i].as_double());
    }
    out += ']';
    return out;
}

/// The article's gnome sort ("stupid sort"), line by line: O(n²) comparisons and swaps — fine
/// for the article's few numbers, seconds for 10^5 of them, which is why it runs off the loop.
/// Stable. If `stop` is given, it is checked every 2^20 steps and the sort throws
/// `sort_abandoned` once it is set (the server sets it when shutting down, so that its exit does
/// not wait for a long sort).
inline void gnome_sort(std::vector<number>& nums, const std::atomic<bool>* stop = nullptr) {
    std::size_t curr = 1;
    std::uint32_t steps = 0;
    while (curr < nums.size()) {
        if (stop && (++steps & 0xfffff) == 0 && stop->load(std::memory_order_relaxed))
            throw sort_abandoned();
        if (nums[curr] >= nums[curr - 1]) {
            ++curr;
        } else {
            std::swap(nums[curr], nums[curr - 1]);
            if (curr > 1) --curr;
        }
    }
}

/// The article's `sort_in_process(data)`: JSON in, sorted JSON out. Throws `protocol_error` for
/// a bad request, `sort_abandoned` as `gnome_sort`.
inline std::string sort_json(std::string_view data, const std::atomic<bool>* stop = nullptr) {
    std::vector<number> nums = parse_array(data);
    gnome_sort(nums, stop);
    return serialize(nums);
}

/// `len(data).to_bytes(8, 'big')`.
inline std::string encode_length(std::uint64_t n) {
    std::string out(header_size, '\0');
    for (std::size_t i = 0; i < header_size; ++i)
        out[header_size - 1 - i] = static_cast<char>((n >> (8 * i)) & 0xff);
    return out;
}

/// `int.from_bytes(header, 'big')`. Throws `protocol_error` unless `header` has 8 bytes.
inline std::uint64_t decode_length(std::string_view header) {
    if (header.size() != header_size)
        throw protocol_error("bad frame header: " + std::to_string(header.size()) +
                             " bytes instead of 8");
    std::uint64_t n = 0;
    for (char c : header) n = (n << 8) | static_cast<unsigned char>(c);
    return n;
}

/// A whole frame: the 8-byte length, then `payload`.
inline std::string frame(std::string_view payload) {
    std::string out = encode_length(payload.size());
    out.append(payload);
    return out;
}

} // namespace sort_protocol
