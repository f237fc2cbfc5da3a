//! `trainer eval --group-by FIELD`: the metrics per value of a field of the captions file's image records
//! (e.g. the demo gallery's `kind`: photo, cutout, clipart, painting). A group's queries are its images'
//! captions (t2i) and its images (i2t), each still ranked against the *whole* gallery, so a group's numbers say
//! how well the model finds that kind of picture among all of them, not among its own kind only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::metrics::{Interval, Metrics, Ranks};

/// The value of images whose record lacks the field (or holds `null`).
pub const MISSING: &str = "(none)";

/// Each image id's value of `field` in the `images` records of a COCO captions file: text as it is, numbers
/// and true/false as written, [`MISSING`] where absent. An error when no record has the field (naming the
/// fields they do have) or when a value is a list or an object.
pub fn field_values(captions: &Path, field: &str) -> Result<HashMap<u64, String>> {
    #[derive(serde::Deserialize)]
    struct File {
        images: Vec<serde_json::Map<String, Value>>,
    }
    let text = std::fs::read_to_string(captions).with_context(|| format!("--group-by: cannot read {}", captions.display()))?;
    let file: File = serde_json::from_str(&text)
        .with_context(|| format!("--group-by: {} is not COCO captions JSON with an \"images\" list", captions.display()))?;
    let mut values = HashMap::with_capacity(file.images.len());
    let mut found = false;
    for im in &file.images {
        let Some(id) = im.get("id").and_then(Value::as_u64) else {
            bail!("--group-by: an image record of {} has no numeric \"id\"", captions.display());
        };
        let value = match im.get(field) {
            None | Some(Value::Null) => MISSING.to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            Some(_) => bail!(
                "--group-by {field}: image {id} of {} holds a list or an object there; group by a field with text, \
                 number or true/false values",
                captions.display()
            ),
        };
        found |= value != MISSING;
        values.insert(id, value);
    }
    if !found {
        let fields: BTreeSet<&str> = file.images.iter().flat_map(|im| im.keys().map(String::as_str)).collect();
        bail!(
            "--group-by {field}: no image record of {} has a field {field:?}; its image records have: {}",
            captions.display(),
            fields.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(values)
}

/// The ranked images whose field holds one value.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub value: String,
    /// The group's images' ranks, each against the whole gallery (a subset of the evaluation's [`Ranks`]).
    pub ranks: Ranks,
}

/// Splits `ranks` by each ranked image's value (`image_ids[i]` is the id of `ranks.images[i]`; an id missing
/// from `values` counts as [`MISSING`]). Largest group first, then by value.
pub fn split(ranks: &Ranks, image_ids: &[u64], values: &HashMap<u64, String>) -> Vec<Group> {
    assert_eq!(ranks.images.len(), image_ids.len(), "one image id per ranked image");
    let mut by_value: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for (im, id) in ranks.images.iter().zip(image_ids) {
        by_value.entry(values.get(id).map_or(MISSING, String::as_str)).or_default().push(im.clone());
    }
    let mut groups: Vec<Group> =
        by_value.into_iter().map(|(value, images)| Group { value: value.to_owned(), ranks: Ranks { images } }).collect();
    groups.sort_by(|a, b| b.ranks.images.len().cmp(&a.ranks.images.len()).then_with(|| a.value.cmp(&b.value)));
    groups
}

/// One group's line of `trainer eval --group-by`.
#[derive(Debug, Clone)]
pub struct GroupReport {
    pub value: String,
    /// Images of the group (its i2t queries) and their captions (its t2i queries).
    pub images: usize,
    pub queries: usize,
    pub metrics: Metrics,
    /// `--bootstrap`: the group's images resampled within the group.
    pub interval: Option<Interval>,
    /// `--compare`: the other model's metrics on the group and the paired 95 % interval of (this − that).
    pub comparison: Option<(Metrics, Interval)>,
}

/// Every group's report. `other`: the compared model's ranks and image ids, on the same queries.
pub fn group_reports(
    ranks: &Ranks,
    image_ids: &[u64],
    values: &HashMap<u64, String>,
    bootstrap: Option<usize>,
    other: Option<(&Ranks, &[u64])>,
    seed: u64,
) -> Result<Vec<GroupReport>> {
    let other_groups = match other {
        Some((o, ids)) if ids == image_ids => Some(split(o, ids, values)),
        Some(_) => bail!("the two models ranked different images: compare them on one captions file and image folder"),
        None => None,
    };
    let groups = split(ranks, image_ids, values);
    groups
        .iter()
        .enumerate()
        .map(|(g, group)| {
            let r = &group.ranks;
            let comparison = match &other_groups {
                Some(o) => {
                    let o = &o[g].ranks; // the same ids give the same groups in the same order
                    Some((o.metrics(), r.paired_bootstrap(o, bootstrap.unwrap_or(1000), seed)?))
                }
                None => None,
            };
            Ok(GroupReport {
                value: group.value.clone(),
                images: r.images.len(),
                queries: r.images.iter().map(|im| im.caption_ranks.len()).sum(),
                metrics: r.metrics(),
                interval: bootstrap.map(|n| r.bootstrap(n, seed)),
                comparison,
            })
        })
        .collect()
}

impl GroupReport {
    /// The group's JSON: `value`, `images`, `queries`, the metrics' keys, and `ci95` / `compare` as in the
    /// whole report.
    pub fn to_json(&self) -> Result<Value> {
        let mut out = serde_json::json!({"value": self.value, "images": self.images, "queries": self.queries});
        if let (Some(out), Value::Object(m)) = (out.as_object_mut(), serde_json::to_value(self.metrics)?) {
            out.extend(m);
        }
        if let Some(i) = &self.interval {
            out["ci95"] = serde_json::to_value(i)?;
        }
        if let Some((other, difference)) = &self.comparison {
            out["compare"] = serde_json::json!({
                "metrics": other, "difference": self.metrics.minus(other), "difference_ci95": difference,
            });
        }
        Ok(out)
    }
}

impl std::fmt::Display for GroupReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "  {} ({} images, {} captions): {}", self.value, self.images, self.queries, self.metrics)?;
        if let Some(i) = &self.interval {
            write!(f, "\n    {i}")?;
        }
        if let Some((other, difference)) = &self.comparison {
            write!(f, "\n    compared: {other}\n    difference (this − that): {}\n    its {difference}", self.metrics.minus(other))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ImageRanks;

    fn image(caption_ranks: &[usize], best_caption_rank: usize) -> ImageRanks {
        ImageRanks { caption_ranks: caption_ranks.to_vec(), best_caption_rank }
    }

    fn write_captions(dir: &Path, images: Value) -> std::path::PathBuf {
        let path = dir.join("captions.json");
        std::fs::write(&path, serde_json::json!({"images": images, "annotations": []}).to_string()).unwrap();
        path
    }

    /// Groups hold exactly their images' ranks (against the whole gallery), their metrics are computed from
    /// those alone, largest group first; images without the field form the "(none)" group.
    #[test]
    fn groups_are_split_by_field_value_and_scored_on_their_own_queries() {
        let tmp = tempfile::tempdir().unwrap();
        let captions = write_captions(
            tmp.path(),
            serde_json::json!([
                {"id": 10, "file_name": "a.jpg", "kind": "photo"},
                {"id": 11, "file_name": "b.png", "kind": "cutout"},
                {"id": 12, "file_name": "c.jpg", "kind": "photo"},
                {"id": 13, "file_name": "d.png", "kind": "cutout"},
                {"id": 14, "file_name": "e.jpg", "kind": "photo"},
                {"id": 15, "file_name": "f.gif"},
            ]),
        );
        let values = field_values(&captions, "kind").unwrap();
        assert_eq!(values[&10], "photo");
        assert_eq!(values[&15], MISSING);
        // photos: every caption and image first; cutouts: ranks 3 and 20 (t2i), 0 and 7 (i2t)
        let ranks = Ranks {
            images: vec![image(&[0, 0], 0), image(&[3], 0), image(&[0], 0), image(&[20], 7), image(&[0], 0), image(&[5], 12)],
        };
        let ids = [10, 11, 12, 13, 14, 15];
        let groups = split(&ranks, &ids, &values);
        let names: Vec<&str> = groups.iter().map(|g| g.value.as_str()).collect();
        assert_eq!(names, ["photo", "cutout", MISSING], "largest first");
        assert_eq!(groups[1].ranks, Ranks { images: vec![image(&[3], 0), image(&[20], 7)] });

        let reports = group_reports(&ranks, &ids, &values, Some(200), None, 0).unwrap();
        let photo = &reports[0];
        assert_eq!((photo.images, photo.queries), (3, 4));
        assert_eq!((photo.metrics.t2i_r1, photo.metrics.i2t_r1, photo.metrics.rsum), (100.0, 100.0, 600.0));
        let cutout = &reports[1].metrics;
        assert_eq!((cutout.t2i_r1, cutout.t2i_r5, cutout.t2i_r10), (0.0, 50.0, 50.0));
        assert_eq!((cutout.i2t_r1, cutout.i2t_r5, cutout.i2t_r10), (50.0, 50.0, 100.0));
        // median of 0-based t2i ranks {3, 20} = 11.5 -> floor + 1
        assert_eq!(cutout.t2i_medr, 12.0);
        let none = &reports[2].metrics;
        assert_eq!((none.t2i_r5, none.t2i_r10, none.i2t_r10), (0.0, 100.0, 0.0));
        let ci = photo.interval.unwrap();
        assert_eq!((ci.lo.rsum, ci.hi.rsum), (600.0, 600.0), "resampled within the group: always perfect");
        let json = reports[1].to_json().unwrap();
        assert_eq!((json["value"].as_str(), json["images"].as_u64(), json["t2i_r5"].as_f64()), (Some("cutout"), Some(2), Some(50.0)));
        assert!(json["ci95"]["lo"]["rsum"].is_number(), "{json}");

        // compared with itself: the same metrics, a zero difference
        let cmp = group_reports(&ranks, &ids, &values, None, Some((&ranks, &ids)), 0).unwrap();
        let (other, diff) = cmp[1].comparison.unwrap();
        assert_eq!(other, cmp[1].metrics);
        assert_eq!((diff.lo, diff.hi), (Metrics::default(), Metrics::default()));
        let e = group_reports(&ranks, &ids, &values, None, Some((&ranks, &[10, 11, 12, 13, 14, 16])), 0).unwrap_err();
        assert!(e.to_string().contains("different images"), "{e}");
    }

    /// A field no record has is an error naming it and the fields that exist; numbers and booleans group by
    /// their text; a list is refused.
    #[test]
    fn an_unknown_field_names_the_fields_that_exist() {
        let tmp = tempfile::tempdir().unwrap();
        let captions = write_captions(
            tmp.path(),
            serde_json::json!([{"id": 1, "file_name": "a.jpg", "kind": "photo", "year": 2020, "mine": true}, {"id": 2, "file_name": "b.jpg"}]),
        );
        let e = format!("{:#}", field_values(&captions, "kinds").unwrap_err());
        assert!(e.contains("\"kinds\"") && e.contains("file_name, id, kind, mine, year"), "{e}");
        assert_eq!(field_values(&captions, "year").unwrap()[&1], "2020");
        assert_eq!(field_values(&captions, "mine").unwrap()[&2], MISSING);
        let listed = write_captions(tmp.path(), serde_json::json!([{"id": 1, "file_name": "a.jpg", "tags": ["x"]}]));
        let e = field_values(&listed, "tags").unwrap_err().to_string();
        assert!(e.contains("list or an object") && e.contains("image 1"), "{e}");
    }
}
