"""``mkdbook export RUN_DIR --format F --out FILE``: a trained student as one file a device can run."""

from __future__ import annotations

import argparse
import errno
from pathlib import Path

from mkdbook.cli.common import non_negative_int

#: The sub-command, and its line in ``mkdbook --help`` (which lists it without importing what it runs).
NAME = "export"
HELP = "export a trained student, its standardisation included, to ONNX or TorchScript"
#: :data:`mkdbook.deploy.export.EXPORT_FORMATS`, repeated so that the parser is built without torch.
FORMATS: tuple[str, ...] = ("onnx", "onnx-int8", "torchscript")


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export`` to the sub-commands."""
    parser = subparsers.add_parser(NAME, help=HELP)
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="the --out folder of 'mkdbook train --model student' or 'mkdbook distill'")
    parser.add_argument("--format", default="onnx", choices=FORMATS,
                        help="onnx (float32, the default), onnx-int8 (dynamic int8 weights) or torchscript")
    parser.add_argument("--subject", type=non_negative_int, default=None,
                        help="standardise with this training subject's statistics (default: the pooled "
                             "statistics of all training segments)")
    parser.add_argument("--out", required=True, metavar="FILE", help="the file to write (must not exist)")
    parser.set_defaults(run=run)


def _require_onnx(format: str) -> None:
    """Import what an ONNX format needs, or fail with one line saying how to install it."""
    if format == "torchscript":
        return
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ValueError(f"--format {format} needs the deploy extra: pip install mkdbook[deploy] ({err})") from None


def run(args: argparse.Namespace) -> int:
    """Load the student, fold its standardisation in, write ``--out``; never overwrite a file."""
    _require_onnx(args.format)
    from mkdbook.deploy.export import OPSET, StandardisedStudent, export_student, load_student, window_statistics

    out = Path(args.out)
    if out.exists():
        raise FileExistsError(errno.EEXIST, "exists; choose another name (nothing was overwritten)", str(out))
    student, scaler = load_student(args.run_dir)
    model = StandardisedStudent(student, *window_statistics(scaler, args.subject))
    export_student(model, out, args.format)
    kind = "TorchScript" if args.format == "torchscript" else f"ONNX opset {OPSET}"
    print(f"wrote {out} ({args.format}, {kind}, {out.stat().st_size / 2**20:.2f} MB): raw EOG "
          f"(batch, {model.n_channels}, {model.n_times}) in microvolts -> class probabilities")
    return 0
