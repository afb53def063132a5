//! Compiles the shim against the system wcslib found by pkg-config (Debian: `wcslib-dev`).

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    let lib = match pkg_config::Config::new().atleast_version("7.0").probe("wcslib") {
        Ok(lib) => lib,
        Err(e) => {
            eprintln!(
                "wcs-sys: wcslib 7 or newer not found through pkg-config ({e}); install wcslib-dev (scripts/setup.sh does)"
            );
            std::process::exit(1);
        }
    };
    let mut build = cc::Build::new();
    build.file("shim/shim.c").warnings(true);
    for path in &lib.include_paths {
        build.include(path);
    }
    build.compile("torchfits_wcs_shim");
}
