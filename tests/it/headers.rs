//! Headers read from files: one call per HDU, long strings, HIERARCH, compressed images.

use torchfits::{ErrorKind, FitsFile, Limits, OpenOptions, Value};

use crate::common::{self, card, image, write};

#[test]
fn long_strings_hierarch_and_commentary_from_a_file() {
    let dir = common::tempdir("hdr");
    let path = dir.join("hdr.fits");
    let extra_cards = [
        format!("{:<80}", "LONGSTR = 'This is a long string value that spans&'  / first part"),
        format!("{:<80}", "CONTINUE  ' several cards&'"),
        format!("{:<80}", "CONTINUE  ' to the end'  / last part"),
        format!("{:<80}", "HIERARCH ESO INS FILT1 NAME = 'R_SPECIAL' / filter"),
        format!("{:<80}", "COMMENT   a comment"),
        format!("{:<80}", "HISTORY   processed"),
        card("CPLX", "(1.5, -2.0)"),
        card("DEXP", "1.0D-3"),
        card("UNDEF", ""),
    ];
    let mut hdu = image(true, 8, &[], &[], vec![]);
    hdu.cards.extend(extra_cards);
    write(&path, &[hdu]);
    let header = FitsFile::open(&path).expect("open").header(0).expect("header");
    assert_eq!(header.get_str("LONGSTR"), Some("This is a long string value that spans several cards to the end"));
    assert_eq!(header.card("LONGSTR").and_then(|c| c.comment()), Some("first part last part"));
    assert_eq!(header.get_str("ESO INS FILT1 NAME"), Some("R_SPECIAL"));
    assert_eq!(header.get("CPLX"), Some(&Value::Complex(1.5, -2.0)));
    assert_eq!(header.get_f64("DEXP"), Some(1.0e-3));
    assert_eq!(header.get("UNDEF"), Some(&Value::Undefined));
    let keywords: Vec<String> = header.iter().map(|c| c.keyword()).collect();
    assert_eq!(
        keywords,
        [
            "SIMPLE",
            "BITPIX",
            "NAXIS",
            "EXTEND",
            "LONGSTR",
            "ESO INS FILT1 NAME",
            "COMMENT",
            "HISTORY",
            "CPLX",
            "DEXP",
            "UNDEF"
        ]
    );
}

#[test]
fn compressed_hdus_show_the_image_header() {
    let file = FitsFile::open(common::sample()).expect("open");
    let header = file.header("SCI_RICE").expect("header");
    assert_eq!(header.get_str("XTENSION"), Some("IMAGE"));
    assert_eq!(header.get_i64("BITPIX"), Some(32));
    assert_eq!((header.get_i64("NAXIS1"), header.get_i64("NAXIS2")), (Some(64), Some(48)));
    for gone in ["ZIMAGE", "ZBITPIX", "TFIELDS", "TTYPE1", "ZCMPTYPE", "ZTILE1"] {
        assert!(!header.contains(gone), "{gone} should not be in the image header");
    }
    assert_eq!(header.get_str("EXTNAME"), Some("SCI_RICE"));
}

#[test]
fn header_card_limit_is_enforced() {
    let file =
        OpenOptions::new().limits(Limits::default().with_max_header_cards(10)).open(common::sample()).expect("open");
    let err = file.header("SCI").expect_err("22 cards > 10");
    assert_eq!(err.kind(), ErrorKind::Limits);
    assert!(err.to_string().contains("max_header_cards"), "{err}");
}
