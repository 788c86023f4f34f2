//! The lattice grids of the IQ1/IQ2/IQ3 weight types as kernel source:
//! device arrays written from the very tables the CPU decodes with
//! ([`crate::quant::blocks::iq_grids`]), emitted only into the kernels
//! whose weights index them (kernel_templates/quant_iq.h reads them; its
//! decoders of a type exist only behind the grid's `RFC_GRID_*` guard).
//!
//! They are global `__device__` arrays, not `__constant__`: the lanes of a
//! warp index them at random, which the constant cache serves one address
//! at a time, while L1 serves a warp's scattered reads together.

use std::fmt::Write;

use crate::quant::blocks::iq_grids::{
    IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID,
};
use crate::quant::GgmlType;

/// One grid table (IQ1_S and IQ1_M share theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LatticeGrid {
    Iq2Xxs,
    Iq2Xs,
    Iq2S,
    Iq3Xxs,
    Iq3S,
    Iq1S,
}

/// A table's entries, as the kernel declares them.
enum Entries {
    U64(&'static [u64]),
    U32(&'static [u32]),
}

impl LatticeGrid {
    /// The grid a weight type indexes (None: it needs none).
    pub fn of(ty: GgmlType) -> Option<LatticeGrid> {
        use GgmlType::*;
        Some(match ty {
            IQ2_XXS => LatticeGrid::Iq2Xxs,
            IQ2_XS => LatticeGrid::Iq2Xs,
            IQ2_S => LatticeGrid::Iq2S,
            IQ3_XXS => LatticeGrid::Iq3Xxs,
            IQ3_S => LatticeGrid::Iq3S,
            IQ1_S | IQ1_M => LatticeGrid::Iq1S,
            _ => return None,
        })
    }

    /// The array's name in quant_iq.h.
    pub fn array(self) -> &'static str {
        match self {
            LatticeGrid::Iq2Xxs => "iq2xxs_grid",
            LatticeGrid::Iq2Xs => "iq2xs_grid",
            LatticeGrid::Iq2S => "iq2s_grid",
            LatticeGrid::Iq3Xxs => "iq3xxs_grid",
            LatticeGrid::Iq3S => "iq3s_grid",
            LatticeGrid::Iq1S => "iq1s_grid",
        }
    }

    /// The macro quant_iq.h tests before it decodes the grid's types.
    pub fn guard(self) -> &'static str {
        match self {
            LatticeGrid::Iq2Xxs => "RFC_GRID_IQ2XXS",
            LatticeGrid::Iq2Xs => "RFC_GRID_IQ2XS",
            LatticeGrid::Iq2S => "RFC_GRID_IQ2S",
            LatticeGrid::Iq3Xxs => "RFC_GRID_IQ3XXS",
            LatticeGrid::Iq3S => "RFC_GRID_IQ3S",
            LatticeGrid::Iq1S => "RFC_GRID_IQ1S",
        }
    }

    fn entries(self) -> Entries {
        match self {
            LatticeGrid::Iq2Xxs => Entries::U64(&IQ2XXS_GRID),
            LatticeGrid::Iq2Xs => Entries::U64(&IQ2XS_GRID),
            LatticeGrid::Iq2S => Entries::U64(&IQ2S_GRID),
            LatticeGrid::Iq3Xxs => Entries::U32(&IQ3XXS_GRID),
            LatticeGrid::Iq3S => Entries::U32(&IQ3S_GRID),
            LatticeGrid::Iq1S => Entries::U64(&IQ1S_GRID),
        }
    }

    /// The guard and the array, as C (after the prelude's typedefs).
    pub fn text(self) -> String {
        let mut s = format!("#define {} 1\n", self.guard());
        let (ctype, suffix, words): (&str, &str, Vec<String>) = match self.entries() {
            Entries::U64(t) => (
                "u64",
                "ull",
                t.iter().map(|v| format!("{v:#018x}")).collect(),
            ),
            Entries::U32(t) => ("u32", "u", t.iter().map(|v| format!("{v:#010x}")).collect()),
        };
        let _ = writeln!(
            s,
            "static __device__ const {ctype} {}[{}] = {{",
            self.array(),
            words.len()
        );
        for line in words.chunks(6) {
            let items: Vec<String> = line.iter().map(|w| format!("{w}{suffix}")).collect();
            let _ = writeln!(s, "    {},", items.join(", "));
        }
        s.push_str("};\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hex words of the table text, in order.
    fn parsed(text: &str) -> Vec<u64> {
        let body = &text[text.find('{').unwrap() + 1..text.rfind('}').unwrap()];
        body.split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(|w| {
                u64::from_str_radix(w.trim_start_matches("0x").trim_end_matches(['u', 'l']), 16)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn each_table_text_holds_the_cpu_grid_entry_for_entry() {
        let u64s = |t: &[u64]| t.to_vec();
        let u32s = |t: &[u32]| t.iter().map(|&v| v as u64).collect::<Vec<_>>();
        for (g, want) in [
            (LatticeGrid::Iq2Xxs, u64s(&IQ2XXS_GRID)),
            (LatticeGrid::Iq2Xs, u64s(&IQ2XS_GRID)),
            (LatticeGrid::Iq2S, u64s(&IQ2S_GRID)),
            (LatticeGrid::Iq3Xxs, u32s(&IQ3XXS_GRID)),
            (LatticeGrid::Iq3S, u32s(&IQ3S_GRID)),
            (LatticeGrid::Iq1S, u64s(&IQ1S_GRID)),
        ] {
            let text = g.text();
            assert!(text.starts_with(&format!("#define {} 1\n", g.guard())));
            assert!(text.contains(&format!(" {}[{}] = {{", g.array(), want.len())));
            assert_eq!(parsed(&text), want, "{g:?}");
        }
    }

    #[test]
    fn every_lattice_type_has_a_grid_and_the_others_none() {
        for ty in GgmlType::ALL {
            let lattice = ty.name().starts_with("IQ") && !ty.name().starts_with("IQ4");
            assert_eq!(LatticeGrid::of(ty).is_some(), lattice, "{ty}");
        }
        assert_eq!(LatticeGrid::of(GgmlType::IQ1_M), Some(LatticeGrid::Iq1S));
    }

    /// quant_iq.h negates grid bytes with a borrow-free byte subtraction
    /// and reads them as int8 magnitudes: every IQ2/IQ3 byte lies in
    /// 1..=127, every IQ1 byte is -1, 0 or 1.
    #[test]
    fn grid_bytes_fit_the_kernels_int8_reading() {
        let bytes64 = |t: &[u64]| t.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
        let bytes32 = |t: &[u32]| t.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
        for b in [
            bytes64(&IQ2XXS_GRID),
            bytes64(&IQ2XS_GRID),
            bytes64(&IQ2S_GRID),
            bytes32(&IQ3XXS_GRID),
            bytes32(&IQ3S_GRID),
        ] {
            assert!(b.iter().all(|&v| (1..=127).contains(&v)));
        }
        assert!(bytes64(&IQ1S_GRID)
            .iter()
            .all(|&v| matches!(v as i8, -1..=1)));
    }
}
