//! Token embedding: rows of the embedding table, dequantized.

use super::acts::check_len;
use super::blocks::dequantize_row;
use super::error::KernelError;
use super::weights::WeightMatrix;

/// `out[t, ..] = table row tokens[t]`, dequantized to f32 (`out` is
/// `[T, table.cols]`). A token id outside the table is an error.
pub fn embed_rows(
    table: &WeightMatrix,
    tokens: &[i32],
    out: &mut [f32],
) -> Result<(), KernelError> {
    table.validate("embedding table")?;
    check_len("embedding output", out.len(), tokens.len() * table.cols)?;
    for &tok in tokens {
        if tok < 0 || tok as usize >= table.rows {
            return Err(KernelError::OutOfRange {
                what: "token id",
                index: tok as i64,
                len: table.rows,
            });
        }
    }
    for (o, &tok) in out.chunks_exact_mut(table.cols).zip(tokens) {
        dequantize_row(table.ty, table.row(tok as usize), o);
    }
    Ok(())
}
