// torch-sys adds no rpath: embed libtorch's lib dir so binaries and tests run without LD_LIBRARY_PATH.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Ok(libtorch) = std::env::var("LIBTORCH") else { return };
    let lib = Path::new(&libtorch).join("lib");
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    // rustc's --as-needed drops libtorch_cuda (nothing references it directly), which hides CUDA from tch.
    // Link it only on a full CUDA install (cuDNN present): the slim CPU install cannot load it.
    if lib.join("../../nvidia/cudnn").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
