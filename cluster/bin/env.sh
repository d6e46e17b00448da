# Sourced by the scripts: one cargo target directory outside the clone, shared by tests,
# benchmarks and binaries (all in the release profile), so the rocksdb C++ build is done once.
# `--cfg tokio_unstable` lets turmoil seed tokio's own RNG, which makes every simulator run a
# function of its seed (sim/); it enables no unstable API in our code.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auction-cluster/target-tokio-unstable}"
# Added once: scripts source this file and call each other, and a flag repeated in RUSTFLAGS
# changes every fingerprint, which rebuilds everything (RocksDB's C++ included).
case " ${RUSTFLAGS:-} " in
  *" --cfg tokio_unstable "*) ;;
  *) export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }--cfg tokio_unstable" ;;
esac
# The S3-compatible server for auction images (installed by cluster/bin/setup), run by the local
# cluster and the black-box tests.
export AUCTION_S3S_FS="${AUCTION_S3S_FS:-${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs}"
