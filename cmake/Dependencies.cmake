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
find_package(ZLIB REQUIRED)                                 # the .gz IDX datasets
