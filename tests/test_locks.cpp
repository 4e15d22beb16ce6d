// Locks, events, conditions, semaphores and barriers: asyncio's semantics (3.12), FIFO fairness,
// and no lost wake-up when a waiter is cancelled, even right after it was woken.
#include <corio/locks.hpp>

#include <corio/future.hpp>
#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/testing.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using corio::task;
using corio_test::counted;
using corio_test::settle;
using corio_test::spawn;

namespace {


using log_t = std::vector<std::string>;

} // namespace

// --- lock --------------------------------------------------------------------------------------

TEST_CASE("lock: acquire gives a guard that releases; release() early; moves") {
    corio::testing::run([]() -> task<> {
        corio::lock lk;
        CHECK_FALSE(lk.locked());
        {
            auto g = co_await lk.acquire();
            CHECK(lk.locked());
            CHECK(g.owns_lock());
            CHECK(static_cast<bool>(g));
        }
        CHECK_FALSE(lk.locked());

        auto g = co_await lk.acquire();
        g.release();
        CHECK_FALSE(lk.locked());
        CHECK_FALSE(g.owns_lock());
        CHECK_THROWS_AS(g.release(), std::logic_error); // holds nothing any more

        auto g2 = co_await lk.acquire();
        corio::guard<corio::lock> g3(std::move(g2));
        CHECK_FALSE(g2.owns_lock());
        CHECK(g3.owns_lock());
        CHECK(lk.locked());
        g3.unlock();
        CHECK_FALSE(lk.locked());

        // Move-assigning over a guard that holds releases what it held first.
        corio::lock other;
        auto a = co_await lk.acquire();
        auto b = co_await other.acquire();
        a = std::move(b);
        CHECK_FALSE(lk.locked());
        CHECK(other.locked());
    });
}

TEST_CASE("lock: release() of an unlocked lock throws std::logic_error (asyncio RuntimeError)") {
    corio::testing::run([]() -> task<> {
        corio::lock lk;
        CHECK_THROWS_WITH_AS(lk.release(), "Lock is not acquired.", std::logic_error);
        co_return;
    });
}

TEST_CASE("lock: waiters get the lock in the order they came (FIFO)") {
    corio::testing::run([]() -> task<> {
        corio::lock lk;
        log_t log;
        auto g = co_await lk.acquire();
        std::vector<corio::task_handle<>> ts;
        for (const char* name : {"a", "b", "c", "d"}) {
            ts.push_back(spawn([&lk, &log, name]() -> task<> {
                auto held = co_await lk.acquire();
                log.push_back(name);
                co_await corio::sleep(0s); // hold it across a suspension
            }));
            co_await corio::sleep(0s); // each starts waiting before the next
        }
        g.release();
        co_await settle(20);
        CHECK(log == log_t{"a", "b", "c", "d"});
        CHECK_FALSE(lk.locked());
    });
}

TEST_CASE("lock: a newcomer does not take the lock from a waiter woken but not yet run") {
    corio::testing::run([]() -> task<> {
        corio::lock lk;
        log_t log;
        auto g = co_await lk.acquire();
        auto a = spawn([&]() -> task<> {
            auto held = co_await lk.acquire();
            log.push_back("a");
        });
        co_await corio::sleep(0s);
        g.release();
        CHECK_FALSE(lk.locked()); // as asyncio: free until the woken waiter runs...
        auto mine = co_await lk.acquire(); // ...but a newcomer queues behind it
        log.push_back("main");
        CHECK(log == log_t{"a", "main"});
        CHECK(a.done());
    });
}

TEST_CASE("lock: a waiter handed the lock and cancelled before it runs passes the lock on") {
    corio::testing::run([]() -> task<> {
        corio::lock lk;
        log_t log;
        auto g = co_await lk.acquire();
        auto waiter = [&](const char* name) {
            return spawn([&lk, &log, name]() -> task<> {
                auto held = co_await lk.acquire();
                log.push_back(name);
            });
        };
        auto a = waiter("a");
        co_await corio::sleep(0s);
        auto b = waiter("b");
        co_await corio::sleep(0s);
        g.release(); // wakes a
        a.cancel();  // in the same iteration: a has not run yet
        co_await settle();
        CHECK(a.cancelled());
        CHECK(b.done());
        CHECK_FALSE(b.cancelled());
        CHECK(log == log_t{"b"});
        CHECK_FALSE(lk.locked());
        auto again = co_await lk.acquire(); // the lock works on
        CHECK(lk.locked());
    });
}

TEST_CASE("lock: the only waiter handed the lock and cancelled leaves it free") {
    corio::testing::run([]() -> task<> {
        corio::lock lk;
        auto g = co_await lk.acquire();
        auto a = spawn([&]() -> task<> { auto held = co_await lk.acquire(); });
        co_await corio::sleep(0s);
        g.release();
        a.cancel();
        co_await a.wait_done();
        CHECK(a.cancelled());
        CHECK_FALSE(lk.locked());
        auto again = co_await lk.acquire(); // does not wait
        CHECK(lk.locked());
    });
}

TEST_CASE("lock: cancelling a waiter (not woken) leaves the others in line") {
    corio::testing::run([]() -> task<> {
        corio::lock lk;
        log_t log;
        auto g = co_await lk.acquire();
        auto waiter = [&](const char* name) {
            return spawn([&lk, &log, name]() -> task<> {
                auto held = co_await lk.acquire();
                log.push_back(name);
            });
        };
        auto a = waiter("a");
        auto b = waiter("b");
        auto c = waiter("c");
        co_await settle();
        CHECK(b.cancel("stop"));
        co_await b.wait_done();
        CHECK(b.cancelled());
        CHECK_THROWS_WITH_AS(b.result(), "stop", corio::cancelled_error);
        g.release();
        co_await settle();
        CHECK(log == log_t{"a", "c"});
    });
}

TEST_CASE("lock: the guard releases when an exception leaves the scope") {
    corio::testing::run([]() -> task<> {
        corio::lock lk;
        auto t = spawn([&]() -> task<> {
            auto held = co_await lk.acquire();
            co_await corio::sleep(1s);
            throw std::runtime_error("boom");
        });
        co_await corio::sleep(0s);
        CHECK(lk.locked());
        co_await t.wait_done();
        CHECK_THROWS_AS(t.result(), std::runtime_error);
        CHECK_FALSE(lk.locked());
    });
}

TEST_CASE("lock: the guard releases when its task is cancelled while holding it") {
    corio::testing::run([]() -> task<> {
        corio::lock lk;
        auto t = spawn([&]() -> task<> {
            auto held = co_await lk.acquire();
            co_await corio::sleep(1h);
        });
        co_await corio::sleep(0s);
        CHECK(lk.locked());
        t.cancel();
        co_await t.wait_done();
        CHECK(t.cancelled());
        CHECK_FALSE(lk.locked());
    });
}

TEST_CASE("lock: a guard whose lock was released by hand reports to the exception handler") {
    corio_test::report_recorder rec;
    corio::testing::run([&rec]() -> task<> {
        rec.attach(corio::get_running_loop());
        corio::lock lk;
        {
            auto g = co_await lk.acquire();
            lk.release(); // behind the guard's back
        }                 // the guard's release throws: reported, not terminating
        CHECK_FALSE(lk.locked());
    });
    CHECK(rec.count("Exception in corio::guard release") == 1);
}

TEST_CASE("lock: acquire() is an awaitable create_task accepts; the guard is its result") {
    corio::testing::run([]() -> task<> {
        corio::lock lk;
        auto g = co_await lk.acquire();
        auto t = corio::create_task(lk.acquire());
        co_await corio::sleep(0s);
        CHECK_FALSE(t.done());
        g.release();
        co_await t.wait_done();
        CHECK(lk.locked());
        {
            corio::guard<corio::lock> taken = std::move(t).result();
            CHECK(taken.owns_lock());
        }
        CHECK_FALSE(lk.locked());
    });
}

TEST_CASE("lock: destroyed while tasks wait on it: their waits end with cancelled_error") {
    corio::testing::run([]() -> task<> {
        auto lk = std::make_unique<corio::lock>();
        auto g = co_await lk->acquire();
        corio::lock& ref = *lk;
        auto first = spawn([&ref]() -> task<> { auto held = co_await ref.acquire(); });
        auto second = spawn([&ref]() -> task<> {
            co_await corio::sleep(0s);
            auto held = co_await ref.acquire();
        });
        co_await settle();
        g.release();
        // `first` is woken (handed the lock), then the lock dies before it runs; `second` is
        // still in line. Both waits end with cancelled_error, as if the lock were a cancelled
        // future.
        lk.reset();
        co_await first.wait_done();
        co_await second.wait_done();
        CHECK(first.cancelled());
        CHECK(second.cancelled());
        CHECK(first.cancelling() == 0); // nobody asked: the wait's object is gone
        try {
            first.result();
        } catch (const corio::cancelled_error& e) {
            CHECK(std::string(e.what()) == "corio: the queue or lock this task waited on was destroyed");
        }
    });
}

TEST_CASE("lock: main returns while workers wait on its lock; corio::run cancels them safely") {
    int cancelled = 0;
    corio::testing::run([&cancelled]() -> task<> {
        corio::lock lk;
        auto g = co_await lk.acquire();
        for (int i = 0; i < 3; ++i) {
            corio::create_task([&lk, &cancelled]() -> task<> {
                try {
                    auto held = co_await lk.acquire();
                } catch (const corio::cancelled_error&) {
                    ++cancelled;
                    throw;
                }
            });
        }
        co_await settle();
        // returns holding the lock: g and lk die with this frame, the workers still wait
    });
    CHECK(cancelled == 3);
}

// --- event -------------------------------------------------------------------------------------

TEST_CASE("event: wait returns true at once when set, else when set() is called") {
    corio::testing::run([]() -> task<> {
        corio::event ev;
        CHECK_FALSE(ev.is_set());
        log_t log;
        std::vector<corio::task_handle<bool>> ts;
        for (const char* name : {"a", "b", "c"}) {
            ts.push_back(spawn([&ev, &log, name]() -> task<bool> {
                bool r = co_await ev.wait();
                log.push_back(name);
                co_return r;
            }));
        }
        co_await settle();
        CHECK(log.empty());
        ev.set();
        ev.clear(); // those already woken return all the same (asyncio)
        co_await settle();
        CHECK(log == log_t{"a", "b", "c"});
        for (auto& t : ts) CHECK(t.result());
        CHECK_FALSE(ev.is_set());

        ev.set();
        ev.set(); // harmless
        CHECK(ev.is_set());
        CHECK(co_await ev.wait());
    });
}

TEST_CASE("event: a cancelled waiter leaves; the others are still woken") {
    corio::testing::run([]() -> task<> {
        corio::event ev;
        int woke = 0;
        auto a = spawn([&]() -> task<> { co_await ev.wait(); ++woke; });
        auto b = spawn([&]() -> task<> { co_await ev.wait(); ++woke; });
        co_await settle();
        a.cancel();
        co_await a.wait_done();
        CHECK(a.cancelled());
        ev.set();
        co_await b.wait_done();
        CHECK(woke == 1);
        // cancelled after set() woke it, before it ran: ends cancelled, nothing else to pass on
        ev.clear();
        auto c = spawn([&]() -> task<> { co_await ev.wait(); ++woke; });
        co_await settle();
        ev.set();
        c.cancel();
        co_await c.wait_done();
        CHECK(c.cancelled());
        CHECK(woke == 1);
    });
}

// --- condition -----------------------------------------------------------------------------------

TEST_CASE("condition: wait and notify need the lock (std::logic_error, asyncio RuntimeError)") {
    corio::testing::run([]() -> task<> {
        corio::condition cond;
        bool threw = false;
        try {
            co_await cond.wait();
        } catch (const std::logic_error& e) {
            threw = std::string(e.what()) == "cannot wait on un-acquired lock";
        }
        CHECK(threw);
        CHECK_THROWS_WITH_AS(cond.notify(), "cannot notify on un-acquired lock", std::logic_error);
        CHECK_THROWS_AS(cond.notify_all(), std::logic_error);
        CHECK_THROWS_AS(cond.release(), std::logic_error);
        auto g = co_await cond.acquire();
        CHECK(cond.locked());
        cond.notify(); // nobody waits: fine
    });
}

TEST_CASE("condition: notify(n) wakes the n longest waiting, notify_all the rest; wait re-acquires") {
    corio::testing::run([]() -> task<> {
        corio::condition cond;
        log_t log;
        std::vector<corio::task_handle<>> ts;
        for (const char* name : {"a", "b", "c", "d"}) {
            ts.push_back(spawn([&cond, &log, name]() -> task<> {
                auto g = co_await cond.acquire();
                bool r = co_await cond.wait();
                CHECK(r);
                CHECK(cond.locked()); // held again
                log.push_back(name);
            }));
            co_await corio::sleep(0s);
        }
        co_await settle();
        {
            auto g = co_await cond.acquire();
            cond.notify(2);
            co_await settle(); // they cannot run on: we hold the lock
            CHECK(log.empty());
        }
        co_await settle();
        CHECK(log == log_t{"a", "b"});
        {
            auto g = co_await cond.acquire();
            cond.notify_all();
        }
        co_await settle();
        CHECK(log == log_t{"a", "b", "c", "d"});
        CHECK_FALSE(cond.locked());
    });
}

TEST_CASE("condition: wait_for(pred) returns the predicate's value once it holds") {
    corio::testing::run([]() -> task<> {
        corio::condition cond;
        std::vector<int> items;
        auto consumer = spawn([&]() -> task<int> {
            auto g = co_await cond.acquire();
            auto two = [&] { return items.size() >= 2 ? static_cast<int>(items.size()) : 0; };
            int n = co_await cond.wait_for(two);
            CHECK(cond.locked());
            co_return n;
        });
        for (int i = 0; i < 3; ++i) {
            co_await corio::sleep(1s);
            auto g = co_await cond.acquire();
            items.push_back(i);
            cond.notify();
        }
        co_await consumer.wait_done();
        CHECK(consumer.result() == 2);
        // Already true: returns at once.
        auto g = co_await cond.acquire();
        auto yes = [] { return true; };
        CHECK(co_await cond.wait_for(yes));
    });
}

TEST_CASE("condition: a cancelled wait re-acquires the lock before cancelled_error leaves it") {
    corio::testing::run([]() -> task<> {
        corio::condition cond;
        log_t log;
        auto t = spawn([&]() -> task<> {
            auto g = co_await cond.acquire();
            bool cancelled = false;
            try {
                co_await cond.wait();
            } catch (const corio::cancelled_error&) {
                cancelled = true;
            }
            CHECK(cancelled);
            CHECK(cond.locked()); // we hold it again
            log.push_back("cleanup with the lock");
            throw corio::cancelled_error();
        });
        co_await settle();
        auto g = co_await cond.acquire(); // we take the lock: t must wait for it
        t.cancel();
        co_await settle();
        CHECK_FALSE(t.done());
        CHECK(log.empty());
        t.cancel(); // cancelled again while re-acquiring: still waits for the lock
        co_await settle();
        CHECK_FALSE(t.done());
        g.release();
        co_await t.wait_done();
        CHECK(t.cancelled());
        CHECK(log == log_t{"cleanup with the lock"});
        CHECK_FALSE(cond.locked());
    });
}

TEST_CASE("condition: a notified waiter cancelled before it runs passes the notification on") {
    corio::testing::run([]() -> task<> {
        corio::condition cond;
        log_t log;
        auto waiter = [&](const char* name) {
            return spawn([&cond, &log, name]() -> task<> {
                auto g = co_await cond.acquire();
                co_await cond.wait();
                log.push_back(name);
            });
        };
        auto a = waiter("a");
        co_await corio::sleep(0s);
        auto b = waiter("b");
        co_await settle();
        {
            auto g = co_await cond.acquire();
            cond.notify(1); // a is woken
            a.cancel();     // before it ran
        }
        co_await a.wait_done();
        co_await settle();
        CHECK(a.cancelled());
        CHECK(log == log_t{"b"});
        CHECK(b.done());
    });
}

TEST_CASE("condition: notified, then cancelled while re-acquiring: the notification is passed on") {
    corio::testing::run([]() -> task<> {
        corio::condition cond;
        log_t log;
        auto waiter = [&](const char* name) {
            return spawn([&cond, &log, name]() -> task<> {
                auto g = co_await cond.acquire();
                co_await cond.wait();
                log.push_back(name);
            });
        };
        auto a = waiter("a");
        co_await corio::sleep(0s);
        auto b = waiter("b");
        co_await settle();
        auto g = co_await cond.acquire();
        cond.notify(1);
        co_await settle(); // a ran: it now waits for the lock
        a.cancel();
        co_await settle();
        g.release();
        co_await a.wait_done();
        co_await settle();
        CHECK(a.cancelled());
        CHECK(log == log_t{"b"});
    });
}

TEST_CASE("condition: on a lock of the caller's") {
    corio::testing::run([]() -> task<> {
        corio::lock lk;
        corio::condition cond(lk);
        bool flag = false;
        auto t = spawn([&]() -> task<> {
            auto g = co_await lk.acquire();
            auto ready = [&] { return flag; };
            co_await cond.wait_for(ready);
            CHECK(lk.locked());
        });
        co_await settle();
        CHECK_FALSE(lk.locked()); // released by the wait
        {
            auto g = co_await cond.acquire();
            CHECK(lk.locked());
            flag = true;
            cond.notify_all();
        }
        co_await t.wait_done();
        CHECK(t.done());
        CHECK_FALSE(lk.locked());
    });
}

TEST_CASE("condition: destroyed while tasks wait; corio::run cancels them safely") {
    int cancelled = 0;
    corio::testing::run([&cancelled]() -> task<> {
        corio::condition cond;
        for (int i = 0; i < 2; ++i) {
            corio::create_task([&cond, &cancelled]() -> task<> {
                auto g = co_await cond.acquire();
                try {
                    co_await cond.wait();
                } catch (const corio::cancelled_error&) {
                    ++cancelled;
                    CHECK_FALSE(g.owns_lock()); // the lock died with the condition
                    throw;
                }
            });
        }
        co_await settle();
    });
    CHECK(cancelled == 2);
}

TEST_CASE("lock: a guard outliving its lock holds nothing and does not touch it") {
    corio::testing::run([]() -> task<> {
        auto lk = std::make_unique<corio::lock>();
        auto g = co_await lk->acquire();
        auto moved = std::move(g);
        CHECK(moved.owns_lock());
        lk.reset();
        CHECK_FALSE(moved.owns_lock());
        CHECK_THROWS_AS(moved.release(), std::logic_error);
    }); // ~guard: nothing to do
}

// --- semaphore ---------------------------------------------------------------------------------

TEST_CASE("semaphore: value units, then waiting; locked(); negative value is std::invalid_argument") {
    CHECK_THROWS_AS(corio::semaphore(-1), std::invalid_argument);
    CHECK_THROWS_AS(corio::bounded_semaphore(-1), std::logic_error);
    corio::testing::run([]() -> task<> {
        corio::semaphore sem(2);
        CHECK_FALSE(sem.locked());
        auto g1 = co_await sem.acquire();
        CHECK_FALSE(sem.locked());
        auto g2 = co_await sem.acquire();
        CHECK(sem.locked());
        bool got = false;
        auto t = spawn([&]() -> task<> {
            auto g = co_await sem.acquire();
            got = true;
        });
        co_await settle();
        CHECK_FALSE(got);
        g1.release();
        co_await t.wait_done();
        CHECK(got);
        CHECK_FALSE(sem.locked()); // t gave its unit back
        corio::semaphore zero(0);
        CHECK(zero.locked());
        zero.release(); // unbounded: fine
        CHECK_FALSE(zero.locked());
    });
}

TEST_CASE("semaphore: FIFO; a newcomer queues behind a waiter woken but not yet run") {
    corio::testing::run([]() -> task<> {
        corio::semaphore sem(1);
        log_t log;
        auto g = co_await sem.acquire();
        std::vector<corio::task_handle<>> ts;
        for (const char* name : {"a", "b", "c"}) {
            ts.push_back(spawn([&sem, &log, name]() -> task<> {
                auto held = co_await sem.acquire();
                log.push_back(name);
                co_await corio::sleep(0s);
            }));
            co_await corio::sleep(0s);
        }
        g.release(); // to a
        CHECK(sem.locked());
        auto mine = co_await sem.acquire(); // behind c
        log.push_back("main");
        CHECK(log == log_t{"a", "b", "c", "main"});
    });
}

TEST_CASE("semaphore: a waiter handed a unit and cancelled before it runs passes the unit on") {
    corio::testing::run([]() -> task<> {
        corio::semaphore sem(0);
        log_t log;
        auto waiter = [&](const char* name) {
            return spawn([&sem, &log, name]() -> task<> {
                auto held = co_await sem.acquire();
                log.push_back(name);
                co_await corio::sleep(1h);
            });
        };
        auto a = waiter("a");
        co_await corio::sleep(0s);
        auto b = waiter("b");
        co_await corio::sleep(0s);
        auto c = waiter("c");
        co_await settle();
        sem.release(); // to a
        a.cancel();
        co_await settle();
        CHECK(a.cancelled());
        CHECK(log == log_t{"b"});
        CHECK(sem.locked());
        b.cancel(); // b holds the unit: its guard gives it to c
        co_await settle();
        CHECK(log == log_t{"b", "c"});
        c.cancel();
        co_await c.wait_done();
        CHECK_FALSE(sem.locked());
    });
}

TEST_CASE("semaphore: units released while the woken waiter has not run reach later waiters") {
    corio::testing::run([]() -> task<> {
        corio::semaphore sem(0);
        int got = 0;
        std::vector<corio::task_handle<>> ts;
        for (int i = 0; i < 3; ++i) {
            ts.push_back(spawn([&]() -> task<> {
                auto held = co_await sem.acquire();
                ++got;
                co_await corio::sleep(1h);
            }));
        }
        co_await settle();
        sem.release();
        sem.release();
        sem.release();
        co_await settle();
        CHECK(got == 3);
        for (auto& t : ts) t.cancel();
        co_await settle();
        CHECK_FALSE(sem.locked());
    });
}

TEST_CASE("semaphore: a woken waiter, when it runs, wakes those who queued behind it while units were free") {
    corio::testing::run([]() -> task<> {
        corio::semaphore sem(2);
        auto a = co_await sem.acquire();
        auto b = co_await sem.acquire();
        auto c = spawn([&]() -> task<> {
            auto held = co_await sem.acquire();
            co_await corio::sleep(1h);
        });
        co_await settle();
        a.release(); // to c, which has not run yet
        b.release(); // a free unit, but c is ahead in line: newcomers queue (FIFO)
        CHECK(sem.locked());
        bool rescued = false;
        auto watchdog = spawn([&]() -> task<> {
            co_await corio::sleep(1min);
            rescued = true; // only if the free unit was never handed to main
            sem.release();
        });
        auto mine = co_await sem.acquire(); // woken by c when c runs
        CHECK_FALSE(rescued);
        watchdog.cancel();
        c.cancel();
        co_await settle();
    });
}

TEST_CASE("bounded_semaphore: releasing above the initial value is std::logic_error (asyncio ValueError)") {
    corio::testing::run([]() -> task<> {
        corio::bounded_semaphore sem(2);
        CHECK_THROWS_WITH_AS(sem.release(), "BoundedSemaphore released too many times", std::logic_error);
        {
            auto g = co_await sem.acquire();
            sem.release(); // fine: one was taken
            CHECK_THROWS_AS(sem.release(), std::logic_error);
            // the guard's own release now throws: it goes to the exception handler
            corio_test::report_recorder rec;
            rec.attach(corio::get_running_loop());
            g = corio::guard<corio::semaphore>();
            CHECK(rec.count("Exception in corio::guard release") == 1);
            corio::get_running_loop().set_exception_handler(nullptr);
        }
        auto a = co_await sem.acquire();
        auto b = co_await sem.acquire();
        CHECK(sem.locked());
    });
}

TEST_CASE("semaphore: a cancelled acquire takes no unit") {
    corio::testing::run([]() -> task<> {
        corio::semaphore sem(1);
        auto g = co_await sem.acquire();
        auto t = spawn([&]() -> task<> { auto held = co_await sem.acquire(); });
        co_await settle();
        t.cancel();
        co_await t.wait_done();
        CHECK(t.cancelled());
        g.release();
        CHECK_FALSE(sem.locked());
        auto a = co_await sem.acquire();
        CHECK(sem.locked());
    });
}

// --- barrier -----------------------------------------------------------------------------------

TEST_CASE("barrier: parties must be > 0; parties() and a barrier of one") {
    CHECK_THROWS_WITH_AS(corio::barrier(0), "parties must be > 0", std::invalid_argument);
    corio::testing::run([]() -> task<> {
        corio::barrier b(1);
        CHECK(b.parties() == 1);
        CHECK(co_await b.wait() == 0);
        CHECK(co_await b.wait() == 0);
        CHECK_FALSE(b.broken());
    });
}

TEST_CASE("barrier: rounds; each round's indices are 0..parties-1; nobody passes early") {
    corio::testing::run([]() -> task<> {
        constexpr std::size_t parties = 3;
        constexpr int rounds = 4;
        corio::barrier b(parties);
        std::vector<std::vector<std::size_t>> indices(rounds);
        std::vector<int> passed(rounds, 0);
        std::vector<corio::task_handle<>> ts;
        for (std::size_t n = 0; n < parties; ++n) {
            ts.push_back(spawn([&, n]() -> task<> {
                for (int r = 0; r < rounds; ++r) {
                    co_await corio::sleep(std::chrono::milliseconds(10 * (n + 1)));
                    // everyone of the previous round passed before anyone of this one
                    if (r > 0) CHECK(passed[static_cast<std::size_t>(r - 1)] == static_cast<int>(parties));
                    std::size_t i = co_await b.wait();
                    indices[static_cast<std::size_t>(r)].push_back(i);
                    ++passed[static_cast<std::size_t>(r)];
                }
            }));
        }
        co_await corio::sleep(5ms);
        CHECK(b.n_waiting() == 0);
        co_await corio::sleep(10ms);
        CHECK(b.n_waiting() == 1);
        co_await corio::sleep(10ms);
        CHECK(b.n_waiting() == 2);
        for (auto& t : ts) co_await t.wait_done();
        for (auto& round : indices) {
            std::sort(round.begin(), round.end());
            CHECK(round == std::vector<std::size_t>{0, 1, 2});
        }
        CHECK(b.n_waiting() == 0);
        CHECK_FALSE(b.broken());
    });
}

TEST_CASE("barrier: the task that arrives last gets parties-1 and the first one 0") {
    corio::testing::run([]() -> task<> {
        corio::barrier b(2);
        auto first = spawn([&]() -> task<std::size_t> { co_return co_await b.wait(); });
        co_await settle();
        std::size_t mine = co_await b.wait();
        co_await first.wait_done();
        CHECK(mine == 1);
        CHECK(first.result() == 0);
    });
}

TEST_CASE("barrier: abort breaks it for the waiting and later waits; reset repairs it") {
    corio::testing::run([]() -> task<> {
        corio::barrier b(3);
        auto waiter = [&]() {
            return spawn([&]() -> task<std::string> {
                try {
                    co_await b.wait();
                } catch (const corio::broken_barrier_error& e) {
                    co_return e.what();
                }
                co_return "passed";
            });
        };
        auto a = waiter();
        auto c = waiter();
        co_await settle();
        CHECK(b.n_waiting() == 2);
        b.abort();
        co_await a.wait_done();
        co_await c.wait_done();
        CHECK(a.result() == "Abort or reset of barrier");
        CHECK(c.result() == "Abort or reset of barrier");
        CHECK(b.broken());
        CHECK(b.n_waiting() == 0);
        bool threw = false;
        try {
            co_await b.wait();
        } catch (const corio::broken_barrier_error& e) {
            threw = std::string(e.what()) == "Barrier aborted";
        }
        CHECK(threw);
        static_assert(std::is_base_of_v<std::runtime_error, corio::broken_barrier_error>);
        b.reset();
        CHECK_FALSE(b.broken());
        auto x = waiter();
        auto y = waiter();
        auto z = waiter();
        co_await z.wait_done();
        co_await settle();
        CHECK(x.result() == "passed");
        CHECK(y.result() == "passed");
        CHECK(z.result() == "passed");
    });
}

TEST_CASE("barrier: reset while tasks wait: they get broken_barrier_error, the barrier is not broken") {
    corio::testing::run([]() -> task<> {
        corio::barrier b(3);
        std::vector<corio::task_handle<std::string>> ts;
        for (int i = 0; i < 2; ++i) {
            ts.push_back(spawn([&]() -> task<std::string> {
                try {
                    co_await b.wait();
                } catch (const corio::broken_barrier_error& e) {
                    co_return e.what();
                }
                co_return "passed";
            }));
        }
        co_await settle();
        b.reset();
        CHECK(b.n_waiting() == 0); // resetting until they have left
        for (auto& t : ts) co_await t.wait_done();
        for (auto& t : ts) CHECK(t.result() == "Abort or reset of barrier");
        CHECK_FALSE(b.broken());
        // a full round works again
        std::vector<corio::task_handle<std::size_t>> round;
        for (int i = 0; i < 3; ++i) round.push_back(spawn([&]() -> task<std::size_t> { co_return co_await b.wait(); }));
        std::vector<std::size_t> got;
        for (auto& t : round) {
            co_await t.wait_done();
            got.push_back(t.result());
        }
        std::sort(got.begin(), got.end());
        CHECK(got == std::vector<std::size_t>{0, 1, 2});
    });
}

TEST_CASE("barrier: a cancelled waiter leaves the round, which still needs a full count") {
    corio::testing::run([]() -> task<> {
        corio::barrier b(2);
        auto t = spawn([&]() -> task<> { co_await b.wait(); });
        co_await settle();
        CHECK(b.n_waiting() == 1);
        t.cancel();
        co_await t.wait_done();
        CHECK(t.cancelled());
        CHECK(b.n_waiting() == 0);
        CHECK_FALSE(b.broken());
        auto u = spawn([&]() -> task<std::size_t> { co_return co_await b.wait(); });
        co_await settle();
        CHECK_FALSE(u.done());
        CHECK(co_await b.wait() == 1);
        co_await u.wait_done();
        CHECK(u.result() == 0);
    });
}

TEST_CASE("barrier: a task of the next round waits while the previous one drains") {
    corio::testing::run([]() -> task<> {
        corio::barrier b(2);
        log_t log;
        auto a = spawn([&]() -> task<> {
            co_await b.wait();
            log.push_back("a passed");
        });
        co_await settle();
        // main completes the round and, before `a` has left, comes back for the next one
        co_await b.wait();
        log.push_back("main passed");
        auto c = spawn([&]() -> task<> {
            co_await b.wait();
            log.push_back("c passed");
        });
        co_await b.wait();
        log.push_back("main passed again");
        co_await a.wait_done();
        co_await c.wait_done();
        co_await settle();
        REQUIRE(log.size() == 4);
        CHECK(log[0] == "main passed");
        CHECK(log[1] == "a passed"); // main's second wait held on until `a` had left the round
        std::sort(log.begin() + 2, log.end());
        CHECK(log[2] == "c passed");
        CHECK(log[3] == "main passed again");
    });
}

TEST_CASE("barrier: destroyed while tasks wait; corio::run cancels them safely") {
    int cancelled = 0;
    corio::testing::run([&cancelled]() -> task<> {
        corio::barrier b(3);
        for (int i = 0; i < 2; ++i) {
            corio::create_task([&b, &cancelled]() -> task<> {
                try {
                    co_await b.wait();
                } catch (const corio::cancelled_error&) {
                    ++cancelled;
                    throw;
                }
            });
        }
        co_await settle();
    });
    CHECK(cancelled == 2);
}

TEST_CASE("locks: nothing is leaked (frames and captured values die)") {
    counted::reset();
    corio::testing::run([]() -> task<> {
        corio::lock lk;
        corio::semaphore sem(0);
        corio::event ev;
        corio::condition cond;
        corio::barrier b(5);
        auto g = co_await lk.acquire();
        std::vector<corio::task_handle<>> ts;
        counted c(1);
        ts.push_back(spawn([&lk, c]() -> task<> { auto h = co_await lk.acquire(); }));
        ts.push_back(spawn([&sem, c]() -> task<> { auto h = co_await sem.acquire(); }));
        ts.push_back(spawn([&ev, c]() -> task<> { co_await ev.wait(); }));
        ts.push_back(spawn([&cond, c]() -> task<> {
            auto h = co_await cond.acquire();
            co_await cond.wait();
        }));
        ts.push_back(spawn([&b, c]() -> task<> { co_await b.wait(); }));
        ts.push_back(spawn([&cond, c]() -> task<> {
            auto h = co_await cond.acquire();
            auto never = [] { return false; };
            co_await cond.wait_for(never);
        }));
        co_await settle();
        for (auto& t : ts) t.cancel();
        for (auto& t : ts) co_await t.wait_done();
        for (auto& t : ts) CHECK(t.cancelled());
    });
    CHECK(counted::alive() == 0);
}

TEST_CASE("locks: a primitive outlives a loop and serves the next one") {
    corio::lock lk;
    corio::semaphore sem(1);
    for (int run = 0; run < 2; ++run) {
        corio::testing::run([&]() -> task<> {
            auto g = co_await lk.acquire();
            auto t = spawn([&]() -> task<> { auto h = co_await lk.acquire(); });
            auto u = spawn([&]() -> task<> { auto h = co_await sem.acquire(); });
            auto s = co_await sem.acquire();
            co_await settle();
            g.release();
            s.release();
            co_await t.wait_done();
            co_await u.wait_done();
        });
        CHECK_FALSE(lk.locked());
        CHECK_FALSE(sem.locked());
    }
}
