"""Export the best student of a finished or interrupted search again, in serving formats.

    python -m raykd.export results/rte/internal-20261128-010000 [--format hf,onnx,onnx-int8] [--out DIR]

The Hugging Face folder (safetensors, tokenizer, label names, model card), `onnx/model.onnx` (dynamic
batch and sequence axes) and `onnx/model_quantized.onnx` (int8, ONNX Runtime's dynamic quantization). Each
format is checked on the dev set against the PyTorch student before the folder is written; the card and
`deploy.json` hold the check and the latency of teacher and student in each format.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from raykd.artifacts import deploy
from raykd.artifacts.results import check_data, export_best
from raykd.errors import RaykdError, exits_cleanly
from raykd.launch import checks, cli
from raykd.tuning.settings import experiment_info


def parser() -> argparse.ArgumentParser:
    """The export command's argument parser: every option with its default (`--help`)."""
    p = argparse.ArgumentParser(prog="python -m raykd.export", description=__doc__.split("\n")[0])
    p.add_argument("experiment", type=Path, help="experiment folder: <out>/<task>/<name>")
    p.add_argument("--out", type=Path, help="where to write the model folder (default: <experiment>/best)")
    p.add_argument("--format", default=",".join(deploy.FORMATS),
                   help=f"comma list of {', '.join(deploy.FORMATS)}; hf is always written (default: {','.join(deploy.FORMATS)})")
    p.add_argument("--data-dir", help="GLUE folder for the dev check (default: the search's --data-dir, read from its "
                                      "experiment.json, relative to where it ran)")
    p.add_argument("--latency-examples", type=int, default=100,
                   help="dev examples timed one at a time for the latency table; 0 skips the table (default: 100)")
    return p


def parse_args(argv=None):
    """The export's flags (argparse exits 2 on an unknown one)."""
    return parser().parse_args(argv)


@exits_cleanly
def main(argv=None):
    """`python -m raykd.export`: export a search's best student again in the chosen formats; returns its record.
    Raises RaykdError for bad flags, a missing experiment folder, or an experiment with no usable trial."""
    args = parse_args(argv)
    formats = deploy.parse_formats(args.format)
    checks.check_latency_examples(args.latency_examples)
    if not args.experiment.is_dir():
        raise RaykdError(f"experiment folder {args.experiment} does not exist; pass <out>/<task>/<name> of a search")
    info = experiment_info(args.experiment)
    check_data(info, args.data_dir)
    if args.out:  # <experiment>/best is replaced as a whole; a folder of the user's never is
        cli.check_output_dir(args.out)
    out = (args.out or args.experiment / "best").resolve()
    try:
        best = export_best(args.experiment.resolve(), out, info["task"], info["teacher_dir"], formats, args.data_dir,
                           args.latency_examples)
    except RuntimeError as err:
        raise RaykdError(f"{err}; let the search run at least one classification epoch") from None
    measured = best["checks"]
    done = ", ".join(f"{deploy.FORMAT_NAMES[f]} {measured[f]['value']:.4f}" for f in formats)
    print(f"exported trial {best['trial']} ({info['metric']} {best[info['metric']]:.4f}) to {out}: "
          f"{measured['metric']} recomputed as {done}")
    if best["latency"]:
        print("\n".join(deploy.latency_table(best["latency"])))
    return best


if __name__ == "__main__":
    main()
