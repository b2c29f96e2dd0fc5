"""One cell in this process: build, warm-up, memory and timing passes, the meta trace and
the allocator's view, explained byte by byte -> one result row."""
