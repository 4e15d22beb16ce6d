#pragma once
/// \file corio/exceptions.hpp
/// The error types of corio, the counterparts of asyncio's exceptions.
///
/// | asyncio                    | corio                         | derives from          |
/// |----------------------------|-------------------------------|-----------------------|
/// | `CancelledError`           | `cancelled_error`             | `std::exception` only |
/// | `TimeoutError`             | `timeout_error`               | `std::runtime_error`  |
/// | `InvalidStateError`        | `invalid_state_error`         | `std::logic_error`    |
/// | `IncompleteReadError`      | `incomplete_read_error`       | `std::runtime_error`  |
/// | `LimitOverrunError`        | `limit_overrun_error`         | `std::runtime_error`  |
/// | `QueueEmpty` / `QueueFull` | `queue_empty` / `queue_full`  | `std::runtime_error`  |
/// | `QueueShutDown`            | `queue_shutdown`              | `std::runtime_error`  |
/// | `ExceptionGroup`           | `exception_group`             | `std::runtime_error`  |
///
/// `incomplete_read_error` and `limit_overrun_error` are declared for the streams still to come
/// (see docs/porting.md); the others are thrown today.

#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace corio {

/// Thrown into a coroutine at the `co_await` where it is suspended when its task is cancelled,
/// and by `result()` of a cancelled future.
///
/// It derives from `std::exception` but deliberately NOT from `std::runtime_error` (asyncio's
/// CancelledError is a BaseException for the same reason): a `catch (std::runtime_error&)` meant
/// for I/O errors must not swallow a cancellation. Catch it only to clean up, then rethrow.
class cancelled_error : public std::exception {
public:
    /// A cancellation without a message.
    cancelled_error() = default;
    /// A cancellation carrying `message` (what `cancel(msg)` passes on).
    explicit cancelled_error(std::string message) : m_message(std::move(message)) {}

    /// The message given to `cancel(msg)`, empty if none.
    const std::string& message() const noexcept { return m_message; }
    /// The message, or "cancelled" if it is empty.
    const char* what() const noexcept override {
        return m_message.empty() ? "cancelled" : m_message.c_str();
    }

private:
    std::string m_message;
};

/// An operation exceeded its deadline (`wait_for`, `with_timeout`, `timeout_at`, and the timeouts of `as_completed`).
class timeout_error : public std::runtime_error {
public:
    /// what() is "timed out".
    timeout_error() : std::runtime_error("timed out") {}
    /// With a message of its own.
    explicit timeout_error(const std::string& what) : std::runtime_error(what) {}
};

/// A future or task was used in a state that does not allow the operation: `result()` of a
/// pending future, `set_result()` on a finished one.
class invalid_state_error : public std::logic_error {
public:
    /// `what` describes the misuse, in asyncio's words where it has some ("Result is not set.").
    explicit invalid_state_error(const std::string& what) : std::logic_error(what) {}
};

/// `readexactly(n)` or `readuntil(sep)` met end of stream first (corio/streams.hpp).
class incomplete_read_error : public std::runtime_error {
public:
    /// `expected` is how many bytes were asked for, or `unknown_size` (readuntil). what() reads
    /// "P bytes read on a total of N expected bytes" (or "... of undefined expected bytes"), as
    /// asyncio's message.
    incomplete_read_error(std::string partial, std::size_t expected)
        : std::runtime_error(std::to_string(partial.size()) + " bytes read on a total of " +
                             (expected == unknown_size ? std::string("undefined")
                                                       : std::to_string(expected)) +
                             " expected bytes"),
          m_partial(std::move(partial)), m_expected(expected) {}

    /// The `expected()` of a read that had no size (asyncio's `expected=None`).
    static constexpr std::size_t unknown_size = static_cast<std::size_t>(-1);

    /// The bytes read before end of stream.
    const std::string& partial() const noexcept { return m_partial; }
    /// How many bytes were asked for; `unknown_size` for readuntil.
    std::size_t expected() const noexcept { return m_expected; }

private:
    std::string m_partial;
    std::size_t m_expected;
};

/// A separator was not found within the reader's `limit` (corio/streams.hpp).
class limit_overrun_error : public std::runtime_error {
public:
    /// `consumed`: see consumed().
    limit_overrun_error(const std::string& what, std::size_t consumed)
        : std::runtime_error(what), m_consumed(consumed) {}
    /// How many bytes are to be consumed (as asyncio's `LimitOverrunError.consumed`).
    std::size_t consumed() const noexcept { return m_consumed; }

private:
    std::size_t m_consumed;
};

/// `get_nowait()` on an empty queue.
class queue_empty : public std::runtime_error {
public:
    queue_empty() : std::runtime_error("queue is empty") {}
};

/// `put_nowait()` on a full queue.
class queue_full : public std::runtime_error {
public:
    queue_full() : std::runtime_error("queue is full") {}
};

/// `put`/`get` on a queue that was `shutdown()`.
class queue_shutdown : public std::runtime_error {
public:
    queue_shutdown() : std::runtime_error("queue is shut down") {}
};

/// Several errors at once (from a `task_group`): every one is kept.
class exception_group : public std::runtime_error {
public:
    /// `what` sums them up; `exceptions` are the errors themselves.
    exception_group(const std::string& what, std::vector<std::exception_ptr> exceptions)
        : std::runtime_error(what), m_exceptions(std::move(exceptions)) {}

    /// Every error of the group.
    const std::vector<std::exception_ptr>& exceptions() const noexcept { return m_exceptions; }

private:
    std::vector<std::exception_ptr> m_exceptions;
};

class event_loop;

/// What the loop's exception handler receives (asyncio's `context` dict, as a struct).
struct exception_context {
    std::string message;          ///< what happened, e.g. "Task exception was never retrieved"
    std::exception_ptr exception; ///< the error, or null for warnings without one
    std::string task_name;        ///< the task concerned, empty if none
};

} // namespace corio
