//! World coordinates: round trips on every map projection of the corpus, threads, invalid points,
//! SIP, alternates and defaults. (Agreement with astropy is the conformance check's, in CI.)

use torchfits::{Card, ErrorKind, FitsFile, Header, Value, Wcs, WcsOptions};

use crate::common;

fn corpus_headers(dir: &str) -> Vec<(String, Header)> {
    let dir = common::repo().join("../shared/corpus/wcs").join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out: Vec<(String, Header)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "hdr"))
        .map(|p| {
            let mut raw = std::fs::read(&p).expect("read");
            raw.resize(raw.len().div_ceil(80) * 80, b' ');
            (p.display().to_string(), Header::parse(&raw).expect("parse"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A grid of pixels over (and beyond) a 2-D image of `nx` x `ny`.
fn grid(nx: f64, ny: f64, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(2 * n * n);
    for j in 0..n {
        for i in 0..n {
            out.push(-0.2 * nx + 1.4 * nx * i as f64 / (n - 1) as f64);
            out.push(-0.2 * ny + 1.4 * ny * j as f64 / (n - 1) as f64);
        }
    }
    out
}

#[test]
fn every_map_projection_round_trips_to_1e_8_pixel() {
    let maps = corpus_headers("maps");
    if maps.is_empty() {
        return;
    }
    let mut checked = 0;
    for (name, header) in &maps {
        let wcs = Wcs::from_header(header).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(wcs.naxis(), 2, "{name}");
        let nx = header.get_f64("NAXIS1").unwrap_or(192.0);
        let ny = header.get_f64("NAXIS2").unwrap_or(192.0);
        let pix = grid(nx, ny, 60);
        let mut world = vec![0.0; pix.len()];
        let status = wcs.pixel_to_world(&pix, &mut world).expect("pixel_to_world");
        let mut back = vec![0.0; pix.len()];
        let status_back = wcs.world_to_pixel(&world, &mut back).expect("world_to_pixel");
        // CSC's forward and inverse are polynomial approximations of each other (COBE's
        // quadrilateralized cube): wcslib, and astropy with it, come back up to ~0.2 px away
        let tolerance = if name.ends_with("_CSC.hdr") { 0.25 } else { 1e-8 };
        let mut valid = 0;
        for k in 0..status.len() {
            if status[k] != 0 {
                assert!(world[2 * k].is_nan() && world[2 * k + 1].is_nan(), "{name}: invalid point {k} not NaN");
                continue;
            }
            if status_back[k] != 0 {
                continue;
            }
            valid += 1;
            let err = (back[2 * k] - pix[2 * k]).abs().max((back[2 * k + 1] - pix[2 * k + 1]).abs());
            assert!(err < tolerance, "{name}: point {k} ({}, {}) comes back {err} px away", pix[2 * k], pix[2 * k + 1]);
        }
        assert!(valid > 1000, "{name}: {valid} valid points");
        checked += 1;
    }
    assert!(checked >= 20, "{checked} projections");
}

#[test]
fn threads_split_large_batches_without_changing_a_bit() {
    let maps = corpus_headers("maps");
    let Some((_, header)) = maps.iter().find(|(n, _)| n.ends_with("_ZEA.hdr")) else { return };
    let pix = grid(192.0, 192.0, 300);
    let one = Wcs::from_header(header).expect("wcs").with_threads(1);
    let two = Wcs::from_header(header).expect("wcs").with_threads(2);
    let (mut a, mut b) = (vec![0.0; pix.len()], vec![0.0; pix.len()]);
    let sa = one.pixel_to_world(&pix, &mut a).expect("one");
    let sb = two.pixel_to_world(&pix, &mut b).expect("two");
    assert_eq!(sa, sb);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    // a shared &Wcs from several threads at once
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut c = vec![0.0; pix.len()];
                two.pixel_to_world(&pix, &mut c).expect("concurrent");
                assert_eq!(format!("{c:?}"), format!("{b:?}"));
            });
        }
    });
}

/// Fuzz finding (header target): wcslib sizes its matrices by the highest axis number a keyword
/// names, so one card (`PC1234_1`, `CRPIX999`, `NAXIS = 1000`) made it allocate ~1 GB. Such a
/// WCS is refused before wcslib sees it; 99 axes and alternates still parse.
#[test]
fn a_keyword_naming_axis_100_or_more_is_refused_before_wcslib() {
    for (k, v) in [
        ("PC1234_1", Value::Float(1.0)),
        ("CD1_999", Value::Float(1.0)),
        ("CRPIX999", Value::Float(1.0)),
        ("CTYPE100", Value::Str("FREQ".into())),
        ("PV200_1", Value::Float(0.0)),
        ("CDELT123A", Value::Float(1.0)),
        ("WCSAXESB", Value::Int(500)),
    ] {
        let e = Wcs::from_header(&tan_header(&[(k, v)])).expect_err(k);
        assert_eq!(e.kind(), torchfits::ErrorKind::Unsupported, "{k}: {e}");
        assert!(e.to_string().contains(k), "{k}: {e}");
    }
    for (k, v) in [("PV1_200", Value::Float(0.0)), ("CRPIX99", Value::Float(1.0)), ("CRVAL2A", Value::Float(3.0))] {
        // not refused here (wcslib itself may still refuse a 99-axis WCS of one card)
        let r = Wcs::from_header(&tan_header(&[(k, v)]));
        assert!(r.as_ref().map_or_else(|e| !e.to_string().contains("names axis"), |_| true), "{k}: {:?}", r.err());
    }
    let cards: String = ["NAXIS   =                 1000", "CTYPE1  = 'RA---TAN'", "CTYPE2  = 'DEC--TAN'", "END"]
        .iter()
        .map(|c| format!("{c:<80}"))
        .collect();
    let e = Wcs::from_header(&Header::parse(cards.as_bytes()).expect("parse")).expect_err("NAXIS 1000");
    assert!(e.to_string().contains("NAXIS"), "{e}");
    // an axis count torchfits cannot read is not handed to wcslib, whose own reading of
    // `4   2   2453241.48161` was 422453241 axes (3.4 GB allocated: a fuzz finding)
    for naxis in [
        "NAXIS   =                    4                     2               2453241.48161",
        "NAXIS   =4 2 245",
        "WCSAXES = 'two'",
    ] {
        let cards: String =
            [naxis, "CTYPE1  = 'RA---TAN'", "CTYPE2  = 'DEC--TAN'", "END"].iter().map(|c| format!("{c:<80}")).collect();
        let e = Wcs::from_header(&Header::parse(cards.as_bytes()).expect("parse")).expect_err(naxis);
        assert_eq!(e.kind(), torchfits::ErrorKind::Decoding, "{naxis}: {e}");
        assert!(e.to_string().contains("not an axis count"), "{naxis}: {e}");
    }
}

/// Fuzz findings (open_read and header targets): on a -TAB axis whose table axis number PVi_3 is
/// out of range (or made so by a later duplicate card), wcslib's header parser freed its table
/// twice (heap corruption). -TAB axes need their table, which torchfits does not read: refused
/// before wcslib, naming the keyword.
#[test]
fn a_tab_axis_is_refused_before_wcslib() {
    let parse = |cards: &[&str]| {
        let text: String = cards.iter().chain(&["END"]).map(|c| format!("{c:<80}")).collect();
        Header::parse(text.as_bytes()).expect("parse")
    };
    let one = ["CTYPE3  = 'TIME-TAB'", "PS3_0   = 'WCS-TABLE'", "PS3_1   = 'coordinates'"];
    for extra in [
        &[][..],
        &["PV3_3   =                    0"],
        &["PV3_3   =                    1", "PV3_3   =                    2"],
    ] {
        let cards: Vec<&str> = one.iter().chain(extra).copied().collect();
        let e = Wcs::from_header(&parse(&cards)).expect_err("-TAB");
        assert_eq!(e.kind(), torchfits::ErrorKind::Unsupported, "{extra:?}: {e}");
        assert!(e.to_string().contains("CTYPE3"), "{e}");
    }
    let alt = ["CTYPE1A = 'RA---TAB'", "PS1_0A  = 'W'", "PS1_1A  = 'c'", "PV1_3A  =                    0"];
    assert!(Wcs::from_header(&parse(&alt)).expect_err("alternate").to_string().contains("CTYPE1A"));
    // a -TAB in a comment card is no axis
    assert!(
        Wcs::from_header(&parse(&["COMMENT CTYPE3 = 'TIME-TAB'", "CTYPE1  = 'RA---TAN'", "CTYPE2  = 'DEC--TAN'"]))
            .is_ok()
    );
}

/// Keywords without a value (`MJDREF =`, `DATEREF =`) before and after axis keywords made wcslib
/// build a WCS that frees a pointer it never allocated (an abort, heap corruption): they are not
/// handed to wcslib, which would reject them anyway.
#[test]
fn keywords_without_values_around_axis_keywords_do_not_reach_wcslib() {
    for key in ["MJDREF", "DATEREF"] {
        let cards = [format!("{key:<8}="), "CRPIX3  =                125.0".into(), "CDELT1  = -0.0033".into()];
        let cards: Vec<String> = cards.iter().cloned().chain([format!("{key:<8}=")]).collect();
        let text: String = cards.iter().map(String::as_str).chain(["END"]).map(|c| format!("{c:<80}")).collect();
        let header = Header::parse(text.as_bytes()).expect("parse");
        let wcs = Wcs::from_header(&header).expect("the primary WCS");
        assert_eq!(wcs.naxis(), 3, "{key}");
        let options = torchfits::WcsOptions::new().alt('B');
        assert!(Wcs::with_options(&header, options).is_err(), "{key}: no alternate B");
    }
}

fn tan_header(extra: &[(&str, Value)]) -> Header {
    let mut h = Header::new();
    for (k, v) in [
        ("CTYPE1", Value::Str("RA---TAN".into())),
        ("CTYPE2", Value::Str("DEC--TAN".into())),
        ("CRPIX1", Value::Float(50.5)),
        ("CRPIX2", Value::Float(40.5)),
        ("CRVAL1", Value::Float(150.0)),
        ("CRVAL2", Value::Float(2.0)),
        ("CD1_1", Value::Float(-2.0e-4)),
        ("CD1_2", Value::Float(1.0e-6)),
        ("CD2_1", Value::Float(-1.0e-6)),
        ("CD2_2", Value::Float(2.0e-4)),
    ] {
        h.set(k, v, None).expect("set");
    }
    for (k, v) in extra {
        h.set(k, v.clone(), None).expect("set");
    }
    h
}

/// World to pixel outside wcslib (a plain TAN, with or without SIP) agrees with wcslib's to
/// 1e-9 pixel, and says invalid where wcslib does (points behind the tangent plane).
#[test]
fn native_tan_world_to_pixel_agrees_with_wcslib() {
    let mut headers: Vec<(String, Header)> =
        corpus_headers("maps").into_iter().filter(|(n, _)| n.ends_with("_TAN.hdr")).collect();
    headers.push(("rotated".into(), tan_header(&[])));
    let mut pole = tan_header(&[]);
    pole.set("CRVAL2", -89.9, None).expect("set");
    headers.push(("near the pole".into(), pole));
    let mut sip = tan_header(&[
        ("A_ORDER", Value::Int(3)),
        ("B_ORDER", Value::Int(3)),
        ("A_2_0", Value::Float(2.0e-6)),
        ("A_0_3", Value::Float(-1.0e-8)),
        ("B_1_1", Value::Float(4.0e-6)),
        ("B_3_0", Value::Float(2.0e-9)),
    ]);
    sip.set("CTYPE1", "RA---TAN-SIP", None).expect("set");
    sip.set("CTYPE2", "DEC--TAN-SIP", None).expect("set");
    headers.push(("sip".into(), sip));
    for (name, header) in &headers {
        let native = Wcs::from_header(header).expect("wcs");
        assert!(native.is_native(), "{name}");
        let mut wcslib = Wcs::from_header(header).expect("wcs");
        wcslib.set_wcslib_only();
        // the image's sky, and points all round the sphere (half of them behind the plane)
        let mut world = vec![0.0; 2 * 3600];
        native.pixel_to_world(&grid(100.0, 80.0, 30)[..1800], &mut world[..1800]).expect("p2w");
        for k in 900..3600 {
            world[2 * k] = (k as f64 * 7.31) % 360.0;
            world[2 * k + 1] = ((k as f64 * 3.17) % 180.0) - 90.0;
        }
        let (mut a, mut b) = (vec![0.0; world.len()], vec![0.0; world.len()]);
        let sa = native.world_to_pixel(&world, &mut a).expect("native");
        let sb = wcslib.world_to_pixel(&world, &mut b).expect("wcslib");
        let mut compared = 0;
        for k in 0..3600 {
            assert_eq!(sa[k] != 0, sb[k] != 0, "{name}: point {k} ({}, {}) validity", world[2 * k], world[2 * k + 1]);
            if sa[k] != 0 {
                assert!(a[2 * k].is_nan() && a[2 * k + 1].is_nan(), "{name}: invalid is NaN");
                continue;
            }
            // far outside the image SIP's inversion diverges, to NaN, on both paths
            if b[2 * k].is_nan() || b[2 * k + 1].is_nan() {
                assert!(a[2 * k].is_nan() || a[2 * k + 1].is_nan(), "{name}: point {k} NaN on wcslib's path only");
                continue;
            }
            // far from the tangent point a pixel is large: compare relative to it
            let scale = b[2 * k].abs().max(b[2 * k + 1].abs()).max(1e3);
            let err = (a[2 * k] - b[2 * k]).abs().max((a[2 * k + 1] - b[2 * k + 1]).abs());
            assert!(err <= 1e-12 * scale, "{name}: point {k} is {err} px from wcslib's ({} vs {})", a[2 * k], b[2 * k]);
            compared += 1;
        }
        assert!(compared >= 900, "{name}: {compared} (every point of the image)");
    }
}

#[test]
fn sip_applies_before_the_projection_and_inverts() {
    let sip = [
        ("A_ORDER", Value::Int(2)),
        ("B_ORDER", Value::Int(2)),
        ("A_2_0", Value::Float(2.0e-5)),
        ("A_1_1", Value::Float(-1.0e-5)),
        ("B_0_2", Value::Float(3.0e-5)),
        ("B_1_1", Value::Float(5.0e-6)),
    ];
    let mut with = tan_header(&sip);
    with.set("CTYPE1", "RA---TAN-SIP", None).expect("set");
    with.set("CTYPE2", "DEC--TAN-SIP", None).expect("set");
    let plain = tan_header(&[]);
    let sipw = Wcs::from_header(&with).expect("sip");
    let tan = Wcs::from_header(&plain).expect("tan");
    assert!(sipw.has_sip() && !tan.has_sip());
    let pix = grid(100.0, 80.0, 20);
    // the distorted pixel (1-based u = x + 1 - CRPIX) through the plain projection
    let shifted: Vec<f64> = pix
        .chunks(2)
        .flat_map(|p| {
            let (u, v) = (p[0] + 1.0 - 50.5, p[1] + 1.0 - 40.5);
            [p[0] + 2.0e-5 * u * u - 1.0e-5 * u * v, p[1] + 3.0e-5 * v * v + 5.0e-6 * u * v]
        })
        .collect();
    let (mut a, mut b) = (vec![0.0; pix.len()], vec![0.0; pix.len()]);
    sipw.pixel_to_world(&pix, &mut a).expect("sip");
    tan.pixel_to_world(&shifted, &mut b).expect("tan");
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-11, "{x} vs {y}");
    }
    let mut back = vec![0.0; pix.len()];
    sipw.world_to_pixel(&a, &mut back).expect("inverse");
    for (x, y) in back.iter().zip(&pix) {
        assert!((x - y).abs() < 1e-8, "{x} vs {y}");
    }
    // SIP coefficients without B_ORDER: a clear error
    let mut broken = tan_header(&[("A_ORDER", Value::Int(2)), ("A_2_0", Value::Float(1e-5))]);
    broken.set("CTYPE1", "RA---TAN-SIP", None).expect("set");
    let err = Wcs::from_header(&broken).expect_err("no B_ORDER");
    assert!(err.to_string().contains("B_ORDER"), "{err}");
}

#[test]
fn alternates_defaults_invalid_points_and_errors() {
    // an alternate 'A': a linear WCS beside the celestial one
    let mut h = tan_header(&[]);
    for (k, v) in [
        ("CTYPE1A", Value::Str("X".into())),
        ("CTYPE2A", Value::Str("Y".into())),
        ("CRPIX1A", Value::Float(1.0)),
        ("CRPIX2A", Value::Float(1.0)),
        ("CDELT1A", Value::Float(0.5)),
        ("CDELT2A", Value::Float(2.0)),
        ("CRVAL1A", Value::Float(10.0)),
        ("CRVAL2A", Value::Float(-3.0)),
    ] {
        h.set(k, v, None).expect("set");
    }
    let lin = Wcs::with_options(&h, WcsOptions::new().alt('A')).expect("alternate");
    assert_eq!(lin.celestial_axes(), None);
    let mut w = [0.0; 2];
    lin.pixel_to_world(&[4.0, 5.0], &mut w).expect("linear");
    assert_eq!(w, [10.0 + 0.5 * 4.0, -3.0 + 2.0 * 5.0]);
    let err = Wcs::with_options(&h, WcsOptions::new().alt('B')).expect_err("no B");
    assert!(err.to_string().contains("'B'"), "{err}");
    // no WCS keywords at all: astropy's (wcslib's) default, a 2-axis identity on 1-based pixels
    let mut none = Header::new();
    none.set("OBJECT", "x", None).expect("set");
    let id = Wcs::from_header(&none).expect("default");
    id.pixel_to_world(&[3.0, 7.0], &mut w).expect("identity");
    assert_eq!(w, [4.0, 8.0]);
    // a slant orthographic (SIN) map: pixels beyond the sphere are invalid, the batch is not
    let sin = tan_header(&[("CTYPE1", Value::Str("RA---SIN".into())), ("CTYPE2", Value::Str("DEC--SIN".into()))]);
    let wcs = Wcs::from_header(&sin).expect("sin");
    let pix = [0.0, 0.0, 1.0e7, 1.0e7];
    let mut world = [0.0; 4];
    let status = wcs.pixel_to_world(&pix, &mut world).expect("batch");
    assert_eq!(status[0], 0);
    assert_ne!(status[1], 0);
    assert!(world[0].is_finite() && world[2].is_nan() && world[3].is_nan());
    // an unknown projection: a decoding error with wcslib's reason; a wrong-sized buffer
    let bad = tan_header(&[("CTYPE1", Value::Str("RA---XYZ".into())), ("CTYPE2", Value::Str("DEC--XYZ".into()))]);
    assert!(Wcs::from_header(&bad).is_err());
    let err = wcs.pixel_to_world(&[1.0, 2.0, 3.0], &mut [0.0; 3]).expect_err("odd");
    assert_eq!(err.kind(), ErrorKind::Parameter);
    let _ = Card::new("X", Value::Undefined, None);
}

#[test]
fn a_file_hdu_gives_its_wcs_and_errors_name_it() {
    let file = FitsFile::open(common::sample()).expect("open");
    let wcs = file.wcs("SCI").expect("wcs");
    assert_eq!(wcs.projection(), "TAN");
    assert_eq!(wcs.celestial_axes(), Some((0, 1)));
    let mut bad = Header::new();
    bad.set("CTYPE1", "RA---TAN", None).expect("set");
    bad.set("CTYPE2", "GLAT-TAN", None).expect("set");
    // mismatched celestial axes: wcslib refuses, the error says so
    let err = Wcs::from_header(&bad).expect_err("mismatched");
    assert!(!err.to_string().is_empty());
}

/// Fuzz findings (wcs target): wcslib 7.12's binary-table parser (`wcsbth`) read through
/// pointers it never set on headers with a pixel list's WCS keywords (SIGSEGV with two cards,
/// `TCTYP5` and `CRPIX1`, and on pixel lists alone). Such a header is refused before wcslib sees
/// it; image arrays in cells still read.
#[test]
fn a_pixel_list_wcs_is_refused_before_wcslib() {
    let header = |cards: &[&str]| {
        let text: String = cards.iter().chain(&["END"]).map(|c| format!("{c:<80}")).collect();
        Header::parse(text.as_bytes()).expect("parse")
    };
    let table = WcsOptions::new().table(true);
    for cards in [
        &["TCTYP5  = 'RA---TAN'", "CRPIX1  =                  1.0"][..],
        &["TCTYP5  = 'RA---TAN'", "1CUNI7  = 'deg'"],
        &[
            "TCTYP5  = 'RA---TAN'",
            "TCTYP6  = 'DEC--TAN'",
            "TCRVL5  =                 10.0",
            "TCRPX6  =                100.0",
        ],
    ] {
        let e = Wcs::with_options(&header(cards), table).expect_err("a pixel list");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{cards:?}: {e}");
        assert!(e.to_string().contains("TCTYP5"), "{e}");
    }
    // an image array in a cell (iCTYPn ...) is handed to wcslib
    let image_array = header(&[
        "1CTYP5  = 'RA---TAN'",
        "2CTYP5  = 'DEC--TAN'",
        "1CRVL5  =                 10.0",
        "2CRVL5  =                 20.0",
        "1CDLT5  =              -0.0001",
        "2CDLT5  =               0.0001",
        "1CRPX5  =                100.0",
        "2CRPX5  =                100.0",
    ]);
    if let Err(e) = Wcs::with_options(&image_array, table) {
        assert!(e.kind() != ErrorKind::Unsupported, "{e}");
    }
    // without the binary-table forms the same cards are not a WCS (the default, as astropy's)
    assert!(Wcs::from_header(&header(&["TCTYP5  = 'RA---TAN'", "CRPIX1  =                  1.0"])).is_ok());
}
