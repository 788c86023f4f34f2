//! The verifier, one rule a test: each builds a small graph by hand, checks
//! that the well-formed version passes, then breaks one thing.

use rocmforge::ir::tensor_type::n;
use rocmforge::ir::verify::{verify, Problem, VerifyError};
use rocmforge::ir::{
    AttentionSpec, Dim, Epilogue, Graph, InputKind, MatMulOp, Node, NodeId, Op, Operand, Prologue,
    Role, RopeScaling, RopeSpec, RopeStyle, TensorType,
};
use rocmforge::quant::GgmlType;

const D: u64 = 16;
const HD: u32 = 4;

fn input(g: &mut Graph, kind: InputKind) -> NodeId {
    let ty = rocmforge::ir::verify::input_type(kind);
    g.add(Node::new(Op::Input(kind), ty, kind.name()), &[])
}

fn weight(g: &mut Graph, name: &str, shape: &[u64]) -> NodeId {
    let ty = TensorType::f32(shape.iter().map(|&d| n(d)).collect::<Vec<_>>());
    let op = Op::Weight { name: name.into() };
    g.add(Node::new(op, ty, name), &[])
}

fn act(cols: u64) -> TensorType {
    TensorType::f32([Dim::Tokens, n(cols)])
}

fn matmul(g: &mut Graph, m: MatMulOp, cols: u64, operands: &[(Role, NodeId)]) -> NodeId {
    g.add(Node::new(Op::MatMul(m), act(cols), "mm"), operands)
}

fn rope_spec() -> RopeSpec {
    RopeSpec {
        head_dim: HD,
        n_rot: HD,
        base: 10000.0,
        style: RopeStyle::Normal,
        scaling: RopeScaling::None,
    }
}

fn attention_spec() -> AttentionSpec {
    AttentionSpec {
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: HD,
        scale: 0.5,
        window: None,
        softcap: None,
    }
}

/// The per-step inputs and an embedded activation `x` of D columns.
struct Base {
    g: Graph,
    tokens: NodeId,
    pos: NodeId,
    seq: NodeId,
    pages: NodeId,
    x: NodeId,
}

fn base() -> Base {
    let mut g = Graph::new();
    let tokens = input(&mut g, InputKind::Tokens);
    let pos = input(&mut g, InputKind::Positions);
    let seq = input(&mut g, InputKind::SeqIds);
    let pages = input(&mut g, InputKind::PageTable);
    let table = weight(&mut g, "token_embd.weight", &[32, D]);
    let x = g.add(
        Node::new(Op::Embed, act(D), "x"),
        &[(Role::Table, table), (Role::Tokens, tokens)],
    );
    g.set_output("x", x);
    Base {
        g,
        tokens,
        pos,
        seq,
        pages,
        x,
    }
}

/// `b` with a node `op` of type `ty` reading `operands`, as the output.
fn with(mut b: Base, op: Op, ty: TensorType, operands: &[(Role, NodeId)]) -> (Graph, NodeId) {
    let id = b.g.add(Node::new(op, ty, "probe"), operands);
    b.g.set_output("probe", id);
    (b.g, id)
}

fn problem(g: &Graph) -> Problem {
    verify(g)
        .expect_err("the verifier accepted a broken graph")
        .problem
}

fn kv_cache(g: &mut Graph, layer: u32, width: u64) -> NodeId {
    let ty = TensorType::new(GgmlType::F16, [Dim::KvLen, n(width)]);
    g.add(Node::new(Op::KvCache { layer }, ty, "kv"), &[])
}

#[test]
fn a_well_formed_graph_passes() {
    verify(&base().g).unwrap();
}

#[test]
fn a_cycle_is_rejected_naming_a_node_on_it() {
    let mut b = base();
    let x = b.x;
    let a = b.g.add(Node::new(Op::Silu, act(D), "a"), &[]);
    let c = b.g.add(Node::new(Op::Silu, act(D), "c"), &[(Role::X, a)]);
    b.g.connect(c, a, Role::X);
    b.g.set_output("c", c);
    let _ = x;
    let e = verify(&b.g).unwrap_err();
    assert_eq!(e.problem, Problem::Cycle);
    assert!(["a", "c"].contains(&e.node.unwrap().name.as_str()));
}

#[test]
fn a_graph_without_outputs_is_rejected() {
    let mut g = Graph::new();
    input(&mut g, InputKind::Tokens);
    let e = verify(&g).unwrap_err();
    assert_eq!(e.problem, Problem::NoOutputs);
    assert!(e.node.is_none());
}

#[test]
fn an_output_naming_a_removed_node_is_rejected() {
    let mut b = base();
    let s = b.g.add(Node::new(Op::Silu, act(D), "s"), &[(Role::X, b.x)]);
    b.g.set_output("s", s);
    b.g.remove(s);
    assert_eq!(
        problem(&b.g),
        Problem::DanglingOutput { output: "s".into() }
    );
}

#[test]
fn a_missing_required_operand_is_named() {
    let b = base();
    let x = b.x;
    let (g, _) = with(b, Op::RmsNorm { eps: 1e-6 }, act(D), &[(Role::X, x)]);
    assert_eq!(
        problem(&g),
        Problem::MissingRole {
            op: "rms_norm",
            role: Role::Norm
        }
    );
}

#[test]
fn an_operand_of_a_role_the_op_does_not_take_is_rejected() {
    // A bias operand on a matmul whose epilogue has no Bias step.
    let mut b = base();
    let w = weight(&mut b.g, "w", &[8, D]);
    let bias = weight(&mut b.g, "b", &[8]);
    let x = b.x;
    let (g, _) = with(
        b,
        Op::MatMul(MatMulOp::default()),
        act(8),
        &[(Role::X, x), (Role::W, w), (Role::Bias, bias)],
    );
    assert_eq!(
        problem(&g),
        Problem::UnknownRole {
            op: "matmul",
            role: Role::Bias
        }
    );
}

#[test]
fn a_single_operand_given_twice_is_rejected() {
    let b = base();
    let x = b.x;
    let (g, _) = with(b, Op::Silu, act(D), &[(Role::X, x), (Role::X, x)]);
    assert!(matches!(
        problem(&g),
        Problem::RepeatedOperand { role: Role::X, .. }
    ));
}

#[test]
fn a_gap_in_an_operand_list_is_rejected() {
    let mut b = base();
    let w0 = weight(&mut b.g, "w0", &[8, D]);
    let w2 = weight(&mut b.g, "w2", &[8, D]);
    let x = b.x;
    let (mut g, mm) = with(b, Op::MatMul(MatMulOp::default()), act(16), &[(Role::X, x)]);
    g.connect_at(
        w0,
        mm,
        Operand {
            role: Role::W,
            index: 0,
        },
    );
    g.connect_at(
        w2,
        mm,
        Operand {
            role: Role::W,
            index: 2,
        },
    );
    assert_eq!(
        problem(&g),
        Problem::OperandGap {
            role: Role::W,
            index: 1
        }
    );
}

#[test]
fn an_input_of_the_wrong_type_is_rejected() {
    let mut g = Graph::new();
    let t = g.add(
        Node::new(
            Op::Input(InputKind::Tokens),
            TensorType::f32([Dim::Tokens]),
            "tokens",
        ),
        &[],
    );
    g.set_output("t", t);
    assert!(matches!(problem(&g), Problem::ResultType { .. }));
}

#[test]
fn matmul_input_width_must_equal_every_weights_width() {
    let mut b = base();
    let w0 = weight(&mut b.g, "w0", &[8, D]);
    let w1 = weight(&mut b.g, "w1", &[8, D + 1]);
    let x = b.x;
    let ok = matmul(
        &mut b.g,
        MatMulOp::default(),
        8,
        &[(Role::X, x), (Role::W, w0)],
    );
    b.g.set_output("ok", ok);
    verify(&b.g).unwrap();
    let (g, _) = with(
        b,
        Op::MatMul(MatMulOp::default()),
        act(16),
        &[(Role::X, x), (Role::W, w0), (Role::W, w1)],
    );
    match problem(&g) {
        Problem::Shape(s) => assert!(s.contains("w[1]"), "{s}"),
        p => panic!("{p}"),
    }
}

#[test]
fn matmul_output_columns_are_the_sum_of_weight_rows() {
    let mut b = base();
    let w0 = weight(&mut b.g, "w0", &[8, D]);
    let w1 = weight(&mut b.g, "w1", &[4, D]);
    let x = b.x;
    let ops = [(Role::X, x), (Role::W, w0), (Role::W, w1)];
    let good = matmul(&mut b.g, MatMulOp::default(), 12, &ops);
    b.g.set_output("good", good);
    verify(&b.g).unwrap();
    let (g, _) = with(b, Op::MatMul(MatMulOp::default()), act(8), &ops);
    assert!(matches!(problem(&g), Problem::ResultType { .. }));
}

#[test]
fn swiglu_halves_the_output_columns() {
    let mut b = base();
    let gate = weight(&mut b.g, "gate", &[8, D]);
    let up = weight(&mut b.g, "up", &[8, D]);
    let x = b.x;
    let m = MatMulOp {
        prologue: None,
        epilogue: vec![Epilogue::SwiGlu],
    };
    let ops = [(Role::X, x), (Role::W, gate), (Role::W, up)];
    let good = matmul(&mut b.g, m.clone(), 8, &ops);
    b.g.set_output("good", good);
    verify(&b.g).unwrap();
    let (g, _) = with(b, Op::MatMul(m), act(16), &ops);
    assert!(matches!(problem(&g), Problem::ResultType { .. }));
}

#[test]
fn a_bias_must_be_as_long_as_its_weight_has_rows() {
    let mut b = base();
    let w0 = weight(&mut b.g, "w0", &[8, D]);
    let w1 = weight(&mut b.g, "w1", &[4, D]);
    let b1_good = weight(&mut b.g, "b1", &[4]);
    let b1_bad = weight(&mut b.g, "b1x", &[8]);
    let x = b.x;
    let m = MatMulOp {
        prologue: None,
        epilogue: vec![Epilogue::Bias],
    };
    // Only W[1] has a bias: index 1, no index 0.
    let good = matmul(
        &mut b.g,
        m.clone(),
        12,
        &[(Role::X, x), (Role::W, w0), (Role::W, w1)],
    );
    b.g.connect_at(
        b1_good,
        good,
        Operand {
            role: Role::Bias,
            index: 1,
        },
    );
    b.g.set_output("good", good);
    verify(&b.g).unwrap();
    let (mut g, bad) = with(
        b,
        Op::MatMul(m),
        act(12),
        &[(Role::X, x), (Role::W, w0), (Role::W, w1)],
    );
    g.connect_at(
        b1_bad,
        bad,
        Operand {
            role: Role::Bias,
            index: 1,
        },
    );
    assert!(matches!(
        problem(&g),
        Problem::OperandType {
            role: Role::Bias,
            index: 1,
            ..
        }
    ));
}

#[test]
fn a_norm_prologue_needs_one_weight_per_input_column() {
    let mut b = base();
    let w = weight(&mut b.g, "w", &[8, D]);
    let norm = weight(&mut b.g, "norm", &[D - 1]);
    let x = b.x;
    let m = MatMulOp {
        prologue: Some(Prologue::RmsNorm { eps: 1e-6 }),
        epilogue: vec![],
    };
    let (g, _) = with(
        b,
        Op::MatMul(m),
        act(8),
        &[(Role::X, x), (Role::W, w), (Role::Norm, norm)],
    );
    assert!(matches!(
        problem(&g),
        Problem::OperandType {
            role: Role::Norm,
            ..
        }
    ));
}

#[test]
fn rms_norm_weight_length_must_match_the_columns() {
    let mut b = base();
    let norm = weight(&mut b.g, "norm", &[D * 2]);
    let x = b.x;
    let (g, _) = with(
        b,
        Op::RmsNorm { eps: 1e-6 },
        act(D),
        &[(Role::X, x), (Role::Norm, norm)],
    );
    assert!(matches!(
        problem(&g),
        Problem::OperandType {
            role: Role::Norm,
            ..
        }
    ));
}

#[test]
fn head_rms_norm_weight_must_be_one_head_that_divides_the_row() {
    for (len, ok) in [(4, true), (D, true), (3, false), (D * 2, false)] {
        let mut b = base();
        let norm = weight(&mut b.g, "q_norm", &[len]);
        let x = b.x;
        let (g, _) = with(
            b,
            Op::HeadRmsNorm { eps: 1e-6 },
            act(D),
            &[(Role::X, x), (Role::Norm, norm)],
        );
        if ok {
            verify(&g).unwrap_or_else(|e| panic!("norm of {len}: {e}"));
        } else {
            assert!(
                matches!(
                    problem(&g),
                    Problem::OperandType {
                        role: Role::Norm,
                        ..
                    }
                ),
                "norm of {len}"
            );
        }
    }
}

#[test]
fn rope_input_must_be_whole_heads() {
    let mut b = base();
    let w = weight(&mut b.g, "w", &[6, D]);
    let x = b.x;
    let q = matmul(
        &mut b.g,
        MatMulOp::default(),
        6,
        &[(Role::X, x), (Role::W, w)],
    );
    let pos = b.pos;
    let (g, _) = with(
        b,
        Op::Rope(rope_spec()),
        act(6),
        &[(Role::X, q), (Role::Pos, pos)],
    );
    match problem(&g) {
        Problem::Shape(s) => assert!(s.contains("heads"), "{s}"),
        p => panic!("{p}"),
    }
}

#[test]
fn rope_freqs_hold_one_factor_per_rotated_pair() {
    let mut b = base();
    let freqs = weight(&mut b.g, "rope_freqs.weight", &[HD as u64]);
    let (x, pos) = (b.x, b.pos);
    let (g, _) = with(
        b,
        Op::Rope(rope_spec()),
        act(D),
        &[(Role::X, x), (Role::Pos, pos), (Role::Freqs, freqs)],
    );
    assert!(matches!(
        problem(&g),
        Problem::OperandType {
            role: Role::Freqs,
            ..
        }
    ));
}

#[test]
fn rope_epilogue_heads_must_fit_the_columns() {
    let mut b = base();
    let w = weight(&mut b.g, "qkv", &[D, D]);
    let (x, pos) = (b.x, b.pos);
    let m = MatMulOp {
        prologue: None,
        epilogue: vec![Epilogue::Rope {
            spec: rope_spec(),
            q_heads: 4,
            k_heads: 1,
        }],
    };
    let (g, _) = with(
        b,
        Op::MatMul(m),
        act(D),
        &[(Role::X, x), (Role::W, w), (Role::Pos, pos)],
    );
    match problem(&g) {
        Problem::Attribute(s) => assert!(s.contains("5 heads"), "{s}"),
        p => panic!("{p}"),
    }
}

/// A q activation of `q_cols` and a layer-0 cache of `kv_width`, attended.
fn attention_graph(spec: AttentionSpec, q_cols: u64, kv_width: u64) -> Graph {
    let mut b = base();
    let w = weight(&mut b.g, "wq", &[q_cols, D]);
    let x = b.x;
    let q = matmul(
        &mut b.g,
        MatMulOp::default(),
        q_cols,
        &[(Role::X, x), (Role::W, w)],
    );
    let kv = kv_cache(&mut b.g, 0, kv_width);
    let (pos, seq, pages) = (b.pos, b.seq, b.pages);
    let ops = [
        (Role::Q, q),
        (Role::Kv, kv),
        (Role::Pos, pos),
        (Role::Seq, seq),
        (Role::Pages, pages),
    ];
    with(b, Op::Attention(spec), act(q_cols), &ops).0
}

#[test]
fn attention_accepts_matching_heads_and_cache() {
    verify(&attention_graph(attention_spec(), 16, 16)).unwrap();
}

#[test]
fn attention_query_width_is_heads_times_head_dim() {
    match problem(&attention_graph(attention_spec(), 12, 16)) {
        Problem::Shape(s) => assert!(s.contains("q has 12 columns"), "{s}"),
        p => panic!("{p}"),
    }
}

#[test]
fn attention_cache_rows_hold_keys_and_values_of_every_kv_head() {
    match problem(&attention_graph(attention_spec(), 16, 8)) {
        Problem::Shape(s) => assert!(s.contains("KV cache"), "{s}"),
        p => panic!("{p}"),
    }
}

#[test]
fn attention_heads_must_be_a_multiple_of_kv_heads() {
    let mut spec = attention_spec();
    spec.n_kv_heads = 3;
    assert!(matches!(
        problem(&attention_graph(spec, 16, 24)),
        Problem::Attribute(_)
    ));
}

/// k and v of `kv_cols` columns stored into a cache of `layer` and `width`.
fn kv_store_graph(store_layer: u32, cache_layer: u32, kv_cols: u64, width: u64) -> Graph {
    let mut b = base();
    let wk = weight(&mut b.g, "wk", &[kv_cols, D]);
    let wv = weight(&mut b.g, "wv", &[kv_cols, D]);
    let x = b.x;
    let k = matmul(
        &mut b.g,
        MatMulOp::default(),
        kv_cols,
        &[(Role::X, x), (Role::W, wk)],
    );
    let v = matmul(
        &mut b.g,
        MatMulOp::default(),
        kv_cols,
        &[(Role::X, x), (Role::W, wv)],
    );
    let kv = kv_cache(&mut b.g, cache_layer, width);
    let ty = TensorType::new(GgmlType::F16, [Dim::KvLen, n(width)]);
    let (pos, seq, pages) = (b.pos, b.seq, b.pages);
    let ops = [
        (Role::K, k),
        (Role::V, v),
        (Role::Pos, pos),
        (Role::Seq, seq),
        (Role::Pages, pages),
        (Role::Kv, kv),
    ];
    with(b, Op::KvStore { layer: store_layer }, ty, &ops).0
}

#[test]
fn kv_store_writes_keys_and_values_side_by_side() {
    verify(&kv_store_graph(0, 0, 8, 16)).unwrap();
    assert!(matches!(
        problem(&kv_store_graph(0, 0, 8, 12)),
        Problem::Shape(_)
    ));
}

#[test]
fn kv_store_must_write_its_own_layers_cache() {
    assert!(matches!(
        problem(&kv_store_graph(1, 0, 8, 16)),
        Problem::Attribute(_)
    ));
}

#[test]
fn kv_store_epilogue_columns_must_lie_inside_the_product() {
    let mut b = base();
    let w = weight(&mut b.g, "qkv", &[D, D]);
    let kv = kv_cache(&mut b.g, 0, 8);
    let (x, pos, seq, pages) = (b.x, b.pos, b.seq, b.pages);
    let m = MatMulOp {
        prologue: None,
        epilogue: vec![Epilogue::KvStore {
            layer: 0,
            k_col: 8,
            v_col: 12,
            kv_dim: 8,
        }],
    };
    let ops = [
        (Role::X, x),
        (Role::W, w),
        (Role::Pos, pos),
        (Role::Seq, seq),
        (Role::Pages, pages),
        (Role::Kv, kv),
    ];
    let (g, _) = with(b, Op::MatMul(m), act(D), &ops);
    assert!(matches!(problem(&g), Problem::Attribute(_)));
}

#[test]
fn epilogue_steps_come_in_column_order() {
    let mut b = base();
    let w = weight(&mut b.g, "w", &[8, D]);
    let x = b.x;
    let res = matmul(
        &mut b.g,
        MatMulOp::default(),
        8,
        &[(Role::X, x), (Role::W, w)],
    );
    let m = MatMulOp {
        prologue: None,
        epilogue: vec![Epilogue::Residual, Epilogue::SwiGlu],
    };
    let (g, _) = with(
        b,
        Op::MatMul(m),
        act(4),
        &[(Role::X, x), (Role::W, w), (Role::Residual, res)],
    );
    assert!(matches!(problem(&g), Problem::Attribute(_)));
}

#[test]
fn a_residual_must_have_the_result_type() {
    let mut b = base();
    let w = weight(&mut b.g, "w", &[8, D]);
    let x = b.x;
    let m = MatMulOp {
        prologue: None,
        epilogue: vec![Epilogue::Residual],
    };
    let (g, _) = with(
        b,
        Op::MatMul(m),
        act(8),
        &[(Role::X, x), (Role::W, w), (Role::Residual, x)],
    );
    assert!(matches!(
        problem(&g),
        Problem::OperandType {
            role: Role::Residual,
            ..
        }
    ));
}

#[test]
fn add_takes_an_equal_tensor_or_one_broadcast_row() {
    let mut b = base();
    let row = weight(&mut b.g, "row", &[D]);
    let bad = weight(&mut b.g, "bad", &[D + 1]);
    let x = b.x;
    let ok = b.g.add(
        Node::new(Op::Add, act(D), "ok"),
        &[(Role::A, x), (Role::B, row)],
    );
    b.g.set_output("ok", ok);
    verify(&b.g).unwrap();
    let (g, _) = with(b, Op::Add, act(D), &[(Role::A, x), (Role::B, bad)]);
    assert!(matches!(
        problem(&g),
        Problem::OperandType { role: Role::B, .. }
    ));
}

#[test]
fn elementwise_results_keep_their_input_type() {
    let b = base();
    let x = b.x;
    let (g, _) = with(b, Op::Silu, act(D + 1), &[(Role::X, x)]);
    assert!(matches!(problem(&g), Problem::ResultType { .. }));
}

#[test]
fn embed_yields_one_table_row_per_token() {
    let mut b = base();
    let table = weight(&mut b.g, "t2", &[32, D]);
    let tokens = b.tokens;
    let (g, _) = with(
        b,
        Op::Embed,
        act(D * 2),
        &[(Role::Table, table), (Role::Tokens, tokens)],
    );
    assert!(matches!(problem(&g), Problem::ResultType { .. }));
}

#[test]
fn gather_rows_yields_one_row_per_requested_row() {
    let mut b = base();
    let rows = input(&mut b.g, InputKind::OutputRows);
    let x = b.x;
    let (g, _) = with(
        b,
        Op::GatherRows,
        act(D),
        &[(Role::X, x), (Role::Rows, rows)],
    );
    match problem(&g) {
        Problem::ResultType { expected, .. } => assert_eq!(expected.to_string(), "f32[R,16]"),
        p => panic!("{p}"),
    }
}

#[test]
fn a_slice_must_lie_inside_its_input() {
    let b = base();
    let x = b.x;
    let (g, _) = with(b, Op::Slice { start: 8, len: 16 }, act(16), &[(Role::X, x)]);
    assert!(matches!(problem(&g), Problem::Shape(_)));
}

#[test]
fn errors_name_the_node_by_text_id_and_name() {
    let b = base();
    let x = b.x;
    let (g, _) = with(b, Op::RmsNorm { eps: 1e-6 }, act(D), &[(Role::X, x)]);
    let e: VerifyError = verify(&g).unwrap_err();
    // Inputs %0..%3, the table %4, x %5, the probe %6.
    assert_eq!(e.node.as_ref().unwrap().text_id, 6);
    assert_eq!(e.to_string(), "%6 (probe): rms_norm needs a norm operand");
    let text = rocmforge::ir::text::print(&g);
    assert!(
        text.contains("%6 = rms_norm(eps=1e-6) x=%5 : f32[T,16]  # probe"),
        "{text}"
    );
}

#[test]
fn every_frontend_graph_verifies() {
    use rocmforge::frontend::synthetic::{SyntheticArch, SyntheticModel};
    for arch in SyntheticArch::ALL {
        let file = SyntheticModel::tiny(arch).to_gguf().unwrap();
        let (_, g) = rocmforge::frontend::build_graph(&file).unwrap();
        verify(&g).unwrap();
    }
}
