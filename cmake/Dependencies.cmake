# Every dependency comes from a Debian 12 package (scripts/setup.sh installs them).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBZMQ REQUIRED IMPORTED_TARGET libzmq>=4.3)
find_path(CPPZMQ_INCLUDE_DIR zmq.hpp REQUIRED)            # cppzmq is header-only
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(tomlplusplus 3 REQUIRED)
find_package(Boost 1.74 REQUIRED)                           # Asio is header-only
if(STARLING_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

# LibTorch: Debian's libtorch-dev by default; on a GPU machine point Torch_DIR at the
# LibTorch bundled with PyTorch (python3 -c 'import torch; print(torch.utils.cmake_prefix_path)').
find_package(Torch REQUIRED)
# trainer.h passes std::string across the boundary between training (compiled with torch's
# flags) and everything else, so both sides must use the same libstdc++ ABI. LibTorch builds
# with the old ABI (PyTorch wheels before 2.6, the "pre-cxx11" LibTorch zips) would link to
# undefined symbols; say so here instead.
if(TORCH_CXX_FLAGS MATCHES "_GLIBCXX_USE_CXX11_ABI=0")
  message(FATAL_ERROR
    "The LibTorch at ${Torch_DIR} uses the pre-C++11 libstdc++ ABI (TORCH_CXX_FLAGS: "
    "${TORCH_CXX_FLAGS}); Starling and its Debian dependencies use the C++11 ABI. Use a "
    "cxx11-ABI LibTorch (PyTorch >= 2.6 wheels, or the 'cxx11 ABI' LibTorch download).")
endif()
find_package(ZLIB REQUIRED)                                 # the .gz IDX datasets
