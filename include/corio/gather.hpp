#pragma once
/// \file corio/gather.hpp
/// `co_await corio::gather(a, b, c)`: asyncio.gather. Runs awaitables concurrently and gives
/// every result, in the order they were passed; `gather_settled` is
/// `gather(..., return_exceptions=True)`. Also `corio::none` (the value of a `void` awaitable
/// where a value is needed) and `corio::outcome<T>` (a value or an error).
///
///     auto [n, s] = co_await corio::gather(count(), fetch("x"));    // std::tuple<int, std::string>
///     std::vector<int> all = co_await corio::gather(std::move(tasks));  // a range, input order
///
/// ## What happens when
/// - `gather(...)` is asyncio's: each argument that is not a future is wrapped in a task
///   (`create_task`) **at the call**, so the children start on the next loop iteration whether
///   or not the result is ever awaited. Futures and task handles are watched as they are. The
///   loop is that of the first argument (the running loop for one that is not a future), so a
///   gather of futures can be made before its loop runs; any other needs a running loop.
/// - It returns a `future<R>` (R = `std::tuple<...>` or `std::vector<...>`), asyncio's
///   `_GatheringFuture`: await it, `cancel()` it, give it to `wait`, or drop it. A dropped gather
///   does not stop its children, which are tasks; if it fails and nobody awaits it, the loop
///   reports "Future exception was never retrieved" for it, once its children are done (asyncio
///   does the same).
/// - The first child that fails completes the gather with that error; the others keep running
///   (they are not cancelled), and the errors they end with later count as retrieved, as in
///   asyncio: no "exception was never retrieved" report for them.
/// - Cancelling the task that awaits the gather (or calling `cancel()` on the gather future)
///   cancels every child that is not done; the await then throws `cancelled_error` once the
///   children have reacted: the first one to finish, for gather (or the error it ended with, if
///   it turned the cancellation into one); all of them, for gather_settled.
/// - A child cancelled by someone else counts as failing with its `cancelled_error` (gather
///   throws it; gather_settled gives an outcome holding it); the task awaiting the gather is
///   not cancelled for that, and the other children go on.
/// - A gather that ends with a cancellation is a cancelled future (`cancelled()` is true, and it
///   is never reported as unretrieved); asyncio's stays "done with a CancelledError" instead.
///
/// ## Cost
/// A variadic gather allocates its state once (a future holding one intrusive waiter node per
/// child); a range gather allocates a `std::vector` of nodes (which grows while an unsized range
/// is read) and the state. Plus one task per argument that is not already a future, and the
/// result. Children are watched by nodes in their waiter lists, not by done callbacks: nothing
/// is allocated per child, no trip through the loop, and the work is linear in the number of
/// children. A child that finishes completes the gather (or counts towards it) on the spot; the
/// awaiting task is then woken through the loop as usual. (Completion of nested gathers recurses
/// once per level of nesting, as cancellation does in asyncio.)
///
/// ## Lifetimes
/// The gather holds no reference to a child that is still pending (a pending task is owned by
/// its loop; a pending future by its other handles), so there is no reference cycle: if every
/// handle of a pending plain future is dropped, nobody can ever complete it, and gather treats it
/// as cancelled. The state lives while a handle to the gather exists or a child is pending.

#include <corio/event_loop.hpp>
#include <corio/exceptions.hpp>
#include <corio/future.hpp>
#include <corio/task.hpp>

#include <array>
#include <cstddef>
#include <exception>
#include <iterator>
#include <ranges>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace corio {

/// The result of a `void` awaitable where a value is needed: in the tuple or vector of a
/// gather, in an `outcome<void>`. An empty value; all `none`s are equal.
struct none {
    /// All `none`s are equal.
    friend constexpr bool operator==(none, none) noexcept = default;
};

/// A value or an error: what `gather_settled` gives for each child (asyncio's
/// `return_exceptions=True`, where the list holds either the result or the exception).
///
/// `outcome<void>` holds a `none`. A cancelled child gives an outcome holding its
/// `cancelled_error`.
template <class T>
class outcome {
public:
    /// What it holds on success: `T`, or `none` for `outcome<void>`.
    using value_type = std::conditional_t<std::is_void_v<T>, none, T>;

    /// An outcome holding `v`.
    outcome(value_type v) noexcept(std::is_nothrow_move_constructible_v<value_type>)
        : m_state(std::in_place_index<0>, std::move(v)) {}

    /// An outcome holding the error `e`. Throws `std::invalid_argument` if `e` is null.
    static outcome failure(std::exception_ptr e) {
        if (!e) throw std::invalid_argument("corio::outcome: a failure needs an exception");
        return outcome(failure_tag{}, std::move(e));
    }

    /// True if it holds a value.
    bool has_value() const noexcept { return m_state.index() == 0; }
    /// True if it holds a value (as has_value()).
    explicit operator bool() const noexcept { return has_value(); }

    ///@{
    /// The value; rethrows the error if it holds one.
    value_type& value() & {
        rethrow_if_error();
        return *std::get_if<0>(&m_state);
    }
    const value_type& value() const& {
        rethrow_if_error();
        return *std::get_if<0>(&m_state);
    }
    value_type&& value() && {
        rethrow_if_error();
        return std::move(*std::get_if<0>(&m_state));
    }
    ///@}

    /// The error, or a null `exception_ptr` if it holds a value.
    std::exception_ptr error() const noexcept {
        if (const std::exception_ptr* e = std::get_if<1>(&m_state)) return *e;
        return nullptr;
    }

private:
    struct failure_tag {};
    outcome(failure_tag, std::exception_ptr e) noexcept : m_state(std::in_place_index<1>, std::move(e)) {}
    void rethrow_if_error() const {
        if (const std::exception_ptr* e = std::get_if<1>(&m_state)) std::rethrow_exception(*e);
    }

    std::variant<value_type, std::exception_ptr> m_state;
};

namespace detail {

// --- What gather accepts: what ensure_future accepts ---------------------------------------------

/// A future or task handle, a `task<T>`, a callable returning an awaitable, or an awaitable.
template <class A>
concept gatherable =
    is_future_v<A> || is_task<std::remove_cvref_t<A>>::value ||
    (std::is_invocable_v<std::remove_cvref_t<A>&> &&
     awaitable<std::invoke_result_t<std::remove_cvref_t<A>&>>) ||
    awaitable<std::remove_cvref_t<A>>;

/// The `T` of the `future<T>` that ensure_future would make of an `A` (as_task's order: a
/// future or task, then a callable, then an awaitable). No `type` for anything else, so that
/// the overloads' return types fail quietly (clang checks them before the constraints).
template <class A>
struct gather_child {};
template <class A>
    requires(is_future_v<A> || is_task<std::remove_cvref_t<A>>::value)
struct gather_child<A> {
    using type = typename std::remove_cvref_t<A>::value_type;
};
template <class A>
    requires(!is_future_v<A> && !is_task<std::remove_cvref_t<A>>::value &&
             std::is_invocable_v<std::remove_cvref_t<A>&> &&
             awaitable<std::invoke_result_t<std::remove_cvref_t<A>&>>)
struct gather_child<A> {
    using type = std::remove_cvref_t<await_result_t<std::invoke_result_t<std::remove_cvref_t<A>&>>>;
};
template <class A>
    requires(!is_future_v<A> && !is_task<std::remove_cvref_t<A>>::value &&
             !std::is_invocable_v<std::remove_cvref_t<A>&> && awaitable<std::remove_cvref_t<A>>)
struct gather_child<A> {
    using type = std::remove_cvref_t<await_result_t<std::remove_cvref_t<A>>>;
};

/// See gather_child.
template <class A>
using gather_child_t = typename gather_child<A>::type;

/// `T`, or `none` for void.
template <class T>
using gather_value_t = std::conditional_t<std::is_void_v<T>, none, T>;

/// What a gather gives for a child of type `T`.
template <bool Settled, class T>
using gather_element_t = std::conditional_t<Settled, outcome<T>, gather_value_t<T>>;

/// Checks a future argument and settles the gather's loop as asyncio does: the loop of the
/// first argument (the running loop for one that is not a future); every future must share it.
template <class A>
void gather_note_loop(event_loop*& loop, const A& a) {
    if constexpr (is_future_v<A>) {
        if (!a) throw invalid_state_error("corio::gather: an empty future handle");
        event_loop* own = static_cast<const future_base&>(a).core()->loop(); // task_handle hides core()
        loop_ops::check_open(own);
        if (!loop) loop = own;
        else if (loop != own)
            throw std::invalid_argument("corio::gather: the futures belong to different event loops");
    } else {
        if (!loop) loop = &get_running_loop();
    }
}

/// The child future for an argument: the future itself, or a new task on `loop`. Returns one
/// reference to its state, owned by the caller.
template <class A>
future_core* gather_spawn(event_loop& loop, A&& a) {
    using T = gather_child_t<A>;
    future<T> f = [&] {
        if constexpr (is_future_v<A>) {
            return future<T>(std::forward<A>(a));
        } else {
            static_assert(!(is_task<std::remove_cvref_t<A>>::value && std::is_lvalue_reference_v<A>),
                          "corio::gather: a task is move-only; pass it with std::move(t)");
            return future<T>(loop.create_task(std::forward<A>(a)));
        }
    }();
    future_core* c = f.core();
    c->add_ref(); // outlives `f`
    return c;
}

/// A future's cancelled_error, as an exception_ptr (exception() throws it rather than return it).
inline std::exception_ptr gather_cancellation_of(future_core& c) noexcept {
    try {
        (void)c.exception();
    } catch (...) {
        return std::current_exception();
    }
    return std::make_exception_ptr(cancelled_error());
}

/// One child, as the gather sees it. Sits in the child's waiter list while the child is pending
/// (then `child` is a plain pointer: the gather holds no reference to a pending child); once the
/// child is done, `child` owns one reference until the result is collected or not needed.
struct gather_node : future_waiter {
    future_core* child = nullptr; ///< null once released, or if the child died pending
    future_core* gather = nullptr;
};

/// The gather's future (asyncio's _GatheringFuture) and its bookkeeping. `Nodes` is a
/// `std::array` or `std::vector` of gather_node, never resized once the state exists (nodes sit
/// in waiter lists).
template <class R, class Nodes>
class gather_state : public future_state<R> {
    using status = future_core::status;

public:
    /// asyncio's _GatheringFuture.cancel: cancels every pending child; true if any was.
    bool cancel(std::string msg) override {
        if (this->done()) return false;
        this->add_ref(); // a child's completion must not free us mid-loop
        struct keep {
            gather_state* s;
            ~keep() { s->release(); }
        } k{this};
        // Set first: a plain future child completes synchronously inside its cancel(), and if it
        // is the last, completion must already see the request (asyncio's _cancel_requested).
        const bool was_requested = std::exchange(m_cancel_requested, true);
        std::string previous = std::exchange(m_cancel_message, msg);
        bool any = false;
        for (gather_node& n : m_nodes) {
            if (!n.owner) continue; // done already
            future_core* c = n.child;
            c->add_ref();
            struct drop {
                future_core* c;
                ~drop() { c->release(); }
            } d{c};
            if (c->cancel(msg)) any = true;
        }
        if (!any) {
            m_cancel_requested = was_requested;
            m_cancel_message = std::move(previous);
        }
        return any;
    }

    /// Watches the children (their references are in the nodes). Called once, by the factory,
    /// after it made the handle it returns (so finishing here cannot free the state).
    void start() noexcept {
        m_unfinished = m_nodes.size();
        if (m_unfinished == 0) {
            complete();
            return;
        }
        this->add_ref(); // the pending children's: dropped when the last one is done
        for (gather_node& n : m_nodes) {
            n.gather = this;
            n.on_done = &on_child_done;
            n.on_discard = &on_child_discarded;
        }
        for (gather_node& n : m_nodes) {
            future_core* c = n.child;
            if (c->done()) {
                child_done(n); // takes a reference of its own if it keeps the child
            } else {
                c->add_waiter(&n);
            }
            c->release(); // may discard a plain future nobody else holds: then on_child_discarded
        }
    }

protected:
    gather_state(event_loop* loop, Nodes nodes, bool settled) noexcept
        : future_state<R>(loop), m_nodes(std::move(nodes)), m_settled(settled) {}
    ~gather_state() override {
        for (gather_node& n : m_nodes)
            if (n.child && !n.owner) n.child->release();
    }

    /// Builds the result from the children: all done, and in plain mode all succeeded. Takes
    /// the references the nodes hold.
    virtual R collect() = 0;

    Nodes m_nodes;

private:
    static void on_child_done(future_waiter* w) noexcept {
        auto* n = static_cast<gather_node*>(w);
        static_cast<gather_state*>(n->gather)->child_done(*n);
    }
    static void on_child_discarded(future_waiter* w) noexcept {
        auto* n = static_cast<gather_node*>(w);
        static_cast<gather_state*>(n->gather)->child_discarded(*n);
    }

    /// A loop that is closed cannot run the wake-ups finishing the gather would schedule.
    bool can_finish() const noexcept { return this->loop() && !this->loop()->is_closed(); }

    /// asyncio's gather._done_callback, for child `n` (done, and alive while this runs).
    void child_done(gather_node& n) noexcept {
        future_core& c = *n.child;
        if (this->done() || !can_finish()) {
            // Nobody will read it: mark its error retrieved, as asyncio does.
            if (!c.cancelled()) (void)c.exception();
            n.child = nullptr;
        } else if (!m_settled && c.cancelled()) {
            n.child = nullptr;
            this->finish(status::cancelled, gather_cancellation_of(c));
        } else if (std::exception_ptr e = m_settled || c.cancelled() ? nullptr : c.exception()) {
            n.child = nullptr;
            this->finish(status::done, std::move(e));
        } else {
            c.add_ref(); // kept for collect()
        }
        child_finished();
    }

    /// A pending plain future died (its last handle was dropped): nobody can complete it any
    /// more. It counts as cancelled, as a task destroyed while pending does.
    void child_discarded(gather_node& n) noexcept {
        n.child = nullptr;
        if (!this->done() && !m_settled && can_finish()) {
            try {
                this->finish(status::cancelled, std::make_exception_ptr(cancelled_error()));
            } catch (...) {
            }
        }
        child_finished();
    }

    void child_finished() noexcept {
        if (--m_unfinished != 0) return;
        if (!this->done() && can_finish()) complete();
        this->release(); // the pending children's reference: `this` may be gone now
    }

    /// Every child is done and the gather is not: its result, or cancelled_error if it was
    /// cancelled (asyncio: whatever return_exceptions says, issue 32684).
    void complete() noexcept {
        if (m_cancel_requested) {
            for (gather_node& n : m_nodes) {
                if (!n.child) continue;
                if (!n.child->cancelled()) (void)n.child->exception(); // retrieved
                std::exchange(n.child, nullptr)->release();
            }
            std::exception_ptr e;
            try {
                e = std::make_exception_ptr(cancelled_error(m_cancel_message));
            } catch (...) {
                e = std::current_exception();
            }
            this->finish(status::cancelled, std::move(e));
            return;
        }
        try {
            this->emplace(collect());
        } catch (...) {
            this->finish(status::done, std::current_exception());
            return;
        }
        this->finish(status::done, nullptr);
    }

    std::size_t m_unfinished = 0;
    std::string m_cancel_message;
    bool m_settled;
    bool m_cancel_requested = false;
};

/// Takes child `n`'s result for the gather's R (its reference goes with it).
template <bool Settled, class T>
gather_element_t<Settled, T> gather_take(gather_node& n) {
    if constexpr (Settled) {
        if (!n.child) return outcome<T>::failure(std::make_exception_ptr(cancelled_error()));
        future<T> f = future<T>::adopt(static_cast<future_state<T>*>(std::exchange(n.child, nullptr)));
        if (f.cancelled()) return outcome<T>::failure(gather_cancellation_of(*f.core()));
        if (std::exception_ptr e = f.exception()) return outcome<T>::failure(std::move(e));
        if constexpr (std::is_void_v<T>) {
            return outcome<T>(none{});
        } else {
            return outcome<T>(std::move(f).result()); // moved out when the gather held the last handle
        }
    } else {
        future<T> f = future<T>::adopt(static_cast<future_state<T>*>(std::exchange(n.child, nullptr)));
        if constexpr (std::is_void_v<T>) {
            f.result();
            return none{};
        } else {
            return std::move(f).result();
        }
    }
}

template <bool Settled, class... T>
using gather_tuple_t = std::tuple<gather_element_t<Settled, T>...>;

template <bool Settled, class... T>
class gather_tuple_state final
    : public gather_state<gather_tuple_t<Settled, T...>, std::array<gather_node, sizeof...(T)>> {
    using base = gather_state<gather_tuple_t<Settled, T...>, std::array<gather_node, sizeof...(T)>>;

public:
    gather_tuple_state(event_loop* loop, const std::array<gather_node, sizeof...(T)>& nodes) noexcept
        : base(loop, nodes, Settled) {}

private:
    gather_tuple_t<Settled, T...> collect() override {
        return collect_impl(std::index_sequence_for<T...>{});
    }
    template <std::size_t... I>
    gather_tuple_t<Settled, T...> collect_impl(std::index_sequence<I...>) {
        return gather_tuple_t<Settled, T...>(gather_take<Settled, T>(this->m_nodes[I])...);
    }
};

template <bool Settled, class T>
class gather_range_state final
    : public gather_state<std::vector<gather_element_t<Settled, T>>, std::vector<gather_node>> {
    using base = gather_state<std::vector<gather_element_t<Settled, T>>, std::vector<gather_node>>;

public:
    gather_range_state(event_loop* loop, std::vector<gather_node>&& nodes) noexcept
        : base(loop, std::move(nodes), Settled) {}

private:
    std::vector<gather_element_t<Settled, T>> collect() override {
        std::vector<gather_element_t<Settled, T>> out;
        out.reserve(this->m_nodes.size());
        for (gather_node& n : this->m_nodes) out.push_back(gather_take<Settled, T>(n));
        return out;
    }
};

/// Releases the references a factory put in its nodes if it fails before the state owns them.
template <class Nodes>
struct gather_nodes_guard {
    Nodes& nodes;
    bool armed = true;
    ~gather_nodes_guard() {
        if (!armed) return;
        for (gather_node& n : nodes)
            if (n.child) n.child->release();
    }
};

template <bool Settled, class... A>
auto gather_args(A&&... aws) {
    using state = gather_tuple_state<Settled, gather_child_t<A>...>;
    using result = gather_tuple_t<Settled, gather_child_t<A>...>;
    event_loop* loop = nullptr;
    (gather_note_loop(loop, aws), ...); // every check before the first task is created
    if (!loop) loop = &get_running_loop();
    std::array<gather_node, sizeof...(A)> nodes{};
    gather_nodes_guard<decltype(nodes)> guard{nodes};
    std::size_t i = 0;
    ((nodes[i++].child = gather_spawn(*loop, std::forward<A>(aws))), ...);
    auto* st = new state(loop, nodes);
    guard.armed = false;
    auto f = future<result>::adopt(st);
    st->start();
    return f;
}

template <bool Settled, class R>
auto gather_range(R&& range) {
    // An rvalue range gives its elements up (tasks are move-only); an lvalue range of tasks
    // cannot, unless it yields them by value (a view).
    using ref = std::conditional_t<std::is_lvalue_reference_v<R>, std::ranges::range_reference_t<R>,
                                   std::ranges::range_rvalue_reference_t<R>>;
    static_assert(!(is_task<std::remove_cvref_t<ref>>::value && std::is_lvalue_reference_v<ref>),
                  "corio::gather: tasks are move-only; pass the range with std::move(range)");
    using T = gather_child_t<ref>;
    using result = std::vector<gather_element_t<Settled, T>>;
    event_loop* loop = nullptr;
    if constexpr (!is_future_v<ref>) loop = &get_running_loop();
    std::vector<gather_node> nodes;
    gather_nodes_guard<std::vector<gather_node>> guard{nodes};
    if constexpr (std::ranges::sized_range<R>) nodes.reserve(static_cast<std::size_t>(std::ranges::size(range)));
    for (auto it = std::ranges::begin(range); it != std::ranges::end(range); ++it) {
        nodes.emplace_back(); // before spawning: a task is never created and then lost
        // Dereferenced once: a view may make its element (a task) on each dereference.
        auto&& element = [&]() -> ref {
            if constexpr (std::is_lvalue_reference_v<R>) return *it;
            else return std::ranges::iter_move(it);
        }();
        gather_note_loop(loop, element);
        nodes.back().child = gather_spawn(*loop, std::forward<ref>(element));
    }
    if (!loop) loop = &get_running_loop(); // an empty range of futures
    auto* st = new gather_range_state<Settled, T>(loop, std::move(nodes));
    guard.armed = false;
    auto f = future<result>::adopt(st);
    st->start();
    return f;
}

/// What the range gather takes: an input range of what the variadic gather takes, that is not
/// itself one of those.
template <class R>
concept gather_range_of =
    std::ranges::input_range<R> && !gatherable<R> && gatherable<std::ranges::range_reference_t<R>>;

} // namespace detail

/// asyncio.gather(a, b, c): runs the awaitables concurrently and gives their results as a
/// tuple, in argument order (a `void` result is `none`):
///
///     auto [user, posts] = co_await corio::gather(fetch_user(id), fetch_posts(id));
///
/// Each argument is a `task<T>` (moved in), a callable returning an awaitable, any awaitable,
/// or a future/task handle (the future itself is watched; an lvalue handle is copied, which
/// shares the future). Those that are not futures become tasks right now, scheduled on the loop
/// of the first argument (the running loop for a non-future); they run whether or not the
/// result is awaited (see the file comment).
///
/// Result: a `future<std::tuple<T...>>`, done when every child is (or the first one fails).
/// Awaiting it gives the tuple (moved out) or throws:
/// - the first error a child ends with; the other children keep running, and their errors are
///   marked retrieved (no "exception was never retrieved" report);
/// - `cancelled_error` if a child was cancelled (by someone else: the other children go on);
/// - `cancelled_error` if the awaiting task was cancelled: that cancels every pending child,
///   and the await throws once the first of them has finished.
///
/// Throws at the call: `std::runtime_error` without a running loop (unless the first argument is
/// a future), `std::invalid_argument` if futures belong to different loops,
/// `invalid_state_error` for an empty future handle.
template <class... Aws>
    requires(detail::gatherable<Aws> && ...)
[[nodiscard]] future<std::tuple<detail::gather_value_t<detail::gather_child_t<Aws>>...>>
gather(Aws&&... aws) {
    return detail::gather_args<false>(std::forward<Aws>(aws)...);
}

/// asyncio.gather(*aws): as the variadic gather, for a range of awaitables of one type (tasks,
/// task handles, futures, ...), giving a `std::vector` of results in the range's order (`none`
/// for `void`). A range of `task<T>` must be an rvalue (`std::move(tasks)`): its tasks are
/// moved out. An empty range gives a future that is already done, with an empty vector.
///
/// Results, errors and cancellation: as the variadic gather. For a range of tasks the loop is
/// the running one; for futures, the loop of the first.
template <class R>
    requires detail::gather_range_of<R>
[[nodiscard]] future<std::vector<detail::gather_value_t<detail::gather_child_t<std::ranges::range_reference_t<R>>>>>
gather(R&& range) {
    return detail::gather_range<false>(std::forward<R>(range));
}

/// asyncio.gather(a, b, c, return_exceptions=True): as gather, but a child's error does not
/// complete the gather: every child's result comes back as an `outcome<T>` (its value, or its
/// error; a child that was cancelled gives its `cancelled_error`), once all are done.
///
///     auto [a, b] = co_await corio::gather_settled(may_fail(), other());
///     if (!a) log(a.error());
///
/// Cancelling the awaiting task still cancels every pending child; the await throws
/// `cancelled_error` once they have all finished (asyncio, whatever return_exceptions says).
/// Throws at the call as gather does.
template <class... Aws>
    requires(detail::gatherable<Aws> && ...)
[[nodiscard]] future<std::tuple<outcome<detail::gather_child_t<Aws>>...>> gather_settled(Aws&&... aws) {
    return detail::gather_args<true>(std::forward<Aws>(aws)...);
}

/// asyncio.gather(*aws, return_exceptions=True): as gather_settled, for a range; gives a
/// `std::vector<outcome<T>>` in the range's order (empty at once for an empty range).
template <class R>
    requires detail::gather_range_of<R>
[[nodiscard]] future<std::vector<outcome<detail::gather_child_t<std::ranges::range_reference_t<R>>>>>
gather_settled(R&& range) {
    return detail::gather_range<true>(std::forward<R>(range));
}

} // namespace corio
