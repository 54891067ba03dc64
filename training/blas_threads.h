#pragma once
// Bounding the BLAS library's own thread pool. LibTorch's set_num_threads() sizes its OpenMP
// pool (and MKL's), but a LibTorch linked against a pthreads OpenBLAS (Debian's) runs every
// GEMM on OpenBLAS's pool, which defaults to one thread per core and busy-waits between calls.
// A node configured for N threads must not use more, or nodes sharing a machine fight for it.
namespace starling::training {

// Sets OpenBLAS's thread count when OpenBLAS is loaded in this process (found at run time, so
// nothing links against it); returns false when there is none to set.
bool limit_blas_threads(int threads);

}  // namespace starling::training
