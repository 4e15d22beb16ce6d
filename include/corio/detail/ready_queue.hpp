#pragma once
/// \file corio/detail/ready_queue.hpp
/// The loop's FIFO of runnable work. Nodes are intrusive: a task or a callback carries its own
/// link and entry point, so scheduling never allocates.

#include <cstddef>

namespace corio::detail {

/// Something the loop can run: a task step or a callback. `run` is a plain function pointer
/// (no vtable) so every kind of node keeps control of its own layout.
struct ready_node {
    ready_node* next_ready = nullptr;
    void (*run)(ready_node*) = nullptr;
};

/// Intrusive singly linked FIFO. A node is in at most one queue at a time; its owner keeps it
/// alive while it is queued.
class ready_queue {
public:
    ready_queue() = default;
    ready_queue(const ready_queue&) = delete;
    ready_queue& operator=(const ready_queue&) = delete;

    bool empty() const noexcept { return m_head == nullptr; }
    std::size_t size() const noexcept { return m_size; }

    void push(ready_node* n) noexcept {
        n->next_ready = nullptr;
        if (m_tail) m_tail->next_ready = n;
        else m_head = n;
        m_tail = n;
        ++m_size;
    }

    /// Precondition: !empty().
    ready_node* pop() noexcept {
        ready_node* n = m_head;
        m_head = n->next_ready;
        if (!m_head) m_tail = nullptr;
        n->next_ready = nullptr;
        --m_size;
        return n;
    }

private:
    ready_node* m_head = nullptr;
    ready_node* m_tail = nullptr;
    std::size_t m_size = 0;
};

} // namespace corio::detail
