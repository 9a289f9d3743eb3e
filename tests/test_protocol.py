"""The long-tail counts and the standard split (the CISSL protocol of DARP, ABC, ACR and SeMi)."""

import numpy as np
import pytest

from semi.data.protocol import longtail_counts, make_split, unlabeled_counts
from semi.errors import DataError

CIFAR10_LABELED = [1500, 899, 539, 323, 193, 116, 69, 41, 25, 15]
CIFAR10_UNLABELED = [3000, 1798, 1078, 646, 387, 232, 139, 83, 50, 30]


def test_cifar10_lt_counts_match_the_literature():
    assert longtail_counts(1500, 100, 10) == CIFAR10_LABELED
    assert sum(CIFAR10_LABELED) == 3720
    assert unlabeled_counts(3000, 100, None, "consistent", 10) == CIFAR10_UNLABELED
    assert sum(CIFAR10_UNLABELED) == 7443


def test_unlabeled_settings():
    assert unlabeled_counts(3000, 100, None, "reversed", 10) == CIFAR10_UNLABELED[::-1]
    assert unlabeled_counts(3000, 100, None, "uniform", 10) == [3000] * 10
    assert unlabeled_counts(4000, 100, None, "consistent", 10)[-1] == 40


def test_cifar100_lt_total():
    assert sum(longtail_counts(150, 10, 100)) == 5835
    assert longtail_counts(150, 10, 100)[0] == 150 and longtail_counts(150, 10, 100)[-1] == 15


def test_gamma_below_one_is_refused():
    with pytest.raises(DataError, match="must be >= 1"):
        longtail_counts(10, 0.5, 3)


def _labels(per_class: int, classes: int) -> np.ndarray:
    # interleaved classes 0,1,2,0,1,2,... so "first N_k of class k" is not "first N rows"
    return np.tile(np.arange(classes), per_class)


def test_split_takes_the_first_images_of_each_class_and_pool_includes_labeled():
    labels = _labels(10, 3)
    split = make_split(labels, 3, [4, 2, 1], [3, 2, 1])
    assert split.labeled.tolist() == [0, 3, 6, 9, 1, 4, 2]
    assert sorted(split.unlabeled.tolist()) == sorted([0, 3, 6, 9, 12, 15, 18, 1, 4, 7, 10, 2, 5])
    assert set(split.labeled) <= set(split.unlabeled)
    assert len(split.validation) == 0


def test_split_validation_is_balanced_and_disjoint():
    labels = _labels(10, 3)
    split = make_split(labels, 3, [4, 2, 1], [3, 2, 1], val_per_class=2)
    assert np.bincount(labels[split.validation]).tolist() == [2, 2, 2]
    assert not set(split.validation) & set(split.unlabeled)
    # the labeled/unlabeled sets do not change when a validation split is added
    plain = make_split(labels, 3, [4, 2, 1], [3, 2, 1])
    assert split.labeled.tolist() == plain.labeled.tolist()


def test_shuffled_split_is_seeded():
    labels = _labels(20, 2)
    a = make_split(labels, 2, [5, 2], [5, 2], order="shuffle", seed=1)
    b = make_split(labels, 2, [5, 2], [5, 2], order="shuffle", seed=1)
    c = make_split(labels, 2, [5, 2], [5, 2], order="shuffle", seed=2)
    assert a.digest() == b.digest() != c.digest()
    assert np.bincount(labels[a.labeled]).tolist() == [5, 2]


def test_split_errors_name_the_class():
    labels = _labels(5, 2)
    with pytest.raises(DataError, match=r"class 0 \(zero\) needs 4 labeled \+ 3 unlabeled images but has 5"):
        make_split(labels, 2, [4, 1], [3, 1], names=["zero", "one"])
    with pytest.raises(DataError, match="class 1 .* gets 0 labeled images"):
        make_split(labels, 2, [4, 0], [1, 1])


def test_a_budget_that_does_not_fit_is_refused_not_overlapped():
    """A derived unlabeled budget below zero (a class smaller than its labeled + validation images) must fail,
    not hand the labeled image to the validation split."""
    labels = np.array([0] * 5 + [1] * 20)
    with pytest.raises(DataError, match="class 0"):
        make_split(labels, 2, [1, 2], [-6, 8], val_per_class=10)


def test_simpro_middle_and_head_tail_counts():
    """CIFAR-10, M_1 = 3000, gamma 100: the consistent list permuted as SimPro's released code does."""
    from semi.data.protocol import unlabeled_counts

    assert unlabeled_counts(3000, 100, None, "middle", 10) == [50, 139, 387, 1078, 3000, 1798, 646, 232, 83, 30]
    assert unlabeled_counts(3000, 100, None, "head_tail", 10) == [1798, 646, 232, 83, 30, 50, 139, 387, 1078, 3000]
    assert sorted(unlabeled_counts(3000, 100, None, "middle", 7)) == sorted(unlabeled_counts(3000, 100, None,
                                                                                             "consistent", 7))
