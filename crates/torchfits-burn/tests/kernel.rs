//! The pixel-to-world kernel on the wgpu runtime (lavapipe in CI) against the CPU path, which the
//! conformance check holds to astropy at 1e-9 degree.

use torchfits_burn::wcs::{DeviceWcs, GpuDevice};
use torchfits_core::{Header, Value, Wcs};

fn tan(extra: &[(&str, Value)], sip: bool) -> Header {
    let mut h = Header::new();
    let ctype = |axis: &str| if sip { format!("{axis}-SIP") } else { axis.to_string() };
    for (k, v) in [
        ("CTYPE1", Value::Str(ctype("RA---TAN"))),
        ("CTYPE2", Value::Str(ctype("DEC--TAN"))),
        ("CRPIX1", Value::Float(2048.5)),
        ("CRPIX2", Value::Float(2047.25)),
        ("CRVAL1", Value::Float(150.116)),
        ("CRVAL2", Value::Float(2.2)),
        ("CD1_1", Value::Float(-5.43e-5)),
        ("CD1_2", Value::Float(1.15e-5)),
        ("CD2_1", Value::Float(1.16e-5)),
        ("CD2_2", Value::Float(5.43e-5)),
    ] {
        h.set(k, v, None).expect("set");
    }
    for (k, v) in extra {
        h.set(k, v.clone(), None).expect("set");
    }
    h
}

/// Every 37th pixel of a 4096x4096 image, and a margin beyond it.
fn pixels() -> Vec<f64> {
    (-200..4300)
        .step_by(37)
        .flat_map(|y| (-200..4300).step_by(41).flat_map(move |x| [x as f64 + 0.25, y as f64 - 0.5]))
        .collect()
}

/// Largest angular difference, degrees (longitude scaled by cos(latitude)).
fn worst(a: &[f64], b: &[f64]) -> f64 {
    a.chunks(2)
        .zip(b.chunks(2))
        .map(|(p, q)| {
            let mut dl = (p[0] - q[0]).abs();
            dl = dl.min(360.0 - dl) * q[1].to_radians().cos();
            dl.max((p[1] - q[1]).abs())
        })
        .fold(0.0, f64::max)
}

#[test]
fn tan_and_tan_sip_on_the_device_agree_with_the_cpu() {
    let sip = [
        ("A_ORDER", Value::Int(3)),
        ("B_ORDER", Value::Int(3)),
        ("A_2_0", Value::Float(2.1e-6)),
        ("A_1_1", Value::Float(-1.3e-6)),
        ("A_0_2", Value::Float(4.0e-7)),
        ("A_3_0", Value::Float(-2.0e-10)),
        ("B_0_2", Value::Float(1.9e-6)),
        ("B_2_1", Value::Float(3.0e-11)),
        ("B_0_3", Value::Float(-1.5e-10)),
    ];
    let pix = pixels();
    for (name, header) in [
        ("TAN", tan(&[], false)),
        ("TAN-SIP", tan(&sip, true)),
        ("far north", tan(&[("CRVAL2", Value::Float(88.9))], false)),
    ] {
        let cpu = Wcs::from_header(&header).expect("wcs");
        let mut want = vec![0.0; pix.len()];
        cpu.pixel_to_world(&pix, &mut want).expect("cpu");
        let gpu = match DeviceWcs::new(Wcs::from_header(&header).expect("wcs"), GpuDevice::Wgpu) {
            Ok(g) => g,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("no wgpu device here ({e}): kernel not checked");
                return;
            }
            Err(e) => panic!("wgpu device: {e} (scripts/setup.sh --test installs Mesa's lavapipe)"),
        };
        assert!(gpu.on_device(), "{name}: the kernel computes TAN");
        let mut got = vec![0.0; pix.len()];
        let status = gpu.pixel_to_world(&pix, &mut got).expect("gpu");
        assert!(status.iter().all(|&s| s == 0));
        let w = worst(&got, &want);
        assert!(w < 1e-5, "{name}: worst {w:e} deg");
    }
    // a projection the kernel does not have: wcslib on the host, the same values exactly
    let car = tan(&[("CTYPE1", Value::Str("RA---CAR".into())), ("CTYPE2", Value::Str("DEC--CAR".into()))], false);
    let gpu = DeviceWcs::new(Wcs::from_header(&car).expect("wcs"), GpuDevice::Wgpu).expect("fallback");
    assert!(!gpu.on_device());
    let (mut a, mut b) = (vec![0.0; pix.len()], vec![0.0; pix.len()]);
    gpu.pixel_to_world(&pix, &mut a).expect("host");
    Wcs::from_header(&car).expect("wcs").pixel_to_world(&pix, &mut b).expect("cpu");
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

#[test]
fn the_zenithal_family_over_whole_hemispheres_agrees_with_the_cpu() {
    // wide fields (0.05 deg/pixel over 4096 pixels: beyond 90 degrees from the centre), so that
    // the points the kernel leaves to the host (beyond what the TAN plane reaches) come in
    for code in ["TAN", "SIN", "ARC", "STG", "ZEA"] {
        let header = tan(
            &[
                ("CTYPE1", Value::Str(format!("RA---{code}"))),
                ("CTYPE2", Value::Str(format!("DEC--{code}"))),
                ("CD1_1", Value::Float(-0.05)),
                ("CD1_2", Value::Float(0.004)),
                ("CD2_1", Value::Float(0.003)),
                ("CD2_2", Value::Float(0.05)),
                ("CRVAL2", Value::Float(-66.0)),
            ],
            false,
        );
        let pix = pixels();
        let cpu = Wcs::from_header(&header).expect("wcs");
        let mut want = vec![0.0; pix.len()];
        let want_status = cpu.pixel_to_world(&pix, &mut want).expect("cpu");
        let gpu = match DeviceWcs::new(Wcs::from_header(&header).expect("wcs"), GpuDevice::Wgpu) {
            Ok(g) => g,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("no wgpu device here ({e}): kernel not checked");
                return;
            }
            Err(e) => panic!("wgpu device: {e}"),
        };
        assert!(gpu.on_device(), "{code}");
        let mut got = vec![0.0; pix.len()];
        let status = gpu.pixel_to_world(&pix, &mut got).expect("gpu");
        assert_eq!(status, want_status, "{code}: validity");
        let valid: Vec<usize> = (0..status.len()).filter(|&i| status[i] == 0).collect();
        let pick = |v: &[f64]| valid.iter().flat_map(|&i| [v[2 * i], v[2 * i + 1]]).collect::<Vec<_>>();
        let w = worst(&pick(&got), &pick(&want));
        assert!(w < 1e-4, "{code}: worst {w:e} deg");
    }
}
