"""The caching-allocator model (measure.allocator), the GPU table, and the replay of a cell."""

from __future__ import annotations

import pytest

from ffbench.errors import BadInput
from ffbench.measure.allocator import CachingAllocator, round_size, segment_size
from ffbench.settings.gpus import GPUS, cublas_workspace_bytes, gpu, parse_memory

MIB = 1 << 20


def test_sizes_round_as_the_cuda_caching_allocator_does() -> None:
    assert [round_size(n) for n in (1, 511, 512, 513, 8000)] == [512, 512, 512, 1024, 8192]
    assert segment_size(512) == segment_size(MIB) == 2 * MIB  # small pool: 2 MiB segments
    assert segment_size(MIB + 512) == segment_size(10 * MIB - 512) == 20 * MIB
    assert segment_size(10 * MIB) == 10 * MIB
    assert segment_size(40_000_000) == 20 * 2 * MIB  # 38.15 MiB rounds up to 2 MiB: 40 MiB


def test_small_blocks_share_a_segment_and_freed_blocks_are_reused() -> None:
    allocator = CachingAllocator()
    a, b = allocator.malloc(1000), allocator.malloc(1000)
    assert allocator.reserved_bytes == 2 * MIB and allocator.allocated_bytes == 2048
    assert b.address == a.address + 1024  # split off the same segment, lowest address first
    allocator.free(a)
    c = allocator.malloc(600)
    assert c.address == a.address and c.size_bytes == 1024 - 512 + 512  # best fit: a's hole
    assert allocator.reserved_bytes == 2 * MIB


def test_a_large_block_is_not_split_for_a_rest_of_one_mib_or_less() -> None:
    allocator = CachingAllocator()
    block = allocator.malloc(40 * MIB)
    allocator.free(block)
    whole = allocator.malloc(40 * MIB - MIB)  # the rest would be exactly 1 MiB: not split
    assert whole.size_bytes == 40 * MIB and allocator.allocated_bytes == 40 * MIB
    allocator.free(whole)
    part = allocator.malloc(40 * MIB - 2 * MIB)  # 2 MiB left over: split
    assert part.size_bytes == 38 * MIB and allocator.allocated_bytes == 38 * MIB
    assert allocator.reserved_bytes == 40 * MIB


def test_freed_neighbours_merge_and_empty_cache_releases_whole_free_segments() -> None:
    allocator = CachingAllocator()
    blocks = [allocator.malloc(3 * MIB) for _ in range(3)]  # one 20 MiB segment
    keep = allocator.malloc(30 * MIB)  # a segment of its own
    assert allocator.reserved_bytes == 50 * MIB
    for block in blocks:
        allocator.free(block)
    assert allocator.malloc(19 * MIB).size_bytes == 20 * MIB  # merged back into one block
    allocator.empty_cache()
    assert allocator.reserved_bytes == 50 * MIB  # both segments hold a live block
    allocator.free(keep)
    allocator.empty_cache()
    assert allocator.reserved_bytes == 20 * MIB
    assert allocator.peak_reserved_bytes == 50 * MIB
    allocator.reset_peaks()
    assert allocator.peak_reserved_bytes == 20 * MIB


def test_cublas_workspace_by_architecture_and_config() -> None:
    assert cublas_workspace_bytes(gpu("h200"), config="") == 32 * MIB
    assert cublas_workspace_bytes(gpu("a100-80gb"), config="") == 8 * MIB + 128 * 1024
    assert cublas_workspace_bytes(gpu("h200"), config=":4096:2:16:8") == 8 * MIB + 128 * 1024
    assert cublas_workspace_bytes(gpu("h200"), config=":0:0") == 0


def test_gpu_names_and_memory_sizes() -> None:
    assert gpu("H200") is GPUS["h200"]
    assert parse_memory("24GiB") == 24 << 30 and parse_memory("80GB") == 80 * 10**9
    assert parse_memory("512") == 512
    with pytest.raises(BadInput, match="unknown GPU"):
        gpu("voodoo")
    with pytest.raises(BadInput, match="not a memory size"):
        parse_memory("lots")
