"""The command line's ``export``: a saved model as ONNX (by default the whole of what
``fastbp predict`` does, from the raw feature columns to the user's labels) and/or as a
torch file."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import fastbp as fb
from fastbp.interop import carries_preprocessing, save_torch

_ONNX_TYPES = {1: "float32", 11: "float64", 8: "string", 7: "int64"}  # TensorProto codes


def cmd_export(args: argparse.Namespace) -> int:
    """Write a saved model as ONNX and/or as a torch state_dict plus its architecture."""
    if args.onnx is None and args.torch is None:
        raise ValueError("export needs --onnx PATH, --torch PATH or both")
    args.check_writable(args.onnx, args.torch)
    net = fb.load(args.model)
    carried = carries_preprocessing(net)
    left_out = ("; left out: the model's preprocessing (" + ", ".join(preprocessing_steps(net))
                + "): apply it around the session") if carried else ""
    if args.onnx is not None:
        model = net.to_onnx(args.onnx, opset=args.opset, dtype=args.onnx_dtype,
                            preprocessing=not args.raw_network)
        if args.raw_network:
            print(f"wrote {args.onnx} (ONNX, the network only: input 'input' of shape (batch, "
                  f"{', '.join('T' if d is None else str(d) for d in net.input_shape)}), "
                  f"output 'output'{left_out})")
        else:
            inputs = [f"'{i.name}' ({_ONNX_TYPES.get(i.type.tensor_type.elem_type, '?')})"
                      for i in model.graph.input]
            shown = ", ".join(inputs[:6]) + (f", ... ({len(inputs) - 6} more)" if len(inputs) > 6
                                             else "")
            steps = ", ".join(preprocessing_steps(net)) or "none to carry"
            print(f"wrote {args.onnx} (ONNX, as fastbp predict: input{'s' * (len(inputs) > 1)} "
                  f"{shown}, {'each (batch, 1)' if net.columns else 'per row'}; outputs "
                  f"{', '.join(repr(o.name) for o in model.graph.output)}; preprocessing: "
                  f"{steps})")
    if args.torch is not None:
        save_torch(net, args.torch)
        print(f"wrote {args.torch} (torch state_dict and architecture; "
              "fastbp.interop.load_torch rebuilds the nn.Sequential; the network only"
              + (f"{left_out}, or Network.to_torch(preprocessing=True)" if carried else "")
              + ")")
    return 0


def preprocessing_steps(net: fb.Network) -> list[str]:
    """What a model's preprocessing does, in the words export prints."""
    steps = []
    if net.columns is not None:
        kinds = {c.kind for c in net.columns.encodings_}
        steps.append(f"{len(net.columns.columns_)} columns"
                     + (", one-hot" if "onehot" in kinds else "")
                     + (", ordinal codes" if "ordinal" in kinds else "")
                     + (", yes/no as 1/0" if "boolean" in kinds else ""))
    scaler = net.standardize
    if scaler is not None:
        steps += (["mean imputation"] if scaler.impute else []) + \
            (["standardisation"] if scaler.with_mean or scaler.with_std else [])
    if net.label_encoder is not None:
        steps.append("label names")
    if net.target_standardize is not None:
        steps.append("target units")
    return steps


def add_export_parser(sub, pos_int: Callable, check_writable: Callable) -> None:
    """The ``export`` subcommand."""
    e = sub.add_parser("export", help="write a saved model as ONNX or for PyTorch",
                       description="Write a saved model as an ONNX model (needs fastbp[onnx]) "
                       "and/or a torch file: the state_dict of Network.to_torch() plus the "
                       "architecture (needs fastbp[torch]).")
    e.add_argument("model", metavar="MODEL.npz")
    e.add_argument("--onnx", metavar="MODEL.onnx", help="write the ONNX model here")
    e.add_argument("--opset", type=pos_int, help="ONNX opset (default: 17)")
    e.add_argument("--onnx-dtype", choices=["float32", "float64"],
                   help="ONNX element type (default: the model's)")
    e.add_argument("--raw-network", action="store_true", help="--onnx: the network alone "
                   "(input 'input', output 'output', the logits), without the preprocessing and "
                   "label names the model carries; by default the graph takes the raw feature "
                   "columns and outputs what fastbp predict does")
    e.add_argument("--torch", metavar="MODEL.pt", help="write the torch file here")
    e.set_defaults(func=cmd_export, check_writable=check_writable)
