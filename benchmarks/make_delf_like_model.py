"""Build a SavedModel with DELF's architecture and signature but RANDOM (seeded) weights.

The real DELF weights (TF-Hub ``google/delf/1``) cannot be downloaded here. This model costs the same to run, so
extraction speed (and everything after it: feature store, matching, RANSAC) can be measured without them. Its
features mean nothing: do not use it to measure matching quality or inlier thresholds.

    python benchmarks/make_delf_like_model.py OUT_DIR [--seed 0]

What it computes, per call, like DELF v1:

- an image pyramid: for each of ``image_scales``, the image resized (bilinear) to round(scale * size);
- a ResNet50 backbone up to block 3 (Keras ``ResNet50(weights=None)`` truncated at ``conv4_block6_out``:
  1024 channels, stride 16) on each scaled image (Caffe-style preprocessing: BGR, ImageNet mean subtracted);
- DELF's attention head on those features: conv 1x1 (512) + ReLU + conv 1x1 (1) + softplus;
- keypoints: every feature-map cell with attention >= ``score_threshold``, over all scales; then the
  ``max_feature_num`` with the highest attention (DELF uses non-max suppression with IoU 1.0, i.e. top-k);
- locations: the receptive-field centre of each cell mapped back to input pixels, ``(16 * i, 16 * j) / scale``,
  as (y, x);
- descriptors: the 1024-D features, L2-normalised, projected to 40-D by a fixed random orthonormal matrix
  (stands in for DELF's PCA) after subtracting a fixed random mean, L2-normalised again;
- scales: the pyramid scale each keypoint came from; attention: its attention score.

Differences from the real module that matter for timing are none in kind; in detail: Keras' ResNet50 puts
the stride-2 convolution at the start of each stage, so block 3 has stride 16 (slim's ResNet, used by DELF v1,
has stride 32 there and so about 4x fewer block-3 cells; the FLOPs of the backbone are about the same).

Attention scores: with random weights the scores are arbitrary (a softplus of a random projection, typically
well below 1), so the research threshold ``score_threshold=100`` keeps NO feature. The semantics are kept
(threshold, then top ``max_feature_num``); callers that need features, e.g. the extraction benchmark, pass
``score_threshold=0`` (``--score-threshold 0``) to keep the top ``max_feature_num`` cells, which is what the real
model returns on a typical photo (it usually reaches the 1000 cap).

Signature ``default`` (the same as ``google/delf/1``): inputs ``image`` float32 [H, W, 3] in [0, 1],
``score_threshold`` float32 scalar, ``image_scales`` float32 [None], ``max_feature_num`` int32 scalar; outputs
``locations`` float32 [N, 2], ``descriptors`` float32 [N, 40], ``scales`` float32 [N], ``attention`` float32 [N].
It loads with ``delfverify.features.make_extractor("delf", model=OUT_DIR)``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FEATURE_LAYER = "conv4_block6_out"
FEATURE_STRIDE = 16
FEATURE_DIM = 1024
ATTENTION_HIDDEN = 512
DESCRIPTOR_DIM = 40
#: Keras ResNet50 "caffe" preprocessing: BGR channel order, these means subtracted from 0-255 values.
BGR_MEAN = (103.939, 116.779, 123.68)


def build(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Build the model with weights drawn from ``seed`` and save it to ``out_dir``; returns the folder."""
    import numpy as np
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    resnet = tf.keras.applications.ResNet50(weights=None, include_top=False, input_shape=(None, None, 3))
    backbone = tf.keras.Model(resnet.input, resnet.get_layer(FEATURE_LAYER).output, name="delf_backbone")
    features_in = tf.keras.Input(shape=(None, None, FEATURE_DIM))
    hidden = tf.keras.layers.Conv2D(ATTENTION_HIDDEN, 1, activation="relu", name="attention_conv1")(features_in)
    logits = tf.keras.layers.Conv2D(1, 1, name="attention_conv2")(hidden)
    attention_head = tf.keras.Model(features_in, logits, name="delf_attention")

    rng = np.random.default_rng(seed)
    projection, _ = np.linalg.qr(rng.standard_normal((FEATURE_DIM, DESCRIPTOR_DIM)))
    pca_mean = rng.standard_normal(FEATURE_DIM) * 0.01

    module = DelfLike(backbone, attention_head, projection.astype(np.float32), pca_mean.astype(np.float32))
    # Saved as a plain graph with its variables, as the hub module is: saving the Keras objects too would trace
    # every layer (twice the time to build, twice the time to load) for nothing the signature uses.
    graph = tf.Module()
    graph.weights = [*backbone.variables, *attention_head.variables, module.projection, module.pca_mean]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(graph, str(out), signatures={"default": module.extract.get_concrete_function()})
    return out


def _delf_like_class():
    import tensorflow as tf

    class _DelfLike(tf.Module):
        def __init__(self, backbone, attention_head, projection, pca_mean):
            super().__init__(name="delf_like")
            self.backbone = backbone
            self.attention_head = attention_head
            self.projection = tf.Variable(projection, trainable=False, name="pca_matrix")
            self.pca_mean = tf.Variable(pca_mean, trainable=False, name="pca_mean")

        @tf.function(input_signature=[
            tf.TensorSpec([None, None, 3], tf.float32, name="image"),
            tf.TensorSpec([], tf.float32, name="score_threshold"),
            tf.TensorSpec([None], tf.float32, name="image_scales"),
            tf.TensorSpec([], tf.int32, name="max_feature_num"),
        ])
        def extract(self, image, score_threshold, image_scales, max_feature_num):
            size = tf.cast(tf.shape(image)[:2], tf.float32)
            n_scales = tf.shape(image_scales)[0]
            locations_ta = tf.TensorArray(tf.float32, size=n_scales, infer_shape=False, element_shape=[None, 2])
            features_ta = tf.TensorArray(tf.float32, size=n_scales, infer_shape=False,
                                         element_shape=[None, FEATURE_DIM])
            scales_ta = tf.TensorArray(tf.float32, size=n_scales, infer_shape=False, element_shape=[None])
            scores_ta = tf.TensorArray(tf.float32, size=n_scales, infer_shape=False, element_shape=[None])
            for s in tf.range(n_scales):
                scale = image_scales[s]
                new_size = tf.maximum(tf.cast(tf.round(size * scale), tf.int32), 1)
                scaled = tf.image.resize(image, new_size, method="bilinear")
                bgr = tf.reverse(scaled * 255.0, axis=[-1]) - tf.constant(BGR_MEAN, tf.float32)
                feature_map = self.backbone(bgr[tf.newaxis], training=False)[0]
                attention = tf.nn.softplus(self.attention_head(feature_map[tf.newaxis], training=False)[0, :, :, 0])
                cells = tf.where(attention >= score_threshold)
                centres = tf.cast(cells, tf.float32) * float(FEATURE_STRIDE) / scale
                locations_ta = locations_ta.write(s, centres)
                features_ta = features_ta.write(s, tf.gather_nd(feature_map, cells))
                scores = tf.gather_nd(attention, cells)
                scores_ta = scores_ta.write(s, scores)
                scales_ta = scales_ta.write(s, tf.fill(tf.shape(scores), scale))
            locations = locations_ta.concat()
            features = features_ta.concat()
            scores = scores_ta.concat()
            scales = scales_ta.concat()
            keep = tf.minimum(tf.maximum(max_feature_num, 0), tf.shape(scores)[0])
            top = tf.math.top_k(scores, k=keep, sorted=True).indices
            features = tf.math.l2_normalize(tf.gather(features, top), axis=1)
            descriptors = tf.matmul(features - self.pca_mean, self.projection)
            return {
                "locations": tf.gather(locations, top),
                "descriptors": tf.math.l2_normalize(descriptors, axis=1),
                "scales": tf.gather(scales, top),
                "attention": tf.gather(scores, top),
            }

    return _DelfLike


def DelfLike(*args):  # noqa: N802 - a class made lazily so that importing this file does not import TensorFlow
    return _delf_like_class()(*args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="folder to write the SavedModel to (created)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    args = parser.parse_args(argv)
    out = build(args.out_dir, args.seed)
    print(f"wrote a DELF-like SavedModel with random weights (seed {args.seed}) to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
