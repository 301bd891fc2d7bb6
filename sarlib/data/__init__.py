"""Datasets (one registry, one reader per on-disk format), their transforms, samplers, subsets, and the
embedded synthetic sets.

    from sarlib.data import build_dataset
    train = build_dataset("cifar100", split="train", root="/data", transform=...)
"""

from .datasets import build_dataset, build_segmentation_dataset
from .registry import (CLASSIFICATION_DATASETS, DATASETS, IMAGENET100_SHA256, SEGMENTATION_DATASETS, SPLITS,
                       VOC_IMAGE_SIZE, VOC_MASK_FOLDERS, VOID_ID, ClassListIntegrityError, DatasetInfo,
                       DatasetLayoutError, describe_layouts, imagenet100_classes, is_synthetic)
from .samples import CorruptImageError, GuardedSamples, ImageListDataset, SampleError

__all__ = ["CLASSIFICATION_DATASETS", "DATASETS", "IMAGENET100_SHA256", "SEGMENTATION_DATASETS", "SPLITS",
           "VOC_IMAGE_SIZE", "VOC_MASK_FOLDERS", "VOID_ID", "ClassListIntegrityError", "CorruptImageError", "DatasetInfo",
           "DatasetLayoutError", "GuardedSamples", "ImageListDataset", "SampleError", "build_dataset",
           "build_segmentation_dataset", "describe_layouts", "imagenet100_classes", "is_synthetic"]
