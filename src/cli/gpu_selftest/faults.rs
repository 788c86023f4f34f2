//! Injected and real failures: each must surface as a typed error and
//! leave no device memory behind (free memory before = after).

use super::cases::{D, EPS};
use super::{Check, Res, Suite};
use rocmforge::backend::fault::{self, FaultPoint, Trigger};
use rocmforge::backend::{BackendError, DeviceBuffer, KernelArgs, LaunchDims};
use rocmforge::codegen::RowOp;

pub fn all(s: &mut Suite) {
    s.case("fault: 3rd allocation fails (injected)", alloc_injected);
    s.case("fault: allocation larger than the device", alloc_too_large);
    s.case("fault: kernel with a compile error", compile_error);
    s.case("fault: compilation fails (injected)", compile_injected);
    s.case("fault: 2nd launch fails (injected)", launch_injected);
    s.case("fault: launch refused by the driver", launch_refused);
    s.case("after faults: device still computes", still_works);
}

/// Runs `f` (which allocates and fails), then checks the error with
/// `expect` and that free device memory is back where it was.
fn leak_checked(
    s: &mut Suite,
    f: impl FnOnce(&mut Suite) -> Result<(), BackendError>,
    expect: impl FnOnce(&BackendError) -> bool,
) -> Res<Check> {
    s.gpu.synchronize()?;
    let (before, _) = s.gpu.memory_info()?;
    let r = f(s);
    fault::disarm_all();
    s.gpu.synchronize()?;
    let (after, _) = s.gpu.memory_info()?;
    let e = match r {
        Ok(()) => return Err("the failure did not happen".into()),
        Err(e) => e,
    };
    if !expect(&e) {
        return Err(format!("unexpected error: {e}").into());
    }
    let leaked = before as i64 - after as i64;
    let mut msg = e.to_string();
    msg.truncate(90);
    Ok(Check::new(leaked.max(0) as f64, 0.0)
        .note(format!("leaked {leaked} B; {}", msg.replace('\n', " "))))
}

fn alloc_injected(s: &mut Suite) -> Res<Check> {
    leak_checked(
        s,
        |s| {
            fault::arm(FaultPoint::Alloc, Trigger::Nth(3));
            let bufs: Result<Vec<DeviceBuffer>, _> = (0..5)
                .map(|_| DeviceBuffer::new(&s.gpu, 64 << 20))
                .collect();
            bufs.map(|_| ())
        },
        |e| matches!(e, BackendError::OutOfMemory { detail, .. } if detail.contains("injected")),
    )
}

fn alloc_too_large(s: &mut Suite) -> Res<Check> {
    let total = s.gpu.info().total_memory;
    leak_checked(
        s,
        |s| {
            let _small = DeviceBuffer::new(&s.gpu, 1 << 20)?;
            DeviceBuffer::new(&s.gpu, total * 2).map(|_| ())
        },
        |e| matches!(e, BackendError::OutOfMemory { detail, .. } if !detail.contains("injected")),
    )
}

fn compile_error(s: &mut Suite) -> Res<Check> {
    // A define that breaks the template's syntax.
    let src = RowOp::RmsNorm { dim: 640, eps: EPS }
        .source()?
        .define("NORM_D", "(640");
    leak_checked(
        s,
        |s| s.cache.kernel(&s.gpu, &src, "rms_norm").map(|_| ()),
        |e| matches!(e, BackendError::Compile { kernel, log, .. } if kernel.contains("rms_norm") && log.contains("error")),
    )
}

fn compile_injected(s: &mut Suite) -> Res<Check> {
    let src = RowOp::GatherRows { dim: 123 * 8 }.source()?;
    let label = src.label.clone();
    leak_checked(
        s,
        move |s| {
            fault::arm(FaultPoint::Compile, Trigger::Named(label));
            s.cache.kernel(&s.gpu, &src, "gather_rows").map(|_| ())
        },
        |e| matches!(e, BackendError::Compile { log, .. } if log.contains("injected")),
    )
}

/// A sequence of launches with buffers allocated on the way; the second
/// launch fails.
fn launch_injected(s: &mut Suite) -> Res<Check> {
    let op = RowOp::RmsNorm {
        dim: D as u32,
        eps: EPS,
    };
    let k = s.kernel(&op.source()?, op.entry())?;
    leak_checked(
        s,
        |s| {
            fault::arm(FaultPoint::Launch, Trigger::Nth(2));
            let x = DeviceBuffer::new(&s.gpu, 4 * D * 4)?;
            let g = DeviceBuffer::new(&s.gpu, D * 4)?;
            let (h1, h2) = (
                DeviceBuffer::new(&s.gpu, 4 * D * 4)?,
                DeviceBuffer::new(&s.gpu, 4 * D * 4)?,
            );
            // SAFETY: all buffers hold 4 rows of D floats (g one row).
            unsafe {
                op.launch(
                    &k,
                    &s.stream,
                    x.ptr(),
                    D as u32,
                    g.ptr(),
                    h1.ptr(),
                    D as u32,
                    4,
                )?;
                op.launch(
                    &k,
                    &s.stream,
                    h1.ptr(),
                    D as u32,
                    g.ptr(),
                    h2.ptr(),
                    D as u32,
                    4,
                )?;
            }
            s.stream.synchronize()
        },
        |e| matches!(e, BackendError::Call { name, .. } if name.contains("injected")),
    )
}

/// More dynamic shared memory than any GPU has: the driver refuses the
/// launch, and the layer names the call and the code.
fn launch_refused(s: &mut Suite) -> Res<Check> {
    let op = RowOp::GatherRows { dim: D as u32 };
    let k = s.kernel(&op.source()?, op.entry())?;
    leak_checked(
        s,
        |s| {
            let x = DeviceBuffer::new(&s.gpu, D * 4)?;
            let rows = DeviceBuffer::from_slice(&s.gpu, &[0i32])?;
            let out = DeviceBuffer::new(&s.gpu, D * 4)?;
            let args = KernelArgs::new()
                .ptr(x.ptr())
                .u32(D as u32)
                .ptr(rows.ptr())
                .ptr(out.ptr())
                .u32(D as u32)
                .u32(1);
            let dims = LaunchDims {
                grid: [1, 1, 1],
                block: [256, 1, 1],
                shared_bytes: 16 << 20,
            };
            // SAFETY: valid buffers; the launch itself is refused.
            unsafe { k.launch(&s.stream, dims, &args)? };
            s.stream.synchronize()
        },
        |e| matches!(e, BackendError::Call { .. }),
    )
}

fn still_works(s: &mut Suite) -> Res<Check> {
    super::cases::rms_norm_rows(s, 3)
}
