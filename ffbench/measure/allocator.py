"""A pure model of PyTorch's CUDA caching allocator (c10/cuda/CUDACachingAllocator.cpp).

What it models, with the allocator's defaults (no PYTORCH_CUDA_ALLOC_CONF, one stream):
- size rounding: every request rounds up to a multiple of 512 bytes (`round_size`);
- two pools: requests up to 1 MiB come from the small pool, larger ones from the large pool;
- segments (what cudaMalloc gets, i.e. what `memory_reserved` counts): 2 MiB for small
  requests, 20 MiB for large requests under 10 MiB, else the request rounded up to 2 MiB;
- best fit: the smallest free block of the pool that is large enough (ties: lowest address);
- splitting: a block larger than the request is split when the rest is at least 512 bytes
  (small pool) or more than 1 MiB (large pool); otherwise the whole block is handed out and
  counts as allocated (`memory_allocated` counts block sizes, not request sizes);
- freeing: the block returns to its pool and merges with free neighbours of its segment;
  no memory goes back to the driver until `empty_cache`, which releases whole free segments.

No torch here: a laptop replays a cell's predicted event log through it in milliseconds.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

MIN_BLOCK_BYTES = 512  # kMinBlockSize: every block is a multiple of this
SMALL_REQUEST_BYTES = 1 << 20  # kSmallSize: requests up to this come from the small pool
SMALL_SEGMENT_BYTES = 2 << 20  # kSmallBuffer
LARGE_SEGMENT_BYTES = 20 << 20  # kLargeBuffer: the segment for large requests under...
MIN_LARGE_ALLOC_BYTES = 10 << 20  # kMinLargeAlloc
LARGE_ROUND_BYTES = 2 << 20  # kRoundLarge: larger requests get their own segment, 2 MiB-rounded


def round_size(nbytes: int) -> int:
    """A block's size for a request of `nbytes` (CUDACachingAllocator round_size)."""
    if nbytes < MIN_BLOCK_BYTES:
        return MIN_BLOCK_BYTES
    return MIN_BLOCK_BYTES * -(-nbytes // MIN_BLOCK_BYTES)


def segment_size(block_bytes: int) -> int:
    """What cudaMalloc is asked for when no cached block fits (get_allocation_size)."""
    if block_bytes <= SMALL_REQUEST_BYTES:
        return SMALL_SEGMENT_BYTES
    if block_bytes < MIN_LARGE_ALLOC_BYTES:
        return LARGE_SEGMENT_BYTES
    return LARGE_ROUND_BYTES * -(-block_bytes // LARGE_ROUND_BYTES)


@dataclass(eq=False, slots=True)
class Block:
    address: int
    size_bytes: int
    small: bool  # which pool
    allocated: bool = False
    prev: Block | None = None  # neighbours inside the same segment
    next: Block | None = None


class _Pool:
    """Free blocks, ordered by (size, address) as the allocator's BlockPool set is: entries
    (size, address, block), never compared past the address (each block has its own)."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, int, Block]] = []

    def insert(self, block: Block) -> None:
        bisect.insort(self.entries, (block.size_bytes, block.address, block))

    def remove(self, block: Block) -> None:
        del self.entries[bisect.bisect_left(self.entries, (block.size_bytes, block.address))]

    def take_best_fit(self, size_bytes: int) -> Block | None:
        """The smallest block of at least `size_bytes` (lowest address first), taken out."""
        index = bisect.bisect_left(self.entries, (size_bytes, -1))
        return self.entries.pop(index)[2] if index < len(self.entries) else None


class CachingAllocator:
    """Allocated and reserved bytes, now and at their peaks, of a sequence of mallocs and frees."""

    def __init__(self) -> None:
        self._pools = {True: _Pool(), False: _Pool()}
        self._next_address = 0
        self.allocated_bytes = 0
        self.reserved_bytes = 0
        self.peak_allocated_bytes = 0
        self.peak_reserved_bytes = 0
        self._segments: list[Block] = []  # the first block of each segment

    def malloc(self, nbytes: int) -> Block:
        size = round_size(nbytes)
        small = size <= SMALL_REQUEST_BYTES
        pool = self._pools[small]
        block = pool.take_best_fit(size)
        if block is None:
            block = self._new_segment(segment_size(size), small)
        remaining = block.size_bytes - size
        if remaining >= MIN_BLOCK_BYTES if small else remaining > SMALL_REQUEST_BYTES:
            rest = Block(block.address + size, remaining, small, prev=block, next=block.next)
            if block.next is not None:
                block.next.prev = rest
            block.next, block.size_bytes = rest, size
            pool.insert(rest)
        block.allocated = True
        self.allocated_bytes += block.size_bytes
        if self.allocated_bytes > self.peak_allocated_bytes:
            self.peak_allocated_bytes = self.allocated_bytes
        return block

    def free(self, block: Block) -> None:
        assert block.allocated, "double free"
        block.allocated = False
        self.allocated_bytes -= block.size_bytes
        pool = self._pools[block.small]
        before, after = block.prev, block.next
        if before is not None and not before.allocated:
            pool.remove(before)
            block = self._merge(block, before)
        if after is not None and not after.allocated:
            pool.remove(after)
            block = self._merge(block, after)
        pool.insert(block)

    def empty_cache(self) -> None:
        """Release every segment that is one free block (torch.cuda.empty_cache)."""
        kept = []
        for first in self._segments:
            if first.allocated or first.next is not None:
                kept.append(first)
                continue
            self._pools[first.small].remove(first)
            self.reserved_bytes -= first.size_bytes
        self._segments = kept

    def reset_peaks(self) -> None:
        """torch.cuda.reset_peak_memory_stats: the peaks start again from now."""
        self.peak_allocated_bytes = self.allocated_bytes
        self.peak_reserved_bytes = self.reserved_bytes

    def _new_segment(self, size_bytes: int, small: bool) -> Block:
        block = Block(self._next_address, size_bytes, small)
        self._next_address += size_bytes
        self._segments.append(block)
        self.reserved_bytes += size_bytes
        self.peak_reserved_bytes = max(self.peak_reserved_bytes, self.reserved_bytes)
        return block

    def _merge(self, block: Block, neighbour: Block) -> Block:
        """One free block from two adjacent ones of a segment (the lower one stays)."""
        low, high = (neighbour, block) if neighbour is block.prev else (block, neighbour)
        low.size_bytes += high.size_bytes
        low.next = high.next
        if high.next is not None:
            high.next.prev = low
        return low
