# Sourced by the scripts: one cargo target directory outside the clone, shared by tests,
# benchmarks and binaries (all in the release profile), so the rocksdb C++ build is done once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auction-cluster/target}"
