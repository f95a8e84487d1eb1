"""The one `tokenmill` command. Each subcommand parses its flags and calls one public function of a stage.

Imports are inside the handlers so `tokenmill run` never pays for torch, and `tokenmill train` never for Ray.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from tokenmill.config import ConfigError

Handler = Callable[[argparse.Namespace], int | None]


def _run(a: argparse.Namespace) -> int:
    from tokenmill.pipeline.runner import check_job, run_job

    if a.check:
        plan = check_job(a.job, offline=a.offline)
        print(f"{a.job}: OK ({len(plan.stages)} stages, output {plan.job.output})")
        return 0
    result = run_job(a.job, address=a.address, progress=not a.no_progress)
    print(result.summary())
    return 0


def _demo(a: argparse.Namespace) -> int:
    from tokenmill.demo import run_demo

    run_demo(out=a.out, docs=a.docs, full=not a.pipeline_only, address=a.address, train_steps=a.train_steps)
    return 0


def _crawl_generate(a: argparse.Namespace) -> int:
    from tokenmill.ingest.generate import generate_crawl

    truth = generate_crawl(a.out, n_docs=a.docs, n_files=a.files, seed=a.seed)
    print(f"wrote {a.docs} pages in {a.files} WARC files to {a.out} (ground truth: {truth})")
    return 0


def _report(a: argparse.Namespace) -> int:
    from pathlib import Path

    if (Path(a.run_dir) / "metrics.jsonl").exists():  # a training run
        from tokenmill.trace.run_report import write_train_report

        print(write_train_report(a.run_dir))
    else:
        from tokenmill.pipeline.report import rebuild_report

        print(rebuild_report(a.run_dir))
    return 0


def _classifier_train(a: argparse.Namespace) -> int:
    from tokenmill.filters.quality import train_classifier

    result = train_classifier(
        positive=a.positive, negative=a.negative, out=a.out, text_field=a.text_field,
        label_field=a.label_field, holdout=a.holdout, seed=a.seed,
        **({"epochs": a.epochs} if a.epochs is not None else {}),  # the default is declared once, in quality.py
    )
    print(result)
    return 0


def _tokenizer_train(a: argparse.Namespace) -> int:
    from tokenmill.tokenize.tokenizer import train_tokenizer

    given = {k: v for k, v in {"vocab_size": a.vocab_size, "special_tokens": a.special_tokens}.items() if v is not None}
    path = train_tokenizer(a.documents, a.out, max_docs=a.max_docs, **given)
    print(f"wrote {path}")
    return 0


def _export(a: argparse.Namespace) -> int:
    from tokenmill.tokenize.export import export_dataset

    print(export_dataset(a.dataset, a.out, fmt=a.format))
    return 0


def _train(a: argparse.Namespace) -> int:
    if a.check:
        from tokenmill.train.config import load_job

        job = load_job(a.job)
        print(f"{a.job}: OK (model {job.model.preset}, {len(job.data.sources)} sources, run_dir {job.run_dir})")
        return 0
    from tokenmill.train.loop import train_from_spec

    train_from_spec(a.job, resume=a.resume, mix=a.mix, max_steps=a.max_steps)
    return 0


def _generate(a: argparse.Namespace) -> int:
    from tokenmill.train.generate import generate_text

    print(generate_text(a.checkpoint, a.prompt, max_new_tokens=a.max_new_tokens, temperature=a.temperature,
                        seed=a.seed))
    return 0


def _trace_text(a: argparse.Namespace) -> int:
    from tokenmill.trace.search import trace_text_command

    text = _read_text_file(a.file) if a.file else a.text
    if text is None:
        raise ConfigError("trace text: give the output as an argument or with --file")
    print(trace_text_command(a.dataset, text, as_json=a.json, fuzzy=a.fuzzy, top=a.top))
    return 0


def _read_text_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None


def _trace_index(a: argparse.Namespace) -> int:
    from tokenmill.trace.index import build_span_index

    print(build_span_index(a.dataset, address=a.address))
    return 0


def _trace_serve(a: argparse.Namespace) -> int:
    from tokenmill.trace.web import serve

    serve(a.target, host=a.host, **({"port": a.port} if a.port is not None else {}))
    return 0


def _trace_step(a: argparse.Namespace) -> int:
    from tokenmill.trace.provenance import step_command

    print(step_command(a.run, a.step, as_json=a.json))
    return 0


def _trace_spikes(a: argparse.Namespace) -> int:
    from tokenmill.trace.provenance import spikes_command

    print(spikes_command(a.run, top=a.top, as_json=a.json))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tokenmill", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Handler, help: str, parent=sub) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help, description=help)
        sp.set_defaults(handler=handler)
        return sp

    r = add("run", _run, "run a pipeline job spec (embedded local Ray, or --address / $RAY_ADDRESS)")
    r.add_argument("job")
    r.add_argument("--address", default=None, help="Ray cluster address; default $RAY_ADDRESS or embedded")
    r.add_argument("--check", action="store_true", help="validate the spec and its inputs, run nothing")
    r.add_argument("--offline", action="store_true", help="with --check: do not fetch remote input listings")
    r.add_argument("--no-progress", action="store_true")

    d = add("demo", _demo, "the whole loop on a generated crawl: pipeline → shards → train → trace → report")
    d.add_argument("--out", default="out/demo")
    d.add_argument("--docs", type=int, default=2000, help="pages in the generated crawl")
    d.add_argument("--pipeline-only", action="store_true", help="stop after the pipeline (no training, no trace)")
    d.add_argument("--train-steps", type=int, default=120, help="tiny-model steps; the mix changes halfway")
    d.add_argument("--address", default=None)

    c = add("crawl-generate", _crawl_generate, "write a synthetic crawl with labelled planted cases")
    c.add_argument("out")
    c.add_argument("--docs", type=int, default=1000)
    c.add_argument("--files", type=int, default=4)
    c.add_argument("--seed", type=int, default=0)

    rp = add("report", _report, "rebuild the HTML report of a pipeline run or a training run")
    rp.add_argument("run_dir")

    cl = add("classifier", lambda a: cl.print_help(), "fastText quality classifiers")
    clsub = cl.add_subparsers(dest="subcommand", required=True)
    ct = add("train", _classifier_train, "train a fastText quality classifier (DCLM recipe)", clsub)
    ct.add_argument("--positive", nargs="+", required=True, help="JSONL/Parquet/text files of good documents")
    ct.add_argument("--negative", nargs="+", required=True)
    ct.add_argument("--out", required=True, help="where to write the .bin model")
    ct.add_argument("--text-field", default="text")
    ct.add_argument("--label-field", default=None, help="labelled files: field holding 0/1 (both lists may be the same file)")
    ct.add_argument("--holdout", type=float, default=0.2)
    ct.add_argument("--epochs", type=int, default=None, help="default: filters/quality.py TRAIN_EPOCHS (25)")
    ct.add_argument("--seed", type=int, default=0)

    tk = add("tokenizer", lambda a: tk.print_help(), "tokenizers")
    tksub = tk.add_subparsers(dest="subcommand", required=True)
    tt = add("train", _tokenizer_train, "train a byte-level BPE on pipeline documents", tksub)
    tt.add_argument("documents", nargs="+", help="Parquet document files or folders")
    tt.add_argument("--out", required=True, help="tokenizer.json to write")
    tt.add_argument("--vocab-size", type=int, default=None, help="default: train_tokenizer's (8192)")
    tt.add_argument("--special-tokens", nargs="*", default=None,
                    help="default: train_tokenizer's (<|endoftext|> <|pad|>)")
    tt.add_argument("--max-docs", type=int, default=None)

    ex = add("export", _export, "export a token dataset for other trainers")
    ex.add_argument("dataset")
    ex.add_argument("--format", choices=["datatrove", "megatron"], required=True)
    ex.add_argument("--out", required=True)

    t = add("train", _train, "train the bundled MoE/MLA model from a training job spec")
    t.add_argument("job")
    t.add_argument("--resume", action="store_true", help="continue from the latest good checkpoint")
    t.add_argument("--mix", default=None, help="YAML with new mixture stages to append at resume")
    t.add_argument("--max-steps", type=int, default=None, help="stop after this global step (override)")
    t.add_argument("--check", action="store_true", help="validate the spec, train nothing")

    g = add("generate", _generate, "sample text from a checkpoint")
    g.add_argument("checkpoint")
    g.add_argument("--prompt", required=True)
    g.add_argument("--max-new-tokens", type=int, default=64)
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    g.add_argument("--seed", type=int, default=0)

    tr = add("trace", lambda a: tr.print_help(), "provenance: outputs, steps and spikes back to documents")
    trsub = tr.add_subparsers(dest="subcommand", required=True)
    tx = add("text", _trace_text, "find training documents whose spans a model output contains", trsub)
    tx.add_argument("dataset", help="tokenized dataset folder (or a folder of them)")
    tx.add_argument("text", nargs="?")
    tx.add_argument("--file")
    tx.add_argument("--json", action="store_true")
    tx.add_argument("--fuzzy", action="store_true", help="also rank documents by MinHash Jaccard")
    tx.add_argument("--top", type=int, default=10)
    ti = add("index", _trace_index, "build the span index (suffix arrays) beside a tokenized dataset", trsub)
    ti.add_argument("dataset")
    ti.add_argument("--address", default=None)
    ts = add("serve", _trace_serve, "local web page to trace outputs", trsub)
    ts.add_argument("target", help="a training run directory or a tokenized dataset")
    ts.add_argument("--host", default="127.0.0.1")
    ts.add_argument("--port", type=int, default=None, help="default: trace.web's (8765)")
    st = add("step", _trace_step, "documents trained on in step N", trsub)
    st.add_argument("run")
    st.add_argument("step", type=int)
    st.add_argument("--json", action="store_true")
    sp = add("spikes", _trace_spikes, "loss spikes and the documents most responsible", trsub)
    sp.add_argument("run")
    sp.add_argument("--top", type=int, default=5)
    sp.add_argument("--json", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except Exception as err:
        if not isinstance(err, _user_errors()):
            raise
        print(f"tokenmill: error: {err}", file=sys.stderr)
        return 2


# Errors that name a bad input (file, key, checkpoint, shard): one line, exit 2, no traceback.
_USER_ERRORS = {"tokenmill.train.checkpoint": "CheckpointError", "tokenmill.tokenize.format": "ShardError"}


def _user_errors() -> tuple[type[BaseException], ...]:
    """ConfigError plus the error classes of modules already imported (never imports torch just to catch)."""
    extra = [getattr(sys.modules[m], name) for m, name in _USER_ERRORS.items() if m in sys.modules]
    return (ConfigError, *extra)


if __name__ == "__main__":
    sys.exit(main())
