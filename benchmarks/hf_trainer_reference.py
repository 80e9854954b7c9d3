"""The standard recipe, as transformers' question-answering example does it, for our benchmarks to compare with.

Fast-tokenizer windows (max_length 384, stride 128, overflowing tokens, offsets; the CLS token labels an
answer not wholly inside a window), padded to max_length as the example does by default or padded per batch
(`DataCollatorWithPadding`, multiple of 8 like ours) with the Trainer's `train_sampling_strategy=
"group_by_length"`; `transformers.Trainer` (fused AdamW, linear schedule, no gradient clipping: ours cannot
clip with a fused optimizer under bf16-mixed); n-best post-processing (n_best 20, max answer length 30, the
example's rule); scored with `lightning_qa.metrics.squad_v1`, the same code that scores our runs.
Written from the recipe, not copied. Needs (benchmark only): `pip install accelerate psutil`.

Used as a library by `train_throughput.py` and `accuracy_parity.py` (`train`, `evaluate`); on its own:

    python benchmarks/hf_trainer_reference.py --model-dir DIR --train-file train.json --eval-file dev.json \
        --steps 100 [--precision bf16] [--dynamic-padding --group-by-length]

prints one JSON line (timing of the training steps after `--warmup`, EM/F1 when `--eval-file` is given).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import (
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import _now, emit, peak_rss_mb, timing  # noqa: E402

from lightning_qa.io import read_examples  # noqa: E402
from lightning_qa.metrics import squad_v1  # noqa: E402


# -- features -------------------------------------------------------------------------------------------
def _windows(batch: dict, tokenizer, max_length: int, stride: int, pad_to_max_length: bool):
    return tokenizer(
        [q.lstrip() for q in batch["question"]],
        batch["context"],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length" if pad_to_max_length else False,
    )


def prepare_train_features(
    batch: dict, tokenizer, max_length=384, stride=128, pad_to_max_length=True
) -> dict:
    """Windows labelled with the token span of the first answer, or the CLS index when it does not fit."""
    enc = _windows(batch, tokenizer, max_length, stride, pad_to_max_length)
    sample_map = enc.pop("overflow_to_sample_mapping")
    enc["start_positions"], enc["end_positions"] = [], []
    for i, offsets in enumerate(enc.pop("offset_mapping")):
        ids, seq = enc["input_ids"][i], enc.sequence_ids(i)
        cls = ids.index(tokenizer.cls_token_id)
        answer = batch["answers"][sample_map[i]]
        start_char = answer["answer_start"][0]
        end_char = start_char + len(answer["text"][0])
        first = seq.index(1)
        last = len(seq) - 1 - seq[::-1].index(1)
        if offsets[first][0] > start_char or offsets[last][1] < end_char:
            enc["start_positions"].append(cls)
            enc["end_positions"].append(cls)
            continue
        while first <= last and offsets[first][0] <= start_char:  # one past the last token starting at/before
            first += 1
        while offsets[last][1] >= end_char:  # one before the first token ending at/after
            last -= 1
        enc["start_positions"].append(first - 1)
        enc["end_positions"].append(last + 1)
    return enc


def prepare_eval_features(batch: dict, tokenizer, max_length=384, stride=128, pad_to_max_length=True) -> dict:
    """Windows with their example id and offsets (None outside the context), for post-processing."""
    enc = _windows(batch, tokenizer, max_length, stride, pad_to_max_length)
    sample_map = enc.pop("overflow_to_sample_mapping")
    enc["example_id"] = [batch["id"][s] for s in sample_map]
    enc["offset_mapping"] = [
        [o if s == 1 else None for o, s in zip(offsets, enc.sequence_ids(i), strict=True)]
        for i, offsets in enumerate(enc["offset_mapping"])
    ]
    return enc


def featurize(
    examples: list[dict], tokenizer, for_eval: bool, pad_to_max_length: bool, max_length=384, stride=128
):
    table = datasets.Dataset.from_list(examples)
    fn = prepare_eval_features if for_eval else prepare_train_features
    return table.map(
        fn,
        batched=True,
        remove_columns=table.column_names,
        fn_kwargs=dict(
            tokenizer=tokenizer, max_length=max_length, stride=stride, pad_to_max_length=pad_to_max_length
        ),
    )


def postprocess(
    examples: list[dict], features, start_logits, end_logits, n_best=20, max_answer_length=30
) -> dict:
    """{id: answer}: per window the n_best start and end logits (over all positions), valid context spans only,
    best start+end score over an example's windows; "empty" when nothing is valid, as the example does."""
    by_example = collections.defaultdict(list)
    for i, ex_id in enumerate(features["example_id"]):
        by_example[ex_id].append(i)
    all_offsets = features["offset_mapping"]
    predictions = {}
    for ex in examples:
        candidates = []
        for i in by_example[ex["id"]]:
            starts, ends, offsets = start_logits[i], end_logits[i], all_offsets[i]
            for s in np.argsort(starts)[-1 : -n_best - 1 : -1].tolist():
                for e in np.argsort(ends)[-1 : -n_best - 1 : -1].tolist():
                    if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    candidates.append((float(starts[s] + ends[e]), offsets[s][0], offsets[e][1]))
        best = max(candidates, default=None)
        predictions[ex["id"]] = ex["context"][best[1] : best[2]] if best else "empty"
    return predictions


def postprocess_with_our_rule(
    examples: list[dict], features, start_logits, end_logits, n_best=20, max_answer_length=30
) -> dict:
    """{id: answer} from the same logits decoded by lightning_qa's rule (n-best among context tokens only,
    `decoding.feature_candidates` + `merge_windows` + `answers.choose`): with both sides' logits decoded
    alike, an accuracy comparison compares training, not decoding."""
    from lightning_qa.answers import AnswerRule, best, choose
    from lightning_qa.decoding import feature_candidates, merge_windows

    index = {ex["id"]: i for i, ex in enumerate(examples)}
    n_windows, width = len(features["offset_mapping"]), max(len(o) for o in features["offset_mapping"])
    offsets = torch.full((n_windows, width, 2), -1, dtype=torch.long)
    for row, spans in enumerate(features["offset_mapping"]):
        for t, span in enumerate(spans):
            if span is not None:
                offsets[row, t] = torch.tensor(span)
    start, end = (
        torch.as_tensor(np.asarray(x)[:, :width], dtype=torch.float32) for x in (start_logits, end_logits)
    )
    cands = feature_candidates(
        start, end, offsets, torch.zeros(n_windows, dtype=torch.long), n_best, max_answer_length
    )
    merged = merge_windows([index[i] for i in features["example_id"]], cands, n_best, keep_nbest=False)
    chosen = choose(
        merged,
        [ex["context"] for ex in examples],
        AnswerRule(n_best_size=n_best, max_answer_length=max_answer_length),
    )
    return {examples[c["example_index"]]["id"]: best(c)["answer"] for c in chosen}


# -- training -------------------------------------------------------------------------------------------
class CountingCollator:
    """Collate as `inner` does and remember each batch's size and tokens, in the order batches are made."""

    def __init__(self, inner) -> None:
        self.inner, self.batches = inner, []

    def __call__(self, features):
        batch = self.inner(features)
        self.batches.append(
            (
                int(batch["input_ids"].shape[0]),
                int(batch["input_ids"].numel()),
                int(batch["attention_mask"].sum()),
            )
        )
        return batch


class StepTimer(TrainerCallback):
    """Time from the end of optimizer step `warmup` to the end of the last step (as `common.StepTimer` does)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.t0, self.t1, self.steps = warmup, None, None, 0

    def on_train_begin(self, args, state, control, **kwargs):
        if self.warmup == 0:  # a whole run: from before the first batch is loaded
            self.t0 = _now()

    def on_step_end(self, args, state, control, **kwargs):
        now, self.steps = _now(), state.global_step
        if self.steps == self.warmup:
            self.t0 = now
        elif self.steps > self.warmup:
            self.t1 = now


class Snapshots(TrainerCallback):
    """Every `every` optimizer steps a copy of the weights and the training wall time so far, not counting the
    copying (as `common.Snapshots` does for ours): the points of an accuracy-against-time curve."""

    def __init__(self, every: int) -> None:
        self.every, self.points, self.last = every, [], {}
        self.t0 = self.paused = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        now, step = time.perf_counter(), state.global_step
        self.last = {"step": step, "train_s": round(now - self.t0 - self.paused, 2)}
        if self.every and step % self.every == 0 and step < state.max_steps:
            weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.points.append({**self.last, "weights": weights})
            self.paused += time.perf_counter() - now


def train(
    model_dir: str,
    train_examples: list[dict],
    out_dir: str,
    *,
    steps: int,
    batch_size=16,
    learning_rate=5e-5,
    weight_decay=0.01,
    warmup_steps=0,
    seed=42,
    bf16=False,
    dynamic_padding=False,
    group_by_length=False,
    timed_warmup=2,
    eval_batch_size=32,
    max_length=384,
    stride=128,
    snapshot_every=0,
    torch_compile=False,
):
    """Fine-tune for `steps` optimizer steps; returns (trainer, tokenizer, stats). With `snapshot_every`,
    stats["snapshots"] holds the weights and training time every that many steps, and the last step's time."""
    torch.set_float32_matmul_precision("high")  # as `lightning_qa fit` sets it (TF32 on GPUs; no-op on CPUs)
    t_start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    features = featurize(train_examples, tokenizer, False, not dynamic_padding, max_length, stride)
    prep_s = time.perf_counter() - t_start
    args = TrainingArguments(
        output_dir=out_dir,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=eval_batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        lr_scheduler_type="linear",
        warmup_steps=warmup_steps,
        max_steps=steps,
        optim="adamw_torch_fused",
        max_grad_norm=0.0,
        seed=seed,
        bf16=bf16,
        use_cpu=True,
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        save_strategy="no",
        logging_steps=50,
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=False,
        torch_compile=torch_compile,
    )
    collator = CountingCollator(
        DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8) if dynamic_padding else default_data_collator
    )
    timer, snapshots = StepTimer(timed_warmup), Snapshots(snapshot_every)
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=features,
        data_collator=collator,
        callbacks=[timer, snapshots],
    )
    t_train = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t_train
    timed = collator.batches[timed_warmup : timer.steps]  # the batches of steps warmup+1 .. last
    stats = timing(
        timer.steps, timed_warmup, timer.t0, timer.t1, *(sum(b[k] for b in timed) for k in range(3))
    )
    stats.update(features=len(features), prepare_s=round(prep_s, 2), train_s=round(train_s, 2))
    if snapshot_every:
        stats["snapshots"] = [*snapshots.points, snapshots.last]
    trainer.data_collator = collator.inner
    return trainer, tokenizer, stats


def evaluate(
    trainer,
    tokenizer,
    eval_examples: list[dict],
    pad_to_max_length=True,
    n_best=20,
    max_answer_length=30,
    max_length=384,
    stride=128,
) -> dict:
    """EM/F1 (official v1.1 metric) of the trained model; time includes tokenizing and post-processing."""
    t = time.perf_counter()
    features = featurize(eval_examples, tokenizer, True, pad_to_max_length, max_length, stride)
    # With train_sampling_strategy="group_by_length" transformers 5 also length-groups `predict`'s
    # batches (`Trainer._get_eval_sampler`) and returns the logits in that order, not the features':
    # post-processing would pair every window with another window's logits.
    trainer.args.train_sampling_strategy = "random"
    output = trainer.predict(features.remove_columns(["example_id", "offset_mapping"]))
    start_logits, end_logits = output.predictions[:2]
    predictions = postprocess(eval_examples, features, start_logits, end_logits, n_best, max_answer_length)
    golds = {e["id"]: e["answers"]["text"] for e in eval_examples}
    scores = squad_v1(golds, predictions)
    ours_rule = squad_v1(
        golds,
        postprocess_with_our_rule(
            eval_examples, features, start_logits, end_logits, n_best, max_answer_length
        ),
    )
    return {
        **{k: round(v, 3) for k, v in scores.items()},
        **{f"{k}_our_rule": round(v, 3) for k, v in ours_rule.items()},
        "eval_s": round(time.perf_counter() - t, 2),
        "predictions": predictions,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", required=True)
    p.add_argument("--train-file", required=True)
    p.add_argument("--eval-file")
    p.add_argument("--output-dir", default="/tmp/hf_trainer_reference")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--eval-batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--precision", choices=["32", "bf16"], default="32")
    p.add_argument("--dynamic-padding", action="store_true", help="pad per batch instead of to 384")
    p.add_argument("--group-by-length", action="store_true", help="the Trainer's length-grouped sampler")
    p.add_argument("--warmup", type=int, default=2, help="optimizer steps left out of the timing")
    p.add_argument("--max-train", type=int)
    p.add_argument("--max-eval", type=int)
    a = p.parse_args(argv)
    from lightning_qa.hardware import cpu_line

    print(cpu_line(), flush=True)  # the figures below depend on it
    train_examples = read_examples(a.train_file)[: a.max_train]
    same = ("steps", "batch_size", "eval_batch_size", "learning_rate", "weight_decay", "warmup_steps", "seed")
    trainer, tokenizer, stats = train(
        a.model_dir,
        train_examples,
        a.output_dir,
        bf16=a.precision == "bf16",
        dynamic_padding=a.dynamic_padding,
        group_by_length=a.group_by_length,
        timed_warmup=a.warmup,
        **{k: getattr(a, k) for k in same},
    )
    result = {"side": "reference", **stats}
    if a.eval_file:
        scores = evaluate(trainer, tokenizer, read_examples(a.eval_file)[: a.max_eval], not a.dynamic_padding)
        predictions = scores.pop("predictions")
        Path(a.output_dir, "predictions.json").write_text(json.dumps(predictions, ensure_ascii=False))
        result.update(scores)
    result["peak_rss_mb"] = peak_rss_mb()
    emit(result)
    return result


if __name__ == "__main__":
    main()
