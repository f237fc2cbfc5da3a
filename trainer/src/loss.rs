//! Contrastive losses over a batch of (image, caption) pairs.
//!
//! `scores[i][j]` = cos(image i, caption j); pair i is positive. Other pairs of the *same* image (several captions
//! of one image can share a batch) are not treated as negatives.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Which loss a run trains with (`--loss`; `loss` in a run's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// VSE++ hinge: sum over negatives for the warm-up epochs, then the hardest negative.
    Vse,
    /// Symmetric InfoNCE.
    Infonce,
}

/// A loss with its parameters, as one step computes it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Loss {
    /// VSE++ hinge: sum over negatives (`hardest = false`, the warm-up) or hardest negative only.
    Vse { margin: f64, hardest: bool },
    /// Symmetric InfoNCE with temperature `tau`.
    InfoNce { tau: f64 },
}

/// `img`, `txt`: [B, D] L2-normalised; `image_ids`: [B] int64 (pairs with equal ids are both positives).
/// Returns a scalar: summed over the batch for VSE (as in VSE++), mean cross-entropy for InfoNCE.
pub fn contrastive(img: &Tensor, txt: &Tensor, image_ids: &Tensor, loss: Loss) -> Tensor {
    let scores = img.matmul(&txt.tr()); // [B, B]
    let same = image_ids.unsqueeze(1).eq_tensor(&image_ids.unsqueeze(0)); // positives incl. diagonal
    match loss {
        Loss::Vse { margin, hardest } => {
            let diag = scores.diag(0);
            // caption j as a negative for image i; image i as a negative for caption j
            let cost_txt = (&scores - diag.unsqueeze(1) + margin).clamp_min(0.0).masked_fill(&same, 0.0);
            let cost_img = (&scores - diag.unsqueeze(0) + margin).clamp_min(0.0).masked_fill(&same, 0.0);
            if hardest {
                cost_txt.amax(1, false).sum(Kind::Float) + cost_img.amax(0, false).sum(Kind::Float)
            } else {
                cost_txt.sum(Kind::Float) + cost_img.sum(Kind::Float)
            }
        }
        Loss::InfoNce { tau } => {
            let b = scores.size()[0];
            let eye = Tensor::eye(b, (Kind::Bool, scores.device()));
            let others = same.logical_and(&eye.logical_not());
            let logits = (&scores / tau).masked_fill(&others, f64::NEG_INFINITY);
            let target = Tensor::arange(b, (Kind::Int64, scores.device()));
            let i2t = logits.cross_entropy_for_logits(&target);
            let t2i = logits.tr().cross_entropy_for_logits(&target);
            (i2t + t2i) / 2.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], r: i64) -> Tensor {
        Tensor::from_slice(v).view([r, -1])
    }

    /// Two images, two captions in 1-D "embeddings": scores = [[1, .5], [.2, .9]] made by hand.
    #[test]
    fn vse_hand_computed() {
        // img·txt^T with img = identity rows and txt columns chosen to give the score matrix
        let img = t(&[1., 0., 0., 1.], 2);
        let txt = t(&[1., 0.2, 0.5, 0.9], 2); // txt rows: [1, .2], [.5, .9] -> scores [[1, .5], [.2, .9]]
        let ids = Tensor::from_slice(&[0i64, 1]);
        let m = 0.2;
        // cost_txt: image0 vs caption1: .2 + .5 - 1 < 0 -> 0; image1 vs caption0: .2 + .2 - .9 < 0 -> 0
        // cost_img: caption0 vs image1: .2 + .2 - 1 < 0; caption1 vs image0: .2 + .5 - .9 = -.2 -> 0
        let l = contrastive(&img, &txt, &ids, Loss::Vse { margin: m, hardest: true }).double_value(&[]);
        assert!(l.abs() < 1e-6);
        // margin 0.5: cost_txt = [[0, 0], [.5+.2-.9=-.2->0... ]]; compute all four hinge terms:
        // cost_txt[0][1] = .5+.5-1 = 0; cost_txt[1][0] = .5+.2-.9 = -.2 -> 0
        // cost_img[1][0] (caption0, image1) = .5+.2-1 = -.3 -> 0; cost_img[0][1] (caption1, image0) = .5+.5-.9 = .1
        let l = contrastive(&img, &txt, &ids, Loss::Vse { margin: 0.5, hardest: false }).double_value(&[]);
        assert!((l - 0.1).abs() < 1e-6, "{l}");
    }

    #[test]
    fn hardest_takes_the_max_negative_and_sum_adds_them() {
        // three images, three captions; scores = identity-ish with two violating negatives for caption 0
        let img = Tensor::eye(3, (Kind::Float, tch::Device::Cpu));
        // rows = captions; scores[i][j] = txt[j][i]
        let txt = t(&[0.5, 0.45, 0.4, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], 3);
        let ids = Tensor::from_slice(&[0i64, 1, 2]);
        let s = img.matmul(&txt.tr());
        assert!((s.double_value(&[1, 0]) - 0.45).abs() < 1e-6 && (s.double_value(&[2, 0]) - 0.4).abs() < 1e-6);
        // caption 0 (pos .5) vs images 1, 2 (.45, .4) with margin .2: costs .15 and .1
        // image 1 vs caption 0: .2 + .45 - 1 < 0; image 2 vs caption 0: .2 + .4 - 1 < 0
        let hard = contrastive(&img, &txt, &ids, Loss::Vse { margin: 0.2, hardest: true }).double_value(&[]);
        let sum = contrastive(&img, &txt, &ids, Loss::Vse { margin: 0.2, hardest: false }).double_value(&[]);
        assert!((hard - 0.15).abs() < 1e-6, "{hard}");
        assert!((sum - 0.25).abs() < 1e-6, "{sum}");
    }

    #[test]
    fn same_image_pairs_are_not_negatives() {
        let img = t(&[1., 0., 1., 0.], 2); // the same image twice
        let txt = t(&[1., 0., 0.8, 0.6], 2);
        let ids = Tensor::from_slice(&[7i64, 7]);
        let l = contrastive(&img, &txt, &ids, Loss::Vse { margin: 0.2, hardest: false }).double_value(&[]);
        assert_eq!(l, 0.0);
        // InfoNCE with the other positive masked: each row has one finite logit -> loss 0
        let l = contrastive(&img, &txt, &ids, Loss::InfoNce { tau: 0.1 }).double_value(&[]);
        assert!(l.abs() < 1e-6, "{l}");
    }

    #[test]
    fn infonce_hand_computed() {
        let img = t(&[1., 0., 0., 1.], 2);
        let txt = t(&[1., 0., 0., 1.], 2);
        let ids = Tensor::from_slice(&[0i64, 1]);
        // logits [[10, 0], [0, 10]] -> CE = ln(1 + e^-10) in both directions
        let l = contrastive(&img, &txt, &ids, Loss::InfoNce { tau: 0.1 }).double_value(&[]);
        assert!((l - (1.0 + (-10f64).exp()).ln()).abs() < 1e-6, "{l}");
    }
}
