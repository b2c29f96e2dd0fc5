"""Meters: CUDA allocator peaks, NVML device memory, host RSS, tensor tracking, timing, env."""
