//! `--cache-type`, `--cache-type-k`, `--cache-type-v`: the KV cache's
//! element types, shared by run, serve, bench, perplexity, gpu-check and
//! compile (--emit-kernels). The
//! shorthand sets both; a specific flag sets one, and naming the same half
//! twice with different types is refused rather than resolved silently.

use clap::Args;
use rocmforge::exec::cpu::{KvType, KvTypes};

#[derive(Debug, Clone, Args)]
pub struct CacheTypeArgs {
    /// KV cache element type of keys and values: f16 (llama.cpp's
    /// default), f32 (exact), bf16, q8_0, q4_0, q5_1, iq4_nl (CPU and GPU;
    /// a GPU artifact takes f16 only).
    #[arg(long = "cache-type", value_parser = parse_kv_type)]
    pub both: Option<KvType>,
    /// Element type of the keys alone (overrides the default f16).
    #[arg(long = "cache-type-k", value_parser = parse_kv_type)]
    pub k: Option<KvType>,
    /// Element type of the values alone (overrides the default f16).
    #[arg(long = "cache-type-v", value_parser = parse_kv_type)]
    pub v: Option<KvType>,
}

impl CacheTypeArgs {
    /// The chosen types: f16 where nothing is said.
    pub fn types(&self) -> Result<KvTypes, String> {
        let pick = |half: &str, specific: Option<KvType>| match (self.both, specific) {
            (Some(b), Some(s)) if b != s => Err(format!(
                "--cache-type {b} and --cache-type-{half} {s} disagree: give one of them \
                 (--cache-type sets keys and values; --cache-type-{half} sets the {} alone)",
                if half == "k" { "keys" } else { "values" }
            )),
            (b, s) => Ok(s.or(b).unwrap_or_default()),
        };
        Ok(KvTypes {
            k: pick("k", self.k)?,
            v: pick("v", self.v)?,
        })
    }
}

/// One cache type by name.
pub fn parse_kv_type(s: &str) -> Result<KvType, String> {
    KvType::parse(s).ok_or_else(|| {
        let names: Vec<&str> = KvType::ALL.iter().map(|t| t.name()).collect();
        format!("unknown cache type {s:?} (one of {})", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(both: Option<KvType>, k: Option<KvType>, v: Option<KvType>) -> CacheTypeArgs {
        CacheTypeArgs { both, k, v }
    }

    #[test]
    fn nothing_said_is_f16_for_both() {
        assert_eq!(
            args(None, None, None).types().unwrap(),
            KvTypes::both(KvType::F16)
        );
    }

    #[test]
    fn the_shorthand_sets_both_and_a_specific_flag_one() {
        let t = args(Some(KvType::Q8_0), None, Some(KvType::Q8_0)).types();
        assert_eq!(t.unwrap(), KvTypes::both(KvType::Q8_0));
        let t = args(None, Some(KvType::Q8_0), Some(KvType::Q4_0)).types();
        assert_eq!(
            t.unwrap(),
            KvTypes {
                k: KvType::Q8_0,
                v: KvType::Q4_0
            }
        );
        let t = args(None, None, Some(KvType::Q4_0)).types().unwrap();
        assert_eq!((t.k, t.v), (KvType::F16, KvType::Q4_0));
    }

    #[test]
    fn a_conflict_between_shorthand_and_specific_flag_is_refused() {
        let e = args(Some(KvType::F16), Some(KvType::Q8_0), None)
            .types()
            .unwrap_err();
        assert!(
            e.contains("--cache-type f16") && e.contains("--cache-type-k q8_0"),
            "{e}"
        );
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let e = parse_kv_type("q3_k").unwrap_err();
        assert!(e.contains("q8_0") && e.contains("q4_0"), "{e}");
        assert_eq!(parse_kv_type("Q8_0"), Ok(KvType::Q8_0));
    }
}
