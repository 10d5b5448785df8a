"""OST loss and the switch control machine (GHOST, Zhang et al., IEEE TGRS 2023, arXiv 2301.00131)."""

import torch

from edgefl.ghost.ost import OSTLoss, attention_map, gumbel_sigmoid_hard

SHAPES = [(8, 12, 12), (16, 6, 6), (32, 3, 3)]  # L layers with different C/H/W


def _feats(seed, batch=6, grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, *s, generator=g).requires_grad_(grad) for s in SHAPES]


def _loss(**kw):
    torch.manual_seed(0)
    chans = [s[0] for s in SHAPES]
    return OSTLoss(chans, chans, qk_dim=16, **kw)


def test_attention_map_is_unit_norm_per_sample():
    a = attention_map(torch.randn(4, 8, 5, 5))
    assert a.shape == (4, 25)
    assert torch.allclose(a.norm(dim=1), torch.ones(4))


def test_gate_extremes():
    big = torch.full((3, 4), 1e4)
    hard, soft = gumbel_sigmoid_hard(big)
    assert torch.equal(hard, torch.ones(3, 4))
    hard, _ = gumbel_sigmoid_hard(-big)
    assert torch.equal(hard, torch.zeros(3, 4))
    hard, _ = gumbel_sigmoid_hard(torch.randn(50, 7) * 3)
    assert set(hard.unique().tolist()) <= {0.0, 1.0}  # binary in the forward pass


def test_all_gates_closed_gives_zero_loss_and_open_gives_the_plain_mismatch():
    fs, ft = _feats(1), _feats(2)
    loss, info = _loss(gate_mode="closed")(fs, ft)
    assert loss.item() == 0.0 and info["ost"].item() == 0.0
    _, info = _loss(gate_mode="open")(fs, ft)
    expected = sum((attention_map(s) - attention_map(t)).pow(2).mean() for s, t in zip(fs, ft))
    assert torch.allclose(info["ost"], expected)
    assert torch.equal(info["open_rate"], torch.ones(len(SHAPES)))


def _force_scm(crit, sign):
    """Make every SCM logit ±(huge): key = 1 (BN weight 0, bias 1), query = sign·100."""
    for key, query in zip(crit.scm.key, crit.scm.query):
        key[1].weight.data.zero_()
        key[1].bias.data.fill_(1.0)
        query[1].weight.data.zero_()
        query[1].bias.data.fill_(100.0 * sign)


def test_scm_at_its_extremes_switches_the_whole_loss_on_and_off():
    fs, ft = _feats(3), _feats(4)
    crit = _loss(gate_margin=0.0)
    _force_scm(crit, -1)
    loss, info = crit(fs, ft)
    assert loss.item() == 0.0 and torch.equal(info["open_rate"], torch.zeros(len(SHAPES)))
    _force_scm(crit, +1)
    _, info = crit(fs, ft)
    _, plain = _loss(gate_mode="open")(fs, ft)
    assert torch.equal(info["open_rate"], torch.ones(len(SHAPES)))
    assert torch.allclose(info["ost"], plain["ost"])


def test_student_features_get_gradient_and_teacher_none():
    fs, ft = _feats(5, grad=True), _feats(6, grad=True)
    loss, _ = _loss(gate_mode="open")(fs, ft)
    loss.backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in fs)
    assert all(f.grad is None for f in ft)


def test_gate_parameters_receive_gradients_and_move():
    crit = _loss()
    params = [p for p in crit.parameters() if p.requires_grad]
    assert params, "gates must be trainable by default"
    before = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(params, lr=0.5)
    for step in range(5):
        fs, ft = _feats(10 + step), _feats(20 + step)
        loss, _ = crit(fs, [t * 0.5 for t in ft])
        opt.zero_grad()
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
        opt.step()
    moved = [not torch.equal(b, p.detach()) for b, p in zip(before, params)]
    assert sum(moved) >= len(params) // 2


def test_frozen_gates_reproduce_the_official_quirk():
    crit = _loss(trainable_gates=False)
    assert not any(p.requires_grad for p in crit.parameters())


def test_margin_opens_low_mismatch_gates_and_closes_outliers():
    """The gate gradient is kd·(D − margin·mean D): negative (open) below the mean, positive above."""
    torch.manual_seed(0)
    crit = OSTLoss([4], [4], qk_dim=8, gate_margin=1.0)
    logits = torch.zeros(4, 1, requires_grad=True)
    crit.scm.logits = lambda t, s: logits  # observe the gradient reaching the logit
    ft = [torch.ones(4, 4, 3, 3)]
    fs = [torch.ones(4, 4, 3, 3)]
    fs[0][2:, :, 0, 0] = 5.0  # samples 2, 3 mismatch strongly
    loss, _ = crit(fs, ft)
    loss.backward()
    assert (logits.grad[:2] < 0).all() and (logits.grad[2:] > 0).all()
