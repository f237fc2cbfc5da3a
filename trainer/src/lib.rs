//! imgpick trainer library: data, text, backbones, model, training, evaluation, export, publishing.
