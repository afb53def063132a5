//! The pixel-to-world kernel on the wgpu runtime (lavapipe in CI) against the CPU path, which the
//! conformance check holds to astropy at 1e-9 degree.

use burn::tensor::Device;
use torchfits_burn::wcs::DeviceWcs;
use torchfits_core::{Header, Value, Wcs};

/// A WCS and the wgpu device, with the host-slice calls these tests compare with wcslib.
struct Gpu {
    wcs: DeviceWcs,
    device: Device,
}

impl Gpu {
    fn new(wcs: Wcs) -> Gpu {
        Gpu { wcs: DeviceWcs::new(wcs), device: Device::wgpu(Default::default()) }
    }

    fn on_device(&self) -> bool {
        self.wcs.on_device()
    }

    fn pixel_to_world(&self, pix: &[f64], world: &mut [f64]) -> torchfits_core::Result<Vec<i32>> {
        self.wcs.pixel_to_world_on(&self.device, pix, world)
    }

    fn coordinate_grid(&self, origins: &[(f64, f64)], w: usize, h: usize) -> torchfits_core::Result<Vec<f32>> {
        let planes = self.wcs.coordinate_planes(origins, w, h, &self.device)?;
        Ok(planes.into_data().try_to_vec::<f32>().expect("f32 planes"))
    }
}

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

/// `header`'s WCS on the wgpu device; None (the test then checks nothing) only off CI, where a
/// machine may lack Vulkan: on CI a missing device fails the test.
fn on_wgpu(header: &Header) -> Option<Gpu> {
    // the adapter is found when first used; a machine without Vulkan has none
    let found = std::panic::catch_unwind(|| {
        let d = Device::wgpu(Default::default());
        let _ = burn::tensor::Tensor::<1>::from_floats([1.0], &d).into_data();
    });
    match found {
        Ok(()) => Some(Gpu::new(Wcs::from_header(header).expect("wcs"))),
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("no wgpu device here: kernel not checked");
            None
        }
        Err(_) => panic!("no wgpu adapter (scripts/setup.sh --test installs Mesa's lavapipe)"),
    }
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
        let Some(gpu) = on_wgpu(&header) else { return };
        assert!(gpu.on_device(), "{name}: the kernel computes TAN");
        let mut got = vec![0.0; pix.len()];
        let status = gpu.pixel_to_world(&pix, &mut got).expect("gpu");
        assert!(status.iter().all(|&s| s == 0));
        let w = worst(&got, &want);
        assert!(w < 1e-5, "{name}: worst {w:e} deg");
    }
    // a projection the kernel does not have (the quad cubes): wcslib on the host, the same
    // values exactly
    let car = tan(&[("CTYPE1", Value::Str("RA---TSC".into())), ("CTYPE2", Value::Str("DEC--TSC".into()))], false);
    let gpu = Gpu::new(Wcs::from_header(&car).expect("wcs"));
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
        let Some(gpu) = on_wgpu(&header) else { return };
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

/// The map headers of the corpus (every projection of wcslib's test set, on one all-sky map),
/// plus the projections the set lacks, made from its AIT header: name and header.
fn maps() -> Vec<(String, Header)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/wcs/maps");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        assert!(std::env::var_os("CI").is_none(), "{} is missing", dir.display());
        return Vec::new();
    };
    let mut out: Vec<(String, Header)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "hdr"))
        .map(|p| {
            let raw = std::fs::read(&p).expect("read");
            (
                p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                Header::parse(&raw).expect("parse"),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    let Some(ait) = out.iter().find(|(n, _)| n.ends_with("_AIT.hdr")).map(|(_, h)| h.clone()) else {
        return out;
    };
    let variants: [(&str, &[(&str, Value)]); 7] = [
        ("AZP", &[("PV2_1", Value::Float(2.0)), ("PV2_2", Value::Float(30.0)), ("CRVAL2", Value::Float(-60.0))]),
        (
            "ZPN",
            &[
                ("PV2_0", Value::Float(0.05)),
                ("PV2_1", Value::Float(0.975)),
                ("PV2_2", Value::Float(-0.807)),
                ("PV2_3", Value::Float(0.337)),
                ("PV2_4", Value::Float(-0.065)),
                ("PV2_5", Value::Float(0.01)),
                ("PV2_6", Value::Float(0.003)),
                ("PV2_7", Value::Float(-0.001)),
                ("CRVAL2", Value::Float(-60.0)),
            ],
        ),
        ("MOL", &[]),
        ("COD", &[("PV2_1", Value::Float(-45.0)), ("PV2_2", Value::Float(25.0))]),
        ("BON", &[("PV2_1", Value::Float(45.0))]),
        ("SIN", &[("PV2_1", Value::Float(0.2)), ("PV2_2", Value::Float(-0.3)), ("CRVAL2", Value::Float(-60.0))]),
        ("AIR", &[("PV2_1", Value::Float(45.0)), ("CRVAL2", Value::Float(-60.0))]),
    ];
    for (code, cards) in variants {
        let mut h = ait.clone();
        h.set("CTYPE1", Value::Str(format!("RA---{code}")), None).expect("set");
        h.set("CTYPE2", Value::Str(format!("DEC--{code}")), None).expect("set");
        for (k, v) in cards {
            h.set(k, v.clone(), None).expect("set");
        }
        out.push((format!("{code} (made)"), h));
    }
    // and each over the whole sphere and beyond (1.5 degree per pixel, centred on the
    // reference point): the projections' limits
    let wide: Vec<(String, Header)> = out
        .iter()
        .map(|(n, h)| {
            let mut h = h.clone();
            for (k, v) in [
                ("CRPIX1", 96.5),
                ("CRPIX2", 96.5),
                ("CDELT1", -1.5),
                ("CDELT2", 1.5),
                ("CRVAL1", 120.0),
                ("CRVAL2", 30.0),
            ] {
                h.set(k, Value::Float(v), None).expect("set");
            }
            h.remove("LATPOLE");
            h.remove("LONPOLE");
            (format!("{n}, whole sky"), h)
        })
        .collect();
    out.extend(wide);
    out
}

#[test]
fn every_projection_of_the_corpus_maps_agrees_with_wcslib() {
    // the 192x192 maps and a margin of 64 pixels around them, every 1.37 pixels
    let pix: Vec<f64> =
        (0..235).flat_map(|j| (0..235).flat_map(move |i| [-64.0 + 1.37 * i as f64, -64.3 + 1.37 * j as f64])).collect();
    let mut on_device = 0;
    let mut failed = Vec::new();
    for (name, header) in maps() {
        let cpu = Wcs::from_header(&header).expect("wcs");
        let mut want = vec![0.0; pix.len()];
        let want_status = cpu.pixel_to_world(&pix, &mut want).expect("cpu");
        let Some(gpu) = on_wgpu(&header) else { return };
        let mut got = vec![0.0; pix.len()];
        let status = gpu.pixel_to_world(&pix, &mut got).expect("gpu");
        let differ = (0..status.len()).filter(|&i| (status[i] == 0) != (want_status[i] == 0)).count();
        let valid: Vec<usize> = (0..status.len()).filter(|&i| status[i] == 0).collect();
        let pick = |v: &[f64]| valid.iter().flat_map(|&i| [v[2 * i], v[2 * i + 1]]).collect::<Vec<_>>();
        let w = worst(&pick(&got), &pick(&want));
        eprintln!(
            "{name}: {} ({}), {} valid, validity differs at {differ}, worst {w:.2e} deg",
            if gpu.on_device() { "kernel" } else { "host" },
            gpu.wcs.precision(&gpu.device),
            valid.len()
        );
        if std::env::var_os("TORCHFITS_KERNEL_DEBUG").is_some() && w > 5e-5 {
            let (g, t) = (pick(&got), pick(&want));
            let k = (0..valid.len())
                .max_by(|&a, &b| {
                    let e = |i: usize| worst(&g[2 * i..2 * i + 2], &t[2 * i..2 * i + 2]);
                    e(a).total_cmp(&e(b))
                })
                .unwrap_or(0);
            let i = valid[k];
            eprintln!(
                "  worst at pixel {:?}: got {:?}, wcslib {:?}",
                &pix[2 * i..2 * i + 2],
                &got[2 * i..2 * i + 2],
                &want[2 * i..2 * i + 2]
            );
        }
        on_device += usize::from(gpu.on_device());
        if differ > 0 || status != want_status || w >= 1e-4 || (!gpu.on_device() && !name.contains("_CSC")) {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "not on the device, or not as wcslib: {failed:?}");
    eprintln!("{on_device} on the device");
}

#[test]
fn a_grid_of_cutouts_is_one_call_and_matches_wcslib() {
    // a survey TAN-SIP image, and a whole-sky AIT map whose cutouts cross its edge
    let sip = [
        ("A_ORDER", Value::Int(2)),
        ("B_ORDER", Value::Int(2)),
        ("A_2_0", Value::Float(2.1e-6)),
        ("B_0_2", Value::Float(1.9e-6)),
    ];
    let ait = tan(
        &[
            ("CTYPE1", Value::Str("RA---AIT".into())),
            ("CTYPE2", Value::Str("DEC--AIT".into())),
            ("CRPIX1", Value::Float(180.5)),
            ("CRPIX2", Value::Float(90.5)),
            ("CD1_1", Value::Float(-1.0)),
            ("CD1_2", Value::Float(0.0)),
            ("CD2_1", Value::Float(0.0)),
            ("CD2_2", Value::Float(1.0)),
        ],
        false,
    );
    for (name, header, origins) in [
        ("TAN-SIP", tan(&sip, true), vec![(0.0, 0.0), (2000.25, 1500.0), (4000.0, 4070.5)]),
        ("AIT", ait, vec![(-20.0, -20.0), (170.0, 80.0), (340.0, 160.0)]),
    ] {
        let (w, h) = (48usize, 32usize);
        let Some(gpu) = on_wgpu(&header) else { return };
        let planes = gpu.coordinate_grid(&origins, w, h).expect("grid");
        assert_eq!(planes.len(), origins.len() * 2 * h * w);
        let cpu = Wcs::from_header(&header).expect("wcs");
        let mut invalid = 0;
        for (c, &(x0, y0)) in origins.iter().enumerate() {
            let pix: Vec<f64> = (0..h).flat_map(|r| (0..w).flat_map(move |q| [x0 + q as f64, y0 + r as f64])).collect();
            let mut want = vec![0.0; pix.len()];
            cpu.pixel_to_world(&pix, &mut want).expect("cpu");
            let base = c * 2 * h * w;
            for i in 0..h * w {
                let got = [f64::from(planes[base + i]), f64::from(planes[base + h * w + i])];
                let exp = [want[2 * i], want[2 * i + 1]];
                if exp[0].is_nan() {
                    assert!(got[0].is_nan() && got[1].is_nan(), "{name}: cutout {c} pixel {i} should be invalid");
                    invalid += 1;
                    continue;
                }
                let e = worst(&got, &exp);
                assert!(e < 1e-4, "{name}: cutout {c} pixel {i}: {got:?} vs {exp:?} ({e:e} deg)");
            }
        }
        if name == "AIT" {
            assert!(invalid > 0, "the AIT cutouts cross the map's edge");
        }
    }
}

#[test]
fn batches_larger_than_one_launch_are_split() {
    // more points than one launch takes (4M): every point must still come back, in order
    let header = tan(&[], false);
    let n = (1usize << 22) + 4099;
    let pix: Vec<f64> = (0..n).flat_map(|k| [(k % 4096) as f64 + 0.5, (k / 4096) as f64]).collect();
    let Some(gpu) = on_wgpu(&header) else { return };
    let mut got = vec![0.0; pix.len()];
    let status = gpu.pixel_to_world(&pix, &mut got).expect("gpu");
    assert!(status.iter().all(|&s| s == 0));
    // a sample across both launches, the last point included
    let picks: Vec<usize> = (0..n).step_by(9973).chain([n - 1]).collect();
    let some: Vec<f64> = picks.iter().flat_map(|&i| [pix[2 * i], pix[2 * i + 1]]).collect();
    let mut want = vec![0.0; some.len()];
    Wcs::from_header(&header).expect("wcs").pixel_to_world(&some, &mut want).expect("cpu");
    let mine: Vec<f64> = picks.iter().flat_map(|&i| [got[2 * i], got[2 * i + 1]]).collect();
    let w = worst(&mine, &want);
    assert!(w < 1e-5, "worst {w:e} deg");
    // a cutout larger than one launch: its rows go as points, in parts
    let (cw, ch) = (2049usize, 2049usize);
    let planes = gpu.coordinate_grid(&[(1000.0, 7.0)], cw, ch).expect("grid");
    let picks: Vec<usize> = (0..cw * ch).step_by(7919).chain([cw * ch - 1]).collect();
    let some: Vec<f64> = picks.iter().flat_map(|&i| [1000.0 + (i % cw) as f64, 7.0 + (i / cw) as f64]).collect();
    let mut want = vec![0.0; some.len()];
    Wcs::from_header(&header).expect("wcs").pixel_to_world(&some, &mut want).expect("cpu");
    let mine: Vec<f64> = picks.iter().flat_map(|&i| [f64::from(planes[i]), f64::from(planes[cw * ch + i])]).collect();
    let w = worst(&mine, &want);
    assert!(w < 1e-4, "grid: worst {w:e} deg");
}

#[test]
fn world_to_pixel_of_every_projection_of_the_corpus_maps_agrees_with_wcslib() {
    use burn::tensor::{Tensor, TensorData};
    // the maps' pixels and a margin, every 1.37 pixels: their world coordinates (f32, as a tensor
    // holds them), back to pixels on the device and by wcslib from those very values
    let pix: Vec<f64> =
        (0..235).flat_map(|j| (0..235).flat_map(move |i| [-64.0 + 1.37 * i as f64, -64.3 + 1.37 * j as f64])).collect();
    let mut failed = Vec::new();
    for (name, header) in maps() {
        let cpu = Wcs::from_header(&header).expect("wcs");
        let mut world = vec![0.0; pix.len()];
        cpu.pixel_to_world(&pix, &mut world).expect("cpu");
        // valid points only: an invalid pixel has no world coordinates to go back from
        let world32: Vec<f32> = world.chunks(2).filter(|w| !w[0].is_nan()).flatten().map(|&w| w as f32).collect();
        let exact: Vec<f64> = world32.iter().map(|&w| f64::from(w)).collect();
        let mut want = vec![0.0; exact.len()];
        let status = cpu.world_to_pixel(&exact, &mut want).expect("w2p");
        let Some(gpu) = on_wgpu(&header) else { return };
        let n = world32.len() / 2;
        let out = gpu
            .wcs
            .world_to_pixel(Tensor::<2>::from_data(TensorData::new(world32, [n, 2]), &gpu.device))
            .expect("device w2p");
        let got: Vec<f32> = out.pixels.into_data().iter::<f32>().collect();
        let valid: Vec<bool> = out.valid.into_data().iter::<bool>().collect();
        let differ = (0..n).filter(|&i| valid[i] != (status[i] == 0)).count();
        let mut worst = 0f64;
        for i in (0..n).filter(|&i| valid[i] && status[i] == 0) {
            for a in 0..2 {
                let (g, w) = (f64::from(got[2 * i + a]), want[2 * i + a]);
                let ulp = f64::from((w as f32).abs().max(1.0)) * f64::from(f32::EPSILON);
                worst = worst.max((g - w).abs() - ulp / 2.0);
            }
        }
        eprintln!(
            "{name}: {n} points, {} on the host, validity differs at {differ}, worst {worst:.2e} px",
            out.host_points
        );
        if differ > 0 || worst >= 5e-4 {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "not as wcslib: {failed:?}");
}
