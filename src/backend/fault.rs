//! Injected faults, to prove that failures deep inside a sequence of driver
//! calls surface as typed errors and release everything taken so far.
//!
//! `RFC_FAULT=alloc:N` makes the N-th device allocation (counted from 1
//! after arming) fail as out-of-memory; `launch:N` the N-th kernel launch;
//! `compile:N` the N-th kernel compilation, or `compile:NAME` every
//! compilation of the kernel named NAME. Several are separated by commas.
//! Tests arm faults in-process with [`arm`].

use std::sync::Mutex;

/// Where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    Alloc,
    Launch,
    Compile,
}

/// When the fault fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The n-th call from now (1 = the next one); fires once.
    Nth(u64),
    /// Every compilation of this kernel name.
    Named(String),
}

#[derive(Debug)]
struct Armed {
    point: FaultPoint,
    trigger: Trigger,
    seen: u64,
}

static FAULTS: Mutex<Option<Vec<Armed>>> = Mutex::new(None);

/// Arms a fault (in addition to those already armed).
pub fn arm(point: FaultPoint, trigger: Trigger) {
    with_faults(|f| {
        f.push(Armed {
            point,
            trigger,
            seen: 0,
        })
    });
}

/// Removes every armed fault, including those from `RFC_FAULT`.
pub fn disarm_all() {
    with_faults(|f| f.clear());
}

/// Whether the call about to happen at `point` (for kernel `name`, if a
/// compilation) must fail. Counts the call.
pub(crate) fn fires(point: FaultPoint, name: &str) -> bool {
    with_faults(|faults| {
        let mut fire = false;
        faults.retain_mut(|a| {
            if a.point != point {
                return true;
            }
            match &a.trigger {
                Trigger::Named(n) => {
                    fire |= n == name;
                    true
                }
                Trigger::Nth(n) => {
                    a.seen += 1;
                    if a.seen == *n {
                        fire = true;
                        return false;
                    }
                    true
                }
            }
        });
        if fire {
            tracing::warn!(?point, name, "injected fault fires");
        }
        fire
    })
}

fn with_faults<R>(f: impl FnOnce(&mut Vec<Armed>) -> R) -> R {
    let mut guard = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
    let faults = guard.get_or_insert_with(from_env);
    f(faults)
}

fn from_env() -> Vec<Armed> {
    let Ok(spec) = std::env::var("RFC_FAULT") else {
        return Vec::new();
    };
    match parse(&spec) {
        Ok(v) => v
            .into_iter()
            .map(|(point, trigger)| Armed {
                point,
                trigger,
                seen: 0,
            })
            .collect(),
        Err(e) => {
            tracing::warn!("ignoring RFC_FAULT={spec:?}: {e}");
            Vec::new()
        }
    }
}

/// Parses `RFC_FAULT`'s syntax: `point:N` or `compile:NAME`, comma-separated.
pub fn parse(spec: &str) -> Result<Vec<(FaultPoint, Trigger)>, String> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|item| {
            let (p, n) = item
                .trim()
                .split_once(':')
                .ok_or_else(|| format!("{item:?} is not POINT:N"))?;
            let point = match p {
                "alloc" => FaultPoint::Alloc,
                "launch" => FaultPoint::Launch,
                "compile" => FaultPoint::Compile,
                _ => {
                    return Err(format!(
                        "unknown fault point {p:?} (alloc, launch, compile)"
                    ))
                }
            };
            let trigger = match n.parse::<u64>() {
                Ok(0) => return Err("counts start at 1".into()),
                Ok(k) => Trigger::Nth(k),
                Err(_) if point == FaultPoint::Compile => Trigger::Named(n.to_string()),
                Err(_) => return Err(format!("{n:?} is not a count")),
            };
            Ok((point, trigger))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_counts_and_kernel_names() {
        let v = parse("alloc:3, compile:rms_norm,launch:1").unwrap();
        assert_eq!(v[0], (FaultPoint::Alloc, Trigger::Nth(3)));
        assert_eq!(
            v[1],
            (FaultPoint::Compile, Trigger::Named("rms_norm".into()))
        );
        assert_eq!(v[2], (FaultPoint::Launch, Trigger::Nth(1)));
    }

    #[test]
    fn parse_refuses_unknown_points_and_zero_counts() {
        assert!(parse("free:1").is_err());
        assert!(parse("alloc:0").is_err());
        assert!(parse("alloc:x").is_err());
    }
}
