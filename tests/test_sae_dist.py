"""Data-parallel training: 2 gloo processes on B/2 rows each equal 1 process on B rows."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from interpbench.sae.config import SAEConfig, TrainConfig
from interpbench.sae.store import TensorSource
from interpbench.sae.synthetic import make_synthetic

SAE_CFG = SAEConfig(arch="topk", d_in=16, d_sae=64, k=3)
TRAIN_CFG = TrainConfig(batch_size=128, n_tokens=128 * 30, lr=3e-3, warmup_steps=5, log_every=5,
                        dead_after_tokens=10**9)


def _data():
    return make_synthetic(n=2048, d=16, n_features=32, k=3, seed=4).acts


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        from interpbench.sae.train import Trainer

        src = TensorSource(_data(), batch_size=TRAIN_CFG.batch_size, seed=0, rank=rank, world=world)
        Trainer(SAE_CFG, TRAIN_CFG, src, out=out, progress=False).run()
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(600)
def test_two_gloo_processes_match_one(tmp_path):
    import interpbench.sae as isae
    from interpbench.sae.train import Trainer

    torch.set_num_threads(1)
    mp.spawn(_worker, args=(2, str(tmp_path / "rdv"), str(tmp_path / "ddp")), nprocs=2, join=True)
    ddp = isae.load(tmp_path / "ddp")
    src = TensorSource(_data(), batch_size=TRAIN_CFG.batch_size, seed=0)
    single = Trainer(SAE_CFG, TRAIN_CFG, src, out=tmp_path / "one", progress=False).run()
    for name, p in single.state_dict().items():
        torch.testing.assert_close(ddp.state_dict()[name], p, rtol=1e-4, atol=1e-5, msg=name)
    import json

    t = json.loads((tmp_path / "ddp" / "train.json").read_text())
    assert t["world_size"] == 2 and t["steps"] == 30
    assert os.path.exists(tmp_path / "ddp" / "checkpoint" / "state.pt")
