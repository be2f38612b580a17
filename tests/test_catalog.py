import pytest
from conftest import TINY

from interp_helpers.workbook.catalog import CatalogError, find_notebook, parse_parameters_cell, read_notebook_info


def test_parse_parameters_cell_types_defaults_and_help():
    params = parse_parameters_cell(
        'n: int = 5  # how many\nrate: float = 0.1\nname: str = "a"  # a name\n'
        "flags: list[int] = [1, 2]  # some ints\nfast: bool = False\n"
    )
    assert [p.type for p in params.values()] == ["int", "float", "str", "list[int]", "bool"]
    assert params["n"].default == 5 and params["n"].help == "how many"
    assert params["flags"].default == [1, 2]
    assert params["rate"].help == ""


@pytest.mark.parametrize(
    "source, message",
    [("x = 5\n", "expected 'name: type = literal'"), ("x: dict = {}\n", "not supported"), ("import os\n", "expected")],
)
def test_parse_parameters_cell_rejects_untyped_lines(source, message):
    with pytest.raises(CatalogError, match=message):
        parse_parameters_cell(source)


@pytest.mark.parametrize(
    "type_name, text, expected",
    [
        ("int", "3", 3),
        ("float", "1e-3", 1e-3),
        ("bool", "True", True),
        ("bool", "0", False),
        ("str", "hi", "hi"),
        ("list[float]", "1,2.5", [1.0, 2.5]),
        ("list[int]", "[1, 2]", [1, 2]),
        ("list[str]", "a,b", ["a", "b"]),
    ],
)
def test_parameter_parse(type_name, text, expected):
    params = parse_parameters_cell(f"x: {type_name} = {expected!r}\n")
    assert params["x"].parse(text) == expected


@pytest.mark.parametrize("type_name, text", [("int", "2.5"), ("bool", "maybe"), ("list[int]", "1,x")])
def test_parameter_parse_errors_name_the_parameter(type_name, text):
    default = {"bool": "False"}.get(type_name, "[]" if type_name.startswith("list") else "0")
    params = parse_parameters_cell(f"x: {type_name} = {default}\n")
    with pytest.raises(CatalogError, match=r"parameter x: .* is not a valid"):
        params["x"].parse(text)


def test_unknown_parameter_lists_valid_names():
    info = read_notebook_info(TINY)
    with pytest.raises(CatalogError, match="unknown parameter 'scal'.*valid: scale, count"):
        info.parse_parameters([("scal", "1")])


def test_find_notebook_by_number_and_name():
    assert find_notebook("01").path.name.startswith("01_")
    assert find_notebook("1").path == find_notebook("01").path
    assert find_notebook(find_notebook("01").path.name).path == find_notebook("01").path
    with pytest.raises(CatalogError, match="unknown notebook .99.; available: .*01_superposition"):
        find_notebook("99")


def test_conditions_are_read_from_the_comment():
    params = parse_parameters_cell(
        "seed: int = 0  # 0 <= seed < 2**32; picks the rows\n"
        'arch: str = "topk"  # arch in ("relu", "topk"); the architecture\n'
        "lo: int = 2  # 1 <= lo <= 10; the low end\n"
        "hi: int = 5  # lo <= hi <= 2 * lo + 1; depends on lo\n"
        "xs: list[float] = [0.5]  # 0 < xs <= 1; every element\n"
        "note: int = 3  # three is a nice number\n"
    )
    assert params["seed"].condition == "0 <= seed < 2**32" and params["seed"].help == "picks the rows"
    assert params["note"].condition == "" and params["note"].help == "three is a nice number"
    values = {name: p.default for name, p in params.items()}
    for name, bad, message in [
        ("seed", -1, r"seed=-1 is out of range; allowed: 0 <= seed < 2\*\*32$"),
        ("seed", 2**32, "out of range"),
        ("arch", "tanh", r"allowed: arch in \("),
        ("hi", 6, r"hi=6 is out of range; allowed: lo <= hi <= 2 \* lo \+ 1 \(here: 2 .. 5\)"),
        ("xs", [0.5, 1.5], r"xs=\[0.5, 1.5\] \(element 1.5\) is out of range"),
        ("seed", 1.5, "is not a int"),
        ("seed", True, "is not a int"),
    ]:
        with pytest.raises(CatalogError, match=message):
            params[name].check(bad, {**values, name: bad})
    params["hi"].check(4, values)  # in range: no error


@pytest.mark.parametrize(
    "source, message",
    [
        ("n: int = 0  # 1 <= n <= 3; too small a default\n", "default of parameter n=0"),
        ("n: int = 1  # 1 <= n <= open('x'); calls a function\n", "may only call"),
        ("n: int = 1  # 1 <= n <= m; names another\n", "not a parameter"),
    ],
)
def test_bad_conditions_are_rejected_when_read(source, message):
    with pytest.raises(CatalogError, match=message):
        parse_parameters_cell(source)


def test_validate_checks_the_whole_set_and_names_unknowns():
    info = find_notebook("01")
    assert info.validate({})["seed"] == 0
    with pytest.raises(CatalogError, match="seed=-1 is out of range"):
        info.validate({"seed": -1})
    with pytest.raises(CatalogError, match="dims_d_hidden=300 is out of range.*here: 200"):
        info.validate({"dims_d_hidden": 300})
    with pytest.raises(CatalogError, match="unknown parameter 'sede'"):
        info.validate({"sede": 1})


def test_every_numeric_parameter_declares_its_range():
    from interp_helpers.workbook.catalog import list_notebooks

    for path in list_notebooks():
        info = read_notebook_info(path)
        bare = [
            p.name
            for p in info.parameters.values()
            if p.type in ("int", "float", "list[int]", "list[float]") and not p.condition
        ]
        assert not bare, f"{path.name}: numeric parameters without a declared range: {bare}"


def test_condition_survives_a_formatter_wrapping_the_line():
    params = parse_parameters_cell("n: int = (\n    5  # 1 <= n <= 9; wrapped by a formatter\n)\n")
    assert params["n"].condition == "1 <= n <= 9" and params["n"].help == "wrapped by a formatter"
