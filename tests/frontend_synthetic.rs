//! Tiny synthetic models of each architecture through the frontend:
//! detection, hparams, the canonical graph's shape, and clear errors.

use rocmforge::frontend::synthetic::{SyntheticArch, SyntheticModel};
use rocmforge::frontend::{build_graph, detect, ArchSpec, FrontendError};
use rocmforge::gguf::{GgufFile, GgufWriter};
use rocmforge::ir::{verify::verify, Graph, NodeId, Op, Role};

fn build(m: &SyntheticModel) -> (rocmforge::frontend::ModelConfig, Graph) {
    build_graph(&m.to_gguf().unwrap()).unwrap()
}

fn count(g: &Graph, pred: impl Fn(&Op) -> bool) -> usize {
    g.node_ids().filter(|&id| pred(&g.node(id).op)).count()
}

fn weight_name(g: &Graph, id: NodeId) -> &str {
    match &g.node(id).op {
        Op::Weight { name } => name,
        op => panic!("not a weight: {op:?}"),
    }
}

/// A copy of `m`'s file without the tensors `drop` and with `meta` replaced.
fn edited(m: &SyntheticModel, drop: &[&str], meta: &[(&str, rocmforge::gguf::Value)]) -> GgufFile {
    let src = m.to_gguf().unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata().iter() {
        let v = meta
            .iter()
            .find(|(mk, _)| *mk == k)
            .map_or(v.clone(), |(_, mv)| mv.clone());
        w.add_metadata(k, v).unwrap();
    }
    for (k, v) in meta {
        if src.metadata().get(k).is_none() {
            w.add_metadata(k, v.clone()).unwrap();
        }
    }
    for t in src
        .tensors()
        .iter()
        .filter(|t| !drop.contains(&t.name.as_str()))
    {
        w.add_tensor(&t.name, &t.dims, t.ty, src.view(t).data.to_vec())
            .unwrap();
    }
    GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap()
}

#[test]
fn each_architecture_is_detected_as_its_spec() {
    for arch in SyntheticArch::ALL {
        let file = SyntheticModel::tiny(arch).to_gguf().unwrap();
        assert_eq!(
            detect(&file).unwrap().spec.name,
            arch.spec_name(),
            "{arch:?}"
        );
    }
}

#[test]
fn each_architecture_builds_a_verified_graph() {
    for arch in SyntheticArch::ALL {
        let (cfg, g) = build(&SyntheticModel::tiny(arch));
        verify(&g).unwrap();
        assert_eq!(cfg.arch, arch.spec_name());
        assert_eq!(count(&g, |op| matches!(op, Op::KvCache { .. })), 2);
        assert_eq!(g.outputs().len(), 1);
    }
}

#[test]
fn mistral_with_a_llama_architecture_key_is_chosen_by_its_name() {
    let mut m = SyntheticModel::tiny(SyntheticArch::Mistral);
    m.window = None;
    let d = detect(&m.to_gguf().unwrap()).unwrap();
    assert_eq!(d.spec.name, "mistral");
    assert!(d.reason.contains("general.name"), "{}", d.reason);
}

#[test]
fn a_llama_file_with_a_sliding_window_key_is_mistral() {
    let m = SyntheticModel::tiny(SyntheticArch::Llama);
    let file = edited(&m, &[], &[("llama.attention.sliding_window", 64u32.into())]);
    let d = detect(&file).unwrap();
    assert_eq!(d.spec.name, "mistral");
    assert!(
        d.reason.contains("llama.attention.sliding_window"),
        "{}",
        d.reason
    );
}

#[test]
fn mistral_attention_gets_the_sliding_window_and_llama_none() {
    let (cfg, g) = build(&SyntheticModel::tiny(SyntheticArch::Mistral));
    assert_eq!(cfg.window, Some(16));
    for id in g.node_ids() {
        if let Op::Attention(a) = g.node(id).op {
            assert_eq!(a.window, Some(16));
        }
    }
    let (cfg, _) = build(&SyntheticModel::tiny(SyntheticArch::Llama));
    assert_eq!(cfg.window, None);
}

#[test]
fn qwen2_biases_become_add_nodes_after_the_projections() {
    let (_, g) = build(&SyntheticModel::tiny(SyntheticArch::Qwen2));
    // q, k, v bias adds per layer plus two residual adds per layer.
    assert_eq!(count(&g, |op| matches!(op, Op::Add)), 2 * (3 + 2));
    let mut llama = SyntheticModel::tiny(SyntheticArch::Llama);
    llama.qkv_bias = false;
    let (cfg, g) = build(&llama);
    assert_eq!(count(&g, |op| matches!(op, Op::Add)), 2 * 2);
    assert!(cfg.optional_tensors.is_empty());
}

#[test]
fn tied_output_projects_with_the_token_embedding() {
    let (cfg, g) = build(&SyntheticModel::tiny(SyntheticArch::Qwen2));
    assert!(cfg.tied_output);
    let logits = g.output("logits").unwrap();
    let w = g.operand(logits, Role::W).unwrap();
    assert_eq!(weight_name(&g, w), "token_embd.weight");
    // One weight node serves the embedding and the projection.
    assert_eq!(g.users(w).len(), 2);
}

#[test]
fn untied_output_projects_with_output_weight() {
    let (cfg, g) = build(&SyntheticModel::tiny(SyntheticArch::Llama));
    assert!(!cfg.tied_output);
    let logits = g.output("logits").unwrap();
    let w = g.operand(logits, Role::W).unwrap();
    assert_eq!(weight_name(&g, w), "output.weight");
}

#[test]
fn gqa_sizes_the_kv_cache_by_kv_heads() {
    let (cfg, g) = build(&SyntheticModel::tiny(SyntheticArch::Llama));
    assert_eq!((cfg.n_heads, cfg.n_kv_heads, cfg.head_dim), (4, 2, 8));
    for id in g.node_ids() {
        if let Op::KvCache { .. } = g.node(id).op {
            assert_eq!(g.node(id).ty.to_string(), "f16[K,32]");
        }
    }
}

#[test]
fn mha_model_has_as_many_kv_heads_as_heads() {
    let mut m = SyntheticModel::tiny(SyntheticArch::Llama);
    m.n_kv_heads = m.n_heads;
    let (cfg, g) = build(&m);
    assert_eq!(cfg.n_kv_heads, 4);
    verify(&g).unwrap();
}

#[test]
fn rope_follows_the_spec_style() {
    use rocmforge::ir::RopeStyle;
    let (cfg, _) = build(&SyntheticModel::tiny(SyntheticArch::Qwen2));
    assert_eq!(cfg.rope.style, RopeStyle::Neox);
    let (cfg, _) = build(&SyntheticModel::tiny(SyntheticArch::Llama));
    assert_eq!(cfg.rope.style, RopeStyle::Normal);
}

#[test]
fn rope_freqs_tensor_becomes_the_freqs_operand_of_every_rope() {
    let mut m = SyntheticModel::tiny(SyntheticArch::Llama);
    m.rope_freqs = true;
    let (cfg, g) = build(&m);
    assert!(cfg.optional_tensors.contains(&"rope_freqs".to_string()));
    let ropes: Vec<_> = g
        .node_ids()
        .filter(|&id| matches!(g.node(id).op, Op::Rope(_)))
        .collect();
    assert_eq!(ropes.len(), 4);
    for r in ropes {
        let f = g.operand(r, Role::Freqs).unwrap();
        assert_eq!(weight_name(&g, f), "rope_freqs.weight");
    }
}

#[test]
fn linear_rope_scaling_is_read_from_metadata() {
    use rocmforge::ir::RopeScaling;
    let m = SyntheticModel::tiny(SyntheticArch::Llama);
    let file = edited(
        &m,
        &[],
        &[
            ("llama.rope.scaling.type", "linear".into()),
            ("llama.rope.scaling.factor", 4.0f32.into()),
        ],
    );
    let (cfg, _) = build_graph(&file).unwrap();
    assert_eq!(cfg.rope.scaling, RopeScaling::Linear { factor: 4.0 });
}

#[test]
fn head_dim_comes_from_key_length_when_present() {
    let m = SyntheticModel::tiny(SyntheticArch::Llama);
    let file = edited(&m, &[], &[("llama.attention.key_length", 16u32.into())]);
    // 4 heads of 16 no longer match the 32-column attn_q: named in the error.
    let err = build_graph(&file).unwrap_err();
    match err {
        FrontendError::TensorShape { name, .. } => assert_eq!(name, "blk.0.attn_q.weight"),
        e => panic!("unexpected {e}"),
    }
}

#[test]
fn missing_required_tensor_is_named() {
    let m = SyntheticModel::tiny(SyntheticArch::Llama);
    let file = edited(&m, &["blk.1.ffn_up.weight"], &[]);
    let err = build_graph(&file).unwrap_err();
    assert!(
        matches!(&err, FrontendError::MissingTensor { name, .. } if name == "blk.1.ffn_up.weight"),
        "{err}"
    );
    assert!(err.to_string().contains("blk.1.ffn_up.weight"));
}

#[test]
fn missing_required_key_is_named() {
    let m = SyntheticModel::tiny(SyntheticArch::Qwen2);
    let src = m.to_gguf().unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in src
        .metadata()
        .iter()
        .filter(|(k, _)| *k != "qwen2.feed_forward_length")
    {
        w.add_metadata(k, v.clone()).unwrap();
    }
    for t in src.tensors() {
        w.add_tensor(&t.name, &t.dims, t.ty, src.view(t).data.to_vec())
            .unwrap();
    }
    let file = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    let err = build_graph(&file).unwrap_err();
    assert!(
        err.to_string().contains("qwen2.feed_forward_length"),
        "{err}"
    );
}

#[test]
fn wrongly_shaped_tensor_is_named_with_both_shapes() {
    let m = SyntheticModel::tiny(SyntheticArch::Llama);
    let file = edited(&m, &[], &[("llama.feed_forward_length", 48u32.into())]);
    let err = build_graph(&file).unwrap_err();
    match &err {
        FrontendError::TensorShape {
            name,
            expected,
            found,
            ..
        } => {
            assert_eq!(name, "blk.0.ffn_gate.weight");
            assert_eq!(
                (expected.as_slice(), found.as_slice()),
                (&[48, 32][..], &[64, 32][..])
            );
        }
        e => panic!("unexpected {e}"),
    }
}

#[test]
fn unknown_architecture_lists_the_known_ones() {
    let m = SyntheticModel::tiny(SyntheticArch::Llama);
    let file = edited(&m, &[], &[("general.architecture", "gpt9".into())]);
    let err = build_graph(&file).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, FrontendError::UnknownArchitecture { .. }));
    for known in ["llama", "mistral", "qwen2"] {
        assert!(text.contains(known), "{text}");
    }
}

#[test]
fn a_spec_file_adds_an_architecture_without_rust() {
    // A new name for the LLaMA wiring, as a user's --spec file would say it.
    let spec = ArchSpec::from_toml(
        "tinyarch.toml",
        "name = \"tinyarch\"\nextends = \"llama\"\n[detect]\narchitectures = [\"tinyarch\"]\n",
    )
    .unwrap();
    let m = SyntheticModel::tiny(SyntheticArch::Llama);
    let mut file_meta = vec![("general.architecture", "tinyarch".into())];
    let src = m.to_gguf().unwrap();
    for (k, v) in src.metadata().iter() {
        if let Some(rest) = k.strip_prefix("llama.") {
            file_meta.push((
                Box::leak(format!("tinyarch.{rest}").into_boxed_str()),
                v.clone(),
            ));
        }
    }
    let file = edited(&m, &[], &file_meta);
    let d = rocmforge::frontend::detect_among(&file, &[spec]).unwrap();
    let (cfg, g) = rocmforge::frontend::build_graph_with(&file, &d.spec).unwrap();
    assert_eq!(cfg.arch, "tinyarch");
    verify(&g).unwrap();
}

#[test]
fn synthetic_weights_depend_on_the_seed() {
    let a = SyntheticModel::tiny(SyntheticArch::Llama);
    let mut b = a.clone();
    assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
    b.seed = 2;
    assert_ne!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
}

#[test]
fn an_optional_tensor_with_the_wrong_shape_is_named() {
    let m = SyntheticModel::tiny(SyntheticArch::Llama);
    let src = m.to_gguf().unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata().iter() {
        w.add_metadata(k, v.clone()).unwrap();
    }
    for t in src.tensors() {
        w.add_tensor(&t.name, &t.dims, t.ty, src.view(t).data.to_vec())
            .unwrap();
    }
    w.add_tensor(
        "rope_freqs.weight",
        &[3],
        rocmforge::quant::GgmlType::F32,
        vec![0u8; 12],
    )
    .unwrap();
    let file = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    let err = build_graph(&file).unwrap_err();
    assert!(
        matches!(&err, FrontendError::TensorShape { name, .. } if name == "rope_freqs.weight"),
        "{err}"
    );
}

#[test]
fn a_declared_tensor_the_wiring_ignores_is_still_shape_checked() {
    let spec = ArchSpec::from_toml(
        "unused.toml",
        "name = \"unused\"\nextends = \"llama\"\n[tensors]\n\
         spare = { name = \"output_norm.weight\", shape = [\"ffn\"] }\n",
    )
    .unwrap();
    let file = SyntheticModel::tiny(SyntheticArch::Llama)
        .to_gguf()
        .unwrap();
    let err = rocmforge::frontend::build_graph_with(&file, &spec).unwrap_err();
    assert!(
        matches!(&err, FrontendError::TensorShape { name, rule, .. }
            if name == "output_norm.weight" && rule == "ffn"),
        "{err}"
    );
}
