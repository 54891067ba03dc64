#pragma once
// Keeps glibc's allocator from returning large blocks to the kernel after every message.
//
// ZeroMQ allocates a fresh buffer for every large message it receives (on its I/O thread) and
// the buffer is freed by whoever consumed the message. With glibc's defaults, blocks of this
// size are mmap'ed or trimmed back to the kernel when freed, so every megabyte received paid
// for page faults and zeroing: about 5% of all CPU time in a 4-node gossip run, and 30% of the
// time of a 16 MiB allreduce. Raising the mmap and trim thresholds keeps freed blocks for
// reuse. Process-wide, so only executables call it, first thing in main().
namespace starling::gossip {

void tune_malloc_for_large_messages();

}  // namespace starling::gossip
