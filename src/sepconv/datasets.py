"""Real images that need no download: scikit-learn's 8x8 handwritten digits, split deterministically.

The digits (1,797 images of 8x8 pixels, 10 classes, from the UCI "Optical Recognition of
Handwritten Digits" set) ship inside the scikit-learn wheel, so nothing is fetched at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INSTALL_HINT = 'pip install "sepconv[demo]"'


@dataclass(frozen=True)
class ImageSplit:
    """A train/test split of NHWC float32 images in ``[0, 1]`` with integer labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int

    def describe(self) -> str:
        """One line: name, image shape, sizes of the two parts.

        Examples
        --------
        >>> import numpy as np
        >>> split = ImageSplit("toy", np.zeros((3, 8, 8, 1)), np.zeros(3, int), np.zeros((1, 8, 8, 1)), np.zeros(1, int), 2)
        >>> split.describe()
        'toy: 8x8x1 images, 2 classes, 3 train / 1 test'
        """
        h, w, c = self.x_train.shape[1:]
        return f"{self.name}: {h}x{w}x{c} images, {self.classes} classes, {len(self.x_train)} train / {len(self.x_test)} test"


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)``: each class contributes ``round(test_fraction * count)`` test examples,
    chosen by ``np.random.default_rng(seed)``; both parts come back shuffled.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([0] * 10 + [1] * 20)
    >>> train, test = stratified_split(labels, 0.2, seed=0)
    >>> len(train), len(test), np.bincount(labels[test]).tolist()
    (24, 6, [2, 4])
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"stratified_split: `test_fraction` must be in (0, 1), got test_fraction={test_fraction!r}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(test_fraction * len(members)))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> ImageSplit:
    """scikit-learn's handwritten digits as ``[N, 8, 8, 1]`` float32 in ``[0, 1]``, stratified split.

    Parameters
    ----------
    test_fraction : float
        Share of each class held out for testing.
    seed : int
        Seeds the split: the same seed gives the same split.

    Raises
    ------
    ImportError
        scikit-learn is not installed; the message says how to install it.

    Examples
    --------
    >>> split = load_digits(seed=0)
    >>> split.describe()
    'digits: 8x8x1 images, 10 classes, 1438 train / 359 test'
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:
        raise ImportError(f"the demo's data comes with scikit-learn: {INSTALL_HINT}") from error
    digits = sklearn_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    labels = digits.target.astype(np.int64)
    train, test = stratified_split(labels, test_fraction, seed)
    return ImageSplit("digits", images[train], labels[train], images[test], labels[test], classes=10)
