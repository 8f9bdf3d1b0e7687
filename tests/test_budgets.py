"""spokenstyle.budgets: the typed table of sizes and steps, and the overrides of `--set`."""

from __future__ import annotations

import dataclasses
import json
import types
import typing

import pytest
import torch

from spokenstyle import budgets, runtime
from spokenstyle.budgets import BUDGETS, PROFILES, Budget, DCGANBudget, DemoBudget, Row, parse_overrides

ROWS = sorted(BUDGETS)


def fields_of(kind: type[Budget]) -> list[tuple[str, typing.Any]]:
    hints = typing.get_type_hints(kind)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(kind)]


def accepts(hint: typing.Any) -> set[type]:
    """The plain types a field annotation names (``int | None`` -> {int, NoneType})."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return {typing.get_origin(a) or a for a in args}


# -- the table -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ROWS)
def test_every_row_has_both_profiles_of_one_budget_type(name):
    row = BUDGETS[name]
    assert isinstance(row, Row)
    assert isinstance(row.fast, Budget) and isinstance(row.full, Budget)
    assert type(row.fast) is type(row.full), f"{name}: fast and full must be the same budget type"
    assert row.kind is type(row.full)
    assert [row[p] for p in PROFILES] == [row.fast, row.full]
    assert row.note, f"{name}: a row says why its numbers are what they are"


def test_a_row_of_two_budget_types_is_refused():
    with pytest.raises(TypeError, match="one type"):
        Row(fast=DemoBudget(steps=1, batch_size=1), full=budgets.CollapseBudget(steps=1))
    with pytest.raises(KeyError, match="unknown profile 'medium'"):
        BUDGETS["demo"]["medium"]


def test_budget_follows_profile_and_is_frozen():
    fast = runtime.budget("demo", "fast")
    full = runtime.budget("demo", "full")
    assert isinstance(fast, DemoBudget) and fast.steps < full.steps
    assert fast == BUDGETS["demo"].fast and full == BUDGETS["demo"]["full"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.steps = -1
    changed = fast.replace(steps=4)
    assert changed.steps == 4 and changed.batch_size == fast.batch_size
    assert runtime.budget("demo", "fast").steps == fast.steps != 4  # the table is untouched
    with pytest.raises(KeyError, match="no field 'stpes'"):
        fast.replace(stpes=4)
    with pytest.raises(KeyError, match="no budget named 'nope'"):
        runtime.budget("nope")


@pytest.mark.parametrize("name", ROWS)
@pytest.mark.parametrize("profile", PROFILES)
def test_every_value_of_the_table_has_its_field_type(name, profile):
    b = BUDGETS[name][profile]
    for field, hint in fields_of(type(b)):
        value = getattr(b, field)
        allowed = accepts(hint)
        if float in allowed:
            allowed |= {int}
        assert isinstance(value, tuple(allowed)), f"{name}.{profile}.{field} = {value!r} is not {hint}"
        if isinstance(value, bool):
            assert bool in allowed, f"{name}.{profile}.{field} = {value!r}: a bool where {hint} is expected"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert value >= 0, f"{name}.{profile}.{field} = {value!r} is negative"


@pytest.mark.parametrize("name", ROWS)
def test_every_field_checks_its_value(name):
    """A bool where a number is expected, a negative number and a value of another type are
    refused by every field of every row (the check runs when a budget is made)."""
    b = BUDGETS[name].full
    for field, hint in fields_of(type(b)):
        allowed = accepts(hint)
        wrong = 3 if str in allowed else "x"
        with pytest.raises(TypeError, match=field):
            b.replace(**{field: wrong})
        if allowed & {int, float}:
            with pytest.raises(TypeError, match=field):
                b.replace(**{field: True})
            with pytest.raises(ValueError, match=f"{field} must not be negative"):
                b.replace(**{field: -1})
        if bool in allowed:
            with pytest.raises(TypeError, match=field):
                b.replace(**{field: 1})


def test_values_are_checked_when_a_budget_is_made():
    with pytest.raises(TypeError, match="DemoBudget.steps must be int, got True"):
        DemoBudget(steps=True, batch_size=2)
    with pytest.raises(ValueError, match="DemoBudget.batch_size must not be negative"):
        DemoBudget(steps=2, batch_size=-2)
    with pytest.raises(TypeError, match="DemoBudget.steps must be int, got 2.5"):
        DemoBudget(steps=2.5, batch_size=2)
    with pytest.raises(TypeError, match="DemoBudget.steps must be int, got '2'"):
        DemoBudget(steps="2", batch_size=2)
    base = BUDGETS["dcgan_all_styles"].full
    assert isinstance(base, DCGANBudget) and isinstance(runtime.budget("dcgan_all_styles", "full"), DCGANBudget)
    assert base.replace(lr=1).lr == 1  # an int is a float
    assert base.replace(style=None).style is None and base.replace(style="flat").style == "flat"
    with pytest.raises(TypeError, match="style"):
        base.replace(style=3)
    with pytest.raises(TypeError, match="ema"):
        base.replace(ema="0.9")
    assert base.replace(betas=[0.5, 0.99]).betas == (0.5, 0.99)  # a list from JSON is stored as a tuple
    assert hash(base.replace(betas=[0.5, 0.99]))  # so the budget stays hashable


@pytest.mark.parametrize("name", ROWS)
@pytest.mark.parametrize("profile", PROFILES)
def test_to_dict_round_trips_through_json(name, profile):
    b = BUDGETS[name][profile]
    data = b.to_dict()
    assert isinstance(data, dict) and set(data) == {f for f, _ in fields_of(type(b))}
    text = json.dumps(data, sort_keys=True)
    assert json.loads(text) == data
    assert type(b)(**json.loads(text)) == b


# -- overrides -------------------------------------------------------------------------------------

def test_runtime_reexports_parse_overrides():
    assert runtime.parse_overrides is budgets.parse_overrides


def test_parse_overrides_reads_json_values_per_row():
    got = parse_overrides(["dcgan_all_styles.width=64", "dcgan_all_styles.lr=1e-4",
                           "dcgan_all_styles.betas=[0.5, 0.99]", "cyclegan_flat_comic.steps=30000",
                           "dcgan_all_styles.style=flat"])
    assert got == {"dcgan_all_styles": {"width": 64, "lr": 1e-4, "betas": (0.5, 0.99), "style": "flat"},
                   "cyclegan_flat_comic": {"steps": 30000}}
    assert parse_overrides([]) == {}
    # an int may stand for a float entry, and null for an optional one
    assert parse_overrides(["dcgan_all_styles.lr=1", "dcgan_all_styles.style=null"]) == \
        {"dcgan_all_styles": {"lr": 1, "style": None}}


@pytest.mark.parametrize("item, message", [
    ("dcgan_all_styles.width", "ROW.FIELD=VALUE"),
    ("width=64", "ROW.FIELD=VALUE"),
    ("nope.width=64", "no budget row 'nope'"),
    ("dcgan_all_styles.widht=64", "budget row 'dcgan_all_styles' has no field 'widht'.*'width'"),
    ("dcgan_all_styles.width=wide", "dcgan_all_styles.width=wide.*DCGANBudget.width must be int, got 'wide'"),
    ("dcgan_all_styles.width=64.5", "DCGANBudget.width must be int, got 64.5"),
    ("dcgan_all_styles.spectral_norm=1", "DCGANBudget.spectral_norm must be bool, got 1"),
    ("dcgan_all_styles.steps=true", "DCGANBudget.steps must be int, got True"),
    ("dcgan_all_styles.steps=-5", "DCGANBudget.steps must not be negative"),
    ("fusion.style_norm=yes", "FusionBudget.style_norm must be bool, got 'yes'"),
    ("captioner_eval.decoding=[1]", "CaptionerEvalBudget.decoding must be dict"),
])
def test_parse_overrides_refuses_what_it_cannot_apply(item, message):
    with pytest.raises(ValueError, match=message):
        parse_overrides([item])


def test_overrides_are_applied_by_runtime_budget_and_leave_the_table_untouched(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOKENSTYLE_CACHE", str(tmp_path))
    before = {name: (row.fast, row.full) for name, row in BUDGETS.items()}
    plain = runtime.setup(seed=0, device="cpu", profile="full", verbose=False)
    changed = runtime.setup(seed=0, device="cpu", profile="full", verbose=False,
                            overrides=parse_overrides(["cyclegan_flat_comic.g_width=64"]))
    assert changed.budget("cyclegan_flat_comic") == plain.budget("cyclegan_flat_comic").replace(g_width=64)
    assert changed.budget("cyclegan_flat_comic").g_width == 64
    assert changed.budget("cyclegan_flat_pixel") == plain.budget("cyclegan_flat_pixel")
    assert BUDGETS["cyclegan_flat_comic"].full.g_width == 32  # the table itself is untouched
    assert runtime.budget("cyclegan_flat_comic", "full").g_width == 32
    assert {name: (row.fast, row.full) for name, row in BUDGETS.items()} == before
    assert changed.run_dir("cyclegan_flat_comic") != plain.run_dir("cyclegan_flat_comic")
    assert changed.run_dir("cyclegan_flat_pixel") == plain.run_dir("cyclegan_flat_pixel")
    assert "overrides" in str(changed) and "overrides" not in str(plain)
    # a Runtime made directly applies its overrides the same way, in its own profile
    direct = runtime.Runtime(torch.device("cpu"), "fast", 0, overrides={"fusion": {"steps": 4}})
    assert direct.budget("fusion") == BUDGETS["fusion"].fast.replace(steps=4)
    assert BUDGETS["fusion"].fast.steps != 4
