#pragma once
/// \file corio/detail/loop_registry.hpp
/// The loop's reference to the open transports and servers of corio's networking layer: the
/// loop owns them while they are open, and when it closes it detaches whatever is still open
/// (fds closed, protocols released, no callback), as asyncio drops such transports.

#include <corio/event_loop.hpp>

#include <cstddef>
#include <memory>
#include <unordered_map>

namespace corio::detail {

// --- Loop ownership ----------------------------------------------------------------------------

/// Something the loop owns while it is open (a transport, a server).
class loop_resource {
public:
    virtual ~loop_resource() = default;
    /// The loop is closing (called from inside `event_loop::close`): forget the loop, close the
    /// fds and release the protocol, without calling the loop or any protocol callback.
    virtual void loop_closed() noexcept = 0;
};

/// The open transports and servers of one loop: the loop's reference to them. It is one of
/// the loop's attachments (loop_ops::add_attachment), so the loop's close() destroys it, and
/// its destructor detaches everything still open.
class loop_registry {
public:
    /// The registry of `loop`, made on first use. Throws `std::runtime_error` if the loop is
    /// closed.
    static loop_registry& of(event_loop& loop) {
        if (loop_registry* r = find(loop)) return *r;
        auto reg = std::shared_ptr<loop_registry>(new loop_registry());
        loop_ops::add_attachment(loop, key(), reg);
        return *reg;
    }

    loop_registry(const loop_registry&) = delete;
    loop_registry& operator=(const loop_registry&) = delete;

    /// Detaches everything still open (the loop is closing).
    ~loop_registry() {
        auto items = std::move(m_items);
        m_items.clear();
        m_closing = true;
        for (auto& [raw, owned] : items) raw->loop_closed();
        // `items` releases its references here: transports and servers die unless a user
        // still holds them.
    }

    /// The loop now owns `r`.
    void add(std::shared_ptr<loop_resource> r) {
        if (m_closing) return;
        loop_resource* raw = r.get();
        m_items.emplace(raw, std::move(r));
    }
    /// The loop lets go of `r`; the reference is handed back so that the caller decides when
    /// the object may die (not in the middle of one of its own members).
    std::shared_ptr<loop_resource> remove(loop_resource* r) noexcept {
        auto it = m_items.find(r);
        if (it == m_items.end()) return nullptr;
        std::shared_ptr<loop_resource> out = std::move(it->second);
        m_items.erase(it);
        return out;
    }
    /// How many objects the loop owns (for tests).
    std::size_t size() const noexcept { return m_items.size(); }

    /// The registry of `loop` if it has one (for tests).
    static loop_registry* find(const event_loop& loop) noexcept {
        return static_cast<loop_registry*>(loop_ops::find_attachment(loop, key()));
    }

private:
    loop_registry() = default;

    static const void* key() noexcept {
        static const char k = 0;
        return &k;
    }

    std::unordered_map<loop_resource*, std::shared_ptr<loop_resource>> m_items;
    bool m_closing = false;
};

} // namespace corio::detail
