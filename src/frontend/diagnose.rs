//! What stands between a file and a graph, for `rfc inspect`: the built-in
//! spec that covers most of the file's tensors, and against it the tensors
//! no alias names, the metadata keys of the architecture that no hparam
//! reads, the required keys that are absent, and — from a table of known
//! GGUF names — the ops those would need. A file the compiler cannot build
//! then says *why*, not only "unknown architecture".

use std::collections::BTreeSet;

use super::spec::{ArchSpec, HParamKeys};
use crate::gguf::GgufFile;

/// GGUF tensor or key name fragments whose meaning the IR lacks, and what
/// supporting them would take. Checked in order; each hint is named once.
const KNOWN_GAPS: &[(&str, &str)] = &[
    (
        "_shexp.",
        "a shared expert beside the routed ones (Qwen2-MoE, DeepSeek: experts + a dense FFN)",
    ),
    (
        "exp_probs_b",
        "a router bias with sigmoid gating (DeepSeek-V3: another router)",
    ),
    (
        "attn_qkv.",
        "one fused QKV weight (phi3-style: split of a single matmul)",
    ),
    ("norm.bias", "LayerNorm with a bias (op: layer_norm)"),
    ("ssm_", "state-space layers (Mamba ops)"),
    ("time_mix", "RWKV time mixing"),
];

/// The gaps between a file and its closest built-in spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    /// The built-in spec that names the most of the file's tensors.
    pub closest: String,
    /// Tensor names no alias of `closest` covers, per-layer names folded
    /// to `blk.{l}.…`.
    pub unknown_tensors: Vec<String>,
    /// `{arch}.*` metadata keys that no hparam of `closest` reads.
    pub unread_keys: Vec<String>,
    /// Required hparam keys of `closest` that the file lacks.
    pub missing_keys: Vec<String>,
    /// What the unknown names need, from [`KNOWN_GAPS`].
    pub needs: Vec<String>,
}

impl Diagnosis {
    /// Whether nothing is missing or unknown.
    pub fn is_clean(&self) -> bool {
        self.unknown_tensors.is_empty() && self.missing_keys.is_empty() && self.needs.is_empty()
    }
}

/// Compares `file` with every built-in spec and reports against the closest.
pub fn diagnose(file: &GgufFile) -> Diagnosis {
    let arch = file.architecture().unwrap_or("").to_string();
    let specs = ArchSpec::builtin();
    let folded: BTreeSet<String> = file.tensors().iter().map(|t| fold(&t.name)).collect();
    let covered =
        |s: &ArchSpec| -> BTreeSet<String> { s.tensors.values().map(|r| r.name.clone()).collect() };
    // The spec named by the architecture, else the one covering the most
    // tensors with the fewest aliases; ties go to the earlier spec.
    let score = |s: &ArchSpec| {
        let c = covered(s);
        let hits = folded.iter().filter(|n| c.contains(*n)).count();
        (
            s.detect.architectures.contains(&arch),
            hits,
            usize::MAX - c.len(),
        )
    };
    let mut best = &specs[0];
    for s in &specs[1..] {
        if score(s) > score(best) {
            best = s;
        }
    }
    let c = covered(best);
    let unknown_tensors: Vec<String> = folded.iter().filter(|n| !c.contains(*n)).cloned().collect();
    let read: BTreeSet<String> = hparam_keys(&best.hparams)
        .iter()
        .map(|k| k.replace("{arch}", &arch))
        .collect();
    let prefix = format!("{arch}.");
    let unread_keys: Vec<String> = file
        .metadata()
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !arch.is_empty() && k.starts_with(&prefix) && !read.contains(*k))
        .map(str::to_string)
        .collect();
    let h = &best.hparams;
    let missing_keys: Vec<String> = [&h.n_layer, &h.d_model, &h.n_heads, &h.ffn, &h.rms_eps]
        .iter()
        .map(|k| k.replace("{arch}", &arch))
        .filter(|k| file.metadata().get(k).is_none())
        .collect();
    let mut needs = Vec::new();
    for (fragment, need) in KNOWN_GAPS {
        let hit = unknown_tensors
            .iter()
            .chain(&unread_keys)
            .any(|n| n.contains(fragment));
        if hit && !needs.iter().any(|n: &String| n == need) {
            needs.push(need.to_string());
        }
    }
    Diagnosis {
        closest: best.name.clone(),
        unknown_tensors,
        unread_keys,
        missing_keys,
        needs,
    }
}

/// `blk.12.attn_q.weight` → `blk.{l}.attn_q.weight` (the spec's form).
fn fold(name: &str) -> String {
    let Some(rest) = name.strip_prefix("blk.") else {
        return name.to_string();
    };
    match rest.split_once('.') {
        Some((n, tail)) if n.chars().all(|c| c.is_ascii_digit()) => format!("blk.{{l}}.{tail}"),
        _ => name.to_string(),
    }
}

/// Every metadata key pattern the spec's hparams read.
fn hparam_keys(h: &HParamKeys) -> Vec<String> {
    let mut keys = vec![
        h.n_layer.clone(),
        h.d_model.clone(),
        h.n_heads.clone(),
        h.ffn.clone(),
        h.rms_eps.clone(),
        h.context_length.clone(),
    ];
    keys.extend(
        [
            &h.n_kv_heads,
            &h.head_dim,
            &h.vocab,
            &h.rope_base,
            &h.rope_dims,
            &h.rope_scaling_type,
            &h.rope_scaling_factor,
            &h.rope_scaling_orig_ctx,
            &h.rope_yarn_beta_fast,
            &h.rope_yarn_beta_slow,
            &h.rope_scaling_attn_factor,
            &h.sliding_window,
            &h.attn_softcap,
            &h.final_softcap,
        ]
        .into_iter()
        .flatten()
        .cloned(),
    );
    // Read outside the spec's table: informational, by every executor.
    keys.push("{arch}.attention.value_length".into());
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::synthetic::{SyntheticArch, SyntheticModel};
    use crate::gguf::{GgufWriter, Value};

    #[test]
    fn per_layer_names_fold_to_the_spec_form() {
        assert_eq!(fold("blk.12.attn_q.weight"), "blk.{l}.attn_q.weight");
        assert_eq!(fold("output.weight"), "output.weight");
        assert_eq!(fold("blk.x.y"), "blk.x.y");
    }

    #[test]
    fn a_supported_file_is_clean() {
        let f = SyntheticModel::tiny(SyntheticArch::Qwen2)
            .to_gguf()
            .unwrap();
        let d = diagnose(&f);
        assert_eq!(d.closest, "qwen2");
        assert!(d.is_clean(), "{d:?}");
    }

    #[test]
    fn an_unknown_architecture_names_its_unknown_tensors_keys_and_ops() {
        // A "tinyssm" file: LLaMA's keys under another architecture name,
        // a state-space key, and a state-space tensor in place of the gate.
        let src = SyntheticModel::tiny(SyntheticArch::Llama)
            .to_gguf()
            .unwrap();
        let mut w = GgufWriter::new();
        for (k, v) in src.metadata().iter() {
            let v = if k == "general.architecture" {
                Value::String("tinyssm".into())
            } else {
                v.clone()
            };
            w.add_metadata(&k.replace("llama.", "tinyssm."), v).unwrap();
        }
        w.add_metadata("tinyssm.ssm.state_size", Value::U32(4))
            .unwrap();
        for t in src.tensors() {
            let name = t.name.replace("ffn_gate.weight", "ssm_in.weight");
            w.add_tensor(&name, &t.dims, t.ty, src.view(t).data.to_vec())
                .unwrap();
        }
        let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
        let d = diagnose(&f);
        assert_eq!(d.closest, "llama");
        assert_eq!(d.unknown_tensors, ["blk.{l}.ssm_in.weight"]);
        assert_eq!(d.unread_keys, ["tinyssm.ssm.state_size"]);
        assert!(d.missing_keys.is_empty());
        assert!(d.needs.iter().any(|n| n.contains("state-space")), "{d:?}");
    }
}
