//! The SIP distortion polynomials, evaluated on the device.

use cubecl::prelude::*;

/// One SIP polynomial at (u, v): `sum over p, q < n1 of c[p][q] u^p v^q`, its coefficients
/// `c[p][q]` at `params[base + p * n1 + q]` (the `A` polynomial gives the u distortion, `B` the v
/// one). The loops unroll at compile time.
#[cube]
pub(super) fn sip_polynomial<F: Float>(params: &[F], base: usize, u: F, v: F, #[comptime] n1: usize) -> F {
    let mut sum = F::new(0.0);
    let mut up = F::new(1.0);
    #[unroll]
    for p in 0..n1 {
        let mut vq = F::new(1.0);
        #[unroll]
        for q in 0..n1 {
            sum += params[base + p * n1 + q] * up * vq;
            vq *= v;
        }
        up *= u;
    }
    sum
}
