import pytest
import torch

from interp_helpers import check_choice, check_range, seed_everything


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("density", 1.5, 0, 1), {}, r"density=1.5 is out of range; allowed: \[0, 1\]"),
        (("density", 0.0, 0, 1), {"low_inclusive": False}, r"allowed: \(0, 1\]"),
        (("steps", -1, 0), {}, r"steps=-1 is out of range; allowed: \[0, inf\)"),
        (("ratio", 11, None, 10), {}, r"allowed: \(-inf, 10\]"),
    ],
)
def test_check_range_names_parameter_and_range(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_range(*args, **kwargs)


def test_check_range_accepts_ints_and_floats_in_range():
    check_range("n", 3, 1, 5)
    check_range("x", 0.5, 0.0, 1.0, low_inclusive=False, high_inclusive=False)


def test_check_choice():
    check_choice("kind", "relu", ["linear", "relu"])
    with pytest.raises(ValueError, match=r"kind='tanh' is not allowed; choose one of \['linear', 'relu'\]"):
        check_choice("kind", "tanh", ["linear", "relu"])


def test_seed_everything_is_deterministic():
    first = torch.rand(3, generator=seed_everything(5)), torch.rand(3)
    second = torch.rand(3, generator=seed_everything(5)), torch.rand(3)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_stream_seed_separates_purposes_and_repeats():
    from interp_helpers.core.validation import stream_generator, stream_seed

    assert stream_seed(3, "sae.init") == stream_seed(3, "sae.init")
    assert len({stream_seed(3, "sae.init"), stream_seed(3, "sae.train"), stream_seed(4, "sae.init"), 3}) == 4
    assert 0 <= stream_seed(2**32 - 1, "x") < 2**63
    assert not torch.equal(torch.rand(4, generator=stream_generator(3, "a")), torch.rand(4, generator=gen3()))


def gen3() -> torch.Generator:
    return torch.Generator().manual_seed(3)
