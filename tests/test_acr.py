"""ACR's adaptive tau1 and unlabeled-distribution estimate against a transcription of ACR's released training loop,
and the dual-head base (SeMi's authors' base) that makes the raw standard-head pseudo-label."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from semi.algorithms.acr import ACR
from semi.algorithms.base import StepInfo
from semi.algorithms.dual_head import DualHead
from semi.config import Config
from semi.models.heads import ModelOutput

C, B, EST_EPOCH, EPOCHS, SPE = 4, 12, 1, 5, 3
PRIOR = torch.tensor([8.0, 4.0, 2.0, 1.0])


def fixed_batches(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(balanced-head argmax, balanced-head confident, also-labeled) for EPOCHS * SPE steps. Within a batch all images
    predicted as one class agree on 'confident and not labeled', so ACR's `now_mask[targets] += mask` (one write per
    class, which one unspecified) is well defined. Step 7 (in the first estimating epoch) counts nothing: ACR
    skips its update and KL there but still divides by the steps per epoch."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for step in range(EPOCHS * SPE):
        target = torch.multinomial(torch.tensor([0.4, 0.3, 0.2, 0.1]), B, replacement=True, generator=g)
        counted_class = torch.rand(C, generator=g) < 0.6
        if step == 7:
            counted_class[:] = False
        counted = counted_class[target]
        # a not-counted image is either unconfident, or confident but also labeled (left out of the estimate)
        labeled_if_rejected = torch.rand(B, generator=g) < 0.5
        confident = counted | labeled_if_rejected
        labeled = ~counted & labeled_if_rejected
        out.append((target, confident, labeled))
    return out


def acr_released_loop(batches, prior, ema_u=0.99, taumin=0.0, taumax=2.0):
    """A transcription of ACR's train.py (tau1 and the estimate only): returns tau per epoch and u_py per step."""
    py_con = prior / prior.sum()
    py_uni = torch.ones(C) / C
    py_rev = torch.flip(py_con, dims=[0])
    u_py = torch.ones(C) / C
    tau = taumax
    count_KL = torch.zeros(3)
    taus, estimates = [], []

    def kl_div(log_input, target):  # nn.KLDivLoss(reduction='sum')
        return F.kl_div(log_input, target, reduction="sum")

    it = iter(batches)
    for epoch in range(EPOCHS):
        if epoch > EST_EPOCH:
            count_KL = count_KL / SPE
            KL_softmax = torch.exp(count_KL[0]) / (torch.exp(count_KL[0]) + torch.exp(count_KL[1])
                                                   + torch.exp(count_KL[2]))
            tau = taumin + (taumax - taumin) * KL_softmax
        count_KL = torch.zeros(3)
        taus.append(float(tau))
        for _ in range(SPE):
            targets_u_b, mask_b, labeled = next(it)
            mask_l = (~labeled).float()
            now_mask = torch.zeros(C)
            if epoch > EST_EPOCH:
                now_mask[targets_u_b] += mask_l * mask_b.float()
                if now_mask.sum() > 0:
                    now_mask = now_mask / now_mask.sum()
                    u_py = ema_u * u_py + (1 - ema_u) * now_mask
                    KL_con = 0.5 * kl_div(py_con.log(), u_py) + 0.5 * kl_div(u_py.log(), py_con)
                    KL_uni = 0.5 * kl_div(py_uni.log(), u_py) + 0.5 * kl_div(u_py.log(), py_uni)
                    KL_rev = 0.5 * kl_div(py_rev.log(), u_py) + 0.5 * kl_div(u_py.log(), py_rev)
                    count_KL[0] = count_KL[0] + KL_con
                    count_KL[1] = count_KL[1] + KL_uni
                    count_KL[2] = count_KL[2] + KL_rev
            estimates.append(u_py.clone())
    return taus, estimates


def make_acr(**algorithm) -> ACR:
    cfg = Config()
    cfg.train.steps_per_epoch, cfg.train.epochs = SPE, EPOCHS
    cfg.algorithm.est_epoch = EST_EPOCH
    for k, v in algorithm.items():
        setattr(cfg.algorithm, k, v)
    return ACR(cfg, C, PRIOR, [])


def run_ours(acr: ACR, batches) -> tuple[list[float], list[torch.Tensor]]:
    taus, estimates = [], []
    for step, (target, confident, labeled) in enumerate(batches):
        info = StepInfo(step=step, epoch=step // SPE, total_steps=EPOCHS * SPE, total_epochs=EPOCHS)
        if step % SPE == 0:
            acr.on_epoch_start(info.epoch)
            taus.append(float(acr.tau1))
        # (standard-head debiased target, its mask, balanced-head target, balanced-head confidence: 1 or 0 here)
        pl = SimpleNamespace(notes={"balanced": (target, confident, target, confident.float())})
        acr.observe(pl, None, {"u_is_labeled": labeled}, info, {})
        estimates.append(acr.u_estimate.clone())
    return taus, estimates


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_acr_tau1_and_estimate_match_the_released_loop(seed):
    batches = fixed_batches(seed)
    ref_taus, ref_estimates = acr_released_loop(batches, PRIOR)
    taus, estimates = run_ours(make_acr(), batches)
    assert taus[: EST_EPOCH + 1] == [2.0] * (EST_EPOCH + 1)  # the full correction before estimation
    assert taus[EST_EPOCH + 1] == pytest.approx(2 / 3)  # first estimating epoch: zero sums, softmax 1/3
    assert taus == pytest.approx(ref_taus, abs=1e-6)
    for step, (ours, ref) in enumerate(zip(estimates, ref_estimates)):
        assert torch.allclose(ours, ref.float(), atol=1e-6), step
    assert len(set(taus[EST_EPOCH + 2:])) > 1  # the schedule moves: the test would see a frozen tau1


def test_acr_earlier_choices_stay_options_and_differ():
    """Our earlier conventions (tau1 held until an estimate, every image counted, the full Jeffreys sum, EMA 0.9)
    give another schedule: tau1 = 2 through the first estimating epoch."""
    batches = fixed_batches(0)
    old = make_acr(tau1_schedule="after_first_estimate", estimate_counting="images", symmetric_kl="sum",
                   est_momentum=0.9)
    taus, _ = run_ours(old, batches)
    assert taus[EST_EPOCH + 1] == 2.0
    ref_taus, _ = acr_released_loop(batches, PRIOR)
    assert taus[EST_EPOCH + 2:] != pytest.approx(ref_taus[EST_EPOCH + 2:], abs=1e-3)


@pytest.mark.parametrize("estimate_threshold, expected", [
    (None, [0.25, 0.25, 0.25, 0.25]),  # the step's threshold 0.7: every class present, the uniform estimate kept
    (0.95, [0.2525, 0.2475, 0.2475, 0.2525]),  # only classes 0 and 3 reach 0.95: 0.99 * 1/4 + 0.01 * 1/2 or 0
])
def test_acr_estimate_threshold_decouples_the_estimate_from_the_mask(estimate_threshold, expected):
    """A component that lowers the step's threshold (here the base's own, 0.7) lowers the estimate's bar with it
    unless `algorithm.estimate_threshold` holds it (one hand-made batch in an estimating epoch, presence counts)."""
    acr = make_acr(threshold=0.7, estimate_threshold=estimate_threshold)
    target = torch.tensor([0, 0, 1, 2, 3])
    conf_b = torch.tensor([0.99, 0.97, 0.8, 0.75, 0.99])
    pl = SimpleNamespace(notes={"balanced": (target, conf_b >= 0.7, target, conf_b)})
    info = StepInfo(step=2 * SPE, epoch=2, total_steps=EPOCHS * SPE, total_epochs=EPOCHS)
    acr.observe(pl, None, {"u_is_labeled": torch.zeros(5, dtype=torch.bool)}, info, {})
    assert acr.u_estimate.tolist() == pytest.approx(expected, abs=1e-7)


def test_acr_pseudo_label_uses_tau1_of_the_epoch():
    acr = make_acr()
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0]])
    weak = ModelOutput(torch.zeros(1, 3), logits, logits)
    info = StepInfo(step=EST_EPOCH + 1, epoch=EST_EPOCH + 1, total_steps=EPOCHS * SPE, total_epochs=EPOCHS)
    acr.on_epoch_start(EST_EPOCH + 1)
    pl = acr.pseudo_labels(weak, info)
    log_prior = torch.log(PRIOR / PRIOR.sum())
    assert torch.allclose(pl.probs, torch.softmax(logits - (2 / 3) * log_prior, dim=1), atol=1e-6)
    assert torch.allclose(pl.raw_probs, torch.softmax(logits, dim=1))


def test_semi_is_the_dual_head_base_with_the_raw_standard_head_pseudo_label():
    """`semi` = dualhead+semi: the standard head's pseudo-label is softmax(g1) (tau1 = 0 throughout, the authors'
    `pula = 0`), while ACR's is debiased by tau1 = 2 at the start."""
    from semi.algorithms.registry import build_algorithm

    cfg = Config()
    cfg.algorithm.name = "semi"
    algo = build_algorithm(cfg, C, PRIOR, embed_dim=3)
    assert type(algo) is DualHead and len(algo.components) == 4
    assert algo.threshold == 0.7 and algo.eval_head == "balanced" and algo.trains_balanced_head
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0], [0.0, 0.1, 0.2, 0.3]])
    weak = ModelOutput(torch.zeros(2, 3), logits, logits)
    info = StepInfo(step=0, epoch=0, total_steps=100, total_epochs=10)
    pl = algo.pseudo_labels(weak, info)
    assert torch.allclose(pl.probs, torch.softmax(logits, dim=1)) and pl.raw_probs is pl.probs
    assert pl.target.tolist() == [0, 3]
    acr_pl = make_acr().pseudo_labels(weak, info)
    assert acr_pl.target.tolist() == [3, 3]  # tau1 = 2 pushes both to the rarest class: a different base
    cfg.algorithm.name = "acr+semi"
    assert type(build_algorithm(cfg, C, PRIOR, embed_dim=3)) is ACR


def test_dual_head_losses_on_a_hand_made_batch():
    """L_u (raw softmax targets, OR-mask of the same confidence) and L_u^b (targets from g1 - tau12 log pi, OR-mask with
    the balanced head's confidence), each the mean over the batch of the two strong views' masked CE."""
    from semi.algorithms.base import Views

    cfg = Config()
    cfg.algorithm.name = "dualhead"
    algo = DualHead(cfg, 2, torch.tensor([3.0, 1.0]), [])
    g1 = torch.tensor([[4.0, 0.0], [0.5, 0.0], [0.0, 0.2]])
    g2 = torch.tensor([[0.0, 0.0], [0.0, 4.0], [0.0, 0.0]])
    weak = ModelOutput(torch.zeros(3, 2), g1, g2)
    s_logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.3, 0.3]])
    strong = ModelOutput(torch.zeros(3, 2), s_logits, s_logits)
    views = Views(weak, weak, (strong, strong))
    info = StepInfo(step=0, epoch=0, total_steps=10, total_epochs=1)
    pl = algo.pseudo_labels(weak, info)
    assert pl.mask.tolist() == [True, False, False] and pl.target.tolist()[0] == 0
    losses = algo.base_unlabeled_losses(views, pl, {}, info, {})
    # p12 = softmax(g1 - 2 log(0.75, 0.25)): row 0 -> class 0 (4 + 0.575 - 2.773 > 0), conf 0.858 < 0.95 but the
    # balanced head is unsure (0.5); row 1 -> class 1, balanced head 0.982 >= 0.95 opens the mask.
    p12 = torch.softmax(g1 - 2 * torch.log(torch.tensor([0.75, 0.25])), dim=1)
    assert p12[0].max() < 0.95 and p12.argmax(1).tolist() == [0, 1, 1]
    expected = F.cross_entropy(s_logits[1:2], torch.tensor([1])) / 3  # only row 1 passes; mean over 3 images
    assert losses["unsup_bal"].item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("schedule, expected", [("always", [0.7, 0.7, 0.7]), ("after_warmup", [0.95, 0.95, 0.7])])
def test_semi_threshold_schedule(schedule, expected):
    """SeMi's 0.7 from the first step (the authors' commands), or the base's 0.95 until the warm-up ends (epoch index
    > semi.warmup_epochs = 1); the bases alone always use 0.95."""
    from semi.algorithms.registry import build_algorithm

    cfg = Config()
    cfg.algorithm.name, cfg.semi.warmup_epochs, cfg.semi.threshold_schedule = "semi", 1, schedule
    algo = build_algorithm(cfg, C, PRIOR, embed_dim=3)
    infos = [StepInfo(step=e * 10, epoch=e, total_steps=100, total_epochs=10) for e in range(3)]
    assert [algo.threshold_for(i) for i in infos] == expected
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0]])  # confidence 0.77: passes 0.7, not 0.95
    weak = ModelOutput(torch.zeros(1, 3), logits, logits)
    assert [bool(algo.pseudo_labels(weak, i).mask) for i in infos] == [t == 0.7 for t in expected]
    cfg.algorithm.name = "dualhead"
    assert build_algorithm(cfg, C, PRIOR, embed_dim=3).threshold_for(infos[2]) == 0.95
