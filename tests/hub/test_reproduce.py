"""The card's reproduce blocks run as printed (issue 26, item 7): every profile kind and neuron type the CLI makes."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest
from helpers import make_signature_dataset, make_spec, random_signatures

from nag_datasets.hub.reproduce import _reproduce
from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.selection.budgeted import select_top_fraction
from nag_datasets.selection.recipe import get_recipe
from nag_datasets.signatures.spec import NEURON_TYPES


def _selection(neuron_type: str, kind: str):
    spec = make_spec(neuron_type=neuron_type, model_name="tiny-test-model")
    pool = make_signature_dataset(random_signatures(60, spec, seed=1), spec,
                                  {"text": [f"doc {i}" for i in range(60)], "num_tokens": [3] * 60})
    profile = NAGProfile.from_signatures(random_signatures(10, spec, seed=2), spec)
    if kind == "contrastive":
        profile = profile.contrast(NAGProfile.from_dataset(pool, f"nag_{neuron_type}", sample=20, seed=4), "shrinkage")
    return select_top_fraction(pool, 0.25, token_column="num_tokens", profile=profile)


@pytest.mark.fast
@pytest.mark.parametrize("kind", ["paper", "contrastive"])
@pytest.mark.parametrize("neuron_type", NEURON_TYPES)
def test_printed_blocks_name_the_signature_column_of_every_neuron_type(neuron_type, kind):
    """The CLI profile step named no column, so a contrastive att_o recipe failed at `nag_fwd_up not in dataset`."""
    library, cli = _reproduce(get_recipe(_selection(neuron_type, kind)), "num_tokens", "mit")
    compile(library, "card", "exec")
    assert f"neuron_types=[{neuron_type!r}]" in library and "profile=profile" in library
    featurize, _, profile_line, select, export = cli.splitlines()
    assert f"--neuron-types {neuron_type} --top-k 4 --max-length 16 --layers 0,1,2" in featurize
    assert profile_line.startswith(f"nag-datasets profile target_nag PROFILE_DIR --column nag_{neuron_type}")
    assert ("--background pool_nag --weighting shrinkage" in profile_line) == (kind == "contrastive")
    assert "--background-sample 20 --background-seed 4" in profile_line or kind == "paper"
    assert "--fraction 0.25 --token-column num_tokens --method exact" in select and "--license mit" in export


def _run_block(cli: str, places: dict[str, str], cwd) -> None:
    """Run the card's command lines as printed, placeholders filled in, each through this interpreter."""
    for line in cli.splitlines():
        command = line.split("  #")[0]
        for name, value in places.items():
            command = command.replace(name, value)
        argv = shlex.split(command)
        assert argv[0] == "nag-datasets"
        proc = subprocess.run([sys.executable, "-m", "nag_datasets.cli", *argv[1:]], check=False, cwd=cwd,
                              capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        assert proc.returncode == 0, (line, proc.stderr[-2000:])


@pytest.mark.slow
def test_contrastive_att_o_cli_block_runs_as_printed_on_the_bundled_model(tmp_path):
    """Real run, tiny (2 targets + 4 pool documents at 16 tokens, twice): the printed commands redo the selection."""
    from nag_datasets.demo_data import load_demo
    from nag_datasets.featurize.featurizer import NAGFeaturizer
    from nag_datasets.hub import export_for_hub
    from nag_datasets.selection.tokens import count_tokens

    target_text, pool_text = load_demo("target").select(range(2)), load_demo("pool").shuffle(seed=2).select(range(4))
    for name, ds in (("target.jsonl", target_text), ("pool.jsonl", pool_text)):
        (tmp_path / name).write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in ds))
    featurizer = NAGFeaturizer(neuron_types=("att_o",), max_length=16)
    target = featurizer.apply(target_text)
    pool = count_tokens(featurizer.apply(pool_text), featurizer.tokenizer, column="text", out_column="num_tokens")
    background = NAGProfile.from_dataset(pool, "nag_att_o", sample=4)
    profile = NAGProfile.from_dataset(target, "nag_att_o").contrast(background)
    selected = select_top_fraction(pool, 0.5, token_column="num_tokens", profile=profile)
    card = (export_for_hub(selected, tmp_path / "published", token_column="num_tokens", license="mit") /
            "README.md").read_text()
    cli = card.split("```bash\n")[1].split("```")[0].strip()
    assert "--column nag_att_o" in cli and "--model" not in cli
    _run_block(cli, {"TARGET": "target.jsonl", "POOL": "pool.jsonl", "PROFILE_DIR": "profile",
                     "EXPORT_DIR": "export"}, tmp_path)
    from nag_datasets.signatures.formats import load_any

    assert NAGProfile.load(tmp_path / "profile").fingerprint == profile.fingerprint
    assert load_any(tmp_path / "selected")["id"][:] == selected["id"][:] and len(selected) > 0
