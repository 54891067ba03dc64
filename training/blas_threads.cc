#include "training/blas_threads.h"

#include <dlfcn.h>

namespace starling::training {

bool limit_blas_threads(int threads) {
  using SetThreads = void (*)(int);
  void* symbol = ::dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
  if (!symbol) return false;
  // dlsym hands back a data pointer; POSIX guarantees it converts to a function pointer.
  auto set_threads = reinterpret_cast<SetThreads>(symbol);
  set_threads(threads);
  return true;
}

}  // namespace starling::training
