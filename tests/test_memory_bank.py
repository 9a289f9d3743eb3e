"""The vectorised bank equals a naive one-at-a-time reference (the pattern of the authors' script)."""

import pytest
import torch

from semi.algorithms.components.memory_bank import ClassBalancedMemoryBank


class NaiveBank:
    """Offer candidates one by one: a candidate enters its class's row if its confidence is strictly higher than
    the row's lowest, replacing it (among tied lowest entries, the most recently inserted goes)."""

    def __init__(self, classes: int, size: int):
        self.rows = [[] for _ in range(classes)]  # entries: [conf, stamp, emb, fresh]
        self.size = size
        self.stamp = 0

    def insert(self, emb, labels, conf, valid):
        for i in range(len(labels)):
            if not valid[i]:
                continue
            row, entry = self.rows[int(labels[i])], [float(conf[i]), self.stamp, emb[i].clone(), True]
            self.stamp += 1
            if len(row) < self.size:
                row.append(entry)
            else:
                lowest = min(e[0] for e in row)
                if entry[0] > lowest:
                    victim = max((e for e in row if e[0] == lowest), key=lambda e: e[1])
                    row[row.index(victim)] = entry

    def decay(self, beta):
        for row in self.rows:
            for e in row:
                if not e[3]:
                    e[0] = float(torch.tensor(e[0]) * beta)  # float32 arithmetic, like the bank
                e[3] = False


def bank_rows(bank: ClassBalancedMemoryBank):
    out = []
    for k in range(bank.num_classes):
        filled = bank.filled[k]
        entries = sorted(zip(bank.confidence[k][filled].tolist(), bank.embeddings[k][filled].tolist(),
                             bank.fresh[k][filled].tolist()))
        out.append(entries)
    return out


def naive_rows(naive: NaiveBank):
    return [sorted((e[0], e[2].tolist(), e[3]) for e in row) for row in naive.rows]


@pytest.mark.parametrize("sync_free", [False, True])
@pytest.mark.parametrize("seed", range(25))
def test_vectorised_insert_and_decay_match_the_naive_reference(seed, sync_free):
    g = torch.Generator().manual_seed(seed)
    classes = int(torch.randint(1, 6, (1,), generator=g))
    size = int(torch.randint(1, 7, (1,), generator=g))
    dim = 3
    bank, naive = ClassBalancedMemoryBank(classes, size, dim), NaiveBank(classes, size)
    for step in range(12):
        n = int(torch.randint(0, 20, (1,), generator=g))
        emb = torch.randn(n, dim, generator=g)
        labels = torch.randint(0, classes, (n,), generator=g)
        # few distinct values so that ties (with each other and with stored entries) are common
        conf = torch.randint(0, 5, (n,), generator=g).float() / 4
        valid = torch.rand(n, generator=g) < 0.7 if step % 4 else torch.zeros(n, dtype=torch.bool)
        bank.insert(emb, labels, conf, valid, sync_free=sync_free)
        naive.insert(emb, labels, conf, valid)
        if step % 3 == 2:
            bank.decay(0.5)
            naive.decay(0.5)
        assert bank_rows(bank) == naive_rows(naive)


def test_decay_touches_exactly_the_stale_entries():
    bank = ClassBalancedMemoryBank(2, 3, 2)
    bank.insert(torch.ones(2, 2), torch.tensor([0, 1]), torch.tensor([0.8, 0.6]))
    bank.decay(0.99)  # both were inserted since the last decay: unchanged, flags cleared
    assert bank.confidence[bank.filled].tolist() == pytest.approx([0.8, 0.6])
    bank.insert(torch.ones(1, 2), torch.tensor([0]), torch.tensor([0.5]))
    bank.decay(0.99)  # the two old entries decay, the new one does not
    assert sorted(bank.confidence[0][bank.filled[0]].tolist()) == pytest.approx([0.5, 0.8 * 0.99])
    assert bank.confidence[1][bank.filled[1]].tolist() == pytest.approx([0.6 * 0.99])
    assert not bank.fresh.any()


def test_full_row_keeps_the_most_confident_and_prototypes_use_filled_slots_only():
    bank = ClassBalancedMemoryBank(3, 2, 2)
    emb = torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 0.0], [0.0, 2.0]])
    bank.insert(emb, torch.tensor([0, 0, 0, 1]), torch.tensor([0.9, 0.5, 0.7, 0.8]))
    assert sorted(bank.confidence[0].tolist()) == pytest.approx([0.7, 0.9])
    centres, available = bank.prototypes()
    assert available.tolist() == [True, True, False]
    assert centres[0].tolist() == pytest.approx([3.0, 0.0])  # mean of the kept (1,0) and (5,0)
    assert centres[1].tolist() == pytest.approx([0.0, 2.0])  # one filled slot, not averaged with an empty one
    assert bank.fill_counts().tolist() == [2, 1, 0]


def test_running_sums_match_a_recompute_after_many_inserts():
    g = torch.Generator().manual_seed(0)
    bank = ClassBalancedMemoryBank(4, 8, 16)
    for _ in range(50):
        bank.insert(torch.randn(32, 16, generator=g), torch.randint(0, 4, (32,), generator=g),
                    torch.rand(32, generator=g))
    running = bank.class_sum.clone()
    bank.recompute_sums()
    assert torch.allclose(running, bank.class_sum, atol=1e-4)


def test_empty_inputs_do_nothing():
    bank = ClassBalancedMemoryBank(2, 2, 2)
    bank.insert(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), torch.zeros(0))
    bank.insert(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), torch.ones(3), torch.zeros(3, dtype=torch.bool))
    assert not bank.filled.any()


def test_sync_free_insert_leaves_the_same_state_as_the_nonzero_pairing():
    """The same offers to two banks, one pairing slots by nonzero(), one by ranks (what CUDA uses): every buffer
    agrees (slot positions included, as both fill a row's evicted slots in slot order), and so do the running sums."""
    g = torch.Generator().manual_seed(3)
    a, b = ClassBalancedMemoryBank(5, 6, 4), ClassBalancedMemoryBank(5, 6, 4)
    for step in range(30):
        n = int(torch.randint(0, 40, (1,), generator=g))
        args = (torch.randn(n, 4, generator=g), torch.randint(0, 5, (n,), generator=g),
                torch.randint(0, 6, (n,), generator=g).float() / 5, torch.rand(n, generator=g) < 0.6,
                torch.randint(-1, 5, (n,), generator=g))
        a.insert(*args[:4], truth=args[4], sync_free=False)
        b.insert(*args[:4], truth=args[4], sync_free=True)
        if step % 7 == 6:
            a.decay(0.9)
            b.decay(0.9)
        for name in ("embeddings", "confidence", "fresh", "keys", "truth", "offered"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert torch.allclose(a.class_sum, b.class_sum, atol=1e-5)


def test_sync_free_insert_keeps_a_non_finite_candidate_that_does_not_enter_out():
    bank = ClassBalancedMemoryBank(2, 2, 2)
    bank.insert(torch.ones(2, 2), torch.tensor([0, 1]), torch.tensor([0.9, 0.9]), sync_free=True)
    bank.insert(torch.full((1, 2), float("nan")), torch.tensor([0]), torch.tensor([0.5]),
                torch.tensor([False]), sync_free=True)
    assert torch.isfinite(bank.embeddings).all() and torch.isfinite(bank.class_sum).all()
