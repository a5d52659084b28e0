"""Shared fixtures: the GLUE files from ../shared, a tiny BERT teacher, a real local Ray cluster."""

import os
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from raykd.models import resolve_base

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    """The shared GLUE TSVs; missing data is a failure, never a skip."""
    path = Path(os.environ.get("RAYKD_GLUE_DIR", REPO.parent / "shared" / "data" / "glue"))
    if not (path / "RTE" / "train.tsv").is_file():
        pytest.fail(f"GLUE data not found at {path}; set RAYKD_GLUE_DIR (as .ci/run does)")
    return path


def tiny_bert(num_labels=2, layers=4, heads=4, hidden=32, seed=0, init_range=0.02):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=64, max_position_embeddings=128, num_labels=num_labels,
                        initializer_range=init_range)
    return BertForSequenceClassification(config).eval()


@pytest.fixture(scope="session")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_base("minilm"))


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory, tokenizer) -> Path:
    """A 4-layer BERT classifier of width 32 with the real MiniLM tokenizer, saved like a teacher."""
    path = tmp_path_factory.mktemp("tiny_teacher")
    model = tiny_bert()
    model.config.architectures = ["BertForSequenceClassification"]
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster with its dashboard, shared by the integration tests."""
    import ray

    from raykd.launch.cluster import connect

    os.environ.setdefault("RAYKD_NUM_CPUS", "2")
    connect()
    yield ray
    ray.shutdown()


def pytest_collection_modifyitems(items):
    """Every test that starts Ray (the session cluster, or its own nodes) is `slow`: `-m "not slow"` runs the
    unit tests alone in about a minute. CI runs everything."""
    own_clusters = {"test_multinode.py", "test_faults.py"}  # their commands start Ray in subprocesses
    for item in items:
        if "ray_cluster" in getattr(item, "fixturenames", ()) or item.path.name in own_clusters:
            item.add_marker(pytest.mark.slow)


def fails(capsys, main, argv, *messages, out: Path | None = None, code: int = 2) -> str:
    """Run a command; it must exit with `code` (2, bad input; 130, Interrupted) and exactly one `error:` line,
    last on stderr, holding `messages`, and leave `out` unwritten. Returns the line."""
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    assert exit_.value.code == code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err[-3000:]
    assert "Traceback" not in err and "; " in errors[0]
    for message in messages:
        assert message in errors[0], errors[0]
    if out is not None:
        assert not Path(out).exists()
    return errors[0]
