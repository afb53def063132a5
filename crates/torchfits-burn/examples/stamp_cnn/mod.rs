//! The convolutional trunk the examples train: three 3x3 convolutions with ReLU and 2x2 max
//! pooling, then a linear layer to 64 features.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::{Device, Tensor};

/// Stamps `[b, channels, size, size]` to features `[b, 64]` (after ReLU).
#[derive(Module, Debug)]
pub struct Trunk {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    pool: MaxPool2d,
    fc: Linear,
    act: Relu,
}

/// The trunk's output features.
pub const FEATURES: usize = 64;

impl Trunk {
    /// For stamps of `channels` planes of `size` x `size` pixels (`size` a multiple of 8).
    pub fn new(channels: usize, size: usize, device: &Device) -> Trunk {
        let conv = |i, o| Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Same).init(device);
        let side = size / 8;
        Trunk {
            conv1: conv(channels, 16),
            conv2: conv(16, 32),
            conv3: conv(32, 32),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc: LinearConfig::new(32 * side * side, FEATURES).init(device),
            act: Relu::new(),
        }
    }

    /// The features of a batch of stamps.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(self.act.forward(self.conv1.forward(x)));
        let x = self.pool.forward(self.act.forward(self.conv2.forward(x)));
        let x = self.pool.forward(self.act.forward(self.conv3.forward(x)));
        let [b, c, h, w] = x.dims();
        self.act.forward(self.fc.forward(x.reshape([b, c * h * w])))
    }
}
