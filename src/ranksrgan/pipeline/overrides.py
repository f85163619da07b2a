"""Command-line values that must reach the stages they address: a ``stages.*`` entry that replaces
one stops the run with the override that works (``docs/sweeps.md``)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from ranksrgan.pipeline.stage import Stage

__all__ = ["CHECKED_GROUPS", "chosen_option", "run_origin", "unreached_overrides"]


def chosen_option(overrides: list[str], group: str) -> str | None:
    """The option the command line chose for a config group (``experiment=demo`` -> "demo"), or None."""
    for override in reversed(overrides):
        key, sep, value = override.partition("=")
        if sep and key.lstrip("+") == group:
            return None if value in ("null", "") else value
    return None


def run_origin(overrides: list[str]) -> dict[str, str | None]:
    """``{"experiment": ..., "data": ...}``: the options the run was composed with (Hydra's choices
    under ``train.py``; else the command's own ``experiment=`` / ``data=`` overrides)."""
    from hydra.core.hydra_config import HydraConfig

    choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    return {group: choices.get(group, chosen_option(overrides, group)) for group in ("experiment", "data")}


#: Config groups whose command-line values must reach the stages they address (:func:`unreached_overrides`).
CHECKED_GROUPS = ("gan", "ranker", "data")


def unreached_overrides(
    cfg: DictConfig, overrides: list[str], stages: list[Stage], composed: dict[tuple[str, str], DictConfig]
) -> list[str]:
    """Command-line values of ``gan.*``, ``ranker.*`` and ``data.*`` that a stage they address does
    not hold in the end, one line each: it names the ``stages`` entry that replaced the value and
    the override that reaches the stage.

    ``gan.*`` addresses the recipe the command selected (``gan.module.generator...``: every
    generator stage), ``ranker.*`` the selected Ranker, ``data.*`` every generator stage and the
    Ranker settings that interpolate it (``train_hr: ${data.train_hr}``). ``composed`` maps
    ``(group, name)`` to the stage's config before its ``stages`` settings (:attr:`Planner.composed`).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    settings = OmegaConf.to_container(cfg.get("stages") or OmegaConf.create({}), resolve=False)
    problems: list[str] = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        group, dot, rel = key.partition(".")
        if not dot or group not in CHECKED_GROUPS or override.is_delete() or override.is_sweep_override():
            continue
        text = override.input_line.split("=", 1)[1] if override.input_line else override.get_value_element_as_str()
        wanted = _value(cfg, key)
        for stage in stages:
            if group in ("gan", "ranker"):
                selected = cfg.get(group) is not None and cfg[group].name == stage.name
                if (stage.kind == "ranker") != (group == "ranker"):
                    continue
                if not selected and not (group == "gan" and rel.startswith("module.generator")):
                    continue
                if _value(stage.cfg, key) != wanted:
                    problems.append(_unreached(settings, overrides, stage, key, text, rel, rel))
            elif stage.kind == "generator":
                if _value(stage.cfg, key) != wanted:
                    problems.append(f"{key}={text} does not reach gan={stage.name}: its config holds {_value(stage.cfg, key)!r}")
            else:
                raw = composed.get(("ranker", stage.name))
                for path, source in _data_interpolations(raw.ranker if raw is not None else None, raw):
                    if key == source or key.startswith(source + "."):
                        inner = path + key[len(source) :]
                        if _value(raw, f"ranker.{inner}") != _value(stage.cfg, f"ranker.{inner}"):
                            problems.append(_unreached(settings, overrides, stage, key, text, path, inner))
    return [p for p in dict.fromkeys(problems) if p]


_ABSENT = object()


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_resolution_failure=False)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _data_interpolations(section: DictConfig | None, root: DictConfig | None = None) -> list[tuple[str, str]]:
    """``(path in the section, "data.<key>")`` of every value that is exactly ``${data.<key>}``, or
    an interpolation of ``root`` that leads to one (``${rank_data.train_hr}`` -> ``${data.train_hr}``)."""
    if section is None:
        return []
    from ranksrgan.store import flatten

    raw_root = flatten(OmegaConf.to_container(root, resolve=False)) if root is not None else {}

    def source(value: Any) -> str | None:
        seen = set()
        while isinstance(value, str) and value.startswith("${") and value.endswith("}") and value.count("${") == 1:
            key = value[2:-1]
            if key.startswith("data."):
                return key
            if key in seen:
                return None
            seen.add(key)
            value = raw_root.get(key)
        return None

    found = []
    for path, value in flatten(OmegaConf.to_container(section, resolve=False)).items():
        origin = source(value)
        if origin is not None:
            found.append((path, origin))
    return found


def _unreached(settings: dict, overrides: list[str], stage: Stage, key: str, text: str, path: str, inner: str) -> str | None:
    """The line for ``key=text``, which ``stage`` does not hold. ``path``: the setting of the stage's
    section the value reaches it through; ``inner``: the setting the value is for (below ``path``).
    None for a ``data.*`` value that a Ranker's own setting on the same command line replaces
    (``+stages.rankers.datamodule.train_hr=...``: asked for)."""
    section = "ranker" if stage.kind == "ranker" else "gan"
    where = f"{section}={stage.name}"
    found = _replacing_entry(
        settings, ("all", "rankers" if stage.kind == "ranker" else "generators", stage.name), path.split(".")
    )
    if found is None:
        return f"{key}={text} does not reach {where}: its config holds {_value(stage.cfg, f'{section}.{inner}')!r}"
    label, entry = found
    entry_key = ".".join(["stages", label, *entry])
    from_command = any(o.lstrip("+~").startswith(f"stages.{label}.") for o in overrides)
    experiment = chosen_option(overrides, "experiment")
    origin = "the command line" if from_command else f"experiment={experiment}" if experiment else "the config"
    if from_command and not key.startswith(f"{section}."):
        return None
    # stages.<name> reaches this stage only; a value inside a list goes where that list is set.
    plain = len(entry) == len(path.split(".")) and inner == path
    target = stage.name if label == stage.name or plain else label
    head = f"{key}={text}" if key == f"{section}.{inner}" else f"{key}={text} does not reach {where}: {section}.{inner}"
    return f"{head} is replaced by {entry_key} from {origin}; set ++stages.{target}.{inner}={text} instead"


def _replacing_entry(settings: dict, labels: tuple[str, ...], parts: list[str]) -> tuple[str, list[str]] | None:
    """The most specific ``stages`` layer that sets ``parts`` (or a list or value above it), as
    ``(label, path of that entry)``; None if no layer does."""
    for label in reversed(labels):
        node = settings.get(label)
        if not isinstance(node, dict):
            continue
        for i, part in enumerate(parts):
            if not isinstance(node, dict):
                return label, parts[:i]
            if part not in node:
                break
            node = node[part]
        else:
            return label, parts
    return None
