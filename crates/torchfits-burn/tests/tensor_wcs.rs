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
        assert_eq!(device_wcs.precision(&device), "f32", "lavapipe's f64 sine is wrong");
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
