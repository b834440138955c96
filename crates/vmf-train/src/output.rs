//! Run-folder outputs: metrics CSV files (their rows: [`crate::records`]) and PNG
//! image grids.

use std::path::Path;

use burn::tensor::Tensor;
use image::{GrayImage, ImageFormat, RgbImage};

use crate::durable;
use crate::error::TrainError;

/// Appends `row` to the CSV at `path`, writing `header` first if the file is new; the
/// row goes out in one write (see [`crate::durable::append_row`]).
pub fn append_csv(path: &Path, header: &str, row: &str) -> Result<(), TrainError> {
    durable::append_row(path, header, row)
}

/// The column `name` of the CSV at `path` (with a header row); empty or unparsable
/// fields are `None` (the Gaussian model's empty kappa).
pub fn read_csv_column(path: &Path, name: &str) -> Result<Vec<Option<f64>>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(TrainError::io("reading", path))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split(',')
        .position(|h| h == name)
        .ok_or_else(|| TrainError::Data {
            file: path.to_path_buf(),
            message: format!("no column {name:?} in the header {header:?}"),
        })?;
    Ok(lines
        .map(|l| l.split(',').nth(col).and_then(|v| v.parse().ok()))
        .collect())
}

/// Readies the CSV at `path` (if any) for a run resumed from a checkpoint: keeps the
/// rows for which `keep(row)` holds (those of steps the checkpoint holds), so that
/// nothing is written twice, and drops a last row cut short by a kill (no newline); a
/// file whose header was cut short is removed. Where the file's header is a strict
/// prefix of `header` (a run resumed by a version that reports more columns), `header`
/// takes its place; older rows keep fewer fields.
pub fn resume_csv(
    path: &Path,
    header: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<(), TrainError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    // Whole lines only: a kill mid-append leaves a last line without its newline.
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut lines = whole.lines();
    let Some(old) = lines.next() else {
        return durable::remove_file(path);
    };
    let first = if header.starts_with(&format!("{old},")) {
        header
    } else {
        old
    };
    let kept: Vec<&str> = std::iter::once(first)
        .chain(lines.filter(|l| keep(l)))
        .collect();
    let new = kept.join("\n") + "\n";
    if new != text {
        durable::replace(path, new.as_bytes())?;
    }
    Ok(())
}

/// The field `at` (0-based) of a CSV row, as a number (`None` if absent or not one).
pub fn csv_field<T: std::str::FromStr>(row: &str, at: usize) -> Option<T> {
    row.split(',').nth(at)?.parse().ok()
}

/// Saves images (values in [0, 1], each `[channels, h, w]` as channel planes: 1
/// grey, 3 RGB) as a grid with `cols` columns.
pub fn save_grid(
    path: &Path,
    images: &[Vec<f32>],
    [channels, h, w]: [usize; 3],
    cols: usize,
) -> Result<(), TrainError> {
    let rows = images.len().div_ceil(cols);
    let pad = 2;
    let (gw, gh) = (cols * (w + pad) + pad, rows * (h + pad) + pad);
    // Interleaved bytes (grey, or RGB), the images' channel planes copied in.
    let mut bytes = vec![0u8; gw * gh * channels];
    for (k, im) in images.iter().enumerate() {
        let (r, c) = (k / cols, k % cols);
        for y in 0..h {
            for x in 0..w {
                let at = ((pad + r * (h + pad) + y) * gw + pad + c * (w + pad) + x) * channels;
                for ch in 0..channels {
                    let v = im[(ch * h + y) * w + x];
                    bytes[at + ch] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
    }
    let (gw, gh) = (gw as u32, gh as u32);
    let mut png = std::io::Cursor::new(Vec::new());
    let encoded = if channels == 1 {
        GrayImage::from_raw(gw, gh, bytes).map(|img| img.write_to(&mut png, ImageFormat::Png))
    } else {
        RgbImage::from_raw(gw, gh, bytes).map(|img| img.write_to(&mut png, ImageFormat::Png))
    }
    .expect("the buffer holds the grid");
    encoded.map_err(|e| TrainError::Io {
        what: "encoding image",
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    durable::replace(path, &png.into_inner())
}

/// The values of a tensor, read back to the host as f32. A device that fails here
/// (out of memory, lost device) gives an error, not a panic.
pub fn read_back<const N: usize>(t: Tensor<N>) -> Result<Vec<f32>, TrainError> {
    let fail = |e: String| {
        TrainError::Backend(format!(
            "reading results back from the device failed: {e}\n(the device may lack memory \
             for the data, which is uploaded whole: try --backend flex or a smaller \
             data.train_limit)"
        ))
    };
    t.try_into_data()
        .map_err(|e| fail(format!("{e:?}")))?
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| fail(format!("{e:?}")))
}

/// The rows of a `[n, d]` tensor, read back to the host.
pub fn rows(t: Tensor<2>) -> Result<Vec<Vec<f32>>, TrainError> {
    let [_, d] = t.dims();
    Ok(read_back(t)?.chunks(d).map(<[f32]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resuming_drops_later_and_torn_rows_and_widens_an_older_header() {
        let dir = std::env::temp_dir().join(format!("vmf-resume-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("eval.csv");
        let upto = |n: u64| move |row: &str| csv_field::<u64>(row, 0).is_none_or(|s| s <= n);
        // A kill mid-append left "1" of a row for step 15 (it would parse as step 1).
        std::fs::write(&path, "step,kl\n10,1.5\n20,1.4\n30,1.3\n1").unwrap();
        resume_csv(&path, "step,kl,recon_accuracy", upto(20)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "step,kl,recon_accuracy\n10,1.5\n20,1.4\n");
        // A header that is not a prefix of the new one is left as it is.
        resume_csv(&path, "epoch,kl,recon_accuracy", upto(10)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "step,kl,recon_accuracy\n10,1.5\n");
        // A header cut short: the file goes (its first row comes with a new header).
        std::fs::write(&path, "step,k").unwrap();
        resume_csv(&path, "step,kl", upto(10)).unwrap();
        assert!(!path.exists());
        // No file: nothing to do.
        resume_csv(&dir.join("none.csv"), "step", upto(5)).unwrap();
        assert!(!dir.join("none.csv").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
