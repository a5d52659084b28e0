"""Losses: zero at equality, finite with zeros and padding, equal to a direct computation, gradients."""

import math

import pytest
import torch
import torch.nn.functional as F

from raykd.method.losses import LOSSES, get_loss

torch.manual_seed(0)
B, H, L, D = 3, 2, 5, 8
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])


def attention(logits=None):
    """Row-stochastic attention over real keys only, as a padded eager-attention batch looks."""
    logits = torch.randn(B, H, L, L) if logits is None else logits
    logits = logits.masked_fill(MASK[:, None, None, :] == 0, float("-inf"))
    return logits.softmax(-1)


INPUTS = {
    "logits": lambda: torch.randn(B, 3),
    "attentions": attention,
    "cls": lambda: torch.randn(B, D),
    "hidden_states": lambda: torch.randn(B, L, D),
}


@pytest.mark.parametrize("name", [n for n in LOSSES if n != "hard_label"])
def test_zero_when_student_equals_teacher(name):
    x = INPUTS[get_loss(name).reads]()
    value = get_loss(name)(x.clone(), x, mask=MASK, temperature=2.0)
    assert abs(float(value)) < 1e-6


@pytest.mark.parametrize("name", list(LOSSES))
def test_gradient_reaches_student(name):
    loss = get_loss(name)
    student = INPUTS[loss.reads]().requires_grad_(True)
    teacher = INPUTS[loss.reads]()
    value = loss(student, teacher, mask=MASK, labels=torch.tensor([0, 2, 1]), temperature=2.0)
    value.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert torch.isfinite(student.grad).all()


def test_attention_kl_finite_with_zero_probabilities():
    teacher = attention()
    student = attention()
    student[0, 0, 0] = 0.0   # a hard zero where the teacher is not zero
    student[0, 0, 0, 0] = 1.0
    teacher[1, 1, 2] = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0])  # a hard zero in the teacher
    value = get_loss("attention_kl")(student, teacher, mask=MASK)
    assert math.isfinite(float(value)) and float(value) > 0


def test_attention_kl_matches_direct_loop():
    teacher, student = attention(), attention()
    expected = []
    for b in range(B):
        n = int(MASK[b].sum())
        for h in range(H):
            rows = [sum(float(teacher[b, h, i, j] * math.log(teacher[b, h, i, j] / student[b, h, i, j]))
                        for j in range(n)) for i in range(n)]
            expected.append(sum(rows) / n)
    assert float(get_loss("attention_kl")(student, teacher, mask=MASK)) == pytest.approx(sum(expected) / len(expected), rel=1e-5)


def test_attention_kl_ignores_padding_rows_and_columns():
    teacher, student = attention(), attention()
    base = float(get_loss("attention_kl")(student, teacher, mask=MASK))
    noisy = student.clone()
    noisy[2, :, 3:, :] = 0.5  # padding rows of example 2: anything there must not count
    assert float(get_loss("attention_kl")(noisy, teacher, mask=MASK)) == pytest.approx(base)


def test_attention_mse_matches_direct_loop():
    teacher, student = attention(), attention()
    expected = []
    for b in range(B):
        n = int(MASK[b].sum())
        for h in range(H):
            expected.append(float(((student[b, h, :n, :n] - teacher[b, h, :n, :n]) ** 2).mean()))
    assert float(get_loss("attention_mse")(student, teacher, mask=MASK)) == pytest.approx(sum(expected) / len(expected), rel=1e-5)


def test_cls_losses_match_direct_formulas():
    s, t = torch.randn(B, D), torch.randn(B, D)
    cos = [1 - float(torch.dot(s[b], t[b]) / (s[b].norm() * t[b].norm())) for b in range(B)]
    assert float(get_loss("cls_cosine")(s, t)) == pytest.approx(sum(cos) / B, rel=1e-5)
    pkd = [float(((s[b] / s[b].norm() - t[b] / t[b].norm()) ** 2).sum()) for b in range(B)]
    assert float(get_loss("cls_mse_normalized")(s, t)) == pytest.approx(sum(pkd) / B, rel=1e-5)


def test_hidden_mse_counts_real_tokens_only():
    s, t = torch.randn(B, L, D), torch.randn(B, L, D)
    real = MASK.bool()
    expected = float(((s - t) ** 2)[real].mean())
    assert float(get_loss("hidden_mse")(s, t, mask=MASK)) == pytest.approx(expected, rel=1e-5)


def test_soft_label_is_t_squared_kl_and_mse_for_regression():
    s, t, temp = torch.randn(B, 3), torch.randn(B, 3), 3.0
    p = (t / temp).softmax(-1)
    kl = sum(float((p[b] * (p[b].log() - (s[b] / temp).log_softmax(-1))).sum()) for b in range(B)) / B
    assert float(get_loss("soft_label")(s, t, temperature=temp)) == pytest.approx(kl * temp ** 2, rel=1e-5)
    s1, t1 = torch.randn(B, 1), torch.randn(B, 1)
    assert float(get_loss("soft_label")(s1, t1, temperature=temp)) == pytest.approx(float(((s1 - t1) ** 2).mean()), rel=1e-5)


def test_hard_label_cross_entropy_and_regression():
    s, y = torch.randn(B, 3), torch.tensor([0, 2, 1])
    assert float(get_loss("hard_label")(s, None, labels=y)) == pytest.approx(float(F.cross_entropy(s, y)))
    r, gold = torch.randn(B, 1), torch.tensor([0.5, 2.0, 4.5])
    assert float(get_loss("hard_label")(r, None, labels=gold)) == pytest.approx(float(((r[:, 0] - gold) ** 2).mean()))


def test_unknown_loss_names_the_registered_ones():
    with pytest.raises(KeyError, match="attention_kl"):
        get_loss("nope")
