"""``ibcheck teacher``: train the VAE into a run folder, or reload a finished one.

A teacher run's seed tree is rooted at ``teacher.seed``: the data split and subset
(``data/...``, in ``data.load_images``), the initial weights (``teacher/init``), the
shuffling and the training draws (``teacher/train``), the test ELBO's draws
(``teacher/eval``). Its ``config.json`` is the ``TeacherRunConfig`` it used.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ibcheck import schema, seeds
from ibcheck.config import TeacherConfig, TeacherRunConfig
from ibcheck.interface import Diverged, InputError
from ibcheck.pipeline import runs
from ibcheck.pipeline.vae import VAE

Tensor = torch.Tensor
KIND = "teacher"


@torch.no_grad()
def _mean_neg_elbo(vae: VAE, x: Tensor, generator: torch.Generator, rows: int = 4096) -> float:
    return float(torch.cat([vae.neg_elbo(x[s:s + rows], generator) for s in range(0, len(x), rows)]).mean())


def new_vae(config: TeacherConfig) -> VAE:
    return VAE(config.latent, config.hidden, seeds.seed_of(config.seed, "teacher", "init"))


def train_teacher(config: TeacherConfig, train_x: np.ndarray, test_x: np.ndarray, run: runs.RunDir,
                  device: torch.device | str = "cpu",
                  progress: Callable[[int, dict], None] = lambda epoch, record: None) -> VAE:
    """Train (or resume) the VAE on ``device``, saving a checkpoint and the train/test negative
    ELBO each epoch. train_x, test_x: (n, 784) float32 in [0, 1]. Returns the trained model."""
    vae = new_vae(config).to(device)
    optimiser = torch.optim.Adam(vae.parameters(), lr=config.lr)
    g_train = seeds.generator(config.seed, "teacher", "train", device=device)
    g_eval = seeds.generator(config.seed, "teacher", "eval", device=device)
    state = run.load()
    records = []
    if state is not None:
        vae.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        runs.restore_generators(state["generators"], train=g_train, eval=g_eval)
        records = state["records"]
    x_train, x_test = torch.from_numpy(train_x).to(device), torch.from_numpy(test_x).to(device)
    for epoch in range(len(records) + 1, config.epochs + 1):
        started = time.perf_counter()
        order = torch.randperm(len(x_train), generator=g_train, device=device)
        total = 0.0
        for start in range(0, len(order), config.batch):
            batch = x_train[order[start:start + config.batch]]
            optimiser.zero_grad(set_to_none=True)
            loss = vae.neg_elbo(batch, g_train).mean()
            if not torch.isfinite(loss):
                raise Diverged(f"the teacher diverged in epoch {epoch}: its loss is {float(loss.detach())} "
                               f"(records up to epoch {epoch - 1} kept)")
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        record = {"epoch": epoch, "train_neg_elbo_running": total / len(order),
                  "test_neg_elbo": _mean_neg_elbo(vae, x_test, g_eval),
                  "seconds": time.perf_counter() - started}
        if not math.isfinite(record["test_neg_elbo"]):
            raise Diverged(f"the teacher diverged in epoch {epoch}: test negative ELBO {record['test_neg_elbo']}")
        records.append(record)
        run.save({"model": vae.state_dict(), "optimiser": optimiser.state_dict(), "records": records,
                  "generators": runs.generator_states(train=g_train, eval=g_eval)})
        progress(epoch, record)
    return vae


def teacher_folder(config: TeacherRunConfig, folder: Path, resume: bool) -> runs.RunDir:
    """The run folder of a teacher, checked but not yet written."""
    return runs.RunDir(folder, KIND, schema.to_json(config), resume=resume)


def fit_teacher(config: TeacherRunConfig, run: runs.RunDir, train_x: np.ndarray, test_x: np.ndarray,
                device: torch.device | str, progress: Callable[[int, dict], None]) -> VAE:
    """Train (or finish, or reload) the teacher of ``config`` in ``run``, and record how it ended."""
    with run.create():
        try:
            vae = train_teacher(config.teacher, train_x, test_x, run, device, progress)
        except Diverged as err:
            run.set_status("diverged", reason=str(err))
            raise
        run.set_status("finished")
    return vae


def read_teacher_run(path: str) -> TeacherRunConfig:
    """The config a teacher run recorded, read back through the config validator."""
    status = runs.read_status(Path(path))
    if status.get("status") == "diverged":
        raise InputError(f"--teacher {path}: that teacher diverged ({status.get('reason')})")
    saved = runs.read_config(Path(path), f"--teacher {path}")
    if saved.get("kind") != KIND:
        raise InputError(f"--teacher {path}: not a teacher run (its kind is {schema.show(saved.get('kind'))})")

    def fail(key: str, why: str):
        raise InputError(f"--teacher {path}: its recorded {key} {why}")

    return schema.from_json(TeacherRunConfig, schema.current_names(TeacherRunConfig, saved.get("config")), "", fail)


def finished_teacher(path: str, config: TeacherRunConfig) -> VAE:
    """The VAE of a finished teacher run of ``config`` (from its last readable checkpoint); a
    teacher run of other settings is an InputError (the path is where the teacher is, the
    settings what it is)."""
    recorded = read_teacher_run(path)
    if schema.to_json(recorded) != schema.to_json(config):
        raise InputError(f"--teacher {path}: holds a teacher of other settings than this run's (data and teacher)")
    state = runs.load_state(Path(path))
    done = 0 if state is None else len(state["records"])
    if state is None or done < config.teacher.epochs:
        raise InputError(f"--teacher {path}: unfinished ({done} of {config.teacher.epochs} epochs)")
    vae = new_vae(config.teacher)
    vae.load_state_dict(state["model"])
    return vae.eval()
