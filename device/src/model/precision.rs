//! Which precision runs when the configuration says `auto`.
//!
//! int8 is not cheaper by itself: in tract it is on CPUs with a dot-product
//! instruction, and only for architectures with little im2col packing
//! (bench/int8-archs.md). So a model's metadata names the CPU classes where its
//! int8 plan was measured cheaper than f32 (`int8_faster_on`), and `auto` runs
//! int8 only there.

use crate::config::{Precision, PrecisionChoice};

/// The CPU classes `int8_faster_on` may name.
pub const CPU_CLASSES: [&str; 4] = ["aarch64", "aarch64+dotprod", "x86_64", "x86_64+avx512vnni"];

/// The classes of the CPU this runs on (an architecture, and the architecture
/// with each int8 instruction set it has).
pub fn this_cpu() -> Vec<&'static str> {
    let mut classes = Vec::new();
    #[cfg(target_arch = "aarch64")]
    {
        classes.push("aarch64");
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            classes.push("aarch64+dotprod");
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        classes.push("x86_64");
        if std::arch::is_x86_feature_detected!("avx512vnni") {
            classes.push("x86_64+avx512vnni");
        }
    }
    classes
}

/// The precision to run, and why (for the log and `earshotd analyze`).
pub fn choose(
    choice: PrecisionChoice,
    int8_faster_on: &[String],
    cpu: &[&str],
) -> (Precision, String) {
    match choice {
        PrecisionChoice::F32 => (Precision::F32, "set in the configuration".into()),
        PrecisionChoice::Int8 => (Precision::Int8, "set in the configuration".into()),
        PrecisionChoice::Auto => {
            let this = if cpu.is_empty() {
                "an unknown CPU".to_string()
            } else {
                cpu.join(", ")
            };
            if let Some(class) = int8_faster_on.iter().find(|c| cpu.contains(&c.as_str())) {
                (
                    Precision::Int8,
                    format!("auto: the model's int8 plan was measured faster than f32 on {class}; this CPU is {this}"),
                )
            } else if int8_faster_on.is_empty() {
                (
                    Precision::F32,
                    "auto: the model's metadata names no CPU where its int8 plan is faster".into(),
                )
            } else {
                (
                    Precision::F32,
                    format!(
                        "auto: the model's int8 plan is faster only on {}; this CPU is {this}",
                        int8_faster_on.join(", ")
                    ),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn auto_runs_int8_only_where_the_model_says_it_pays() {
        let pi5 = ["aarch64", "aarch64+dotprod"];
        let pi4 = ["aarch64"];
        let declared = classes(&["aarch64+dotprod"]);
        assert_eq!(
            choose(PrecisionChoice::Auto, &declared, &pi5).0,
            Precision::Int8
        );
        let (p, why) = choose(PrecisionChoice::Auto, &declared, &pi4);
        assert_eq!(p, Precision::F32);
        assert!(
            why.contains("only on aarch64+dotprod") && why.contains("this CPU is aarch64"),
            "{why}"
        );
        assert_eq!(choose(PrecisionChoice::Auto, &[], &pi5).0, Precision::F32);
        assert_eq!(
            choose(PrecisionChoice::Auto, &declared, &[]).0,
            Precision::F32
        );
    }

    #[test]
    fn a_fixed_precision_is_kept_whatever_the_cpu() {
        let declared = classes(&["aarch64+dotprod"]);
        let pi5 = ["aarch64", "aarch64+dotprod"];
        assert_eq!(
            choose(PrecisionChoice::F32, &declared, &pi5).0,
            Precision::F32
        );
        assert_eq!(
            choose(PrecisionChoice::Int8, &[], &["aarch64"]).0,
            Precision::Int8
        );
    }
}
