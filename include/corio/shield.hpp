#pragma once
/// \file corio/shield.hpp
/// `co_await corio::shield(aw)`: asyncio.shield. Waits for `aw` like `co_await aw` would, except
/// that cancelling the waiting task does not cancel `aw`:
///
///     auto save = corio::create_task(save_to_disk(doc));
///     co_await corio::shield(save);     // a cancel() of this task stops the waiting, not the save
///
/// - `aw` runs as a task of its own: a future or task handle is watched as it is; anything else
///   (a `task<T>`, a callable returning an awaitable, an awaitable) is wrapped in a task at the
///   call (asyncio's ensure_future), so it runs whether or not the shield is awaited.
/// - Cancelling the awaiting task: the await throws `cancelled_error` at once (on the task's next
///   step), and `aw` goes on; its result stays in its future for anyone else who awaits it.
/// - If `aw` itself is cancelled (by someone else), the await throws its `cancelled_error`.
/// - An error `aw` ends with after the waiter was cancelled is not retrieved by the shield: if
///   nobody else retrieves it, the loop reports "Task exception was never retrieved" when the
///   task is dropped (asyncio 3.12 does the same).
///
/// Cost: no allocation beyond the task (if one is made); the waiting node lives in the awaiting
/// coroutine's frame, as for `co_await fut`.

#include <corio/event_loop.hpp>
#include <corio/exceptions.hpp>
#include <corio/future.hpp>
#include <corio/task.hpp>

#include <coroutine>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace corio {
namespace detail {

/// Waits for a future and takes its result like future_awaiter, but a cancellation of the
/// waiting task only detaches it (as completion_awaiter does): the future is left alone.
/// Waiting through a shield is waiting for the future, except that cancellation only detaches.
template <class T>
using shield_awaiter = future_awaiter<T, on_waiter_cancel::detach>;

/// What shield() returns: holds the shielded future until awaited. Movable (so it can itself be
/// handed to create_task or gather); each `co_await` makes a shield_awaiter.
template <class T>
class [[nodiscard]] shield_awaitable {
public:
    explicit shield_awaitable(future<T> inner) noexcept : m_inner(std::move(inner)) {}

    shield_awaiter<T> operator co_await() && noexcept { return shield_awaiter<T>(std::move(m_inner)); }
    shield_awaiter<T> operator co_await() const& noexcept { return shield_awaiter<T>(m_inner); }

    /// The shielded future (or task handle, as a future).
    const future<T>& inner() const noexcept { return m_inner; }

private:
    future<T> m_inner;
};

} // namespace detail

/// asyncio.shield(aw): `co_await corio::shield(aw)` gives what `co_await aw` would, but
/// cancelling the awaiting task does not cancel `aw` (see the file comment).
///
/// `aw` is a future or task handle (watched; copied if an lvalue), or anything create_task
/// accepts (a `task<T>` moved in, a callable returning an awaitable, an awaitable), which is
/// wrapped in a task now, on the running loop.
///
/// Result: `aw`'s value (copied out of a future others hold, moved out of a task the shield
/// made). Throws `aw`'s error; `cancelled_error` if `aw` was cancelled; `cancelled_error` at once
/// if the awaiting task is cancelled (`aw` keeps running). Throws `std::runtime_error` at the
/// call without a running loop when a task must be made, `invalid_state_error` at the await for
/// an empty future handle. Awaiting a future that is already done does not suspend.
template <class Aw>
[[nodiscard]] auto shield(Aw&& aw) {
    auto inner = ensure_future(std::forward<Aw>(aw));
    using T = typename decltype(inner)::value_type;
    return detail::shield_awaitable<T>(future<T>(std::move(inner)));
}

} // namespace corio
