"""QAModel: optimisation set-up and a tiny model that really learns.  Run: pytest tests/test_model.py"""

import json

import lightning as L
import torch

from lightning_qa.data import SquadDataModule
from lightning_qa.io import read_examples
from lightning_qa.model import QAModel


def test_no_weight_decay_on_biases_and_layernorm(tiny_model_dir, monkeypatch):
    model = QAModel(tiny_model_dir, weight_decay=0.1, warmup_ratio=0.5)
    monkeypatch.setattr(L.Trainer, "estimated_stepping_batches", 10)  # read by configure_optimizers
    model.trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    opt_cfg = model.configure_optimizers()
    decay, no_decay = opt_cfg["optimizer"].param_groups
    names = {id(p): n for n, p in model.model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(
        not names[id(p)].endswith("bias") and "layer_norm" not in names[id(p)].lower()
        for p in decay["params"]
    )
    assert any(names[id(p)].endswith("LayerNorm.weight") for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    scheduler = opt_cfg["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(10):
        lrs.append(scheduler.get_last_lr()[0])
        opt_cfg["optimizer"].step()
        scheduler.step()
    assert lrs[0] == 0.0 and max(lrs) == lrs[5] and lrs[9] < lrs[5]  # 5 warm-up steps, then linear decay


def test_tiny_model_memorises_16_examples(tmp_path, tiny_model_dir, sample_dir):
    """Through the whole decode path: fit 16 questions (one per paragraph), validate on them: EM 100."""
    rows, contexts = [], set()
    for r in read_examples(str(sample_dir / "train.json")):
        if r["context"] not in contexts and len(rows) < 16:
            contexts.add(r["context"])
            rows.append(r)
    path = tmp_path / "sixteen.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    L.seed_everything(0)
    data = SquadDataModule(
        tiny_model_dir, train_file=str(path), validation_file=str(path), cache_dir=str(tmp_path / "cache")
    )
    model = QAModel(tiny_model_dir, learning_rate=3e-3, weight_decay=0.0)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    trainer = L.Trainer(
        max_epochs=100,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        check_val_every_n_epoch=100,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(model, data)
    assert model.last_metrics["examples"] == 16
    assert model.last_metrics["exact_match"] == 100.0 and model.last_metrics["f1"] == 100.0


def _fsdp_groups(rank: int, world: int, port: int, out: str) -> None:
    """One rank: wrap a small model in FSDP as Lightning's strategy does (`use_orig_params=True`), build
    the optimizer groups and write which parameters decay, with their (flattened) shapes."""
    import os

    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from lightning_qa.model import param_groups

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    sharded = FSDP(model, use_orig_params=True, device_id=torch.device("cpu"))
    names = {id(p): n.replace("_fsdp_wrapped_module.", "") for n, p in sharded.named_parameters()}
    decay, no_decay = param_groups(sharded, 0.01)
    result = {
        "decay": sorted(names[id(p)] for p in decay["params"]),
        "no_decay": sorted(names[id(p)] for p in no_decay["params"]),
        "shapes": {names[id(p)]: list(p.shape) for p in sharded.parameters()},
    }
    with open(f"{out}.{rank}", "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


def test_weight_decay_survives_fsdp_flattened_parameters(tmp_path):
    """Under FSDP every parameter is a flat 1-D shard: groups are decided by name and module, not shape,
    so weights still decay and biases and norms do not (a shape rule would make nothing decay)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "groups")
    mp.spawn(_fsdp_groups, args=(2, port, out), nprocs=2, join=True)
    for rank in range(2):
        result = json.loads(open(f"{out}.{rank}").read())
        assert all(len(shape) == 1 for shape in result["shapes"].values())  # really flat shards
        assert result["decay"] == ["0.weight", "2.weight"]
        assert result["no_decay"] == ["0.bias", "1.bias", "1.weight", "2.bias"]
