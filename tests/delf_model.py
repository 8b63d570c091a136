"""A tiny SavedModel with the DELF ``default`` signature, built by the tests (no download, builds in seconds).
Importing this module imports TensorFlow: the tests import it when they need the model."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from conftest import DELF_GRID as GRID  # the tiny model returns at most GRID * GRID features


class TinyDelf(tf.Module):
    """Deterministic stand-in for google/delf/1: features on a grid, descriptors from the pixels there."""

    def __init__(self, seed: int):
        super().__init__()
        weights = np.random.default_rng(seed).normal(size=(6, 40)).astype(np.float32)
        self.weights = tf.Variable(weights, trainable=False)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, 3], tf.float32, name="image"),
            tf.TensorSpec([], tf.float32, name="score_threshold"),
            tf.TensorSpec([None], tf.float32, name="image_scales"),
            tf.TensorSpec([], tf.int32, name="max_feature_num"),
        ]
    )
    def __call__(self, image, score_threshold, image_scales, max_feature_num):
        shape = tf.shape(image)
        height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
        fractions = tf.linspace(0.1, 0.9, GRID)
        ys, xs = tf.meshgrid(fractions * (height - 1.0), fractions * (width - 1.0), indexing="ij")
        locations = tf.stack([tf.reshape(ys, [-1]), tf.reshape(xs, [-1])], axis=1)
        n = tf.minimum(max_feature_num, GRID * GRID)
        n = tf.where(score_threshold > 1e6, 0, n)  # nothing passes a huge threshold, as for a featureless photo
        locations = tf.round(locations[:n])
        pixels = tf.gather_nd(image, tf.cast(locations, tf.int32))  # [n, 3] RGB in [0, 1]
        inputs = tf.concat(
            [pixels, locations[:, :1] / height, locations[:, 1:] / width, tf.ones_like(pixels[:, :1])], axis=1
        )
        descriptors = tf.matmul(inputs, self.weights) * 3.0  # deliberately not unit length
        attention = tf.reduce_mean(pixels, axis=1) + score_threshold * 0.0
        scales = tf.fill([n], image_scales[0])
        return {"locations": locations, "descriptors": descriptors, "scales": scales, "attention": attention}


def save_tiny_model(path, seed: int) -> str:
    """Write the tiny model with weights seeded by ``seed`` to ``path`` (a SavedModel folder); its path."""
    module = TinyDelf(seed)
    tf.saved_model.save(module, str(path), signatures={"default": module.__call__.get_concrete_function()})
    return str(path)


