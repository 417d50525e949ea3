"""PriorBox, CENTER_SIZE decoding and NMS of the res10 SSD (maskgate.edge.ssd), without any model."""

import numpy as np
import pytest

from maskgate.edge.ssd import (
    RES10_PRIORS, SSDDecoder, greedy_nms, iou_one_to_many, make_priors, res10_feature_sizes,
)


def test_feature_sizes_at_300_match_the_graph():
    # conv4_3 38x38, fc7 19x19, conv6_2 10x10, and conv7_2 / conv8_2 / conv9_2 all 5x5 in this export
    assert res10_feature_sizes(300, 300) == [(38, 38), (19, 19), (10, 10), (5, 5), (5, 5), (5, 5)]
    assert res10_feature_sizes(224, 168) == [(21, 28), (11, 14), (6, 7), (3, 4), (3, 4), (3, 4)]


def test_prior_count_and_first_cell_follow_opencv_priorbox():
    p = make_priors(300, 300)
    assert p.shape == (8892, 4) and p.dtype == np.float32
    # first cell of conv4_3: centre (4, 4) px; min 30 square, sqrt(30*60) square, 2:1 and 1:2 boxes
    c = 4 / 300
    s = np.sqrt(30 * 60)
    w2, h2 = 30 * np.sqrt(2), 30 / np.sqrt(2)
    expected = np.array([
        [c - 15 / 300, c - 15 / 300, c + 15 / 300, c + 15 / 300],
        [c - s / 600, c - s / 600, c + s / 600, c + s / 600],
        [c - w2 / 600, c - h2 / 600, c + w2 / 600, c + h2 / 600],
        [c - h2 / 600, c - w2 / 600, c + h2 / 600, c + w2 / 600],
    ])
    np.testing.assert_allclose(p[:4], expected, atol=1e-6)


def test_priors_are_normalised_per_axis_for_non_square_inputs():
    p = make_priors(160, 120)
    # first prior: centre (4, 4) px, 30 px square
    np.testing.assert_allclose(p[0], [(4 - 15) / 160, (4 - 15) / 120, (4 + 15) / 160, (4 + 15) / 120], atol=1e-6)
    assert len(p) == sum(r * c * s.boxes_per_cell for (r, c), s in zip(res10_feature_sizes(160, 120), RES10_PRIORS))


def _encode(box, prior, var=(0.1, 0.1, 0.2, 0.2)):
    pw, ph = prior[2] - prior[0], prior[3] - prior[1]
    pcx, pcy = (prior[0] + prior[2]) / 2, (prior[1] + prior[3]) / 2
    bw, bh = box[2] - box[0], box[3] - box[1]
    bcx, bcy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return [(bcx - pcx) / pw / var[0], (bcy - pcy) / ph / var[1], np.log(bw / pw) / var[2], np.log(bh / ph) / var[3]]


def test_center_size_decoding_inverts_the_encoding():
    dec = SSDDecoder(300, 300)
    n = dec.num_priors
    loc = np.zeros((n, 4), np.float32)
    scores = np.zeros(n, np.float32)
    target = np.array([0.30, 0.20, 0.55, 0.60], np.float32)
    i = 1234
    loc[i] = _encode(target, dec.priors[i])
    scores[i] = 0.9
    boxes, s = dec.decode(loc, scores, 0.5)
    assert len(boxes) == 1
    np.testing.assert_allclose(boxes[0], target, atol=1e-5)
    assert s[0] == pytest.approx(0.9)


def test_quantized_loc_is_dequantized_only_where_needed():
    dec = SSDDecoder(300, 300)
    n = dec.num_priors
    target = np.array([0.30, 0.20, 0.55, 0.60], np.float32)
    scale, zp = 0.05, 3
    i = int(np.argmax(iou_one_to_many(target, dec.priors)))  # a prior whose deltas fit the int8 range
    loc_f = np.zeros((n, 4), np.float32)
    loc_f[i] = _encode(target, dec.priors[i])
    assert np.abs(loc_f[i]).max() < 127 * scale
    loc_q = np.clip(np.round(loc_f / scale) + zp, -128, 127).astype(np.int8)
    scores = np.zeros(n, np.float32)
    scores[i] = 0.8
    boxes, _ = dec.decode(loc_q, scores, 0.5, loc_scale=scale, loc_zero_point=zp)
    np.testing.assert_allclose(boxes[0], target, atol=0.01)


def test_nms_keeps_the_best_of_overlapping_boxes_and_separate_ones():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9.5]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    keep = greedy_nms(boxes, scores, 0.45, top_k=10)
    assert keep.tolist() == [0, 2]
    assert greedy_nms(boxes, scores, 0.45, top_k=1).tolist() == [0]


def test_iou_handles_empty_and_degenerate_boxes():
    ious = iou_one_to_many(np.array([0, 0, 2, 2], np.float32), np.array([[1, 1, 3, 3], [5, 5, 5, 5]], np.float32))
    np.testing.assert_allclose(ious, [1 / 7, 0.0])


def test_decoder_rejects_outputs_of_another_input_size():
    dec = SSDDecoder(300, 300)
    with pytest.raises(ValueError, match="8892 priors"):
        dec.decode(np.zeros((100, 4), np.float32), np.zeros(100, np.float32), 0.5)


def test_threshold_before_nms_keeps_the_same_strong_detections():
    """Decoding at the gate's threshold gives exactly the detections above it from a full decode."""
    rng = np.random.default_rng(3)
    dec = SSDDecoder(224, 168)
    n = dec.num_priors
    loc = rng.normal(0, 0.5, (n, 4)).astype(np.float32)
    scores = rng.uniform(0, 1, n).astype(np.float32) ** 6
    full_b, full_s = dec.decode(loc, scores, 0.01)
    b, s = dec.decode(loc, scores, 0.3)
    strong = full_s > 0.3
    # the full decode stops at keep_top_k; compare what both contain
    np.testing.assert_allclose(b[: strong.sum()], full_b[strong][: len(b)])
