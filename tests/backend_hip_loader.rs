//! The HIP driver layer against Debian's libamdhip64.so.5 (ROCm 5.2) on a
//! machine without an AMD GPU: every entry point the layer uses resolves,
//! and the missing device surfaces as a clean "no HIP device" error.
//! scripts/ci-deps.sh installs the library in CI; locally the test skips
//! without it (and fails under CI=true).

mod common;

use rocmforge::backend::{probe_libraries, BackendError, Device, DeviceSpec, Gpu, RtcApi, Vendor};

/// The HIP library paths, or `None` (skip) when it is not installed.
fn hip_libraries_or_skip() -> Option<(String, String)> {
    match probe_libraries(Vendor::Hip) {
        Ok(paths) => Some(paths),
        Err(e @ BackendError::LibraryNotFound { .. }) => {
            common::require::<()>(&format!("libamdhip64 ({e})"), None);
            None
        }
        Err(e) => panic!("the HIP library loaded but the layer cannot use it: {e}"),
    }
}

#[test]
fn every_driver_and_compiler_symbol_resolves() {
    let Some((driver, compiler)) = hip_libraries_or_skip() else {
        return;
    };
    assert!(driver.contains("amdhip64"), "{driver}");
    // ROCm 5 ships hiprtc inside libamdhip64; ROCm 6 in libhiprtc.
    assert!(
        compiler.contains("amdhip64") || compiler.contains("hiprtc"),
        "{compiler}"
    );
    let rtc = RtcApi::load(Vendor::Hip).unwrap();
    assert!(rtc.version.0 >= 5, "hiprtc version {:?}", rtc.version);
}

#[test]
fn symbol_lists_cover_launch_graphs_and_hiprtc() {
    let driver = rocmforge::backend::driver_symbols(Vendor::Hip);
    for s in [
        "hipModuleLoadData",
        "hipModuleLaunchKernel",
        "hipStreamBeginCapture",
        "hipGraphLaunch",
        "hipMemGetInfo",
    ] {
        assert!(driver.contains(&s), "{s} missing from the layer's list");
    }
    let rtc = RtcApi::symbols(Vendor::Hip);
    for s in [
        "hiprtcCreateProgram",
        "hiprtcCompileProgram",
        "hiprtcGetCode",
    ] {
        assert!(rtc.contains(&s), "{s} missing from the layer's list");
    }
}

#[test]
fn missing_device_is_a_clean_no_hip_device_error() {
    let Some(_) = hip_libraries_or_skip() else {
        return;
    };
    let err = Gpu::open(Vendor::Hip, 0).unwrap_err();
    match &err {
        BackendError::NoDevice {
            vendor: Vendor::Hip,
            detail,
        } => {
            // hipInit answers hipErrorInvalidDevice (101) without a GPU;
            // hipGetDeviceCount would answer hipErrorNoDevice (100).
            assert!(detail.contains("101") || detail.contains("100"), "{detail}");
        }
        other => panic!("expected NoDevice, got {other:?}"),
    }
    assert!(err.to_string().starts_with("no hip device"), "{err}");
    // Asking again gives the same answer (the failed init is remembered).
    assert!(matches!(
        Gpu::open(Vendor::Hip, 0),
        Err(BackendError::NoDevice { .. })
    ));
}

#[test]
fn explicit_hip_device_spec_reports_no_device() {
    let Some(_) = hip_libraries_or_skip() else {
        return;
    };
    let spec = DeviceSpec::parse("hip:0").unwrap();
    assert!(matches!(
        Device::open(spec),
        Err(BackendError::NoDevice { .. })
    ));
}
