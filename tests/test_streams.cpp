// Streams: stream_reader (asyncio.StreamReader semantics, fed by hand), stream_writer and
// stream_protocol over a fake transport, then open_connection / start_server over loopback.
#include <corio/streams.hpp>

#include <doctest/doctest.h>

#include "support/helpers.hpp"

#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/locks.hpp>
#include <corio/testing.hpp>
#include <corio/timeouts.hpp>

#include <algorithm>
#include <any>
#include <cerrno>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace std::chrono_literals;
using corio::stream_reader;
using corio::stream_writer;
using corio::task;

namespace {

// --- A transport that records what the streams do to it -----------------------------------------

struct fake_transport : corio::transport {
    std::shared_ptr<corio::protocol> proto;
    std::string written;
    std::size_t buffered = 0; ///< written and not "sent" yet (flush() sends)
    std::size_t high = 64 * 1024;
    std::size_t low = 16 * 1024;
    bool closing = false;
    bool eof_written = false;
    bool reading = true;
    bool writing_paused = false;
    int pauses = 0;
    int resumes = 0;
    int closes = 0;

    explicit fake_transport(std::shared_ptr<corio::protocol> p) : proto(std::move(p)) {}

    void close() override {
        ++closes;
        if (closing) return;
        closing = true;
        auto self = shared_from_this();
        corio::get_running_loop().call_soon([this, self] { proto->connection_lost(nullptr); });
    }
    bool is_closing() const noexcept override { return closing; }
    std::any get_extra_info(std::string_view name) const override {
        if (name == "peername") return corio::address{"127.0.0.1", 4242};
        if (name == "sockname") return corio::address{"127.0.0.1", 80};
        if (name == "socket") return 7;
        return {};
    }
    void pause_reading() override {
        reading = false;
        ++pauses;
    }
    void resume_reading() override {
        reading = true;
        ++resumes;
    }
    bool is_reading() const noexcept override { return reading && !closing; }
    void write(std::string_view d) override {
        if (eof_written) throw std::runtime_error("Cannot call write() after write_eof()");
        if (closing) return;
        written.append(d);
        buffered += d.size();
        if (!writing_paused && buffered > high) {
            writing_paused = true;
            proto->pause_writing();
        }
    }
    void write_eof() override { eof_written = true; }
    bool can_write_eof() const noexcept override { return true; }
    void abort() override { lose(nullptr); }
    std::size_t get_write_buffer_size() const noexcept override { return buffered; }
    void set_write_buffer_limits(std::optional<std::size_t> h, std::optional<std::size_t> l) override {
        high = h.value_or(64 * 1024);
        low = l.value_or(high / 4);
    }
    std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override {
        return {low, high};
    }

    /// The kernel took `n` bytes.
    void flush(std::size_t n) {
        buffered -= std::min(n, buffered);
        if (writing_paused && buffered <= low) {
            writing_paused = false;
            proto->resume_writing();
        }
    }
    /// The connection dies now (a reset: exc is the error).
    void lose(std::exception_ptr exc) {
        closing = true;
        proto->connection_lost(exc);
    }
};

struct conn {
    std::shared_ptr<fake_transport> tr;
    std::shared_ptr<corio::stream_protocol> proto;
    stream_reader reader;
    stream_writer writer;
};

conn make_conn(std::size_t limit = corio::default_stream_limit) {
    stream_reader r(limit);
    auto p = std::make_shared<corio::stream_protocol>(r);
    auto t = std::make_shared<fake_transport>(p);
    p->connection_made(*t);
    stream_writer w(t, p, r);
    return {t, p, r, w};
}

std::exception_ptr reset_error() {
    return std::make_exception_ptr(
        std::system_error(ECONNRESET, std::generic_category(), "Connection reset by peer"));
}

template <class T>
task<> cancel_after_start(corio::task_handle<T>& t) {
    co_await corio::sleep(0s);
    co_await corio::sleep(0s);
    CHECK(!t.done());
    t.cancel();
    co_await t.wait_done();
    CHECK(t.cancelled());
}

} // namespace

// --- stream_reader ------------------------------------------------------------------------------

TEST_CASE("reader: read(n) returns what is buffered, up to n; read() reads to EOF") {
    corio::testing::run([]() -> task<> {
        stream_reader r;
        r.feed_data("hello ");
        r.feed_data("world");
        CHECK(co_await r.read(3) == "hel");
        CHECK(r.buffered() == 8);
        CHECK(co_await r.read(100) == "lo world");
        CHECK(co_await r.read(0) == "");
        auto t = corio_test::spawn([r]() -> task<std::string> { co_return co_await r.read(); });
        co_await corio::sleep(0s);
        r.feed_data("a");
        co_await corio::sleep(0s);
        r.feed_data("b");
        CHECK(!r.at_eof());
        r.feed_eof();
        CHECK(co_await t == "ab");
        CHECK(r.at_eof());
        CHECK(co_await r.read(10) == "");
        CHECK(co_await r.read() == "");
    });
}

TEST_CASE("reader: read(n) waits for data, and gives \"\" at EOF") {
    corio::testing::run([]() -> task<> {
        stream_reader r;
        auto t = corio_test::spawn([r]() -> task<std::string> { co_return co_await r.read(10); });
        co_await corio::sleep(0s);
        CHECK(!t.done());
        r.feed_data("xy");
        CHECK(co_await t == "xy");
        auto t2 = corio_test::spawn([r]() -> task<std::string> { co_return co_await r.read(10); });
        co_await corio::sleep(0s);
        r.feed_eof();
        CHECK(co_await t2 == "");
    });
}

TEST_CASE("reader: readexactly, and incomplete_read_error at EOF") {
    corio::testing::run([]() -> task<> {
        stream_reader r;
        auto t = corio_test::spawn([r]() -> task<std::string> { co_return co_await r.readexactly(5); });
        r.feed_data("ab");
        co_await corio::sleep(0s);
        r.feed_data("cdefg");
        CHECK(co_await t == "abcde");
        CHECK(co_await r.readexactly(0) == "");
        r.feed_eof();
        try {
            (void)co_await r.readexactly(4);
            FAIL("no exception");
        } catch (const corio::incomplete_read_error& e) {
            CHECK(e.partial() == "fg");
            CHECK(e.expected() == 4);
            CHECK(std::string(e.what()) == "2 bytes read on a total of 4 expected bytes");
        }
        CHECK(r.at_eof()); // the partial bytes were consumed
    });
}

TEST_CASE("reader: readline, with the partial last line at EOF") {
    corio::testing::run([]() -> task<> {
        stream_reader r;
        r.feed_data("one\ntw");
        CHECK(co_await r.readline() == "one\n");
        auto t = corio_test::spawn([r]() -> task<std::string> { co_return co_await r.readline(); });
        co_await corio::sleep(0s);
        CHECK(!t.done());
        r.feed_data("o\nthree");
        CHECK(co_await t == "two\n");
        r.feed_eof();
        CHECK(co_await r.readline() == "three");
        CHECK(co_await r.readline() == "");
        CHECK(r.at_eof());
    });
}

TEST_CASE("reader: readuntil with a separator split across chunks") {
    corio::testing::run([]() -> task<> {
        stream_reader r;
        auto t = corio_test::spawn([r]() -> task<std::string> { co_return co_await r.readuntil("\r\n\r\n"); });
        for (const char* part : {"GET / HTTP/1.1\r", "\nHost: x\r\n", "\r", "\n", "rest"}) {
            co_await corio::sleep(0s);
            r.feed_data(part);
        }
        CHECK(co_await t == "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(r.buffered() == 4);
        CHECK_THROWS_AS((void)co_await r.readuntil(""), std::invalid_argument);
        r.feed_eof();
        try {
            (void)co_await r.readuntil("!");
            FAIL("no exception");
        } catch (const corio::incomplete_read_error& e) {
            CHECK(e.partial() == "rest");
            CHECK(e.expected() == corio::incomplete_read_error::unknown_size);
            CHECK(std::string(e.what()) == "4 bytes read on a total of undefined expected bytes");
        }
        CHECK(r.at_eof());
    });
}

TEST_CASE("reader: readuntil over the limit leaves the data buffered (asyncio's consumed)") {
    corio::testing::run([]() -> task<> {
        stream_reader r(4);
        // Separator found, but the chunk before it is longer than the limit.
        r.feed_data("abcdefg\nxy");
        try {
            (void)co_await r.readuntil("\n");
            FAIL("no exception");
        } catch (const corio::limit_overrun_error& e) {
            CHECK(std::string(e.what()) == "Separator is found, but chunk is longer than limit");
            CHECK(e.consumed() == 7);
        }
        CHECK(r.buffered() == 10);
        CHECK(co_await r.readexactly(8) == "abcdefg\n");
        // Separator not found within the limit: consumed = buflen + 1 - seplen.
        r.feed_data("zzzz");
        try {
            (void)co_await r.readuntil("!!");
            FAIL("no exception");
        } catch (const corio::limit_overrun_error& e) {
            CHECK(std::string(e.what()) == "Separator is not found, and chunk exceed the limit");
            CHECK(e.consumed() == 5);
        }
        CHECK(co_await r.read(100) == "xyzzzz");
        // Exactly at the limit is fine.
        r.feed_data("abcd\n");
        CHECK(co_await r.readuntil() == "abcd\n");
    });
}

TEST_CASE("reader: readline over the limit drops what asyncio drops, then throws") {
    corio::testing::run([]() -> task<> {
        stream_reader r(4);
        // Newline seen: the long line and its newline are dropped, the rest stays.
        r.feed_data("abcdefg\nok\n");
        CHECK_THROWS_AS((void)co_await r.readline(), corio::limit_overrun_error);
        CHECK(co_await r.readline() == "ok\n");
        // No newline within the limit: the whole buffer is dropped; the rest of the long line
        // arrives later and comes out as the next line (asyncio does the same).
        r.feed_data("0123456789");
        CHECK_THROWS_AS((void)co_await r.readline(), corio::limit_overrun_error);
        CHECK(r.buffered() == 0);
        r.feed_data("ab\nc\n");
        CHECK(co_await r.readline() == "ab\n");
        CHECK(co_await r.readline() == "c\n");
    });
}

TEST_CASE("reader: a second coroutine waiting on the same reader gets std::runtime_error") {
    corio::testing::run([]() -> task<> {
        stream_reader r;
        auto first = corio_test::spawn([r]() -> task<std::string> { co_return co_await r.readline(); });
        co_await corio::sleep(0s);
        try {
            (void)co_await r.read(5);
            FAIL("no exception");
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()) ==
                  "read() called while another coroutine is already waiting for incoming data");
        }
        CHECK_THROWS_WITH_AS((void)co_await r.readexactly(3),
                             "readexactly() called while another coroutine is already waiting for incoming data",
                             std::runtime_error);
        // Reading what is already buffered needs no wait, so it is allowed (as asyncio).
        r.feed_data("x\n");
        CHECK(co_await first == "x\n");
    });
}

TEST_CASE("reader: set_exception fails the waiting read and every later one") {
    corio::testing::run([]() -> task<> {
        stream_reader r;
        r.feed_data("buffered");
        CHECK(!r.exception());
        auto t = corio_test::spawn([r]() -> task<std::string> { co_return co_await r.readexactly(100); });
        co_await corio::sleep(0s);
        r.set_exception(reset_error());
        co_await t.wait_done();
        CHECK_THROWS_AS(t.result(), std::system_error);
        CHECK(r.exception());
        CHECK_THROWS_AS((void)co_await r.read(1), std::system_error);
        CHECK_THROWS_AS((void)co_await r.readline(), std::system_error);
        CHECK_THROWS_AS((void)co_await r.readuntil("x"), std::system_error);
        CHECK_THROWS_AS((void)co_await r.readexactly(1), std::system_error);
    });
}

TEST_CASE("reader: misuse") {
    CHECK_THROWS_AS(stream_reader(0), std::invalid_argument);
    corio::testing::run([]() -> task<> {
        stream_reader r;
        r.feed_eof();
        CHECK_THROWS_AS(r.feed_data("x"), std::logic_error);
        co_return;
    });
}

TEST_CASE("reader: a read cancelled at its await loses no data") {
    corio::testing::run([]() -> task<> {
        stream_reader r;
        r.feed_data("partial line, no newline; ");
        std::vector<corio::task_handle<std::string>> reads;
        reads.push_back(corio_test::spawn([r]() -> task<std::string> { co_return co_await r.readline(); }));
        co_await cancel_after_start(reads.back());
        reads.push_back(corio_test::spawn([r]() -> task<std::string> { co_return co_await r.readuntil("END"); }));
        co_await cancel_after_start(reads.back());
        reads.push_back(corio_test::spawn([r]() -> task<std::string> { co_return co_await r.readexactly(1000); }));
        co_await cancel_after_start(reads.back());
        reads.push_back(corio_test::spawn([r]() -> task<std::string> { co_return co_await r.read(); }));
        r.feed_data("more; ");
        co_await cancel_after_start(reads.back());
        CHECK(r.buffered() == 32);
        // read(n) with an empty buffer, cancelled: then the data goes to the next read.
        CHECK(co_await r.read(1000) == "partial line, no newline; more; ");
        reads.push_back(corio_test::spawn([r]() -> task<std::string> { co_return co_await r.read(10); }));
        co_await cancel_after_start(reads.back());
        r.feed_data("after\n");
        CHECK(co_await r.readline() == "after\n");
    });
}

TEST_CASE("reader: data arriving together with the cancellation stays buffered") {
    corio::testing::run([]() -> task<> {
        stream_reader r;
        auto t = corio_test::spawn([r]() -> task<std::string> { co_return co_await r.readline(); });
        co_await corio::sleep(0s);
        r.feed_data("line\n"); // wakes t (queued) ...
        t.cancel();            // ... and cancels it before it runs
        co_await t.wait_done();
        CHECK(t.cancelled());
        CHECK(co_await r.readline() == "line\n");
    });
}

TEST_CASE("reader: a read whose frame is destroyed while waiting unregisters") {
    stream_reader r; // a reader needs no loop: it outlives this one
    {
        corio::event_loop loop;
        corio_test::report_recorder rec;
        rec.attach(loop);
        auto t = loop.create_task(r.readline());
        loop.run_until_complete(corio::sleep(0s)); // t waits for data now
        CHECK(!t.done());
        loop.close(); // destroys t's frame while it waits
        CHECK(rec.count("Task was destroyed but it is pending!") == 1);
    }
    r.feed_data("ok\n"); // nobody to wake (ASan checks the waiter is not touched)
    corio::testing::run([r]() -> task<> { CHECK(co_await r.readline() == "ok\n"); });
}

TEST_CASE("reader: flow control pauses the transport past 2*limit, resumes at <= limit") {
    corio::testing::run([]() -> task<> {
        conn c = make_conn(10);
        stream_reader r = c.reader;
        r.feed_data(std::string(20, 'a'));
        CHECK(c.tr->pauses == 0); // 20 is not more than 2 * 10
        r.feed_data("b");
        CHECK(c.tr->pauses == 1);
        CHECK(!c.tr->reading);
        r.feed_data("c"); // already paused
        CHECK(c.tr->pauses == 1);
        CHECK((co_await r.read(11)).size() == 11); // 11 left: still > limit
        CHECK(c.tr->resumes == 0);
        CHECK((co_await r.read(1)).size() == 1); // 10 left
        CHECK(c.tr->resumes == 1);
        CHECK(c.tr->reading);
        // readexactly(n) with n > 2 * limit: waiting resumes the paused transport.
        r.feed_data(std::string(20, 'x')); // 30 buffered: paused again
        CHECK(c.tr->pauses == 2);
        auto t = corio_test::spawn([r]() -> task<std::string> { co_return co_await r.readexactly(40); });
        co_await corio::sleep(0s);
        CHECK(c.tr->reading);
        r.feed_data(std::string(15, 'y')); // paused once more, and woken
        co_await corio::sleep(0s);
        CHECK(c.tr->reading); // waited again: resumed again
        CHECK((co_await t).size() == 40);
        CHECK(r.buffered() == 5);
    });
}

TEST_CASE("reader: read() until EOF resumes a paused transport and keeps all the data") {
    corio::testing::run([]() -> task<> {
        conn c = make_conn(4);
        stream_reader r = c.reader;
        auto t = corio_test::spawn([r]() -> task<std::string> { co_return co_await r.read(); });
        std::string all;
        for (int i = 0; i < 10; ++i) {
            co_await corio::sleep(0s);
            std::string chunk(7, static_cast<char>('a' + i));
            all += chunk;
            r.feed_data(chunk);
        }
        co_await corio::sleep(0s);
        CHECK(c.tr->reading);
        r.feed_eof();
        CHECK(co_await t == all);
    });
}

// --- stream_protocol ----------------------------------------------------------------------------

TEST_CASE("protocol: feeds the reader; EOF keeps the transport open; loss ends the reader") {
    corio::testing::run([]() -> task<> {
        conn c = make_conn();
        c.proto->data_received("abc");
        CHECK(c.proto->eof_received());
        CHECK(co_await c.reader.read() == "abc");
        CHECK(c.reader.at_eof());
        CHECK(!c.tr->closing);

        conn d = make_conn();
        d.proto->data_received("xyz");
        d.tr->lose(reset_error());
        CHECK(d.proto->is_connection_lost());
        CHECK(d.proto->connection_error());
        CHECK_THROWS_AS((void)co_await d.reader.read(), std::system_error);
    });
}

TEST_CASE("protocol: the connected callback gets the reader and a writer over the transport") {
    corio::testing::run([]() -> task<> {
        stream_reader r;
        std::vector<stream_writer> got;
        auto p = std::make_shared<corio::stream_protocol>(
            r, [&got, r](stream_reader rr, stream_writer w) {
                CHECK(rr == r);
                got.push_back(w);
            });
        auto t = std::make_shared<fake_transport>(p);
        p->connection_made(*t);
        REQUIRE(got.size() == 1);
        got[0].write("hi");
        CHECK(t->written == "hi");
        CHECK(got[0].transport() == t);
        CHECK(got[0].protocol() == p);
        got.clear(); // the last writer handle: closes the transport
        CHECK(t->closing);
        co_await corio::sleep(0s);
        CHECK(p->is_connection_lost());
        CHECK_THROWS_AS(corio::stream_protocol(std::nullopt, [](stream_reader, stream_writer) {}),
                        std::invalid_argument);
    });
}

// --- stream_writer ------------------------------------------------------------------------------

TEST_CASE("writer: write and writelines go to the transport at once; extra info") {
    corio::testing::run([]() -> task<> {
        conn c = make_conn();
        c.writer.write("GET / HTTP/1.1\r\n");
        std::vector<std::string> lines{"Host: x\r\n", "\r\n"};
        c.writer.writelines(lines);
        CHECK(c.tr->written == "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(c.writer.peername().to_string() == "127.0.0.1:4242");
        CHECK(c.writer.sockname().port() == 80);
        CHECK(std::any_cast<int>(c.writer.get_extra_info("socket")) == 7);
        CHECK(!c.writer.get_extra_info("nope").has_value());
        CHECK(c.writer.can_write_eof());
        c.writer.write_eof();
        CHECK(c.tr->eof_written);
        CHECK_THROWS_AS(c.writer.write("x"), std::runtime_error);
        co_await c.writer.drain(); // not paused: returns at once
    });
}

TEST_CASE("writer: drain waits while the transport is over its high-water mark") {
    corio::testing::run([]() -> task<> {
        conn c = make_conn();
        c.tr->high = 10;
        c.tr->low = 2;
        stream_writer w = c.writer;
        c.writer.write(std::string(11, 'x'));
        CHECK(c.proto->writing_paused());
        int drained = 0;
        auto d1 = corio_test::spawn([w, &drained]() -> task<> {
            co_await w.drain();
            ++drained;
        });
        auto d2 = corio_test::spawn([w, &drained]() -> task<> {
            co_await w.drain();
            ++drained;
        });
        auto d3 = corio_test::spawn([w]() -> task<> { co_await w.drain(); });
        co_await corio::sleep(0s);
        co_await corio::sleep(0s);
        CHECK(drained == 0);
        d3.cancel(); // a cancelled drain only stops waiting
        co_await d3.wait_done();
        CHECK(d3.cancelled());
        c.tr->flush(5); // 6 left: still above low water
        co_await corio::sleep(0s);
        CHECK(drained == 0);
        c.tr->flush(4);
        co_await d1;
        co_await d2;
        CHECK(drained == 2);
        CHECK(c.tr->written.size() == 11);
    });
}

TEST_CASE("writer: drain after the connection was lost throws") {
    corio::testing::run([]() -> task<> {
        conn c = make_conn();
        c.tr->lose(nullptr); // clean close
        try {
            co_await c.writer.drain();
            FAIL("no exception");
        } catch (const std::system_error& e) {
            CHECK(e.code().value() == ECONNRESET);
        }
        conn d = make_conn();
        d.tr->lose(reset_error()); // the reader has the error: drain rethrows it
        try {
            co_await d.writer.drain();
            FAIL("no exception");
        } catch (const std::system_error& e) {
            CHECK(std::string(e.what()).find("Connection reset by peer") != std::string::npos);
        }
    });
}

TEST_CASE("writer: a drain waiting when the connection is lost gets its error") {
    corio::testing::run([]() -> task<> {
        conn c = make_conn();
        c.tr->high = 1;
        c.writer.write("xx");
        stream_writer w = c.writer;
        auto d = corio_test::spawn([w]() -> task<> { co_await w.drain(); });
        co_await corio::sleep(0s);
        CHECK(!d.done());
        auto shared = c.tr;
        shared->lose(std::make_exception_ptr(std::system_error(EPIPE, std::generic_category(), "write")));
        co_await d.wait_done();
        CHECK_THROWS_AS(d.result(), std::system_error);
        // Without a reader (a write-only pipe), a clean loss wakes the drain without error.
        auto p = std::make_shared<corio::stream_protocol>();
        auto t = std::make_shared<fake_transport>(p);
        p->connection_made(*t);
        t->high = 1;
        stream_writer w2(t, p);
        w2.write("xx");
        auto d2 = corio_test::spawn([w2]() -> task<> { co_await w2.drain(); });
        co_await corio::sleep(0s);
        t->lose(nullptr);
        co_await d2;
    });
}

TEST_CASE("writer: close, then drain yields once so connection_lost can run (asyncio 3.12)") {
    corio::testing::run([]() -> task<> {
        conn c = make_conn();
        c.writer.close();
        CHECK(c.writer.is_closing());
        CHECK(!c.proto->is_connection_lost()); // the fake, as a real transport, calls it later
        CHECK_THROWS_AS(co_await c.writer.drain(), std::system_error);
        CHECK(c.proto->is_connection_lost());
        co_await c.writer.wait_closed();
    });
}

TEST_CASE("writer: wait_closed waits for connection_lost and rethrows its error") {
    corio::testing::run([]() -> task<> {
        conn c = make_conn();
        stream_writer w = c.writer;
        bool done = false;
        auto waiter = corio_test::spawn([w, &done]() -> task<> {
            co_await w.wait_closed();
            done = true;
        });
        auto cancelled = corio_test::spawn([w]() -> task<> { co_await w.wait_closed(); });
        co_await corio::sleep(0s);
        cancelled.cancel();
        co_await cancelled.wait_done();
        CHECK(!done);
        w.close();
        co_await waiter;
        CHECK(done);
        co_await w.wait_closed(); // already closed: at once

        conn d = make_conn();
        d.tr->lose(reset_error());
        CHECK_THROWS_AS(co_await d.writer.wait_closed(), std::system_error);
    });
}

TEST_CASE("writer: the last handle closes the transport, copies do not") {
    corio::testing::run([]() -> task<> {
        conn c = make_conn();
        auto tr = c.tr;
        {
            stream_writer copy = c.writer;
            (void)copy;
        }
        CHECK(!tr->closing);
        stream_writer moved = std::move(c.writer);
        CHECK(!tr->closing);
        moved = stream_writer();
        CHECK(tr->closing);
        CHECK(tr->closes == 1);
        co_await corio::sleep(0s);
        CHECK(c.proto->is_connection_lost());
        // An explicit close first: the last handle does not close again.
        conn d = make_conn();
        d.writer.close();
        d.writer = stream_writer();
        CHECK(d.tr->closes == 1);
        CHECK_THROWS_AS(stream_writer(nullptr, d.proto), std::invalid_argument);
    });
}

// --- Over loopback: open_connection, start_server, Unix sockets ---------------------------------

namespace {

/// A blocking client socket connected to 127.0.0.1:port (loopback completes the handshake from
/// the listen backlog, so this does not need the loop to run).
int raw_connect(int port) {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(s >= 0);
    corio::address a{"127.0.0.1", port};
    REQUIRE(::connect(s, a.data(), a.size()) == 0);
    return s;
}

/// Closes with an RST instead of a FIN (SO_LINGER 0).
void reset_close(int s) {
    linger l{1, 0};
    ::setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(s);
}

task<> echo_line(stream_reader r, stream_writer w) {
    std::string line = co_await r.readline();
    w.write("echo: " + line);
    co_await w.drain();
    w.close();
    co_await w.wait_closed();
}

} // namespace

TEST_CASE("start_server and open_connection: a line and its echo, addresses, EOF, no fd left") {
    const int fds = corio_test::open_fd_count();
    corio::run([]() -> task<> {
        auto handler = echo_line;
        corio::server srv = co_await corio::start_server(handler, "127.0.0.1", 0);
        REQUIRE(srv.port() > 0);
        auto [r, w] = co_await corio::open_connection("127.0.0.1", srv.port());
        CHECK(w.peername().to_string() == "127.0.0.1:" + std::to_string(srv.port()));
        CHECK(w.sockname().host() == "127.0.0.1");
        CHECK(w.transport()->extra_info<int>("socket").has_value());
        w.write("hello\n");
        CHECK(co_await r.readline() == "echo: hello\n");
        CHECK(co_await r.read() == ""); // the server closed
        CHECK(r.at_eof());
        w.close();
        co_await w.wait_closed();
        srv.close();
        co_await srv.wait_closed();
    });
    CHECK(corio_test::open_fd_count() == fds);
}

TEST_CASE("start_server: concurrent clients, each served by its own task") {
    corio::run([]() -> task<> {
        auto handler = echo_line;
        corio::server srv = co_await corio::start_server(handler, "127.0.0.1", 0);
        const int port = srv.port();
        std::vector<corio::task_handle<std::string>> clients;
        for (int i = 0; i < 20; ++i) {
            clients.push_back(corio_test::spawn([port, i]() -> task<std::string> {
                auto [r, w] = co_await corio::open_connection("127.0.0.1", port);
                co_await corio::sleep(std::chrono::milliseconds(20 - i)); // answer out of order
                w.write("client " + std::to_string(i) + "\n");
                co_return co_await r.readline();
            }));
        }
        for (int i = 0; i < 20; ++i) CHECK(co_await clients[static_cast<std::size_t>(i)] == "echo: client " + std::to_string(i) + "\n");
        srv.close();
        srv.close_clients();
        co_await srv.wait_closed();
    });
}

TEST_CASE("start_server: a handler's exception is reported, its connection closed, the server goes on") {
    corio::run([]() -> task<> {
        corio_test::report_recorder rec;
        rec.attach(corio::get_running_loop());
        int calls = 0;
        auto handler = [&calls](stream_reader r, stream_writer w) -> task<> {
            ++calls;
            std::string line = co_await r.readline();
            if (line == "boom\n") throw std::runtime_error("boom");
            w.write(line);
            co_await w.drain();
        };
        corio::server srv = co_await corio::start_server(handler, "127.0.0.1", 0);
        {
            auto [r, w] = co_await corio::open_connection("127.0.0.1", srv.port());
            w.write("boom\n");
            CHECK(co_await r.read() == ""); // closed by the server
        }
        CHECK(rec.count("Unhandled exception in client_connected_cb") == 1);
        REQUIRE(rec.reports.size() == 1);
        CHECK_THROWS_WITH(std::rethrow_exception(rec.reports[0].exception), "boom");
        {
            auto [r, w] = co_await corio::open_connection("127.0.0.1", srv.port());
            w.write("fine\n");
            CHECK(co_await r.readline() == "fine\n");
            CHECK(co_await r.read() == ""); // the handler returned: its last writer closed
        }
        CHECK(calls == 2);
        srv.close();
        co_await srv.wait_closed();
    });
}

TEST_CASE("start_server: a peer resetting mid-write fails that handler's drain only") {
    const int fds = corio_test::open_fd_count();
    corio::run([]() -> task<> {
        int flooding = 0;
        std::vector<int> errors;
        auto handler = [&flooding, &errors](stream_reader r, stream_writer w) -> task<> {
            std::string cmd = co_await r.readline();
            if (cmd != "flood\n") {
                w.write("ok\n");
                co_return;
            }
            ++flooding;
            const std::string block(64 * 1024, 'f');
            try {
                for (;;) {
                    w.write(block);
                    co_await w.drain();
                }
            } catch (const std::system_error& e) {
                errors.push_back(e.code().value());
            }
        };
        corio::server srv = co_await corio::start_server(handler, "127.0.0.1", 0);
        int s = raw_connect(srv.port());
        REQUIRE(::send(s, "flood\n", 6, 0) == 6);
        CHECK(co_await corio_test::eventually([&] { return flooding == 1; }));
        co_await corio::sleep(20ms); // let the server fill the socket buffers and wait in drain
        reset_close(s);
        CHECK(co_await corio_test::eventually([&] { return errors.size() == 1; }));
        REQUIRE(errors.size() == 1);
        CHECK((errors[0] == ECONNRESET || errors[0] == EPIPE));
        auto [r, w] = co_await corio::open_connection("127.0.0.1", srv.port());
        w.write("hi\n");
        CHECK(co_await r.readline() == "ok\n");
        srv.close();
        srv.close_clients();
        co_await srv.wait_closed();
    });
    CHECK(corio_test::open_fd_count() == fds);
}

TEST_CASE("half-closed connections: write_eof on either side, the other keeps writing") {
    corio::run([]() -> task<> {
        auto handler = [](stream_reader r, stream_writer w) -> task<> {
            std::string all = co_await r.read(); // until the client's write_eof
            w.write("got " + std::to_string(all.size()) + " bytes\n");
            w.write_eof(); // the client sees EOF, and may still write
            std::string late = co_await r.read();
            CHECK(late.empty()); // the client's side was already shut
        };
        corio::server srv = co_await corio::start_server(handler, "127.0.0.1", 0);
        auto [r, w] = co_await corio::open_connection("127.0.0.1", srv.port());
        w.write("abc");
        w.write("de");
        CHECK(w.can_write_eof());
        w.write_eof();
        CHECK(co_await r.readline() == "got 5 bytes\n");
        CHECK(co_await r.read() == "");
        // EOF from the peer keeps the transport open (eof_received returns true); with both
        // directions shut, nothing more can happen on it, but (as in asyncio) only close()
        // ends it.
        CHECK(!w.is_closing());
        w.close();
        co_await w.wait_closed();

        // The other way round: the server shuts its side first, the client still sends.
        auto handler2 = [](stream_reader r, stream_writer w) -> task<> {
            w.write("bye\n");
            w.write_eof();
            std::string line = co_await r.readline();
            CHECK(line == "still here\n");
        };
        corio::server srv2 = co_await corio::start_server(handler2, "127.0.0.1", 0);
        auto [r2, w2] = co_await corio::open_connection("127.0.0.1", srv2.port());
        CHECK(co_await r2.read() == "bye\n");
        CHECK(r2.at_eof());
        w2.write("still here\n");
        co_await w2.drain();
        w2.close();
        co_await w2.wait_closed();
        srv.close();
        srv2.close();
    });
}

TEST_CASE("slow reader: 50 MiB through drain, the transport's buffer stays bounded") {
    corio::run([]() -> task<> {
        constexpr std::size_t total = 50u << 20;
        constexpr std::size_t block_size = 64 * 1024;
        std::size_t max_buffered = 0;
        std::size_t high_water = 0;
        std::size_t drains_that_waited = 0;
        auto handler = [&](stream_reader, stream_writer w) -> task<> {
            auto tr = w.transport();
            high_water = tr->get_write_buffer_limits().second;
            const std::string block(block_size, 'z');
            for (std::size_t sent = 0; sent < total; sent += block_size) {
                w.write(block);
                max_buffered = std::max(max_buffered, tr->get_write_buffer_size());
                if (w.protocol()->writing_paused()) ++drains_that_waited;
                co_await w.drain();
            }
            w.close();
        };
        corio::server srv = co_await corio::start_server(handler, "127.0.0.1", 0);
        auto [r, w] = co_await corio::open_connection("127.0.0.1", srv.port());
        co_await corio::sleep(50ms); // fill every buffer on the way before reading anything
        std::size_t received = 0, reads = 0, max_reader_buffer = 0;
        bool intact = true;
        for (;;) {
            max_reader_buffer = std::max(max_reader_buffer, r.buffered());
            std::string data = co_await r.read(64 * 1024);
            if (data.empty()) break;
            intact = intact && data.find_first_not_of('z') == std::string::npos;
            received += data.size();
            if (++reads % 32 == 0) co_await corio::sleep(1ms); // slow
        }
        CHECK(received == total);
        CHECK(intact);
        CHECK(high_water == 64 * 1024);
        CHECK(max_buffered <= high_water + block_size);
        CHECK(drains_that_waited > 0);
        // The client side's flow control: at most 2 * limit plus one read of the transport.
        CHECK(max_reader_buffer <= 2 * corio::default_stream_limit + 256 * 1024);
        srv.close();
        co_await srv.wait_closed();
    });
}

TEST_CASE("a thousand idle connections, and one active client is still served") {
    constexpr int idle = 1000;
    if (const rlim_t limit = corio_test::raise_fd_limit(2 * idle + 100); limit < 2 * idle + 100) {
        MESSAGE("skipped: RLIMIT_NOFILE " << limit << " is below " << 2 * idle + 100);
        return;
    }
    const int fds = corio_test::open_fd_count();
    corio::run([]() -> task<> {
        int accepted = 0;
        auto handler = [&accepted](stream_reader r, stream_writer w) -> task<> {
            ++accepted;
            std::string line = co_await r.readline(); // idle ones wait here until closed
            if (!line.empty()) {
                w.write(line);
                co_await w.drain();
            }
        };
        corio::server srv = co_await corio::start_server(handler, "127.0.0.1", 0, {.backlog = 1024});
        std::vector<std::pair<stream_reader, stream_writer>> conns;
        conns.reserve(idle);
        for (int i = 0; i < idle; ++i) conns.push_back(co_await corio::open_connection("127.0.0.1", srv.port()));
        CHECK(co_await corio_test::eventually([&] { return accepted == idle; }));
        auto [r, w] = co_await corio::open_connection("127.0.0.1", srv.port());
        w.write("ping\n");
        CHECK(co_await r.readline() == "ping\n");
        CHECK(accepted == idle + 1);
        conns.clear(); // the last writer handles: every client closes
        srv.close();
        co_await srv.wait_closed(); // every connection of the server is gone
    });
    CHECK(corio_test::open_fd_count() == fds);
}

TEST_CASE("over a real connection, a read cancelled by a timeout loses no data") {
    corio::run([]() -> task<> {
        corio::event go;
        auto handler = [&go](stream_reader, stream_writer w) -> task<> {
            w.write("first half, ");
            co_await go.wait();
            w.write("second half\n");
            co_await w.drain();
        };
        corio::server srv = co_await corio::start_server(handler, "127.0.0.1", 0);
        auto [r, w] = co_await corio::open_connection("127.0.0.1", srv.port());
        CHECK_THROWS_AS(co_await corio::wait_for(r.readline(), 50ms), corio::timeout_error);
        CHECK(r.buffered() == 12);
        go.set();
        CHECK(co_await r.readline() == "first half, second half\n");
        srv.close();
        co_await srv.wait_closed();
    });
}

TEST_CASE("a small limit over a real connection: paused and resumed reading, every byte intact") {
    corio::run([]() -> task<> {
        std::string payload;
        for (int i = 0; i < 200000; ++i) payload += static_cast<char>('a' + i % 26);
        auto handler = [payload](stream_reader, stream_writer w) -> task<> {
            w.write(payload);
            co_await w.drain();
        };
        corio::server srv = co_await corio::start_server(handler, "127.0.0.1", 0);
        auto [r, w] = co_await corio::open_connection("127.0.0.1", srv.port(), {.limit = 1000});
        co_await corio::sleep(20ms); // let the reader pass 2 * limit and pause the transport
        CHECK(!w.transport()->is_reading());
        std::string got = co_await r.readexactly(1500);
        got += co_await r.readexactly(150000); // more than 2 * limit: waiting resumes reading
        got += co_await r.read();
        CHECK(got == payload);
        srv.close();
        co_await srv.wait_closed();
    });
}

TEST_CASE("Unix sockets: start_unix_server and open_unix_connection") {
    const int fds = corio_test::open_fd_count();
    char dir_template[] = "/tmp/corio-streams-XXXXXX";
    REQUIRE(::mkdtemp(dir_template) != nullptr);
    const std::string path = std::string(dir_template) + "/echo.sock";
    corio::run([path]() -> task<> {
        auto handler = echo_line;
        corio::server srv = co_await corio::start_unix_server(handler, path);
        CHECK(::access(path.c_str(), F_OK) == 0);
        auto [r, w] = co_await corio::open_unix_connection(path);
        CHECK(w.peername().host() == path);
        w.write("over unix\n");
        CHECK(co_await r.readline() == "echo: over unix\n");
        CHECK(co_await r.read() == "");
        srv.close();
        co_await srv.wait_closed();
        CHECK(::access(path.c_str(), F_OK) != 0); // the socket file is removed
        CHECK_THROWS_AS(co_await corio::open_unix_connection(path), std::system_error);
        CHECK_THROWS_AS(co_await corio::open_unix_connection(path, {.family = AF_INET}), std::invalid_argument);
    });
    ::rmdir(dir_template);
    CHECK(corio_test::open_fd_count() == fds);
}

TEST_CASE("open_connection errors: refused, a limit of 0") {
    corio::run([]() -> task<> {
        int port = 0;
        {
            corio::server srv = co_await corio::start_server(echo_line, "127.0.0.1", 0);
            port = srv.port();
            srv.close();
            co_await srv.wait_closed();
        }
        try {
            (void)co_await corio::open_connection("127.0.0.1", port);
            FAIL("connected to a closed port");
        } catch (const std::system_error& e) {
            CHECK(e.code().value() == ECONNREFUSED);
        }
        CHECK_THROWS_AS((void)co_await corio::open_connection("127.0.0.1", port, {.limit = 0}), std::invalid_argument);
        auto handler = echo_line;
        CHECK_THROWS_AS((void)co_await corio::start_server(handler, "127.0.0.1", 0, {.limit = 0}),
                        std::invalid_argument);
    });
}

TEST_CASE("drain and wait_closed see the peer going away") {
    corio::run([]() -> task<> {
        auto handler = [](stream_reader, stream_writer w) -> task<> {
            w.close(); // hang up at once
            co_return;
        };
        corio::server srv = co_await corio::start_server(handler, "127.0.0.1", 0);
        auto [r, w] = co_await corio::open_connection("127.0.0.1", srv.port());
        CHECK(co_await r.read() == "");
        // The peer is gone: writing goes on until the transport notices, then drain throws.
        bool failed = false;
        for (int i = 0; i < 1000 && !failed; ++i) {
            w.write(std::string(4096, 'x'));
            try {
                co_await w.drain();
            } catch (const std::system_error&) {
                failed = true;
            }
            if (!failed) co_await corio::sleep(1ms);
        }
        CHECK(failed);
        CHECK(w.is_closing());
        try {
            co_await w.wait_closed();
        } catch (const std::system_error&) { // lost with the error that failed the write
        }
        srv.close();
        co_await srv.wait_closed();
    });
}

TEST_CASE("corio::run ending with handlers waiting and connections open leaks nothing") {
    const int fds = corio_test::open_fd_count();
    corio_test::report_recorder rec;
    corio::run([&rec]() -> task<> {
        rec.attach(corio::get_running_loop());
        auto handler = [](stream_reader r, stream_writer) -> task<> { (void)co_await r.read(); };
        corio::server srv = co_await corio::start_server(handler, "127.0.0.1", 0);
        auto conn = co_await corio::open_connection("127.0.0.1", srv.port());
        auto conn2 = co_await corio::open_connection("127.0.0.1", srv.port());
        co_await corio::sleep(10ms);
        (void)conn;
        (void)conn2;
        // main returns: run cancels the handlers (each closes its connection), then closes the
        // loop, which releases the server and whatever is still open.
    });
    CHECK(rec.reports.empty());
    CHECK(corio_test::open_fd_count() == fds);
}
