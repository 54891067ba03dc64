#include "gossip/malloc_tuning.h"

#include <malloc.h>

namespace starling::gossip {

void tune_malloc_for_large_messages() {
  mallopt(M_MMAP_THRESHOLD, 256 << 20);  // blocks below 256 MiB come from the heap
  mallopt(M_TRIM_THRESHOLD, 1 << 30);    // and free memory is not handed back eagerly
}

}  // namespace starling::gossip
