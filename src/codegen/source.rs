//! A specialized kernel source: a template of kernel_templates/ with the
//! constants that specialize it, assembled into one self-contained text
//! (defines, prelude, helpers, template) that hiprtc and NVRTC both take.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::lattice_grids::LatticeGrid;
use crate::quant::GgmlType;

const PRELUDE: &str = include_str!("../../kernel_templates/prelude.h");
const QUANT: &str = include_str!("../../kernel_templates/quant.h");
const EPILOGUE: &str = include_str!("../../kernel_templates/epilogue.h");
const ROPE: &str = include_str!("../../kernel_templates/rope.h");
const QUANT_I8: &str = include_str!("../../kernel_templates/quant_i8.h");
const QUANT_IQ: &str = include_str!("../../kernel_templates/quant_iq.h");
const TILES: &str = include_str!("../../kernel_templates/tiles.h");
const ASYNC_COPY: &str = include_str!("../../kernel_templates/async_copy.h");
const TOKEN_ROW: &str = include_str!("../../kernel_templates/token_row.h");
const KV_CACHE: &str = include_str!("../../kernel_templates/kv_cache.h");

/// The template files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    MatVec,
    /// The decode matvec on int8 activations (quantized weights, T = 1).
    MatVecQ8,
    MatMul,
    /// The prefill matmul on int8 matrix units (quantized weights).
    MatMulQ8,
    /// The prefill matmul of K-quant weights (Q3_K..Q6_K) as f16 integers
    /// sc·q on the f16 matrix units (NVIDIA).
    MatMulF16K,
    /// The few-token product from the weights kept in the matrix units'
    /// fragment order (NVIDIA).
    MatMulFrag,
    Attention,
    /// Keys and values into the paged cache, in its element types.
    KvStore,
    Rows,
    Elementwise,
    /// The mixture-of-experts router and routed feed-forward.
    Experts,
}

impl Template {
    /// The file's stem under kernel_templates/.
    pub fn file(self) -> &'static str {
        match self {
            Template::MatVec => "matvec",
            Template::MatVecQ8 => "matvec_q8",
            Template::MatMul => "matmul",
            Template::MatMulQ8 => "matmul_q8",
            Template::MatMulF16K => "matmul_f16k",
            Template::MatMulFrag => "matmul_frag",
            Template::Attention => "attention",
            Template::KvStore => "kv_store",
            Template::Rows => "rows",
            Template::Elementwise => "elementwise",
            Template::Experts => "experts",
        }
    }

    fn body(self) -> &'static str {
        match self {
            Template::MatVec => include_str!("../../kernel_templates/matvec.hip"),
            Template::MatVecQ8 => include_str!("../../kernel_templates/matvec_q8.hip"),
            Template::MatMul => include_str!("../../kernel_templates/matmul.hip"),
            Template::MatMulQ8 => include_str!("../../kernel_templates/matmul_q8.hip"),
            Template::MatMulF16K => include_str!("../../kernel_templates/matmul_f16k.hip"),
            Template::MatMulFrag => include_str!("../../kernel_templates/matmul_frag.hip"),
            Template::Attention => include_str!("../../kernel_templates/attention.hip"),
            Template::KvStore => include_str!("../../kernel_templates/kv_store.hip"),
            Template::Rows => include_str!("../../kernel_templates/rows.hip"),
            Template::Elementwise => include_str!("../../kernel_templates/elementwise.hip"),
            Template::Experts => include_str!("../../kernel_templates/experts.hip"),
        }
    }

    /// Helper headers (file name, built-in text) the template needs after
    /// the prelude.
    fn headers(self) -> &'static [(&'static str, &'static str)] {
        const Q: (&str, &str) = ("quant.h", QUANT);
        const E: (&str, &str) = ("epilogue.h", EPILOGUE);
        const P: (&str, &str) = ("rope.h", ROPE);
        const I: (&str, &str) = ("quant_i8.h", QUANT_I8);
        // The IQ/TQ/MXFP4 types, in quant_i8.h's int8 form (after it).
        const N: (&str, &str) = ("quant_iq.h", QUANT_IQ);
        const T: (&str, &str) = ("tiles.h", TILES);
        const A: (&str, &str) = ("async_copy.h", ASYNC_COPY);
        const R: (&str, &str) = ("token_row.h", TOKEN_ROW);
        const K: (&str, &str) = ("kv_cache.h", KV_CACHE);
        match self {
            Template::MatVec => &[Q, I, N, P, E],
            Template::MatMul => &[Q, I, N, P, E, T],
            Template::MatVecQ8 | Template::MatMulFrag => &[Q, I, N, P, E, R],
            Template::MatMulQ8 | Template::MatMulF16K => &[Q, I, N, P, E, T, A, R],
            Template::Rows | Template::Experts => &[Q, I, N],
            Template::Elementwise => &[P],
            Template::Attention | Template::KvStore => &[K],
        }
    }
}

/// A template file's text: the copy built into the binary, or, when the
/// developer variable `RFC_KERNEL_TEMPLATES` names a directory, that
/// directory's file of the same name, so that kernel edits can be tried on
/// a GPU machine without rebuilding the binary. The cache key hashes the
/// text, so edited templates never hit stale code objects.
fn template_text(file: &str, builtin: &'static str) -> Cow<'static, str> {
    let Some(dir) = std::env::var_os("RFC_KERNEL_TEMPLATES") else {
        return Cow::Borrowed(builtin);
    };
    let path = PathBuf::from(dir).join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) => Cow::Owned(text),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "RFC_KERNEL_TEMPLATES: using the built-in copy");
            Cow::Borrowed(builtin)
        }
    }
}

/// One specialization of a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelSource {
    pub template: Template,
    /// Names what the specialization is for (file names, errors, reports):
    /// e.g. `matvec_k896_q5_0x1152_rms_bias_rope_kv`.
    pub label: String,
    /// `#define NAME VALUE` lines, in name order.
    pub defines: BTreeMap<String, String>,
    /// The `extern "C"` entry points this source defines.
    pub entries: Vec<&'static str>,
    /// The lattice grids its weight types index (emitted after the prelude).
    pub grids: BTreeSet<LatticeGrid>,
}

impl KernelSource {
    pub fn new(template: Template, label: impl Into<String>, entries: &[&'static str]) -> Self {
        KernelSource {
            template,
            label: label.into(),
            defines: BTreeMap::new(),
            entries: entries.to_vec(),
            grids: BTreeSet::new(),
        }
    }

    /// Emits the lattice grid `ty` indexes, if any: every kernel that reads
    /// weights of `ty` must say so (quant_iq.h decodes a lattice type only
    /// where its grid is present).
    pub fn reading(mut self, ty: GgmlType) -> Self {
        if let Some(g) = LatticeGrid::of(ty) {
            self.grids.insert(g);
        }
        self
    }

    /// Adds `#define name value`.
    pub fn define(mut self, name: &str, value: impl ToString) -> Self {
        self.defines.insert(name.to_string(), value.to_string());
        self
    }

    /// An f32 constant as its exact bit pattern (read by `bits_f32`), so
    /// no decimal rounding separates the kernel from the host's value.
    pub fn define_f32_bits(self, name: &str, v: f32) -> Self {
        self.define(name, format!("0x{:08x}u", v.to_bits()))
    }

    /// The complete source text.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "// {} (kernel_templates/{}.hip), generated by rocmforge",
            self.label,
            self.template.file()
        );
        for (k, v) in &self.defines {
            let _ = writeln!(s, "#define {k} {v}");
        }
        s.push_str(&template_text("prelude.h", PRELUDE));
        for g in &self.grids {
            s.push_str(&g.text());
        }
        for (file, builtin) in self.template.headers() {
            s.push_str(&template_text(file, builtin));
        }
        let body = format!("{}.hip", self.template.file());
        s.push_str(&template_text(&body, self.template.body()));
        s
    }

    /// Content hash of what determines the compiled code: the text, the
    /// compiler options, the target and the compiler's version.
    pub fn cache_key(&self, options: &[String], target: &str, compiler: &str) -> String {
        let mut h = Sha256::new();
        for part in [self.text().as_str(), &options.join(" "), target, compiler] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The weight types the device kernels read (quant.h, quant_iq.h): the
/// float types and every block-quantized weight type
/// ([`GgmlType::WEIGHT_QUANTS`], [`GgmlType::NEWER_WEIGHT_QUANTS`]).
pub const GPU_TYPES: [GgmlType; 25] = {
    let mut t = [GgmlType::F32; 25];
    t[1] = GgmlType::F16;
    t[2] = GgmlType::BF16;
    let mut i = 0;
    while i < GgmlType::WEIGHT_QUANTS.len() {
        t[3 + i] = GgmlType::WEIGHT_QUANTS[i];
        i += 1;
    }
    let mut j = 0;
    while j < GgmlType::NEWER_WEIGHT_QUANTS.len() {
        t[3 + i + j] = GgmlType::NEWER_WEIGHT_QUANTS[j];
        j += 1;
    }
    t
};

/// Whether the device kernels read `ty` (one of [`GPU_TYPES`]).
pub fn gpu_supports(ty: GgmlType) -> bool {
    GPU_TYPES.contains(&ty)
}

/// The `T_*` constant of a type in quant.h (GGML's id).
pub fn type_id(ty: GgmlType) -> u32 {
    ty.id()
}

/// A short lower-case name for labels.
pub fn type_label(ty: GgmlType) -> String {
    ty.name().to_ascii_lowercase()
}
