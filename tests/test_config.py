"""YAML graph validation: one clear line per mistake, overrides, precedence, hashing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from torch import nn

import models
from models import ModelCard
from pipeline.config import config_hash, dump_resolved, load_config, parse_config
from pipeline.errors import ConfigError
from tests.nets import register_test_model

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TEST_MODEL = register_test_model(
    "test-config-identity", nn.Identity, size_multiple=4, tile_overlap=12
)

BASE = f"""\
version: 1
stages:
  - id: derain
    type: restore
    model: {TEST_MODEL}
    tile: {{size: 64}}
  - id: sharpen
    type: unsharp
    amount: 0.3
output: {{crf: 18}}
execution: {{executor: inline}}
"""


def _error(text: str, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yaml", overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_valid_config_resolves_defaults_and_inputs():
    cfg = parse_config(BASE, "x.yaml")
    assert [s.id for s in cfg.stages] == ["derain", "sharpen"]
    assert cfg.stages[0].inputs == ["source"] and cfg.stages[1].inputs == ["derain"]
    assert cfg.stages[0].params.tile.overlap == 12  # from the model card
    assert cfg.stages[0].params.precision == "auto"
    assert cfg.output.crf == 18 and cfg.output.codec == "libx264" and cfg.output.audio == "copy"
    assert cfg.execution.executor == "inline" and cfg.execution.chunk_frames == 32


def test_empty_stage_list_is_a_pass_through():
    cfg = parse_config("version: 1\nstages: []\n", "p.yaml")
    assert cfg.stages == [] and cfg.execution.executor == "ray"


def test_unknown_key_names_file_line_path_and_suggestion():
    text = BASE.replace("tile: {size: 64}", "tile:\n      size: 64\n      sise: 3")
    assert _error(text) == "x.yaml:8: stages[0].tile.sise: unknown key (did you mean 'size'?)"
    assert _error(BASE + "exection: {}\n") == (
        "x.yaml:12: exection: unknown key (did you mean 'execution'?)"
    )
    assert _error(BASE.replace("amount:", "amout:")).startswith(
        "x.yaml:9: stages[1].amout: unknown key (did you mean 'amount'?)"
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("type: unsharp", "type: unsharpen", "x.yaml:8: stages[1].type: unknown stage type"),
        (TEST_MODEL, "no-such-model", "x.yaml:5: stages[0].model: unknown model 'no-such-model'"),
        ("amount: 0.3", "amount: -1", "x.yaml:9: stages[1].amount: Input should be greater"),
        ("crf: 18", "crf: high", "x.yaml:10: output.crf: Input should be a valid integer"),
        ("executor: inline", "executor: dask", "x.yaml:11: execution.executor: Input should be"),
        ("id: sharpen", "id: derain", "x.yaml:7: stages[1].id: duplicate id 'derain'"),
        ("id: sharpen", "id: source", "x.yaml:7: stages[1].id: 'source' names the input"),
        ("id: sharpen", "id: 'a.b'", "x.yaml:7: stages[1].id: String should match pattern"),
        ("version: 1", "version: 2", "x.yaml:1: version: Input should be 1"),
        ("{size: 64}", "{size: 16}", "x.yaml:6: stages[0].tile.overlap: overlap 12 is more than"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(old, new, expected):
    assert _error(BASE.replace(old, new)).startswith(expected)


def test_graph_mistakes():
    cycle = BASE.replace("amount: 0.3", "amount: 0.3\n    inputs: [sharpen]")
    assert _error(cycle) == "x.yaml:10: stages[1].inputs: cycle: sharpen -> sharpen"
    loop = BASE.replace("tile: {size: 64}", "tile: {size: 64}\n    inputs: [sharpen]")
    assert "cycle: derain -> sharpen -> derain" in _error(loop)
    unknown = BASE.replace("amount: 0.3", "amount: 0.3\n    inputs: [deran]")
    assert _error(unknown) == (
        "x.yaml:10: stages[1].inputs: unknown input 'deran' (did you mean 'derain'?)"
    )
    two_sinks = BASE.replace("amount: 0.3", "amount: 0.3\n    inputs: [source]")
    assert "exactly one output stage, found 2: derain, sharpen" in _error(two_sinks)


def test_merging_stages_need_inputs_of_one_size():
    merge = BASE.replace(
        "output:",
        "  - {id: half, type: resize, scale: 0.5, inputs: [source]}\n"
        "  - {id: mix, type: median, inputs: [sharpen, half]}\noutput:",
    )
    assert _error(merge).startswith("x.yaml:11: stages[3].inputs: merged inputs differ in size")
    same = merge.replace("type: resize, scale: 0.5", "type: median")
    assert parse_config(same, "x.yaml").stages[3].inputs == ["sharpen", "half"]


def test_yaml_problems_name_the_line():
    assert _error("version: 1\nstages: [\n").startswith("x.yaml:3: not valid YAML")
    assert _error("version: 1\nversion: 1\n") == "x.yaml:2: version: duplicate key"
    assert _error("- 1\n- 2\n").startswith("x.yaml:1: the top level must be a mapping")
    assert _error("stages: []\n") == "x.yaml:1: version: required key missing"


def test_overrides_address_stages_by_id_and_win_over_yaml_and_card():
    cfg = parse_config(
        BASE,
        "x.yaml",
        [
            "stages.derain.tile.size=256",
            "stages.derain.tile.overlap=40",
            "stages.sharpen.amount=0.7",
            "output.crf=20",
            "output.options.x264-params=aq-mode=3",
            "execution.num_workers=3",
        ],
    )
    tile = cfg.stages[0].params.tile
    assert (tile.size, tile.overlap) == (256, 40)
    assert cfg.stages[1].params.amount == 0.7
    assert cfg.output.crf == 20 and cfg.output.options == {"x264-params": "aq-mode=3"}
    assert cfg.execution.num_workers == 3


def test_override_mistakes():
    assert "no stage with id 'deran' (did you mean 'derain'?)" in _error(
        BASE, ("stages.deran.tile.size=256",)
    )
    assert _error(BASE, ("output.crf",)) == "--set output.crf: expected key.path=value"
    assert _error(BASE, ("stages.derain.tile.size=big",)) == (
        "x.yaml (--set stages.derain.tile.size=big): stages[0].tile.size: "
        "Input should be a valid integer, unable to parse string as an integer, got 'big'"
    )
    assert "not a mapping" in _error(BASE, ("output.crf.x=1",))


def tiny_checkpoint(path: Path, arch: str | None = "test-tiny") -> Path:
    """A real safetensors file of the registered test network, naming ``arch`` (or none)."""
    from models.checkpoint import save_weights

    return save_weights(models.create_model("test-tiny", pretrained=False), path, arch=arch)


def test_model_may_be_a_checkpoint_path(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "mine.safetensors")
    cfg = parse_config(BASE.replace(TEST_MODEL, str(ckpt)), "x.yaml")
    assert cfg.stages[0].params.model == str(ckpt)


def test_a_home_relative_checkpoint_is_expanded_once_for_everyone(tmp_path, monkeypatch):
    """Regression: ``~/w.safetensors`` validated (expanded) but ``run`` looked for it literally."""
    from pipeline.graph import StageGraph

    monkeypatch.setenv("HOME", str(tmp_path))
    tiny_checkpoint(tmp_path / "w.safetensors")
    cfg = parse_config(BASE.replace(TEST_MODEL, "~/w.safetensors"), "x.yaml")
    assert cfg.stages[0].params.model == str(tmp_path / "w.safetensors")
    graph = StageGraph.from_config(cfg)
    graph.setup("cpu")  # what a worker does: build the network from the file


def test_a_pth_checkpoint_needs_arch(tmp_path):
    import torch

    pth = tmp_path / "official.pth"
    torch.save({"params": models.create_model("test-tiny", pretrained=False).state_dict()}, pth)
    assert "arch" in _error(BASE.replace(TEST_MODEL, str(pth)))
    text = BASE.replace(f"model: {TEST_MODEL}", f"model: {pth}\n    arch: test-tiny")
    cfg = parse_config(text, "x.yaml")
    assert cfg.stages[0].params.arch == "test-tiny"


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda d: d / "empty.safetensors", "not a readable safetensors file"),
        (lambda d: Path("/etc/hostname"), "not a checkpoint file"),
        (lambda d: d / "junk.pth", "not a PyTorch checkpoint"),
        (lambda d: tiny_checkpoint(d / "anon.safetensors", arch=None), "architecture"),
        (lambda d: tiny_checkpoint(d / "odd.safetensors", arch="no-such-net"), "unknown arch"),
    ],
    ids=["zero-bytes", "not-a-checkpoint", "junk-pth", "no-arch", "unknown-arch"],
)
def test_models_that_cannot_run_fail_validation(tmp_path, make, needle):
    """Regression: these validated, then ``run`` failed with exit 1 "internal"."""
    (tmp_path / "empty.safetensors").write_bytes(b"")
    (tmp_path / "junk.pth").write_bytes(b"just text\n")
    path = make(tmp_path)
    assert path.is_file(), f"precondition: {path} should exist"
    assert needle in _error(BASE.replace(TEST_MODEL, str(path)))


def test_arch_is_only_for_checkpoint_files():
    text = BASE.replace(f"model: {TEST_MODEL}", f"model: {TEST_MODEL}\n    arch: lcdnet-s")
    assert "only for a checkpoint file" in _error(text)


def test_execution_and_output_fields():
    for share in ("0.5", "1", "2"):
        parse_config(BASE, "x.yaml", [f"execution.gpus_per_worker={share}"])
    for share in ("0", "1.5", "-1"):
        assert "gpus_per_worker" in _error(BASE, (f"execution.gpus_per_worker={share}",))
    assert "chunk_frames" in _error(BASE, ("execution.chunk_frames=0",))
    cfg = parse_config(BASE, "x.yaml", ["output.options={g: 48, tune: film, bf: true}"])
    assert cfg.output.options == {"g": "48", "tune": "film", "bf": "1"}


def test_load_config_reads_files_and_reports_missing_ones(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BASE)
    assert load_config(path, ["stages.sharpen.sigma=2"]).stages[1].params.sigma == 2
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")


def test_hash_is_stable_and_ignores_placement_only_fields():
    cfg = parse_config(BASE, "x.yaml")
    reformatted = parse_config(yaml.safe_dump(yaml.safe_load(BASE), sort_keys=True), "y.yaml")
    assert config_hash(cfg) == config_hash(reformatted)
    moved = parse_config(BASE, "x.yaml", ["execution.executor=ray", "execution.num_workers=8"])
    assert config_hash(moved) == config_hash(cfg)
    for change in ("output.crf=17", "stages.derain.tile.overlap=8", "execution.chunk_frames=8"):
        assert config_hash(parse_config(BASE, "x.yaml", [change])) != config_hash(cfg)


def test_dump_resolved_round_trips():
    cfg = parse_config(BASE, "x.yaml")
    data = dump_resolved(cfg)
    assert data["stages"][0]["tile"] == {"size": 64, "overlap": 12, "batch": None}
    assert data["stages"][1]["inputs"] == ["derain"]
    again = parse_config(yaml.safe_dump(data), "dump.yaml")
    assert again == cfg and config_hash(again) == config_hash(cfg)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates_or_names_its_missing_weights(path, monkeypatch):
    """A config may only fail for one reason: a registered model whose weights are not
    shipped yet (trained on a GPU later), and then the error says exactly that."""
    unshipped = {c.name for c in models.list_models() if c.weights and not c.weights_available}
    try:
        load_config(path)
        failed = None
    except ConfigError as exc:
        failed = str(exc)
    monkeypatch.setattr(ModelCard, "weights_available", property(lambda card: True))
    cfg = load_config(path)
    used = {s.params.model for s in cfg.stages if s.type == "restore"}
    assert used <= {c.name for c in models.list_models()}
    if used & unshipped:
        assert failed is not None and "has no shipped weights yet" in failed
    else:
        assert failed is None


def test_demo_config_runs_with_shipped_weights():
    """The README's first command uses configs/sample.yaml: its weights must be in the repo."""
    cfg = load_config(CONFIGS / "sample.yaml")
    for stage in cfg.stages:
        if stage.type == "restore":
            assert models.get_card(stage.params.model).weights_available


def test_unshipped_mirnet_weights_error_says_how_to_convert(monkeypatch):
    monkeypatch.setattr(ModelCard, "weights_available", property(lambda card: False))
    text = "version: 1\nstages: [{id: d, type: restore, model: mirnet-v2-denoise}]\n"
    with pytest.raises(
        ConfigError, match=r"python -m models\.checkpoint FILE\.pth --arch mirnet_v2"
    ):
        parse_config(text, "x.yaml")


# -- sizes: nothing in a config may make validation or the run blow up ------------------


def alias_bomb(levels: int) -> str:
    """Each level's list holds the previous one nine times: 9**levels values expanded."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_a_one_line_error_at_once():
    """Regression: an 8-level alias nest ran 26 s and ended in MemoryError."""
    start = time.monotonic()
    message = _error("version: 1\n" + alias_bomb(8))
    assert "expands to more than" in message
    flow = "{" + alias_bomb(8).strip().replace("\n", ", ") + "}"
    message = _error("version: 1\n", (f"output.options={flow}",))
    assert "expands to more than" in message
    assert time.monotonic() - start < 2


def test_a_small_alias_is_still_fine():
    text = BASE.replace("tile: {size: 64}", "tile: &t {size: 64}").replace(
        "amount: 0.3",
        "amount: 0.3\n  - {id: again, type: restore, model: " + TEST_MODEL + ", tile: *t}",
    )
    assert parse_config(text, "x.yaml").stages[2].params.tile.size == 64


def test_deep_nesting_is_a_one_line_error():
    message = _error("version: 1\nx: " + "[" * 50000 + "]" * 50000 + "\n")
    assert "nest" in message and len(message) < 200


@pytest.mark.parametrize("value", ["5000", "1000000", str(10**30), "9" * 5000])
def test_chunk_frames_is_bounded(value: str):
    """Regression: 10**6 allocated 11.4 GiB for a 400-frame clip; 10**30 was internal."""
    message = _error(BASE, (f"execution.chunk_frames={value}",))
    assert "chunk_frames" in message and (
        "less than or equal to 4096" in message or "digits" in message
    )


def test_a_long_set_value_is_not_echoed_whole():
    """Regression: a 120 KB --set value was printed back whole."""
    for value in ("x" * 120_000, "9" * 120_000):
        message = _error(BASE, (f"execution.chunk_frames={value}",))
        assert len(message) < 400, message[:500]


def test_too_many_stages_fail_fast():
    """Regression: 10,000 stages took over 30 s to validate."""
    stages = "\n".join(f"  - {{id: s{i}, type: unsharp}}" for i in range(10_000))
    start = time.monotonic()
    assert "at most 1000" in _error(f"version: 1\nstages:\n{stages}\n")
    assert time.monotonic() - start < 10


def test_topological_order_is_linear():
    """20,000 chained stages sort in well under a second (the old sort was quadratic:
    minutes); ties stay in YAML order, level by level."""
    from pipeline.config import StageConfig, _topological

    chain = [
        StageConfig.model_construct(
            id=f"s{i}", type="unsharp", inputs=[f"s{i - 1}" if i else "source"]
        )
        for i in range(20_000)
    ]
    start = time.monotonic()
    assert [s.id for s in _topological(chain[::-1])] == [s.id for s in chain]
    assert time.monotonic() - start < 2
    fan = [
        StageConfig.model_construct(id=i, type="unsharp", inputs=inputs)
        for i, inputs in [("m", ["a", "b"]), ("b", ["source"]), ("a", ["source"])]
    ]
    assert [s.id for s in _topological(fan)] == ["b", "a", "m"]


@pytest.mark.parametrize(
    "override",
    [
        "stages.sharpen.sigma=1000000",
        "stages.sharpen.radius=100000",
        "stages.derain.tile.size=1000000",
        "stages.derain.tile.batch=1000000",
        "execution.max_inflight_chunks=10000000",
        "execution.max_retries=1000000",
    ],
)
def test_other_sizes_are_bounded(override: str):
    assert override.split("=")[0].split(".")[-1] in _error(BASE, (override,))


@pytest.mark.parametrize(
    "override",
    [
        "stages.sharpen.amount=.inf",
        "stages.sharpen.amount=-.inf",
        "stages.sharpen.sigma=.nan",
        "stages.sharpen.amount='inf'",
        "execution.gpus_per_worker=.nan",
        "execution.chunk_timeout_s=.inf",
        "execution.segment_seconds=.nan",
        "output.options.crf=.nan",
    ],
)
def test_non_finite_numbers_are_refused_everywhere(override: str):
    """Regression: ``.inf`` validated and wrote garbage; ``.nan`` passed every bound."""
    message = _error(BASE, (override,))
    assert override.split("=")[0].split(".")[-1] in message and "finite" in message


def _retrained(path: Path) -> None:
    """Other weights of the test network written over ``path``."""
    import torch

    from models.checkpoint import save_weights

    model = models.create_model("test-tiny", pretrained=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    save_weights(model, path, arch="test-tiny")


def test_hash_covers_the_weights_a_checkpoint_file_holds(tmp_path):
    """Regression: the hash covered the model's path, not the file's content, so a resume
    after re-exporting a checkpoint mixed old and new weights."""
    ckpt = tiny_checkpoint(tmp_path / "mine.safetensors")
    text = BASE.replace(TEST_MODEL, str(ckpt))
    before = config_hash(parse_config(text, "x.yaml"))
    assert config_hash(parse_config(text, "x.yaml")) == before
    _retrained(ckpt)  # re-exported to the same path
    assert config_hash(parse_config(text, "x.yaml")) != before


def test_hash_covers_a_registered_models_shipped_weights(tmp_path, monkeypatch):
    from models import registry

    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    tiny_checkpoint(tmp_path / "shipped.safetensors")
    tiny = models.get_card("test-tiny")
    card = ModelCard(name="test-config-shipped", arch="test", task="identity",
                     builder=tiny.builder, weights="shipped.safetensors")  # fmt: skip
    monkeypatch.setitem(registry._REGISTRY, card.name, card)
    text = BASE.replace(TEST_MODEL, card.name)
    before = config_hash(parse_config(text, "x.yaml"))
    _retrained(tmp_path / "shipped.safetensors")
    assert config_hash(parse_config(text, "x.yaml")) != before
