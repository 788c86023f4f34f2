//! Numbers a spec derives from the hparams: `[constants]` the wiring uses
//! (Gemma's `embed_scale = "sqrt(d_model)"`) and `[defaults]
//! attention_scale`. An expression is `E`, `sqrt(E)`, `1/E` or
//! `1/sqrt(E)`, where `E` is a shape expression over the hparams
//! (`head_dim`, `d_model/n_heads`; [`super::builder::eval_dim`]) or a
//! decimal number.

use super::builder::eval_dim;
use super::config::ModelConfig;

/// The value of `expr` for `cfg`, or a message saying why there is none.
pub fn eval(expr: &str, cfg: &ModelConfig) -> Result<f32, String> {
    let e = expr.trim();
    let (reciprocal, e) = match e.strip_prefix("1/") {
        Some(rest) => (true, rest.trim()),
        None => (false, e),
    };
    let (root, e) = match e.strip_prefix("sqrt(").and_then(|r| r.strip_suffix(')')) {
        Some(inner) => (true, inner.trim()),
        None => (false, e),
    };
    let base = match eval_dim(e, cfg) {
        Some(v) => v as f64,
        None => e
            .parse::<f64>()
            .map_err(|_| format!("{expr:?}: {e:?} is neither a number nor an hparam expression"))?,
    };
    let mut v = if root { base.sqrt() } else { base };
    if reciprocal {
        v = 1.0 / v;
    }
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("{expr:?} is {v}, not a positive number"));
    }
    Ok(v as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::synthetic::{SyntheticArch, SyntheticModel};
    use crate::frontend::ArchSpec;

    fn tiny_config() -> ModelConfig {
        let file = SyntheticModel::tiny(SyntheticArch::Llama)
            .to_gguf()
            .unwrap();
        ModelConfig::from_gguf(&file, &ArchSpec::builtin_named("llama").unwrap()).unwrap()
    }

    #[test]
    fn square_roots_reciprocals_and_hparams_evaluate() {
        let cfg = tiny_config();
        let d = cfg.d_model as f32;
        assert_eq!(eval("sqrt(d_model)", &cfg).unwrap(), d.sqrt());
        let hd = cfg.head_dim as f64;
        assert_eq!(
            eval("1/sqrt(head_dim)", &cfg).unwrap(),
            (1.0 / hd.sqrt()) as f32
        );
        assert_eq!(eval("1/d_model", &cfg).unwrap(), 1.0 / d);
        assert_eq!(eval("2.5", &cfg).unwrap(), 2.5);
    }

    #[test]
    fn unknown_names_and_non_positive_values_are_errors() {
        let cfg = tiny_config();
        assert!(eval("sqrt(no_such_hparam)", &cfg)
            .unwrap_err()
            .contains("no_such_hparam"));
        assert!(eval("0", &cfg).is_err());
        assert!(eval("sqrt(-4)", &cfg).is_err());
    }
}
