"""mmsegmentation's mIoU metric (mmseg.core.evaluation.metrics, 0.x) in numpy, from its definition:
per image, pixels whose label is the ignore index are dropped; the histograms of the prediction, the
label and their agreement count classes 0..K-1 (a prediction outside that range is dropped, as
torch.histc drops it); intersections, predictions and labels are summed over the whole dataset;
IoU = I / (P + L - I), Acc = I / L, aAcc = sum I / sum L, mIoU and mAcc are nan-means (a class absent
from both prediction and label has IoU nan). reduce_zero_label applies to the label only
(0 -> ignored, k -> k - 1)."""
import numpy as np


class SegMetric:
    def __init__(self, num_classes, ignore_index=255, reduce_zero_label=False):
        self.k = num_classes
        self.ignore_index = ignore_index
        self.reduce_zero_label = reduce_zero_label
        self.intersect = np.zeros(num_classes, dtype=np.float64)
        self.pred = np.zeros(num_classes, dtype=np.float64)
        self.label = np.zeros(num_classes, dtype=np.float64)

    def _hist(self, values):
        values = values[(values >= 0) & (values < self.k)]
        return np.bincount(values, minlength=self.k)[:self.k]

    def add(self, pred, label):
        pred = np.asarray(pred).astype(np.int64).ravel()
        label = np.asarray(label).astype(np.int64).ravel()
        if pred.shape != label.shape:
            raise ValueError(f'prediction has {pred.size} pixels, label {label.size}')
        if self.reduce_zero_label:
            label = np.where(label == 0, 255, label - 1)
            label = np.where(label == 254, 255, label)
        keep = label != self.ignore_index
        pred, label = pred[keep], label[keep]
        self.intersect += self._hist(pred[pred == label])
        self.pred += self._hist(pred)
        self.label += self._hist(label)

    def result(self):
        union = self.pred + self.label - self.intersect
        with np.errstate(divide='ignore', invalid='ignore'):
            iou = self.intersect / union
            acc = self.intersect / self.label
        total = self.label.sum()
        nanmean = lambda a: float(np.nanmean(a)) if np.isfinite(a).any() else float('nan')  # noqa: E731
        return {
            'aAcc': float(self.intersect.sum() / total) if total else float('nan'),
            'mIoU': nanmean(iou),
            'mAcc': nanmean(acc),
            'IoU': [None if np.isnan(v) else float(v) for v in iou],
            'Acc': [None if np.isnan(v) else float(v) for v in acc],
        }
