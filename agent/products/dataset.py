"""Labelled product photos for enrolment and evaluation: a folder-per-class tree or a GroceryStoreDataset root.

- folder-per-class: ``DIR/<class>/**/*.jpg`` — every immediate sub-folder is one class (its name is the label);
- GroceryStoreDataset (``marcusklasson/GroceryStoreDataset``, ``dataset/``): a folder holding ``classes.csv``
  and ``<split>.txt`` files (``relative/path.jpg, fine_id, coarse_id``); labels are the fine class names.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for c in ("apple", "kiwi"):
    ...     (root / c).mkdir(); _ = (root / c / "1.jpg").write_bytes(b"")
    >>> [(p.name, label) for p, label in load_labelled(root)]
    [('1.jpg', 'apple'), ('1.jpg', 'kiwi')]
"""

from __future__ import annotations

import csv
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}

Sample = tuple[Path, str]


class DatasetError(ValueError):
    """A folder that is neither a folder-per-class tree nor a GroceryStoreDataset root with the split."""


def is_grocery_root(root: Path) -> bool:
    """True when ``root`` looks like a GroceryStoreDataset ``dataset/`` folder."""
    return (root / "classes.csv").is_file() and any((root / f"{s}.txt").is_file() for s in ("train", "val", "test"))


def grocery_classes(root: Path) -> dict[int, str]:
    """Fine class id → name from ``classes.csv``."""
    with open(root / "classes.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return {int(r[1]): r[0].strip() for r in rows[1:] if len(r) >= 2 and r[1].strip().isdigit()}


def load_grocery(root: Path, split: str) -> list[Sample]:
    """``(image path, fine class name)`` for every line of ``root/<split>.txt``, in file order."""
    split_file = root / f"{split}.txt"
    if not split_file.is_file():
        raise DatasetError(f"{root} has no {split}.txt (GroceryStoreDataset splits: train, val, test)")
    names = grocery_classes(root)
    samples: list[Sample] = []
    for line in split_file.read_text(encoding="utf-8").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        samples.append((root / parts[0], names.get(int(parts[1]), parts[1])))
    return samples


def load_folders(root: Path) -> list[Sample]:
    """``(image path, class)`` for a folder-per-class tree, sorted by class then path."""
    samples: list[Sample] = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(class_dir.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                samples.append((path, class_dir.name))
    return samples


def load_labelled(root: Path | str, split: str | None = None) -> list[Sample]:
    """Samples of ``root``: a GroceryStoreDataset root (``split`` required, e.g. ``train``) or a folder tree."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    if is_grocery_root(root):
        if not split:
            raise DatasetError(f"{root} is a GroceryStoreDataset root: name the split (--gallery-split train / "
                               "--query-split val)")
        return load_grocery(root, split)
    samples = load_folders(root)
    if not samples:
        raise DatasetError(f"{root} holds no images in class sub-folders (expected DIR/<class>/*.jpg)")
    return samples


def images_in(folder: Path | str) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted)."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
