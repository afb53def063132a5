//! Reads over HTTP and S3: every corpus file read through nginx and moto's S3 server (started by
//! scripts/remote_servers.py) equals its local read; faults from a server of our own give a
//! retry or a clear error, never wrong pixels; reads fetch only what they need.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStoreExt;
use torchfits::{FitsFile, HduKind, OpenOptions, Section};

use super::common;
use super::range_server::{Fault, RangeServer};

/// Where scripts/remote_servers.py's servers are, from its environment.
struct Servers {
    http_root: PathBuf,
    http_url: String,
    s3_bucket: String,
}

/// The servers, or `None` (the test skipped, saying so) outside CI when they are not running.
/// In CI a missing server fails the test.
fn servers() -> Option<Servers> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (var("TORCHFITS_TEST_HTTP_ROOT"), var("TORCHFITS_TEST_HTTP_URL"), var("TORCHFITS_TEST_S3_BUCKET")) {
        (Some(root), Some(url), Some(bucket)) => {
            Some(Servers { http_root: root.into(), http_url: url, s3_bucket: bucket })
        }
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("the remote test servers are not running: run the tests through scripts/remote_servers.py")
        }
        _ => {
            eprintln!("remote test skipped: no servers (run through scripts/remote_servers.py)");
            None
        }
    }
}

/// Every file of ../shared/corpus (subdirectories included), relative to it.
fn corpus_files() -> Vec<PathBuf> {
    let root = common::repo().join("../shared/corpus");
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("list the corpus") {
            let path = entry.expect("a corpus entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e != "md") {
                out.push(path.strip_prefix(&root).expect("under the corpus").to_path_buf());
            }
        }
    }
    out.sort();
    assert!(out.len() > 40, "the corpus has {} files", out.len());
    out
}

/// Everything a file reads as, as text: each HDU's header, image pixels and table batches, or
/// the kind of the first error (the messages name the file, which differs by where it is read).
fn snapshot(name: &str) -> Vec<String> {
    let opened = if torchfits::is_url(name) { FitsFile::open_url(name) } else { FitsFile::open(name) };
    let file = match opened {
        Ok(f) => f,
        Err(e) => return vec![format!("open: {:?}", e.kind())],
    };
    let hdus = match file.hdus() {
        Ok(h) => h,
        Err(e) => return vec![format!("hdus: {:?}", e.kind())],
    };
    let mut out = Vec::new();
    for info in hdus {
        let i = info.index;
        out.push(format!("{i}: {:?}", file.header(i).map_err(|e| e.kind())));
        match info.kind {
            HduKind::Image => {
                let image = file.image(i);
                out.push(format!(
                    "{i}: {:?}",
                    image.as_ref().map_err(|e| e.kind()).map(|im| im.read_data(None).map_err(|e| e.kind()))
                ));
                if let Some(shape) = info.shape.filter(|s| !s.is_empty() && s.iter().all(|&n| n > 2)) {
                    let inner = Section::new(shape.iter().map(|&n| 1..n - 1).collect());
                    let cut =
                        image.as_ref().map_err(|e| e.kind()).map(|im| im.read_data(Some(&inner)).map_err(|e| e.kind()));
                    out.push(format!("{i} section: {cut:?}"));
                }
            }
            HduKind::BinTable | HduKind::AsciiTable => {
                let batches = file.table(i).and_then(|t| t.build()).and_then(|b| b.collect::<Result<Vec<_>, _>>());
                out.push(format!("{i}: {:?}", batches.map_err(|e| e.kind())));
            }
            _ => {}
        }
    }
    out
}

/// Compares each corpus file's reads at `url_of(file)` with its local reads.
fn corpus_equals_local(url_of: impl Fn(&Path) -> String) {
    let root = common::repo().join("../shared/corpus");
    for rel in corpus_files() {
        let local = snapshot(&root.join(&rel).to_string_lossy());
        let remote = snapshot(&url_of(&rel));
        assert_eq!(local.len(), remote.len(), "{}: HDUs read", rel.display());
        for (l, r) in local.iter().zip(&remote) {
            assert!(l == r, "{}: the remote read differs:\nlocal  {:.300}\nremote {:.300}", rel.display(), l, r);
        }
    }
}

#[test]
fn every_corpus_file_reads_over_http_as_it_does_locally() {
    let Some(servers) = servers() else { return };
    let root = common::repo().join("../shared/corpus");
    let dest = servers.http_root.join("corpus");
    for rel in corpus_files() {
        let to = dest.join(&rel);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("make the served directory");
        std::fs::copy(root.join(&rel), &to).expect("copy into the served directory");
    }
    corpus_equals_local(|rel| format!("{}/corpus/{}", servers.http_url, rel.display()));
}

/// The S3 store of the test bucket, configured from the environment as a user's would be.
fn s3_store(bucket: &str) -> Arc<dyn object_store::ObjectStore> {
    Arc::new(
        object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .expect("an S3 store from the environment"),
    )
}

#[test]
fn every_corpus_file_reads_over_s3_as_it_does_locally() {
    let Some(servers) = servers() else { return };
    let store = s3_store(&servers.s3_bucket);
    let root = common::repo().join("../shared/corpus");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    for rel in corpus_files() {
        let bytes = std::fs::read(root.join(&rel)).expect("read a corpus file");
        let key = object_store::path::Path::from(format!("corpus/{}", rel.display()));
        rt.block_on(store.put(&key, bytes.into())).expect("upload to S3");
    }
    corpus_equals_local(|rel| format!("s3://{}/corpus/{}", servers.s3_bucket, rel.display()));
    // and a prefix listed like a glob
    let listed = torchfits::glob(&format!("s3://{}/corpus/images-tables/astropy-t*.fits", servers.s3_bucket))
        .expect("list the bucket");
    let names: Vec<String> = listed.iter().map(|p| p.display().to_string()).collect();
    assert!(names.len() >= 4, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("s3://") && n.contains("/astropy-t")), "{names:?}");
    // a FITS catalog by URL, as from a path
    let local = torchfits_burn::Catalog::read(root.join("images-tables/astropy-tb.fits"), &["c1", "c3"], None)
        .expect("the local catalog");
    let remote = torchfits_burn::Catalog::read_url(
        &format!("s3://{}/corpus/images-tables/astropy-tb.fits", servers.s3_bucket),
        &["c1", "c3"],
        None,
    )
    .expect("the catalog over S3");
    assert_eq!(
        (remote.len(), remote.column("c1"), remote.column("c3")),
        (local.len(), local.column("c1"), local.column("c3"))
    );
    assert!(remote.len() == 2 && remote.column("c1").is_some());
    // the same table as Parquet and as Arrow IPC, read by URL as from a path
    let batch = FitsFile::open(root.join("images-tables/astropy-tb.fits"))
        .and_then(|f| f.table(1)?.with_columns(&["c1", "c3"])?.build()?.next().expect("a batch"))
        .and_then(|b| b.into_record_batch())
        .expect("the table as Arrow");
    let mut parquet_bytes = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut parquet_bytes, batch.schema(), None).expect("a writer");
    writer.write(&batch).expect("write Parquet");
    writer.close().expect("close Parquet");
    let mut arrow_bytes = Vec::new();
    let mut writer = arrow_ipc::writer::FileWriter::try_new(&mut arrow_bytes, &batch.schema()).expect("a writer");
    writer.write(&batch).expect("write Arrow");
    writer.finish().expect("finish Arrow");
    drop(writer);
    for (name, bytes) in [("tb.parquet", parquet_bytes), ("tb.arrow", arrow_bytes)] {
        let key = object_store::path::Path::from(format!("catalogs/{name}"));
        rt.block_on(store.put(&key, bytes.into())).expect("upload a catalog");
        let url = format!("s3://{}/catalogs/{name}", servers.s3_bucket);
        let cat = torchfits_burn::Catalog::read_url(&url, &["c1", "c3"], None).expect("a catalog over S3");
        assert_eq!(
            (cat.len(), cat.column("c1"), cat.column("c3")),
            (local.len(), local.column("c1"), local.column("c3")),
            "{name}"
        );
    }
}

#[test]
fn an_imaging_dataset_globs_a_bucket_and_reads_its_items() {
    use burn::data::dataset::Dataset;
    let Some(servers) = servers() else { return };
    let store = s3_store(&servers.s3_bucket);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let dir = common::tempdir("remote-dataset");
    let mut local = Vec::new();
    for k in 0..3 {
        let (bytes, _) = image_file(10.0 * k as f32);
        let path = dir.join(format!("obj{k}.fits"));
        std::fs::write(&path, &bytes).expect("write a local copy");
        local.push(path);
        let key = object_store::path::Path::from(format!("dataset/obj{k}.fits"));
        rt.block_on(store.put(&key, bytes.into())).expect("upload to S3");
    }
    let crop = torchfits_burn::Crop::Centre(32, 48);
    let remote = torchfits_burn::ImagingDataset::glob(format!("s3://{}/dataset/obj*.fits", servers.s3_bucket))
        .expect("glob the bucket")
        .crop(crop)
        .build()
        .expect("a dataset over S3");
    let local = torchfits_burn::ImagingDataset::builder(&local).crop(crop).build().expect("a local dataset");
    assert_eq!(remote.len(), 3);
    for k in 0..3 {
        let (r, l) = (remote.get(k).expect("a remote item"), local.get(k).expect("a local item"));
        assert_eq!(r.data(), l.data(), "item {k}");
    }
}

/// A 512 x 512 float32 image (1 MiB of data) whose pixel (y, x) is `y * 512 + x + offset`.
fn image_file(offset: f32) -> (Vec<u8>, Vec<f32>) {
    let pixels: Vec<f32> = (0..512 * 512).map(|k| k as f32 + offset).collect();
    let data: Vec<u8> = pixels.iter().flat_map(|v| v.to_be_bytes()).collect();
    (common::fits_bytes(&[common::image(true, -32, &[512, 512], &[], data)]), pixels)
}

/// Reads rows 100..164, columns 200..264 of the image at `url`.
fn cutout(url: &str) -> torchfits::Result<Vec<f32>> {
    let file = OpenOptions::new().open_url(url)?;
    file.image(0)?.read_section::<f32>(&Section::new(vec![100..164, 200..264]))
}

/// The same cutout of `pixels` (512 x 512).
fn expected_cutout(pixels: &[f32]) -> Vec<f32> {
    (100..164).flat_map(|y| (200..264).map(move |x| pixels[y * 512 + x])).collect()
}

#[test]
fn a_cutout_fetches_only_its_rows_in_one_request_after_the_open() {
    let (bytes, pixels) = image_file(0.0);
    let len = bytes.len() as u64;
    let server = RangeServer::start(bytes.clone(), bytes, Fault::None);
    let file = OpenOptions::new().open_url(&server.object_url()).expect("open over HTTP");
    assert_eq!(server.requests(), 1, "the open is one request");
    assert!(file.header(0).expect("the header").get_i64("NAXIS1") == Some(512));
    assert_eq!(server.requests(), 1, "the header came with the open");
    let got = file.image(0).unwrap().read_section::<f32>(&Section::new(vec![100..164, 200..264])).unwrap();
    assert_eq!(got, expected_cutout(&pixels));
    assert_eq!(server.requests(), 2, "the cutout's 64 rows are one request");
    assert!(server.bytes() < len / 2, "{} bytes of {len} fetched", server.bytes());
}

#[test]
fn a_compressed_cutout_fetches_only_the_tiles_it_touches() {
    use torchfits::write::{Algorithm, Compression};
    // 1024 x 1024 int16 of noise in 64 x 64 RICE tiles: about 1.5 MB compressed
    let n = 1024;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let pixels: Vec<i16> = (0..n * n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 4000) as i16
        })
        .collect();
    let path = common::tempdir("remote-tiles").join("tiled.fits");
    let mut w = torchfits::FitsWriter::create(&path).expect("create");
    w.image(&pixels, &[n, n]).compress(Compression::new(Algorithm::Rice).tile(&[64, 64])).write().expect("write");
    w.finish().expect("finish");
    let bytes = std::fs::read(&path).expect("the compressed file");
    let server = RangeServer::start(bytes.clone(), bytes.clone(), Fault::None);
    let file = OpenOptions::new().open_url(&server.object_url()).expect("open over HTTP");
    let opened = server.bytes();
    // inside tiles (2, 3) and (2, 4): two neighbouring tiles, one request
    let cut = file.image(1).unwrap().read_section::<i16>(&Section::new(vec![140..180, 200..280])).unwrap();
    let want: Vec<i16> =
        (140..180).flat_map(|y| (200..280).map(move |x| (y, x))).map(|(y, x)| pixels[y * n + x]).collect();
    assert_eq!(cut, want);
    assert_eq!(server.requests(), 2, "the open, then both tiles in one request");
    let tiles = server.bytes() - opened;
    assert!(
        tiles < 200_000 && server.bytes() < bytes.len() as u64 / 10,
        "{tiles} bytes for 2 tiles of {} in all",
        bytes.len()
    );
}

#[test]
fn dropped_connections_and_server_errors_are_retried() {
    let (bytes, pixels) = image_file(1.0);
    for fault in [Fault::Drop { after: 0, times: 2 }, Fault::Status500 { after: 0, times: 3 }] {
        let server = RangeServer::start(bytes.clone(), bytes.clone(), fault);
        let got = cutout(&server.object_url()).unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(got, expected_cutout(&pixels), "{fault:?}");
        assert!(server.requests() >= 3, "{fault:?}: {} requests", server.requests());
    }
}

#[test]
fn a_body_cut_short_is_retried_or_an_error_never_short_data() {
    let (bytes, pixels) = image_file(2.0);
    let server = RangeServer::start(bytes.clone(), bytes.clone(), Fault::Truncate { after: 0, times: 1 });
    assert_eq!(cutout(&server.object_url()).expect("a retried read"), expected_cutout(&pixels));
    // cut short every time: an error naming the file
    let server = RangeServer::start(bytes.clone(), bytes, Fault::Truncate { after: 0, times: usize::MAX });
    let err = cutout(&server.object_url()).expect_err("a body always cut short");
    let text = err.to_string();
    assert!(text.contains("object.fits"), "{text}");
}

#[test]
fn a_server_that_keeps_failing_gives_a_clear_error() {
    let (bytes, _) = image_file(3.0);
    let server = RangeServer::start(bytes.clone(), bytes, Fault::Status500 { after: 0, times: usize::MAX });
    let err = cutout(&server.object_url()).expect_err("500 on every read");
    let text = err.to_string();
    assert!(text.contains("object.fits") && text.contains("500"), "{text}");
}

#[test]
fn an_object_replaced_mid_read_is_an_error_naming_it() {
    let (first, _) = image_file(4.0);
    let (second, _) = image_file(5.0);
    for if_match in [true, false] {
        let server = RangeServer::start(first.clone(), second.clone(), Fault::Replace { after: 0, if_match });
        let err = cutout(&server.object_url()).expect_err("the object changed after the open");
        let text = err.to_string();
        assert!(text.contains("object.fits") && text.contains("changed"), "if_match {if_match}: {text}");
    }
}

#[test]
fn a_server_cannot_make_a_read_allocate_what_it_claims() {
    let (bytes, pixels) = image_file(6.0);
    // a body longer than the range asked for: refused as it arrives, after at most one chunk more
    // than was asked for; a chunked body without end: refused (a range answer must say its
    // length), after no more than that
    for (fault, cause) in [(Fault::LongBody { after: 0 }, "more than"), (Fault::Endless { after: 0 }, "Content-Length")]
    {
        let server = RangeServer::start(bytes.clone(), bytes.clone(), fault);
        let err = cutout(&server.object_url()).expect_err("an answer longer than the range");
        let text = err.to_string();
        assert!(text.contains("object.fits") && text.contains(cause), "{fault:?}: {text}");
        assert!(server.bytes() < 8 << 20, "{fault:?}: {} bytes sent before the refusal", server.bytes());
    }
    // an object that claims 1 TiB: the bytes it has read as they are, and the claim is never
    // allocated
    let server = RangeServer::start(bytes.clone(), bytes.clone(), Fault::ClaimsTiB);
    let file = OpenOptions::new().open_url(&server.object_url()).expect("open");
    assert_eq!(
        file.image(0).unwrap().read_section::<f32>(&Section::new(vec![100..164, 200..264])).unwrap(),
        expected_cutout(&pixels)
    );
    // no HDU in the claimed bytes the server does not have: the one it has
    assert_eq!(file.hdus().expect("the HDUs").len(), 1);
    // a compressed object that claims 1 TiB is refused before it is fetched
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &bytes).expect("gzip");
    let server = RangeServer::start(gz.finish().expect("gzip"), Vec::new(), Fault::ClaimsTiB);
    let err = OpenOptions::new().open_url(&server.object_url()).expect_err("1 TiB to inflate");
    assert_eq!(err.kind(), torchfits::ErrorKind::Limits, "{err}");
    assert_eq!(server.requests(), 1, "nothing fetched after the open");
}

#[test]
fn a_listing_of_more_objects_than_its_bound_is_an_error() {
    let Some(servers) = servers() else { return };
    let store = s3_store(&servers.s3_bucket);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    for k in 0..30 {
        let key = object_store::path::Path::from(format!("many/k{k:02}.fits"));
        rt.block_on(store.put(&key, vec![0u8; 8].into())).expect("upload");
    }
    let pattern = format!("s3://{}/many/*.fits", servers.s3_bucket);
    assert_eq!(torchfits::remote::list_at_most(&pattern, 30).expect("30 objects").len(), 30);
    let err = torchfits::remote::list_at_most(&pattern, 10).expect_err("more than 10");
    assert_eq!(err.kind(), torchfits::ErrorKind::Limits, "{err}");
    assert!(err.to_string().contains("more than 10"), "{err}");
}

#[test]
fn a_url_is_opened_only_where_the_caller_asks() {
    use burn::data::dataset::Dataset;
    let (bytes, _) = image_file(7.0);
    let server = RangeServer::start(bytes.clone(), bytes, Fault::None);
    let url = server.object_url();
    // a name is a path, whatever it reads like: no request leaves the process
    let err = FitsFile::open(&url).expect_err("no file of that name");
    assert_eq!(err.kind(), torchfits::ErrorKind::Io, "{err}");
    assert!(torchfits::FileCache::new(4, OpenOptions::new()).open(&url).is_err());
    assert!(torchfits_burn::ImagingDataset::builder([&url]).build().is_err());
    // a bands table whose file column names a URL: the planner does not fetch it unless told
    let dir = common::tempdir("urls-from-data");
    let table = dir.join("bands.parquet");
    let schema = Arc::new(arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("tile", arrow_schema::DataType::Int32, false),
        arrow_schema::Field::new("band", arrow_schema::DataType::Utf8, false),
        arrow_schema::Field::new("file", arrow_schema::DataType::Utf8, false),
    ]));
    let batch = arrow_array::RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(arrow_array::Int32Array::from(vec![1])),
            Arc::new(arrow_array::StringArray::from(vec!["g"])),
            Arc::new(arrow_array::StringArray::from(vec![url.as_str()])),
        ],
    )
    .expect("a batch");
    let mut writer = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&table).expect("create"), schema, None)
        .expect("a writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    let planned = torchfits_burn::SurveyPlanner::new(&table)
        .bands_table(&table, "tile", "band", "file")
        .and_then(|p| p.cache(dir.join("plans")).progress(false).build());
    assert!(planned.is_err(), "a URL from data is a path");
    assert_eq!(server.requests(), 0, "no request for a name the caller did not ask to fetch");
    // asked for: fetched
    let file = FitsFile::open_url(&url).expect("open the URL");
    assert_eq!(file.image(0).expect("image").shape(), &[512, 512]);
    let ds = torchfits_burn::ImagingDataset::builder([&url]).urls(true).build().expect("a dataset of URLs");
    assert_eq!(ds.get(0).expect("an item").data().len(), 512 * 512);
    assert!(server.requests() > 0);
}

#[test]
fn a_stream_fetches_each_image_of_an_epoch_in_a_few_requests() {
    use torchfits::table::{ColumnData, ColumnValues, TableBatch};
    use torchfits_burn::CatalogCutoutDataset;
    let wcs_cards = [
        ("CTYPE1", "'RA---TAN'"),
        ("CTYPE2", "'DEC--TAN'"),
        ("CRPIX1", "256.5"),
        ("CRPIX2", "256.5"),
        ("CRVAL1", "150.0"),
        ("CRVAL2", "2.0"),
        ("CDELT1", "-0.0002777777778"),
        ("CDELT2", "0.0002777777778"),
    ];
    let pixels: Vec<f32> = (0..512 * 512).map(|k| k as f32).collect();
    let data: Vec<u8> = pixels.iter().flat_map(|v| v.to_be_bytes()).collect();
    let bytes = common::fits_bytes(&[common::image(true, -32, &[512, 512], &wcs_cards, data)]);
    let dir = common::tempdir("remote-stream");
    let local = dir.join("field.fits");
    std::fs::write(&local, &bytes).expect("a local copy");
    // 300 positions spread over the image, its edges included
    let wcs = FitsFile::open(&local).expect("open").wcs(0).expect("wcs");
    let pix: Vec<f64> = (0..300).flat_map(|i| [(i * 97 % 512) as f64, (i * 61 % 512) as f64]).collect();
    let mut world = vec![0.0; pix.len()];
    wcs.pixel_to_world(&pix, &mut world).expect("p2w");
    let catalog = dir.join("catalog.fits");
    let t = TableBatch::new(vec![
        ColumnData::new("RA", ColumnValues::F64(world.iter().step_by(2).copied().collect())),
        ColumnData::new("DEC", ColumnValues::F64(world.iter().skip(1).step_by(2).copied().collect())),
    ])
    .expect("table");
    let mut w = torchfits::FitsWriter::create(&catalog).expect("create");
    w.write_table(&t, "CATALOG", None).expect("table");
    w.finish().expect("finish");
    let server = RangeServer::start(bytes.clone(), bytes, Fault::None);
    let remote = CatalogCutoutDataset::builder(&catalog, [server.object_url()]).urls(true).size(16).build();
    let remote = Arc::new(remote.expect("a dataset over HTTP"));
    let local = Arc::new(CatalogCutoutDataset::builder(&catalog, [&local]).size(16).build().expect("local"));
    assert_eq!((remote.len(), local.len()), (300, 300));
    assert_streams_alike(&server, remote, local);
    // the same positions through a survey plan of the image, in a bucket and on disk
    let plan = |image: &str, urls: bool| {
        torchfits_burn::SurveyPlanner::new(&catalog)
            .catalog_hdu("CATALOG")
            .band("r", [image])
            .urls(urls)
            .cache(dir.join("plans"))
            .progress(false)
            .build()
            .expect("a plan")
    };
    let survey = |plan| Arc::new(torchfits_burn::SurveyCutoutDataset::builder(plan).size(16).build().expect("survey"));
    let remote = survey(plan(&server.object_url(), true));
    let local = survey(plan(&dir.join("field.fits").to_string_lossy(), false));
    assert_streams_alike(&server, remote, local);
}

/// One epoch of `remote` (whose image `server` serves) takes at most 2 requests and gives the
/// batches of `local`.
fn assert_streams_alike<D: torchfits_burn::stream::ShardedStamps + 'static>(
    server: &RangeServer,
    remote: Arc<D>,
    local: Arc<D>,
) {
    use burn::data::dataloader::DataLoader;
    use torchfits_burn::StampBatcher;
    use torchfits_burn::stream::StampStream;
    let stream = |ds| StampStream::new(ds, StampBatcher::new()).batch_size(32).buffer(100).seed(4).workers(2);
    let built = server.requests();
    let got: Vec<_> = stream(remote.clone()).iter().map(|b| b.expect("a batch")).collect();
    let want: Vec<_> = stream(local).iter().map(|b| b.expect("a batch")).collect();
    let fetched = server.requests() - built;
    assert!(fetched <= 2, "{fetched} requests for an epoch of 300 stamps of one image");
    // with a decoded-stamp cache, the epoch after the first one requests nothing
    let cached = stream(remote).cache(common::tempdir("remote-stream-cache"), u64::MAX).expect("a cache");
    let first = cached.iter().count();
    let before = server.requests();
    assert_eq!(cached.iter().count(), first);
    assert_eq!(server.requests(), before, "an epoch from the cache");
    assert_eq!(got.len(), want.len());
    for (g, w) in got.into_iter().zip(want) {
        assert_eq!(g.indices, w.indices);
        assert_eq!(
            g.images.into_data().try_to_vec::<f32>().expect("f32"),
            w.images.into_data().try_to_vec::<f32>().expect("f32")
        );
    }
}
