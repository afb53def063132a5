//! World coordinates on Burn tensors (the backend extension): on the CPU backend exactly the CPU
//! `Wcs`, through autodiff as without it, and (feature `wgpu`) the kernel on the tensor's own
//! device within 1e-4 degree of wcslib, only the points near a projection's limits crossing.

use burn::tensor::{DType, Device, Tensor, TensorData};
use torchfits_burn::wcs::DeviceWcs;
use torchfits_core::{Header, Value, Wcs};

fn header(code: &str, crpix: f64, cdelt: f64) -> Header {
    let mut h = Header::new();
    for (k, v) in [
        ("CTYPE1", Value::Str(format!("RA---{code}"))),
        ("CTYPE2", Value::Str(format!("DEC--{code}"))),
        ("CRPIX1", Value::Float(crpix)),
        ("CRPIX2", Value::Float(crpix / 2.0)),
        ("CRVAL1", Value::Float(266.4)),
        ("CRVAL2", Value::Float(-28.9)),
        ("CDELT1", Value::Float(-cdelt)),
        ("CDELT2", Value::Float(cdelt)),
    ] {
        h.set(k, v, None).expect("set");
    }
    h
}

/// A TAN survey image and a whole-sky AIT map (points beyond its edge: invalid).
fn cases() -> Vec<(&'static str, Header, Vec<f32>)> {
    let grid = |n: usize, step: f32, from: f32| -> Vec<f32> {
        (0..n * n).flat_map(|k| [from + (k % n) as f32 * step, from + (k / n) as f32 * step * 0.5]).collect()
    };
    vec![
        ("TAN", header("TAN", 2048.5, 5e-5), grid(64, 64.3, -10.25)),
        ("AIT", header("AIT", 180.5, 1.0), grid(64, 6.1, -10.0)),
    ]
}

fn on_cpu(wcs: &Wcs, pix: &[f64]) -> (Vec<f64>, Vec<i32>) {
    let mut world = vec![0.0; pix.len()];
    let status = wcs.pixel_to_world(pix, &mut world).expect("cpu");
    (world, status)
}

#[test]
fn on_the_cpu_backend_the_tensor_call_is_the_cpu_wcs_bit_for_bit() {
    for (name, h, pix32) in cases() {
        let wcs = Wcs::from_header(&h).expect("wcs");
        let pix: Vec<f64> = pix32.iter().map(|&p| f64::from(p)).collect();
        let n = pix.len() / 2;
        let (want, status) = on_cpu(&wcs, &pix);
        let device_wcs = DeviceWcs::new(Wcs::from_header(&h).expect("wcs"));
        for device in [Device::flex(), Device::flex().autodiff()] {
            // f32 pixels give f32 world coordinates: the CPU values rounded
            let t = Tensor::<2>::from_data(TensorData::new(pix32.clone(), [n, 2]), &device);
            let out = device_wcs.pixel_to_world(t).expect("f32");
            assert_eq!(out.world.device(), device);
            assert_eq!(out.host_points, n);
            let got: Vec<f32> = out.world.into_data().iter::<f32>().collect();
            let valid: Vec<bool> = out.valid.into_data().iter::<bool>().collect();
            for i in 0..n {
                assert_eq!(valid[i], status[i] == 0, "{name}: point {i}");
                for a in 0..2 {
                    let w = want[2 * i + a] as f32;
                    assert_eq!(
                        got[2 * i + a].to_bits(),
                        w.to_bits(),
                        "{name}: point {i} axis {a}: {} vs {w}",
                        got[2 * i + a]
                    );
                }
            }
            // f64 pixels give the CPU's f64 values themselves
            let t = Tensor::<2>::from_data(TensorData::new(pix.clone(), [n, 2]), (&device, DType::F64));
            let got: Vec<f64> = device_wcs.pixel_to_world(t).expect("f64").world.into_data().iter::<f64>().collect();
            assert!(got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits()), "{name}: f64 bit for bit");
        }
        if name == "AIT" {
            assert!(status.iter().any(|&s| s != 0), "the AIT points cross the map's edge");
        }
    }
}

#[test]
fn a_tensor_that_is_not_n_by_2_is_an_error() {
    let wcs = DeviceWcs::new(Wcs::from_header(&header("TAN", 10.0, 1e-3)).expect("wcs"));
    let t = Tensor::<2>::zeros([4, 3], &Device::flex());
    let e = wcs.pixel_to_world(t).expect_err("[4, 3]");
    assert!(e.to_string().contains("[4, 3]"), "{e}");
}

#[cfg(feature = "wgpu")]
#[test]
fn on_wgpu_the_kernel_runs_on_the_tensors_device_and_only_points_near_the_limits_cross() {
    let found = std::panic::catch_unwind(|| {
        let d = Device::wgpu(Default::default());
        let _ = Tensor::<1>::from_floats([1.0], &d).into_data();
        d
    });
    let device = match found {
        Ok(d) => d,
        Err(_) if std::env::var_os("CI").is_none() => return,
        Err(_) => panic!("no wgpu adapter (scripts/setup.sh --test installs Mesa's lavapipe)"),
    };
    for (name, h, pix32) in cases() {
        let wcs = Wcs::from_header(&h).expect("wcs");
        // wcslib at the very f32 pixels the tensor holds
        let pix: Vec<f64> = pix32.iter().map(|&p| f64::from(p)).collect();
        let n = pix.len() / 2;
        let (want, status) = on_cpu(&wcs, &pix);
        let device_wcs = DeviceWcs::new(Wcs::from_header(&h).expect("wcs"));
        // the first call on a device finds out its f64 (the probe moves points of its own)
        assert_eq!(device_wcs.precision(&device), torchfits_burn::wcs::Precision::F32, "lavapipe's f64 sine is wrong");
        let before = torchfits_burn::Transfers::now();
        let out = device_wcs
            .pixel_to_world(Tensor::<2>::from_data(TensorData::new(pix32.clone(), [n, 2]), &device))
            .expect("wgpu");
        let moved = torchfits_burn::Transfers::now().since(before);
        assert_eq!(out.world.device(), device);
        if name == "TAN" {
            assert_eq!(out.host_points, 0, "a survey image lies away from TAN's limits");
        } else {
            assert!(out.host_points > 0 && out.host_points < n / 4, "AIT near its edge: {}", out.host_points);
        }
        // what crossed: the counter, and per host point its index and pixels down, its world
        // coordinates and state up (and the kernel's parameters up)
        assert!(moved.bytes_down <= 4 + 12 * out.host_points as u64, "{name}: {moved:?}");
        assert!(moved.bytes_up <= 1024 + 12 * out.host_points as u64, "{name}: {moved:?}");
        let got: Vec<f32> = out.world.into_data().iter::<f32>().collect();
        let valid: Vec<bool> = out.valid.into_data().iter::<bool>().collect();
        let mut worst = 0f64;
        for i in 0..n {
            assert_eq!(valid[i], status[i] == 0, "{name}: validity of point {i}");
            if !valid[i] {
                assert!(got[2 * i].is_nan() && got[2 * i + 1].is_nan());
                continue;
            }
            let (lng, lat) = (f64::from(got[2 * i]), f64::from(got[2 * i + 1]));
            let dl = (lng - want[2 * i]).abs();
            worst =
                worst.max(dl.min(360.0 - dl) * want[2 * i + 1].to_radians().cos()).max((lat - want[2 * i + 1]).abs());
        }
        assert!(worst < 1e-4, "{name}: worst {worst:e} deg");
    }
}

/// A survey TAN-SIP WCS (third order), 0.2 arcsec pixels.
fn tan_sip() -> Header {
    let mut h = header("TAN", 2048.5, 5.43e-5);
    for (k, v) in [
        ("CTYPE1", Value::Str("RA---TAN-SIP".into())),
        ("CTYPE2", Value::Str("DEC--TAN-SIP".into())),
        ("A_ORDER", Value::Int(3)),
        ("B_ORDER", Value::Int(3)),
        ("A_2_0", Value::Float(2.1e-6)),
        ("A_1_1", Value::Float(-1.3e-6)),
        ("B_0_2", Value::Float(1.9e-6)),
        ("A_3_0", Value::Float(-2.0e-10)),
        ("B_0_3", Value::Float(-1.5e-10)),
    ] {
        h.set(k, v, None).expect("set");
    }
    h
}

/// A WCS's name and header, world coordinates (f32, as a tensor holds them) of a grid of pixels,
/// wcslib's pixels for those very f32 values, and its statuses.
type WorldCase = (&'static str, Header, Vec<f32>, Vec<f64>, Vec<i32>);

fn world_cases() -> Vec<WorldCase> {
    let mut out = Vec::new();
    for (name, h, step, from) in [
        ("TAN", header("TAN", 2048.5, 5e-5), 64.3f64, -10.25f64),
        ("TAN-SIP", tan_sip(), 64.3, -10.25),
        ("AIT", header("AIT", 180.5, 1.0), 6.1, -10.0),
    ] {
        let wcs = Wcs::from_header(&h).expect("wcs");
        let pix: Vec<f64> =
            (0..64 * 64).flat_map(|k| [from + (k % 64) as f64 * step, from + (k / 64) as f64 * step * 0.5]).collect();
        let (world, _) = on_cpu(&wcs, &pix);
        let world32: Vec<f32> = world.iter().map(|&w| if w.is_nan() { 0.0 } else { w as f32 }).collect();
        let exact: Vec<f64> = world32.iter().map(|&w| f64::from(w)).collect();
        let mut want = vec![0.0; exact.len()];
        let status = wcs.world_to_pixel(&exact, &mut want).expect("w2p");
        out.push((name, h, world32, want, status));
    }
    out
}

#[test]
fn world_to_pixel_on_the_cpu_backend_is_the_cpu_wcs_bit_for_bit() {
    for (name, h, world32, want, status) in world_cases() {
        let n = world32.len() / 2;
        let device_wcs = DeviceWcs::new(Wcs::from_header(&h).expect("wcs"));
        let out = device_wcs
            .world_to_pixel(Tensor::<2>::from_data(TensorData::new(world32, [n, 2]), &Device::flex()))
            .expect("w2p");
        let got: Vec<f32> = out.pixels.into_data().iter::<f32>().collect();
        let valid: Vec<bool> = out.valid.into_data().iter::<bool>().collect();
        for i in 0..n {
            assert_eq!(valid[i], status[i] == 0, "{name}: point {i}");
            for a in 0..2 {
                assert_eq!(got[2 * i + a].to_bits(), (want[2 * i + a] as f32).to_bits(), "{name}: point {i}");
            }
        }
    }
}

#[cfg(feature = "wgpu")]
#[test]
fn world_to_pixel_on_wgpu_matches_wcslib() {
    let Ok(device) = std::panic::catch_unwind(|| {
        let d = Device::wgpu(Default::default());
        let _ = Tensor::<1>::from_floats([1.0], &d).into_data();
        d
    }) else {
        assert!(std::env::var_os("CI").is_none(), "no wgpu adapter");
        return;
    };
    for (name, h, world32, want, status) in world_cases() {
        let n = world32.len() / 2;
        let device_wcs = DeviceWcs::new(Wcs::from_header(&h).expect("wcs"));
        let out =
            device_wcs.world_to_pixel(Tensor::<2>::from_data(TensorData::new(world32, [n, 2]), &device)).expect("w2p");
        let got: Vec<f32> = out.pixels.into_data().iter::<f32>().collect();
        let valid: Vec<bool> = out.valid.into_data().iter::<bool>().collect();
        let mut worst = 0f64;
        let mut worst_beyond_rounding = 0f64;
        for i in 0..n {
            assert_eq!(valid[i], status[i] == 0, "{name}: validity of point {i}");
            if !valid[i] {
                continue;
            }
            for a in 0..2 {
                let (g, w) = (f64::from(got[2 * i + a]), want[2 * i + a]);
                let e = (g - w).abs();
                worst = worst.max(e);
                // the f32 output's own rounding of wcslib's value
                let ulp = f64::from((w as f32).abs().max(1.0)) * f64::from(f32::EPSILON);
                worst_beyond_rounding = worst_beyond_rounding.max(e - ulp / 2.0);
            }
        }
        eprintln!(
            "{name}: {} host points, worst {worst:.2e} px, beyond the output's rounding {worst_beyond_rounding:.2e} px",
            out.host_points
        );
        // f32 holds wcslib's pixels to a few 1e-4 px (measured on lavapipe: 4e-4 at most)
        assert!(worst_beyond_rounding < 5e-4, "{name}: {worst_beyond_rounding:e} px");
    }
}
