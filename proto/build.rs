//! Generates the gRPC code from `proto/*.proto` with `protox` (a pure-Rust protobuf compiler),
//! so building needs no `protoc` binary.

const PROTO_FILES: [&str; 3] = [
    "proto/raft.proto",
    "proto/client.proto",
    "proto/admin.proto",
];
const PROTO_INCLUDE_DIRS: [&str; 1] = ["proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let file_descriptors = protox::compile(PROTO_FILES, PROTO_INCLUDE_DIRS)?;
    tonic_prost_build::configure()
        // Payloads are sliced and forwarded, never inspected: `Bytes` avoids copying them.
        .bytes(".auction")
        .compile_fds(file_descriptors)?;
    Ok(())
}
