"""The checkers of notebook 07's exercises: references and the notebook's solutions pass, plausible
mistakes are rejected with a diagnosis the student can act on."""

import random

import torch
import torch.nn.functional as F

from interp_helpers.checkers import probes as checks
from interp_helpers.checkers.core import SOLVED, run_check

ALL = [checks.train_probe, checks.mass_mean_direction, checks.control_labels, checks.add_direction, checks.ccs_loss]


def _rejected(exercise, fn, *words):
    status, message = run_check(exercise, fn)
    assert status != SOLVED, f"{exercise.label}: a wrong answer passed"
    for word in words:
        assert word in message, f"{exercise.label}: expected {word!r} in {message!r}"


def test_numbers_follow_the_notebook():
    assert [e.number for e in ALL] == ["7.1", "7.2", "7.3", "7.4", "7.5"]
    assert [getattr(checks, name) for name in checks.__all__] == ALL


# 7.1 ------------------------------------------------------------------------------------


def solution_train_probe(x, y, n_classes, weight_decay):  # as in the notebook
    weight = torch.zeros(x.shape[1], n_classes, requires_grad=True)
    bias = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=200, tolerance_grad=1e-6, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return weight.detach(), bias.detach()


def adam_probe(x, y, n_classes, weight_decay, *, loss=None, steps=300, lr=0.1, init=torch.zeros, adam_decay=0.0):
    """A full-batch Adam loop, as a student might write it; `loss` replaces the objective."""
    weight = init(x.shape[1], n_classes).requires_grad_()
    bias = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=lr, weight_decay=adam_decay)
    with torch.enable_grad():
        for _ in range(steps):
            if loss is None:
                value = F.cross_entropy(x @ weight + bias, y) + 0.5 * weight_decay * weight.pow(2).sum()
            else:
                value = loss(x @ weight + bias, y, weight, weight_decay)
            opt.zero_grad()
            value.backward()
            opt.step()
    return weight.detach(), bias.detach()


def test_train_probe_solutions_pass():
    assert run_check(checks.train_probe, solution_train_probe) == (SOLVED, "solved")
    assert run_check(checks.train_probe, adam_probe) == (SOLVED, "solved")
    slow_adam = lambda x, y, k, wd: adam_probe(x, y, k, wd, lr=0.01, steps=300)  # noqa: E731
    assert run_check(checks.train_probe, slow_adam) == (SOLVED, "solved")


def test_train_probe_wrong_objectives_are_named():
    no_decay = lambda x, y, k, wd: adam_probe(x, y, k, wd, loss=lambda z, y, w, wd: F.cross_entropy(z, y))  # noqa: E731
    _rejected(checks.train_probe, no_decay, "cross-entropy alone")
    # torch.optim.Adam's weight_decay adds weight_decay * p to every parameter's gradient: the bias's too.
    both = lambda x, y, k, wd: adam_probe(x, y, k, wd, loss=lambda z, y, w, wd: F.cross_entropy(z, y), adam_decay=wd)  # noqa: E731
    _rejected(checks.train_probe, both, "bias is penalised")
    no_half = lambda x, y, k, wd: adam_probe(  # noqa: E731
        x, y, k, wd, loss=lambda z, y, w, wd: F.cross_entropy(z, y) + wd * w.pow(2).sum()
    )
    _rejected(checks.train_probe, no_half, "twice the weight decay", "1/2")

    def summed(z, y, w, wd):
        return F.cross_entropy(z, y, reduction="sum") + 0.5 * wd * w.pow(2).sum()

    _rejected(checks.train_probe, lambda x, y, k, wd: adam_probe(x, y, k, wd, loss=summed), "summed", "mean")


def test_train_probe_other_mistakes_are_named():
    transposed = lambda *args: (lambda w, b: (w.T, b))(*solution_train_probe(*args))  # noqa: E731
    _rejected(checks.train_probe, transposed, "[d_model, n_classes]")
    random_start = lambda x, y, k, wd: adam_probe(x, y, k, wd, init=torch.randn, steps=40)  # noqa: E731
    _rejected(checks.train_probe, random_start, "different probes", "zeros")
    too_short = lambda x, y, k, wd: adam_probe(x, y, k, wd, lr=0.01, steps=20)  # noqa: E731
    _rejected(checks.train_probe, too_short, "above the optimum", "train longer")

    def no_enable_grad(x, y, n_classes, weight_decay):
        weight = torch.zeros(x.shape[1], n_classes, requires_grad=True)
        bias = torch.zeros(n_classes, requires_grad=True)
        opt = torch.optim.Adam([weight, bias], lr=0.1)
        for _ in range(100):
            loss = F.cross_entropy(x @ weight + bias, y) + 0.5 * weight_decay * weight.pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return weight.detach(), bias.detach()

    _rejected(checks.train_probe, no_enable_grad, "enable_grad")

    def frozen_bias(x, y, n_classes, weight_decay):
        weight, _ = adam_probe(x, y, n_classes, weight_decay)
        return weight, torch.zeros(n_classes)

    _rejected(checks.train_probe, frozen_bias, "bias never moved")

    def adamw(x, y, n_classes, weight_decay):  # decoupled decay: not the L2 penalty's optimum
        weight = torch.zeros(x.shape[1], n_classes, requires_grad=True)
        bias = torch.zeros(n_classes, requires_grad=True)
        opt = torch.optim.AdamW([weight], lr=0.1, weight_decay=weight_decay)
        opt.add_param_group({"params": [bias], "weight_decay": 0.0})
        with torch.enable_grad():
            for _ in range(300):
                loss = F.cross_entropy(x @ weight + bias, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return weight.detach(), bias.detach()

    _rejected(checks.train_probe, adamw, "missing or too weak")
    nan = lambda x, y, k, wd: (torch.full((x.shape[1], k), float("nan")), torch.zeros(k))  # noqa: E731
    _rejected(checks.train_probe, nan, "NaN")


# 7.2 ------------------------------------------------------------------------------------


def solution_mass_mean_direction(x, y):  # as in the notebook
    mu_1, mu_0 = x[y == 1].mean(0), x[y == 0].mean(0)
    theta = mu_1 - mu_0
    return theta, float(theta @ (mu_0 + mu_1) / 2)


def test_mass_mean_solution_passes():
    assert run_check(checks.mass_mean_direction, solution_mass_mean_direction) == (SOLVED, "solved")
    tensor_threshold = lambda x, y: (lambda t, c: (t, torch.tensor(c)))(*solution_mass_mean_direction(x, y))  # noqa: E731
    assert run_check(checks.mass_mean_direction, tensor_threshold) == (SOLVED, "solved")


def test_mass_mean_wrong_directions_are_named():
    flipped = lambda x, y: solution_mass_mean_direction(x, 1 - y)  # noqa: E731
    _rejected(checks.mass_mean_direction, flipped, "class 1 to class 0")

    def normalised(x, y):
        theta, threshold = solution_mass_mean_direction(x, y)
        return theta / theta.norm(), threshold / theta.norm().item()

    _rejected(checks.mass_mean_direction, normalised, "normalised")

    def minus_all_rows(x, y):
        theta = x[y == 1].mean(0) - x.mean(0)
        return theta, float(theta @ x.mean(0))

    _rejected(checks.mass_mean_direction, minus_all_rows, "mean of all rows")

    def paired_rows(x, y):
        n = int(min((y == 0).sum(), (y == 1).sum()))
        mu_0, mu_1 = x[y == 0].mean(0), x[y == 1].mean(0)
        theta = (x[y == 1][:n] - x[y == 0][:n]).mean(0)
        return theta, float(theta @ (mu_0 + mu_1) / 2)

    _rejected(checks.mass_mean_direction, paired_rows, "pairs rows", "all its rows")

    def sorted_rows(x, y):  # assumes the rows come sorted by class
        n_0 = int((y == 0).sum())
        theta = x[n_0:].mean(0) - x[:n_0].mean(0)
        return theta, float(theta @ (x[n_0:].mean(0) + x[:n_0].mean(0)) / 2)

    _rejected(checks.mass_mean_direction, sorted_rows, "theta for")


def test_mass_mean_wrong_thresholds_are_named():
    zero = lambda x, y: (solution_mass_mean_direction(x, y)[0], 0.0)  # noqa: E731
    _rejected(checks.mass_mean_direction, zero, "threshold is 0")

    def overall_mean(x, y):
        theta, _ = solution_mass_mean_direction(x, y)
        return theta, float(theta @ x.mean(0))

    _rejected(checks.mass_mean_direction, overall_mean, "midpoint of the two class means")

    def no_half(x, y):
        theta, threshold = solution_mass_mean_direction(x, y)
        return theta, 2 * threshold

    _rejected(checks.mass_mean_direction, no_half, "twice")

    def at_mu_0(x, y):
        theta, _ = solution_mass_mean_direction(x, y)
        return theta, float(theta @ x[y == 0].mean(0))

    _rejected(checks.mass_mean_direction, at_mu_0, "mu_0 alone")
    vector = lambda x, y: (lambda t, c: (t, t * c))(*solution_mass_mean_direction(x, y))  # noqa: E731
    _rejected(checks.mass_mean_direction, vector, "one number")


# 7.3 ------------------------------------------------------------------------------------


def solution_control_labels(word_types, labels, generator):  # as in the notebook
    types, inverse = torch.unique(word_types, return_inverse=True)
    counts = torch.bincount(labels).float()
    classes = torch.multinomial(counts / counts.sum(), len(types), replacement=True, generator=generator)
    return classes[inverse]


def loop_control_labels(word_types, labels, generator):
    """Another right answer: each type, in order of first appearance, takes the label of a random token."""
    chosen = {}
    out = torch.empty_like(labels)
    for i, t in enumerate(word_types.tolist()):
        if t not in chosen:
            chosen[t] = labels[torch.randint(len(labels), (), generator=generator)]
        out[i] = chosen[t]
    return out


def test_control_labels_solutions_pass():
    assert run_check(checks.control_labels, solution_control_labels) == (SOLVED, "solved")
    assert run_check(checks.control_labels, loop_control_labels) == (SOLVED, "solved")


def test_control_labels_sharing_and_distribution_mistakes_are_named():
    def per_token(word_types, labels, generator):
        counts = torch.bincount(labels).float()
        return torch.multinomial(counts / counts.sum(), len(labels), replacement=True, generator=generator)

    _rejected(checks.control_labels, per_token, "different classes", "one class per type")
    shuffled = lambda w, labels, g: labels[torch.randperm(len(labels), generator=g)]  # noqa: E731
    _rejected(checks.control_labels, shuffled, "different classes")
    _rejected(checks.control_labels, lambda w, labels, g: labels.clone(), "labels themselves")

    def uniform_over_range(word_types, labels, generator):
        types, inverse = torch.unique(word_types, return_inverse=True)
        return torch.randint(0, int(labels.max()) + 1, (len(types),), generator=generator)[inverse]

    _rejected(checks.control_labels, uniform_over_range, "never occurs in labels")

    def uniform_over_present(word_types, labels, generator):
        types, inverse = torch.unique(word_types, return_inverse=True)
        present = torch.unique(labels)
        return present[torch.randint(0, len(present), (len(types),), generator=generator)][inverse]

    _rejected(checks.control_labels, uniform_over_present, "not uniformly")

    def softmax_of_counts(word_types, labels, generator):
        types, inverse = torch.unique(word_types, return_inverse=True)
        probs = torch.bincount(labels).float().softmax(0)
        return torch.multinomial(probs, len(types), replacement=True, generator=generator)[inverse]

    _rejected(checks.control_labels, softmax_of_counts, "100% of the types", "(labels == c).mean()")
    floats = lambda *args: solution_control_labels(*args).float()  # noqa: E731
    _rejected(checks.control_labels, floats, "integer")


def test_control_labels_randomness_mistakes_are_named():
    def global_rng(word_types, labels, generator):
        types, inverse = torch.unique(word_types, return_inverse=True)
        counts = torch.bincount(labels).float()
        return torch.multinomial(counts / counts.sum(), len(types), replacement=True)[inverse]

    _rejected(checks.control_labels, global_rng, "global random generator")

    def fixed_seed(word_types, labels, generator):
        return solution_control_labels(word_types, labels, torch.Generator().manual_seed(0))

    _rejected(checks.control_labels, fixed_seed, "different seeds")

    def python_random(word_types, labels, generator):
        types, inverse = torch.unique(word_types, return_inverse=True)
        pool = labels.tolist()
        return torch.tensor([random.choice(pool) for _ in range(len(types))])[inverse]

    _rejected(checks.control_labels, python_random, "same seed")

    def first_label(word_types, labels, generator):
        out, seen = torch.empty_like(labels), {}
        for i, t in enumerate(word_types.tolist()):
            seen.setdefault(t, labels[i])
            out[i] = seen[t]
        return out

    _rejected(checks.control_labels, first_label, "first occurrence")


# 7.5 (CCS loss) ---------------------------------------------------------------------------


def solution_ccs_loss(p_pos, p_neg):  # as in the notebook
    consistency = (p_pos - (1 - p_neg)).pow(2).mean()
    confidence = torch.minimum(p_pos, p_neg).pow(2).mean()
    return consistency + confidence


def test_ccs_loss_solutions_pass():
    assert run_check(checks.ccs_loss, solution_ccs_loss) == (SOLVED, "solved")

    def stacked_min(p_pos, p_neg):  # min over a stacked axis: its gradient at a tie differs from torch.minimum's
        return (p_pos + p_neg - 1).pow(2).mean() + torch.stack([p_pos, p_neg]).min(0).values.pow(2).mean()

    assert run_check(checks.ccs_loss, stacked_min) == (SOLVED, "solved")


def test_ccs_loss_wrong_formulas_are_named():
    def p_minus_p(p_pos, p_neg):
        return (p_pos - p_neg).pow(2).mean() + torch.minimum(p_pos, p_neg).pow(2).mean()

    _rejected(checks.ccs_loss, p_minus_p, "1 - p_neg")

    def with_max(p_pos, p_neg):
        return (p_pos - (1 - p_neg)).pow(2).mean() + torch.maximum(p_pos, p_neg).pow(2).mean()

    _rejected(checks.ccs_loss, with_max, "max")

    def summed(p_pos, p_neg):
        return (p_pos - (1 - p_neg)).pow(2).sum() + torch.minimum(p_pos, p_neg).pow(2).sum()

    _rejected(checks.ccs_loss, summed, "sums", "mean")

    def min_not_squared(p_pos, p_neg):
        return (p_pos - (1 - p_neg)).pow(2).mean() + torch.minimum(p_pos, p_neg).mean()

    _rejected(checks.ccs_loss, min_not_squared, "not squared")
    _rejected(checks.ccs_loss, lambda p_pos, p_neg: (p_pos - (1 - p_neg)).pow(2).mean(), "confidence term is missing")


def test_ccs_loss_must_stay_a_tensor():
    _rejected(checks.ccs_loss, lambda *p: solution_ccs_loss(*p).item(), "return a tensor", "gradient descent")
    _rejected(checks.ccs_loss, lambda *p: torch.tensor(solution_ccs_loss(*p).item()), "no gradient")

    def per_pair(p_pos, p_neg):
        return (p_pos - (1 - p_neg)).pow(2) + torch.minimum(p_pos, p_neg).pow(2)

    _rejected(checks.ccs_loss, per_pair, "one number")


# 7.4 (steering hook) ----------------------------------------------------------------------


def solution_add_direction(act, hook, direction, alpha, start):  # as in the notebook
    act = act.clone()
    act[:, start:] += alpha * direction
    return act


def in_place_add_direction(act, hook, direction, alpha, start):
    act[:, start:] += alpha * direction
    return act


def test_add_direction_solutions_pass():
    assert run_check(checks.add_direction, solution_add_direction) == (SOLVED, "solved")
    assert run_check(checks.add_direction, in_place_add_direction) == (SOLVED, "solved")


def test_add_direction_wrong_positions_are_named():
    everywhere = lambda act, hook, d, alpha, start: act + alpha * d  # noqa: E731
    _rejected(checks.add_direction, everywhere, "before start")

    def only_start(act, hook, direction, alpha, start):
        act = act.clone()
        act[:, start] += alpha * direction
        return act

    _rejected(checks.add_direction, only_start, "not only at start")
    after_start = lambda act, hook, d, alpha, start: solution_add_direction(act, hook, d, alpha, start + 1)  # noqa: E731
    _rejected(checks.add_direction, after_start, "start + 1")

    def batch_axis(act, hook, direction, alpha, start):
        act = act.clone()
        act[start:] += alpha * direction
        return act

    _rejected(checks.add_direction, batch_axis, "second axis")


def test_add_direction_other_mistakes_are_named():
    no_alpha = lambda act, hook, d, alpha, start: solution_add_direction(act, hook, d, 1.0, start)  # noqa: E731
    _rejected(checks.add_direction, no_alpha, "alpha")
    unit = lambda act, hook, d, alpha, start: solution_add_direction(act, hook, d / d.norm(), alpha, start)  # noqa: E731
    _rejected(checks.add_direction, unit, "normalising")
    minus = lambda act, hook, d, alpha, start: solution_add_direction(act, hook, -d, alpha, start)  # noqa: E731
    _rejected(checks.add_direction, minus, "subtract")

    def no_return(act, hook, direction, alpha, start):
        act[:, start:] += alpha * direction

    _rejected(checks.add_direction, no_return, "returned None")

    def scales_direction(act, hook, direction, alpha, start):
        direction *= alpha
        act[:, start:] += direction
        return act

    _rejected(checks.add_direction, scales_direction, "in place")
