#pragma once
/// \file corio/detail/timer_heap.hpp
/// A 4-ary min-heap of deadlines with exact removal.
///
/// Entries carry their key inline (deadline, then insertion order), so comparisons never chase a
/// pointer; each node records its slot so that cancelling a timer removes it at once in
/// O(log n) instead of leaving a tombstone. A million pending timers cost 24 bytes each here.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace corio::detail {

/// A timer the heap can hold: embedded in a sleeping task's frame or in a `call_later` callback.
struct timer_node {
    static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
    /// Called once when the deadline passes (the node has already left the heap).
    void (*fire)(timer_node*) = nullptr;
    std::size_t heap_index = npos;
    std::int64_t when = 0; ///< loop time in nanoseconds

    bool in_heap() const noexcept { return heap_index != npos; }
};

class timer_heap {
public:
    bool empty() const noexcept { return m_heap.empty(); }
    std::size_t size() const noexcept { return m_heap.size(); }

    /// Precondition: !empty().
    std::int64_t top_when() const noexcept { return m_heap.front().when; }

    void push(timer_node* n, std::int64_t when) {
        n->when = when;
        m_heap.push_back(entry{when, m_seq++, n});
        sift_up(m_heap.size() - 1);
    }

    /// Precondition: !empty(). Removes and returns the earliest timer.
    timer_node* pop() noexcept {
        timer_node* n = m_heap.front().node;
        erase_at(0);
        return n;
    }

    /// Removes `n` if it is in the heap.
    void erase(timer_node* n) noexcept {
        if (n->in_heap()) erase_at(n->heap_index);
    }

private:
    static constexpr std::size_t arity = 4;

    struct entry {
        std::int64_t when;
        std::uint64_t seq; // equal deadlines fire in the order they were set
        timer_node* node;
        bool operator<(const entry& o) const noexcept {
            return when < o.when || (when == o.when && seq < o.seq);
        }
    };

    void place(std::size_t i, const entry& e) noexcept {
        m_heap[i] = e;
        e.node->heap_index = i;
    }

    void erase_at(std::size_t i) noexcept {
        m_heap[i].node->heap_index = timer_node::npos;
        entry last = m_heap.back();
        m_heap.pop_back();
        if (i == m_heap.size()) return;
        place(i, last);
        if (i > 0 && last < m_heap[(i - 1) / arity]) sift_up(i);
        else sift_down(i);
    }

    void sift_up(std::size_t i) noexcept {
        entry e = m_heap[i];
        while (i > 0) {
            std::size_t parent = (i - 1) / arity;
            if (!(e < m_heap[parent])) break;
            place(i, m_heap[parent]);
            i = parent;
        }
        place(i, e);
    }

    void sift_down(std::size_t i) noexcept {
        entry e = m_heap[i];
        const std::size_t n = m_heap.size();
        for (;;) {
            std::size_t first = i * arity + 1;
            if (first >= n) break;
            std::size_t last = first + arity < n ? first + arity : n;
            std::size_t best = first;
            for (std::size_t c = first + 1; c < last; ++c)
                if (m_heap[c] < m_heap[best]) best = c;
            if (!(m_heap[best] < e)) break;
            place(i, m_heap[best]);
            i = best;
        }
        place(i, e);
    }

    std::vector<entry> m_heap;
    std::uint64_t m_seq = 0;
};

} // namespace corio::detail
