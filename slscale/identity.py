"""Run identity: a readable name plus a short hash of everything that changes the result.

The hash covers every field of a :class:`~slscale.spec.RunSpec` (so two runs that could give
different results never share an id) and nothing else: workdirs, store URLs, cluster
addresses and GPU types are runtime arguments and not part of a spec. Fields added after the
hashed form was fixed are left out where they say nothing — the WSD ladder's ``branch`` and
``branch_tokens`` when unset, the wsd-only recipe fields under another schedule (where they
must keep their defaults) — so the ids of runs that do not use them never change; a wsd
run's ids always hash its decay fraction and shape, whatever their defaults. A TextLM given as a
local path or a hub name is hashed by its final component (the checkpoint's name), so moving
a checkpoint directory, or using a local copy of a hub model, keeps the ids of the runs that
start from it. Identity is a pure function of the spec: it never looks at the filesystem.

Bump :data:`HASH_VERSION` whenever the hashed form changes meaning.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

from slscale.spec import SCRATCH, WSD, WSD_FIELDS, RunSpec, spec_to_dict

HASH_VERSION = 1
HASH_CHARS = 8


def identity_fields(spec: RunSpec) -> dict[str, Any]:
    """The plain-data fields hashed into the run id, with the TextLM path normalised and the
    fields that do not apply to the run left out (see the module docstring)."""
    fields = spec_to_dict(spec)
    fields["init"] = init_name(spec.init)
    if spec.branch is None:
        del fields["branch"]
    if not spec.branch_tokens:
        del fields["branch_tokens"]
    if spec.recipe.schedule != WSD:
        for name in WSD_FIELDS:
            del fields["recipe"][name]
    return fields


def init_name(init: str) -> str:
    """'scratch', or the name of a TextLM (the last component of a local path)."""
    if init == SCRATCH:
        return SCRATCH
    return os.path.basename(os.path.normpath(init.replace("\\", "/"))) or init


def spec_hash(spec: RunSpec) -> str:
    """Short content hash of :func:`identity_fields` (sha256, canonical JSON)."""
    payload = json.dumps(
        {"v": HASH_VERSION, "spec": identity_fields(spec)}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:HASH_CHARS]


def readable_name(spec: RunSpec) -> str:
    """family-size-modality[-init][-trunk|-branch]-D<tokens>-s<seed>, e.g.
    llama-cm-85m-textless-D1.7B-s0."""
    if spec.size is not None:
        size = spec.size.lower()
    else:
        assert spec.arch is not None
        size = f"L{spec.arch.num_layers}d{spec.arch.hidden_size}"
    parts = [spec.family, size, str(spec.modality)]
    if spec.from_textlm:
        parts.append("from-" + _slug(init_name(spec.init)))
    if spec.is_trunk:
        parts.append("trunk")
    elif spec.branch is not None:
        parts.append("branch")
    parts += [f"D{human_count(spec.tokens)}", f"s{spec.seed}"]
    return "-".join(parts)


def run_id(spec: RunSpec) -> str:
    """Readable name + short content hash; stable across processes and machines."""
    return f"{readable_name(spec)}-{spec_hash(spec)}"


def human_count(value: float) -> str:
    """1234 -> '1.23k', 2e9 -> '2B', 679940 -> '680k' (three significant digits)."""
    for threshold, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / threshold:.3g}" + suffix
    return f"{value:.3g}"


def _slug(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in ".-" else "-" for c in text.lower())
    return cleaned.strip("-")[:40] or "textlm"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{'mix': {'text_share': 0.2}} -> {'mix.text_share': 0.2}."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else key))
    return out


def diff_specs(a: RunSpec, b: RunSpec) -> list[tuple[str, Any, Any]]:
    """The hashed fields (dotted names) whose values differ between two specs."""
    fa, fb = flatten(identity_fields(a)), flatten(identity_fields(b))
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def varying_fields(specs: Sequence[RunSpec]) -> list[str]:
    """Dotted names of the hashed fields that take more than one value across ``specs``."""
    flat = [flatten(identity_fields(s)) for s in specs]
    keys = sorted({k for f in flat for k in f})
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]
