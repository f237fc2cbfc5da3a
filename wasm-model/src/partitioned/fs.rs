//! Native file access for partitioned galleries: reading shards and metadata from the gallery folder, and
//! writing a build so that no reader ever sees half of one. Everything but `gallery.json` lives in a folder
//! named by the gallery id; a build writes that folder under a temporary name, renames it into place, and only
//! then replaces `gallery.json` (itself via a rename). A killed build leaves only the temporary folder, which
//! the next build removes; readers go on seeing the previous gallery until the new descriptor lands.

use std::fs;
use std::path::{Path, PathBuf};

use super::build::{partition, BuildError, BuildParams, BuildSummary};
use super::{Descriptor, PartitionedError, PartitionedGallery, Problem, ShardSource};
use crate::gallery::{Gallery, GalleryItem};
use crate::model_dir::is_model_id;

const TMP: &str = ".partitioned-tmp";

/// Reads a partitioned gallery's files from its folder.
#[derive(Debug, Clone)]
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    /// `gallery_dir` is the folder with `gallery.json`; files are read from its `<gallery id>/` folder.
    pub fn new(gallery_dir: &Path, gallery_id: &str) -> Self {
        Self { root: gallery_dir.join(gallery_id) }
    }
}

impl ShardSource for DirSource {
    fn read(&self, file: &str) -> Result<Vec<u8>, PartitionedError> {
        fs::read(self.root.join(file)).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound { " (the partitioned gallery is incomplete: publish it again)" } else { "" };
            PartitionedError::new(file, Problem::Io(format!("{e}{hint}")))
        })
    }
}

/// Opens the partitioned gallery of `gallery_dir` (its `gallery.json` is a descriptor) for a model: the
/// descriptor and header checked against each other and the model; shards and metadata are read from the
/// folder as they are needed.
pub fn open_dir(gallery_dir: &Path, model_id: &str, embed_dim: usize) -> Result<(Descriptor, PartitionedGallery), PartitionedError> {
    let json_path = gallery_dir.join("gallery.json");
    let json = fs::read_to_string(&json_path).map_err(|e| PartitionedError::new("gallery.json", Problem::Io(format!("{}: {e}", json_path.display()))))?;
    let descriptor = Descriptor::from_json(&json)?;
    let source = DirSource::new(gallery_dir, &descriptor.gallery_id);
    let header = source.read(&descriptor.header)?;
    let gallery = PartitionedGallery::new(&json, &header, model_id, embed_dim)?.with_source(Box::new(source));
    Ok((descriptor, gallery))
}

/// The path of `file` (relative to the parts folder) of the gallery whose descriptor is `gallery_dir/gallery.json`.
pub fn parts_dir(gallery_dir: &Path, descriptor: &Descriptor) -> PathBuf {
    gallery_dir.join(&descriptor.gallery_id)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Write { file: path.display().to_string(), source }
}

/// Partitions `gallery` + `items` into `out` (created if missing): the parts folder, then `gallery.json`.
/// Other tiers' files in `out` are removed once the new gallery is in place (`gallery.bin`, older parts
/// folders); `thumbs/` and anything else is left alone.
pub fn write_partitioned(gallery: &Gallery, items: &[GalleryItem], params: &BuildParams, out: &Path) -> Result<BuildSummary, BuildError> {
    fs::create_dir_all(out).map_err(io(out))?;
    let tmp = out.join(TMP);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?; // a killed build's leftovers
    }
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let mut descriptor: Option<Vec<u8>> = None;
    let summary = partition(gallery, items, params, &mut |file, bytes| {
        if file == "gallery.json" {
            descriptor = Some(bytes.to_vec());
            return Ok(());
        }
        let path = tmp.join(file);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(path, bytes)
    })?;
    let parts = out.join(&summary.gallery_id);
    if parts.exists() {
        fs::remove_dir_all(&parts).map_err(io(&parts))?; // the same content built before: replaced by the fresh copy
    }
    fs::rename(&tmp, &parts).map_err(io(&parts))?;
    let json = out.join("gallery.json");
    let json_tmp = out.join(".gallery.json.tmp");
    fs::write(&json_tmp, descriptor.expect("partition writes gallery.json")).map_err(io(&json_tmp))?;
    fs::rename(&json_tmp, &json).map_err(io(&json))?;
    remove_other_tiers(out, Some(&summary.gallery_id)).map_err(io(out))?;
    Ok(summary)
}

/// Removes what a gallery folder holds of other publishes: `gallery.bin` when it is now partitioned
/// (`keep = Some(id)`: and every parts folder but `id`'s), or every parts folder when it is now flat (`None`);
/// and a killed build's temporary folder.
pub fn remove_other_tiers(out: &Path, keep: Option<&str>) -> std::io::Result<()> {
    match fs::remove_dir_all(out.join(TMP)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    if keep.is_some() {
        match fs::remove_file(out.join("gallery.bin")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    for entry in fs::read_dir(out)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_model_id(&name) && Some(name.as_str()) != keep && entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}
