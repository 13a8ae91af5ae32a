//! Compiles the .proto files with protox (a Rust protobuf compiler), so building needs no
//! system `protoc`. The descriptor set is kept for gRPC server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "metachat/common.proto",
        "metachat/user.proto",
        "metachat/diary.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["."])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("metachat_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
