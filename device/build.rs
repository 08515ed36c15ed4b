//! Embeds models/edge-v4 when it is present (cfg `earshot_embedded_model`),
//! so that `earshotd` runs from anywhere with zero configuration.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(earshot_embedded_model)");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/edge-v4");
    let files = ["metadata.json", "model.onnx", "model.int8.onnx"];
    for f in files {
        println!("cargo::rerun-if-changed={}", dir.join(f).display());
    }
    println!("cargo::rerun-if-changed={}", dir.display());
    if files.iter().all(|f| dir.join(f).is_file()) {
        println!("cargo::rustc-cfg=earshot_embedded_model");
    } else {
        println!(
            "cargo::warning=models/edge-v4 is incomplete: earshotd is built without a built-in model (use --model DIR)"
        );
    }
}
