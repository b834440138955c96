//! What the `pictures` tool shows of a trained checkpoint, for every data kind: prior
//! samples, test reconstructions, interpolations and (images) the latent picture. A
//! data kind renders each view its own way ([`DataKind::view`]): PNG grids for images
//! ([`crate::modality::image::pictures`]), sentences for text
//! ([`crate::modality::text::sentences`]).

use std::path::Path;

use crate::backend::Backend;
use crate::checkpoint;
use crate::error::TrainError;
use crate::modality::view::View;
use crate::modality::{self, DataKind, WithKind};

/// Renders `view` of the checkpoint folder `path` into `out` (a PNG for images; text
/// goes to stdout without `out`).
pub fn show_checkpoint(path: &Path, view: View, out: Option<&Path>) -> Result<(), TrainError> {
    let opened = checkpoint::open(path)?;
    let config = opened.config.clone();
    modality::dispatch(
        &config,
        Show {
            opened: &opened,
            view,
            out,
        },
    )
}

struct Show<'a> {
    opened: &'a checkpoint::Opened,
    view: View,
    out: Option<&'a Path>,
}

impl WithKind for Show<'_> {
    type Output = Result<(), TrainError>;

    fn run<K: DataKind>(self) -> Self::Output {
        let device = Backend::default_compiled().device()?;
        let (kind, model) = K::from_checkpoint(self.opened, &self.opened.config, &device)?;
        kind.view(&model, self.view, self.out, &device)
    }
}
