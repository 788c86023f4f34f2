//! The fused matmul kernels (matvec.hip for decode, matmul.hip for
//! prefill): `out = epilogue(prologue(x) · [W0, W1, ...]ᵀ)`.

use super::error::{unsupported, CodegenError};
use super::source::{gpu_supports, type_id, type_label, KernelSource, Template};
use crate::backend::{DevicePtr, Kernel, KernelArgs, LaunchDims, Result, Stream, Vendor};
use crate::quant::GgmlType;

/// Most weight segments one kernel reads (q, k, v; gate, up).
pub const MAX_SEGMENTS: usize = 4;

/// One weight matrix of the concatenation: `rows` output features of `k`
/// inputs each, in GGUF row order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segment {
    pub ty: GgmlType,
    pub rows: u32,
    /// Whether a bias vector of `rows` f32 is added (Bias epilogue).
    pub bias: bool,
}

impl Segment {
    /// `rows` rows of type `ty`, no bias.
    pub fn unbiased(ty: GgmlType, rows: u32) -> Segment {
        Segment {
            ty,
            rows,
            bias: false,
        }
    }
}

/// RoPE of the first `q_heads + k_heads` heads of each output row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeEpilogue {
    pub head_dim: u32,
    pub heads: u32,
    pub neox: bool,
    pub base: f32,
    /// Multiplies every angle (1 / linear scaling factor).
    pub freq_scale: f32,
    /// Pair `i`'s angle is divided by `rope_freqs[i]` (Llama-3.1-style
    /// frequency factors, or LongRoPE's long or short set: `head_dim/2` f32
    /// at [`MatMulArgs::freqs`]).
    pub freqs: bool,
    /// Scales cos and sin (`RopeSpec::magnitude`: LongRoPE's attn_factor,
    /// YaRN's 1 + 0.1·ln factor; 1 elsewhere).
    pub mscale: f32,
    /// YaRN's correction range of pair indices (`RopeSpec::yarn_corr_dims`):
    /// pair i's angle is `interp·(1 − r) + extrap·r`, the ramp r falling
    /// from 1 to 0 across the range.
    pub yarn: Option<[f32; 2]>,
}

impl RopeEpilogue {
    /// Plain RoPE (no scaling, no factors) of `heads` heads.
    pub fn plain(head_dim: u32, heads: u32, neox: bool, base: f32) -> RopeEpilogue {
        RopeEpilogue {
            head_dim,
            heads,
            neox,
            base,
            freq_scale: 1.0,
            freqs: false,
            mscale: 1.0,
            yarn: None,
        }
    }

    /// The kernels' RoPE of `heads` heads by `r`, with (`freqs`) or without
    /// per-pair factors: every scaling's numbers from the spec itself, as
    /// the CPU backend takes them.
    pub fn of(r: &crate::ir::RopeSpec, heads: u32, freqs: bool) -> RopeEpilogue {
        RopeEpilogue {
            freq_scale: r.freq_scale(),
            freqs,
            mscale: r.magnitude(),
            yarn: r.yarn_corr_dims(),
            ..RopeEpilogue::plain(
                r.head_dim,
                heads,
                r.style == crate::ir::RopeStyle::Neox,
                r.base,
            )
        }
    }

    /// `base^(-2/head_dim)` in f32, as the CPU backend and llama.cpp form it.
    pub fn theta_scale(&self) -> f32 {
        self.base.powf(-2.0 / self.head_dim as f32)
    }

    /// The label part of the angle's parameters beyond the shape: the base,
    /// and each scaling that is on (layers of one model may differ in
    /// them: Gemma 3's local and global bases).
    pub fn label_tag(&self) -> String {
        let mut s = format!("_b{}", self.base);
        if self.freq_scale != 1.0 {
            s += &format!("_fs{}", self.freq_scale);
        }
        if self.freqs {
            s += "_freqs";
        }
        if self.mscale != 1.0 {
            s += &format!("_ms{}", self.mscale);
        }
        if let Some([lo, hi]) = self.yarn {
            s += &format!("_yarn{lo}-{hi}");
        }
        s
    }

    /// The angle's defines (kernel_templates/rope.h), shared by the
    /// matmul epilogue and the standalone kernel.
    pub fn define(&self, src: KernelSource) -> KernelSource {
        let mut src = src
            .define("ROPE_HD", self.head_dim)
            .define("ROPE_HEADS", self.heads)
            .define("ROPE_NEOX", self.neox as u32)
            .define_f32_bits("ROPE_THETA_SCALE_BITS", self.theta_scale())
            .define_f32_bits("ROPE_FREQ_SCALE_BITS", self.freq_scale);
        if self.freqs {
            src = src.define("ROPE_FREQS", 1);
        }
        if self.mscale != 1.0 {
            src = src.define_f32_bits("ROPE_MSCALE_BITS", self.mscale);
        }
        if let Some([lo, hi]) = self.yarn {
            src = src
                .define("ROPE_YARN", 1)
                .define_f32_bits("ROPE_YARN_LOW_BITS", lo)
                .define_f32_bits("ROPE_YARN_HIGH_BITS", hi);
        }
        src
    }
}

/// Writing K and V columns into the paged f16 KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KvEpilogue {
    pub k_col: u32,
    pub v_col: u32,
    pub kv_dim: u32,
    pub page_size: u32,
}

/// Everything that specializes one fused matmul.
#[derive(Debug, Clone, PartialEq)]
pub struct MatMulSpec {
    /// Input width.
    pub k: u32,
    pub segments: Vec<Segment>,
    /// RMSNorm prologue with this epsilon (operand `norm`, f32[k]).
    pub rms_eps: Option<f32>,
    pub rope: Option<RopeEpilogue>,
    pub kv: Option<KvEpilogue>,
    pub swiglu: bool,
    /// With `swiglu`: the gate's activation is the tanh GELU, not SiLU
    /// (GeGLU, Gemma).
    pub gelu: bool,
    pub residual: bool,
    /// The 128-token tiles (square and tall) multiply the weights as f16
    /// integers sc·q (matmul_f16k.hip) where
    /// [`f16_tiles_read`](Self::f16_tiles_read) allows: set by the plan for
    /// NVIDIA targets ([`with_f16_tiles`](Self::with_f16_tiles)).
    pub f16_tiles: bool,
}

/// Which kernel computes the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatMulVariant {
    /// matvec.hip: a warp per output pair, `tokens` tokens per pass
    /// (matvec_q8.hip for one token where [`MatMulSpec::quantizes_input`]).
    Vector { tokens: u32 },
    /// matvec_q8.hip over `tokens` tokens per pass (2, 4 or 8): every token's
    /// row as int8 terms in shared memory, each weight word unpacked once
    /// for all of them. Compiled where [`MatMulSpec::has_q8_passes`]; only
    /// a measurement picks it (exec/gpu_model/tune.rs).
    VectorQ8 { tokens: u32 },
    /// matmul.hip (matrix units): `tokens` tokens x
    /// [`MatMulSpec::tile`] (tokens x weight rows) per block.
    Tiled { tokens: u32 },
    /// matmul_q8.hip for steps of more than 64 tokens on wide matrices:
    /// blocks of 64 tokens x 192 weight rows instead of 128 x 128, for the
    /// grids whose square blocks would leave much of a last wave idle
    /// (Llama-3-8B's qkv at 512 tokens: 192 square blocks are 1.45 waves
    /// of an H100's 132 SMs, 256 tall ones 1.94). Compiled where
    /// [`MatMulSpec::has_tall`]; [`MatMulSpec::variant_for`] weighs the two
    /// at launch.
    TiledTall,
    /// matmul_q8.hip's narrow product (NARROW) for steps of a few tokens
    /// from many sequences: `tokens` tokens (16 or 32) x [`NARROW_ITEMS`]
    /// pairs of weight rows per block, read on the matrix units straight
    /// from the int8 copy kept at load (no shared-memory staging, no
    /// barriers in the k loop), its 8 warps splitting k. A step of 2-32
    /// decodes is bound by reading the weights once; the tiles' blocks of
    /// 128 rows leave most SMs idle on 4,096-row matrices and wait on two
    /// barriers a chunk. Compiled where [`MatMulSpec::has_narrow`]; only a
    /// measurement picks it (exec/gpu_model/tune.rs).
    Narrow { tokens: u32 },
    /// matmul_frag.hip (NVIDIA): `tokens` tokens (8, 16 or 32) x `tiles`
    /// tiles of 16 weight rows per block (1, 2 or 4), from a copy of the
    /// weights kept in the matrix units' fragment order (4-bit where the
    /// type's values are), so that each warp load is 512 contiguous bytes;
    /// with `pipe`, each warp issues its next chunk's loads before this
    /// one's products. Which form is fastest depends on the matrix (more
    /// tiles share the activations' loads, fewer fill more SMs and keep
    /// registers for a second chunk in flight: on the H100 Llama-3-8B's
    /// gate|up at 8 tokens takes 0.068 ms with 4 tiles, 0.043 with 1), so
    /// [`FRAG_VARIANTS`] are all compiled where
    /// [`MatMulSpec::has_fragment`] and only a measurement picks one
    /// (exec/gpu_model/tune.rs). Every form sums in the same order: the
    /// same bits.
    Fragment { tokens: u32, tiles: u32, pipe: bool },
}

/// The variant's short name (`matvec/8`, `matvec_q8/4`, `tiled/32`,
/// `tiled/tall`): how logs, gpu-selftest and artifacts name it.
impl std::fmt::Display for MatMulVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MatMulVariant::Vector { tokens } => write!(f, "matvec/{tokens}"),
            MatMulVariant::VectorQ8 { tokens } => write!(f, "matvec_q8/{tokens}"),
            MatMulVariant::Tiled { tokens } => write!(f, "tiled/{tokens}"),
            MatMulVariant::TiledTall => f.write_str("tiled/tall"),
            MatMulVariant::Narrow { tokens } => write!(f, "narrow/{tokens}"),
            MatMulVariant::Fragment {
                tokens,
                tiles,
                pipe,
            } => write!(f, "frag/{tokens}x{tiles}{}", if *pipe { "p" } else { "" }),
        }
    }
}

impl std::str::FromStr for MatMulVariant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not a matmul variant (matvec/N, matvec_q8/N, tiled/N, tiled/tall, narrow/N, frag/NxT, frag/NxTp)"
            )
        };
        let (kind, n) = s.split_once('/').ok_or_else(bad)?;
        if (kind, n) == ("tiled", "tall") {
            return Ok(MatMulVariant::TiledTall);
        }
        if kind == "frag" {
            let (n, pipe) = n.strip_suffix('p').map_or((n, false), |n| (n, true));
            let (tokens, tiles) = n.split_once('x').ok_or_else(bad)?;
            let num = |v: &str| v.parse::<u32>().ok().filter(|&t| (1..=256).contains(&t));
            return Ok(MatMulVariant::Fragment {
                tokens: num(tokens).ok_or_else(bad)?,
                tiles: num(tiles).ok_or_else(bad)?,
                pipe,
            });
        }
        let tokens: u32 = n
            .parse()
            .ok()
            .filter(|&t| (1..=256).contains(&t))
            .ok_or_else(bad)?;
        match kind {
            "matvec" => Ok(MatMulVariant::Vector { tokens }),
            "matvec_q8" => Ok(MatMulVariant::VectorQ8 { tokens }),
            "tiled" => Ok(MatMulVariant::Tiled { tokens }),
            "narrow" => Ok(MatMulVariant::Narrow { tokens }),
            _ => Err(bad()),
        }
    }
}

/// The variants compiled for every fused matmul: what
/// [`MatMulVariant::for_tokens`] picks across step sizes
/// ([`MatMulSpec::variants`] adds the tall tile where it exists).
pub const MATMUL_VARIANTS: [MatMulVariant; 7] = [
    MatMulVariant::Vector { tokens: 1 },
    MatMulVariant::Vector { tokens: 4 },
    MatMulVariant::Vector { tokens: 8 },
    MatMulVariant::Vector { tokens: 16 },
    MatMulVariant::Tiled { tokens: 32 },
    MatMulVariant::Tiled { tokens: 64 },
    MatMulVariant::Tiled { tokens: 128 },
];

impl MatMulVariant {
    /// The stated default for a step of up to `t` tokens, where no
    /// measurement chose (exec/gpu_model/tune.rs): matvec for steps of up
    /// to 8 tokens (each weight read once per 8; the tiles' blocks of a
    /// narrow matrix leave most of a large GPU idle), tiles beyond.
    pub fn for_tokens(t: u32) -> MatMulVariant {
        match t {
            0..=1 => MatMulVariant::Vector { tokens: 1 },
            2..=4 => MatMulVariant::Vector { tokens: 4 },
            5..=8 => MatMulVariant::Vector { tokens: 8 },
            9..=32 => MatMulVariant::Tiled { tokens: 32 },
            33..=64 => MatMulVariant::Tiled { tokens: 64 },
            _ => MatMulVariant::Tiled { tokens: 128 },
        }
    }

    /// Whether the variant multiplies on the matrix units in block tiles.
    pub fn is_tiled(self) -> bool {
        matches!(self, MatMulVariant::Tiled { .. } | MatMulVariant::TiledTall)
    }
}

/// The tall tile's work per unit of time relative to the 128 x 128 one's
/// (a 64 x 192 block stages each weight tile twice as often per token):
/// the gpu-selftest bench of Llama-3-8B's qkv at 512 tokens on the H100,
/// where both grids take two waves, gives 0.89 (290 against 343 us for
/// three quarters of the work per block; docs/PERFORMANCE.md); 0.88 leaves
/// the square tile the close calls.
const TALL_BLOCK_SPEED: f64 = 0.88;

/// Matrices with at least this many rows take the large tile (see
/// [`MatMulSpec::tile`]).
pub const WIDE_ROWS: u32 = 4096;

/// Warps per matvec block.
const MATVEC_WARPS: u32 = 8;

/// Warps that share one matvec item: long rows are split so that few-row
/// matrices still fill the GPU (1 up to K=512, then doubling, at most 8).
fn matvec_ksplit(k: u32) -> u32 {
    k.div_ceil(512).next_power_of_two().clamp(1, MATVEC_WARPS)
}

fn uses_q8_matvec(spec: &MatMulSpec, variant: MatMulVariant) -> bool {
    matches!(
        variant,
        MatMulVariant::Vector { .. } | MatMulVariant::VectorQ8 { .. }
    ) && spec.quantizes_input(variant)
}

fn uses_q8_tiles(spec: &MatMulSpec, variant: MatMulVariant) -> bool {
    (variant.is_tiled() || matches!(variant, MatMulVariant::Narrow { .. }))
        && spec.quantizes_input(variant)
        && !uses_f16_tiles(spec, variant)
}

/// Whether `variant` is matmul_f16k.hip's: the 128-token tiles (square or
/// tall) of a spec with [`MatMulSpec::f16_tiles`] on.
fn uses_f16_tiles(spec: &MatMulSpec, variant: MatMulVariant) -> bool {
    matches!(
        variant,
        MatMulVariant::Tiled { tokens: 128 } | MatMulVariant::TiledTall
    ) && spec.f16_tiles
        && spec.f16_tiles_read()
}

/// Weight types the int8 matrix-unit kernel reads as int8 with block
/// scales (kernel_templates/quant_i8.h, quant_iq.h): every quantized type
/// but Q2_K, whose mins per 16 elements it does not carry.
fn int8_tiles_read(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(
        ty,
        Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q3_K | Q4_K | Q5_K | Q6_K
    ) || GgmlType::NEWER_WEIGHT_QUANTS.contains(&ty)
}

/// The NVIDIA target whose cp.async stages are the largest: the source's
/// PIPE_BYTES bound ([`MatMulSpec::pipe_bytes`]).
const LARGEST_PIPE_ARCH: &str = "sm_90";

/// The int8 prefill kernel's k step (kernel_templates/matmul_q8.hip, KC).
const Q8_TILE_K: u32 = 64;

/// The largest matrix (rows × k) whose weights the prefill tiles repack
/// (Llama-3-8B's gate|up is 117 Mi): the repacked copy lives in a scratch
/// buffer of ~1.3 (int8) or ~2.1 (f16) bytes per weight; larger ones (output
/// projections of big vocabularies) are decoded in the tiles instead.
const REPACK_MAX_WEIGHTS: u64 = 128 << 20;

/// The largest matrix whose int8 or 4-bit copy the narrow and fragment
/// products keep resident (budgeted against free device memory at load,
/// exec::gpu_model::resident): output projections of large vocabularies
/// included (Llama-3's 128,256 × 4,096 is 501 Mi), whose batched steps
/// otherwise fall to the 32- and 64-token tiles.
const RESIDENT_MAX_WEIGHTS: u64 = 1 << 30;

/// Token tiles from which repacking the weights once per step beats
/// decoding them in every tile (H100, docs/PERFORMANCE.md).
const REPACK_MIN_TOKENS: u32 = 128;

/// The repacked copies of a matrix's weights, by what reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepackFormat {
    /// Row-major int8 with block scales (matmul_q8.hip's tiles and narrow
    /// product).
    Int8,
    /// f16 sc·q (matmul_f16k.hip).
    F16,
    /// The fragment product's order (matmul_frag.hip).
    Fragment,
}

/// The compiled kernels of one variant: the product, and for the int8
/// prefill the row quantizer that runs before it.
pub struct MatMulKernel {
    pub main: Kernel,
    /// The input rows' preparation for the tiles: int8 terms
    /// (quantize_rows) or f16 (scale_rows).
    pub quantize: Option<Kernel>,
    /// The weights' per-step repack to int8 or f16 (runs first).
    pub repack: Option<Kernel>,
}

/// The q8 matvec's shape: (warps per item, items per warp). Long rows are
/// split over 2..8 warps where there are few items (under 2,048 warps in
/// all), so that enough weight bytes are in flight; with many items a warp
/// takes several in turn, so that each block's quantized input row serves
/// more rows. Every block quantizes the input row first, so fewer, fuller
/// blocks pay it less often: splitting down to 2,048 warps instead of 4,096
/// (Llama-3-8B's o and down in 256 blocks instead of 512) measured llama8b
/// tg128 310 → 320 t/s on the H100, qwen05b unchanged.
fn q8_matvec_shape(k: u32, items: u32) -> (u32, u32) {
    let pow2_floor = |v: u32| 1 << v.max(1).ilog2();
    let ks = pow2_floor(2048 / items.max(1))
        .min(pow2_floor(k / 1024))
        .clamp(1, MATVEC_WARPS);
    let blocks = items.div_ceil(MATVEC_WARPS / ks);
    let ipw = if ks == 1 {
        pow2_floor(blocks / 512).min(4)
    } else {
        1
    };
    (ks, ipw)
}

/// Token tiles of the narrow product ([`MatMulVariant::Narrow`]).
pub const NARROW_TOKENS: [u32; 2] = [16, 32];

/// Pairs of weight rows per block of the narrow product: 32 where the
/// matrix has enough of them to give an H100's 132 SMs three blocks each,
/// else 16 (a block's activations, read from L2 once per block, cost less
/// the more rows share them).
fn narrow_items(items: u32) -> u32 {
    if items >= 32 * 3 * 132 {
        32
    } else {
        16
    }
}

/// Warps per block of the narrow product. Each warp has one chunk's
/// loads in flight at a time; 16 warps (512 threads, so 128 registers)
/// measured slower than 8 on the H100 (llama8b at 16 tokens: qkv 0.047
/// against 0.042 ms, down 0.064 against 0.060), so the template's 16 is
/// not used.
const NARROW_WARPS: u32 = 8;

/// Token tiles of the fragment product ([`MatMulVariant::Fragment`]).
pub const FRAG_TOKENS: [u32; 3] = [8, 16, 32];

/// Tiles of 16 weight rows per block of the fragment product.
pub const FRAG_TILES: [u32; 3] = [1, 2, 4];

/// The forms of the fragment product compiled for a matrix: every token
/// tile with every tile count whose fragments fit the registers (tiles x
/// tokens up to 64), each also pipelined where two chunks' fragments fit
/// (up to 32).
pub const FRAG_VARIANTS: [MatMulVariant; 14] = {
    let mut v = [MatMulVariant::Vector { tokens: 1 }; 14];
    let mut n = 0;
    let mut i = 0;
    while i < FRAG_TOKENS.len() {
        let mut j = 0;
        while j < FRAG_TILES.len() {
            let (tokens, tiles) = (FRAG_TOKENS[i], FRAG_TILES[j]);
            let mut pipe = 0;
            while pipe < 2 {
                if tokens * tiles <= if pipe == 1 { 32 } else { 64 } {
                    v[n] = MatMulVariant::Fragment {
                        tokens,
                        tiles,
                        pipe: pipe == 1,
                    };
                    n += 1;
                }
                pipe += 1;
            }
            j += 1;
        }
        i += 1;
    }
    assert!(n == 14);
    v
};

/// Tokens per pass of the multi-token int8 matvecs ([`MatMulVariant::VectorQ8`]).
pub const Q8_PASS_TOKENS: [u32; 3] = [2, 4, 8];

/// Shared memory the multi-token int8 matvec may take for its rows (of
/// the 48 KB a block has statically).
const Q8_PASS_SHARED: u64 = 40 << 10;

/// Matrices under this many weights stay on matvec.hip at T = 1: there the
/// step is latency-bound and the q8 kernel's prologue (quantizing the row
/// in every block) costs about what its faster weight stream saves.
const Q8_MIN_WEIGHTS: u64 = 4 << 20;

/// The device addresses and strides of one launch (row strides in
/// elements). Unused operands stay [`DevicePtr::NULL`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MatMulArgs {
    pub x: DevicePtr,
    pub ldx: u32,
    pub w: [DevicePtr; MAX_SEGMENTS],
    pub bias: [DevicePtr; MAX_SEGMENTS],
    pub norm: DevicePtr,
    pub residual: DevicePtr,
    pub ldr: u32,
    pub out: DevicePtr,
    pub ldo: u32,
    pub pos: DevicePtr,
    pub seq: DevicePtr,
    pub pages: DevicePtr,
    pub pages_per_seq: u32,
    /// The layer's f16 KV cache (`KvLayout` pages), written when `kv` is set.
    pub kv: DevicePtr,
    /// Tokens of this step (T).
    pub tokens: u32,
    /// The prefill tiles' prepared input rows (int8 or f16 terms), of
    /// [`MatMulSpec::xq_bytes`] (unused by the other variants).
    pub xq: DevicePtr,
    /// Room for the weights repacked per step (int8, or f16 for the f16
    /// tiles), of [`MatMulSpec::wq_bytes`]: used where no copy was kept.
    pub wq: DevicePtr,
    /// The weights repacked to f16 sc·q once, at load (null: not kept).
    pub kept_f16: DevicePtr,
    /// The weights repacked to int8 once, at load (null: not kept).
    pub kept_i8: DevicePtr,
    /// The weights in the fragment product's order, kept at load (null:
    /// not kept).
    pub kept_frag: DevicePtr,
    /// RoPE frequency factors (f32[head_dim/2]) when the spec has them.
    pub freqs: DevicePtr,
}

impl MatMulSpec {
    /// One weight matrix of `rows` × `k`, no prologue or epilogue.
    pub fn plain(ty: GgmlType, rows: u32, k: u32) -> MatMulSpec {
        MatMulSpec::concatenated(k, vec![Segment::unbiased(ty, rows)])
    }

    /// The concatenated matrices `segments` of `k` inputs, no prologue or
    /// epilogue.
    pub fn concatenated(k: u32, segments: Vec<Segment>) -> MatMulSpec {
        MatMulSpec {
            k,
            segments,
            rms_eps: None,
            rope: None,
            kv: None,
            swiglu: false,
            gelu: false,
            residual: false,
            f16_tiles: false,
        }
    }

    /// The spec with the f16 tiles on where `vendor`'s GPUs run them
    /// (NVIDIA: `ldmatrix`, cp.async and f16 `mma.sync`; the gfx1100 path
    /// keeps the int8 tiles).
    pub fn with_f16_tiles(mut self, vendor: Vendor) -> MatMulSpec {
        self.f16_tiles = vendor == Vendor::Cuda && self.f16_tiles_read();
        self
    }

    /// Whether `variant` multiplies on matmul_f16k.hip's tiles (f16 sc·q
    /// weights, f16 activations).
    pub fn takes_f16_tiles(&self, variant: MatMulVariant) -> bool {
        uses_f16_tiles(self, variant)
    }

    /// The copy of the weights `variant` reads, where it
    /// [repacks](Self::repacks_weights) them.
    pub fn repack_format(&self, variant: MatMulVariant) -> RepackFormat {
        if uses_f16_tiles(self, variant) {
            RepackFormat::F16
        } else if let MatMulVariant::Fragment { .. } = variant {
            RepackFormat::Fragment
        } else {
            RepackFormat::Int8
        }
    }

    /// Whether every weight reads as f16 integers sc·q with a super-block
    /// scale (the K-quants with integer sub-scales and at most one min per
    /// 32: Q3_K, Q4_K, Q5_K exactly, Q6_K's products above 2,048 to
    /// 2^-12), in whole super-blocks, and the matrix is small enough to
    /// repack ([`REPACK_MAX_WEIGHTS`]).
    pub fn f16_tiles_read(&self) -> bool {
        use GgmlType::*;
        self.segments
            .iter()
            .all(|s| matches!(s.ty, Q3_K | Q4_K | Q5_K | Q6_K))
            && self.k.is_multiple_of(256)
            && self.weights() <= REPACK_MAX_WEIGHTS
    }

    /// Rows of the concatenated weights.
    pub fn rows(&self) -> u32 {
        self.segments.iter().map(|s| s.rows).sum()
    }

    /// Weights of the concatenated matrix (rows × k).
    pub fn weights(&self) -> u64 {
        self.rows() as u64 * self.k as u64
    }

    /// The tiled kernel's block tile for a variant of `tokens` tokens:
    /// (tokens, weight rows). Matrices of at least [`WIDE_ROWS`] rows
    /// take 128 x 128 (the least re-dequantization of each weight tile);
    /// narrower ones 64 x 64, so that a 512-token step still gives the
    /// GPU's SMs several blocks each.
    pub fn tile(&self, tokens: u32) -> (u32, u32) {
        if self.rows() >= WIDE_ROWS {
            (tokens, 128)
        } else {
            (tokens.min(64), 64)
        }
    }

    /// The block tile of a tiled `variant` (None for the matvecs).
    pub fn block_tile(&self, variant: MatMulVariant) -> Option<(u32, u32)> {
        match variant {
            MatMulVariant::Vector { .. }
            | MatMulVariant::VectorQ8 { .. }
            | MatMulVariant::Narrow { .. }
            | MatMulVariant::Fragment { .. } => None,
            MatMulVariant::Tiled { tokens } => Some(self.tile(tokens)),
            MatMulVariant::TiledTall => Some((64, 192)),
        }
    }

    /// Whether [`MatMulVariant::VectorQ8`] of `tokens` is compiled: every
    /// weight quantized, and the rows' int8 terms (2.375 bytes an element)
    /// within [`Q8_PASS_SHARED`].
    pub fn has_q8_passes(&self, tokens: u32) -> bool {
        let quantized = |t: GgmlType| !matches!(t, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
        self.segments.iter().all(|s| quantized(s.ty))
            && self.k as u64 * tokens as u64 * 19 / 8 <= Q8_PASS_SHARED
    }

    /// Whether the narrow product ([`MatMulVariant::Narrow`]) is compiled:
    /// every weight reads as int8 with block scales, k is whole 128-element
    /// chunks, and the matrix is small enough for a resident int8 copy
    /// ([`RESIDENT_MAX_WEIGHTS`]).
    pub fn has_narrow(&self) -> bool {
        self.segments.iter().all(|s| int8_tiles_read(s.ty))
            && self.k.is_multiple_of(128)
            && self.weights() <= RESIDENT_MAX_WEIGHTS
    }

    /// Whether the fragment product ([`MatMulVariant::Fragment`]) is
    /// compiled (on NVIDIA): where the narrow product is.
    pub fn has_fragment(&self) -> bool {
        self.has_narrow()
    }

    /// Bits per weight of the fragment copy: 4 where every segment's int8
    /// values are unsigned 4-bit with a scale and a min per 32 (Q4_K,
    /// Q4_1), else 8.
    fn frag_bits(&self) -> u32 {
        use GgmlType::*;
        if self.segments.iter().all(|s| matches!(s.ty, Q4_K | Q4_1)) {
            4
        } else {
            8
        }
    }

    /// Weight rows of the fragment copy: whole tiles of 8 items.
    fn frag_rows(&self) -> u64 {
        (self.rows() as u64 / 2).div_ceil(8) * 16
    }

    /// Weight rows the repack of `variant` writes: whole tiles for the
    /// fragment product (zeros past the last item), else every row.
    fn repack_launch_rows(&self, variant: MatMulVariant) -> u64 {
        match variant {
            MatMulVariant::Fragment { .. } => self.frag_rows(),
            _ => self.rows() as u64,
        }
    }

    /// Whether the tall tile ([`MatMulVariant::TiledTall`]) is compiled: a
    /// wide matrix whose steps of 128 tokens take repacked weights (int8 or
    /// f16 tiles).
    pub fn has_tall(&self) -> bool {
        self.rows() >= WIDE_ROWS && self.repacks_weights(MatMulVariant::Tiled { tokens: 128 })
    }

    /// Every variant compiled for this matrix on `vendor`'s GPUs (the
    /// tall tile on NVIDIA only: [`variant_for`](Self::variant_for) never
    /// picks it on AMD).
    pub fn variants(&self, vendor: Vendor) -> Vec<MatMulVariant> {
        let mut v = MATMUL_VARIANTS.to_vec();
        for tokens in Q8_PASS_TOKENS {
            if self.has_q8_passes(tokens) {
                v.push(MatMulVariant::VectorQ8 { tokens });
            }
        }
        if self.has_tall() && vendor == Vendor::Cuda {
            v.push(MatMulVariant::TiledTall);
        }
        if self.has_narrow() {
            v.extend(NARROW_TOKENS.map(|tokens| MatMulVariant::Narrow { tokens }));
        }
        if self.has_fragment() && vendor == Vendor::Cuda {
            v.extend(FRAG_VARIANTS);
        }
        v
    }

    /// The variant for a step of `t` tokens on a `vendor` GPU of
    /// `multiprocessors` SMs (CUs): [`MatMulVariant::for_tokens`], except
    /// that on NVIDIA a wide matrix's large steps take the tall tile where
    /// its blocks fill the waves enough better to pay for their smaller
    /// size. Each block has an SM to itself (1 block per SM at their
    /// registers), so a grid's time is its whole waves times a block's
    /// work. (AMD keeps the square tile: the tall one spills on gfx1100
    /// and was never measured there.)
    pub fn variant_for(&self, t: u32, multiprocessors: u32, vendor: Vendor) -> MatMulVariant {
        let v = MatMulVariant::for_tokens(t);
        let square = MatMulVariant::Tiled { tokens: 128 };
        if v != square || !self.has_tall() || vendor != Vendor::Cuda {
            return v;
        }
        let items = (self.rows() / 2) as u64;
        let sms = multiprocessors.max(1) as u64;
        let time = |(tm, tn): (u32, u32)| {
            let blocks = items.div_ceil(tn as u64 / 2) * t.div_ceil(tm) as u64;
            (blocks.div_ceil(sms) * (tm * tn) as u64) as f64
        };
        let tall = time((64, 192)) / TALL_BLOCK_SPEED;
        if tall < time(self.tile(128)) {
            MatMulVariant::TiledTall
        } else {
            v
        }
    }

    /// Columns of the output (half the rows with SwiGLU).
    pub fn out_cols(&self) -> u32 {
        if self.swiglu {
            self.rows() / 2
        } else {
            self.rows()
        }
    }

    /// Whether `variant` rounds the input rows to two int8 terms (~15
    /// bits): matvec_q8.hip, the one-token matvec when every weight is
    /// quantized, the quantized row (2.375 bytes per element) fits in
    /// static shared memory, and the matrix is large enough to pay for it
    /// ([`Q8_MIN_WEIGHTS`]); matmul_q8.hip, the tiles on int8 matrix units,
    /// when every weight type reads as int8 ([`int8_tiles_read`]) and the
    /// input is whole k steps.
    pub fn quantizes_input(&self, variant: MatMulVariant) -> bool {
        let quantized = |t: GgmlType| !matches!(t, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
        match variant {
            MatMulVariant::Vector { tokens: 1 } => {
                self.segments.iter().all(|s| quantized(s.ty))
                    && self.k <= 16_384
                    && self.weights() >= Q8_MIN_WEIGHTS
            }
            MatMulVariant::Vector { .. } => false,
            MatMulVariant::VectorQ8 { tokens } => self.has_q8_passes(tokens),
            MatMulVariant::Tiled { .. } | MatMulVariant::TiledTall => {
                self.segments.iter().all(|s| int8_tiles_read(s.ty))
                    && self.k.is_multiple_of(Q8_TILE_K)
            }
            MatMulVariant::Narrow { .. } => self.has_narrow(),
            MatMulVariant::Fragment { .. } => self.has_fragment(),
        }
    }

    /// Bytes of the quantized input rows the int8 prefill of `tokens`
    /// tokens reads ([`MatMulArgs::xq`]): two int8 terms per element, two
    /// f32 per 32 (scale and sum); 0 for the variants that need none.
    pub fn xq_bytes(&self, variant: MatMulVariant, tokens: u32) -> u64 {
        if let MatMulVariant::Fragment { .. } = variant {
            // Per octet of tokens: 16 bytes an element, an f32 scale and
            // sum per token and 32.
            return tokens.div_ceil(8) as u64 * 18 * self.k as u64;
        }
        if uses_f16_tiles(self, variant) {
            // An f16 per element, an f32 sum per 32, an f32 scale.
            let k = self.k as u64;
            return tokens as u64 * (2 * k + k / 32 * 4 + 4);
        }
        if !uses_q8_tiles(self, variant) {
            return 0;
        }
        let k = self.k as u64;
        tokens as u64 * (2 * k + k / 32 * 8)
    }

    /// Whether `variant` reads a weight copy that only a resident buffer
    /// holds: the narrow and fragment products of matrices above the
    /// per-step repack's size ([`REPACK_MAX_WEIGHTS`]), for which the
    /// shared per-step scratch is not sized.
    pub fn copy_is_resident_only(&self, variant: MatMulVariant) -> bool {
        matches!(
            variant,
            MatMulVariant::Narrow { .. } | MatMulVariant::Fragment { .. }
        ) && self.repacks_weights(variant)
            && self.weights() > REPACK_MAX_WEIGHTS
    }

    /// Whether `variant` repacks the weights to int8 once per step before
    /// the tiles read them (matmul_q8.hip, REPACKED).
    pub fn repacks_weights(&self, variant: MatMulVariant) -> bool {
        let large = match variant {
            MatMulVariant::Tiled { tokens } => tokens >= REPACK_MIN_TOKENS,
            MatMulVariant::TiledTall | MatMulVariant::Narrow { .. } => true,
            MatMulVariant::Fragment { .. } => return self.has_fragment(),
            MatMulVariant::Vector { .. } | MatMulVariant::VectorQ8 { .. } => false,
        };
        // The narrow product's copy is resident, the tiles' per step.
        let limit = match variant {
            MatMulVariant::Narrow { .. } => RESIDENT_MAX_WEIGHTS,
            _ => REPACK_MAX_WEIGHTS,
        };
        uses_f16_tiles(self, variant)
            || large && uses_q8_tiles(self, variant) && self.weights() <= limit
    }

    /// Elements per weight scale in the int8 tiles: 16 when a segment's
    /// type scales 16-element groups (Q3_K, Q6_K, IQ2_XS, IQ2_S, IQ1_M),
    /// else 32.
    fn scale_group(&self) -> u32 {
        use GgmlType::*;
        let per16 = |t| matches!(t, Q3_K | Q6_K | IQ2_XS | IQ2_S | IQ1_M);
        if self.segments.iter().any(|s| per16(s.ty)) {
            16
        } else {
            32
        }
    }

    /// Whether a segment's type has a min (`w = d q - m`).
    fn has_min(&self) -> bool {
        use GgmlType::*;
        let min = |t| matches!(t, Q4_1 | Q5_1 | Q4_K | Q5_K);
        self.segments.iter().any(|s| min(s.ty))
    }

    /// Bytes of the repacked weights ([`MatMulArgs::wq`]): int8 values, an
    /// f32 scale per scale group and, with mins, an f32 min per 32.
    pub fn wq_bytes(&self, variant: MatMulVariant) -> u64 {
        if !self.repacks_weights(variant) {
            return 0;
        }
        let (n, k) = (self.rows() as u64, self.k as u64);
        if let MatMulVariant::Fragment { .. } = variant {
            // Values, an f32 scale per SUB and (with mins) an f32 min per 32,
            // for whole tiles.
            let rows = self.frag_rows();
            let mins = if self.has_min() {
                rows * (k / 32) * 4
            } else {
                0
            };
            return rows * k * self.frag_bits() as u64 / 8
                + rows * (k / self.scale_group() as u64) * 4
                + mins;
        }
        if uses_f16_tiles(self, variant) {
            // f16 values; per super-block a ratio (its run 16-byte
            // aligned), per 32 a min, per row its last unit.
            return n * k * 2 + (n * (k / 256) * 4).next_multiple_of(16) + n * (k / 32) * 4 + n * 4;
        }
        let mins = if self.has_min() { n * (k / 32) * 4 } else { 0 };
        n * k + n * (k / self.scale_group() as u64) * 4 + mins
    }

    /// The k step of the repacked int8 tiles on NVIDIA `arch`: 128 for
    /// 64-row tiles, and on sm_80 / sm_87 / sm_90 (blocks may opt in to
    /// 163 KB or more) for every tile, when k allows; else 64. The
    /// template's KC rule, mirrored.
    fn pipe_kc(&self, tn: u32, arch: &str) -> u32 {
        let big = matches!(arch, "sm_80" | "sm_87" | "sm_90" | "sm_90a");
        if self.k.is_multiple_of(128) && (tn == 64 || big) {
            128
        } else {
            Q8_TILE_K
        }
    }

    /// The dynamic shared memory of `variant`'s product on NVIDIA `arch`:
    /// the two cp.async stages of the repacked int8 tiles (matmul_q8.hip,
    /// PIPE), 0 for the other variants. Mirrors the template's PSTAGE; the
    /// kernel traps if its launch gives less.
    pub fn pipe_bytes(&self, variant: MatMulVariant, arch: &str) -> u32 {
        let Some((tm, tn)) = self.block_tile(variant) else {
            return 0;
        };
        if !self.repacks_weights(variant) {
            return 0;
        }
        if uses_f16_tiles(self, variant) {
            // matmul_f16k.hip's KC and stages by what the arch's blocks may
            // take: 227 KB on sm_90, 163 KB on sm_80 / sm_87, else 99 KiB.
            let (kc, stages) = match arch {
                "sm_90" | "sm_90a" => (128, 3),
                "sm_80" | "sm_87" => (128, 2),
                _ => (64, 2),
            };
            let stage = (tm + tn) * (kc + 8) * 2 + 4 * (tm * kc / 32 + tn * kc / 32 + tn);
            return stages * stage.next_multiple_of(16);
        }
        let kc = self.pipe_kc(tn, arch);
        let (cu, cs) = (kc / 32, kc / self.scale_group());
        let mins = if self.has_min() { tm * cu + tn * cu } else { 0 };
        let stage = (2 * tm + tn) * (kc + 16) + 4 * (tm * cu + tn * cs + mins);
        2 * stage.next_multiple_of(16)
    }

    /// The entry points of `variant`'s source, the product last.
    pub fn entries(&self, variant: MatMulVariant) -> &'static [&'static str] {
        match variant {
            MatMulVariant::Vector { .. } | MatMulVariant::VectorQ8 { .. } => &["matvec"],
            _ if uses_f16_tiles(self, variant) => &["repack_weights", "scale_rows", "matmul"],
            _ if self.repacks_weights(variant) => &["repack_weights", "quantize_rows", "matmul"],
            _ if uses_q8_tiles(self, variant) => &["quantize_rows", "matmul"],
            MatMulVariant::Tiled { .. }
            | MatMulVariant::TiledTall
            | MatMulVariant::Narrow { .. }
            | MatMulVariant::Fragment { .. } => &["matmul"],
        }
    }

    /// `variant`'s kernels, each entry point got from `load`.
    pub fn kernels<E: From<CodegenError>>(
        &self,
        variant: MatMulVariant,
        mut load: impl FnMut(&KernelSource, &'static str) -> std::result::Result<Kernel, E>,
    ) -> std::result::Result<MatMulKernel, E> {
        let src = self.source(variant)?;
        let mut find = |name: &'static str| -> std::result::Result<Option<Kernel>, E> {
            match self.entries(variant).contains(&name) {
                true => Ok(Some(load(&src, name)?)),
                false => Ok(None),
            }
        };
        let repack = find("repack_weights")?;
        let quantize = match find("quantize_rows")? {
            Some(q) => Some(q),
            None => find("scale_rows")?,
        };
        let main = load(
            &src,
            self.entries(variant).last().copied().unwrap_or("matmul"),
        )?;
        Ok(MatMulKernel {
            main,
            quantize,
            repack,
        })
    }

    /// A label naming the specialization.
    pub fn label(&self, variant: MatMulVariant) -> String {
        let mut s = match variant {
            MatMulVariant::Vector { tokens } => format!("matvec_t{tokens}_k{}", self.k),
            MatMulVariant::VectorQ8 { tokens } => format!("matvec_q8_t{tokens}_k{}", self.k),
            MatMulVariant::Tiled { tokens } if uses_f16_tiles(self, variant) => {
                format!("matmul_f16k_t{tokens}_k{}", self.k)
            }
            MatMulVariant::Tiled { tokens } if uses_q8_tiles(self, variant) => {
                format!("matmul_q8_t{tokens}_k{}", self.k)
            }
            MatMulVariant::Tiled { tokens } => format!("matmul_t{tokens}_k{}", self.k),
            MatMulVariant::TiledTall if uses_f16_tiles(self, variant) => {
                format!("matmul_f16k_tall_k{}", self.k)
            }
            MatMulVariant::TiledTall => format!("matmul_q8_tall_k{}", self.k),
            MatMulVariant::Narrow { tokens } => format!("matmul_q8_narrow_t{tokens}_k{}", self.k),
            MatMulVariant::Fragment {
                tokens,
                tiles,
                pipe,
            } => format!(
                "matmul_frag_t{tokens}x{tiles}{}_k{}",
                if pipe { "p" } else { "" },
                self.k
            ),
        };
        for seg in &self.segments {
            s += &format!("_{}x{}", type_label(seg.ty), seg.rows);
        }
        let flags = [
            (self.rms_eps.is_some(), "rms"),
            (self.segments.iter().any(|s| s.bias), "bias"),
            (self.rope.is_some(), "rope"),
            (self.rope.is_some_and(|r| r.freqs), "freqs"),
            (self.rope.is_some_and(|r| r.mscale != 1.0), "mscale"),
            (self.rope.is_some_and(|r| r.yarn.is_some()), "yarn"),
            (self.kv.is_some(), "kv"),
            (self.swiglu && !self.gelu, "swiglu"),
            (self.swiglu && self.gelu, "geglu"),
            (self.residual, "res"),
        ];
        for (on, f) in flags {
            if on {
                s += "_";
                s += f;
            }
        }
        s
    }

    /// Checks the spec against what the templates cover.
    pub fn validate(&self) -> Result<(), CodegenError> {
        let name = "matmul";
        let n = self.segments.len();
        if n == 0 || n > MAX_SEGMENTS {
            return Err(unsupported(
                name,
                format!("{n} weight segments (1..={MAX_SEGMENTS})"),
            ));
        }
        if self.k == 0 || !self.k.is_multiple_of(32) {
            return Err(unsupported(
                name,
                format!("input width {} is not a multiple of 32", self.k),
            ));
        }
        for s in &self.segments {
            if !gpu_supports(s.ty) {
                return Err(unsupported(name, format!("weight type {}", s.ty.name())));
            }
            if !(self.k as usize).is_multiple_of(s.ty.block_len()) {
                return Err(unsupported(
                    name,
                    format!("k={} is not whole {} blocks", self.k, s.ty.name()),
                ));
            }
        }
        let rows = self.rows();
        if rows == 0 || !rows.is_multiple_of(2) {
            return Err(unsupported(
                name,
                format!("{rows} output rows (must be even)"),
            ));
        }
        if self.swiglu && (self.rope.is_some() || self.kv.is_some()) {
            return Err(unsupported(name, "SwiGLU together with RoPE or a KV store"));
        }
        if self.gelu && !self.swiglu {
            return Err(unsupported(name, "GELU outside a gated (GeGLU) epilogue"));
        }
        if let Some(r) = self.rope {
            if r.head_dim == 0 || !r.head_dim.is_multiple_of(2) || r.heads * r.head_dim > rows {
                return Err(unsupported(
                    name,
                    format!("RoPE of {} heads of {} in {rows} rows", r.heads, r.head_dim),
                ));
            }
        }
        if let Some(kv) = self.kv {
            let fits = |c: u32| c.checked_add(kv.kv_dim).is_some_and(|e| e <= rows);
            if kv.kv_dim == 0 || kv.page_size == 0 || !fits(kv.k_col) || !fits(kv.v_col) {
                return Err(unsupported(name, format!("KV store {kv:?} in {rows} rows")));
            }
        }
        Ok(())
    }

    /// The specialized source of `variant`.
    pub fn source(&self, variant: MatMulVariant) -> Result<KernelSource, CodegenError> {
        self.validate()?;
        let q8 = uses_q8_matvec(self, variant);
        let template = match variant {
            MatMulVariant::Vector { .. } | MatMulVariant::VectorQ8 { .. } if q8 => {
                Template::MatVecQ8
            }
            MatMulVariant::Vector { .. } => Template::MatVec,
            MatMulVariant::VectorQ8 { tokens } => {
                return Err(unsupported(
                    "matmul",
                    format!("int8 matvec of {tokens} tokens for this matrix (float weights or a row too long)"),
                ))
            }
            MatMulVariant::Fragment { .. } if self.has_fragment() => Template::MatMulFrag,
            MatMulVariant::Fragment { .. } => {
                return Err(unsupported(
                    "matmul",
                    "the fragment product for this matrix (weights that read as int8, k in 128s)",
                ))
            }
            _ if uses_f16_tiles(self, variant) => Template::MatMulF16K,
            _ if uses_q8_tiles(self, variant) => Template::MatMulQ8,
            MatMulVariant::Narrow { .. } => {
                return Err(unsupported(
                    "matmul",
                    "the narrow product for this matrix (weights that read as int8, k in 128s)",
                ))
            }
            MatMulVariant::Tiled { .. } | MatMulVariant::TiledTall => Template::MatMul,
        };
        let mut src = KernelSource::new(template, self.label(variant), self.entries(variant))
            .define("K", self.k);
        for s in &self.segments {
            src = src.reading(s.ty);
        }
        src = match variant {
            MatMulVariant::Vector { tokens } | MatMulVariant::VectorQ8 { tokens } if q8 => {
                let (ks, ipw) = q8_matvec_shape(self.k, self.rows() / 2);
                src.define("NT", tokens)
                    .define("KSPLIT", ks)
                    .define("IPB", MATVEC_WARPS / ks)
                    .define("IPW", ipw)
            }
            MatMulVariant::VectorQ8 { .. } => unreachable!("refused above"),
            MatMulVariant::Vector { tokens } => {
                let ks = matvec_ksplit(self.k);
                src.define("NT", tokens)
                    .define("KSPLIT", ks)
                    .define("IPB", MATVEC_WARPS / ks)
            }
            MatMulVariant::Narrow { tokens } => {
                if !NARROW_TOKENS.contains(&tokens) {
                    return Err(unsupported(
                        "matmul",
                        format!("narrow token tile {tokens} (16 or 32)"),
                    ));
                }
                // TM and TN only steer the shared tile macros (TN = 64: the
                // k step of 128 on NVIDIA, as quantize_rows must match).
                src.define("NARROW", 1)
                    .define("NW", NARROW_WARPS)
                    .define("NTOK", tokens)
                    .define("NIB", narrow_items(self.rows() / 2))
                    .define("TM", 32)
                    .define("TN", 64)
                    .define("SUB", self.scale_group())
                    .define("HAS_MIN", self.has_min() as u32)
                    .define("REPACKED", 1)
                    .define("PIPE_BYTES", 0)
            }
            MatMulVariant::Fragment {
                tokens,
                tiles,
                pipe,
            } => {
                if !FRAG_VARIANTS.contains(&variant) {
                    return Err(unsupported(
                        "matmul",
                        format!("fragment product {variant} (one of FRAG_VARIANTS)"),
                    ));
                }
                src.define("NTOK", tokens)
                    .define("TPB", tiles)
                    .define("PIPE", pipe as u32)
                    .define("SUB", self.scale_group())
                    .define("HAS_MIN", self.has_min() as u32)
                    .define("FB", self.frag_bits())
            }
            MatMulVariant::Tiled { .. } | MatMulVariant::TiledTall => {
                if let MatMulVariant::Tiled { tokens } = variant {
                    if !matches!(tokens, 32 | 64 | 128) {
                        return Err(unsupported(
                            "matmul",
                            format!("token tile {tokens} (32, 64 or 128)"),
                        ));
                    }
                } else if !self.has_tall() {
                    return Err(unsupported(
                        "matmul",
                        "the 64 x 192 tile (wide matrices with repacked weights only)",
                    ));
                }
                let (tm, tn) = self.block_tile(variant).unwrap_or((64, 64));
                src = src.define("TM", tm).define("TN", tn);
                if uses_f16_tiles(self, variant) {
                    src = src.define("PIPE_BYTES", self.pipe_bytes(variant, LARGEST_PIPE_ARCH));
                }
                if uses_q8_tiles(self, variant) {
                    src = src
                        .define("SUB", self.scale_group())
                        .define("HAS_MIN", self.has_min() as u32)
                        .define("REPACKED", self.repacks_weights(variant) as u32)
                        .define("PIPE_BYTES", self.pipe_bytes(variant, LARGEST_PIPE_ARCH));
                }
                src
            }
        };
        for (i, s) in self.segments.iter().enumerate() {
            src = src
                .define(&format!("SEG{i}_TYPE"), type_id(s.ty))
                .define(&format!("SEG{i}_ROWS"), s.rows)
                .define(&format!("SEG{i}_BIAS"), s.bias as u32);
        }
        if let Some(eps) = self.rms_eps {
            src = src
                .define("PROLOGUE_RMS", 1)
                .define_f32_bits("EPS_BITS", eps);
        }
        if self.segments.iter().any(|s| s.bias) {
            src = src.define("EPI_BIAS", 1);
        }
        if let Some(r) = self.rope {
            src = r.define(src.define("EPI_ROPE", 1));
        }
        if let Some(kv) = self.kv {
            src = src
                .define("EPI_KV", 1)
                .define("KV_K_COL", kv.k_col)
                .define("KV_V_COL", kv.v_col)
                .define("KV_DIM", kv.kv_dim)
                .define("PAGE_SIZE", kv.page_size);
        }
        if self.swiglu {
            src = src.define("EPI_SWIGLU", 1).define("FF", self.rows() / 2);
        }
        if self.gelu {
            src = src.define("EPI_GEGLU", 1);
        }
        if self.residual {
            src = src.define("EPI_RESIDUAL", 1);
        }
        Ok(src)
    }

    /// Grid and block for `tokens` tokens.
    pub fn dims(&self, variant: MatMulVariant, tokens: u32, warp: u32) -> LaunchDims {
        let items = self.rows() / 2;
        match variant {
            MatMulVariant::Vector { tokens: nt } | MatMulVariant::VectorQ8 { tokens: nt }
                if uses_q8_matvec(self, variant) =>
            {
                let (ks, ipw) = q8_matvec_shape(self.k, items);
                let per_block = MATVEC_WARPS / ks * ipw;
                LaunchDims::new(
                    [items.div_ceil(per_block), tokens.div_ceil(nt).max(1), 1],
                    MATVEC_WARPS * warp,
                )
            }
            MatMulVariant::Vector { tokens: nt } | MatMulVariant::VectorQ8 { tokens: nt } => {
                let ipb = MATVEC_WARPS / matvec_ksplit(self.k);
                LaunchDims::new(
                    [items.div_ceil(ipb), tokens.div_ceil(nt).max(1), 1],
                    MATVEC_WARPS * warp,
                )
            }
            MatMulVariant::Narrow { tokens: nt } => LaunchDims::new(
                [
                    items.div_ceil(narrow_items(items)),
                    tokens.div_ceil(nt).max(1),
                    1,
                ],
                32 * NARROW_WARPS,
            ),
            MatMulVariant::Fragment {
                tokens: nt, tiles, ..
            } => LaunchDims::new(
                [
                    items.div_ceil(8).div_ceil(tiles),
                    tokens.div_ceil(nt).max(1),
                    1,
                ],
                256,
            ),
            MatMulVariant::Tiled { .. } | MatMulVariant::TiledTall => {
                let (tm, tn) = self.block_tile(variant).unwrap_or((64, 64));
                LaunchDims::new([items.div_ceil(tn / 2), tokens.div_ceil(tm).max(1), 1], 256)
            }
        }
    }

    /// Queues the weights' repack to int8 with block scales (`repack`, the
    /// [`MatMulKernel::repack`] of a variant that
    /// [repacks](Self::repacks_weights)) into `wq`.
    ///
    /// # Safety
    /// `w` must address this spec's weight segments and `wq` at least
    /// [`wq_bytes`](Self::wq_bytes) of device memory, until the work is done.
    pub unsafe fn repack(
        &self,
        variant: MatMulVariant,
        repack: &Kernel,
        stream: &Stream,
        w: &[DevicePtr; MAX_SEGMENTS],
        wq: DevicePtr,
    ) -> Result<()> {
        let args = KernelArgs::new()
            .ptr(w[0])
            .ptr(w[1])
            .ptr(w[2])
            .ptr(w[3])
            .ptr(wq);
        let parts = self.repack_launch_rows(variant) * (self.k as u64 / 8);
        let blocks = u32::try_from(parts.div_ceil(256)).map_err(|_| {
            crate::backend::BackendError::Invalid(format!(
                "{parts} weight parts to repack exceed one grid"
            ))
        })?;
        repack.launch(stream, LaunchDims::new([blocks, 1, 1], 256), &args)
    }

    /// Queues the kernel (compiled from [`source`](Self::source) of the
    /// same variant) for `args.tokens` tokens.
    ///
    /// # Safety
    /// Every pointer of `args` must address device memory of the sizes
    /// docs/KERNELS.md states for this spec, valid until the work is done.
    pub unsafe fn launch(
        &self,
        kernel: &MatMulKernel,
        stream: &Stream,
        variant: MatMulVariant,
        warp: u32,
        a: &MatMulArgs,
    ) -> Result<()> {
        if a.tokens == 0 {
            return Ok(());
        }
        let (mut x, mut w0) = (a.x, a.w[0]);
        if let Some(r) = &kernel.repack {
            let kept = match self.repack_format(variant) {
                RepackFormat::F16 => a.kept_f16,
                RepackFormat::Int8 => a.kept_i8,
                RepackFormat::Fragment => a.kept_frag,
            };
            w0 = if kept.is_null() {
                self.repack(variant, r, stream, &a.w, a.wq)?;
                a.wq
            } else {
                kept
            };
        }
        if let Some(q) = &kernel.quantize {
            let args = KernelArgs::new()
                .ptr(a.x)
                .u32(a.ldx)
                .ptr(a.norm)
                .ptr(a.xq)
                .u32(a.tokens);
            q.launch(stream, LaunchDims::new([a.tokens, 1, 1], 256), &args)?;
            x = a.xq;
        }
        let args = KernelArgs::new()
            .ptr(x)
            .u32(a.ldx)
            .ptr(w0)
            .ptr(a.w[1])
            .ptr(a.w[2])
            .ptr(a.w[3])
            .ptr(a.bias[0])
            .ptr(a.bias[1])
            .ptr(a.bias[2])
            .ptr(a.bias[3])
            .ptr(a.norm)
            .ptr(a.residual)
            .u32(a.ldr)
            .ptr(a.out)
            .u32(a.ldo)
            .ptr(a.pos)
            .ptr(a.seq)
            .ptr(a.pages)
            .u32(a.pages_per_seq)
            .ptr(a.kv)
            .u32(a.tokens)
            .ptr(a.freqs);
        let mut dims = self.dims(variant, a.tokens, warp);
        let info = stream.gpu().info();
        if info.vendor == Vendor::Cuda {
            dims.shared_bytes = self.pipe_bytes(variant, &info.arch);
        }
        kernel.main.launch(stream, dims, &args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ty: GgmlType, rows: u32, k: u32) -> MatMulSpec {
        MatMulSpec::plain(ty, rows, k)
    }

    const ONE: MatMulVariant = MatMulVariant::Vector { tokens: 1 };

    /// Llama-3-8B Q4_K_M's qkv: Q4_K | Q6_K | Q4_K, 6,144 rows of 4,096.
    fn llama3_8b_qkv() -> MatMulSpec {
        MatMulSpec::concatenated(
            4096,
            vec![
                Segment::unbiased(GgmlType::Q4_K, 4096),
                Segment::unbiased(GgmlType::Q6_K, 1024),
                Segment::unbiased(GgmlType::Q4_K, 1024),
            ],
        )
    }

    #[test]
    fn a_one_token_matvec_of_large_quantized_weights_rounds_its_input_to_int8() {
        let s = spec(GgmlType::Q4_K, 14336 * 2, 4096);
        assert!(s.quantizes_input(ONE));
        assert_eq!(s.source(ONE).unwrap().template, Template::MatVecQ8);
    }

    #[test]
    fn float_weights_small_matrices_and_multi_token_steps_keep_an_f32_input() {
        assert!(!spec(GgmlType::F16, 14336, 4096).quantizes_input(ONE));
        assert!(!spec(GgmlType::Q5_0, 1152, 896).quantizes_input(ONE));
        let big = spec(GgmlType::Q4_K, 14336, 4096);
        assert!(!big.quantizes_input(MatMulVariant::Vector { tokens: 4 }));
        assert_eq!(
            big.source(MatMulVariant::Vector { tokens: 4 })
                .unwrap()
                .template,
            Template::MatVec
        );
    }

    #[test]
    fn int8_passes_of_several_tokens_need_quantized_rows_that_fit_a_block() {
        let q8 = |tokens| MatMulVariant::VectorQ8 { tokens };
        let narrow = spec(GgmlType::Q5_0, 9728, 896);
        assert!(narrow.variants(Vendor::Cuda).contains(&q8(8)));
        assert!(narrow.quantizes_input(q8(8)));
        let src = narrow.source(q8(8)).unwrap();
        assert_eq!(src.defines["NT"], "8");
        assert_eq!(narrow.dims(q8(8), 13, 32).grid[1], 2);
        // 4,864 inputs: 8 tokens take 92 KB, 4 tokens 46 KB: neither.
        let down = spec(GgmlType::Q6_K, 896, 4864);
        assert!(!down.has_q8_passes(4));
        assert!(down.source(q8(4)).is_err());
        // Float weights never.
        assert!(!spec(GgmlType::F16, 896, 896).has_q8_passes(4));
    }

    #[test]
    fn the_narrow_product_reads_an_int8_copy_of_whole_128_element_chunks() {
        let n16 = MatMulVariant::Narrow { tokens: 16 };
        let qkv = llama3_8b_qkv();
        assert!(qkv.has_narrow());
        assert!(qkv.repacks_weights(n16) && !qkv.takes_f16_tiles(n16));
        assert_eq!(qkv.source(n16).unwrap().template, Template::MatMulQ8);
        assert_eq!(
            qkv.wq_bytes(n16),
            6144 * 4096 + 6144 * (4096 / 16) * 4 + 6144 * 128 * 4
        );
        // Blocks of 16 items where 32 would leave SMs without three blocks.
        assert_eq!(qkv.dims(n16, 9, 32).grid, [3072 / 16, 1, 1]);
        let gate_up = spec(GgmlType::Q4_K, 2 * 14336, 4096);
        assert_eq!(gate_up.dims(n16, 20, 32).grid, [14336 / 32, 2, 1]);
        // Not for k outside 128s, weights with no int8 reading, or token
        // tiles other than 16 and 32.
        assert!(!spec(GgmlType::Q4_0, 96, 320).has_narrow());
        assert!(!spec(GgmlType::Q2_K, 96, 512).has_narrow());
        assert!(!spec(GgmlType::F16, 96, 512).has_narrow());
        assert!(qkv.source(MatMulVariant::Narrow { tokens: 8 }).is_err());
        // Output projections of large vocabularies too (their copy is
        // resident), but not the tiles' per-step repack of them.
        let output = spec(GgmlType::Q6_K, 128_256, 4096);
        assert!(output.has_narrow() && output.has_fragment());
        assert!(output.repacks_weights(n16));
        assert!(!output.repacks_weights(MatMulVariant::Tiled { tokens: 128 }));
        assert!(output.copy_is_resident_only(n16) && !qkv.copy_is_resident_only(n16));
        assert!(!spec(GgmlType::Q6_K, 300_000, 4096).has_narrow());
        assert_eq!(
            "narrow/32".parse(),
            Ok(MatMulVariant::Narrow { tokens: 32 })
        );
    }

    #[test]
    fn the_fragment_product_keeps_4_bit_weights_4_bit_in_whole_tiles_on_nvidia_only() {
        let frag = |tokens, tiles, pipe| MatMulVariant::Fragment {
            tokens,
            tiles,
            pipe,
        };
        let f8 = frag(8, 4, false);
        let f32_ = frag(32, 1, true);
        // Q4_K: 4-bit values, an f32 scale and min per 32, 16-row tiles.
        let gate_up = spec(GgmlType::Q4_K, 2 * 14336, 4096);
        assert!(gate_up.has_fragment());
        assert_eq!(gate_up.repack_format(f8), RepackFormat::Fragment);
        assert_eq!(gate_up.source(f8).unwrap().template, Template::MatMulFrag);
        // Every form reads the same copy.
        let bytes = 28672 * 4096 / 2 + 28672 * 128 * 4 + 28672 * 128 * 4;
        for v in FRAG_VARIANTS {
            assert_eq!(gate_up.wq_bytes(v), bytes, "{v}");
            assert_eq!(gate_up.repack_format(v), RepackFormat::Fragment, "{v}");
        }
        // Mixed with Q6_K: int8 values, scales per 16, mins per 32.
        let qkv = llama3_8b_qkv();
        assert_eq!(
            qkv.wq_bytes(f8),
            6144 * 4096 + 6144 * 256 * 4 + 6144 * 128 * 4
        );
        // A partial tile is stored whole: 20 items are 3 tiles of 8.
        let small = spec(GgmlType::Q8_0, 40, 256);
        assert_eq!(small.wq_bytes(f8), 48 * 256 + 48 * 8 * 4);
        assert_eq!(small.repack_launch_rows(f8), 48);
        // Activations: 16 bytes an element and 8 of scales per 32, per octet.
        assert_eq!(gate_up.xq_bytes(f8, 9), 2 * 18 * 4096);
        // The variant's tiles per block set the grid (1,792 tiles) and the
        // kernel's TPB; the pipelined form is its own kernel.
        assert_eq!(gate_up.dims(f8, 5, 32).grid, [1792 / 4, 1, 1]);
        assert_eq!(gate_up.dims(f32_, 40, 32).grid, [1792, 2, 1]);
        assert_eq!(gate_up.dims(frag(16, 2, false), 40, 32).grid, [896, 3, 1]);
        assert_eq!(qkv.dims(frag(8, 1, false), 8, 32).grid, [384, 1, 1]);
        let src = |v| gate_up.source(v).unwrap();
        assert_eq!(src(f8).defines["TPB"], "4");
        assert_eq!(src(f8).defines["PIPE"], "0");
        assert_eq!(src(f32_).defines["PIPE"], "1");
        assert_ne!(gate_up.label(f32_), gate_up.label(frag(32, 1, false)));
        // Compiled for NVIDIA only, in the 14 forms, and no others.
        let cuda = gate_up.variants(Vendor::Cuda);
        assert!(FRAG_VARIANTS.iter().all(|v| cuda.contains(v)));
        assert!(!gate_up.variants(Vendor::Hip).contains(&f8));
        for bad in [
            frag(4, 1, false),
            frag(32, 4, false),
            frag(32, 2, true),
            frag(8, 3, false),
        ] {
            assert!(gate_up.source(bad).is_err(), "{bad}");
        }
        assert!(spec(GgmlType::Q2_K, 96, 512).source(f8).is_err());
        // Names: tokens x tiles, `p` when pipelined; every form round-trips.
        assert_eq!("frag/16x2".parse(), Ok(frag(16, 2, false)));
        assert_eq!("frag/8x1p".parse(), Ok(frag(8, 1, true)));
        assert_eq!(f32_.to_string(), "frag/32x1p");
        for v in FRAG_VARIANTS {
            assert_eq!(v.to_string().parse(), Ok(v));
        }
        for bad in ["frag/16", "frag/16x", "frag/x2", "frag/16x2q", "frag/0x1"] {
            assert!(bad.parse::<MatMulVariant>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_wide_matrix_takes_the_tall_tile_where_its_blocks_fill_the_waves_better() {
        let tall = MatMulVariant::TiledTall;
        let t128 = MatMulVariant::Tiled { tokens: 128 };
        // Llama-3-8B's qkv (Q4_K | Q6_K | Q4_K, 6144 rows): 192 square blocks
        // at 512 tokens are 1.45 waves of 132 SMs, 256 tall ones 1.94; on
        // 108 SMs the square ones are 1.78 waves, the tall ones 2.37.
        let qkv = llama3_8b_qkv();
        assert!(qkv.has_tall());
        assert!(qkv.variants(Vendor::Cuda).contains(&tall));
        // K = 4,096: two or four tokens' int8 rows fit a block, eight do
        // not; the narrow product on both vendors, the tall tile on NVIDIA
        // only.
        let mut hip = MATMUL_VARIANTS.to_vec();
        hip.push(MatMulVariant::VectorQ8 { tokens: 2 });
        hip.push(MatMulVariant::VectorQ8 { tokens: 4 });
        hip.extend(NARROW_TOKENS.map(|tokens| MatMulVariant::Narrow { tokens }));
        assert_eq!(qkv.variants(Vendor::Hip), hip);
        assert_eq!(qkv.variant_for(512, 132, Vendor::Cuda), tall);
        assert_eq!(qkv.variant_for(512, 108, Vendor::Cuda), t128);
        assert_eq!(qkv.variant_for(512, 132, Vendor::Hip), t128);
        assert_eq!(
            qkv.variant_for(64, 132, Vendor::Cuda),
            MatMulVariant::Tiled { tokens: 64 }
        );
        assert_eq!(qkv.block_tile(tall), Some((64, 192)));
        assert_eq!(qkv.dims(tall, 512, 32).grid, [32, 8, 1]);
        assert!(qkv.repacks_weights(tall));
        assert_eq!(qkv.wq_bytes(tall), qkv.wq_bytes(t128));
        let src = qkv.source(tall).unwrap();
        assert_eq!(
            (src.defines["TM"].as_str(), src.defines["TN"].as_str()),
            ("64", "192")
        );
        assert_ne!(src.label, qkv.source(t128).unwrap().label);
        // gate|up's 896 square blocks fill 6.8 waves, down's 128 one: square.
        assert_eq!(
            spec(GgmlType::Q4_K, 2 * 14336, 4096).variant_for(512, 132, Vendor::Cuda),
            t128
        );
        assert_eq!(
            spec(GgmlType::Q6_K, 4096, 14336).variant_for(512, 132, Vendor::Cuda),
            t128
        );
        // Narrow matrices and float weights have no tall tile.
        for narrow in [
            spec(GgmlType::Q4_K, 1152, 896),
            spec(GgmlType::F16, 6144, 4096),
        ] {
            assert!(!narrow.has_tall());
            assert!(!narrow.variants(Vendor::Cuda).contains(&tall));
            assert_eq!(narrow.variant_for(512, 132, Vendor::Cuda), t128);
            assert!(narrow.source(tall).is_err());
        }
    }

    #[test]
    fn prefill_tiles_of_int8_readable_weights_take_the_int8_matrix_units() {
        let t128 = MatMulVariant::Tiled { tokens: 128 };
        let t32 = MatMulVariant::Tiled { tokens: 32 };
        let q4k = spec(GgmlType::Q4_K, 14336, 4096);
        assert_eq!(q4k.source(t32).unwrap().template, Template::MatMulQ8);
        assert_eq!(q4k.entries(t32), ["quantize_rows", "matmul"]);
        assert_eq!(q4k.xq_bytes(t32, 10), 10 * (2 * 4096 + 4096 / 32 * 8));
        // Large tiles repack the weights once per step; small ones decode
        // them in the tiles.
        assert!(q4k.repacks_weights(t128) && !q4k.repacks_weights(t32));
        assert_eq!(
            q4k.entries(t128),
            ["repack_weights", "quantize_rows", "matmul"]
        );
        // int8 values, a scale per 32 and a min per 32 for Q4_K.
        assert_eq!(q4k.wq_bytes(t128), 14336 * 4096 + 2 * 14336 * 128 * 4);
        assert_eq!(q4k.wq_bytes(t32), 0);
        // Q6_K: a scale per 16 elements, no min.
        let q6k = spec(GgmlType::Q6_K, 4096, 14336);
        assert_eq!(q6k.wq_bytes(t128), 4096 * 14336 + 4096 * (14336 / 16) * 4);
        let src = q6k.source(t128).unwrap();
        assert_eq!(src.defines["SUB"], "16");
        assert_eq!(src.defines["HAS_MIN"], "0");
    }

    #[test]
    fn k_quant_matrices_take_the_f16_tiles_on_nvidia_only() {
        let t128 = MatMulVariant::Tiled { tokens: 128 };
        let gate_up = spec(GgmlType::Q4_K, 2 * 14336, 4096);
        assert!(gate_up.f16_tiles_read());
        let hip = gate_up.clone().with_f16_tiles(Vendor::Hip);
        assert!(!hip.f16_tiles && !hip.takes_f16_tiles(t128));
        assert_eq!(hip.source(t128).unwrap().template, Template::MatMulQ8);
        let cuda = gate_up.with_f16_tiles(Vendor::Cuda);
        assert!(cuda.takes_f16_tiles(t128) && cuda.repacks_weights(t128));
        let src = cuda.source(t128).unwrap();
        assert_eq!(src.template, Template::MatMulF16K);
        assert_eq!(
            cuda.entries(t128),
            ["repack_weights", "scale_rows", "matmul"]
        );
        // An f16 per element, an f32 sum per 32, an f32 scale per token.
        assert_eq!(cuda.xq_bytes(t128, 3), 3 * (2 * 4096 + 128 * 4 + 4));
        // f16 sc·q, a ratio per 256 (its run padded to 16 bytes), a min per
        // 32, the last unit per row.
        let n = 2 * 14336u64;
        assert_eq!(
            cuda.wq_bytes(t128),
            n * 4096 * 2 + (n * 16 * 4).next_multiple_of(16) + n * 128 * 4 + n * 4
        );
        // Three stages of 128-element chunks on sm_90, two on sm_80, two of
        // 64 where blocks take 99 KiB at most.
        let stage = |kc: u32| (128 + 128) * (kc + 8) * 2 + 4 * (128 * kc / 32 * 2 + 128);
        assert_eq!(cuda.pipe_bytes(t128, "sm_90"), 3 * stage(128));
        assert!(cuda.pipe_bytes(t128, "sm_90") <= 227 * 1024);
        assert_eq!(cuda.pipe_bytes(t128, "sm_80"), 2 * stage(128));
        assert!(cuda.pipe_bytes(t128, "sm_80") <= 163 * 1024);
        assert_eq!(cuda.pipe_bytes(t128, "sm_89"), 2 * stage(64));
        assert!(cuda.pipe_bytes(t128, "sm_86") <= 99 * 1024);
        assert_eq!(src.defines["PIPE_BYTES"], (3 * stage(128)).to_string());
        // Smaller token tiles keep the int8 ones (they decode the weights in
        // place).
        let t64 = MatMulVariant::Tiled { tokens: 64 };
        assert!(!cuda.takes_f16_tiles(t64));
        assert_eq!(cuda.source(t64).unwrap().template, Template::MatMulQ8);
        // Llama-3-8B's qkv mixes Q4_K and Q6_K: f16 in both 128-token tiles,
        // one repacked format for both.
        let qkv = llama3_8b_qkv().with_f16_tiles(Vendor::Cuda);
        let tall = MatMulVariant::TiledTall;
        assert!(qkv.has_tall() && qkv.takes_f16_tiles(tall));
        assert_eq!(qkv.wq_bytes(tall), qkv.wq_bytes(t128));
        assert_eq!(qkv.source(tall).unwrap().template, Template::MatMulF16K);
        assert_ne!(qkv.label(tall), qkv.label(t128));
        assert_eq!(qkv.variant_for(512, 132, Vendor::Cuda), tall);
    }

    #[test]
    fn other_types_partial_super_blocks_and_huge_matrices_keep_the_int8_tiles() {
        let t128 = MatMulVariant::Tiled { tokens: 128 };
        for ty in [
            GgmlType::Q8_0,
            GgmlType::Q4_0,
            GgmlType::Q2_K,
            GgmlType::F16,
        ] {
            let s = spec(ty, 4096, 4096).with_f16_tiles(Vendor::Cuda);
            assert!(!s.f16_tiles && !s.takes_f16_tiles(t128), "{ty:?}");
        }
        // One Q8_0 segment among K-quants.
        let mixed = MatMulSpec::concatenated(
            4096,
            vec![
                Segment::unbiased(GgmlType::Q4_K, 4096),
                Segment::unbiased(GgmlType::Q8_0, 1024),
            ],
        );
        assert!(!mixed.with_f16_tiles(Vendor::Cuda).f16_tiles);
        // 896 inputs are not whole super-blocks; a 128k vocabulary is too
        // large to repack.
        assert!(!spec(GgmlType::Q4_K, 4096, 896).f16_tiles_read());
        assert!(!spec(GgmlType::Q6_K, 128_256, 4096).f16_tiles_read());
        for ty in [GgmlType::Q3_K, GgmlType::Q5_K, GgmlType::Q6_K] {
            assert!(spec(ty, 4096, 4864).f16_tiles_read(), "{ty:?}");
        }
    }

    #[test]
    fn float_q2_k_odd_widths_and_huge_matrices_keep_the_f16_tiles_or_skip_the_repack() {
        let t128 = MatMulVariant::Tiled { tokens: 128 };
        for ty in [GgmlType::F16, GgmlType::F32, GgmlType::BF16, GgmlType::Q2_K] {
            let s = spec(ty, 4096, 4096);
            assert!(!s.quantizes_input(t128), "{ty:?}");
            assert_eq!(s.source(t128).unwrap().template, Template::MatMul);
            assert_eq!(s.xq_bytes(t128, 512), 0);
        }
        // k = 96 is whole blocks of 32 but not whole 64-element k steps.
        assert!(!spec(GgmlType::Q8_0, 256, 96).quantizes_input(t128));
        // A 128k-vocabulary output projection: int8 tiles, weights decoded in place.
        let lm = spec(GgmlType::Q6_K, 128_256, 4096);
        assert!(lm.quantizes_input(t128) && !lm.repacks_weights(t128));
    }

    #[test]
    fn an_input_row_too_long_for_shared_memory_keeps_an_f32_input() {
        assert!(!spec(GgmlType::Q8_0, 2048, 16_384 + 32).quantizes_input(ONE));
    }

    #[test]
    fn the_q8_grid_covers_every_item_once() {
        for (rows, k) in [(28672, 4096), (4096, 14336), (256512, 4096), (9728, 896)] {
            let s = spec(GgmlType::Q8_0, rows, k);
            assert!(s.quantizes_input(ONE));
            let (ks, ipw) = q8_matvec_shape(s.k, rows / 2);
            let per_block = MATVEC_WARPS / ks * ipw;
            let grid = s.dims(ONE, 1, 32).grid[0];
            assert!(grid * per_block >= rows / 2 && (grid - 1) * per_block < rows / 2);
            assert!(
                ks == 1 || ks * 1024 <= s.k,
                "a split leaves each lane whole units"
            );
        }
    }

    #[test]
    fn wide_matrices_take_128_by_128_tiles_and_narrow_ones_64_by_64() {
        assert_eq!(spec(GgmlType::Q8_0, WIDE_ROWS, 896).tile(128), (128, 128));
        assert_eq!(spec(GgmlType::Q8_0, WIDE_ROWS - 2, 896).tile(128), (64, 64));
        assert_eq!(spec(GgmlType::Q8_0, 896, 896).tile(32), (32, 64));
    }

    #[test]
    fn the_tiled_grid_covers_every_output_pair_and_token() {
        let s = spec(GgmlType::Q8_0, WIDE_ROWS + 2, 896);
        let v = MatMulVariant::Tiled { tokens: 128 };
        let d = s.dims(v, 130, 32);
        let (tm, tn) = s.tile(128);
        assert!(d.grid[0] * (tn / 2) >= s.rows() / 2);
        assert!(d.grid[1] * tm >= 130);
    }

    #[test]
    fn the_repacked_tiles_get_two_pipeline_stages_of_shared_memory() {
        let t128 = MatMulVariant::Tiled { tokens: 128 };
        // Llama-3-8B's gate|up: 128 x 128 tiles with mins; 64-element
        // chunks where blocks opt in to 99 KiB at most.
        let gate_up = spec(GgmlType::Q4_K, 2 * 14336, 4096);
        let small = (2 * 128 + 128) * 80 + 4 * (128 * 2 + 128 * 2 + 128 * 2 + 128 * 2);
        assert_eq!(gate_up.pipe_bytes(t128, "sm_89"), 2 * small);
        assert!(gate_up.pipe_bytes(t128, "sm_86") <= 99 * 1024);
        // sm_80 / sm_90 blocks take 163 KB or more: 128-element chunks.
        let big = (2 * 128 + 128) * 144 + 4 * (128 * 4 + 128 * 4 + 128 * 4 + 128 * 4);
        assert_eq!(gate_up.pipe_bytes(t128, "sm_90"), 2 * big);
        assert!(gate_up.pipe_bytes(t128, "sm_80") <= 163 * 1024);
        // 64 x 64 tiles take 128-element chunks everywhere; Q6_K scales per 16.
        let down = spec(GgmlType::Q6_K, 896, 4864);
        let stage = (2 * 64 + 64) * 144 + 4 * (64 * 4 + 64 * 8);
        assert_eq!(down.pipe_bytes(t128, "sm_86"), 2 * stage);
        assert!(down.pipe_bytes(t128, "sm_89") <= 99 * 1024);
        let t64 = MatMulVariant::Tiled { tokens: 64 };
        assert_eq!(gate_up.pipe_bytes(t64, "sm_90"), 0);
        assert_eq!(gate_up.pipe_bytes(ONE, "sm_90"), 0);
        // The source bounds the stages by the largest target's.
        let src = gate_up.source(t128).unwrap();
        assert_eq!(src.defines["PIPE_BYTES"], (2 * big).to_string());
    }
}
