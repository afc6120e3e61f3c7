//! Which devices hold a model's weights and run its forward pass: one device, or the GPUs
//! of a split: a layer split, each GPU holding a contiguous share of the layers (and their
//! K/V cache), or a tensor split, each holding its part of every layer.

use std::ops::Range;

use super::tensor_split::{TensorShare, TensorSplitShape, split_tensors};
use crate::backend::devices::cpu_report;
use crate::backend::gpu::ops::MAX_PEER_SUM_RANKS;
use crate::backend::{DeviceChoice, DeviceKind, DeviceReport, choose};
use crate::error::{Error, Result};

/// The most shares a split may have: far more GPUs than one host holds (an index may
/// repeat), and a bound on what a host's device list is read for.
pub const MAX_SHARES: usize = 256;

/// A device a model was placed on: its entry in the device list.
#[derive(Clone, Debug, PartialEq)]
pub struct PlacedDevice {
    /// Index in the device list (`backend::enumerate`, `rf_device_info`); 0 is the CPU.
    pub index: usize,
    pub device: DeviceReport,
}

/// How the GPUs of a split divide a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitMode {
    /// Each GPU holds a contiguous range of the layers and their K/V cache.
    Layers,
    /// Each GPU holds its part of every layer's heads (and their K/V cache) and FFN; the
    /// GPUs add up their partial results twice a layer.
    Tensors,
}

/// The devices a model was placed on, in layer order.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// Never empty; more than one only for GPUs of one runtime.
    devices: Vec<PlacedDevice>,
    mode: SplitMode,
    /// How much of the model each device takes, where the host said; otherwise in
    /// proportion to each GPU's free memory.
    proportions: Option<Vec<f64>>,
    /// The most device memory the model and its contexts may allocate on each GPU.
    memory_limit: Option<u64>,
}

impl Placement {
    /// The CPU, device 0 of every device list.
    pub fn cpu() -> Placement {
        Placement::one(0, cpu_report())
    }

    fn one(index: usize, device: DeviceReport) -> Placement {
        Placement {
            devices: vec![PlacedDevice { index, device }],
            mode: SplitMode::Layers,
            proportions: None,
            memory_limit: None,
        }
    }

    /// The device `choice` selects from `devices`: `Auto` takes the best usable GPU, else
    /// the CPU; an index must name a usable device.
    pub fn choose(devices: &[DeviceReport], choice: DeviceChoice) -> Result<Placement> {
        let index = choose(devices, choice)?;
        Ok(Placement::one(index, devices[index].clone()))
    }

    /// A layer split over the GPUs `indexes` of `devices`, in that order (an index may
    /// repeat: its shares then run on the same GPU), each taking a share of the layers in
    /// proportion to `proportions` (one positive value each) or, without them, to its
    /// free memory.
    pub fn split(
        devices: &[DeviceReport],
        indexes: &[usize],
        proportions: Option<&[f32]>,
    ) -> Result<Placement> {
        Placement::split_by(SplitMode::Layers, devices, indexes, proportions)
    }

    /// A split of `mode` over the GPUs `indexes` of `devices`; see [`Placement::split`].
    /// A tensor split may name a GPU twice here, for tests on one GPU: its shares then
    /// wait for each other's kernels on it, which the GPU need not run at once (the C API
    /// refuses it).
    pub fn split_by(
        mode: SplitMode,
        devices: &[DeviceReport],
        indexes: &[usize],
        proportions: Option<&[f32]>,
    ) -> Result<Placement> {
        let (what, most) = match mode {
            SplitMode::Layers => ("a layer split", MAX_SHARES),
            SplitMode::Tensors => ("a tensor split", MAX_PEER_SUM_RANKS),
        };
        if indexes.is_empty() || indexes.len() > most {
            return Err(Error::InvalidArgument(format!(
                "{what} over {} devices: expected 1 to {most}",
                indexes.len()
            )));
        }
        let placed = indexes
            .iter()
            .map(|&index| {
                let index = choose(devices, DeviceChoice::Index(index))?;
                Ok(PlacedDevice {
                    index,
                    device: devices[index].clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let first = &placed[0].device;
        if (placed.len() > 1 || mode == SplitMode::Tensors) && first.kind == DeviceKind::Cpu {
            return Err(Error::InvalidArgument(format!(
                "{what} runs on GPUs only, not on the CPU"
            )));
        }
        if placed.iter().any(|p| p.device.kind != first.kind) {
            return Err(Error::InvalidArgument(format!(
                "{what}'s GPUs must all be of one runtime (HIP or CUDA)"
            )));
        }
        let proportions = match proportions {
            None => None,
            Some(p) if p.len() != placed.len() => {
                return Err(Error::InvalidArgument(format!(
                    "{} split proportions for {} devices",
                    p.len(),
                    placed.len()
                )));
            }
            Some(p) => {
                if let Some(bad) = p.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                    return Err(Error::InvalidArgument(format!(
                        "split proportion {bad}: expected a positive number"
                    )));
                }
                Some(p.iter().map(|&v| f64::from(v)).collect())
            }
        };
        Ok(Placement {
            devices: placed,
            mode,
            proportions,
            memory_limit: None,
        })
    }

    /// The same placement with the buffers the model and its contexts allocate on each
    /// GPU (each share, where a split names a GPU twice) held under `limit` bytes (the weights, K/V caches, activations; not the vendor
    /// libraries' workspaces or the kernels' code): a load or context that needs more
    /// fails with `DeviceOutOfMemory`, leaving memory for the host's own use.
    pub fn with_memory_limit(self, limit: Option<u64>) -> Placement {
        Placement {
            memory_limit: limit,
            ..self
        }
    }

    pub fn memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }

    /// The device of the first layers: the only one, unless the layers are split.
    pub fn first(&self) -> &PlacedDevice {
        &self.devices[0]
    }

    /// Every device, in layer order.
    pub fn devices(&self) -> &[PlacedDevice] {
        &self.devices
    }

    /// How the devices divide the model (layers for a model on one device).
    pub fn mode(&self) -> SplitMode {
        self.mode
    }

    /// The layers each device takes of a model of `n_layer` layers, in device order.
    pub fn layer_shares(&self, n_layer: usize) -> Result<Vec<Range<usize>>> {
        split_layers(n_layer, &self.proportions())
    }

    /// Each device's part of every layer of `shape` under a tensor split, in device order.
    pub fn tensor_shares(&self, shape: &TensorSplitShape) -> Result<Vec<TensorShare>> {
        split_tensors(shape, &self.proportions())
    }

    /// How much of the model each device takes.
    fn proportions(&self) -> Vec<f64> {
        match &self.proportions {
            Some(p) => p.clone(),
            // Free memory as read when the model is placed; a GPU reporting none still gets
            // its one layer.
            None => self
                .devices
                .iter()
                .map(|d| d.device.free_bytes.max(1) as f64)
                .collect(),
        }
    }
}

/// `n_layer` layers in contiguous ranges, one for each of `proportions` (positive), sized
/// in proportion to them and each at least one layer.
pub fn split_layers(n_layer: usize, proportions: &[f64]) -> Result<Vec<Range<usize>>> {
    shares_in_proportion(n_layer, proportions).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{} devices for a model of {n_layer} layers: a layer split gives each device at \
             least one layer",
            proportions.len()
        ))
    })
}

/// `n_units` units in contiguous ranges, one for each of `proportions` (positive), sized
/// in proportion to them and each at least one unit; `None` for no proportions or more
/// of them than units.
pub(super) fn shares_in_proportion(
    n_units: usize,
    proportions: &[f64],
) -> Option<Vec<Range<usize>>> {
    let n = proportions.len();
    if n == 0 || n > n_units {
        return None;
    }
    let total: f64 = proportions.iter().sum();
    let mut shares = Vec::with_capacity(n);
    let (mut start, mut before) = (0, 0.0);
    for (i, &p) in proportions.iter().enumerate() {
        before += p;
        let ideal = (n_units as f64 * before / total).round() as usize;
        // At least one unit here, and at least one left for each share after this one.
        let end = ideal.clamp(start + 1, n_units - (n - 1 - i));
        shares.push(start..end);
        start = end;
    }
    Some(shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_split_in_proportion_and_cover_the_model_once() {
        assert_eq!(split_layers(32, &[1.0, 1.0]).unwrap(), vec![0..16, 16..32]);
        assert_eq!(split_layers(32, &[3.0, 1.0]).unwrap(), vec![0..24, 24..32]);
        assert_eq!(split_layers(7, &[1.0]).unwrap(), vec![0..7]);
        assert_eq!(
            split_layers(30, &[1.0, 1.0, 1.0]).unwrap(),
            vec![0..10, 10..20, 20..30]
        );
    }

    #[test]
    fn every_device_gets_a_layer_however_small_its_proportion() {
        assert_eq!(
            split_layers(4, &[1000.0, 1.0, 1.0]).unwrap(),
            vec![0..2, 2..3, 3..4]
        );
        assert_eq!(
            split_layers(3, &[1.0, 1.0, 1000.0]).unwrap(),
            vec![0..1, 1..2, 2..3]
        );
    }

    #[test]
    fn more_devices_than_layers_is_refused() {
        let err = split_layers(2, &[1.0, 1.0, 1.0]).unwrap_err();
        assert!(err.to_string().contains("at least one layer"), "{err}");
        assert!(split_layers(2, &[]).is_err());
    }
}
