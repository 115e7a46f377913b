"""Whole OpenMMLab models as graphs ONNX can hold: the network and the post-processing that decides what a
user sees, with the same numbers as the model's own ``predict``.

OpenMMLab's ``predict`` methods branch on data (empty results, per-class loops, tensors sized by how many
boxes pass a threshold) in Python; torch's exporter needs that as tensor operations. Each graph here is a
thin module over a built model that computes the same results with exportable operations only:
``torchvision.ops.nms`` (ONNX ``NonMaxSuppression``) and ``torchvision.ops.roi_align`` (ONNX ``RoiAlign``).
What needs the original image (rescaling boxes, pasting masks, cropping padding) stays outside, in
:func:`mmlit_tools.deploy.to_data_samples`, which reuses the heads' own code.

- :class:`ClassifierGraph` (mmpretrain ``ImageClassifier``): class scores, any batch and image size.
- :class:`SegmentorGraph` (mmseg ``EncoderDecoder``, whole-image inference): logits at the input size.
- :class:`DenseDetectorGraph` (mmdet single-stage detectors with an anchor head, e.g. RetinaNet) and
  :class:`TwoStageDetectorGraph` (RPN + ``StandardRoIHead``: Faster / Mask R-CNN): boxes, scores, labels
  (and the masks of the boxes), one image at a time.

Equalities with ``predict`` the graphs rely on: a box below the score threshold (or of zero size) never
suppresses one above it in greedy NMS, so such boxes may be dropped after NMS instead of before it; the
top-k of all scores holds the top-k of those above a threshold. NMS runs on boxes in the input's
coordinates where mmdet rescales first (the same suppression but for rounding).
"""
import math
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import nms, roi_align


def _batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou: float) -> torch.Tensor:
    """NMS within each group (class or level), as mmcv's ``batched_nms``: groups moved apart by an offset
    larger than every coordinate. The indices kept, by decreasing score."""
    top = torch.cat([boxes.detach().reshape(-1), boxes.new_zeros(1)]).max()  # defined with no boxes
    offsets = groups.to(boxes) * (top + 1)
    return nms(boxes + offsets[:, None], scores, iou)


def _decode(coder, priors: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """mmdet's ``delta2bbox`` (the ``DeltaXYWHBBoxCoder``) without its branch on an empty input: deltas
    (n, 4k) of boxes (n, 4) -> boxes (n, 4k), unclipped."""
    if type(coder).__name__ != 'DeltaXYWHBBoxCoder':
        raise NotImplementedError(f'the export decodes boxes of a DeltaXYWHBBoxCoder, not of a {type(coder).__name__}')
    n, k = deltas.shape[0], deltas.shape[1] // 4
    deltas = deltas.reshape(n, k, 4) * deltas.new_tensor(coder.stds) + deltas.new_tensor(coder.means)
    priors = priors[:, None, :]
    centres, sizes = (priors[..., :2] + priors[..., 2:]) * 0.5, priors[..., 2:] - priors[..., :2]
    shift, scale = sizes * deltas[..., :2], deltas[..., 2:]
    max_ratio = abs(math.log(16 / 1000))  # the coders' wh_ratio_clip
    if coder.add_ctr_clamp:
        shift, scale = shift.clamp(min=-coder.ctr_clamp, max=coder.ctr_clamp), scale.clamp(max=max_ratio)
    else:
        scale = scale.clamp(min=-max_ratio, max=max_ratio)
    centres, sizes = centres + shift, sizes * scale.exp()
    return torch.cat([centres - sizes * 0.5, centres + sizes * 0.5], dim=-1).reshape(n, 4 * k)


def _clip(boxes: torch.Tensor, img_shape: torch.Tensor) -> torch.Tensor:
    """Boxes (..., 4k) clipped to the image (``img_shape``: (h, w)), as the bbox coders' ``max_shape``."""
    limit = img_shape.flip(0).to(boxes).repeat(boxes.shape[-1] // 2)
    return torch.minimum(boxes.clamp(min=0), limit)


def _level_candidates(scores: torch.Tensor, deltas: torch.Tensor, priors: torch.Tensor, nms_pre: int, coder,
                      img_shape: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``nms_pre`` best (prior, class) pairs of one level, decoded: boxes, scores, labels.

    ``scores``: (priors, classes), activated; ``deltas``: (priors, 4)."""
    num_classes = scores.shape[1]
    flat = scores.reshape(-1)
    k = flat.shape[0] if nms_pre <= 0 else torch.sym_min(nms_pre, flat.shape[0])
    top, index = flat.topk(k)
    prior = index // num_classes
    boxes = _clip(_decode(coder, priors[prior], deltas[prior]), img_shape)
    return boxes, top, index % num_classes


def _large_enough(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """mmdet's ``min_bbox_size`` test: both sides longer than ``min_size``."""
    return ((boxes[:, 2] - boxes[:, 0]) > min_size) & ((boxes[:, 3] - boxes[:, 1]) > min_size)


def _dense_predictions(head, cls_scores: Sequence[torch.Tensor], bbox_preds: Sequence[torch.Tensor], cfg,
                       img_shape: torch.Tensor, class_groups: bool) -> Tuple[torch.Tensor, ...]:
    """An anchor head's ``predict_by_feat`` for image 0 of a batch: per level the ``nms_pre`` best, NMS
    across levels (within classes, or within levels for an RPN), the score / size tests, ``max_per_img``."""
    sizes = [score.shape[-2:] for score in cls_scores]
    priors = head.prior_generator.grid_priors(sizes, dtype=cls_scores[0].dtype, device=cls_scores[0].device)
    boxes, scores, groups = [], [], []
    for level, (score, pred, prior) in enumerate(zip(cls_scores, bbox_preds, priors)):
        score = score[0].permute(1, 2, 0).reshape(-1, head.cls_out_channels)
        score = score.sigmoid() if head.use_sigmoid_cls else score.softmax(-1)[:, :-1]
        pred = pred[0].permute(1, 2, 0).reshape(-1, head.bbox_coder.encode_size)
        level_boxes, level_scores, labels = _level_candidates(score, pred, prior, cfg.get('nms_pre', -1),
                                                              head.bbox_coder, img_shape)
        boxes.append(level_boxes)
        scores.append(level_scores)
        groups.append(labels if class_groups else torch.full_like(labels, level))
    boxes, scores, groups = torch.cat(boxes), torch.cat(scores), torch.cat(groups)
    keep = _batched_nms(boxes, scores, groups, cfg.nms.iou_threshold)
    valid = scores[keep] > cfg.get('score_thr', 0) if class_groups else torch.ones_like(keep, dtype=torch.bool)
    if cfg.get('min_bbox_size', -1) >= 0:
        valid = valid & _large_enough(boxes[keep], cfg.min_bbox_size)
    keep = keep[valid][:cfg.max_per_img]
    return boxes[keep], scores[keep], groups[keep]


def _roi_features(extractor, feats: Sequence[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
    """mmdet's ``SingleRoIExtractor`` for the boxes of image 0: each box pooled from the level its scale
    maps to (``map_roi_levels``), with the RoIAlign of the config (torchvision's, the same formula). Every
    level pools every box and a select keeps the right one: fixed shapes for the graph, at the cost of
    pooling num_levels times (small beside the backbone)."""
    layer = extractor.roi_layers[0]
    if getattr(layer, 'pool_mode', 'avg') != 'avg':
        raise NotImplementedError(f'RoIAlign with pool_mode={layer.pool_mode!r} has no ONNX form here')
    rois = torch.cat([boxes.new_zeros(boxes.shape[0], 1), boxes], dim=1)
    levels = extractor.map_roi_levels(rois, extractor.num_inputs)
    pooled = None
    for level in range(extractor.num_inputs):
        level_layer = extractor.roi_layers[level]
        feat = roi_align(feats[level], rois, level_layer.output_size, level_layer.spatial_scale,
                         level_layer.sampling_ratio, level_layer.aligned)
        pooled = feat if pooled is None else torch.where((levels == level)[:, None, None, None], feat, pooled)
    return pooled


def _multiclass_predictions(bbox_head, cls_score: torch.Tensor, bbox_pred: torch.Tensor, rois: torch.Tensor,
                            cfg, img_shape: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """``BBoxHead.predict_by_feat`` without rescaling: decode per class, mmdet's ``multiclass_nms``."""
    scores = cls_score.softmax(-1)
    boxes = _clip(_decode(bbox_head.bbox_coder, rois, bbox_pred), img_shape)
    num_classes = scores.shape[1] - 1
    boxes = boxes.reshape(rois.shape[0], -1, 4).expand(-1, num_classes, -1).reshape(-1, 4)
    labels = torch.arange(num_classes, device=scores.device).repeat(rois.shape[0])
    scores = scores[:, :-1].reshape(-1)
    valid = scores > cfg.score_thr
    boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
    keep = _batched_nms(boxes, scores, labels, cfg.nms.iou_threshold)[:cfg.max_per_img]
    return boxes[keep], scores[keep], labels[keep]


class ClassifierGraph(nn.Module):
    """An mmpretrain ``ImageClassifier``: inputs (N, 3, H, W) -> class scores (N, classes), softmaxed as
    its ``predict`` does."""

    output_names = ('scores', )

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The class scores of each image."""
        return self.model.head(self.model.extract_feat(inputs)).softmax(-1)


def _upsample_by_shape(model: nn.Module) -> None:
    """Make mmseg's ``Upsample`` modules of ``model`` (the FPN head's scale heads) compute their output
    size from the input's shape, with the same results (:mod:`mmlit.deploy.upsample`)."""
    from mmseg.models.utils import Upsample

    from mmlit.deploy import upsample_by_shape

    class ShapeUpsample(Upsample):
        """``Upsample`` whose output size follows the input's shape under ``torch.export``."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """:func:`~mmlit.deploy.upsample_by_shape`."""
            return upsample_by_shape(self, x)

    for module in model.modules():
        if type(module) is Upsample:
            module.__class__ = ShapeUpsample


class SegmentorGraph(nn.Module):
    """An mmseg ``EncoderDecoder`` in whole-image mode: inputs (N, 3, H, W) -> logits (N, classes, H, W),
    resized to the input as the decode head's ``predict``; cropping the padding and resizing to the
    original image is :meth:`postprocess_result`'s, outside."""

    output_names = ('seg_logits', )

    def __init__(self, model: nn.Module):
        super().__init__()
        mode = model.test_cfg.get('mode', 'whole') if model.test_cfg else 'whole'
        if mode != 'whole':
            raise ValueError(f"test_cfg.mode={mode!r}: the export runs whole-image inference; set "
                             "model.test_cfg=dict(mode='whole') (--cfg-options model.test_cfg.mode=whole)")
        _upsample_by_shape(model)
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The logits of each image at the input's size."""
        head = self.model.decode_head
        logits = head.forward(self.model.extract_feat(inputs))
        return F.interpolate(logits, size=inputs.shape[2:], mode='bilinear', align_corners=head.align_corners)


class _DetectorGraph(nn.Module):
    """One image (1, 3, H, W) and its ``img_shape`` (h, w) before padding, int64 -> boxes (n, 4) in the
    input's coordinates, scores (n, ), labels (n, )."""

    output_names: Tuple[str, ...] = ('boxes', 'scores', 'labels')

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model


class DenseDetectorGraph(_DetectorGraph):
    """An mmdet single-stage detector with an anchor head (RetinaNet and the like)."""

    def forward(self, inputs: torch.Tensor, img_shape: torch.Tensor) -> List[torch.Tensor]:
        """Detections of the image."""
        head = self.model.bbox_head
        cls_scores, bbox_preds = head(self.model.extract_feat(inputs))
        return list(_dense_predictions(head, cls_scores, bbox_preds, head.test_cfg, img_shape, class_groups=True))


class TwoStageDetectorGraph(_DetectorGraph):
    """An mmdet two-stage detector with an RPN and a ``StandardRoIHead`` (Faster / Mask R-CNN); with a
    mask head the outputs add ``masks`` (n, h, w): each box's mask probabilities for its label, pasted
    into the image outside."""

    def __init__(self, model: nn.Module):
        super().__init__(model)
        if model.roi_head.with_mask:
            self.output_names = self.output_names + ('masks', )

    def forward(self, inputs: torch.Tensor, img_shape: torch.Tensor) -> List[torch.Tensor]:
        """Detections of the image (and their masks)."""
        model, roi_head = self.model, self.model.roi_head
        feats = model.extract_feat(inputs)
        cls_scores, bbox_preds = model.rpn_head(feats)
        proposals, _, _ = _dense_predictions(model.rpn_head, cls_scores, bbox_preds, model.test_cfg.rpn,
                                             img_shape, class_groups=False)
        roi_feats = _roi_features(roi_head.bbox_roi_extractor, feats, proposals)
        if roi_head.with_shared_head:
            roi_feats = roi_head.shared_head(roi_feats)
        cls_score, bbox_pred = roi_head.bbox_head(roi_feats)
        boxes, scores, labels = _multiclass_predictions(roi_head.bbox_head, cls_score, bbox_pred, proposals,
                                                        roi_head.test_cfg, img_shape)
        if not roi_head.with_mask:
            return [boxes, scores, labels]
        mask_feats = _roi_features(roi_head.mask_roi_extractor, feats, boxes)
        if roi_head.share_roi_extractor is False and roi_head.with_shared_head:
            mask_feats = roi_head.shared_head(mask_feats)
        mask_preds = roi_head.mask_head(mask_feats)
        if not roi_head.mask_head.class_agnostic:
            mask_preds = mask_preds[torch.arange(boxes.shape[0], device=boxes.device), labels]
        else:
            mask_preds = mask_preds[:, 0]
        return [boxes, scores, labels, mask_preds.sigmoid()]


def graph_for(model: nn.Module) -> nn.Module:
    """The graph module of a built OpenMMLab model, by its type.

    Raises:
        NotImplementedError: A model type with no graph here, naming those there are.
    """
    name = type(model).__name__
    if name == 'ImageClassifier':
        return ClassifierGraph(model)
    if name == 'EncoderDecoder':
        return SegmentorGraph(model)
    from mmdet.models.dense_heads import AnchorHead
    if isinstance(getattr(model, 'bbox_head', None), AnchorHead):
        return DenseDetectorGraph(model)
    if hasattr(model, 'rpn_head') and type(getattr(model, 'roi_head', None)).__name__ == 'StandardRoIHead':
        return TwoStageDetectorGraph(model)
    raise NotImplementedError(
        f'No ONNX graph for a {name}: the export covers mmpretrain ImageClassifier, mmseg EncoderDecoder, '
        'mmdet single-stage anchor-head detectors (RetinaNet) and RPN + StandardRoIHead detectors '
        '(Faster / Mask R-CNN)')
