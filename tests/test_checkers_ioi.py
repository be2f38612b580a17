"""The checkers of notebook 03's exercises: references and the notebook's solutions pass, plausible
mistakes are rejected with a diagnosis the student can act on."""

import functools

import pytest
import torch

from interp_helpers.checkers import ioi as checks
from interp_helpers.checkers.core import SOLVED, run_check
from interp_helpers.transformer_circuits import ioi_circuit, patching


def _rejected(exercise, fn, *words):
    status, message = run_check(exercise, fn)
    assert status != SOLVED, f"{exercise.label}: a wrong answer passed"
    for word in words:
        assert word in message, f"{exercise.label}: expected {word!r} in {message!r}"


@pytest.mark.parametrize("name", [n for n in checks.__all__ if n != "tiny_model"])
def test_reference_passes(name):
    exercise = getattr(checks, name)
    assert run_check(exercise, exercise.reference) == (SOLVED, "solved")


def test_tiny_model_leaves_the_global_random_state_alone():
    before = torch.random.get_rng_state()
    first, second = checks.tiny_model(), checks.tiny_model()
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(first.W_E, second.W_E)


# --------------------------------------------------------------------------------------
# 3.1 Logit difference at END
# --------------------------------------------------------------------------------------


def solution_logit_diff_per_prompt(logits, end, io_token, s_token):  # as in the notebook
    rows = torch.arange(logits.shape[0])
    end_logits = logits[rows, end]
    return end_logits[rows, io_token] - end_logits[rows, s_token]


def test_logit_diff_solution_passes():
    assert run_check(checks.logit_diff_per_prompt, solution_logit_diff_per_prompt)[0] == SOLVED


def test_logit_diff_mistakes():
    ex = checks.logit_diff_per_prompt
    rows = lambda x: torch.arange(x.shape[0])  # noqa: E731
    _rejected(ex, lambda lg, e, io, s: -solution_logit_diff_per_prompt(lg, e, io, s), "wrong sign", "IO minus S")
    _rejected(ex, lambda lg, e, io, s: lg[rows(lg), -1, io] - lg[rows(lg), -1, s], "last position", "END")
    _rejected(ex, lambda lg, e, io, s: lg[:, e, io] - lg[:, e, s], "[batch, batch]", "torch.arange")
    _rejected(
        ex, lambda lg, e, io, s: solution_logit_diff_per_prompt(lg, e, io, s).mean(), "one logit difference per prompt"
    )
    _rejected(ex, lambda lg, e, io, s: solution_logit_diff_per_prompt(lg, e - 1, io, s), "off by one")
    _rejected(ex, lambda lg, e, io, s: solution_logit_diff_per_prompt(lg.softmax(-1), e, io, s), "probabilities")


# --------------------------------------------------------------------------------------
# 3.2 Direct logit attribution
# --------------------------------------------------------------------------------------


def solution_residual_logit_diff_attribution(stack, ln_scale, directions):
    centred = stack - stack.mean(-1, keepdim=True)
    return ((centred / ln_scale) * directions).sum(-1)


def test_attribution_solution_passes():
    assert run_check(checks.residual_logit_diff_attribution, solution_residual_logit_diff_attribution)[0] == SOLVED


def test_attribution_mistakes():
    ex = checks.residual_logit_diff_attribution
    centre = lambda x: x - x.mean(-1, keepdim=True)  # noqa: E731
    _rejected(ex, lambda st, sc, d: (centre(st) * d).sum(-1), "missing the LayerNorm scale")
    _rejected(ex, lambda st, sc, d: (centre(st) * sc * d).sum(-1), "multiplied by the LayerNorm scale")
    _rejected(ex, lambda st, sc, d: ((st / sc) * d).sum(-1), "not centred")
    _rejected(ex, lambda st, sc, d: (((st - st.mean(0, keepdim=True)) / sc) * d).sum(-1), "wrong axis", "d_model")
    _rejected(
        ex,
        lambda st, sc, d: ((centre(st) / centre(st).norm(dim=-1, keepdim=True)) * d).sum(-1),
        "normalised each component by itself",
    )
    _rejected(ex, lambda st, sc, d: ((centre(st) / sc) * d[0]).sum(-1), "prompt 0's direction")
    _rejected(ex, lambda st, sc, d: solution_residual_logit_diff_attribution(st, sc, d).T, "[batch, component]")


def test_attribution_matches_the_package_on_a_model():
    """Through the notebook's assembly (decompose_resid at END) the shares add up to the logit difference."""
    model = checks.tiny_model()
    tokens, _, end, answers = checks._tiny_prompts()
    rows = torch.arange(3)
    logits, cache = model.run_with_cache(tokens)
    stack = cache.decompose_resid()[:, rows, end]
    directions = (
        model.W_U.T[answers[:, 0]] - model.W_U.T[answers[:, 1]]
    ) * model.ln_final.w  # as ioi.logit_diff_directions
    shares = solution_residual_logit_diff_attribution(stack, cache["ln_final.hook_scale"][rows, end], directions)
    bias = (
        model.b_U[answers[:, 0]]
        - model.b_U[answers[:, 1]]
        + model.ln_final.b @ (model.W_U[:, answers[:, 0]] - model.W_U[:, answers[:, 1]])
    )
    expected = logits[rows, end, answers[:, 0]] - logits[rows, end, answers[:, 1]]
    torch.testing.assert_close(shares.sum(0) + bias, expected, atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------------------
# 3.3 The activation-patching hook
# --------------------------------------------------------------------------------------


def solution_patch_head_z(z, hook, head, clean_z, pos=None):
    z = z.clone()
    if pos is None:
        z[:, :, head] = clean_z[:, :, head]
    else:
        rows = torch.arange(z.shape[0])
        z[rows, pos, head] = clean_z[rows, pos, head]
    return z


def test_patch_hook_solution_passes():
    assert run_check(checks.patch_head_z, solution_patch_head_z)[0] == SOLVED


def test_patch_hook_in_place_edit_passes():
    def in_place(z, hook, head, clean_z, pos=None):
        if pos is None:
            z[:, :, head] = clean_z[:, :, head]
        else:
            z[torch.arange(z.shape[0]), pos, head] = clean_z[torch.arange(z.shape[0]), pos, head]
        return z

    assert run_check(checks.patch_head_z, in_place)[0] == SOLVED


def test_patch_hook_mistakes():
    ex = checks.patch_head_z

    def every_head(z, hook, head, clean_z, pos=None):
        return clean_z.clone()

    def position_axis(z, hook, head, clean_z, pos=None):
        z = z.clone()
        z[:, head] = clean_z[:, head]
        return z

    def ignores_pos(z, hook, head, clean_z, pos=None):
        return solution_patch_head_z(z, hook, head, clean_z)

    def crossed_rows(z, hook, head, clean_z, pos=None):
        z = z.clone()
        if pos is None:
            z[:, :, head] = clean_z[:, :, head]
        else:
            z[:, pos, head] = clean_z[:, pos, head]
        return z

    def returns_nothing(z, hook, head, clean_z, pos=None):
        z[:, :, head] = clean_z[:, :, head]

    _rejected(ex, every_head, "every head was patched")
    _rejected(ex, position_axis, "heads are axis 2")
    _rejected(ex, ignores_pos, "only position pos[b]")
    _rejected(ex, crossed_rows, "other prompts' positions", "torch.arange")
    _rejected(ex, returns_nothing, "returned None")


# --------------------------------------------------------------------------------------
# 3.4 Patch every head
# --------------------------------------------------------------------------------------


def _patch_grid(model, tokens, clean_cache, metric, value, hook_fn=solution_patch_head_z, per_layer=False):
    grid = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.attn.hook_z"
        for head in range(model.cfg.n_heads):
            if per_layer:  # every head of the layer at once
                hook = lambda z, hook, clean=clean_cache[name]: clean  # noqa: E731
            else:
                hook = functools.partial(hook_fn, head=head, clean_z=clean_cache[name])
            grid[layer, head] = value(metric(model.run_with_hooks(tokens, fwd_hooks=[(name, hook)])))
    return grid


def solution_patch_each_head(model, corrupted_tokens, clean_cache, metric, clean_value, corrupted_value):
    return _patch_grid(
        model,
        corrupted_tokens,
        clean_cache,
        metric,
        lambda patched: (patched - corrupted_value) / (clean_value - corrupted_value),
    )


def test_patch_each_head_solution_passes():
    assert run_check(checks.patch_each_head, solution_patch_each_head)[0] == SOLVED


def test_patch_each_head_mistakes():
    ex = checks.patch_each_head
    _rejected(ex, lambda m, t, c, mt, cv, xv: _patch_grid(m, t, c, mt, lambda p: p), "not normalised")
    _rejected(
        ex,
        lambda m, t, c, mt, cv, xv: _patch_grid(m, t, c, mt, lambda p: (p - cv) / (cv - xv)),
        "subtracted clean_value",
    )
    _rejected(ex, lambda m, t, c, mt, cv, xv: _patch_grid(m, t, c, mt, lambda p: p / cv), "divided by clean_value")
    _rejected(ex, lambda m, t, c, mt, cv, xv: solution_patch_each_head(m, t, c, mt, cv, xv).T, "[head_index, layer]")
    _rejected(
        ex,
        lambda m, t, c, mt, cv, xv: _patch_grid(m, t, c, mt, lambda p: (p - xv) / (cv - xv), per_layer=True),
        "same value",
        "one head at a time",
    )

    def leaves_hooks(model, tokens, clean_cache, metric, clean_value, corrupted_value):
        grid = solution_patch_each_head(model, tokens, clean_cache, metric, clean_value, corrupted_value)
        model.add_hook("blocks.0.attn.hook_z", lambda z, hook: z)
        return grid

    _rejected(ex, leaves_hooks, "hooks are still attached")

    def patches_nothing(model, tokens, clean_cache, metric, clean_value, corrupted_value):
        return _patch_grid(
            model,
            tokens,
            clean_cache,
            metric,
            lambda p: (p - corrupted_value) / (clean_value - corrupted_value),
            hook_fn=lambda z, hook, head, clean_z: None,
        )

    _rejected(ex, patches_nothing, "every head scored 0")


# --------------------------------------------------------------------------------------
# 3.5 Attribution patching
# --------------------------------------------------------------------------------------


def solution_attribution_patch_heads(
    model, corrupted_tokens, clean_cache, metric, sign=1.0, reduce="sum", with_base=True, enable_grad=True
):
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    saved = {}

    def keep(z, hook):
        saved[hook.name] = z

    grad_mode = torch.enable_grad() if enable_grad else torch.no_grad()
    with grad_mode, model.hooks(fwd_hooks=[(name, keep) for name in names]):
        base = metric(model(corrupted_tokens))
        grads = torch.autograd.grad(base, [saved[name] for name in names])
    rows = [
        getattr(sign * (clean_cache[n] - saved[n].detach()) * g, reduce)(dim=(0, 1, 3)) for n, g in zip(names, grads)
    ]
    return (base.detach() if with_base else 0.0) + torch.stack(rows)


def test_attribution_patching_solution_passes():
    assert run_check(checks.attribution_patch_heads, solution_attribution_patch_heads)[0] == SOLVED


def test_attribution_patching_mistakes():
    ex = checks.attribution_patch_heads
    _rejected(
        ex, functools.partial(solution_attribution_patch_heads, sign=-1.0), "wrong sign", "clean z minus corrupted z"
    )
    _rejected(ex, functools.partial(solution_attribution_patch_heads, reduce="mean"), "averaged")
    _rejected(ex, functools.partial(solution_attribution_patch_heads, with_base=False), "only the change")
    _rejected(ex, functools.partial(solution_attribution_patch_heads, enable_grad=False), "torch.enable_grad")
    _rejected(ex, lambda *a: solution_attribution_patch_heads(*a).T, "[head_index, layer]")


# --------------------------------------------------------------------------------------
# 3.6 Path patching into an MLP
# --------------------------------------------------------------------------------------


def solution_path_patch_head_to_mlp(model, clean_tokens, corrupted_tokens, sender, mlp_layer, pos, metric):
    layer, head = sender
    _, clean_cache = model.run_with_cache(clean_tokens)
    _, corrupted_cache = model.run_with_cache(corrupted_tokens)

    def freeze(act, hook):
        return clean_cache[hook.name]

    def corrupt_sender(z, hook):
        return solution_patch_head_z(clean_cache[hook.name], hook, head, corrupted_cache[hook.name])

    hooks = [(f"blocks.{l}.attn.hook_z", corrupt_sender if l == layer else freeze) for l in range(model.cfg.n_layers)]
    hooks += [(f"blocks.{l}.hook_mlp_out", freeze) for l in range(model.cfg.n_layers)]
    receiver, rows = f"blocks.{mlp_layer}.hook_mlp_in", torch.arange(clean_tokens.shape[0])
    with ioi_circuit.input_hooks(model):
        with model.hooks(fwd_hooks=hooks):
            _, patched = model.run_with_cache(clean_tokens, names_filter=receiver)

        def let_in(x, hook):
            x = x.clone()
            x[rows, pos] = patched[receiver][rows, pos]
            return x

        return metric(model.run_with_hooks(clean_tokens, fwd_hooks=[(receiver, let_in)]))


def test_path_patching_solution_passes():
    assert run_check(checks.path_patch_head_to_mlp, solution_path_patch_head_to_mlp)[0] == SOLVED


def test_path_patch_variant_is_the_package_path_patch():
    model = checks.tiny_model()
    clean, corrupted, end, answers = checks._tiny_prompts()
    metric = patching.logit_diff_metric(answers, end)
    for sender, mlp_layer in (((0, 1), 1), ((0, 2), 0), ((1, 0), 1)):
        ours = checks.path_patch_variant(model, clean, corrupted, sender, mlp_layer, end, metric)
        package = checks.path_patch_head_to_mlp.reference(model, clean, corrupted, sender, mlp_layer, end, metric)
        torch.testing.assert_close(ours, package, atol=1e-5, rtol=1e-5)


def test_path_patching_mistakes():
    ex = checks.path_patch_head_to_mlp
    variant = checks.path_patch_variant

    def activation_patching(model, clean, corrupted, sender, mlp_layer, pos, metric):
        return checks._activation_patch_sender(model, clean, corrupted, sender, metric)

    _rejected(ex, activation_patching, "activation patching of the sender")
    _rejected(
        ex,
        lambda m, c, x, s, l, p, mt: variant(m, c, x, s, l, p, mt, freeze_heads=False),
        "other heads were not frozen",
    )
    _rejected(ex, lambda m, c, x, s, l, p, mt: variant(m, c, x, s, l, p, mt, freeze_mlps=False), "MLPs were not frozen")
    _rejected(ex, lambda m, c, x, s, l, p, mt: variant(m, c, x, s, l, None, mt), "every position")
    _rejected(ex, lambda m, c, x, s, l, p, mt: mt(m(x)), "corrupted run's metric", "CLEAN")

    def forgets_input_hooks(model, clean, corrupted, sender, mlp_layer, pos, metric):
        return metric(model(clean))  # what a step 3 whose hook on hook_mlp_in never runs gives

    _rejected(ex, forgets_input_hooks, "nothing was patched", "input_hooks")

    def leaves_flag_on(model, clean, corrupted, sender, mlp_layer, pos, metric):
        value = solution_path_patch_head_to_mlp(model, clean, corrupted, sender, mlp_layer, pos, metric)
        model.set_use_hook_mlp_in(True)
        return value

    _rejected(ex, leaves_flag_on, "hook_mlp_in was left switched on")
