//! Embeds the shipped model (its id is the one line of models/SHIPPED) when its
//! files are present (cfg `earshot_embedded_model`), so that `earshotd` runs
//! from anywhere with zero configuration.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(earshot_embedded_model)");
    // At run time, not env!(): a compiled build script is reused by a checkout
    // at another path sharing the target directory (CI's cached cross build),
    // and would look for the model in the old one.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into());
    let models = Path::new(&manifest_dir).join("../models");
    let shipped = models.join("SHIPPED");
    println!("cargo::rerun-if-changed={}", shipped.display());
    let id = match std::fs::read_to_string(&shipped) {
        Ok(s) => s.trim().to_string(),
        Err(e) => {
            println!(
                "cargo::warning={}: {e}; earshotd is built without a built-in model (use --model DIR)",
                shipped.display()
            );
            String::from("none")
        }
    };
    println!("cargo::rustc-env=EARSHOT_SHIPPED_MODEL={id}");
    let dir = models.join(&id);
    let files = ["metadata.json", "model.onnx", "model.int8.onnx"];
    for f in files {
        println!("cargo::rerun-if-changed={}", dir.join(f).display());
    }
    println!("cargo::rerun-if-changed={}", dir.display());
    if files.iter().all(|f| dir.join(f).is_file()) {
        println!("cargo::rustc-cfg=earshot_embedded_model");
    } else {
        println!(
            "cargo::warning=models/{id} is incomplete: earshotd is built without a built-in model (use --model DIR)"
        );
    }
}
